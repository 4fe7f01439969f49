"""The provider seam: one model call in, one completion out, no vendor types across it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol, TypedDict


class ProviderEvent(TypedDict, total=False):
    """The details of what a provider did on its own (sheetbot/providers/resilient.py), as the audit log
    keeps them: ``provider`` always; a retry adds the call and the wait, a ``circuit_open`` its count."""

    provider: str
    custom_id: str | None
    attempt: int
    wait_s: float
    status_code: int | None
    error: str
    failures: int
    cooldown_s: float


#: Hears an event's name (retry, rate_limited, circuit_open, circuit_half_open, circuit_closed) and its details.
EventHook = Callable[[str, ProviderEvent], None]


@dataclass(frozen=True)
class CompletionRequest:
    """Everything one call needs. ``custom_id`` names the task and attempt (``task:attempt:step``)."""

    custom_id: str
    model: str
    system: str
    prompt: str
    max_tokens: int
    timeout_s: float
    temperature: float | None = None
    #: A JSON schema (an object with properties) the answer must follow: the provider asks for it through
    #: its structured-output or tool mechanism and returns the parsed object in ``Completion.data``.
    output_schema: Mapping[str, object] | None = None
    #: The system prompt is the same for every row of the workflow (no per-row ``{{...}}``): Anthropic
    #: marks it for prompt caching, so the rows after the first read it at a tenth of the input price.
    cache_system: bool = False


@dataclass(frozen=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cache_write_tokens: int = 0
    cache_read_tokens: int = 0


@dataclass(frozen=True)
class Completion:
    text: str
    usage: Usage
    model: str
    #: The model stopped because it reached max_tokens: the answer is cut off.
    truncated: bool = False
    latency_s: float = 0.0
    #: True when no model was called (preview): the text describes the call instead.
    preview: bool = False
    estimated_usd: float | None = None
    #: The parsed structured answer when the request had an output_schema (not yet validated).
    data: Mapping[str, object] | None = None
    #: What the provider did differently from the request because the server refused a part of it
    #: (e.g. JSON mode instead of json_schema): one line each, for the run report.
    notes: tuple[str, ...] = ()


class Provider(Protocol):
    """A model vendor. Implementations raise RetryableProviderError or PermanentProviderError."""

    name: str

    async def complete(self, request: CompletionRequest) -> Completion: ...

    async def aclose(self) -> None: ...
