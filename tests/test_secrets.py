"""Secrets never leave their environment variable (issue 11 items 1 and 2).

Every exit is tried with the secret in it: log lines of failed deliveries (Slack, webhook), JSON logs
of every command, the board's `error` cell, the state, the morning summary, `/healthz`, notifications
and audit exports. The secrets come in the forms a server or a library hands them back: whole, in a
URL's path or query, JSON-escaped, repr-escaped, URL-encoded, cut off.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import responses
from harness import ENV, Shop, at, shop_config
from stored import rows_in_state

from sheetbot.cli.main import main
from sheetbot.config.load import load_config
from sheetbot.config.watching import NotifyConfig
from sheetbot.errors import ConfigError
from sheetbot.morning.audit import audit_rows, export
from sheetbot.morning.messages import morning_message
from sheetbot.notify.base import Fanout, MemoryNotifier, Message
from sheetbot.notify.factory import build_fanout
from sheetbot.notify.webhook import WebhookNotifier
from sheetbot.safety import secrets
from sheetbot.service.health import Health
from sheetbot.service.logs import setup_logging
from sheetbot.service.wiring import open_context

#: A Slack incoming webhook: its path is the credential.
HOOK = "https://hooks.slack.test/services/T0AAAAAAA/B0BBBBBBB/XyZw1234secretPart5678"
#: A key that does not look like `sk-…`, so only the scrubber's knowledge of it can hide it.
KEY = "tok_4f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c"


@pytest.fixture(autouse=True)
def fresh_secrets() -> Iterator[None]:
    secrets.forget_all()
    yield
    secrets.forget_all()


def no_sleep(seconds: float) -> None:
    return None


def summary(text: str = "night done") -> Message:
    return Message(kind="morning_summary", title="sheetbot morning summary", text=text)


# -- item 1: failed deliveries never log the URL ------------------------------------------------


@responses.activate
def test_a_failed_slack_delivery_logs_the_host_not_the_webhook_url(caplog: pytest.LogCaptureFixture) -> None:
    responses.post(HOOK, status=500)
    fanout, problems = build_fanout(NotifyConfig(slack_webhook_env="TEAM_CHAT"), {"TEAM_CHAT": HOOK}, sleep=no_sleep)
    assert not problems
    assert fanout.send(summary()) is False
    assert "failed after 3 tries" in caplog.text and "hooks.slack.test" in caplog.text
    assert "XyZw1234" not in caplog.text and "T0AAAAAAA" not in caplog.text


@responses.activate
def test_a_failed_webhook_with_a_token_in_its_query_never_logs_the_token(caplog: pytest.LogCaptureFixture) -> None:
    url = "https://hooks.test/in?token=q9Tokenvalue77&team=ops"
    responses.post(url, status=502)
    assert WebhookNotifier(url, "whsec-signing-secret", tries=2, sleep=no_sleep).send(summary()) is False
    assert "failed after 2 tries" in caplog.text and "hooks.test" in caplog.text
    assert "q9Tokenvalue77" not in caplog.text


def test_every_variable_the_yaml_names_is_masked_in_logs_whatever_its_name(tmp_path: Path) -> None:
    path = shop_config(tmp_path, notify={"slack_webhook_env": "TEAM_CHAT", "smtp_user_env": "MAIL_LOGIN"})
    env = {**ENV, "TEAM_CHAT": HOOK, "MAIL_LOGIN": "night-robot-login"}
    stream = io.StringIO()
    handler = setup_logging(fmt="json", env=env, stream=stream)
    try:
        with open_context(path, env=env):
            logging.getLogger("sheetbot.notify").warning("posting to %s as %s", HOOK, "night-robot-login")
    finally:
        logging.getLogger("sheetbot").removeHandler(handler)
    line = json.loads(stream.getvalue().splitlines()[-1])
    assert "XyZw1234" not in line["message"] and "night-robot-login" not in line["message"]


def test_json_logs_work_on_every_command_not_only_serve(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = shop_config(tmp_path)
    assert main(["lock", "--config", str(path), "--log-format", "json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert any(line["message"] == "lock finished with exit code 0" for line in lines)
    assert main(["lock", "--config", str(tmp_path / "missing.yaml"), "--log-format", "json"]) == 1
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    assert lines and lines[-1]["level"] == "error" and "missing.yaml" in lines[-1]["message"]


def test_notifications_are_scrubbed() -> None:
    build_fanout(NotifyConfig(slack_webhook_env="TEAM_CHAT"), {"TEAM_CHAT": HOOK}, sleep=no_sleep)  # learns it
    memory = MemoryNotifier()
    Fanout([(memory, None)]).send(summary(f"delivery to {HOOK} failed; proxy said https://p.test/a?token=zz99zz99"))
    assert "XyZw1234" not in memory.sent[0].text and "zz99zz99" not in memory.sent[0].text


def test_healthz_bodies_are_scrubbed() -> None:
    build_fanout(NotifyConfig(slack_webhook_env="TEAM_CHAT"), {"TEAM_CHAT": HOOK}, sleep=no_sleep)
    health = Health()
    health.record("harvest", at=at("2026-11-24T09:00"), ok=False, outcome=f"POST {HOOK} failed")
    assert "XyZw1234" not in json.dumps(health.snapshot()[1])


def test_audit_exports_are_scrubbed(tmp_path: Path) -> None:
    shop = Shop(tmp_path)
    with shop.state() as state:
        state.audit(
            "note", now=at("2026-11-24T09:00"), detail={"error": "GET https://u:pw-secret-1@x.test/?key=abcd1234"}
        )
        rows = audit_rows(state, since=at("2026-11-01T00:00"))
    export(rows, tmp_path / "audit.csv")
    written = (tmp_path / "audit.csv").read_text(encoding="utf-8")
    assert "pw-secret-1" not in written and "abcd1234" not in written and "x.test" in written


# -- item 2: a key's escaped, cut or padded forms, and keys that cannot be right ----------------------


@pytest.mark.parametrize(
    "form",
    [
        KEY,
        json.dumps(KEY + "\n")[1:-1],  # JSON-escaped, with the pasted line break
        repr(KEY + "\n"),  # repr, quotes and all
        "Bearer%20" + KEY.replace("_", "%5F"),  # URL-encoded
        f'"{KEY}"',  # quoted
        KEY[:20] + "…",  # cut by a server or by shorten()
        KEY[:12] + "...",
        KEY[:10],  # cut at the end of the text
    ],
)
def test_masking_catches_escaped_quoted_and_cut_forms(form: str) -> None:
    secrets.learn([KEY + "\n"])
    assert KEY[:8] not in secrets.scrub(f"Incorrect API key provided: {form} (see docs)")


def test_masking_leaves_other_values_that_merely_share_a_beginning() -> None:
    secrets.learn([KEY])
    other = "tok_4f9a8b7cZZZZ and tok_4f9"  # another token, and a cut shorter than 8: not the secret
    assert secrets.scrub(other) == other


def test_url_credentials_are_masked_and_http_library_urls_cut_to_the_host() -> None:
    assert secrets.scrub("https://bob:hunter22@db.test/x?token=abc123&page=2") == (
        "https://***@db.test/x?token=***&page=***"
    )
    error = RuntimeError(f"500 Server Error: Internal Server Error for url: {HOOK}")
    assert secrets.describe_error(error) == (
        "RuntimeError: 500 Server Error: Internal Server Error for url: https://hooks.slack.test/…"
    )


def test_a_key_with_a_line_break_is_refused_naming_the_variable_and_never_reaches_a_cell(tmp_path: Path) -> None:
    shop = Shop(tmp_path, env={**ENV, "OPENAI_API_KEY": KEY + "\n"})
    shop.add(type="listing", input="row one", brand="Kestrel")
    shop.lock()
    shop.clock.set(at("2026-11-24T01:00"))
    shop.run()
    assert shop.fake.requests == []  # the key was never sent
    row = shop.rows()[0]
    assert "OPENAI_API_KEY" in row["error"] and "line break" in row["error"]
    stored = json.dumps([dict(r) for r in rows_in_state(shop, "SELECT * FROM tasks")])
    with shop.state() as state:
        morning = morning_message(state, "2026-11-23", board="queue.xlsx")
    for text in (row["error"], stored, morning.text, json.dumps(morning.sections)):
        assert KEY[:8] not in text


def test_a_provider_401_echoing_a_cut_or_escaped_key_leaves_no_trace_in_the_cell_or_state(tmp_path: Path) -> None:
    shop = Shop(tmp_path, env={**ENV, "OPENAI_API_KEY": KEY})
    shop.add(type="listing", input="row one", brand="Kestrel")
    shop.lock()
    shop.clock.set(at("2026-11-24T01:00"))
    echo = f"Incorrect API key provided: {KEY[:20]}… ({json.dumps(KEY)}); see https://proxy.test/auth?token=zz77zz77"
    shop.fake.fail_next(401, body=echo, times=5)
    shop.run()
    row = shop.rows()[0]
    assert "OPENAI_API_KEY" in row["error"]
    stored = json.dumps([dict(r) for r in rows_in_state(shop, "SELECT * FROM tasks")])
    for text in (row["error"], stored):
        assert KEY[:8] not in text and "zz77zz77" not in text


def test_a_notify_secret_with_a_line_break_is_refused_naming_the_variable() -> None:
    fanout, problems = build_fanout(NotifyConfig(slack_webhook_env="TEAM_CHAT"), {"TEAM_CHAT": HOOK + "\r\n"})
    assert fanout.channels == []
    assert len(problems) == 1 and "TEAM_CHAT" in problems[0] and "XyZw1234" not in problems[0]


@pytest.mark.parametrize(
    "extra",
    [
        {"providers": {"openai": {"api_key_env": "OPENAI_API_KEY", "base_url": "https://me:pa55word@llm.test/v1"}}},
        {"notify": {"webhook_url": "https://hooks:pa55word@hooks.test/in", "webhook_secret_env": "HOOK_SECRET"}},
    ],
)
def test_a_url_with_a_login_in_the_yaml_is_a_config_error(tmp_path: Path, extra: dict[str, Any]) -> None:
    path = shop_config(tmp_path, **extra)
    with pytest.raises(ConfigError, match="user:password@") as caught:
        load_config(path)
    assert "pa55word" not in str(caught.value)
