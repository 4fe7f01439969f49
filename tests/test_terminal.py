"""The terminal: `report` on a 100-column screen, progress on the long phases (issue 13, item 8)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, tzinfo
from io import StringIO
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from harness import Shop, at
from rich.console import Console

from sheetbot.cli import commands
from sheetbot.cli.console import fitted
from sheetbot.cli.main import main
from sheetbot.morning.metrics import NightMetrics
from sheetbot.morning.summary import metrics_table, trend_table
from sheetbot.night.harvest import harvest
from sheetbot.night.lock import lock
from sheetbot.notify.base import Delivery, Fanout, MemoryNotifier, Message, Notifier
from sheetbot.service.logs import setup_logging
from sheetbot.service.serve import Server

INPUTS = {
    "listing": ["Tent 2P, 1.9 kg", "Down jacket 700 fp", "Merino tee 150 g"],
    "blog": ["Layering for winter hikes", "How to pitch a tent in wind"],
}


@pytest.fixture
def night(tmp_path: Path) -> Shop:
    """A night with two workflows, reviewed: approvals, an edit, a rework, one left waiting."""
    shop = Shop(tmp_path)
    for workflow, texts in INPUTS.items():
        for text in texts:
            shop.add(type=workflow, input=text, brand="Kestrel")
    shop.lock()
    shop.clock.set(at("2026-11-24T01:00"))
    shop.run()
    shop.clock.set(at("2026-11-24T09:00"))
    ids = {text: shop.row(input=text)["id"] for texts in INPUTS.values() for text in texts}
    shop.set(ids["Tent 2P, 1.9 kg"], review="approve")
    shop.set(ids["Down jacket 700 fp"], review="edit", edited_output="My own jacket copy")
    shop.set(ids["Layering for winter hikes"], review="rework", notes="shorter")
    shop.set(ids["How to pitch a tent in wind"], review="approve")
    shop.harvest()
    return shop


def report_at(width: int, shop: Shop, monkeypatch: pytest.MonkeyPatch) -> str:
    screen = StringIO()
    monkeypatch.setattr(commands, "out", Console(width=width, file=screen, highlight=False, soft_wrap=True))
    assert main(["report", "--config", str(shop.config_path)]) == 0
    return screen.getvalue()


def test_the_report_fits_a_100_column_terminal_with_every_figure(night: Shop, monkeypatch: pytest.MonkeyPatch) -> None:
    text = report_at(100, night, monkeypatch)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 100, text
    assert not any("…" in line for line in lines), f"a cell was cut short:\n{text}"
    for header in ("night", "workflow", "lock", "done", "appr%", "compl%", "cost", "live", "$/out", "p95s"):
        assert any(f" {header} " in f" {line} " for line in lines), f"{header} missing:\n{text}"
    rows = [line.split() for line in lines if line.strip().startswith("2026-11-23")]
    listing = [r for r in rows if r[1] == "listing"]
    blog = [r for r in rows if r[1] == "blog"]
    assert listing[0][2:10] == ["3", "3", "0", "0", "1", "1", "0", "50%"]  # lock done fail defer appr edit rwk appr%
    assert blog[0][2:10] == ["2", "2", "0", "0", "1", "0", "1", "50%"]
    assert all(r[3].startswith("$") for r in listing[1:] + blog[1:])  # the second part: compl% then cost
    print(text)


def test_piped_the_report_keeps_one_full_table(night: Shop, monkeypatch: pytest.MonkeyPatch) -> None:
    text = report_at(160, night, monkeypatch)
    assert "(1/2)" not in text
    header = next(line for line in text.splitlines() if " workflow " in line)
    assert header.split() == [
        "night",
        "workflow",
        "lock",
        "done",
        "fail",
        "defer",
        "appr",
        "edit",
        "rwk",
        "appr%",
        "compl%",
        "cost",
        "live",
        "$/out",
        "p50s",
        "p95s",
    ]


def test_report_json_is_the_metrics_as_before(
    night: Shop, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from sheetbot.morning.metrics import night_metrics

    capsys.readouterr()
    assert main(["report", "--config", str(night.config_path), "--json"]) == 0
    with night.state() as state:
        expected = json.dumps(
            [m.as_dict() for m in night_metrics(state, nights=7, prices=night.config.prices)], indent=2
        )
    # Every key as before; the one new key, `self_check` (issue 13 item 4), is the only addition.
    entries = json.loads(capsys.readouterr().out)
    assert all(set(e) - set(json.loads(expected)[0]) == {"self_check"} for e in entries)
    assert json.dumps([{k: v for k, v in e.items() if k != "self_check"} for e in entries], indent=2) == expected


def metrics(night: str, workflow: str, seed: int) -> NightMetrics:
    return NightMetrics(
        night=night,
        workflow=workflow,
        locked=2000 + seed,
        done=1990,
        failed=10,
        deferred=123,
        approved=1500,
        edited=300,
        rework=190,
        waiting=12,
        cost_usd=123.4567,
        estimated_usd=0.0,
        approval_rate=0.7538,
        completion_rate=0.995,
        cost_per_output_usd=0.0621,
        p95_latency_s=123.4,
        edit_rate=0.15,
        rework_rate=0.1,
        p50_latency_s=12.3,
        live_usd=246.9134,
    )


def test_a_week_of_ten_workflows_with_big_figures_fits_too() -> None:
    workflows = ["product_page_update", "ai_search_visibility", "returns_reason", "review_sentiment", "blog_draft"]
    nights = [f"2026-11-{day}" for day in range(17, 24)]
    week = [metrics(n, w, i) for i, n in enumerate(nights) for w in workflows]
    console = Console(width=100, file=StringIO(), highlight=False)
    for table in (metrics_table(week), trend_table(week)):
        for part in fitted(table, console):
            console.print(part)
    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert max(len(line) for line in text.splitlines()) <= 100, text
    assert "…" not in text, text
    assert text.count("$123.4567") == len(week) and text.count("$246.9134") == len(week)
    for night in nights:
        assert night[5:] in text  # every night of the trend is there, in one part or another


# -- progress --------------------------------------------------------------------------------------------
def test_lock_and_harvest_report_progress_to_the_end(tmp_path: Path) -> None:
    shop = Shop(tmp_path)
    for i in range(5):
        shop.add(type="listing", input=f"Tent {i}", brand="Kestrel")
    calls: list[tuple[int, int, str]] = []
    with shop.context() as ctx:
        ctx.progress = lambda done, total, what: calls.append((done, total, what))
        lock(ctx)
    assert calls[0] == (0, 0, "reading the board")  # the bar shows something before the first slow read
    assert (5, 5, "writing the board") in calls
    assert calls[-1][:2] == (5, 5)
    assert [done for done, total, _ in calls if total == 5] == sorted(done for done, total, _ in calls if total == 5)

    shop.clock.set(at("2026-11-24T01:00"))
    shop.run()
    shop.clock.set(at("2026-11-24T09:00"))
    shop.set(shop.row(input="Tent 0")["id"], review="approve")
    calls.clear()
    with shop.context() as ctx:
        ctx.progress = lambda done, total, what: calls.append((done, total, what))
        harvest(ctx)
    assert calls[0] == (0, 0, "reading the board")
    assert calls[-1][:2] == (5, 5)
    assert {what for _, _, what in calls} >= {"reading the decisions", "writing the board"}


# -- log times -------------------------------------------------------------------------------------------
def logged_at(moment: datetime, fmt: str, tz: tzinfo | None = None) -> str:
    stream = StringIO()
    handler = setup_logging(fmt=fmt, env={}, stream=stream, tz=tz)
    try:
        record = logging.makeLogRecord(
            {"name": "sheetbot.service.serve", "levelno": logging.INFO, "levelname": "INFO", "msg": "lock done"}
        )
        record.created = moment.timestamp()
        handler.handle(record)
    finally:
        logging.getLogger("sheetbot").removeHandler(handler)
    return stream.getvalue()


def test_text_log_times_carry_their_offset() -> None:
    winter = datetime(2026, 11, 23, 0, 0, tzinfo=UTC)
    summer = datetime(2026, 7, 1, 0, 0, tzinfo=UTC)
    berlin = ZoneInfo("Europe/Berlin")
    assert logged_at(winter, "text", berlin).startswith("2026-11-23T01:00:00.000+01:00 INFO    sheetbot.service.serve")
    assert logged_at(summer, "text", berlin).startswith("2026-07-01T02:00:00.000+02:00 ")
    assert json.loads(logged_at(winter, "json"))["time"] == "2026-11-23T00:00:00.000+00:00"


@pytest.mark.skipif(not hasattr(time, "tzset"), reason="TZ is read at start-up only where time.tzset exists")
def test_text_log_times_default_to_the_hosts_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        line = logged_at(datetime(2026, 11, 23, 6, 0, tzinfo=UTC), "text")
    finally:
        monkeypatch.undo()
        time.tzset()
    assert line.startswith("2026-11-23T01:00:00.000-05:00 ")


# -- "summary … sent" ------------------------------------------------------------------------------------
def summary_said(tmp_path: Path, notifier: Notifier | Fanout, caplog: pytest.LogCaptureFixture) -> str:
    shop = Shop(tmp_path / "shop")
    shop.clock.set(at("2026-11-23T09:30"))
    shop.add(type="listing", input="Mug", brand="Acme")
    server = Server(
        config=shop.config,
        open_context=shop.context,
        clock=shop.clock,
        sleep=lambda s: shop.clock.advance(seconds=s),
        notifier=notifier,
        max_sleep_s=86_400,
    )
    caplog.set_level(logging.INFO, logger="sheetbot")
    server.loop(until=at("2026-11-24T09:10"))
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("summary: ")]
    assert said, "the summary was due at 09:00"
    return said[0]


def test_summary_is_said_sent_only_when_a_channel_got_it(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    got = MemoryNotifier("slack")
    said = summary_said(tmp_path / "a", Fanout([(got, None), (MemoryNotifier("email", fail=True), None)]), caplog)
    assert said.startswith("summary: summary of night 2026-11-23 sent to slack (not to email: tried again later)")
    caplog.clear()
    said = summary_said(tmp_path / "b", Fanout([(MemoryNotifier("slack", fail=True), None)]), caplog)
    assert said.startswith("summary: summary of night 2026-11-23 NOT sent: slack failed")
    assert " sent to " not in said and " sent;" not in said
    caplog.clear()
    said = summary_said(tmp_path / "c", Fanout(), caplog)  # no notify: in the YAML
    assert said.startswith("summary: summary of night 2026-11-23 not sent: no notify channel is configured")
    caplog.clear()
    said = summary_said(tmp_path / "d", MemoryNotifier("webhook", fail=True), caplog)
    assert "NOT sent: webhook failed" in said


def test_fanout_delivery_names_the_channels() -> None:
    message = Message(kind="morning_summary", title="t", text="x", facts={"night": "2026-11-23"})
    ok, bad = MemoryNotifier("slack"), MemoryNotifier("email", fail=True)
    assert Fanout([(ok, None), (bad, None)]).deliver(message) == Delivery(reached=("slack",), failed=("email",))
    assert Fanout().deliver(message) == Delivery() and Fanout().send(message)  # nothing to retry
    assert not Fanout([(bad, None)]).send(message)


# -- `| head` --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("command", [["audit"], ["report"], ["report", "--json"]])
def test_a_reader_that_leaves_early_gets_no_traceback(night: Shop, command: list[str]) -> None:
    """As `sheetbot audit | head -0`: the reader closes its end before sheetbot writes a byte."""
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    argv = [sys.executable, "-m", "sheetbot", *command, "--config", str(night.config_path)]
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env) as process:
        assert process.stdout is not None and process.stderr is not None
        process.stdout.close()
        errors = process.stderr.read().decode()
        code = process.wait(timeout=60)
    assert errors == "" and code == 141, (code, errors)


def test_a_reader_that_reads_a_line_then_leaves(night: Shop) -> None:
    """As `sheetbot audit | head -1` on an audit log longer than the pipe holds."""
    with night.state() as state, state.transaction():
        for n in range(3000):
            state.audit("decision", now=night.clock.now(), task_id=f"t{n}", detail={"decision": "approve" * 5})
    argv = [sys.executable, "-m", "sheetbot", "audit", "--config", str(night.config_path)]
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as process:
        assert process.stdout is not None and process.stderr is not None
        assert process.stdout.readline().startswith(b"{")
        process.stdout.close()
        errors = process.stderr.read().decode()
        code = process.wait(timeout=60)
    assert errors == "" and code == 141, (code, errors)


def test_init_lock_and_harvest_commands_drive_a_progress_bar(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The commands hand the bar to the phases (a bar nobody updates is the 8-9 s of silence again)."""
    seen: dict[str, list[tuple[int, int, str]]] = {}

    @contextmanager
    def recording(label: str) -> Iterator[Callable[[int, int, str], None]]:
        calls = seen.setdefault(label, [])
        yield lambda done, total, what: calls.append((done, total, what))

    monkeypatch.setattr(commands, "progress_bar", recording)
    shop = Shop(tmp_path)
    for i in range(3):
        shop.add(type="listing", input=f"Tent {i}", brand="Kestrel")
    config = ["--config", str(shop.config_path)]
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-openai")
    assert main(["init", *config]) == 0
    assert main(["lock", *config]) == 0
    assert main(["harvest", *config]) == 0
    for label in ("init", "lock", "harvest"):
        done, total, _ = seen[label][-1]
        assert total and done == total, (label, seen[label])
