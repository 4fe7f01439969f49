"""Anthropic Message Batches: one ``params`` per request, exactly the body a live call sends.

Limits: 100,000 requests or 256 MB a batch. ``custom_id`` must match ``^[a-zA-Z0-9_-]{1,64}$``: requests
travel under wire ids (base.wire_ids), which always do.

Finding a batch again. Message Batches carry no metadata, and a running batch shows neither its requests
nor their custom_ids (results exist only once it ended). What the list does show, newest first, is each
batch's ``created_at`` and ``request_counts``, whose sum is the number of requests. So ``find`` returns
every batch created since the create was sent (less a clock margin) with exactly as many requests:
candidates, not proof. The night adopts them only once a create could no longer be in flight, never
cancels one, and takes one for ours only when its results carry our wire ids, which start with the
key of that one create: another program's batch of the same size is then set aside, and its requests
are never stored as ours.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from datetime import datetime
from typing import Any

import anthropic

from sheetbot.batch.base import (
    CLOCK_MARGIN,
    MAX_PAGES,
    BatchResult,
    BatchStatus,
    ItemError,
    SdkBatches,
    Sighting,
    json_bytes,
)
from sheetbot.providers.anthropic_messages import ANTHROPIC, _to_completion, message_params
from sheetbot.providers.base import CompletionRequest


class AnthropicBatches(SdkBatches[anthropic.AsyncAnthropic]):
    """Message Batches on the anthropic SDK, with the live provider's client and error ladder."""

    vendor = ANTHROPIC
    name = "anthropic"
    max_requests = 100_000
    max_bytes = 256 * 1024 * 1024

    @staticmethod
    def _line(wire: str, request: CompletionRequest) -> dict[str, Any]:
        return {"custom_id": wire, "params": message_params(request)}

    def request_bytes(self, request: CompletionRequest) -> int:
        return json_bytes(self._line("x" * 24, request))

    async def upload(self, requests: Mapping[str, CompletionRequest]) -> str:
        return ""  # the create carries the requests

    async def create(self, *, key: str, requests: Mapping[str, CompletionRequest], file_id: str) -> str:
        lines = [self._line(wire, r) for wire, r in requests.items()]
        model = next(iter(requests.values())).model if requests else "(batch)"
        once = self._client.with_options(max_retries=0)  # a retried create is a second batch, paid twice
        batch = await self._call(once.messages.batches.create(requests=lines), model)  # type: ignore[arg-type]
        return batch.id

    async def find(self, *, key: str, file_id: str, count: int, since: datetime) -> Sighting:
        oldest = since - CLOCK_MARGIN
        found: list[str] = []
        page = await self._call(self._client.messages.batches.list(limit=100))
        for _ in range(MAX_PAGES):
            for batch in page.data:
                if batch.created_at < oldest:
                    return Sighting(found, complete=True, tagged=False)
                if sum(batch.request_counts.model_dump().values()) == count:
                    found.append(batch.id)
            if not page.has_next_page():
                return Sighting(found, complete=True, tagged=False)
            page = await self._call(page.get_next_page())
        return Sighting(found, complete=False, tagged=False)

    async def poll(self, batch_id: str) -> BatchStatus:
        batch = await self._call(self._client.messages.batches.retrieve(batch_id))
        counts = batch.request_counts.model_dump()
        return BatchStatus(ended=batch.processing_status == "ended", counts={k: int(v) for k, v in counts.items()})

    async def results(self, batch_id: str) -> AsyncIterator[BatchResult]:
        decoder = await self._call(self._client.messages.batches.results(batch_id))
        async for item in decoder:
            result = item.result
            if result.type == "succeeded":
                message = result.message
                yield item.custom_id, _to_completion(message, message.model, 0.0)
            elif result.type == "errored":
                error = getattr(result.error, "error", None)
                text = getattr(error, "message", "") or str(result.error)
                yield item.custom_id, ItemError("errored", f"{getattr(error, 'type', 'error')}: {text}")
            else:
                yield item.custom_id, ItemError(result.type, f"the request was {result.type} before it ran")

    async def cancel(self, batch_id: str) -> None:
        await self._call(self._client.messages.batches.cancel(batch_id))
