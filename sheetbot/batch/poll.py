"""Waiting for batches: poll with backoff, and at the window end cancel what still runs.

A mixin of the batch rounds (mode.py), apart so each file stays small. Time comes from the night's
clock and every wait goes through its injected ``sleep``: tests run a four-hour window in milliseconds.
Every call is bounded (timing.py): a poll that never answers is cut at its time limit or the deadline,
whichever comes first, and counts as a failed poll. A batch found only by listing (send.py) may be
another program's: it is never cancelled, and finishes on its own.

A refused key (401/403, no quota: :class:`AccountProviderError`) is not a failed poll: every later poll
would be refused alike until a person fixes the key. The provider's batches are no longer polled (nor
cancelled: they are paid for, and the next run collects them), and ``refused`` keeps the reason, which
names the environment variable, for the rows and the run summary.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from sheetbot.batch.base import BatchStatus
from sheetbot.errors import AccountProviderError, ProviderError

if TYPE_CHECKING:
    from collections.abc import Iterable

    from sheetbot.batch.base import BatchProvider
    from sheetbot.batch.timing import Bounds
    from sheetbot.night.context import BatchNight, NightContext
    from sheetbot.state import State
    from sheetbot.state.records import BatchRecord

#: Polls back off from ``batch_poll_s`` up to this many times it while a batch runs.
MAX_BACKOFF = 4.0


class Polling:
    ctx: NightContext
    state: State
    night: BatchNight
    cancelled: set[str]
    bounds: Bounds
    #: Providers whose key was refused tonight, with the reason: their batches are not polled again.
    refused: dict[str, AccountProviderError]

    def client(self, provider: str) -> BatchProvider:
        raise NotImplementedError

    async def _poll(self, provider: str, batch_id: str) -> BatchStatus:
        client = self.client(provider)
        return await self.bounds.call(
            functools.partial(client.poll, batch_id),
            limit_s=client.time_limit_s,
            label=provider,
            what=f"poll batch {batch_id}",
        )

    async def _wait(self, batches: list[BatchRecord], *, providers: Iterable[str] = (), once: bool = False) -> None:
        """Poll until every batch ended; at the window end, cancel what still runs (its results so far are kept).
        ``once``: one poll and one pause only (a send waits to be looked up again; ``providers`` are its)."""
        waiting = {b["batch_id"]: b for b in batches}
        polls = 0
        pace = {b["provider"] for b in batches} | set(providers)
        while waiting or once:
            for batch_id, batch in list(waiting.items()):
                if batch_id not in waiting:
                    continue  # its provider refused the key on an earlier poll of this pass
                try:
                    status = await self._poll(batch["provider"], batch_id)
                except AccountProviderError as exc:
                    self.refused[batch["provider"]] = exc
                    for other in [b for b, x in waiting.items() if x["provider"] == batch["provider"]]:
                        del waiting[other]
                    continue
                except ProviderError:
                    continue  # a poll that failed, or got no answer in time, is tried again on the next one
                if status.ended:
                    self.state.update_batch(batch_id, status="ended", counts=status.counts, now=self.ctx.now())
                    del waiting[batch_id]
            if not waiting and not once:
                return
            if self.night.stopping():
                return  # SIGTERM: the batches stay open in the state, and the restart polls them
            if self.night.out_of_time():
                await self._cancel(list(waiting.values()))
                return
            base = min(self.ctx.config.providers[p].batch_poll_s for p in pace)
            delay = min(base * 1.5**polls, base * MAX_BACKOFF)
            deadline = self.night.deadline
            if deadline is not None:
                delay = max(min(delay, (deadline - self.ctx.now()).total_seconds()), 0.001)
            polls += 1
            await self.ctx.sleep(delay)
            if once:
                return

    async def _cancel(self, batches: list[BatchRecord]) -> None:
        for batch in batches:
            if batch.get("found_by") == "listing":
                continue  # maybe another program's: left to finish; if ours, its results are stored later
            client = self.client(batch["provider"])
            try:
                await self.bounds.call(
                    functools.partial(client.cancel, batch["batch_id"]),
                    limit_s=client.time_limit_s,
                    label=batch["provider"],
                    what=f"cancel batch {batch['batch_id']}",
                )
                self.cancelled.add(batch["batch_id"])
                for _ in range(3):  # cancelling takes a moment; then the finished results can be read
                    status = await self._poll(batch["provider"], batch["batch_id"])
                    if status.ended:
                        self.state.update_batch(
                            batch["batch_id"], status="ended", counts=status.counts, now=self.ctx.now()
                        )
                        break
                    await self.ctx.sleep(5.0)
            except ProviderError:
                continue  # still open in the state: the next run polls it and keeps what it finished
