"""Slack messages from flows: text or Block Kit blocks, with files, through Slack's Web API.

```python
from libnar.slack import send_message

ts = send_message("#nps-alerts", text="fun69: 1,200 tasks post-processed",
                  files=["report.csv", "s3://bucket/exports/day.json"])
```

The token comes from the call, `LIBNAR_SLACK_TOKEN`, or the secret named by
`LIBNAR_SLACK_TOKEN_SECRET` (`get_secret`). Files use Slack's current upload
(`files.getUploadURLExternal`, the bytes, `files.completeUploadExternal`) and are posted in the
message's thread, so the message's timestamp is known and returned. Rate-limited calls are
retried after the `Retry-After` Slack asks for; refusals raise `SlackError` with Slack's code.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any, TypeAlias

import httpx
from pydantic import SecretStr

from libnar.settings import Settings, get_settings

__all__ = [
    "SlackConfigError",
    "SlackError",
    "SlackFile",
    "SlackRateLimitError",
    "send_message",
]

logger = logging.getLogger("libnar.slack")

_UPLOAD_CHUNK = 1024 * 1024

# What to do about the codes a flow author meets most.
_HINTS = {
    "not_in_channel": "invite the Slack app to the channel (/invite @app)",
    "channel_not_found": "check the channel's name or id, and that the app can see it",
    "invalid_auth": "the token is wrong or revoked: check LIBNAR_SLACK_TOKEN or its secret",
    "not_authed": "no token was sent: set LIBNAR_SLACK_TOKEN or its secret",
    "token_revoked": "the token was revoked: install the app again",
    "missing_scope": "add the scope Slack names to the app (chat:write, files:write)",
    "no_text": "pass text= or blocks=",
    "invalid_blocks": "blocks= must be a list of Block Kit blocks (at most 50)",
    "msg_too_long": "text= is over 40,000 characters: send a file instead",
}


class SlackError(Exception):
    """Slack refused a call: `code` is Slack's error code (`channel_not_found`, ...)."""

    def __init__(self, method: str, code: str, detail: str = "") -> None:
        self.method = method
        self.code = code
        hint = _HINTS.get(code)
        text = f"Slack {method}: {code}"
        if detail:
            text += f" ({detail})"
        if hint:
            text += f"; {hint}"
        super().__init__(text)


class SlackRateLimitError(SlackError):
    """Slack kept answering `ratelimited` after the retries, or asked for too long a wait."""


class SlackConfigError(SlackError):
    """No Slack token: neither given, nor set, nor found as a secret."""


@dataclass(frozen=True)
class SlackFile:
    """A file to post: its name in Slack and its bytes (for data made in memory)."""

    filename: str
    content: bytes
    title: str | None = None


FileInput: TypeAlias = "str | os.PathLike[str] | SlackFile"


def _token(token: str | SecretStr | None, settings: Settings) -> str:
    if token is not None:
        return token.get_secret_value() if isinstance(token, SecretStr) else token
    if settings.slack_token is not None:
        return settings.slack_token.get_secret_value()
    from libnar.secrets import SecretNotFoundError, get_secret

    try:
        return get_secret(settings.slack_token_secret).get_secret_value()
    except SecretNotFoundError as exc:
        raise SlackConfigError(
            "auth",
            "no_token",
            f"set LIBNAR_SLACK_TOKEN, pass token=, or store the secret"
            f" {settings.slack_token_secret!r}; {exc}",
        ) from None


class _Caller:
    """Calls Web API methods with the token, retrying what Slack rate-limits."""

    def __init__(self, client: httpx.Client, token: str, settings: Settings) -> None:
        self.client = client
        self.headers = {"Authorization": f"Bearer {token}"}
        self.base = settings.slack_api_url.rstrip("/")
        self.max_retries = settings.slack_max_retries
        self.max_wait = settings.slack_max_retry_after

    def send(self, method: str, request: Callable[[], httpx.Response]) -> httpx.Response:
        """Send `request` until it is not rate limited, as often as allowed."""
        for attempt in range(self.max_retries + 1):
            try:
                response = request()
            except httpx.ConnectError as exc:  # nothing was sent: safe to try again
                if attempt == self.max_retries:
                    raise SlackError(method, "connection_failed", type(exc).__name__) from None
                time.sleep(min(2**attempt, 10))
                continue
            except httpx.TransportError as exc:
                raise SlackError(method, "transport_error", type(exc).__name__) from None
            if response.status_code != 429:
                return response
            wait = _retry_after(response)
            if attempt == self.max_retries or wait > self.max_wait:
                raise SlackRateLimitError(
                    method, "ratelimited", f"Retry-After {wait:g} s, {attempt + 1} attempts"
                )
            logger.info("Slack %s rate limited; retrying in %g s", method, wait)
            time.sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    def call(
        self, method: str, *, json_body: Mapping[str, Any] | None = None, form: Any = None
    ) -> dict[str, Any]:
        """Call `method` (JSON body or form fields) and return its answer, or raise."""
        url = f"{self.base}/{method}"
        if json_body is not None:
            content = json.dumps(json_body).encode()
            headers = {**self.headers, "Content-Type": "application/json; charset=utf-8"}

            def request() -> httpx.Response:
                return self.client.post(url, content=content, headers=headers)
        else:

            def request() -> httpx.Response:
                return self.client.post(url, data=form, headers=self.headers)

        response = self.send(method, request)
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise SlackError(method, f"http_{response.status_code}", "the answer is not JSON")
        if not answer.get("ok"):
            code = str(answer.get("error") or f"http_{response.status_code}")
            needed = answer.get("needed")
            raise SlackError(method, code, f"needed: {needed}" if needed else "")
        return answer


def _retry_after(response: httpx.Response) -> float:
    try:
        return max(0.0, float(response.headers.get("Retry-After", "1")))
    except ValueError:
        return 1.0


@dataclass
class _Upload:
    filename: str
    title: str | None
    length: int
    chunks: Callable[[], Iterator[bytes]]  # called once per attempt


def _prepare(file: FileInput) -> _Upload:
    if isinstance(file, SlackFile):
        content = file.content
        return _Upload(file.filename, file.title, len(content), lambda: iter([content]))
    url = os.fspath(file)
    from libnar.storage import filesystem

    fs = filesystem(url)
    path = fs._strip_protocol(url)
    length = int(fs.size(path))

    def chunks() -> Iterator[bytes]:
        with fs.open(path, "rb") as handle:
            while chunk := handle.read(_UPLOAD_CHUNK):
                yield chunk

    return _Upload(PurePath(path).name, None, length, chunks)


def _upload(caller: _Caller, upload: _Upload) -> str:
    """Announce, then send, one file; returns its Slack file id."""
    answer = caller.call(
        "files.getUploadURLExternal", form={"filename": upload.filename, "length": upload.length}
    )
    upload_url, file_id = answer["upload_url"], answer["file_id"]

    def request() -> httpx.Response:
        # The upload URL is pre-signed: the token is not sent there.
        return caller.client.post(
            upload_url,
            content=upload.chunks(),
            headers={
                "Content-Length": str(upload.length),
                "Content-Type": "application/octet-stream",
            },
        )

    response = caller.send("upload", request)
    if response.status_code != 200:
        raise SlackError("upload", f"http_{response.status_code}", upload.filename)
    return str(file_id)


def send_message(
    channel: str,
    text: str | None = None,
    blocks: Sequence[Mapping[str, Any]] | None = None,
    files: Sequence[FileInput] = (),
    *,
    thread_ts: str | None = None,
    token: str | SecretStr | None = None,
    settings: Settings | None = None,
) -> str:
    """Post a message to `channel` (a name such as `#nps-alerts`, or an id); return its `ts`.

    `text` is the message (and the notification's text when `blocks` are given); `blocks`
    are Block Kit blocks. `files` (local paths, any `libnar.storage` URL, or `SlackFile`s)
    are uploaded and posted in the message's thread. `thread_ts` posts the message itself as
    a reply. The returned timestamp identifies the message (e.g. to reply to it later).

    Raises:
        ValueError: neither `text` nor `blocks`.
        SlackError: Slack refused a call; `.code` is Slack's error code.
        SlackRateLimitError: still rate limited after `LIBNAR_SLACK_MAX_RETRIES` retries.
        SlackConfigError: no token.
    """
    if not text and not blocks:
        raise ValueError("send_message needs text= or blocks= (files go in the message's thread)")
    settings = settings or get_settings()
    uploads = [_prepare(file) for file in files]  # a missing file fails before any message
    body: dict[str, Any] = {"channel": channel}
    if text:
        body["text"] = text
    if blocks:
        body["blocks"] = list(blocks)
    if thread_ts:
        body["thread_ts"] = thread_ts
    with httpx.Client(timeout=settings.slack_timeout) as client:
        caller = _Caller(client, _token(token, settings), settings)
        answer = caller.call("chat.postMessage", json_body=body)
        ts, channel_id = str(answer["ts"]), str(answer["channel"])
        if uploads:
            file_ids = [_upload(caller, upload) for upload in uploads]
            listed = [
                {"id": file_id, "title": upload.title or upload.filename}
                for file_id, upload in zip(file_ids, uploads, strict=True)
            ]
            caller.call(
                "files.completeUploadExternal",
                form={
                    "files": json.dumps(listed),
                    "channel_id": channel_id,
                    "thread_ts": thread_ts or ts,
                },
            )
    return ts
