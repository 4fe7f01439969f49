"""The batch seam: submit many requests as one job, poll it, read its results, cancel it.

Orchestration (night.py) sees only this interface; anthropic.py and openai.py speak the vendors'
Batch APIs. Results come back in any order and are matched on ``custom_id`` (``task:attempt:step``).
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from sheetbot.errors import PermanentProviderError
from sheetbot.providers.base import Completion, CompletionRequest


class BatchUnsupportedError(PermanentProviderError):
    """The server has no Batch API (many OpenAI-compatible local servers): the rows may run live."""


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


BatchResult = tuple[str, Completion | ItemError]


class BatchProvider(Protocol):
    name: str
    #: The provider's limits for one batch: requests, and bytes of request data.
    max_requests: int
    max_bytes: int

    def request_bytes(self, request: CompletionRequest) -> int: ...

    async def submit(self, requests: Sequence[CompletionRequest]) -> str: ...

    async def poll(self, batch_id: str) -> BatchStatus: ...

    def results(self, batch_id: str) -> AsyncIterator[BatchResult]: ...

    async def cancel(self, batch_id: str) -> None: ...

    async def aclose(self) -> None: ...


def split(
    requests: Sequence[CompletionRequest],
    *,
    max_requests: int,
    max_bytes: int,
    size: Callable[[CompletionRequest], int],
) -> list[list[CompletionRequest]]:
    """Chunks that fit one batch each, in order. A single request over ``max_bytes`` still gets its own
    chunk: the provider then refuses it with a message, rather than sheetbot dropping it silently."""
    chunks: list[list[CompletionRequest]] = []
    current: list[CompletionRequest] = []
    used = 0
    for request in requests:
        n = size(request)
        if current and (len(current) >= max_requests or used + n > max_bytes):
            chunks.append(current)
            current, used = [], 0
        current.append(request)
        used += n
    if current:
        chunks.append(current)
    return chunks


def json_bytes(value: object) -> int:
    return len(json.dumps(value, ensure_ascii=False).encode("utf-8")) + 1


_SAFE = re.compile(r"[A-Za-z0-9-]")


def wire_id(custom_id: str) -> str:
    """``custom_id`` in Anthropic's alphabet (``[A-Za-z0-9_-]{1,64}``), reversibly: other characters,
    ``_`` included, become ``_`` and two hex digits (``t1:1:final`` → ``t1_3a1_3afinal``)."""
    return "".join(c if _SAFE.fullmatch(c) else "".join(f"_{b:02x}" for b in c.encode()) for c in custom_id)


def from_wire_id(wire: str) -> str:
    raw = bytearray()
    i = 0
    while i < len(wire):
        if wire[i] == "_":
            raw.append(int(wire[i + 1 : i + 3], 16))
            i += 3
        else:
            raw += wire[i].encode()
            i += 1
    return raw.decode("utf-8")
