"""Issue 13's morning, whole, on every board: a new board in the reviewer's order, a night whose outputs arrive
with their checklist and the self-check's verdict beside them, a team deciding with their names in the reviewer
column, and the report that tells them whether the self-check deserves their trust. The same test on the
local workbook, the Google Sheets fake and the Airtable fake: what a reviewer sees must not depend on where
the team keeps its queue."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from boards_under_test import BOARDS, BoardUnderTest, Night
from fakellm import split_prompt
from harness import WORKFLOWS, at

from sheetbot.cli.main import main
from sheetbot.night.context import schema_for

CHECKLIST = ["Facts unchanged", "Title under 200 chars"]
GRADER = {"model": "claude-sonnet-4-6", "provider": "anthropic", "max_tokens": 300}
LISTING = {**WORKFLOWS["listing"], "checklist": CHECKLIST, "self_check": GRADER}
#: What `init` gives a new board: the reviewer's columns (checklist, checks and reviewer among them), the
#: team's inputs, then sheetbot's bookkeeping.
NEW_BOARD = [
    "id",
    "type",
    "input",
    "output",
    "review",
    "notes",
    "edited_output",
    "checklist",
    "checks",
    "reviewer",
    "priority",
    "brand",
    "status",
    "night",
    "error",
    "cost",
]


@pytest.fixture(params=["local", "google_sheets", "airtable"])
def under(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BoardUnderTest]:
    with ExitStack() as stack:
        yield BOARDS[request.param](tmp_path, stack, None)


def verdict(body: dict[str, Any]) -> dict[str, Any]:
    """The grader fails the title of every output made from an input that says "long"."""
    long_title = "long" in split_prompt(body)[1]
    return {
        "item_1": {"pass": True, "reason": ""},
        "item_2": {"pass": not long_title, "reason": "title 212 > 200 chars" if long_title else ""},
    }


def report(night: Night, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    capsys.readouterr()
    assert main(["report", "--config", str(night.config.source), "--json"]) == 0
    [entry] = [e for e in json.loads(capsys.readouterr().out) if e["night"] == "2026-11-23"]
    return dict(entry)


def test_the_whole_morning_on_every_board(
    under: BoardUnderTest, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    night = Night(tmp_path, under.board, workflows={"listing": LISTING}, reviewer_column=True)
    night.fake.answer_with(lambda body: verdict(body) if body.get("model", "").startswith("claude") else {})

    # init on a new board: the reviewer's columns first, the same order everywhere
    under.board.ensure_schema(schema_for(night.config, with_template_columns=True))
    assert list(under.board.read().columns) == NEW_BOARD

    # the day: the team adds rows; the cutoff locks them; the night runs them and grades each output
    for text in ("Trail tent", "Lantern, long title", "Stove"):
        under.person.add(type="listing", input=text, brand="Kestrel")
    assert night.lock().locked.total() == 3
    night.clock.set(at("2026-11-24T01:00"))
    assert night.run().done.total() == 3
    rows = {r["input"]: r for r in under.person.rows()}
    for row in rows.values():
        assert row["status"] == "review" and row["output"].startswith("OUTPUT for:")
        assert row["checklist"] == "☐ Facts unchanged\n☐ Title under 200 chars"
    assert rows["Trail tent"]["checks"] == "✔ all 2 · ✔ Facts unchanged · ✔ Title under 200 chars"
    long = rows["Lantern, long title"]
    assert long["checks"] == "✘ 1/2 · ✔ Facts unchanged · ✘ Title under 200 chars: title 212 > 200 chars"
    assert sorted(r["checks"] for r in rows.values())[-1] == long["checks"]  # sorting puts failures together
    graded_cost = float(long["cost"])
    assert graded_cost > 0  # the grading is in the row's cost

    # the morning: the team decides, each with their name beside the decision
    ids = {text: row["id"] for text, row in rows.items()}
    under.person.set(ids["Trail tent"], review="approve", reviewer="Ana")
    under.person.set(ids["Stove"], review="edit", edited_output="Stove, mine", reviewer="Ben")
    under.person.set(ids["Lantern, long title"], review="rework", notes="Shorter title", reviewer="Ana")
    night.clock.set(at("2026-11-24T09:00"))
    night.harvest()
    after = {r["id"]: r for r in under.person.rows()}
    assert after[ids["Lantern, long title"]]["status"] == "rework"
    assert after[ids["Trail tent"]]["status"] != "review" and after[ids["Stove"]]["status"] != "review"

    entry = report(night, capsys)
    assert entry["reviewers"] == {"Ana": 2, "Ben": 1}
    assert entry["self_check"] == {
        "passed": {"decided": 2, "approved": 1, "approval_rate": 0.5},
        "failed": {"decided": 1, "approved": 0, "approval_rate": 0.0},
    }

    # the next night: the rework comes back with the notes and is graded again
    night.clock.set(at("2026-11-24T17:00"))
    assert night.lock().locked.total() == 1
    night.clock.set(at("2026-11-25T01:00"))
    night.run()
    graders = [r.json for r in night.fake.requests if r.json and r.json.get("model", "").startswith("claude")]
    assert len(graders) == 4  # three outputs, then the reworked one: never the same output twice
    reworked = {r["id"]: r for r in under.person.rows()}[ids["Lantern, long title"]]
    assert reworked["status"] == "review" and reworked["checks"].startswith("✘ 1/2")
    assert reworked["review"] == "" and reworked["reviewer"] == ""  # a fresh decision is asked for
