"""The board and the state agree (issue 10, items 5, 6, 7 and 10): a stale workbook saved over the board, a row
copied with its id, an emptied state file, temp files left by a kill, a read-only workbook, two locks in one night.

Real .xlsx files and real SQLite files throughout; the model is faked at the SDK's transport (tests/fakellm.py).
"""

from __future__ import annotations

import os
import shutil
import stat
import time
from pathlib import Path

import pytest
from harness import Shop, at

from sheetbot.cli.main import main
from sheetbot.errors import BoardWriteError, UnknownRowsError
from sheetbot.morning.metrics import night_metrics
from sheetbot.morning.summary import describe_run
from sheetbot.night.repair import repair
from sheetbot.notify.base import MemoryNotifier
from sheetbot.service.serve import Server


@pytest.fixture
def shop(tmp_path: Path) -> Shop:
    return Shop(tmp_path)


def night_with_outputs(shop: Shop, *inputs: str) -> dict[str, str]:
    """Rows typed in, locked at 17:00, run at 01:00: input → id."""
    for text in inputs:
        shop.add(type="listing", input=text, brand="Kestrel")
    shop.lock()
    shop.clock.set(at("2026-11-24T01:00"))
    shop.run()
    return {r["input"]: r["id"] for r in shop.rows()}


def save_over(shop: Shop, stale: Path) -> None:
    """A person's old copy saved over the board (a later mtime, as a real save has)."""
    before = shop.book.stat().st_mtime_ns
    shutil.copy(stale, shop.book)
    if shop.book.stat().st_mtime_ns <= before:
        os.utime(shop.book, ns=(before + 1_000_000, before + 1_000_000))


# -- item 5: any phase puts back what the state holds -------------------------------------------------------------
def test_run_after_a_stale_copy_puts_every_output_back_and_says_so(shop: Shop) -> None:
    shop.add(type="listing", input="lamp")
    shop.add(type="listing", input="chair")
    shop.lock()
    stale = shop.folder / "left-open-in-excel.xlsx"
    shutil.copy2(shop.book, stale)  # Excel on a Mac keeps the 17:00 version open all night
    shop.clock.set(at("2026-11-24T01:00"))
    shop.run()
    save_over(shop, stale)  # 09:00: saved; the night's outputs vanish from the board
    assert all(r["status"] == "locked" and r["output"] == "" for r in shop.rows())

    report = shop.run()  # someone runs the night again to get them back
    rows = shop.rows()
    assert all(r["status"] == "review" and r["output"].startswith("OUTPUT for:") for r in rows)
    assert all(r["night"] == "2026-11-23" and isinstance(r["cost"], float) for r in rows)
    assert len(shop.fake.requests) == 2  # repaired from the state, not paid again
    text = describe_run(report)
    assert "nothing locked to run" not in text and "2 row(s)" in text


def test_cells_people_typed_over_are_put_back_by_the_next_phase(tmp_path: Path) -> None:
    sentiment = {
        "provider": "anthropic",
        "model": "claude-sonnet-4-6",
        "max_tokens": 200,
        "prompt": "Classify this review: {{input}}",
        "outputs": [{"name": "sentiment", "type": "choice", "choices": ["positive", "negative"]}],
    }
    shop = Shop(tmp_path, workflows={"sentiment": sentiment})
    shop.add(type="sentiment", input="Warm, but the zip broke")
    shop.add(type="sentiment", input="Love it")
    shop.lock()
    shop.clock.set(at("2026-11-24T01:00"))
    shop.fake.answer_with(lambda body: {"sentiment": "negative"})
    shop.run()
    first, second = (r["id"] for r in shop.rows())
    good = {k: shop.row(id=second)[k] for k in ("status", "night", "output", "error", "cost", "sentiment")}
    # each of sheetbot's cells typed over on one row, nothing else: status and output still look right
    shop.set(second, night="2026-01-01", error="oops", cost=99, sentiment="positive")
    shop.clock.set(at("2026-11-24T09:00"))
    shop.harvest()
    assert {k: shop.row(id=second)[k] for k in good} == good
    assert shop.row(id=first)["sentiment"] == "negative"


def test_serve_notices_a_workbook_saved_over_it_and_repairs_it_within_a_minute(shop: Shop) -> None:
    ids = night_with_outputs(shop, "lamp", "chair")
    stale_rows = {r["id"]: r for r in shop.rows()}
    assert all(r["status"] == "review" for r in stale_rows.values())
    shop.clock.set(at("2026-11-24T10:05"))
    server = Server(
        config=shop.config,
        open_context=shop.context,
        clock=shop.clock,
        sleep=lambda s: shop.clock.advance(seconds=s),
        notifier=MemoryNotifier(),
    )
    server.loop(until=at("2026-11-24T10:06"))  # serve is up, the board is as it should be
    for task_id in ids.values():  # someone pastes an old export over sheetbot's cells
        shop.set(task_id, status="locked", output=None, cost=None)
    server.loop(until=at("2026-11-24T10:07:30"))
    rows = shop.rows()
    assert all(r["status"] == "review" and r["output"].startswith("OUTPUT for:") for r in rows)
    assert len(shop.fake.requests) == 2


def test_a_repair_that_finds_the_board_right_writes_nothing_and_logs_no_write(shop: Shop) -> None:
    """serve repairs at every save a person makes: a board that already says what the state holds costs no
    save, and the audit log gets no empty `write` entry each time."""
    night_with_outputs(shop, "lamp", "chair")
    with shop.state() as state:
        writes = len(state.audit_entries("write"))
    saved = shop.book.stat().st_mtime_ns
    with shop.context() as ctx:
        ident = repair(ctx)
    assert len(ident.rows) == 2 and ident.repaired == 0
    assert shop.book.stat().st_mtime_ns == saved
    with shop.state() as state:
        assert len(state.audit_entries("write")) == writes


# -- item 6: a row copied with its id during the night --------------------------------------------------------------
def _copy_and_edit(shop: Shop, task_id: str, new_input: str, *, on_top: bool = False) -> None:
    with shop._edit() as ws:
        header = [c.value for c in ws[1]]
        line = next(list(r) for r in ws.iter_rows(min_row=2, values_only=True) if r[header.index("id")] == task_id)
        line[header.index("input")] = new_input
        if on_top:
            ws.insert_rows(2)
            for index, value in enumerate(line, start=1):
                ws.cell(row=2, column=index, value=value)
        else:
            ws.append(line)


@pytest.mark.parametrize("on_top", [False, True])
def test_a_copy_with_its_id_and_a_new_input_is_a_new_row_and_the_original_keeps_its_output(
    shop: Shop, on_top: bool
) -> None:
    shop.add(type="listing", input="original text", brand="Kestrel")
    shop.lock()
    original = shop.row(input="original text")["id"]
    _copy_and_edit(shop, original, "the copy's own text", on_top=on_top)  # 23:00, id included
    shop.clock.set(at("2026-11-24T01:00"))
    report = shop.run()
    assert report.changed_after_lock == []

    def check() -> None:
        kept = shop.row(input="original text")
        assert kept["id"] == original and kept["status"] == "review"
        assert kept["output"] == "OUTPUT for: Rewrite this listing: original text"
        assert "changed after the lock" not in kept["error"]
        copy = shop.row(input="the copy's own text")
        assert copy["id"] and copy["id"] != original
        assert copy["status"] == "" and copy["output"] == "" and copy["error"] == "" and copy["cost"] == ""

    check()
    shop.clock.set(at("2026-11-24T09:00"))
    shop.harvest()
    check()
    assert len(shop.fake.requests) == 1


def test_a_copy_that_differs_only_in_another_column_does_not_take_the_id(shop: Shop) -> None:
    shop.add(type="listing", input="same text", brand="Kestrel")
    shop.lock()
    original = shop.row(brand="Kestrel")["id"]
    with shop._edit() as ws:  # the copy goes above the original, with a different brand
        header = [c.value for c in ws[1]]
        line = [c.value for c in ws[2]]
        line[header.index("brand")] = "Other"
        ws.insert_rows(2)
        for index, value in enumerate(line, start=1):
            ws.cell(row=2, column=index, value=value)
    shop.clock.set(at("2026-11-24T01:00"))
    report = shop.run()
    assert report.changed_after_lock == []
    kept = shop.row(brand="Kestrel")
    assert kept["id"] == original and kept["output"].startswith("OUTPUT for:") and not kept["error"]
    copy = shop.row(brand="Other")
    assert copy["id"] != original and copy["output"] == ""


# -- item 7: an emptied or replaced state file ----------------------------------------------------------------------
def _cli(shop: Shop, *args: str) -> int:
    return main([args[0], "--config", str(shop.config_path), *args[1:]])


@pytest.mark.parametrize("how", ["emptied", "replaced"])
def test_rows_the_state_does_not_know_stop_every_phase_until_the_admin_decides(
    shop: Shop, how: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in shop.env.items():
        monkeypatch.setenv(key, value)
    ids = night_with_outputs(shop, *(f"item {n}" for n in range(8)))
    approved = ids["item 0"]
    shop.set(approved, review="approve")
    if how == "emptied":
        shop.config.state_path.unlink()
        for extra in ("-wal", "-shm"):
            Path(f"{shop.config.state_path}{extra}").unlink(missing_ok=True)
    else:
        other = Shop(shop.folder / "other")
        other.add(type="listing", input="unrelated")
        other.harvest()  # another board's state file, with a task of its own
        for extra in ("", "-wal", "-shm"):
            Path(f"{shop.config.state_path}{extra}").unlink(missing_ok=True)
        shutil.copy(other.config.state_path, shop.config.state_path)
    shop.clock.set(at("2026-11-24T09:00"))
    before = shop.book.read_bytes()
    for phase in ("harvest", "lock", "run"):
        with pytest.raises(UnknownRowsError) as info:
            getattr(shop, phase)()
        message = str(info.value)
        assert "8 row(s)" in message and approved in message and "and 3 more" in message
        assert "--adopt-unknown" in message and "\n" not in message
        assert _cli(shop, phase) == 1
        assert "--adopt-unknown" in capsys.readouterr().err
    assert shop.book.read_bytes() == before  # nothing changed on the board
    assert len(shop.fake.requests) == 8

    assert _cli(shop, "harvest", "--adopt-unknown") == 0
    assert "1 approved" in capsys.readouterr().out  # the decision was not dropped
    assert shop.row(id=approved)["status"] == "approved"
    assert shop.row(id=ids["item 1"])["status"] == "review"
    assert shop.row(id=ids["item 1"])["output"].startswith("OUTPUT for:")
    shop.harvest()
    shop.clock.set(at("2026-11-24T17:00"))
    shop.lock()
    shop.clock.set(at("2026-11-25T01:00"))
    shop.run()
    assert len(shop.fake.requests) == 8  # nothing paid twice


def test_rows_left_locked_by_a_lost_state_go_back_to_the_queue_when_adopted(shop: Shop) -> None:
    for n in range(3):
        shop.add(type="listing", input=f"item {n}")
    shop.lock()
    shop.config.state_path.unlink()
    for extra in ("-wal", "-shm"):
        Path(f"{shop.config.state_path}{extra}").unlink(missing_ok=True)
    with pytest.raises(UnknownRowsError):
        shop.lock()
    with shop.context() as ctx:
        ctx.adopt_unknown = True
        from sheetbot.night.lock import lock

        report = lock(ctx)
    assert report.locked.total() == 3
    shop.clock.set(at("2026-11-24T01:00"))
    shop.run()
    assert len(shop.fake.requests) == 3
    assert all(r["status"] == "review" for r in shop.rows())


# -- item 10 ----------------------------------------------------------------------------------------------------
def test_temp_files_left_by_a_killed_save_are_cleaned_up(shop: Shop) -> None:
    shop.add(type="listing", input="lamp")
    old = shop.folder / ".queue.xlsx.0badc0de.tmp"
    fresh = shop.folder / ".queue.xlsx.1234abcd.tmp"  # another save in progress right now: not ours to take
    theirs = shop.folder / ".other.xlsx.0badc0de.tmp"
    for path in (old, fresh, theirs):
        path.write_bytes(b"half a workbook")
    hour_ago = time.time() - 3600  # the file system's clock, not the night's
    for path in (old, theirs):
        os.utime(path, (hour_ago, hour_ago))
    os.utime(fresh, None)
    shop.lock()
    assert not old.exists()
    assert fresh.exists() and theirs.exists()


@pytest.mark.parametrize("what", ["file", "folder"])
def test_a_read_only_workbook_is_respected(shop: Shop, what: str) -> None:
    shop.add(type="listing", input="lamp")
    target = shop.book if what == "file" else shop.folder
    mode = target.stat().st_mode
    before = shop.book.read_bytes()
    target.chmod(stat.S_IMODE(mode) & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    try:
        with pytest.raises(BoardWriteError) as info:
            shop.lock()
    finally:
        target.chmod(stat.S_IMODE(mode))
    message = str(info.value)
    assert "read-only" in message and "\n" not in message and str(shop.book.name) in message
    assert shop.book.read_bytes() == before
    assert not list(shop.folder.glob(".queue.xlsx.*.tmp"))
    shop.lock()  # writable again: it works
    assert shop.row(input="lamp")["status"] == "locked"


def test_a_rerun_that_only_writes_outputs_back_says_so(shop: Shop, monkeypatch: pytest.MonkeyPatch) -> None:
    from sheetbot.boards.local import LocalBoard

    shop.add(type="listing", input="lamp")
    shop.lock()
    shop.clock.set(at("2026-11-24T01:00"))
    real_write = LocalBoard.write
    monkeypatch.setattr(LocalBoard, "write", lambda self, updates: (_ for _ in ()).throw(BoardWriteError("disk")))
    with pytest.raises(BoardWriteError):
        shop.run()
    monkeypatch.setattr(LocalBoard, "write", real_write)
    text = describe_run(shop.run())
    assert "nothing locked to run" not in text
    assert "wrote 1 row(s)" in text
    assert shop.row(input="lamp")["status"] == "review"


def test_two_locks_in_one_night_keep_both_attempts_for_the_report(shop: Shop) -> None:
    shop.add(type="listing", input="lamp")
    shop.lock()
    shop.clock.set(at("2026-11-23T17:30"))
    shop.run()
    task_id = shop.row(input="lamp")["id"]
    shop.set(task_id, review="rework", notes="shorter")
    shop.harvest()
    shop.clock.set(at("2026-11-23T18:00"))  # the rework re-run, the same evening, under the same night
    shop.lock()
    shop.run()
    shop.set(task_id, review="approve")
    shop.harvest()
    with shop.state() as state:
        (m,) = night_metrics(state)
    assert (m.night, m.locked, m.done, m.rework, m.approved) == ("2026-11-23", 2, 2, 1, 1)


def test_an_existing_state_file_keeps_its_night_records_when_upgraded(shop: Shop) -> None:
    import sqlite3

    shop.add(type="listing", input="lamp")
    shop.lock()
    db = sqlite3.connect(shop.config.state_path)  # the table as older sheetbots made it
    rows = db.execute("SELECT night, task_id, workflow, attempt, outcome, reason FROM night_tasks").fetchall()
    db.executescript(
        "DROP TABLE night_tasks; CREATE TABLE night_tasks (night TEXT NOT NULL, task_id TEXT NOT NULL, "
        "workflow TEXT NOT NULL, attempt INTEGER NOT NULL, outcome TEXT NOT NULL, reason TEXT NOT NULL DEFAULT '', "
        "PRIMARY KEY (night, task_id));"
    )
    db.executemany("INSERT INTO night_tasks VALUES (?, ?, ?, ?, ?, ?)", rows)
    db.commit()
    db.close()
    test_rework = shop.row(input="lamp")["id"]
    shop.clock.set(at("2026-11-23T17:30"))
    shop.run()
    shop.set(test_rework, review="rework", notes="shorter")
    shop.harvest()
    shop.lock()
    shop.run()
    with shop.state() as state:
        (m,) = night_metrics(state)
    assert (m.locked, m.done, m.rework) == (2, 2, 1)
