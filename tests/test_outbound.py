"""Outbound HTTP obeys no redirect and goes only where the admin meant (issue 11 item 3).

Every sender (on_approve, the notification webhook, Slack) goes through sheetbot/safety/outbound.py: a 3xx is a
failed delivery that says where it pointed; plain http only to loopback; no link-local or metadata host.
"""

from __future__ import annotations

import asyncio
import http.server
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import pytest
import responses
from harness import ENV, WORKFLOWS, Shop, at
from test_config import BASE, check, write

from sheetbot.config.models import ProviderConfig
from sheetbot.config.watching import NotifyConfig
from sheetbot.errors import ConfigError, ProviderError
from sheetbot.notify.base import Message
from sheetbot.notify.factory import build_fanout
from sheetbot.notify.slack import SlackNotifier
from sheetbot.notify.webhook import WebhookNotifier
from sheetbot.providers.base import CompletionRequest
from sheetbot.providers.factory import make_provider
from sheetbot.safety.urls import url_problem

HOOK = "https://hooks.shop.test/publish"
ELSEWHERE = "https://attacker.test/collect"
MESSAGE = Message(kind="alert", title="t", text="x")


def no_sleep(seconds: float) -> None:
    return None


def shop_with_hook(tmp_path: Path, webhook: str = HOOK) -> Shop:
    listing = {**WORKFLOWS["listing"], "on_approve": {"webhook": webhook, "secret_env": "PUBLISH_SECRET"}}
    return Shop(tmp_path, workflows={"listing": listing}, env={**ENV, "PUBLISH_SECRET": "s3cret"})


def approve_one(shop: Shop) -> str:
    shop.add(type="listing", input="Trail tent", brand="Kestrel")
    shop.lock()
    shop.clock.set(at("2026-11-24T01:00"))
    shop.run()
    shop.clock.set(at("2026-11-24T09:00"))
    tent = str(shop.row(input="Trail tent")["id"])
    shop.set(tent, review="approve")
    return tent


def calls_to(url: str) -> list[Any]:
    return [c.request for c in responses.calls if c.request.url == url]


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
@responses.activate
def test_an_on_approve_redirect_is_a_failed_delivery_and_the_row_is_not_published(tmp_path: Path, status: int) -> None:
    shop = shop_with_hook(tmp_path)
    responses.post(HOOK, status=status, headers={"Location": ELSEWHERE})
    responses.get(ELSEWHERE, status=200)
    responses.post(ELSEWHERE, status=200)
    tent = approve_one(shop)
    report = shop.harvest()

    assert calls_to(ELSEWHERE) == [], "the redirect was followed"
    assert len(calls_to(HOOK)) == 1, "a redirect is not retried"
    row = shop.row(id=tent)
    assert row["status"] == "approved"
    assert report.actions is not None and report.actions.published == []
    assert f"answered {status} redirect to attacker.test" in row["error"]
    assert "follows no redirect" in row["error"] and "next harvest" in row["error"]
    with shop.state() as state:
        assert [a["state"] for a in state.actions_undelivered()] == ["pending"]


@pytest.mark.parametrize("status", [302, 307])
@responses.activate
def test_notification_webhook_and_slack_follow_no_redirect(status: int, caplog: pytest.LogCaptureFixture) -> None:
    for url in ("https://hooks.slack.test/services/T/B/x", "https://example.test/hook"):
        responses.post(url, status=status, headers={"Location": ELSEWHERE})
    responses.get(ELSEWHERE, status=200)
    responses.post(ELSEWHERE, status=200)
    assert SlackNotifier("https://hooks.slack.test/services/T/B/x", tries=1, sleep=no_sleep).send(MESSAGE) is False
    assert WebhookNotifier("https://example.test/hook", "s3cret", tries=1, sleep=no_sleep).send(MESSAGE) is False
    assert calls_to(ELSEWHERE) == []
    assert f"answered {status} redirect to attacker.test" in caplog.text


@pytest.mark.parametrize(
    "url",
    [
        "http://hooks.shop.test/publish",  # plain http off loopback
        "http://10.0.0.5/hook",
        "https://169.254.169.254/latest/meta-data/",  # link-local: the cloud's credentials service
        "http://169.254.169.254/",
        "https://[fe80::1]/hook",
        "https://metadata.google.internal/computeMetadata/v1/",
        "https://metadata.google.internal./x",
        "https://2852039166/x",  # 169.254.169.254 spelled as one number
        "https://0xa9.0xfe.0xa9.0xfe/x",
        "https://[::ffff:169.254.169.254]/x",
        "https://100.100.100.200/latest",  # Alibaba's metadata
        "ftp://hooks.shop.test/x",
    ],
)
def test_refused_urls(url: str, tmp_path: Path) -> None:
    assert url_problem(url) is not None
    with pytest.raises(ConfigError, match="on_approve"):  # at load
        shop_with_hook(tmp_path, url)
    with pytest.raises(ValueError, match="webhook_url"):
        NotifyConfig(webhook_url=url, webhook_secret_env="S")


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.shop.test/publish",
        "http://127.0.0.1:8080/hook",
        "http://127.9.9.9/hook",
        "http://localhost:9000/x",
        "http://[::1]:9000/x",
        "https://10.0.0.5/hook",  # a private receiver over TLS is the admin's choice
    ],
)
def test_allowed_urls(url: str) -> None:
    assert url_problem(url) is None


def test_check_names_the_key_of_a_refused_url(tmp_path: Path) -> None:
    yaml_text = BASE + "notify:\n  webhook_url: http://hooks.example.test/x\n  webhook_secret_env: HOOK_SECRET\n"
    path = write(tmp_path, yaml_text)
    lines = [line for line in check(path, env={**ENV, "HOOK_SECRET": "s"}) if line.startswith("notify")]
    assert len(lines) == 1 and "notify.webhook_url" in lines[0] and "https://" in lines[0]


def test_a_slack_url_from_the_environment_is_checked_too(tmp_path: Path) -> None:
    cfg = NotifyConfig(slack_webhook_env="SLACK_WEBHOOK_URL")
    secret_url = "https://169.254.169.254/services/T/B/secret-token"
    fanout, problems = build_fanout(cfg, {"SLACK_WEBHOOK_URL": secret_url}, warn=False)
    assert fanout.channels == []
    (problem,) = problems
    assert problem.startswith("notify.slack_webhook_env:") and "link-local" in problem
    assert "secret-token" not in problem  # the URL is a credential: the host only
    path = write(tmp_path, BASE + "notify:\n  slack_webhook_env: SLACK_WEBHOOK_URL\n")
    lines = [line for line in check(path, env={**ENV, "SLACK_WEBHOOK_URL": "http://hooks.slack.test/x"})]
    assert any(line.startswith("notify.slack_webhook_env") and "https://" in line for line in lines)


@responses.activate
def test_a_refused_url_is_never_called_even_if_it_reaches_a_sender() -> None:
    responses.post("http://hooks.slack.test/x", status=200)
    assert SlackNotifier("http://hooks.slack.test/x", tries=1, sleep=no_sleep).send(MESSAGE) is False
    assert not responses.calls


# -- the model providers' SDK clients (they follow redirects by default) ---------------------------------
class _Recorder(http.server.BaseHTTPRequestHandler):
    """A loopback server: ``redirect_to`` set → answers 307 there; else records the request and says 200."""

    redirect_to: ClassVar[str] = ""
    received: ClassVar[list[dict[str, str]]] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.redirect_to:
            self.send_response(307)
            self.send_header("Location", self.redirect_to + self.path)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.received.append(dict(self.headers))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        return None


@contextmanager
def _serve(handler: type[_Recorder]) -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_a_model_provider_follows_no_redirect_with_the_key(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    target: type[_Recorder] = type("Target", (_Recorder,), {"redirect_to": "", "received": []})
    with _serve(target) as elsewhere:
        source: type[_Recorder] = type("Source", (_Recorder,), {"redirect_to": elsewhere, "received": []})
        with _serve(source) as base:
            config = ProviderConfig(kind=kind, base_url=f"{base}/v1", api_key_env="KEY")  # type: ignore[arg-type]
            provider = make_provider(kind, config, env={"KEY": "sk-secret"}, resilient=False)
            request = CompletionRequest(
                custom_id="t1:1:0", model="m", system="", prompt="hi", max_tokens=8, timeout_s=5.0
            )

            async def go() -> None:
                try:
                    await provider.complete(request)
                finally:
                    await provider.aclose()

            with pytest.raises(ProviderError):
                asyncio.run(go())
    assert target.received == [], "the SDK re-sent the call (and its key) where Location pointed"


def test_a_provider_base_url_obeys_the_same_rule() -> None:
    assert ProviderConfig(base_url="http://127.0.0.1:11434/v1").base_url
    assert ProviderConfig(base_url="https://llm.internal/v1").base_url
    for url in ("http://llm.internal/v1", "https://169.254.169.254/v1", "https://metadata.google.internal/v1"):
        with pytest.raises(ValueError, match="base_url"):
            ProviderConfig(base_url=url)
