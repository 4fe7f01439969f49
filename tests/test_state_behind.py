"""A state file rolled back to an older copy of itself (issue 10, item 7's sibling): a backup restored, a sync
tool putting yesterday's file back. The state knows the rows but is behind the board: every phase stops until
the admin decides, and normal life (a stale workbook, reviewers, a rework re-run, cut and structured outputs, a
failed row set back to `queued`) is never taken for it.

Real .xlsx files and real SQLite files; the model is faked at the SDK's transport (tests/fakellm.py).
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest
from harness import Shop, at

from sheetbot.cli.main import main
from sheetbot.errors import UnknownRowsError

SENTIMENT = {
    "provider": "anthropic",
    "model": "claude-sonnet-4-6",
    "max_tokens": 200,
    "prompt": "Classify this review: {{input}}",
    "outputs": [
        {"name": "sentiment", "type": "choice", "choices": ["positive", "negative"]},
        {"name": "summary", "type": "text"},
    ],
}


@pytest.fixture
def shop(tmp_path: Path) -> Shop:
    return Shop(tmp_path)


def backup(shop: Shop, to: Path) -> None:
    """What a backup tool takes: a consistent copy of the state file as it is now."""
    src, dst = sqlite3.connect(shop.config.state_path), sqlite3.connect(to)
    src.backup(dst)
    src.close()
    dst.close()


def restore(shop: Shop, copy: Path) -> None:
    """The older copy put back in place of the state file."""
    for extra in ("", "-wal", "-shm"):
        Path(f"{shop.config.state_path}{extra}").unlink(missing_ok=True)
    shutil.copy(copy, shop.config.state_path)


def save_board(shop: Shop, to: Path) -> None:
    shutil.copy2(shop.book, to)


def save_over(shop: Shop, stale: Path) -> None:
    """A person's old copy of the workbook saved over the board."""
    shutil.copy(stale, shop.book)


def _cli(shop: Shop, *args: str) -> int:
    return main([args[0], "--config", str(shop.config_path), *args[1:]])


@pytest.mark.parametrize("taken", ["after the lock", "before the lock"])
def test_an_older_state_file_stops_every_phase_until_the_admin_decides(
    shop: Shop, taken: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in shop.env.items():
        monkeypatch.setenv(key, value)
    old = shop.folder / "sheetbot-backup.db"
    for n in range(7):
        shop.add(type="listing", input=f"item {n}")
    if taken == "before the lock":
        shop.harvest()  # the rows have ids and are known to the state as queued
        backup(shop, old)
    shop.lock()
    if taken == "after the lock":
        backup(shop, old)
    shop.clock.set(at("2026-11-24T01:00"))
    shop.run()
    assert len(shop.fake.requests) == 7
    ids = [r["id"] for r in shop.rows()]
    shop.clock.set(at("2026-11-24T09:00"))
    shop.set(ids[0], review="approve")
    shop.harvest()  # ids[0] approved
    shop.set(ids[1], review="approve")  # a decision still waiting for the next harvest
    restore(shop, old)  # a sync tool rolls the state file back

    before = shop.book.read_bytes()
    for phase in ("harvest", "lock", "run"):
        with pytest.raises(UnknownRowsError) as info:
            getattr(shop, phase)()
        message = str(info.value)
        assert "7 row(s)" in message and ids[0] in message and ids[1] in message and "and 2 more" in message
        assert "approved" in message and "review" in message
        assert ("locked" if taken == "after the lock" else "queued") in message  # what the state says
        assert "older copy" in message and "--adopt-unknown" in message and "\n" not in message
        assert _cli(shop, phase) == 1
        assert "--adopt-unknown" in capsys.readouterr().err
    assert shop.book.read_bytes() == before  # nothing changed on the board
    assert len(shop.fake.requests) == 7  # and nothing paid again

    assert _cli(shop, "harvest", "--adopt-unknown") == 0
    assert "1 approved" in capsys.readouterr().out  # the waiting decision was harvested, not dropped
    rows = {r["id"]: r for r in shop.rows()}
    assert rows[ids[0]]["status"] == "approved" and rows[ids[1]]["status"] == "approved"
    assert all(rows[i]["status"] == "review" for i in ids[2:])
    assert all(r["output"] == f"OUTPUT for: Rewrite this listing: item {n}" for n, r in enumerate(rows.values()))
    assert all(isinstance(r["cost"], float) and r["cost"] > 0 for r in rows.values())
    shop.harvest()
    shop.clock.set(at("2026-11-24T17:00"))
    shop.lock()
    shop.clock.set(at("2026-11-25T01:00"))
    shop.run()
    assert len(shop.fake.requests) == 7  # nothing paid twice
    assert all(r["status"] in ("approved", "review") for r in shop.rows())


def test_a_rework_shown_by_the_board_is_taken_over_as_a_rework(shop: Shop) -> None:
    old = shop.folder / "sheetbot-backup.db"
    shop.add(type="listing", input="lamp")
    shop.lock()
    backup(shop, old)
    shop.clock.set(at("2026-11-24T01:00"))
    shop.run()
    task_id = shop.row(input="lamp")["id"]
    shop.set(task_id, review="rework", notes="shorter")
    shop.clock.set(at("2026-11-24T09:00"))
    shop.harvest()
    assert shop.row(id=task_id)["status"] == "rework"
    restore(shop, old)
    with pytest.raises(UnknownRowsError, match="rework"):
        shop.lock()
    with shop.context() as ctx:
        ctx.adopt_unknown = True
        from sheetbot.night.harvest import harvest

        harvest(ctx)
    shop.clock.set(at("2026-11-24T17:00"))
    shop.lock()
    shop.clock.set(at("2026-11-25T01:00"))
    shop.run()
    assert len(shop.fake.requests) == 2  # the rework, once
    prompt = str(shop.fake.requests[-1])
    assert "shorter" in prompt and "OUTPUT for:" in prompt  # the notes and the previous output went with it
    assert shop.row(id=task_id)["status"] == "review"


# -- normal life is not a rolled-back state file ------------------------------------------------------------------
def test_a_stale_workbook_over_a_newer_state_is_repaired_silently(shop: Shop) -> None:
    shop.add(type="listing", input="lamp")
    shop.lock()
    stale = shop.folder / "left-open.xlsx"
    save_board(shop, stale)
    shop.clock.set(at("2026-11-24T01:00"))
    shop.run()
    save_over(shop, stale)  # the board is behind the state: the state is right
    shop.clock.set(at("2026-11-24T09:00"))
    shop.harvest()
    assert shop.row(input="lamp")["status"] == "review"
    assert len(shop.fake.requests) == 1


def test_reviewers_deciding_before_the_harvest_are_not_a_rolled_back_state(shop: Shop) -> None:
    for text in ("a", "b", "c"):
        shop.add(type="listing", input=text)
    shop.lock()
    shop.clock.set(at("2026-11-24T01:00"))
    shop.run()
    a, b, c = (shop.row(input=t)["id"] for t in ("a", "b", "c"))
    shop.set(a, review="approve")
    shop.set(b, review="edit", edited_output="mine")
    shop.set(c, review="rework", notes="shorter")
    shop.clock.set(at("2026-11-24T09:00"))
    shop.lock()  # any phase first: the decisions wait for the harvest
    report = shop.harvest()
    assert sum(report.decisions.values()) == 3


@pytest.mark.parametrize("kind", ["plain", "cut", "structured"])
def test_a_rework_locked_again_under_a_stale_copy_is_not_a_rolled_back_state(tmp_path: Path, kind: str) -> None:
    """State: locked, attempt 3. Board: an old copy from attempt 1's review, showing `review`, attempt 1's output
    (cut to fit the cell, or rendered from a structured answer) and the reviewer's `rework`. The last lock saw
    attempt 2's output, so only the stored answers can tell that sheetbot wrote what the board shows."""
    shop = Shop(tmp_path, workflows={"sentiment": SENTIMENT} if kind == "structured" else None)
    if kind == "structured":
        shop.fake.answer_with(lambda body: {"sentiment": "negative", "summary": f"zip broke {len(str(body))}"})
        shop.add(type="sentiment", input="Warm, but the zip broke")
    else:
        if kind == "cut":  # 40,000 UTF-16 units: over Excel's 32,767
            shop.fake.reply_with(lambda body: "🙂" * 20_000 + str(len(str(body))))
        shop.add(type="listing", input="lamp")
    shop.lock()
    shop.clock.set(at("2026-11-23T17:30"))
    shop.run()
    task_id = shop.rows()[0]["id"]
    first = shop.row(id=task_id)["output"]
    if kind == "cut":
        assert "[cut:" in first
    if kind == "structured":
        assert shop.row(id=task_id)["sentiment"] == "negative" and not first.startswith("{")
    shop.set(task_id, review="rework", notes="again")
    stale = tmp_path / "left-open.xlsx"
    save_board(shop, stale)  # review, attempt 1's output, rework chosen
    for minute in ("18:00", "18:30"):  # two reworks the same evening: attempt 2 runs, attempt 3 is locked
        shop.harvest()
        shop.clock.set(at(f"2026-11-23T{minute}"))
        shop.lock()
        if minute == "18:00":
            shop.run()
            assert shop.row(id=task_id)["output"] != first
            shop.set(task_id, review="rework", notes="once more")
    save_over(shop, stale)
    shop.harvest()  # no refusal: the board shows what attempt 1 wrote
    assert shop.row(id=task_id)["status"] == "locked"
    save_over(shop, stale)
    shop.run()
    assert len(shop.fake.requests) == 3
    assert shop.row(id=task_id)["status"] == "review"


def test_a_reviewer_typing_over_the_output_before_a_rework_is_not_a_rolled_back_state(shop: Shop) -> None:
    shop.add(type="listing", input="lamp")
    shop.lock()
    shop.clock.set(at("2026-11-23T17:30"))
    shop.run()
    task_id = shop.row(input="lamp")["id"]
    shop.set(task_id, review="rework", notes="shorter")
    shop.harvest()
    shop.set(task_id, output="my own words")  # typed over the output cell itself, after the harvest
    stale = shop.folder / "left-open.xlsx"
    save_board(shop, stale)  # `rework`, the typed text
    shop.clock.set(at("2026-11-23T18:00"))
    shop.lock()  # the lock sees the typed text: the state is not behind it
    save_over(shop, stale)
    shop.harvest()
    assert shop.row(id=task_id)["status"] == "locked"


def test_a_failed_row_set_back_to_queued_is_not_a_rolled_back_state(shop: Shop) -> None:
    shop.add(type="listing", input="lamp")
    shop.lock()
    shop.clock.set(at("2026-11-24T01:00"))
    shop.fake.reply_with(lambda body: "")  # an empty answer fails the row
    shop.run()
    task_id = shop.row(input="lamp")["id"]
    status = shop.row(id=task_id)["status"]
    shop.set(task_id, status="queued")
    report = shop.harvest()
    assert status != "failed" or report.requeued == 1
