"""Signed webhooks by the Standard Webhooks specification (issue 11 item 4): a receiver verifies a delivery
with the `standardwebhooks` library's own `Webhook.verify`; sheetbot's `verify_signature` never raises on
malformed input; an empty secret is a config error."""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import responses
from harness import ENV, WORKFLOWS, Shop, at, sent
from standardwebhooks import Webhook, WebhookVerificationError

from sheetbot.config.watching import NotifyConfig
from sheetbot.errors import ConfigError
from sheetbot.notify.base import Message
from sheetbot.notify.factory import build_fanout
from sheetbot.notify.webhook import WebhookNotifier, verify_signature
from sheetbot.safety.signing import receiver_secret, signature_headers

URL = "https://example.test/sheetbot"
HOOK = "https://hooks.shop.test/publish"
PLAIN = "s3cret-for-tests"
WHSEC = "whsec_" + base64.b64encode(b"\x00\x01random-key-bytes\xff").decode()
MESSAGE = Message(kind="alert", title="Provider down", text="openai answers 503", facts={"night": "2026-11-23"})


def no_sleep(seconds: float) -> None:
    return None


@pytest.mark.parametrize("secret", [PLAIN, WHSEC])
@responses.activate
def test_a_notification_verifies_with_the_standardwebhooks_library(secret: str) -> None:
    responses.post(URL, status=204)
    assert WebhookNotifier(URL, secret, wall=time.time, sleep=no_sleep).send(MESSAGE)
    body, headers = sent(responses.calls[0].request)
    assert headers["webhook-signature"].startswith("v1,")
    payload = Webhook(receiver_secret(secret)).verify(body, headers)  # the receiver's library, as is
    assert payload["title"] == "Provider down"
    assert headers["Idempotency-Key"] == headers["webhook-id"]
    with pytest.raises(WebhookVerificationError):
        Webhook(receiver_secret("another secret")).verify(body, headers)
    if secret == WHSEC:
        Webhook(WHSEC).verify(body, headers)  # a whsec_ secret is handed to receivers unchanged


@responses.activate
def test_an_on_approve_delivery_is_signed_with_its_idempotency_key_as_webhook_id(tmp_path: Path) -> None:
    listing = {**WORKFLOWS["listing"], "on_approve": {"webhook": HOOK, "secret_env": "PUBLISH_SECRET"}}
    shop = Shop(tmp_path, workflows={"listing": listing}, env={**ENV, "PUBLISH_SECRET": PLAIN})
    responses.post(HOOK, status=200)
    shop.add(type="listing", input="Trail tent", brand="Kestrel")
    shop.lock()
    shop.clock.set(at("2026-11-24T01:00"))
    shop.run()
    shop.clock.set(at("2026-11-24T09:00"))
    tent = shop.row(input="Trail tent")["id"]
    shop.set(tent, review="approve")
    shop.harvest()

    body, headers = sent(responses.calls[0].request)
    sent_at = int(at("2026-11-24T09:00").timestamp())
    assert headers["webhook-id"] == headers["Idempotency-Key"] == f"{tent}:1"
    assert json.loads(body)["idempotency_key"] == f"{tent}:1"
    assert headers["webhook-timestamp"] == str(sent_at)
    receiver = Webhook(receiver_secret(PLAIN))
    moment = datetime.fromtimestamp(sent_at, UTC)  # the library replaces any tzinfo with UTC: give it UTC
    assert headers["webhook-signature"] == receiver.sign(f"{tent}:1", moment, body.decode())
    assert verify_signature(PLAIN, body, headers, now_s=sent_at + 30)
    assert not verify_signature(PLAIN, body, headers, now_s=sent_at + 3600)  # replayed later


def test_signature_headers_follow_the_standard() -> None:
    headers = signature_headers(PLAIN, '{"a":1}', msg_id="r1:1", timestamp=int(time.time()))
    assert set(headers) == {"webhook-id", "webhook-timestamp", "webhook-signature"}
    assert Webhook(receiver_secret(PLAIN)).verify('{"a":1}', headers) == {"a": 1}


def good(now: int) -> dict[str, str]:
    return signature_headers(PLAIN, "{}", msg_id="r1:1", timestamp=now)


@pytest.mark.parametrize(
    "change",
    [
        {"webhook-signature": "v1,ñññ"},  # non-ASCII (a TypeError before)
        {"webhook-signature": "sha256=ñ"},
        {"webhook-signature": "v1,not base64!"},
        {"webhook-signature": "v1"},
        {"webhook-signature": ""},
        {"webhook-timestamp": ""},
        {"webhook-timestamp": "ñ"},
        {"webhook-timestamp": "1e99"},
        {"webhook-timestamp": "9" * 400},
        {"webhook-timestamp": "-5"},
        {"webhook-id": ""},
        {"webhook-id": "other:1"},
    ],
)
def test_verify_signature_answers_false_for_malformed_headers(change: dict[str, str]) -> None:
    now = 1_764_000_000
    assert verify_signature(PLAIN, "{}", good(now), now_s=now)
    assert verify_signature(PLAIN, "{}", {**good(now), **change}, now_s=now) is False


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_verify_signature_answers_false_for_a_missing_header(missing: str) -> None:
    headers = {k: v for k, v in good(1_764_000_000).items() if k != missing}
    assert verify_signature(PLAIN, "{}", headers, now_s=1_764_000_000) is False


def test_verify_signature_answers_false_for_a_body_that_is_not_text() -> None:
    assert verify_signature(PLAIN, b"\xff\xfe", good(1_764_000_000), now_s=1_764_000_000) is False


@pytest.mark.parametrize("secret", ["", "   ", "whsec_", "whsec_ not base64 !"])
def test_an_empty_or_unreadable_secret_is_a_config_error(secret: str) -> None:
    with pytest.raises(ConfigError):
        verify_signature(secret, "{}", good(1_764_000_000), now_s=1_764_000_000)
    with pytest.raises(ConfigError):
        WebhookNotifier(URL, secret)


def test_the_factory_names_the_variable_of_an_unreadable_secret() -> None:
    cfg = NotifyConfig(webhook_url=URL, webhook_secret_env="HOOK_SECRET")
    fanout, problems = build_fanout(cfg, {"HOOK_SECRET": "whsec_%%%"}, warn=False)
    assert fanout.channels == []
    (problem,) = problems
    assert problem.startswith("notify.webhook_secret_env:") and "HOOK_SECRET" in problem and "%%%" not in problem


@pytest.mark.parametrize(("value", "says"), [(None, "is not set"), ("  ", "is not set"), ("whsec_%%", "not base64")])
def test_check_names_an_on_approve_secret_that_cannot_sign(tmp_path: Path, value: str | None, says: str) -> None:
    from test_config import BASE, check, write

    yaml_text = BASE + "    on_approve: {webhook: https://hooks.shop.test/p, secret_env: PUBLISH_SECRET}\n"
    path = write(tmp_path, yaml_text)
    env = {"ANTHROPIC_API_KEY": "sk-ant-test", **({"PUBLISH_SECRET": value} if value is not None else {})}
    lines = [line for line in check(path, env=env) if line.startswith("workflows")]
    assert len(lines) == 1 and lines[0].startswith("workflows.blog.on_approve.secret_env")
    assert "PUBLISH_SECRET" in lines[0] and says in lines[0] and "%%" not in lines[0]
