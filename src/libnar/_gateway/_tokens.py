"""Webhook tokens and bearer keys: mint and verify HS256 JWTs, compare keys in constant time.

A token names the flow a webhook runs and carries its extra parameters, in the same claims as the
earlier gateway's (`name`, `parameters`), so tokens already configured in SamaHub keep working
when the secret is the same; those have no `exp`. The first configured secret signs, every
configured secret verifies, so a secret can be rotated without breaking configured webhooks.
"""

from __future__ import annotations

import hmac
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import jwt

__all__ = ["TokenClaims", "TokenError", "bearer", "is_one_of", "mint_token", "verify_token"]

_ALGORITHM = "HS256"


class TokenError(ValueError):
    """A token is missing, malformed, tampered with, expired or signed with an unknown secret.

    The message says which, for the gateway's own log; the HTTP answer never does.
    """


@dataclass(frozen=True)
class TokenClaims:
    """What a valid token says: the flow to run and its extra parameters."""

    name: str
    parameters: dict[str, Any] = field(default_factory=dict)
    expires_at: int | None = None


def mint_token(
    secret: str,
    name: str,
    parameters: Mapping[str, Any] | None = None,
    expires_in: int | None = None,
) -> str:
    """Sign a token for flow `name` with `parameters`; it expires after `expires_in` seconds."""
    now = int(time.time())
    claims: dict[str, Any] = {"name": name, "parameters": dict(parameters or {}), "iat": now}
    if expires_in is not None:
        claims["exp"] = now + expires_in
    with warnings.catch_warnings():
        # PyJWT warns about secrets under 32 bytes; the earlier gateway's may be that short,
        # and the gateway warns once at start instead of on every token.
        warnings.simplefilter("ignore")
        return jwt.encode(claims, secret, algorithm=_ALGORITHM)


def verify_token(token: str, secrets: Sequence[str]) -> TokenClaims:
    """Check `token` against each secret in turn and return its claims.

    Raises:
        TokenError: no secret verifies it, it has expired, or its claims are not a flow name
            and a parameter object.
    """
    if not token:
        raise TokenError("no token")
    expired = False
    for secret in secrets:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                claims = jwt.decode(
                    token,
                    secret,
                    algorithms=[_ALGORITHM],
                    options={"require": [], "verify_aud": False, "verify_iss": False},
                )
        except jwt.ExpiredSignatureError:
            expired = True
            continue
        except jwt.InvalidSignatureError:
            continue
        except jwt.InvalidTokenError as exc:
            raise TokenError(f"malformed token ({type(exc).__name__})") from None
        return _claims(claims)
    raise TokenError("expired token" if expired else "no configured secret verifies the token")


def _claims(claims: Mapping[str, Any]) -> TokenClaims:
    name = claims.get("name")
    parameters = claims.get("parameters")
    if not isinstance(name, str) or not name:
        raise TokenError("token has no flow name")
    if parameters is None:
        parameters = {}
    if not isinstance(parameters, dict):
        raise TokenError("token parameters are not an object")
    expires_at = claims.get("exp")
    return TokenClaims(
        name=name,
        parameters=parameters,
        expires_at=expires_at if isinstance(expires_at, int) else None,
    )


def is_one_of(given: str | None, keys: Iterable[str]) -> bool:
    """Whether `given` equals one of `keys`, comparing each in constant time.

    Every key is compared (no early exit), so the time taken does not tell which key matched.
    """
    if not given:
        return False
    given_bytes = given.encode()
    found = False
    for key in keys:
        found |= hmac.compare_digest(given_bytes, key.encode())
    return found


def bearer(authorization: str | None) -> str | None:
    """The key of an `Authorization: Bearer <key>` header, or None."""
    if not authorization:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()
