"""Webhook tokens and bearer keys, without a server."""

from __future__ import annotations

import time

import jwt
import pytest

from libnar._gateway._tokens import TokenError, bearer, is_one_of, mint_token, verify_token

SECRET = "s" * 40
OLD = "o" * 40


def test_minted_token_carries_the_flow_and_its_parameters() -> None:
    token = mint_token(SECRET, "fun69_boxes_ptp", {"dep_name": "x"}, expires_in=60)
    claims = verify_token(token, [SECRET])
    assert claims.name == "fun69_boxes_ptp"
    assert claims.parameters == {"dep_name": "x"}
    assert claims.expires_at is not None
    assert claims.expires_at > time.time()


def test_token_of_the_earlier_gateway_without_exp_is_accepted() -> None:
    token = jwt.encode({"name": "fun69_boxes_ptp", "parameters": {"a": 1}}, OLD, algorithm="HS256")
    claims = verify_token(token, [SECRET, OLD])
    assert (claims.name, claims.parameters, claims.expires_at) == (
        "fun69_boxes_ptp",
        {"a": 1},
        None,
    )


def test_rotation_first_secret_signs_every_secret_verifies() -> None:
    old_token = mint_token(OLD, "f", {})
    assert verify_token(old_token, [SECRET, OLD]).name == "f"
    with pytest.raises(TokenError):
        verify_token(old_token, [SECRET])


def tampered(token: str) -> str:
    """The token with its claims replaced (another flow) and the signature kept."""
    header, _, signature = token.split(".")
    forged = jwt.encode({"name": "other_flow", "parameters": {}}, "k" * 40, algorithm="HS256")
    return ".".join([header, forged.split(".")[1], signature])


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
@pytest.mark.parametrize(
    ("token", "reason"),
    [
        ("", "no token"),
        ("not-a-jwt", "malformed"),
        (mint_token("w" * 40, "f"), "no configured secret"),
        (tampered(mint_token(SECRET, "f")), "no configured secret"),
        (
            jwt.encode({"name": "f", "exp": int(time.time()) - 5}, SECRET, algorithm="HS256"),
            "expired",
        ),
        (jwt.encode({"parameters": {}}, SECRET, algorithm="HS256"), "no flow name"),
        (jwt.encode({"name": "f", "parameters": [1]}, SECRET, algorithm="HS256"), "not an object"),
        (jwt.encode({"name": "f"}, SECRET * 2, algorithm="HS512"), "malformed"),
    ],
    ids=["empty", "garbage", "wrong-secret", "tampered", "expired", "no-name", "bad-params", "alg"],
)
def test_bad_tokens_are_refused_with_a_reason_for_the_log(token: str, reason: str) -> None:
    with pytest.raises(TokenError, match=reason):
        verify_token(token, [SECRET])


def test_keys_are_matched_against_each_configured_key() -> None:
    assert is_one_of("b", ["a", "b"])
    assert not is_one_of("c", ["a", "b"])
    assert not is_one_of("", ["", "a"])
    assert not is_one_of(None, ["a"])
    assert not is_one_of("a", [])


@pytest.mark.parametrize(
    ("header", "key"),
    [
        ("Bearer k1", "k1"),
        ("bearer  k1 ", "k1"),
        ("Basic k1", None),
        ("Bearer", None),
        (None, None),
    ],
)
def test_bearer_header_is_parsed(header: str | None, key: str | None) -> None:
    assert bearer(header) == key
