"""`/metrics` on serve's health port: a real night on the local board, scraped over loopback and parsed
with prometheus_client's own parser; the figures must be the night's, and carry no row id, text or secret."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from harness import ENV, Shop, at
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.parser import text_string_to_metric_families

from sheetbot.morning.metrics import night_metrics
from sheetbot.service.health import Health
from sheetbot.service.http_app import start_http_server
from sheetbot.service.prometheus import metrics_registry
from sheetbot.state import Attempt
from sheetbot.status import Status

#: Text only a row holds: it must never reach a scrape.
ROW_TEXT = "Zephyrine tent with hidden seams"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@contextmanager
def serving(shop: Shop, *, request_deadline_s: float = 10.0) -> Iterator[int]:
    """serve's health server on a free loopback port, with the shop's /metrics, as `serve` wires it."""
    registry = metrics_registry(shop.config)
    server = start_http_server(Health(), port=0, metrics=registry, request_deadline_s=request_deadline_s)
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def scrape(port: int, accept: str | None = None) -> tuple[str, str]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics")
    if accept is not None:
        request.add_header("Accept", accept)
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 200
        return response.headers["Content-Type"], response.read().decode()


def samples(text: str) -> Samples:
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(got: Samples, name: str, **labels: str) -> float:
    return got[(name, frozenset(labels.items()))]


def total(got: Samples, name: str, **labels: str) -> float:
    """The sum over every series of ``name`` whose labels include ``labels``."""
    return sum(v for (n, ls), v in got.items() if n == name and set(labels.items()) <= ls)


def a_night(shop: Shop) -> None:
    """Four listing rows (one gets a permanent 400) and one blog row, locked, run and one of them reviewed."""
    for n in range(3):
        shop.add(type="listing", input=f"Tent number {n}", brand="Kestrel")
    shop.add(type="listing", input=ROW_TEXT, brand="Kestrel")
    shop.add(type="blog", input="Winter camping", brand="Kestrel")
    shop.lock()
    shop.fake.fail_next(400, body=f"the model refused: {ROW_TEXT}")
    shop.clock.set(at("2026-11-24T01:00"))
    shop.run()
    shop.clock.set(at("2026-11-24T09:00"))
    first = next(r for r in shop.rows() if r["status"] == "review")
    shop.set(first["id"], review="approve")
    shop.harvest()


def test_metrics_after_a_night_are_the_nights_figures(tmp_path: Path) -> None:
    shop = Shop(tmp_path, concurrency=1)
    a_night(shop)
    board = shop.rows()
    with serving(shop) as port:
        content_type, text = scrape(port)
    got = samples(text)
    assert content_type == CONTENT_TYPE_PLAIN_0_0_4  # the text format, as prometheus_client names it

    # rows by workflow and status: the board's own statuses, and every status of every workflow is a series
    on_board = Counter((r["type"], r["status"]) for r in board)
    assert (
        sum(n for (_, status), n in on_board.items() if status == "failed") == 1
        and on_board[("listing", "approved")] == 1
    )
    for workflow in ("listing", "blog"):
        for status in ("queued", "locked", "running", "review", "approved", "edited", "failed", "published"):
            assert value(got, "sheetbot_rows", workflow=workflow, status=status) == on_board[(workflow, status)]

    # calls: one per row on its workflow's provider and model, the row that got the 400 an error
    where = {"listing": ("openai", "gpt-4.1-mini"), "blog": ("anthropic", "claude-sonnet-4-6")}
    expected = Counter((*where[r["type"]], "error" if r["status"] == "failed" else "ok") for r in board)
    for (provider, model, outcome), n in expected.items():
        assert (
            value(got, "sheetbot_model_calls_total", provider=provider, model=model, mode="live", outcome=outcome) == n
        )
    assert total(got, "sheetbot_model_calls_total") == 5 == sum(expected.values())

    # cost: the board's cost cells, ever and for the night (to the micro-dollar: these calls cost fractions of a cent)
    for workflow in ("listing", "blog"):
        shown = sum(float(r["cost"] or 0) for r in board if r["type"] == workflow)
        assert value(got, "sheetbot_cost_usd_total", workflow=workflow) == pytest.approx(shown, abs=1e-6)
        assert value(got, "sheetbot_last_night_cost_usd", workflow=workflow) == pytest.approx(shown, abs=1e-6)
    assert total(got, "sheetbot_cost_usd_total") > 0

    # the night: every row locked, the failed one not done; completion as `report` computes it
    with shop.state() as state:
        report = {m.workflow: m for m in night_metrics(state, nights=1)}
    for workflow in ("listing", "blog"):
        rows = [r for r in board if r["type"] == workflow]
        failed = sum(r["status"] == "failed" for r in rows)
        night_rows = [value(got, "sheetbot_last_night_rows", workflow=workflow, outcome=o)
                      for o in ("locked", "done", "failed", "deferred")]  # fmt: skip
        assert night_rows == [len(rows), len(rows) - failed, failed, 0]
        completion = value(got, "sheetbot_last_night_completion_ratio", workflow=workflow)
        assert (
            completion == pytest.approx((len(rows) - failed) / len(rows), abs=1e-4) == report[workflow].completion_rate
        )
    assert value(got, "sheetbot_last_night_drained") == 1
    assert value(got, "sheetbot_last_night_finished_timestamp_seconds") == pytest.approx(
        at("2026-11-24T01:00").timestamp(), abs=60
    )

    # providers: no 429, no breaker opened, both closed, no batch open
    for provider in ("openai", "anthropic"):
        assert value(got, "sheetbot_rate_limited_total", provider=provider) == 0
        assert value(got, "sheetbot_circuit_breaker_opened_total", provider=provider) == 0
        assert value(got, "sheetbot_circuit_breaker_state", provider=provider, state="closed") == 1
        assert value(got, "sheetbot_circuit_breaker_state", provider=provider, state="open") == 0
        assert value(got, "sheetbot_open_batches", provider=provider) == 0
    assert all(name.startswith("sheetbot_") for name, _ in got)


def test_metrics_carry_no_row_id_text_nor_secret(tmp_path: Path) -> None:
    shop = Shop(tmp_path, concurrency=1)
    a_night(shop)
    with serving(shop) as port:
        _, text = scrape(port)
        _, openmetrics = scrape(port, accept="application/openmetrics-text; version=1.0.0")
    with shop.state() as state:
        errors = [t.error for t in state.tasks().values() if t.error]
    assert errors, "the failed row should carry an error the scrape must not repeat"
    for body in (text, openmetrics):
        for secret in ENV.values():
            assert secret not in body
        for row in shop.rows():
            assert str(row["id"]) not in body
            assert str(row["input"]) not in body
        assert ROW_TEXT not in body and "refused" not in body and "2026-11-23" not in body
    assert openmetrics.rstrip().endswith("# EOF")  # the library negotiated OpenMetrics when asked for it


def test_429s_and_the_breaker_are_counted_across_restarts(tmp_path: Path) -> None:
    """429s come from the audit, not from memory: a second server (a restarted serve) counts the same."""
    shop = Shop(tmp_path, concurrency=1, providers={"openai": {"max_retries": 2, "breaker_failures": 1}})
    shop.add(type="listing", input="Tent number 1", brand="Kestrel")
    shop.add(type="listing", input="Tent number 2", brand="Kestrel")
    shop.lock()
    shop.fake.fail_next(429, times=2, headers={"retry-after": "1"})
    shop.fake.fail_next(503, times=3)  # breaker_failures 1: the first 503 opens it
    shop.clock.set(at("2026-11-24T01:00"))
    shop.run()
    for _restart in range(2):
        with serving(shop) as port:
            got = samples(scrape(port)[1])
        assert value(got, "sheetbot_rate_limited_total", provider="openai") == 2
        assert value(got, "sheetbot_rate_limited_total", provider="anthropic") == 0
        assert value(got, "sheetbot_circuit_breaker_opened_total", provider="openai") >= 1
        states = {s: value(got, "sheetbot_circuit_breaker_state", provider="openai", state=s)
                  for s in ("closed", "open", "half_open")}  # fmt: skip
        assert sum(states.values()) == 1
    with shop.state() as state:
        last = [e.event for e in state.audit_entries() if e.event.startswith("circuit")][-1]
    assert states[{"circuit_open": "open", "circuit_half_open": "half_open", "circuit_closed": "closed"}[last]] == 1


def test_metrics_share_the_health_servers_bounds_and_routes(tmp_path: Path) -> None:
    shop = Shop(tmp_path)
    with serving(shop, request_deadline_s=1.0) as port:
        _, text = scrape(port)  # an empty state: every series at zero, nothing fails
        with socket.create_connection(("127.0.0.1", port)) as stalled:  # a request that never ends
            stalled.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
            stalled.settimeout(3.0)
            assert stalled.recv(1024) == b""  # dropped after the read timeout, the thread freed
        assert value(samples(text), "sheetbot_rows", workflow="listing", status="queued") == 0
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/metricsx", timeout=5)
        assert missing.value.code == 404
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
            assert response.status == 200
    server = start_http_server(Health(), port=0)  # without a registry /metrics is not served
    try:
        with pytest.raises(urllib.error.HTTPError) as absent:
            urllib.request.urlopen(f"http://127.0.0.1:{server.server_address[1]}/metrics", timeout=5)
        assert absent.value.code == 404
    finally:
        server.shutdown()
        server.server_close()


def test_a_state_that_cannot_be_read_is_a_500_without_details(tmp_path: Path) -> None:
    shop = Shop(tmp_path)
    shop.config_path.parent.joinpath("sheetbot.db").mkdir()  # a folder where the state file should be
    with serving(shop) as port, pytest.raises(urllib.error.HTTPError) as failed:
        scrape(port)
    assert failed.value.code == 500
    body = failed.value.read().decode()
    assert body == "# the metrics failed inside sheetbot: see its log\n" and str(tmp_path) not in body


def test_labels_are_the_yamls_names_whatever_the_state_holds(tmp_path: Path) -> None:
    """A workflow, provider or model the YAML no longer names is counted under (other), a row that never had
    a workflow under (none): the label values stay the YAML's few names, never a row's text."""
    shop = Shop(tmp_path)
    now = at("2026-11-23T17:00")
    with shop.state() as state:
        state.add_task("t-new", now=now)
        state.add_task("t-gone", now=now)
        state.move("t-gone", Status.LOCKED, now=now, workflow="retired_workflow", night="2026-11-23")
        call = Attempt(task_id="t-gone", night="2026-11-23", attempt=1, step="final", workflow="retired_workflow",
                       provider="old_vendor", model="old-model-9", mode="live", system="", prompt="", ok=True,
                       output="x", cost_usd=0.25)  # fmt: skip
        state.record_attempt(call, now=now)
    with serving(shop) as port:
        got = samples(scrape(port)[1])
    assert value(got, "sheetbot_rows", workflow="(none)", status="queued") == 1
    assert value(got, "sheetbot_rows", workflow="(other)", status="locked") == 1
    assert value(got, "sheetbot_model_calls_total", provider="(other)", model="(other)", mode="live", outcome="ok") == 1
    assert value(got, "sheetbot_cost_usd_total", workflow="(other)") == 0.25
    labels = {v for (_, ls) in got for _, v in ls}
    assert not labels & {"retired_workflow", "old_vendor", "old-model-9", "t-new", "t-gone"}
