"""Notifications: Slack blocks, the signed webhook, e-mail over a local SMTP server, retries, the factory."""

from __future__ import annotations

import json
import socketserver
import threading
from collections.abc import Iterator
from email import message_from_bytes
from typing import ClassVar

import pytest
import responses
from harness import sent

from sheetbot.config.watching import NotifyConfig
from sheetbot.notify.base import Message
from sheetbot.notify.email import EmailNotifier
from sheetbot.notify.factory import build_fanout
from sheetbot.notify.slack import SlackNotifier
from sheetbot.notify.webhook import WebhookNotifier, verify_signature

SUMMARY = Message(
    kind="morning_summary",
    title="sheetbot morning summary, night 2026-11-23",
    text="sheetbot — night 2026-11-23\n• listing: 3/3 done",
    facts={"night": "2026-11-23"},
    sections=[("Workflows", ["listing: 3 new, 3 done"]), ("What broke", ["nothing"])],
)
HOOK = "https://hooks.slack.test/services/T/B/x"


def no_sleep(seconds: float) -> None:
    return None


@responses.activate
def test_slack_gets_blocks_from_the_sections() -> None:
    responses.post(HOOK, status=200)
    assert SlackNotifier(HOOK, sleep=no_sleep).send(SUMMARY)
    body = json.loads(sent(responses.calls[0].request)[0])
    assert body["text"] == SUMMARY.title
    assert body["blocks"][0] == {"type": "header", "text": {"type": "plain_text", "text": SUMMARY.title}}
    assert body["blocks"][1]["text"]["text"] == "*Workflows*\nlisting: 3 new, 3 done"
    assert len(body["blocks"]) == 3


@responses.activate
def test_a_failing_channel_is_retried_then_given_up_without_raising(caplog: pytest.LogCaptureFixture) -> None:
    responses.post(HOOK, status=500)
    naps: list[float] = []
    assert SlackNotifier(HOOK, tries=3, sleep=naps.append).send(SUMMARY) is False
    assert len(responses.calls) == 3 and len(naps) == 2
    assert "failed after 3 tries" in caplog.text


@responses.activate
def test_a_retry_that_succeeds_delivers() -> None:
    responses.post(HOOK, status=503)
    responses.post(HOOK, status=200)
    assert SlackNotifier(HOOK, sleep=no_sleep).send(SUMMARY)
    assert len(responses.calls) == 2


@responses.activate
def test_webhook_is_signed_and_the_receiver_can_verify_it() -> None:
    url = "https://example.test/sheetbot"
    responses.post(url, status=204)
    assert WebhookNotifier(url, "s3cret", wall=lambda: 1_764_000_000.5, sleep=no_sleep).send(SUMMARY)
    raw, headers = sent(responses.calls[0].request)
    body = raw.decode()
    assert headers["webhook-timestamp"] == "1764000000" and headers["webhook-signature"].startswith("v1,")
    assert verify_signature("s3cret", body, headers, now_s=1_764_000_030)
    assert not verify_signature("wrong", body, headers, now_s=1_764_000_030)
    assert not verify_signature("s3cret", body + " ", headers, now_s=1_764_000_030)
    assert not verify_signature("s3cret", body, headers, now_s=1_764_000_000 + 3600)  # replayed
    payload = json.loads(body)
    assert payload["kind"] == "morning_summary" and payload["facts"] == {"night": "2026-11-23"}
    assert payload["sections"][0] == {"heading": "Workflows", "lines": ["listing: 3 new, 3 done"]}


class _SMTP(socketserver.StreamRequestHandler):
    """Just enough SMTP for one message (no TLS): what a relay on 127.0.0.1 would take."""

    received: ClassVar[list[dict[str, object]]] = []

    def reply(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")

    def handle(self) -> None:
        self.reply("220 test ESMTP")
        mail: dict[str, object] = {}
        recipients: list[str] = []
        mail["to"] = recipients
        while line := self.rfile.readline():
            verb = line.decode().strip()
            upper = verb.upper()
            if upper.startswith("EHLO"):
                self.reply("250-test\r\n250 AUTH PLAIN")
            elif upper.startswith("AUTH PLAIN"):
                mail["auth"] = verb.split()[-1]
                self.reply("235 ok")
            elif upper.startswith("MAIL FROM"):
                mail["from"] = verb
                self.reply("250 ok")
            elif upper.startswith("RCPT TO"):
                recipients.append(verb)
                self.reply("250 ok")
            elif upper == "DATA":
                self.reply("354 go on")
                data = b""
                while (chunk := self.rfile.readline()) != b".\r\n":
                    data += chunk
                mail["data"] = data
                self.received.append(mail)
                self.reply("250 queued")
            elif upper == "QUIT":
                self.reply("221 bye")
                return
            else:
                self.reply("250 ok")


@pytest.fixture
def smtp() -> Iterator[tuple[int, list[dict[str, object]]]]:
    _SMTP.received = []
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _SMTP)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield server.server_address[1], _SMTP.received
    server.shutdown()
    server.server_close()


def test_email_goes_through_smtp_as_plain_text(smtp: tuple[int, list[dict[str, object]]]) -> None:
    port, received = smtp
    cfg = NotifyConfig(
        smtp_host="127.0.0.1",
        smtp_port=port,
        smtp_starttls=False,
        smtp_user_env="SMTP_USER",
        smtp_password_env="SMTP_PASSWORD",
        email_from="sheetbot@example.test",
        email_to=["team@example.test"],
    )
    fanout, problems = build_fanout(cfg, {"SMTP_USER": "bot", "SMTP_PASSWORD": "pw"}, sleep=no_sleep)
    assert problems == []
    assert fanout.send(SUMMARY)
    (mail,) = received
    assert mail["auth"] and "team@example.test" in str(mail["to"])
    data = mail["data"]
    assert isinstance(data, bytes)
    parsed = message_from_bytes(data)
    assert parsed["Subject"] == SUMMARY.title
    payload = parsed.get_payload(decode=True)
    assert isinstance(payload, bytes)
    body = payload.decode().replace("\r\n", "\n")
    assert "listing: 3/3 done" in body and "Workflows\n  listing: 3 new, 3 done" in body


def test_starttls_is_on_by_default_and_a_refusing_server_only_logs(smtp: tuple[int, list[dict[str, object]]]) -> None:
    port, received = smtp
    notifier = EmailNotifier(
        host="127.0.0.1", port=port, sender="a@example.test", to=["b@example.test"], tries=2, sleep=no_sleep
    )
    assert notifier.starttls
    assert notifier.send(SUMMARY) is False  # our test server cannot do TLS: the message is not sent in clear
    assert received == []


def test_factory_builds_each_configured_channel_from_env() -> None:
    cfg = NotifyConfig(
        slack_webhook_env="SLACK_WEBHOOK_URL",
        webhook_url="https://example.test/hook",
        webhook_secret_env="HOOK_SECRET",
        email_to=["team@example.test"],
    )
    fanout, problems = build_fanout(cfg, {"SLACK_WEBHOOK_URL": HOOK})
    assert [c.name for c, _ in fanout.channels] == ["slack"]
    assert any("HOOK_SECRET is not set" in p for p in problems)
    assert any("notify.smtp_host" in p for p in problems)
