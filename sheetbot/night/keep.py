"""The night's state writes under faults: wait for a lock without holding up the night, keep what was paid.

Inside the async night every model call's result and every row's outcome is written to the state from
the event loop. SQLite's busy handler waits by blocking the thread, which would freeze every call in
flight (and let their timers fire) while a backup tool holds the lock. So these writes try with a short
busy timeout and, while the state is locked, wait on the event loop between tries, for at most
``limits.state_wait_s``. Calls in flight go on; each task waits for its own write before its next call,
so what is spent while the state is locked is bounded by the providers' concurrency. Any other write in
the night waits at most ``BLOCK_S``.

A paid answer that meets a locked state is first appended to the journal (sheetbot.state.journal), so
it survives even a kill during the wait. When the wait runs out, or the disk is full, or the file cannot
be written at all, the state is *broken* for the rest of the run: no new call starts, every answer still
arriving goes to the journal, rows not finished stay `running` for the next run (as after a stop), and
the run ends with the one-line error saying what was kept where. If even the journal cannot be written,
nothing more can be done for those answers than to say so, and still start nothing new.

A truly full disk refuses the journal's append too (the same disk). So while the calls run, a reserve of
space is held beside the state (sheetbot.state.reserve), sized here for the answers a night can have in
flight. An append refused for want of space (ENOSPC, EDQUOT) releases it and is tried once more; the disk
is full, so nothing new starts either way, and the final message says the reserve was used. The freed
space also lets the state take the journal at the end of the night (``recover``) when SQLite was stopped
by the same full disk: the rows' outputs then reach the board tonight. A reserve still held at that point
is kept, not spent on the state: the journal holds those answers safely, and the next night's calls need
the reserve more than the state needs it now.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager, nullcontext
from datetime import datetime

from sheetbot.config.models import Config
from sheetbot.errors import StateUnavailableError
from sheetbot.state import Attempt, State
from sheetbot.state.audit import model_call_detail, store_call, store_calls
from sheetbot.state.faults import disk_full, locked
from sheetbot.state.journal import JournalEntry, TaskSettled, call_entry, paid_answers, settled_entry
from sheetbot.state.reserve import Reserve, no_space, reserve_path

log = logging.getLogger(__name__)

#: One try's wait in SQLite's busy handler (blocking the event loop), and the longest blocking wait of
#: the night's other writes.
TRY_S = 0.05
BLOCK_S = 5.0
#: Pauses between tries while the state is locked: short first (a checkpoint), then up to this.
MAX_PAUSE_S = 5.0

#: The reserve: room for the journal entries of every answer in flight when the disk fills, twice over. An
#: entry repeats its call's system prompt and prompt (PROMPT_BYTES: a template and the row's inputs; one
#: spreadsheet cell holds at most 32,767 characters, 4 bytes each in UTF-8 at worst, and a row rarely feeds
#: more than two long ones) and its answer (max_tokens at BYTES_PER_TOKEN: about 4 in English, up to 8 for
#: CJK, emoji and JSON escapes). With the defaults (4 calls in flight, 1,024 tokens) that is about 2 MiB.
#: At least 1 MiB (the settled rows' entries, a margin); at most 64 MiB (1,024 calls in flight at 200,000
#: tokens must not take gigabytes: past that, answers are still kept while the space lasts).
PROMPT_BYTES = 256 * 1024
BYTES_PER_TOKEN = 8
MIN_RESERVE_BYTES = 1 << 20
MAX_RESERVE_BYTES = 64 << 20


def reserve_size(config: Config) -> int:
    """Bytes to hold for tonight: calls in flight (each paying provider's concurrency) x the largest entry."""
    paying = [wf for wf in config.workflows.values() if wf.mode != "preview"]
    if not paying:
        return 0  # preview answers cost nothing: nothing to keep
    in_flight = sum(config.providers[p].concurrency for p in {wf.provider for wf in paying} if p in config.providers)
    tokens = max(max([wf.max_tokens] + [s.max_tokens or 0 for s in wf.steps]) for wf in paying)
    wanted = 2 * max(in_flight, 1) * (PROMPT_BYTES + tokens * BYTES_PER_TOKEN)
    return min(max(wanted, MIN_RESERVE_BYTES), MAX_RESERVE_BYTES)


class Keeper:
    """Writes a night's results to the state, waiting for a lock on the event loop, or journals them."""

    def __init__(
        self,
        state: State,
        *,
        wait_s: float,
        sleep: Callable[[float], Awaitable[None]],
        now: Callable[[], datetime],
        reserve_bytes: int = MIN_RESERVE_BYTES,
    ) -> None:
        self.state = state
        self.wait_s = wait_s
        self.sleep = sleep
        self.now = now
        self.reserve = Reserve(reserve_path(state.path))
        self.reserve_bytes = reserve_bytes
        #: The reserve was released tonight to keep answers on a full disk: the final message says so.
        self.reserve_used = False
        #: The fault that stopped the night's writes; from then on nothing new starts.
        self.broken: StateUnavailableError | None = None
        #: Entries journaled and not (yet) stored in the state; answers that could not be kept at all.
        self.kept: set[str] = set()
        #: Inside a transaction of ours (preview_group.py): we hold the write lock, no write waits for it.
        self.holding_lock = False
        #: Outcomes settled inside that transaction, written together before it commits (``flush_group``):
        #: nothing else reads a row's status during the group, and the group commits all or nothing anyway.
        self.settled: list[tuple[TaskSettled, datetime]] = []
        #: Likewise the group's preview calls (free: no model is called), stored with two executemany
        #: statements instead of a savepoint and two INSERTs each: a 10,000-row preview night spent a
        #: tenth of its time there. Nothing reads them back during the group: a row reads its own calls
        #: only when the group began with some stored (TaskRunner.uncalled), and the grader is handed
        #: the answer (Outcome.output).
        self.held_calls: list[tuple[Attempt, Mapping[str, str], datetime]] = []
        #: Other writes made during the group (a preview's grading record), in order, after the calls.
        self.held_writes: list[Callable[[], None]] = []
        self.lost = 0
        self.journal_problem = ""
        #: Something was journaled tonight: the end of the night stores it and empties the journal.
        self.journaled = False

    @contextmanager
    def night(self) -> Iterator[None]:
        """While the night's calls run: no statement freezes the event loop for longer than BLOCK_S, and the
        reserve holds the space the journal needs if the disk fills."""
        if self.reserve_bytes > 0:
            problem = self.reserve.hold(self.reserve_bytes)
            if problem:  # e.g. the disk is still full: the night runs, its answers kept while space lasts
                log.warning("no reserve of space beside the state tonight: %s", problem)
        with self.state.waiting_at_most(min(BLOCK_S, self.wait_s)):
            yield

    def fail(self, exc: StateUnavailableError) -> None:
        """The state cannot be used any more tonight: stop new calls."""
        if self.broken is None:
            self.broken = exc

    # -- the writes ------------------------------------------------------------------------------------
    async def store_call(self, attempt: Attempt, snapshot: Mapping[str, str]) -> None:
        """A model call's result, stored or kept in the journal; never raises for a fault of the state."""
        now = self.now()
        if self.holding_lock and self.broken is None and attempt.mode == "preview":
            self.held_calls.append((attempt, snapshot, now))
            return
        paid = attempt.ok or attempt.output_tokens > 0
        await self._write(
            lambda: call_entry(attempt, model_call_detail(attempt, snapshot), now=now),
            lambda: store_call(self.state, attempt, snapshot, now=now),
            paid=paid,
        )

    async def settle(self, change: TaskSettled) -> None:
        """A row's outcome; when the state cannot take it, the journal keeps it (the row stays `running`)."""
        now = self.now()
        if self.holding_lock and self.broken is None:
            self.settled.append((change, now))
            return
        await self._write(lambda: settled_entry(change, now=now), lambda: self.state.settle_task(change, now=now))

    def hold(self, write: Callable[[], None]) -> bool:
        """Inside a group, keep ``write`` for its end (after the group's calls); False: write it now yourself."""
        if not self.holding_lock or self.broken is not None:
            return False
        self.held_writes.append(write)
        return True

    def flush_group(self) -> None:
        """Write what was held during a group, inside its transaction, in the order the rows need: the
        calls, the writes that follow them, the outcomes (raises what the state raises)."""
        calls, writes, settled = self.held_calls, self.held_writes, self.settled
        self.held_calls, self.held_writes, self.settled = [], [], []
        store_calls(self.state, calls)
        for write in writes:
            write()
        if settled:
            self.state.settle_tasks(settled)

    def drop_group(self) -> None:
        """Forget what was held: written by ``flush_group``, or rolled back with the group."""
        self.held_calls, self.held_writes, self.settled = [], [], []

    def settle_now(self, change: TaskSettled) -> None:
        """``settle`` for a caller that cannot await (a batch round): one blocking try, then the journal."""
        now = self.now()
        if self.broken is None:
            try:
                self.state.settle_task(change, now=now)
                return
            except StateUnavailableError as exc:
                self.fail(exc)
        self._keep(settled_entry(change, now=now))

    async def _write(
        self, make_entry: Callable[[], JournalEntry], write: Callable[[], None], *, paid: bool = True
    ) -> None:
        """``make_entry`` builds the journal entry only when the state does not take the write at once: on a
        10,000-row night, hashing and copying every answer for a journal that stays empty costs seconds.
        Attempt and TaskSettled are frozen, so the entry built late says what the write said."""
        if self.broken is None:
            try:
                with nullcontext() if self.holding_lock else self.state.waiting_at_most(TRY_S):
                    write()
                return
            except StateUnavailableError as exc:
                if exc.kind != "locked":
                    self.fail(exc)
        entry = make_entry()
        if not self._keep(entry, paid=paid) or self.broken is not None:
            if self.broken is None:  # not even the journal can keep it: stop spending now
                self.fail(locked(self.state.path, self.wait_s))
            return
        await self._wait_and_store(entry)

    async def _wait_and_store(self, entry: JournalEntry) -> None:
        """The state is locked: store the (journaled) entry once the lock is gone, within ``wait_s``."""
        waited, pause = 0.0, 0.1
        while self.broken is None:
            await self.sleep(pause)
            waited += pause + TRY_S
            try:
                with self.state.waiting_at_most(TRY_S):
                    self.state.store_entry(entry)
                self.kept.discard(entry["id"])
                return
            except StateUnavailableError as exc:
                if exc.kind != "locked":
                    self.fail(exc)
                elif waited >= self.wait_s:
                    self.fail(locked(self.state.path, self.wait_s))
            pause = min(pause * 2, MAX_PAUSE_S, max(self.wait_s - waited, TRY_S))

    def _keep(self, entry: JournalEntry, *, paid: bool = True) -> bool:
        """Append to the journal; False (and counted as lost) if even that fails."""
        try:
            self._append(entry)
        except OSError as exc:
            self.journal_problem = exc.strerror or str(exc)
            if entry["kind"] == "call" and paid:
                self.lost += 1
            return False
        self.kept.add(entry["id"])
        self.journaled = True
        return True

    def _append(self, entry: JournalEntry) -> None:
        """The journal's append; on a full disk, once more in the space the reserve held. A full disk stops
        new calls whatever the state said."""
        try:
            self.state.journal.append(entry)
        except OSError as exc:
            if not no_space(exc):
                raise
            self.fail(disk_full(self.state.path))
            if not self.reserve.release():
                raise
            self.reserve_used = True
            log.warning("the disk holding %s is full: released the reserve %s", self.state.path, self.reserve.path)
            self.state.journal.append(entry)

    # -- the end of the night --------------------------------------------------------------------------
    def recover(self) -> None:
        """After the night's calls: store what the journal keeps if the state takes it now (waiting the full
        ``state_wait_s``: nothing else is running), else raise the one-line error."""
        if not self.journaled:
            return
        paid = self._paid_kept()
        try:
            self.state.replay_journal()  # what is already stored is skipped; then the journal is emptied
        except StateUnavailableError:
            if self.broken is None:
                return  # every entry is stored already; the next open empties the journal
            raise self.error(kept=paid) from None
        self.kept.clear()

    def check(self) -> None:
        """The night stopped early because of the state: exit non-zero, and say so, even once recovered."""
        if self.broken is not None:
            raise self.error(kept=0)

    def error(self, *, kept: int) -> StateUnavailableError:
        assert self.broken is not None
        return self.broken.told(
            again="run `sheetbot run` again",
            kept=kept,
            lost=self.lost,
            journal=str(self.state.journal.path),
            journal_problem=self.journal_problem,
            reserve=str(self.reserve.path) if self.reserve_used else "",
        )

    def _paid_kept(self) -> int:
        """Paid answers journaled tonight and not (yet) in the state."""
        return paid_answers(e for e in self.state.journal.entries() if e["id"] in self.kept)
