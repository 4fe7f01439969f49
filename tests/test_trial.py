"""Trial runs on the local board: a sample copied to its own sheet, run now, reviewed, judged against the bar."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import responses
from boards_under_test import PREVIEW, Night
from fake_airtable import BASE_ID, ENDPOINT, TOKEN, AirtablePerson, FakeAirtable, FakeTime
from fake_google import FakeGoogleSheets
from harness import ENV, WORKFLOWS, Shop, at
from openpyxl import load_workbook

from sheetbot.boards.airtable import AirtableBoard
from sheetbot.boards.base import Board
from sheetbot.cli.main import main
from sheetbot.cli.trial import harvest_trial, start_trial, trial_lines, trial_state_path
from sheetbot.errors import SheetbotError
from sheetbot.morning.metrics import night_metrics


@pytest.fixture
def shop(tmp_path: Path) -> Shop:
    hook = {"webhook": "https://hooks.shop.test/p", "secret_env": "PUBLISH_SECRET"}
    shop = Shop(
        tmp_path,
        workflows={
            "listing": {**WORKFLOWS["listing"], "nightly_rows": 2, "on_approve": hook},
            "blog": WORKFLOWS["blog"],
        },
        env={**ENV, "PUBLISH_SECRET": "s"},
    )
    for n in range(6):
        shop.add(id=f"q{n}", type="listing", input=f"Listing {n}", brand="Kestrel", priority="P1")
    shop.add(type="blog", input="A blog post")
    shop.add(type="listing", input="")  # no input: not eligible
    shop.clock.set(at("2026-11-23T11:00"))
    return shop


def trial_rows(shop: Shop, workflow: str = "listing") -> list[dict[str, Any]]:
    return shop.rows(sheet=f"Trial {workflow}")


def review(shop: Shop, decisions: list[str]) -> None:
    wb = load_workbook(shop.book)
    ws = wb["Trial listing"]
    header = [c.value for c in ws[1]]
    for line, decision in zip(ws.iter_rows(min_row=2), decisions, strict=False):
        line[header.index("review")].value = decision
        if decision == "edit":
            line[header.index("edited_output")].value = "mine"
    wb.save(shop.book)


def test_a_trial_runs_a_sample_now_on_its_own_sheet(shop: Shop) -> None:
    queue_before = shop.rows()
    with shop.context() as ctx:
        report = start_trial(ctx, "listing", sample=4)
    assert report.label == "trial-2026-11-23" and report.copied == 4 and report.eligible == 6
    assert report.ran is not None and report.ran.done["listing"] == 4  # the workflow's nightly cap of 2 is ignored
    rows = trial_rows(shop)
    assert [r["input"] for r in rows] == ["Listing 0", "Listing 1", "Listing 2", "Listing 3"]  # the first N
    assert all(r["status"] == "review" and r["night"] == "trial-2026-11-23" and r["output"] for r in rows)
    assert [r["trial_of"] for r in rows] == ["q0", "q1", "q2", "q3"]  # where each row came from
    assert len({r["id"] for r in rows}) == 4 and not {r["id"] for r in rows} & {"q0", "q1", "q2", "q3"}  # new ids
    assert shop.rows() == queue_before  # the queue is untouched
    # trial tasks live in their own state: the nightly metrics know nothing of them
    with shop.state() as state:
        assert night_metrics(state) == [] and not state.tasks()
    assert trial_state_path(shop.config, "listing").exists()


def test_a_seeded_sample_is_random_and_repeatable(tmp_path: Path, shop: Shop) -> None:
    with shop.context() as ctx:
        start_trial(ctx, "listing", sample=3, seed=7)
    first = [r["input"] for r in trial_rows(shop)]
    other = Shop(tmp_path / "again")
    for n in range(6):
        other.add(type="listing", input=f"Listing {n}", brand="Kestrel")
    with other.context() as ctx:
        start_trial(ctx, "listing", sample=3, seed=7)
    assert [r["input"] for r in trial_rows(other)] == first and len(first) == 3


@responses.activate
def test_review_harvest_and_the_launch_bar(shop: Shop) -> None:
    with shop.context() as ctx:
        start_trial(ctx, "listing", sample=4)
    assert trial_lines(shop.config) == [
        "trial listing (trial-2026-11-23): none of 4 outputs reviewed yet; launch bar 75%"
    ]

    review(shop, ["approve", "approve", "edit"])
    with shop.context() as ctx:
        harvested = harvest_trial(ctx, "listing")
    assert harvested.decisions == {"approve": 2, "edit": 1}
    assert trial_lines(shop.config) == [
        "trial listing (trial-2026-11-23): 2/3 approved as-is = 67% < 75% launch bar: 1 still to review"
    ]
    review(shop, ["approve", "approve", "edit", "approve"])
    with shop.context() as ctx:
        harvest_trial(ctx, "listing")
    assert trial_lines(shop.config) == [
        "trial listing (trial-2026-11-23): 3/4 approved as-is = 75% ≥ 75% launch bar: ready"
    ]
    # trial approvals never fire the workflow's on_approve action, and stay out of the queue's dashboard
    assert not responses.mock.calls
    assert {r["status"] for r in trial_rows(shop)} == {"approved", "edited"}
    assert "Dashboard" not in load_workbook(shop.book).sheetnames


def test_a_second_trial_the_same_day_is_a_round_of_its_own(shop: Shop) -> None:
    with shop.context() as ctx:
        start_trial(ctx, "listing", sample=2)
    shop.clock.advance(hours=2)
    with shop.context() as ctx:
        second = start_trial(ctx, "listing", sample=2, seed=1)
    assert second.label == "trial-2026-11-23-130000"
    assert second.locked is not None and second.locked.locked["listing"] == 2  # the first round's rows stay in review
    assert len(trial_rows(shop)) == 4


def test_unknown_workflow_and_no_rows_are_one_line_errors(shop: Shop) -> None:
    with (
        shop.context() as ctx,
        pytest.raises(SheetbotError, match=r"Did you mean listing\? Known workflows: blog, listing"),
    ):
        start_trial(ctx, "listings", sample=2)
    empty = Shop(shop.folder / "empty")
    with empty.context() as ctx, pytest.raises(SheetbotError, match="no rows of type 'listing'"):
        start_trial(ctx, "listing", sample=2)


def test_a_board_that_cannot_add_rows_is_refused(shop: Shop) -> None:
    from sheetbot.boards.memory import MemoryBoard

    class FixedRows(MemoryBoard):  # the memory board appends rows (chained workflows): this one does not
        append_rows = None  # type: ignore[assignment]

    with shop.context() as ctx, pytest.raises(SheetbotError, match="cannot take a trial's rows"):
        start_trial(ctx, "listing", sample=2, board=FixedRows())


def test_the_cli_runs_harvests_and_reports_a_trial(
    shop: Shop, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import sheetbot.service.wiring as app

    monkeypatch.setattr(app, "open_context", lambda config_path, **kwargs: shop.context())
    config = ["--config", str(shop.config_path)]
    assert main(["trial", "listing", "--sample", "2", *config]) == 0
    assert "trial-2026-11-23: 2 of 6 listing rows copied to [Trial listing]" in capsys.readouterr().out
    review(shop, ["approve", "approve"])
    assert main(["trial", "listing", "--harvest", *config]) == 0
    capsys.readouterr()
    assert main(["report", *config]) == 0
    assert "trial listing (trial-2026-11-23): 2/2 approved as-is = 100% ≥ 75% launch bar: ready" in (
        capsys.readouterr().out
    )


# -- the same trial on Google Sheets and Airtable, through their HTTP fakes ----------------------------
def check_trial(night: Night, queue: Board, trial_board: Board) -> None:
    night.clock.set(at("2026-11-23T11:00"))
    with night.context() as ctx:
        report = start_trial(ctx, "listing", sample=3, board=trial_board)
    assert report.copied == 3 and report.ran is not None and report.ran.done["listing"] == 3
    rows = trial_board.read().rows
    assert sorted(r.get("input") for r in rows) == ["item 0", "item 1", "item 2"]
    assert all(r.get("status") == "review" and r.get("night") == "trial-2026-11-23" for r in rows)
    assert sorted(r.get("trial_of") for r in rows) == ["q0", "q1", "q2"]  # the queue row each was copied from
    assert {r.get("status") for r in queue.read().rows} == {""}  # the queue is untouched


def test_a_trial_on_google_sheets(tmp_path: Path) -> None:
    with FakeGoogleSheets(tmp_path, {"Queue": [["id", "type", "priority", "input"]]}) as google:
        for n in range(4):
            google.person("Queue").add(id=f"q{n}", type="listing", input=f"item {n}")
        queue = google.board("Queue")
        check_trial(Night(tmp_path, queue, workflows=PREVIEW), queue, google.board("Trial listing"))


def test_a_trial_on_airtable(tmp_path: Path) -> None:
    time = FakeTime()
    with FakeAirtable(time=time, fields=["id", "type", "priority", "input"]) as fake:
        for n in range(4):
            AirtablePerson(fake).add(id=f"q{n}", type="listing", input=f"item {n}")

        def table(name: str) -> AirtableBoard:
            env = {"AIRTABLE_TOKEN": TOKEN}
            return AirtableBoard(
                base=BASE_ID, table=name, env=env, endpoint_url=ENDPOINT, monotonic=time.monotonic, sleep=time.sleep
            )

        queue = table("Queue")
        check_trial(Night(tmp_path, queue, workflows=PREVIEW), queue, table("Trial listing"))
