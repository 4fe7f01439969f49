"""A real `kill -9` in the middle of a run: nothing lost, nothing paid twice."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from harness import Shop, at
from stored import rows_in_state

TESTS = Path(__file__).parent

CRASHING_RUN = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    sys.path.insert(0, sys.argv[2])
    from harness import Shop, at

    shop = Shop(Path(sys.argv[1]), concurrency=1, create=False)
    shop.clock.set(at("2026-11-24T01:00"))

    def answer(body):
        if len(shop.fake.requests) == 4:  # earlier answers are stored (or in flight); this call dies with us
            os.kill(os.getpid(), signal.SIGKILL)
        return "stored before the crash"

    shop.fake.reply_with(answer)
    shop.run()
""")


def test_kill_9_mid_run_then_the_next_run_pays_only_for_what_is_missing(tmp_path: Path) -> None:
    shop = Shop(tmp_path, concurrency=1)
    for n in range(6):
        shop.add(type="listing", input=f"item {n}")
    shop.lock()

    crashed = subprocess.run(
        [sys.executable, "-c", CRASHING_RUN, str(tmp_path), str(TESTS)], capture_output=True, text=True, timeout=60
    )
    assert crashed.returncode == -9, crashed.stderr
    assert all(r["status"] == "locked" and r["output"] == "" for r in shop.rows())  # the board was not reached
    stored = rows_in_state(shop, "SELECT COUNT(*) AS n FROM attempts WHERE ok = 1")[0]["n"]
    assert 1 <= stored <= 3  # paid for before the crash, and kept

    shop.clock.set(at("2026-11-24T01:30"))
    shop.run()
    assert len(shop.fake.requests) == 6 - stored  # only the rows with no stored output are called
    outputs = [r["output"] for r in shop.rows()]
    assert outputs.count("stored before the crash") == stored
    assert all(r["status"] == "review" and r["output"] for r in shop.rows())
    assert rows_in_state(shop, "SELECT COUNT(*) AS n FROM attempts WHERE ok = 1")[0]["n"] == 6


CRASHING_LOCK = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    sys.path.insert(0, sys.argv[2])
    from harness import Shop, at
    from sheetbot.boards.local import LocalBoard

    write = LocalBoard.write

    def write_then_die(self, updates):
        result = write(self, updates)  # the workbook is saved with the new ids and `locked`...
        os.kill(os.getpid(), signal.SIGKILL)  # ...and the state's commit never happens
        return result

    LocalBoard.write = write_then_die
    shop = Shop(Path(sys.argv[1]), create=False)
    shop.clock.set(at("2026-11-23T17:00"))
    shop.lock()
""")


def test_kill_9_between_the_locks_save_and_its_commit_is_not_taken_for_a_foreign_state(tmp_path: Path) -> None:
    """The board shows new ids as `locked` that the state never committed: they are ours, not an emptied state's,
    so the next phase carries on by itself (no --adopt-unknown) and every row runs exactly once."""
    shop = Shop(tmp_path)
    for n in range(4):
        shop.add(type="listing", input=f"item {n}")

    crashed = subprocess.run(
        [sys.executable, "-c", CRASHING_LOCK, str(tmp_path), str(TESTS)], capture_output=True, text=True, timeout=60
    )
    assert crashed.returncode == -9, crashed.stderr
    shown = shop.rows()
    assert all(r["id"] and r["status"] == "locked" for r in shown)  # on the board, unknown to the state
    with shop.state() as state:
        assert not state.tasks()

    shop.clock.set(at("2026-11-23T17:05"))
    report = shop.lock()  # no UnknownRowsError: the claims file says these ids are ours
    assert report.locked.total() == 4
    assert [r["id"] for r in shop.rows()] == [r["id"] for r in shown]  # the ids the board shows are kept
    shop.clock.set(at("2026-11-24T01:00"))
    shop.run()
    assert len(shop.fake.requests) == 4
    assert all(r["status"] == "review" for r in shop.rows())
    assert not shop.config.state_path.with_name(shop.config.state_path.name + ".claims").exists()  # settled
