"""send_message against a loopback fake of Slack's Web API: messages, blocks, the upload of
files, rate limits retried as Slack asks, and Slack's error codes."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from libnar.secrets import clear_secret_cache
from libnar.slack import (
    SlackConfigError,
    SlackError,
    SlackFile,
    SlackRateLimitError,
    send_message,
)
from libnar.storage import write_json
from libnar.testing import FakeSlack

BLOCKS = [
    {"type": "header", "text": {"type": "plain_text", "text": "fun69 done"}},
    {"type": "section", "text": {"type": "mrkdwn", "text": "*1,200* tasks post-processed"}},
]


def test_a_text_message_returns_its_timestamp(fake_slack: FakeSlack) -> None:
    ts = send_message("#nps-alerts", text="fun69: done [project] <b>")
    (message,) = fake_slack.messages
    assert (message.channel, message.ts, message.text) == (
        "C0NPSALERT1",
        ts,
        "fun69: done [project] <b>",
    )
    (call,) = fake_slack.calls
    assert call.authorization == f"Bearer {fake_slack.token}"
    assert call.content_type == "application/json; charset=utf-8"


def test_blocks_with_a_notification_text(fake_slack: FakeSlack) -> None:
    send_message("C0GENERAL01", text="fun69 done", blocks=BLOCKS)
    (message,) = fake_slack.messages
    assert message.blocks == BLOCKS
    assert message.text == "fun69 done"


def test_a_reply_in_a_thread(fake_slack: FakeSlack) -> None:
    first = send_message("general", text="started")
    send_message("general", text="finished", thread_ts=first)
    assert fake_slack.messages[1].thread_ts == first


def test_files_are_uploaded_and_posted_in_the_messages_thread(
    fake_slack: FakeSlack, tmp_path: Path
) -> None:
    (tmp_path / "report.csv").write_text("task,boxes\na,3\n")
    write_json("memory://libnar-slack/summary.json", {"tasks": 2})
    ts = send_message(
        "#general",
        text="fun69 report",
        files=[
            tmp_path / "report.csv",
            "memory://libnar-slack/summary.json",
            SlackFile("counts.txt", b"3 boxes", title="Counts"),
        ],
    )
    assert fake_slack.methods_called() == [
        "chat.postMessage",
        *["files.getUploadURLExternal", "upload"] * 3,
        "files.completeUploadExternal",
    ]
    files = sorted(fake_slack.files.values(), key=lambda f: f.id)
    assert [(f.filename, f.title, f.content) for f in files] == [
        ("report.csv", "report.csv", b"task,boxes\na,3\n"),
        ("summary.json", "summary.json", b'{"tasks":2}'),
        ("counts.txt", "Counts", b"3 boxes"),
    ]
    assert all(f.completed and f.channel == "C0GENERAL01" and f.thread_ts == ts for f in files)
    uploads = [call for call in fake_slack.calls if call.method == "upload"]
    assert all(call.authorization is None for call in uploads), "no token to the upload URL"


def test_a_missing_file_fails_before_anything_is_posted(
    fake_slack: FakeSlack, tmp_path: Path
) -> None:
    with pytest.raises(FileNotFoundError):
        send_message("#general", text="report", files=[tmp_path / "absent.csv"])
    assert fake_slack.calls == []


def test_a_rate_limited_call_is_retried_after_the_wait_slack_asks(fake_slack: FakeSlack) -> None:
    fake_slack.rate_limit("chat.postMessage", times=2, retry_after=1)
    fake_slack.rate_limit("files.getUploadURLExternal", times=1, retry_after=1)
    ts = send_message("#general", text="hello", files=[SlackFile("a.txt", b"a")])
    assert len(fake_slack.messages) == 1
    assert fake_slack.messages[0].ts == ts
    posts = [call.at for call in fake_slack.calls if call.method == "chat.postMessage"]
    assert len(posts) == 3
    assert posts[1] - posts[0] >= 0.95, "waited Retry-After"
    assert posts[2] - posts[1] >= 0.95, "waited Retry-After"


def test_rate_limited_past_the_retries_raises(
    fake_slack: FakeSlack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LIBNAR_SLACK_MAX_RETRIES", "1")
    fake_slack.rate_limit("chat.postMessage", times=5, retry_after=1)
    with pytest.raises(SlackRateLimitError, match=r"chat\.postMessage: ratelimited") as caught:
        send_message("#general", text="hello")
    assert caught.value.code == "ratelimited"
    assert fake_slack.methods_called() == ["chat.postMessage"] * 2


def test_a_wait_longer_than_allowed_raises_at_once(
    fake_slack: FakeSlack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LIBNAR_SLACK_MAX_RETRY_AFTER", "5")
    fake_slack.rate_limit("chat.postMessage", times=1, retry_after=30)
    with pytest.raises(SlackRateLimitError, match="Retry-After 30 s"):
        send_message("#general", text="hello")
    assert fake_slack.methods_called() == ["chat.postMessage"]


@pytest.mark.parametrize(
    ("channel", "code", "hint"),
    [
        ("#nowhere", "channel_not_found", "check the channel's name or id"),
        ("#private", "not_in_channel", "invite the Slack app to the channel"),
    ],
)
def test_slack_refusals_raise_with_slacks_code_and_a_fix(
    fake_slack: FakeSlack, channel: str, code: str, hint: str
) -> None:
    fake_slack.add_channel("private", member=False)
    with pytest.raises(SlackError, match=rf"Slack chat.postMessage: {code}; {hint}") as caught:
        send_message(channel, text="hello")
    assert caught.value.code == code


def test_a_wrong_token_is_invalid_auth_and_never_shown(fake_slack: FakeSlack) -> None:
    with pytest.raises(SlackError, match="invalid_auth") as caught:
        send_message("#general", text="hello", token="xoxb-wrong-token")
    assert "xoxb" not in str(caught.value)


def test_the_token_from_a_secret(fake_slack: FakeSlack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LIBNAR_SLACK_TOKEN")
    monkeypatch.setenv("LIBNAR_SECRET_SOURCES", "env")
    monkeypatch.setenv("LIBNAR_SLACK_TOKEN_SECRET", "nps-slack-bot")
    monkeypatch.setenv("LIBNAR_SECRET_NPS_SLACK_BOT", fake_slack.token)
    clear_secret_cache()
    send_message("#general", text="hello")
    assert fake_slack.messages


def test_no_token_anywhere_says_how_to_give_one(
    fake_slack: FakeSlack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LIBNAR_SLACK_TOKEN")
    monkeypatch.setenv("LIBNAR_SECRET_SOURCES", "env")
    clear_secret_cache()
    with pytest.raises(SlackConfigError, match="set LIBNAR_SLACK_TOKEN, pass token=, or store"):
        send_message("#general", text="hello")
    assert fake_slack.calls == []


def test_a_message_needs_text_or_blocks() -> None:
    with pytest.raises(ValueError, match="needs text= or blocks="):
        send_message("#general", files=[SlackFile("a.txt", b"a")])


@pytest.mark.parametrize(
    ("blocks", "code"),
    [([{"text": "no type"}], "invalid_blocks"), ([{"type": "divider"}] * 51, "invalid_blocks")],
)
def test_the_fake_refuses_blocks_as_slack_does(
    fake_slack: FakeSlack, blocks: list[dict[str, str]], code: str
) -> None:
    with pytest.raises(SlackError, match=code):
        send_message("#general", blocks=blocks)


def test_the_fake_takes_form_fields_only_where_slack_does(fake_slack: FakeSlack) -> None:
    """files.getUploadURLExternal is documented as form-encoded only."""
    headers = {"Authorization": f"Bearer {fake_slack.token}"}
    url = f"{fake_slack.api_url}/files.getUploadURLExternal"
    as_json = httpx.post(url, json={"filename": "a.txt", "length": 1}, headers=headers).json()
    as_form = httpx.post(url, data={"filename": "a.txt", "length": 1}, headers=headers).json()
    assert as_json == {"ok": False, "error": "invalid_form_data"}
    assert as_form["ok"]
    assert as_form["upload_url"].startswith(fake_slack.api_url.removesuffix("/api"))
    limited = httpx.post(f"{fake_slack.api_url}/chat.postMessage", headers=headers)
    assert limited.status_code == 200
    assert limited.json()["error"] == "channel_not_found"
    fake_slack.rate_limit("chat.postMessage", retry_after=7)
    limited = httpx.post(f"{fake_slack.api_url}/chat.postMessage", headers=headers)
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "7"
    assert limited.json() == {"ok": False, "error": "ratelimited"}
