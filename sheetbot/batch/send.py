"""Sending a batch so that it is never paid twice, whatever dies or goes silent on the way.

One create goes out in four steps, each committed before the next:

1. record the send: a new key, its requests with their wire ids (``<key>-<n>``, base.wire_ids), and what
   each attempt row will need;
2. upload the input file (OpenAI) and record its id;
3. record that the create is going out, then send it once (no SDK retries: a retried create after a
   lost answer is a second batch);
4. store the batch id, closing the send in the same commit.

A kill before step 3 leaves a send that never went out: no batch can exist, so it is closed and its rows
go out again under a new key. Anything unclear after that (a kill, a timeout, a 5xx, a dropped
connection) leaves the send open: its rows count as in flight and are not sent again. Every round, and
every run at its start, looks the open sends up (``find``):

* OpenAI batches carry the key (``metadata``) and the input file: a batch found is adopted at once.
* Anthropic batches carry nothing of ours (see anthropic.py): each batch of the same size made since the
  create went out is adopted as a candidate once no create could still be in flight (the client's time
  limit plus ``SETTLE_S``); candidates are never cancelled, and only results carrying our wire ids are
  stored, so another program's batch is set aside (``foreign``) unharmed.

A send is closed as absent, and its rows sent again, only when a complete listing made after that moment
shows no batch for it. A refusal (4xx) is certain too: no batch was made, and the rows carry the reason.

The key is random (``sb`` + 14 hex digits) and recorded before the create, which is what makes it
reconcilable; one derived from night, round and chunk alone would repeat for two sheetbots on one account,
and for a single row's follow-up round.
"""

from __future__ import annotations

import functools
import secrets
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sheetbot.batch.base import wire_ids
from sheetbot.batch.collect import Pending, request_record
from sheetbot.errors import ProviderError, RetryableProviderError

if TYPE_CHECKING:
    from sheetbot.batch.base import BatchProvider
    from sheetbot.batch.timing import Bounds
    from sheetbot.night.context import NightContext
    from sheetbot.providers.base import CompletionRequest
    from sheetbot.state import State
    from sheetbot.state.records import BatchRecord, BatchSend

#: How long after a create's time limit the vendor may still be making the batch it asked for.
SETTLE_S = 60.0


def unclear(send: BatchSend) -> str:
    return (
        f"deferred: sheetbot cannot tell yet whether {send['provider']} made batch {send['key']} "
        "(its answer was lost); the next run looks it up before these rows are sent again"
    )


class Sending:
    """A mixin of the batch rounds (mode.py): send one batch, and look up the sends left unclear."""

    ctx: NightContext
    state: State
    bounds: Bounds
    notes: list[str]
    #: Budget held per request until its result is stored: (workflow, worst-case dollars).
    held: dict[str, tuple[str, float]]

    def client(self, provider: str) -> BatchProvider:
        raise NotImplementedError

    def release(self, custom_id: str) -> None:
        raise NotImplementedError

    async def _send(
        self, provider: str, model: str, night: str, items: list[tuple[Pending, CompletionRequest]]
    ) -> BatchRecord | None:
        """The stored batch; None when the create's outcome is unclear (the send stays open); raises
        ProviderError when no batch was made (the caller fails or defers the rows)."""
        client = self.client(provider)
        key = "sb" + secrets.token_hex(7)
        wires = wire_ids(key, [r.custom_id for _, r in items])
        records = {r.custom_id: request_record(p, r, provider, wire=wires[r.custom_id]) for p, r in items}
        step = "+".join(sorted({rec["step"] for rec in records.values()}))
        self.state.record_send(
            key, provider=provider, model=model, night=night, step=step, requests=records, now=self.ctx.now()
        )
        by_wire = {wires[r.custom_id]: r for _, r in items}
        try:
            file_id = await self.bounds.call(
                functools.partial(client.upload, by_wire),
                limit_s=client.time_limit_s,
                label=provider,
                what=f"upload the requests of batch {key}",
            )
        except ProviderError:
            self.state.close_send(key, "absent")  # no create went out: no batch exists
            raise
        if file_id:
            self.state.send_uploaded(key, file_id)
        self.state.send_going_out(key, self.ctx.now())
        try:
            batch_id = await self.bounds.call(
                functools.partial(client.create, key=key, requests=by_wire, file_id=file_id),
                limit_s=client.time_limit_s,
                label=provider,
                what=f"create batch {key}",
            )
        except RetryableProviderError as exc:  # the batch may exist: look it up, never send it again blindly
            self.notes.append(f"{provider} batch {key}: {exc}; looked up before anything is sent again")
            return None
        except ProviderError:
            self.state.close_send(key, "refused")  # refused (4xx): no batch was made
            raise
        self.state.add_batch(
            batch_id,
            provider=provider,
            model=model,
            night=night,
            step=step,
            requests=records,
            now=self.ctx.now(),
            send_key=key,
        )
        return self.state.batch(batch_id)

    async def _look_up_sends(self) -> None:
        """Every open send: adopt its batch, close it when certainly absent, or leave it for a later look."""
        for send in self.state.open_sends():
            if send["sent_at"] is None:
                self._absent(send)  # killed before the create went out: no batch can exist
                continue
            client = self.client(send["provider"])
            since = datetime.fromisoformat(send["sent_at"])
            try:
                seen = await self.bounds.call(
                    functools.partial(
                        client.find, key=send["key"], file_id=send["file_id"], count=len(send["requests"]), since=since
                    ),
                    limit_s=client.time_limit_s,
                    label=send["provider"],
                    what=f"look up batch {send['key']}",
                )
            except ProviderError:
                continue  # asked again next round or run; its rows wait, unsent
            settled = self.ctx.now() >= since + timedelta(seconds=client.time_limit_s + SETTLE_S)
            found = seen.batch_ids
            if not seen.tagged:  # a batch we know for sure (created, or found by key) is no candidate
                owned = self.state.batch_ids(found_by=("", "key"))
                found = [b for b in found if b not in owned]
            if found and (seen.tagged or settled):
                for batch_id in found:
                    self.state.adopt_batch(
                        batch_id, send, found_by="key" if seen.tagged else "listing", now=self.ctx.now()
                    )
                self.notes.append(
                    f"{send['provider']} batch {send['key']}: its create's answer was lost; found "
                    f"{', '.join(found)} and kept it, nothing sent twice"
                )
            elif not found and seen.complete and settled:
                self._absent(send)

    def _absent(self, send: BatchSend) -> None:
        """No batch exists for this send: its rows may go out again (budget held for them is freed)."""
        self.state.close_send(send["key"], "absent")
        for custom_id in send["requests"]:
            self.release(custom_id)
