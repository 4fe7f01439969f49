"""The Dashboard: refreshed after each harvest, never breaking it; local workbook through the Shop harness."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from fake_airtable import ALL_SCOPES, BASE_ID, ENDPOINT, TOKEN, FakeAirtable, FakeTime
from fake_google import FakeGoogleSheets, Formula
from harness import Shop, at
from openpyxl import load_workbook

from sheetbot.boards import dashboard_google, dashboard_local
from sheetbot.boards.airtable import AirtableBoard
from sheetbot.boards.dashboard_cells import HEADERS
from sheetbot.morning.dashboard import approval_chart, dashboard_rows, refresh_dashboard
from sheetbot.morning.metrics import NightMetrics


@pytest.fixture
def shop(tmp_path: Path) -> Shop:
    return Shop(tmp_path)


def night(shop: Shop, day: str, decisions: dict[str, str]) -> None:
    """Lock and run what is queued on the evening of ``day``, then review each input as told."""
    shop.clock.set(at(f"{day}T17:00"))
    shop.lock()
    morning = (date.fromisoformat(day) + timedelta(days=1)).isoformat()
    shop.clock.set(at(f"{morning}T01:00"))
    shop.run()
    shop.clock.set(at(f"{morning}T09:00"))
    for text, decision in decisions.items():
        row = shop.row(input=text)
        extra = (
            {"edited_output": "mine"} if decision == "edit" else {"notes": "shorter"} if decision == "rework" else {}
        )
        shop.set(row["id"], review=decision, **extra)
    shop.harvest()


def metric(night: str, workflow: str, rate: float | None) -> NightMetrics:
    return NightMetrics(
        night=night, workflow=workflow, locked=2, done=2, failed=0, deferred=0, approved=1, edited=0, rework=1,
        waiting=0, cost_usd=0.02, estimated_usd=0.0, approval_rate=rate, completion_rate=1.0,
        cost_per_output_usd=0.01, p95_latency_s=None,
    )  # fmt: skip


def test_rows_and_chart_from_metrics() -> None:
    metrics = [
        metric("2026-11-23", "blog", 0.5),
        metric("2026-11-23", "listing", 1.0),
        metric("2026-11-22", "blog", 0.25),
    ]
    rows = dashboard_rows(metrics)
    assert list(rows[0]) == list(HEADERS)
    assert rows[0]["approval rate"] == 0.5 and rows[0]["cost per output"] == 0.01
    chart = approval_chart(metrics)
    assert chart.nights == ("2026-11-22", "2026-11-23")  # oldest first, as a trend reads
    assert chart.series == {"blog": (0.25, 0.5), "listing": (None, 1.0)}  # a night without the workflow is a gap
    assert chart.table() == [["night", "blog", "listing"], ["2026-11-22", 0.25, None], ["2026-11-23", 0.5, 1.0]]


def test_the_harvest_draws_the_dashboard_sheet_with_a_chart(shop: Shop) -> None:
    shop.add(type="listing", input="Trail tent", brand="Kestrel")
    shop.add(type="listing", input="Down jacket", brand="Kestrel")
    shop.add(type="blog", input="Rainy pitches")
    night(shop, "2026-11-23", {"Trail tent": "approve", "Down jacket": "edit", "Rainy pitches": "approve"})

    book = load_workbook(shop.book)
    assert book.sheetnames == ["Queue", "Dashboard"]
    ws = book["Dashboard"]
    assert [c.value for c in ws[1]][: len(HEADERS)] == list(HEADERS)
    table = {(r[0], r[1]): r for r in ws.iter_rows(min_row=2, max_col=len(HEADERS), values_only=True) if r[0]}
    assert set(table) == {("2026-11-23", "blog"), ("2026-11-23", "listing")}
    listing = table[("2026-11-23", "listing")]
    assert listing[2:7] == (2, 2, 1, 1, 0)  # locked, done, approved, edited, rework
    assert listing[7] == 0.5 and listing[8] == 1
    assert len(ws._charts) == 1
    # the queue is untouched by the dashboard
    assert {r["status"] for r in shop.rows()} == {"approved", "edited"}


def test_each_refresh_rebuilds_the_sheet_with_one_chart(shop: Shop) -> None:
    shop.add(type="listing", input="Trail tent", brand="Kestrel")
    night(shop, "2026-11-23", {"Trail tent": "approve"})
    shop.add(type="listing", input="Down jacket", brand="Kestrel")
    night(shop, "2026-11-24", {"Down jacket": "rework"})
    shop.harvest()

    ws = load_workbook(shop.book)["Dashboard"]
    assert len(ws._charts) == 1
    chart_data = [r for r in ws.iter_rows(min_col=len(HEADERS) + 2, values_only=True) if any(v is not None for v in r)]
    assert chart_data == [("night", "listing"), ("2026-11-23", 1), ("2026-11-24", 0)]
    nights = [r[0] for r in ws.iter_rows(min_row=2, max_col=1, values_only=True) if r[0]]
    assert nights == ["2026-11-24", "2026-11-23"]


def test_a_dashboard_failure_never_breaks_the_harvest(shop: Shop, monkeypatch: pytest.MonkeyPatch) -> None:
    shop.add(type="listing", input="Trail tent", brand="Kestrel")

    def broken(*args: object, **kwargs: object) -> None:
        raise ValueError("chart engine exploded")

    monkeypatch.setattr(dashboard_local, "draw", broken)
    shop.clock.set(at("2026-11-23T17:00"))
    shop.lock()
    shop.clock.set(at("2026-11-24T01:00"))
    shop.run()
    shop.set(shop.row(input="Trail tent")["id"], review="approve")
    report = shop.harvest()
    assert report.decisions == {"approve": 1}
    assert shop.row(input="Trail tent")["status"] == "approved"
    assert report.dashboard is not None and not report.dashboard.written
    assert "chart engine exploded" in (report.dashboard.problem or "")
    with shop.state() as state:
        assert len(state.audit_entries("dashboard_failed")) == 1


def test_a_board_without_the_capability_is_skipped(shop: Shop) -> None:
    from sheetbot.boards.memory import MemoryBoard

    with shop.context() as ctx:
        ctx.board = MemoryBoard(["id"])
        report = refresh_dashboard(ctx)
    assert report.skipped and not report.written and report.problem is None


# -- Google Sheets and Airtable, through their HTTP fakes -------------------------------------------
def two_nights() -> list[NightMetrics]:
    return [metric("2026-11-23", "blog", 0.5), metric("2026-11-23", "listing", 1.0), metric("2026-11-22", "blog", 0.25)]


def test_google_sheets_dashboard_tab_and_chart(tmp_path: Path) -> None:
    with FakeGoogleSheets(tmp_path, {"Queue": [["id", "type", "input"]]}) as google:
        board = google.board("Queue")
        metrics = two_nights()
        google.counts.clear()
        _, layout = board.redraw_dashboard(dashboard_rows(metrics), approval_chart(metrics), None)
        assert google.api_calls() == {"spreadsheets.batchUpdate": 1}  # a new tab: no look-up first
        tab = google.grid("Dashboard")
        assert tab.get(0, 0) == "night" and tab.get(1, 1) == "blog" and tab.get(1, 7) == 0.5
        assert [tab.get(r, len(HEADERS) + 1) for r in range(3)] == ["night", "2026-11-22", "2026-11-23"]
        assert tab.get(1, len(HEADERS) + 3) in ("", None)  # listing had no 22 November: a gap, not a zero
        (chart,) = tab.charts
        series = chart["spec"]["basicChart"]["series"]
        assert chart["spec"]["basicChart"]["chartType"] == "LINE" and len(series) == 2
        first_id = chart["chartId"]

        # a third night: the chart is updated in place (never a second one), its range follows the nights,
        # and the remembered layout makes it one request
        metrics = [metric("2026-11-24", "blog", 0.75), *metrics]
        google.counts.clear()
        _, layout = board.redraw_dashboard(dashboard_rows(metrics), approval_chart(metrics), layout)
        assert google.api_calls() == {"spreadsheets.batchUpdate": 1}
        (chart,) = google.grid("Dashboard").charts
        assert chart["chartId"] == first_id
        domain = chart["spec"]["basicChart"]["domains"][0]["domain"]["sourceRange"]["sources"][0]
        assert domain["endRowIndex"] == 4
        # a shorter table later clears the rows it no longer has
        board.redraw_dashboard(dashboard_rows(metrics[:1]), approval_chart(metrics[:1]), layout)
        assert google.grid("Dashboard").get(2, 0) in ("", None)
        assert google.grid("Dashboard").get(1, 1) == "blog"
        assert google.grid("Queue").get(0, 0) == "id"


def test_google_dashboard_text_is_data_never_a_formula(tmp_path: Path) -> None:
    with FakeGoogleSheets(tmp_path, {"Queue": [["id", "type", "input"]]}) as google:
        metrics = [metric("2026-11-23", '=HYPERLINK("http://evil.test","x")', 0.5)]
        google.board("Queue").write_dashboard(dashboard_rows(metrics), approval_chart(metrics))
        tab = google.grid("Dashboard")
        assert tab.get(1, 1) == '=HYPERLINK("http://evil.test","x")' and not isinstance(tab.get(1, 1), Formula)
        (update,) = [r for r in google.requests if r.kind == "spreadsheets.batchUpdate"]
        cells = next(q["updateCells"] for q in update.body["requests"] if "updateCells" in q)
        assert cells["rows"][1]["values"][1] == {"userEnteredValue": {"stringValue": metrics[0].workflow}}


def test_a_google_dashboard_number_json_cannot_carry_is_left_blank(tmp_path: Path) -> None:
    with FakeGoogleSheets(tmp_path, {"Queue": [["id", "type", "input"]]}) as google:
        rows = dashboard_rows([metric("2026-11-23", "blog", float("nan"))])
        google.board("Queue").write_dashboard(rows, approval_chart([metric("2026-11-23", "blog", 0.5)]))
        (update,) = [r for r in google.requests if r.kind == "spreadsheets.batchUpdate"]
        assert "NaN" not in json.dumps(update.body) and google.grid("Dashboard").get(1, 1) == "blog"


def _drawn(google: FakeGoogleSheets) -> list[Any]:
    tab = google.grid("Dashboard")
    return [tab.get(r, c) for r in range(4) for c in range(len(HEADERS))]


@pytest.mark.parametrize("change", ["chart deleted", "tab deleted", "tab shrunk", "layout garbled"])
def test_a_google_dashboard_changed_by_hand_is_looked_up_and_drawn_again(tmp_path: Path, change: str) -> None:
    with FakeGoogleSheets(tmp_path, {"Queue": [["id", "type", "input"]]}) as google:
        board = google.board("Queue")
        metrics = two_nights()
        _, layout = board.redraw_dashboard(dashboard_rows(metrics), approval_chart(metrics), None)
        drawn = _drawn(google)
        if change == "chart deleted":
            google.grid("Dashboard").charts.clear()
        elif change == "tab deleted":
            google.grids.remove(google.grid("Dashboard"))
        elif change == "tab shrunk":
            google.grid("Dashboard").row_count = 2
        else:
            layout = layout.replace("sheet_id", "sheet")
        google.counts.clear()
        _, again = board.redraw_dashboard(dashboard_rows(metrics), approval_chart(metrics), layout)
        # the refused request (nothing applied: a garbled layout tries a new tab, which is there), the look-up,
        # the drawing
        assert google.api_calls() == {"spreadsheets.batchUpdate": 2, "spreadsheets.get": 1}
        assert _drawn(google) == drawn and len(google.grid("Dashboard").charts) == 1
        google.counts.clear()
        board.redraw_dashboard(dashboard_rows(metrics), approval_chart(metrics), again)
        assert google.api_calls() == {"spreadsheets.batchUpdate": 1}  # the new layout is right again


def test_a_google_dashboard_outgrowing_its_tab_grows_it_in_the_same_request(tmp_path: Path) -> None:
    with FakeGoogleSheets(tmp_path, {"Queue": [["id", "type", "input"]]}) as google:
        board = google.board("Queue")
        _, layout = board.redraw_dashboard(dashboard_rows(two_nights()), approval_chart(two_nights()), None)
        many = [metric(f"2026-11-{n:02}", f"wf{w:02}", 0.5) for n in range(1, 31) for w in range(15)]
        google.counts.clear()
        board.redraw_dashboard(dashboard_rows(many), approval_chart(many), layout)
        assert google.api_calls() == {"spreadsheets.batchUpdate": 1}
        tab = google.grid("Dashboard")
        assert tab.row_count == len(many) + 1 and tab.get(len(many), 1) == "wf14"


def test_a_google_dashboard_drawn_before_is_found_and_kept(tmp_path: Path) -> None:
    """No layout (an older sheetbot drew it, or a fresh state): the tab is looked up, never drawn twice."""
    with FakeGoogleSheets(tmp_path, {"Queue": [["id", "type", "input"]]}) as google:
        board = google.board("Queue")
        metrics = two_nights()
        board.write_dashboard(dashboard_rows(metrics), approval_chart(metrics))
        (chart,) = google.grid("Dashboard").charts
        google.counts.clear()
        _, layout = board.redraw_dashboard(dashboard_rows(metrics[:1]), approval_chart(metrics[:1]), None)
        assert google.api_calls() == {"spreadsheets.batchUpdate": 2, "spreadsheets.get": 1}
        assert [g.title for g in google.grids].count("Dashboard") == 1
        (kept,) = google.grid("Dashboard").charts
        assert kept["chartId"] == chart["chartId"] and google.grid("Dashboard").get(2, 0) in ("", None)
        assert kept["spec"]["basicChart"]["domains"][0]["domain"]["sourceRange"]["sources"][0]["endRowIndex"] == 2
        assert dashboard_google.Layout.loads(layout) == dashboard_google.Layout(
            sheet_id=google.grid("Dashboard").sheet_id, chart_id=chart["chartId"], rows=400, cols=26
        )


def test_a_google_dashboard_whose_new_id_is_taken_gets_another(tmp_path: Path) -> None:
    with FakeGoogleSheets(tmp_path, {"Queue": [["id", "type", "input"]]}) as google:
        google.grid("Queue").sheet_id = dashboard_google.NEW_SHEET_ID
        metrics = two_nights()
        google.board("Queue").write_dashboard(dashboard_rows(metrics), approval_chart(metrics))
        assert google.grid("Dashboard").sheet_id == dashboard_google.NEW_SHEET_ID + 1
        assert google.grid("Dashboard").get(1, 1) == "blog" and google.grid("Queue").get(0, 0) == "id"


def test_the_morning_keeps_the_google_layout_in_the_state(tmp_path: Path) -> None:
    """Across processes: the state remembers where the tab is, so each morning's redraw is one request."""
    from boards_under_test import PREVIEW, Night

    with FakeGoogleSheets(tmp_path, {"Queue": [["id", "type", "priority", "input", "brand"]]}) as google:
        google.person("Queue").add(type="listing", input="Trail tent", brand="Kestrel")
        night = Night(tmp_path, google.board("Queue"), workflows=PREVIEW)
        night.lock()
        night.clock.set(at("2026-11-24T01:00"))
        night.run()
        google.counts.clear()
        with night.context() as ctx:
            assert refresh_dashboard(ctx, force=True).written
        assert google.api_calls() == {"spreadsheets.batchUpdate": 1}
        with Night(tmp_path, google.board("Queue"), workflows=PREVIEW).context() as ctx:  # the next process
            assert refresh_dashboard(ctx, force=True).written
        assert google.api_calls() == {"spreadsheets.batchUpdate": 2}
        assert len(google.grid("Dashboard").charts) == 1


def airtable_board(time: FakeTime) -> AirtableBoard:
    return AirtableBoard(
        base=BASE_ID, table="Queue", env={"AIRTABLE_TOKEN": TOKEN}, endpoint_url=ENDPOINT,
        monotonic=time.monotonic, sleep=time.sleep,
    )  # fmt: skip


def test_airtable_metrics_table_is_created_and_upserted() -> None:
    time = FakeTime()
    with FakeAirtable(time=time) as fake:
        board = airtable_board(time)
        metrics = two_nights()
        assert board.write_dashboard(dashboard_rows(metrics), approval_chart(metrics)) == []
        table = next(t for t in fake.bases[fake.base_id][1] if t.name == "Metrics")
        records = {r["fields"]["key"]: r["fields"] for r in table.records.values()}
        assert set(records) == {"2026-11-23 blog", "2026-11-23 listing", "2026-11-22 blog"}
        assert records["2026-11-23 blog"]["approval rate"] == 0.5

        changed = [metric("2026-11-23", "blog", 0.9), metric("2026-11-24", "blog", 1.0)]
        board.write_dashboard(dashboard_rows(changed), approval_chart(changed))
        records = {r["fields"]["key"]: r["fields"] for r in table.records.values()}
        assert len(records) == 4 and len(table.records) == 4  # upserted, not duplicated
        assert records["2026-11-23 blog"]["approval rate"] == 0.9


def test_airtable_without_the_table_and_the_scope_skips_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    time = FakeTime()
    with FakeAirtable(time=time, scopes=ALL_SCOPES - {"schema.bases:write"}) as fake:
        board = airtable_board(time)
        notes = board.write_dashboard(dashboard_rows(two_nights()), approval_chart(two_nights()))
        assert len(notes) == 1 and "no Metrics table" in notes[0] and "schema.bases:write" in notes[0]
        assert "no Metrics table" in caplog.text
        assert [t.name for t in fake.bases[fake.base_id][1]] == ["Queue"]


def test_an_unchanged_dashboard_is_not_redrawn(shop: Shop) -> None:
    shop.add(type="listing", input="Trail tent", brand="Kestrel")
    night(shop, "2026-11-23", {"Trail tent": "approve"})
    saved = shop.book.stat().st_mtime_ns
    report = shop.harvest()  # the next half-hourly harvest: nothing changed
    assert report.dashboard is not None and report.dashboard.skipped and not report.dashboard.written
    assert shop.book.stat().st_mtime_ns == saved
    with shop.context() as ctx:
        assert refresh_dashboard(ctx, force=True).written


def test_init_draws_the_dashboard(shop: Shop, monkeypatch: pytest.MonkeyPatch) -> None:
    import sheetbot.service.wiring as app
    from sheetbot.cli.main import main

    monkeypatch.setattr(app, "open_context", lambda config_path, **kwargs: shop.context())
    assert main(["init", "--config", str(shop.config_path)]) == 0
    ws = load_workbook(shop.book)["Dashboard"]
    assert [c.value for c in ws[1]][: len(HEADERS)] == list(HEADERS)


def test_the_summary_lines() -> None:
    from sheetbot.morning.dashboard import DashboardReport, describe_dashboard
    from sheetbot.morning.on_approve import ActionsReport, describe_actions

    actions = ActionsReport(published=["t1", "t2"], pending=[("t3", "HTTP 503 from hooks.test")])
    assert describe_actions(actions) == [
        "2 row(s) published through on_approve",
        "t3: not published yet: HTTP 503 from hooks.test",
    ]
    assert describe_dashboard(DashboardReport(problem="the Dashboard on x was not updated")) == [
        "warning: the Dashboard on x was not updated"
    ]
    assert describe_dashboard(DashboardReport(written=True)) == [] == describe_actions(None)


def test_a_harvest_saves_the_workbook_once_with_the_dashboard_in_it(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    from openpyxl import Workbook, load_workbook

    from sheetbot.boards.local import LocalBoard

    shop.add(type="listing", input="Trail tent", brand="Kestrel")
    shop.clock.set(at("2026-11-23T17:00"))
    shop.lock()
    shop.clock.set(at("2026-11-24T01:00"))
    shop.run()
    shop.set(shop.row(input="Trail tent")["id"], review="approve")
    saves: list[int] = []
    real_save = LocalBoard._save

    def counting(self: LocalBoard, workbook: Workbook) -> bool:
        saves.append(1)
        return real_save(self, workbook)

    monkeypatch.setattr(LocalBoard, "_save", counting)
    report = shop.harvest()
    assert len(saves) == 1  # the decisions and the dashboard in one save: a 10k-row workbook costs seconds
    assert report.dashboard is not None and report.dashboard.written
    assert "Dashboard" in load_workbook(shop.book).sheetnames
