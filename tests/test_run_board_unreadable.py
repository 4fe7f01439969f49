"""A board that cannot be read at the end of the run: the run says so instead of silently skipping its checks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from boards_under_test import TEAM_HEADER, Night
from fake_google import FakeGoogleSheets

from sheetbot.morning.summary import describe_run


def test_a_board_unreadable_after_the_run_is_named_in_the_report(tmp_path: Path) -> None:
    with FakeGoogleSheets(tmp_path, {"Queue": [TEAM_HEADER]}) as fake:
        board = fake.board("Queue")
        night = Night(tmp_path, board)
        fake.person("Queue").add(type="listing", priority="P1", input="A blue mug", brand="Kestrel")
        night.lock()
        attempts = board.attempts

        def answer_while_google_fails(body: dict[str, Any]) -> str:
            fake.fail_next(503, times=attempts, kind="values.get")  # the end-of-run read gives up; the write works
            return "A fine listing"

        night.fake.reply_with(answer_while_google_fails)
        report = night.run()

    assert report.done.total() == 1
    notes = [n for n in report.notes if "could not be read" in n]
    assert len(notes) == 1, report.notes
    assert "edited after the lock were not checked" in notes[0] and "after" in notes[0]
    assert "note: " + notes[0] in describe_run(report)
