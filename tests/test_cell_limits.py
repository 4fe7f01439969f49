"""Oversized outputs: every board gets text it can hold, counted in the unit it counts, and one bad cell never
stops the write of the others (issue 10, item 9). The full text stays in the state: `sheetbot show ID`."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from boards_under_test import BOARDS, TEAM_HEADER, BoardUnderTest, Night, airtable_board
from fake_google import FakeGoogleSheets
from fakellm import split_prompt
from harness import Shop, at

from sheetbot.boards.base import RowUpdate, SchemaSpec
from sheetbot.cli.main import main
from sheetbot.status import Decision, Status

LIMITS = {"local": 32_767, "memory": 32_767, "google_sheets": 50_000, "airtable": 100_000}
#: 60,000 emoji: 60,000 characters by Python's count, 120,000 UTF-16 units: over every board's limit.
HUGE = "😀" * 60_000
SPEC = SchemaSpec(
    columns=["id", "type", "input", "priority", "status", "night", "output", "review", "notes", "edited_output",
             "error", "cost"],
    review_column="review",
    review_choices=[str(d) for d in Decision],
    status_column="status",
    status_choices=[str(s) for s in Status],
    wide_columns=["input", "output", "notes", "edited_output", "error"],
)  # fmt: skip
Make = Callable[..., BoardUnderTest]


def utf16_units(text: str) -> int:
    """What Excel counts (the test's own oracle, not sheetbot's)."""
    return len(text.encode("utf-16-le")) // 2


@pytest.fixture(params=sorted(BOARDS))
def make(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Make]:
    with ExitStack() as stack:
        yield lambda: BOARDS[request.param](tmp_path, stack, TEAM_HEADER)


# -- the cut itself ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "unit",
    ["😀", "e\u0301", "👩\u200d👩\u200d👧", "🇩🇪", "👍🏽", "❤\ufe0f", "a"],
    ids=["emoji", "combining", "zwj-family", "flag", "skin-tone", "variation", "ascii"],
)
def test_a_cut_fits_in_utf16_units_and_never_splits_a_character(unit: str) -> None:
    from sheetbot.boards.values import fit_cell

    text = unit * 40_000
    cut, omitted = fit_cell(text, 32_767, lambda n: f"… [cut: {n} more]")
    assert utf16_units(cut) <= 32_767 and omitted > 0
    kept = cut.removesuffix(f"… [cut: {omitted} more]")
    assert text.startswith(kept) and len(kept) % len(unit) == 0  # whole characters only
    assert len(kept) + omitted == len(text)
    assert utf16_units(cut) > 32_767 - 40  # and not much shorter than it may be


def test_text_that_fits_is_left_alone() -> None:
    from sheetbot.boards.values import fit_cell

    assert fit_cell("😀" * 16_383, 32_767) == ("😀" * 16_383, 0)


# -- every board, a whole night ---------------------------------------------------------------------
def test_an_oversized_output_is_cut_to_the_boards_cell_and_the_other_rows_are_written(
    make: Make, tmp_path: Path
) -> None:
    under = make()
    night = Night(tmp_path, under.board)
    night.fake.reply_with(lambda body: HUGE if "huge" in split_prompt(body)[1] else "a short answer")
    for name in ("alpha", "huge one", "bravo"):
        under.person.add(type="listing", input=name)
    night.lock()
    night.clock.set(at("2026-11-24T01:00"))
    report = night.run()
    assert report.done.total() == 3 and report.missing == []

    rows = {r["input"]: r for r in under.person.rows()}  # the local board: the workbook reopened from disk
    for name in ("alpha", "bravo"):
        assert rows[name]["status"] == "review" and rows[name]["output"] == "a short answer"
        assert rows[name]["error"] == ""
    huge = rows["huge one"]
    task_id = huge["id"]
    limit = LIMITS[under.name]
    assert huge["status"] == "review"
    assert limit - 100 < utf16_units(huge["output"]) <= limit
    assert huge["output"].endswith(f"full text: sheetbot show {task_id}]")
    assert huge["output"].startswith("😀😀") and "\ufffd" not in huge["output"]
    assert "output cut to fit" in huge["error"] and f"sheetbot show {task_id}" in huge["error"]
    with night.state() as state:
        stored = state.final_output(task_id, 1)
        assert stored is not None and stored.output == HUGE  # the whole text stays in the state

    night.clock.set(at("2026-11-24T09:00"))
    for row in under.person.rows():
        under.person.set(row["id"], review="approve")
    assert night.harvest().decisions == {"approve": 3}
    assert {r["status"] for r in under.person.rows()} == {"approved"}


def test_every_text_sheetbot_writes_is_cut_the_error_too(make: Make) -> None:
    under = make()
    under.person.add(id="t1", type="listing", input="x")
    under.board.ensure_schema(SPEC)
    result = under.board.write([RowUpdate("t1", {"error": HUGE, "notes": HUGE, "output": "fine"})])
    assert result.written == 1 and not result.refused
    row = under.person.rows()[0]
    for column in ("error", "notes"):
        assert utf16_units(row[column]) <= LIMITS[under.name] and "[cut: " in row[column]
    assert row["output"] == "fine"


# -- Google: one refused cell does not cost the batch ---------------------------------------------
def _google(tmp_path: Path, **options: Any) -> tuple[FakeGoogleSheets, Any]:
    google = FakeGoogleSheets(tmp_path, {"Queue": [list(SPEC.columns)]})
    google.__enter__()
    person = google.person("Queue")
    for n in range(1, 8):
        person.add(id=f"t{n}", type="listing", input=f"item {n}")
    return google, google.board("Queue", **options)


def test_google_writes_every_other_row_when_it_refuses_one_cell(tmp_path: Path) -> None:
    # sheetbot's own count let the cell through (a limit set too high): Google refuses the whole request with
    # a 400, as the real API does; the board finds the row at fault and writes all the others.
    google, board = _google(tmp_path, max_cell_units=60_000)
    try:
        updates = [RowUpdate(f"t{n}", {"output": f"answer {n}", "status": "review"}) for n in range(1, 8)]
        updates[3] = RowUpdate("t4", {"output": "x" * 55_000, "status": "review"})
        result = board.write(updates)
        assert set(result.refused) == {"t4"} and "50000 characters" in result.refused["t4"]
        assert result.written == 6 and result.missing == []
        person = google.person("Queue")
        for n in (1, 2, 3, 5, 6, 7):
            assert person.cell(f"t{n}", "output") == f"answer {n}"
        assert not person.cell("t4", "output")
        assert google.counts["values.batchUpdate"] <= 1 + 2 * 3  # bounded: halving, not one request a row
    finally:
        google.__exit__(None, None, None)


def test_google_at_its_own_limit_is_one_request(tmp_path: Path) -> None:
    google, board = _google(tmp_path)
    try:
        updates = [RowUpdate(f"t{n}", {"output": HUGE if n == 4 else f"answer {n}"}) for n in range(1, 8)]
        result = board.write(updates)
        assert result.written == 7 and not result.refused
        assert google.counts["values.batchUpdate"] == 1
        assert utf16_units(google.person("Queue").cell("t4", "output")) <= 50_000
    finally:
        google.__exit__(None, None, None)


def test_a_night_on_google_says_which_row_was_refused_and_writes_the_rest(tmp_path: Path) -> None:
    with FakeGoogleSheets(tmp_path, {"Queue": [TEAM_HEADER]}) as google:
        board = google.board("Queue", max_cell_units=60_000)
        night = Night(tmp_path, board)
        night.fake.reply_with(lambda body: "y" * 55_000 if "huge" in split_prompt(body)[1] else "a short answer")
        person = google.person("Queue")
        for name in ("alpha", "huge one", "bravo"):
            person.add(type="listing", input=name)
        night.lock()
        night.clock.set(at("2026-11-24T01:00"))
        night.run()
        rows = {r["input"]: r for r in person.rows()}
        assert rows["alpha"]["output"] == rows["bravo"]["output"] == "a short answer"
        huge = rows["huge one"]
        assert huge["status"] == "review" and "refused" in huge["error"]
        assert f"sheetbot show {huge['id']}" in huge["error"]
        with night.state() as state:
            assert [p.task_id for p in state.dirty()] == [huge["id"]]  # sent again next phase


# -- Airtable: one refused record does not cost its batch of ten ---------------------------------------
def test_airtable_writes_the_other_records_of_a_refused_batch(tmp_path: Path) -> None:
    with ExitStack() as stack:
        under = airtable_board(tmp_path, stack, TEAM_HEADER)
        for n in range(1, 8):
            under.person.add(id=f"t{n}", type="listing", input=f"item {n}")
        under.board.ensure_schema(SPEC)
        updates = [RowUpdate(f"t{n}", {"output": f"answer {n}"}) for n in range(1, 8)]
        updates[2] = RowUpdate("t3", {"output": "answer 3", "review": "maybe"})  # not one of the choices
        result = under.board.write(updates)
        assert set(result.refused) == {"t3"} and result.written == 6 and result.missing == []
        rows = {r["id"]: r for r in under.person.rows()}
        assert [rows[f"t{n}"]["output"] for n in (1, 2, 4, 5, 6, 7)] == [f"answer {n}" for n in (1, 2, 4, 5, 6, 7)]
        assert rows["t3"]["output"] == ""


# -- sheetbot show ID -------------------------------------------------------------------------------
def test_show_prints_the_whole_stored_output_with_status_and_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shop = Shop(tmp_path)
    shop.fake.reply_with(lambda body: HUGE if "huge" in split_prompt(body)[1] else "a short answer")
    shop.add(type="listing", input="huge one", brand="Kestrel")
    shop.lock()
    shop.clock.set(at("2026-11-24T01:00"))
    shop.run()
    row = shop.rows()[0]
    assert utf16_units(row["output"]) <= 32_767
    capsys.readouterr()
    assert main(["show", row["id"], "--config", str(shop.config_path)]) == 0
    printed = capsys.readouterr().out
    assert HUGE in printed and ": review (listing, attempt 1" in printed

    assert main(["show", row["id"], "--json", "--config", str(shop.config_path)]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["status"] == "review" and shown["output"] == HUGE and shown["attempt"] == 1

    assert main(["show", "nope-42", "--config", str(shop.config_path)]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "nope-42" in lines[0]


def test_show_prints_each_step_and_each_structured_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    workflows = {
        "facts": {
            "provider": "openai",
            "model": "gpt-4.1-mini",
            "prompt": "Facts about {{input}}",
            "outputs": [{"name": "title", "type": "text"}, {"name": "body", "type": "text"}],
        },
        "chain": {
            "provider": "openai",
            "model": "gpt-4.1-mini",
            "steps": [{"name": "research", "prompt": "Research {{input}}"}, {"name": "draft", "prompt": "Draft"}],
        },
    }
    shop = Shop(tmp_path, workflows=workflows)
    shop.fake.answer_with(lambda body: {"title": "T" * 10, "body": "😀" * 20_000})
    shop.fake.reply_with(lambda body: "step answer: " + split_prompt(body)[1][:20])
    shop.add(type="facts", input="tents")
    shop.add(type="chain", input="lamps")
    shop.lock()
    shop.clock.set(at("2026-11-24T01:00"))
    shop.run()
    ids = {r["type"]: r["id"] for r in shop.rows()}
    capsys.readouterr()
    assert main(["show", ids["facts"], "--config", str(shop.config_path)]) == 0
    printed = capsys.readouterr().out
    assert "title" in printed and "T" * 10 in printed and "😀" * 20_000 in printed
    assert main(["show", ids["chain"], "--config", str(shop.config_path)]) == 0
    printed = capsys.readouterr().out
    assert "research" in printed and "draft" in printed and "step answer: Research lamps" in printed
