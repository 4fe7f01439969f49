"""What operators see: /healthz, the logs (JSON, masked), the morning summary's content, the CLI wiring."""

from __future__ import annotations

import io
import json
import logging
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from harness import Shop, at

from sheetbot.cli.main import build_parser
from sheetbot.morning.messages import morning_message
from sheetbot.service.health import Health
from sheetbot.service.http_app import start_http_server
from sheetbot.service.logs import setup_logging
from sheetbot.service.scheduler import describe_jobs


def _get(port: int, path: str = "/healthz") -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}") if exc.code == 503 else {}


def test_healthz_is_200_then_503_when_the_last_night_failed() -> None:
    health = Health()
    server = start_http_server(health, port=0)
    port = server.server_address[1]
    try:
        when = datetime(2026, 11, 24, 1, 0, tzinfo=UTC)
        health.record("lock", at=when, ok=True, outcome="locked 4 row(s)")
        code, body = _get(port)
        assert code == 200 and body["status"] == "ok" and body["lock"]["outcome"] == "locked 4 row(s)"
        health.night("2026-11-23", ok=False, outcome="did not finish")
        code, body = _get(port)
        assert code == 503 and body["last_night"] == {"night": "2026-11-23", "ok": False, "outcome": "did not finish"}
        assert _get(port, "/other")[0] == 404
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def logged() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    env = {"OPENAI_API_KEY": "sk-live-abcdef123456", "SMTP_PASSWORD": "hunter2hunter2", "HOME": "/home/x"}
    handler = setup_logging(fmt="json", env=env, stream=stream)
    yield stream
    logging.getLogger("sheetbot").removeHandler(handler)


def test_json_logs_one_object_a_line_with_secrets_and_personal_data_masked(logged: io.StringIO) -> None:
    log = logging.getLogger("sheetbot.service.serve")
    log.info("key %s pw %s", "sk-live-abcdef123456", "hunter2hunter2", extra={"night": "2026-11-23"})
    log.warning("row for ana@example.com, call +49 170 1234567, other sk-proj-ZZZZZZZZZZ and /home/x")
    lines = [json.loads(line) for line in logged.getvalue().splitlines()]
    assert len(lines) == 2
    assert lines[0]["message"] == "key *** pw ***" and lines[0]["night"] == "2026-11-23"
    assert lines[0]["level"] == "info" and lines[0]["logger"] == "sheetbot.service.serve"
    assert lines[1]["message"] == "row for a***@example.com, call [phone], other sk-*** and /home/x"
    assert "2026-11-23" in lines[0]["night"]  # dates are not phone numbers


def test_text_logs_are_readable() -> None:
    stream = io.StringIO()
    handler = setup_logging(fmt="text", env={}, stream=stream)
    try:
        logging.getLogger("sheetbot.service.serve").info("lock: night %s", "2026-11-23")
    finally:
        logging.getLogger("sheetbot").removeHandler(handler)
    assert stream.getvalue().rstrip().endswith("INFO    sheetbot.service.serve: lock: night 2026-11-23")


def test_morning_summary_names_what_broke(tmp_path: Path) -> None:
    shop = Shop(tmp_path / "shop")
    shop.add(type="listing", input="Mug", brand="Acme")
    shop.add(type="blog", input="Coffee")
    shop.lock()
    shop.fake.fail_next(401, times=5)
    shop.clock.set(at("2026-11-24T01:00"))
    shop.run()
    with shop.state() as state:
        message = morning_message(state, "2026-11-23", board="queue.xlsx")
    headings = [h for h, _ in message.sections]
    assert headings == ["Workflows", "Totals", "What broke"]
    assert "review on queue.xlsx" in message.sections[1][1]
    assert any("deferred" in line and "401" in line for line in message.sections[2][1])
    assert message.severity == "warning" and "What broke:" in message.text


def test_schedule_library_sees_the_yaml_times() -> None:
    from sheetbot.config.models import ScheduleConfig

    assert describe_jobs(ScheduleConfig(), "Europe/Berlin")[0] == "lock daily at 17:00:00 Europe/Berlin"


def test_cli_has_serve_with_wait_and_log_format() -> None:
    args = build_parser().parse_args(["serve", "--wait", "--log-format", "json", "--config", "x.yaml"])
    assert (args.command, args.wait, args.log_format) == ("serve", True, "json")


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("(030) 1234-5678", True),
        ("0170 1234567", True),
        ("+1 415 555 0100", True),
        ("cost 12345 tokens", False),
        ("at 2026-11-24T01:00:00+01:00", False),
        ("rows 1-20, took 12.5 s", False),
    ],
)
def test_phone_numbers_are_masked_but_dates_and_counts_are_not(text: str, masked: bool) -> None:
    from sheetbot.service.logs import Masker

    assert ("[phone]" in Masker({})(text)) is masked


def _closed_by_server(sock: socket.socket, *, within_s: float) -> bool:
    """True when the server closed the connection (recv returns b"" or resets) within ``within_s``."""
    sock.settimeout(within_s)
    try:
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                return True
    except TimeoutError:
        return False
    except ConnectionError:
        return True


@pytest.fixture
def bounded() -> Iterator[tuple[Health, int]]:
    health = Health()
    server = start_http_server(health, port=0, limit_concurrency=32, request_deadline_s=1.0)
    try:
        yield health, server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_healthz_drops_a_client_that_sends_nothing(bounded: tuple[Health, int]) -> None:
    _health, port = bounded
    with socket.create_connection(("127.0.0.1", port)) as idle:
        assert _closed_by_server(idle, within_s=3.0)


def test_healthz_drops_a_slowloris_however_it_trickles(bounded: tuple[Health, int]) -> None:
    _health, port = bounded
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X-a: b\r\n" * 50
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port)) as slow:
        closed = False
        for i in range(len(request)):  # one byte every 0.05 s: each read is well within its timeout
            try:
                slow.sendall(request[i : i + 1])
            except OSError:
                closed = True
                break
            if _closed_by_server(slow, within_s=0.05):
                closed = True
                break
        assert closed and time.monotonic() - started < 3.0


def test_healthz_answers_while_idle_clients_wait_and_never_grows_past_its_workers(
    bounded: tuple[Health, int],
) -> None:
    _health, port = bounded
    before = threading.active_count()
    idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(20)]
    try:
        time.sleep(0.05)
        assert threading.active_count() <= before + 2
        assert _get(port)[0] == 200  # served once the idle ones are cut, not stuck behind them
    finally:
        for sock in idle:
            sock.close()


def test_healthz_never_answers_with_exception_text(caplog: pytest.LogCaptureFixture) -> None:
    health = Health()
    health.record("lock", at=datetime(2026, 11, 24, 1, 0, tzinfo=UTC), ok=True, outcome="locked")
    # Deliberately not a str: it cannot be written as JSON, so snapshot's encoding fails.
    health.phases["lock"]["at"] = object()  # type: ignore[typeddict-item]
    server = start_http_server(health, port=0)
    try:
        with pytest.raises(urllib.error.HTTPError) as failed:
            urllib.request.urlopen(f"http://127.0.0.1:{server.server_address[1]}/healthz", timeout=5)
        body = failed.value.read().decode()
    finally:
        server.shutdown()
        server.server_close()
    assert failed.value.code == 500 and "see its log" in body
    assert "object" not in body and "serializable" not in body and "Traceback" not in body
    assert "not JSON serializable" in caplog.text
