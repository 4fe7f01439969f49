"""The batch seam's types: one job of many requests, as orchestration (sheetbot.batch) and the night's
context (sheetbot/night/context.py, which carries a factory of these clients) see it. The clients that speak
the vendors' Batch APIs, and how requests travel under wire ids, are in sheetbot/batch/base.py.

Kept in the providers layer, beside the live seam (base.py), so the night can name a batch client's type
without importing batch mode, a layer above it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from sheetbot.providers.base import Completion, CompletionRequest


@dataclass(frozen=True)
class BatchStatus:
    """Where a batch is: ``ended`` once every request has a result (or the batch failed or was cancelled)."""

    ended: bool
    counts: dict[str, int] = field(default_factory=dict)
    #: The whole batch failed (e.g. OpenAI rejected the input file): every request needs another go.
    failed: str = ""


@dataclass(frozen=True)
class ItemError:
    """One request without an answer. ``kind``: errored, expired or canceled."""

    kind: str
    message: str


#: A result under its wire id (see sheetbot.batch.base.wire_ids).
BatchResult = tuple[str, Completion | ItemError]


@dataclass(frozen=True)
class Sighting:
    """What the provider's list of batches shows for one create of ours."""

    #: Batches that are the one created under the key (``tagged``), or may be (same size, made since).
    batch_ids: list[str]
    #: The listing reached back before the create was sent: a batch it does not show does not exist.
    complete: bool
    #: The provider carries our key on the batch (OpenAI ``metadata``): a batch found is ours for sure.
    tagged: bool


class BatchProvider(Protocol):
    name: str
    #: The provider's limits for one batch: requests, and bytes of request data.
    max_requests: int
    max_bytes: int
    #: The longest one call may take, its own retries included; the night's deadline may cut it shorter.
    time_limit_s: float

    def request_bytes(self, request: CompletionRequest) -> int: ...

    async def upload(self, requests: Mapping[str, CompletionRequest]) -> str:
        """Requests by wire id into the provider's input file; ``""`` when the create carries them itself."""
        ...

    async def create(self, *, key: str, requests: Mapping[str, CompletionRequest], file_id: str) -> str:
        """One create, never retried; tagged with ``key`` where the provider allows it. Returns the batch id."""
        ...

    async def find(self, *, key: str, file_id: str, count: int, since: datetime) -> Sighting: ...

    async def poll(self, batch_id: str) -> BatchStatus: ...

    def results(self, batch_id: str) -> AsyncIterator[BatchResult]: ...

    async def cancel(self, batch_id: str) -> None: ...

    async def aclose(self) -> None: ...
