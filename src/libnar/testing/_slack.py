"""A fake of Slack's Web API over real HTTP on 127.0.0.1: messages, file uploads, rate limits.

It answers as Slack documents: HTTP 200 with `{"ok": false, "error": "<code>"}` for refused
calls, HTTP 429 with `Retry-After` (seconds) and `{"ok": false, "error": "ratelimited"}` when
rate limited, the bearer token checked on every method, and the current three-step upload
(`files.getUploadURLExternal`, a POST of the bytes to the returned URL, then
`files.completeUploadExternal`). The file methods take form fields only where Slack's do.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qsl, urlsplit

__all__ = ["FakeSlack", "SlackCall", "SlackFile", "SlackMessage"]

_MAX_BLOCKS = 50  # Slack's limit per message
_MAX_TEXT = 40_000  # characters; longer text is refused with msg_too_long


@dataclass
class SlackCall:
    """One request the fake received: the method (or `upload`) and its arguments."""

    method: str
    arguments: dict[str, Any]
    content_type: str
    authorization: str | None = None
    at: float = field(default_factory=time.monotonic)


@dataclass
class SlackMessage:
    """A message posted to a channel."""

    channel: str
    ts: str
    text: str | None
    blocks: list[Any] | None
    thread_ts: str | None


@dataclass
class SlackFile:
    """A file: announced, uploaded, then shared by `files.completeUploadExternal`."""

    id: str
    filename: str
    length: int
    content: bytes | None = None
    title: str | None = None
    channel: str | None = None
    thread_ts: str | None = None
    initial_comment: str | None = None
    completed: bool = False


@dataclass
class _RateLimit:
    times: int
    retry_after: int


@dataclass
class FakeSlack:
    """Slack's Web API for tests: `with FakeSlack() as slack:` serves it on a free port.

    `channels` maps names to ids (`general` and `nps-alerts` exist); the bot is a member of
    each unless listed in `not_member`. `rate_limit(method)` makes the next calls answer 429.
    """

    token: str = "xoxb-fake-token-for-tests"  # noqa: S105 - the fake's own token
    channels: dict[str, str] = field(
        default_factory=lambda: {"general": "C0GENERAL01", "nps-alerts": "C0NPSALERT1"}
    )
    not_member: set[str] = field(default_factory=set)
    calls: list[SlackCall] = field(default_factory=list)
    messages: list[SlackMessage] = field(default_factory=list)
    files: dict[str, SlackFile] = field(default_factory=dict)
    api_url: str = ""
    _limits: dict[str, _RateLimit] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _server: _Server | None = None
    _thread: threading.Thread | None = None

    # -- test controls -------------------------------------------------------------------

    def rate_limit(self, method: str, times: int = 1, retry_after: int = 1) -> None:
        """Answer the next `times` calls of `method` with 429 and `Retry-After: retry_after`."""
        self._limits[method] = _RateLimit(times, retry_after)

    def add_channel(self, name: str, *, member: bool = True) -> str:
        """Add a channel and return its id."""
        channel_id = f"C{next(self._ids):010d}"
        self.channels[name] = channel_id
        if not member:
            self.not_member.add(channel_id)
        return channel_id

    def env(self) -> dict[str, str]:
        """Settings that point `libnar.slack` at this fake."""
        return {"LIBNAR_SLACK_API_URL": self.api_url, "LIBNAR_SLACK_TOKEN": self.token}

    def methods_called(self) -> list[str]:
        """The methods called so far, in order (`upload` for a POST to an upload URL)."""
        return [call.method for call in self.calls]

    # -- serving -------------------------------------------------------------------------

    def __enter__(self) -> Self:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.slack = self
        self.api_url = f"http://127.0.0.1:{self._server.server_address[1]}/api"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(10)

    # -- answers -------------------------------------------------------------------------

    def _ts(self) -> str:
        return f"{time.time():.0f}.{next(self._ids):06d}"

    def _channel_id(self, given: str | None) -> str | None:
        if not given:
            return None
        name = given.removeprefix("#")
        if name in self.channels:
            return self.channels[name]
        return given if given in self.channels.values() else None

    def handle(
        self, method: str, arguments: dict[str, Any], authorization: str | None, form_only: bool
    ) -> tuple[int, dict[str, str], dict[str, Any]]:
        """The status, headers and JSON answer of one Web API call."""
        with self._lock:
            limit = self._limits.get(method)
            if limit and limit.times > 0:
                limit.times -= 1
                return 429, {"Retry-After": str(limit.retry_after)}, _error("ratelimited")
            if not authorization:
                return 200, {}, _error("not_authed")
            if authorization != f"Bearer {self.token}":
                return 200, {}, _error("invalid_auth")
            if form_only:
                return 200, {}, _error("invalid_form_data")
            answer = getattr(self, "_" + method.replace(".", "_"), None)
            if answer is None:
                return 200, {}, _error("unknown_method")
            return 200, {}, answer(arguments)

    def _chat_postMessage(self, arguments: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel_id(arguments.get("channel"))
        if channel is None:
            return _error("channel_not_found")
        if channel in self.not_member:
            return _error("not_in_channel")
        text, blocks = arguments.get("text"), arguments.get("blocks")
        if isinstance(blocks, str):
            try:
                blocks = json.loads(blocks)
            except ValueError:
                return _error("invalid_blocks_format")
        if blocks is not None and (
            not isinstance(blocks, list)
            or len(blocks) > _MAX_BLOCKS
            or not all(isinstance(b, dict) and "type" in b for b in blocks)
        ):
            return _error("invalid_blocks")
        if not text and not blocks:
            return _error("no_text")
        if text and len(text) > _MAX_TEXT:
            return _error("msg_too_long")
        thread_ts = arguments.get("thread_ts")
        if thread_ts and not any(m.ts == thread_ts for m in self.messages):
            return _error("thread_not_found")
        ts = self._ts()
        self.messages.append(SlackMessage(channel, ts, text, blocks, thread_ts))
        message = {"type": "message", "subtype": "bot_message", "text": text or "", "ts": ts}
        if blocks:
            message["blocks"] = blocks
        return {"ok": True, "channel": channel, "ts": ts, "message": message}

    def _files_getUploadURLExternal(self, arguments: dict[str, Any]) -> dict[str, Any]:
        filename, length = arguments.get("filename"), arguments.get("length")
        if not filename or length is None or not str(length).isdigit():
            return _error("invalid_arguments")
        file_id = f"F{next(self._ids):010d}"
        self.files[file_id] = SlackFile(file_id, filename, int(length))
        origin = self.api_url.removesuffix("/api")
        return {"ok": True, "upload_url": f"{origin}/upload/v1/{file_id}", "file_id": file_id}

    def _files_completeUploadExternal(self, arguments: dict[str, Any]) -> dict[str, Any]:
        try:
            listed = json.loads(arguments.get("files") or "")
        except ValueError:
            return _error("invalid_arguments")
        if not isinstance(listed, list) or not listed:
            return _error("invalid_arguments")
        channel = arguments.get("channel_id")
        if channel is not None and channel not in self.channels.values():
            return _error("channel_not_found")
        if channel in self.not_member:
            return _error("not_in_channel")
        found = []
        for entry in listed:
            file = self.files.get(entry.get("id", "")) if isinstance(entry, dict) else None
            if file is None or file.content is None:
                return _error("file_not_found")
            found.append((file, entry.get("title")))
        shared = []
        for file, title in found:
            file.title, file.channel, file.completed = title or file.filename, channel, True
            file.thread_ts = arguments.get("thread_ts")
            file.initial_comment = arguments.get("initial_comment")
            shared.append({"id": file.id, "title": file.title})
        return {"ok": True, "files": shared}

    def upload(self, file_id: str, content: bytes) -> tuple[int, str]:
        """A POST of a file's bytes to its upload URL: `OK - <length>` as Slack answers."""
        with self._lock:
            file = self.files.get(file_id)
            if file is None:
                return 404, "Not Found"
            file.content = content
            return 200, f"OK - {len(content)}"


def _error(code: str) -> dict[str, Any]:
    return {"ok": False, "error": code}


# Methods Slack documents as taking application/x-www-form-urlencoded only.
_FORM_ONLY = {"files.getUploadURLExternal"}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    slack: FakeSlack


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    @property
    def slack(self) -> FakeSlack:
        return self.server.slack

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path = urlsplit(self.path).path
        content_type = self.headers.get("Content-Type", "")
        if path.startswith("/upload/v1/"):
            self.slack.calls.append(
                SlackCall(
                    "upload", {"bytes": len(body)}, content_type, self.headers.get("Authorization")
                )
            )
            status, text = self.slack.upload(path.rsplit("/", 1)[-1], body)
            self._send(status, {"Content-Type": "text/plain"}, text.encode())
            return
        if not path.startswith("/api/"):
            self._send(404, {}, b"Not Found")
            return
        method = path.removeprefix("/api/")
        arguments: dict[str, Any] = dict(parse_qsl(urlsplit(self.path).query))
        is_json = content_type.startswith("application/json")
        if is_json:
            try:
                arguments |= json.loads(body or b"{}")
            except ValueError:
                self._answer(200, {}, _error("invalid_json"))
                return
        else:
            arguments |= dict(parse_qsl(body.decode("utf-8", "replace")))
        self.slack.calls.append(
            SlackCall(method, arguments, content_type, self.headers.get("Authorization"))
        )
        status, headers, answer = self.slack.handle(
            method,
            arguments,
            self.headers.get("Authorization"),
            form_only=is_json and method in _FORM_ONLY,
        )
        if is_json and "charset" not in content_type and answer.get("ok"):
            answer["warning"] = "missing_charset"
            answer["response_metadata"] = {"warnings": ["missing_charset"]}
        self._answer(status, headers, answer)

    def _answer(self, status: int, headers: dict[str, str], answer: dict[str, Any]) -> None:
        body = json.dumps(answer).encode()
        self._send(status, {**headers, "Content-Type": "application/json; charset=utf-8"}, body)

    def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Log nothing: the fake records every call (`FakeSlack.calls`)."""
