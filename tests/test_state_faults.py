"""The SQLite state under faults: another program's lock, a full disk, a journal that cannot be written.

Real faults on a real state file: a second real connection holds the write lock (what a backup tool or
a database browser does), and SQLite's own page limit on the night's connection gives the real
"database or disk is full". Calls are counted at the provider's HTTP transport (FakeLLM): across the
failing run and the next one every row is called exactly once, and every paid answer ends up in the
state and on the board.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fakellm import split_prompt
from harness import Shop, at
from stored import rows_in_state

from sheetbot.cli.main import main
from sheetbot.errors import StateUnavailableError
from sheetbot.night.context import NightContext
from sheetbot.state import State

ROWS = 6
#: How long a state write waits for another program's lock: small, so the tests are fast.
WAIT = {"state_wait_s": 0.3}


def night_shop(tmp_path: Path, *, concurrency: int = 1, wait_s: float = WAIT["state_wait_s"]) -> Shop:
    shop = Shop(tmp_path, concurrency=concurrency, limits={"state_wait_s": wait_s})
    for n in range(ROWS):
        shop.add(type="listing", input=f"item {n}")
    shop.lock()
    shop.clock.set(at("2026-11-24T01:00"))
    return shop


def calls_per_row(shop: Shop) -> Counter[str]:
    """How often each row's input reached the provider (the prompt ends with the row's input)."""
    return Counter(split_prompt(r.json)[1].rsplit("\n", 1)[-1] for r in shop.fake.requests)


def paid_answers(shop: Shop) -> int:
    with shop.state():  # opening the state stores what its journal keeps
        return int(rows_in_state(shop, "SELECT COUNT(*) AS n FROM attempts WHERE ok = 1")[0]["n"])


def assert_every_row_done_once(shop: Shop) -> None:
    assert calls_per_row(shop) == {f"item {n}": 1 for n in range(ROWS)}  # no row paid twice, none skipped
    assert paid_answers(shop) == ROWS
    rows = shop.rows()
    assert [r["status"] for r in rows] == ["review"] * ROWS, rows
    assert all(r["output"].startswith("OUTPUT for: ") for r in rows)
    assert not journal(shop).exists() or journal(shop).stat().st_size == 0


def journal(shop: Shop) -> Path:
    return shop.config.state_path.with_name(shop.config.state_path.name + ".journal")


class Holder:
    """Another program with its own connection to the state file, taking and keeping the write lock."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path, isolation_level=None)

    def take(self) -> None:
        if not self.db.in_transaction:
            self.db.execute("BEGIN IMMEDIATE")

    def release(self) -> None:
        if self.db.in_transaction:
            self.db.execute("ROLLBACK")

    def close(self) -> None:
        self.release()
        self.db.close()


@pytest.mark.parametrize("concurrency", [1, 4])
def test_a_state_locked_past_the_wait_stops_new_calls_and_keeps_every_paid_answer(
    tmp_path: Path, concurrency: int
) -> None:
    shop = night_shop(tmp_path, concurrency=concurrency)
    holder = Holder(shop.config.state_path)

    def answer(body: dict[str, object]) -> str:
        if len(shop.fake.requests) == 3:
            holder.take()  # e.g. a backup tool, for longer than sheetbot waits
        return "OUTPUT for: " + " ".join(split_prompt(body)[1].split())[:60]

    shop.fake.reply_with(answer)
    with pytest.raises(StateUnavailableError) as failed:
        shop.run()
    message = str(failed.value)
    state_file = shop.config.state_path
    assert f"the state file {state_file} is locked by another program" in message
    assert "`sheetbot run` again" in message
    with sqlite3.connect(state_file) as reader:  # a reader (WAL): the lock holder does not stop it
        stored = reader.execute("SELECT COUNT(*) FROM attempts WHERE ok = 1").fetchone()[0]
    kept = len(shop.fake.requests) - stored  # paid while it was locked: every one of them in the journal
    assert kept >= 1
    assert f"{kept} paid answer" in message and f"kept in {journal(shop)}" in message
    assert "\n" not in message
    assert len(shop.fake.requests) <= 3 + (concurrency - 1)  # nothing new started after the failed write
    assert journal(shop).stat().st_mode & 0o777 == 0o600

    calls = len(shop.fake.requests)
    shop.clock.set(at("2026-11-24T01:15"))
    with pytest.raises(StateUnavailableError) as still:  # still locked: the journal cannot be stored yet
        shop.run()
    assert f"then run sheetbot again; {kept} paid answer" in str(still.value)
    assert len(shop.fake.requests) == calls  # so nothing is called

    holder.close()  # the other program is done
    shop.clock.set(at("2026-11-24T01:30"))
    shop.run()
    assert_every_row_done_once(shop)


def test_a_lock_held_briefly_does_not_fail_the_night_nor_freeze_it(tmp_path: Path) -> None:
    shop = night_shop(tmp_path, wait_s=60)  # a minute's patience; the lock goes after one pause
    holder = Holder(shop.config.state_path)
    real_sleep = shop.sleep
    waits: list[float] = []

    def answer(body: dict[str, object]) -> str:
        if len(shop.fake.requests) == 2:
            holder.take()
        return "OUTPUT for: " + " ".join(split_prompt(body)[1].split())[:60]

    async def sleep(seconds: float) -> None:  # the night waits for the state: the lock goes meanwhile
        waits.append(seconds)
        holder.release()
        await real_sleep(seconds)

    shop.fake.reply_with(answer)
    shop.sleep = sleep  # type: ignore[method-assign]
    started = time.monotonic()
    report = shop.run()
    holder.close()
    # It waited on the event loop (where the lock went away), not frozen in SQLite's busy handler for a minute.
    assert waits and time.monotonic() - started < 10
    assert report.done.total() == ROWS and not report.stopped  # ... and the night went on
    assert_every_row_done_once(shop)


class FullDisk(Shop):
    """The night's own connection gets SQLite's page limit: the next page it needs is "disk full"."""

    night_state: State | None = None
    #: When set, the journal's disk fills at the same moment (sheetbot's own files at the OS edge).
    disk: JournalDisk | None = None

    @contextmanager
    def context(self) -> Iterator[NightContext]:
        with super().context() as ctx:
            self.night_state = ctx.state
            yield ctx

    def fill(self) -> None:
        assert self.night_state is not None
        db = self.night_state._db  # the real SQLITE_FULL, from SQLite itself
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        db.execute(f"PRAGMA max_page_count = {pages}")
        if self.disk is not None:
            self.disk.fill()


class JournalDisk:
    """The file system under the journal, at the OS edge: once full, ``os.write``, ``os.fsync`` (where NFS and
    delayed allocation report it) or creating the file fail with ENOSPC (or EDQUOT, a quota), until the
    reserve beside the state is unlinked: its blocks are then the only free space. A write first gets half
    its bytes onto the disk (the last free blocks), as a real one does. A reserve that did not exist when
    the disk filled frees nothing. The board's own saves are left alone (another item's fault)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, state_path: Path, *, where: str, code: int) -> None:
        self.journal = state_path.with_name(state_path.name + ".journal")
        self.reserve = state_path.with_name(state_path.name + ".reserve")
        self.where, self.code = where, code
        self.full = False
        self.held = False  # the reserve existed when the disk filled
        self.refused = 0
        self.torn = False
        real_write, real_fsync, real_open = os.write, os.fsync, os.open

        def write(fd: int, data: bytes) -> int:
            if self.where == "write" and self._journal_fd(fd):
                if self._refusing() and not self.torn and len(data) > 1:
                    self.torn = True  # the last blocks go to half the line: a short write, then ENOSPC
                    return real_write(fd, data[: len(data) // 2])
                self._refuse()
            return real_write(fd, data)

        def fsync(fd: int) -> None:
            if self.where == "fsync" and self._journal_fd(fd):
                self._refuse()
            real_fsync(fd)

        def open_(path: str | os.PathLike[str], flags: int, mode: int = 0o777, **kw: int) -> int:
            if (
                self.where == "create"
                and Path(path) == self.journal
                and flags & os.O_CREAT
                and not self.journal.exists()
            ):
                self._refuse()
            return real_open(path, flags, mode, **kw)

        def unlink(path: str | os.PathLike[str], **kw: int) -> None:
            real_unlink(path, **kw)
            if self.full and Path(path) == self.reserve:
                for freed in self.on_free:
                    freed()

        real_unlink = os.unlink
        #: What else on this disk gets the reserve's blocks once it is released (e.g. the state's SQLite).
        self.on_free: list[Callable[[], None]] = []
        monkeypatch.setattr(os, "write", write)
        monkeypatch.setattr(os, "fsync", fsync)
        monkeypatch.setattr(os, "open", open_)
        monkeypatch.setattr(os, "unlink", unlink)

    def fill(self) -> None:
        self.full = True
        self.held = self.reserve.exists()
        if self.where == "create" and self.journal.exists():
            self.journal.unlink()  # the journal's name is a new directory entry: that needs space too

    def free(self) -> None:
        self.full = False

    def _journal_fd(self, fd: int) -> bool:
        try:
            return self.journal.exists() and os.fstat(fd).st_ino == self.journal.stat().st_ino
        except OSError:
            return False

    def _refusing(self) -> bool:
        return self.full and not (self.held and not self.reserve.exists())

    def _refuse(self) -> None:
        if self._refusing():
            self.refused += 1
            raise OSError(self.code, os.strerror(self.code))


def full_disk_shop(tmp_path: Path) -> FullDisk:
    shop = FullDisk(tmp_path, concurrency=1, limits=WAIT)
    for n in range(ROWS):
        shop.add(type="listing", input=f"item {n}")
    shop.lock()
    shop.clock.set(at("2026-11-24T01:00"))

    def answer(body: dict[str, object]) -> str:
        if len(shop.fake.requests) == 3:
            shop.fill()
        # Long enough to need new pages: the answer cannot be stored.
        return "OUTPUT for: " + " ".join(split_prompt(body)[1].split())[:60] + " " + "x" * 20_000

    shop.fake.reply_with(answer)
    return shop


def test_a_full_disk_stops_new_calls_and_the_next_run_stores_the_paid_answers(tmp_path: Path) -> None:
    shop = full_disk_shop(tmp_path)
    with pytest.raises(StateUnavailableError) as failed:
        shop.run()
    state_file = shop.config.state_path
    assert str(failed.value) == (
        f"the disk holding {state_file} is full: free space, then run `sheetbot run` again; "
        f"1 paid answer is kept in {journal(shop)} and will be stored then"
    )
    assert len(shop.fake.requests) == 3  # the third answer could not be stored: nothing new started

    shop.clock.set(at("2026-11-24T01:30"))
    shop.run()  # space is free again (a new connection has no page limit)
    assert_every_row_done_once(shop)


@pytest.mark.parametrize(
    ("where", "code"),
    [("write", errno.ENOSPC), ("fsync", errno.ENOSPC), ("create", errno.ENOSPC), ("write", errno.EDQUOT)],
)
def test_a_truly_full_disk_keeps_the_paid_answer_in_the_space_the_reserve_held(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str, code: int
) -> None:
    shop = full_disk_shop(tmp_path)
    disk = shop.disk = JournalDisk(monkeypatch, shop.config.state_path, where=where, code=code)
    with pytest.raises(StateUnavailableError) as failed:
        shop.run()
    message = str(failed.value)
    state_file = shop.config.state_path
    assert disk.refused >= 1  # the journal met the full disk ...
    assert message.startswith(f"the disk holding {state_file} is full: free space, then run `sheetbot run` again")
    assert f"1 paid answer is kept in {journal(shop)} and will be stored then" in message  # ... and kept it
    assert "could not be kept" not in message
    assert f"the reserve {disk.reserve} was used to keep it" in message
    assert "\n" not in message
    assert len(shop.fake.requests) == 3  # nothing new started
    assert not disk.reserve.exists()  # its space went to the journal
    assert journal(shop).stat().st_mode & 0o777 == 0o600

    disk.free()  # the admin frees space
    shop.clock.set(at("2026-11-24T01:30"))
    shop.run()
    assert_every_row_done_once(shop)  # the kept answer was stored, not paid again
    assert disk.reserve.stat().st_size >= 1 << 20  # the reserve is back for the next full disk
    assert disk.reserve.stat().st_mode & 0o777 == 0o600


def test_the_space_the_reserve_freed_lets_the_state_store_tonights_answers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shop = full_disk_shop(tmp_path)
    disk = shop.disk = JournalDisk(monkeypatch, shop.config.state_path, where="write", code=errno.ENOSPC)

    def sqlite_gets_the_space() -> None:  # the reserve's blocks are free for SQLite's pages too
        assert shop.night_state is not None
        shop.night_state._db.execute("PRAGMA max_page_count = 1073741823")

    disk.on_free.append(sqlite_gets_the_space)
    with pytest.raises(StateUnavailableError) as failed:
        shop.run()
    assert str(failed.value) == (
        f"the disk holding {shop.config.state_path} is full: free space, then run `sheetbot run` again; "
        f"the reserve {disk.reserve} was used (sheetbot makes it again once space is free)"
    )
    assert len(shop.fake.requests) == 3  # the full disk still stopped new calls
    assert paid_answers(shop) == 3  # ... and the answer kept in the journal was stored tonight
    assert [r["status"] for r in shop.rows()][:3] == ["review"] * 3  # its output is on the board this morning
    assert journal(shop).stat().st_size == 0

    disk.free()
    shop.clock.set(at("2026-11-24T01:30"))
    shop.run()
    assert_every_row_done_once(shop)
    assert disk.reserve.is_file()


def reply_plainly(shop: Shop) -> None:
    shop.fake.reply_with(lambda body: "OUTPUT for: " + " ".join(split_prompt(body)[1].split())[:60])


@pytest.mark.parametrize("why", ["no space", "in the way"])
def test_a_reserve_that_cannot_be_made_is_noted_and_does_not_stop_the_night(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, why: str
) -> None:
    shop = night_shop(tmp_path)
    reserve = shop.config.state_path.with_name(shop.config.state_path.name + ".reserve")
    if why == "no space":  # a disk still nearly full at the night's start

        def fallocate(fd: int, offset: int, length: int) -> None:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        monkeypatch.setattr(os, "posix_fallocate", fallocate)
    else:
        reserve.mkdir()  # something else by that name: left alone
    reply_plainly(shop)
    shop.run()
    assert_every_row_done_once(shop)
    assert "no reserve of space beside the state tonight: cannot" in caplog.text and str(reserve) in caplog.text
    assert reserve.is_dir() if why == "in the way" else not reserve.exists()  # never half a reserve


def test_without_fallocate_the_reserve_is_written_for_real(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shop = night_shop(tmp_path)
    monkeypatch.delattr(os, "posix_fallocate")  # e.g. macOS
    reply_plainly(shop)
    shop.run()
    reserve = shop.config.state_path.with_name(shop.config.state_path.name + ".reserve")
    size = reserve.stat().st_size
    assert size >= 1 << 20 and reserve.stat().st_blocks * 512 >= size  # blocks held, not a sparse file
    assert reserve.stat().st_mode & 0o777 == 0o600


def test_a_journal_that_cannot_be_written_either_starts_nothing_new_and_says_so(tmp_path: Path) -> None:
    shop = full_disk_shop(tmp_path)
    journal(shop).mkdir()  # the journal cannot be written: the answer in hand cannot be kept
    with pytest.raises(StateUnavailableError) as failed:
        shop.run()
    message = str(failed.value)
    assert message.startswith(f"the disk holding {shop.config.state_path} is full: free space")
    assert f"1 paid answer could not be kept: the journal {journal(shop)} could not be written" in message
    assert len(shop.fake.requests) == 3  # still nothing new started

    journal(shop).rmdir()
    shop.clock.set(at("2026-11-24T01:30"))
    shop.run()
    assert paid_answers(shop) == ROWS
    assert sorted(calls_per_row(shop).values()) == [1] * (ROWS - 1) + [2]  # only the lost answer, said so


def test_replaying_the_journal_twice_stores_it_once(tmp_path: Path) -> None:
    shop = full_disk_shop(tmp_path)
    with pytest.raises(StateUnavailableError):
        shop.run()
    kept = journal(shop).read_bytes()
    assert kept
    both = "SELECT (SELECT COUNT(*) FROM attempts) AS a, (SELECT COUNT(*) FROM audit) AS b"
    with shop.state():  # opening the state stores what the journal keeps
        counts = rows_in_state(shop, both)[0]
    journal(shop).write_bytes(kept)  # e.g. a kill between storing and emptying the journal
    with shop.state():
        again = rows_in_state(shop, both)[0]
    assert (again["a"], again["b"]) == (counts["a"], counts["b"])
    assert paid_answers(shop) == 3


@pytest.mark.parametrize("command", ["lock", "run", "harvest"])
def test_every_phase_fails_on_a_locked_state_with_one_line(
    tmp_path: Path, command: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    shop = night_shop(tmp_path)
    for key, value in shop.env.items():
        monkeypatch.setenv(key, value)
    holder = Holder(shop.config.state_path)
    holder.take()
    try:
        code = main([command, "--config", str(shop.config_path)])
    finally:
        holder.close()
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith(f"sheetbot: error: the state file {shop.config.state_path} is locked by another program")
    assert "unexpected" not in err and "Traceback" not in err and err.count("\n") == 1
    assert shop.fake.requests == []


def test_batch_mode_a_state_locked_while_results_are_read_stops_cleanly_and_the_next_run_resubmits_nothing(
    tmp_path: Path,
) -> None:
    from test_batch import BLOG, BatchShop

    shop = BatchShop(tmp_path, workflows={"blog": BLOG}, limits=WAIT)
    for n in range(3):
        shop.add(type="blog", input=f"post {n}")
    shop.lock()
    shop.clock.set(at("2026-11-24T01:00"))
    holder = Holder(shop.config.state_path)
    real_sleep = shop.sleep

    async def poll_wait(seconds: float) -> None:  # while the batch runs, a backup tool takes the lock
        holder.take()
        await real_sleep(seconds)

    shop.sleep = poll_wait  # type: ignore[method-assign]
    with pytest.raises(StateUnavailableError, match="is locked by another program"):
        shop.run()
    holder.close()
    del shop.sleep
    shop.clock.set(at("2026-11-24T01:30"))
    report = shop.run()  # polls the batch it knows and stores its results: nothing is sent again
    assert shop.batch.creates == ["msgbatch_1"] and shop.fake.requests == []
    assert report.done.total() == 3 and {r["status"] for r in shop.rows()} == {"review"}
    assert paid_answers(shop) == 3
