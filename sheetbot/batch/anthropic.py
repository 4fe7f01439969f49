"""Anthropic Message Batches: one ``params`` per request, exactly the body a live call sends.

Limits: 100,000 requests or 256 MB a batch. ``custom_id`` must match ``[A-Za-z0-9_-]{1,64}``, so
``task:attempt:step`` travels escaped (base.wire_id) and is decoded when results are read.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Sequence
from typing import Any, TypeVar

import anthropic
import httpx2

from sheetbot.batch.base import BatchResult, BatchStatus, ItemError, from_wire_id, json_bytes, wire_id
from sheetbot.providers.anthropic_messages import _to_completion, message_params
from sheetbot.providers.base import CompletionRequest
from sheetbot.providers.errors_map import ErrorContext, connection_error, malformed_error, status_error

T = TypeVar("T")


class AnthropicBatches:
    name = "anthropic"
    max_requests = 100_000
    max_bytes = 256 * 1024 * 1024

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str | None,
        http_client: httpx2.AsyncClient | None = None,
        label: str = "anthropic",
        api_key_env: str | None = None,
        max_retries: int = 2,
    ) -> None:
        self._ctx = ErrorContext(
            label=label, model="(batch)", where=base_url or label, api_key_env=api_key_env, secret=api_key
        )
        self._client = anthropic.AsyncAnthropic(
            api_key=api_key, base_url=base_url, max_retries=max_retries, http_client=http_client
        )

    @staticmethod
    def _line(request: CompletionRequest) -> dict[str, Any]:
        return {"custom_id": wire_id(request.custom_id), "params": message_params(request)}

    def request_bytes(self, request: CompletionRequest) -> int:
        return json_bytes(self._line(request))

    async def _guard(self, call: Awaitable[T]) -> T:
        """SDK errors become Retryable/PermanentProviderError with the usual one-line messages."""
        try:
            return await call
        except anthropic.APIStatusError as exc:
            raise status_error(exc.status_code, exc.body, exc.response.headers, self._ctx, exc.message) from None
        except anthropic.APIConnectionError as exc:
            raise connection_error(self._ctx, exc.__cause__) from None
        except (anthropic.APIResponseValidationError, json.JSONDecodeError) as exc:
            raise malformed_error(self._ctx, str(exc)) from None

    async def submit(self, requests: Sequence[CompletionRequest]) -> str:
        lines = [self._line(r) for r in requests]
        batch = await self._guard(self._client.messages.batches.create(requests=lines))  # type: ignore[arg-type]
        return batch.id

    async def poll(self, batch_id: str) -> BatchStatus:
        batch = await self._guard(self._client.messages.batches.retrieve(batch_id))
        counts = batch.request_counts.model_dump()
        return BatchStatus(ended=batch.processing_status == "ended", counts={k: int(v) for k, v in counts.items()})

    async def results(self, batch_id: str) -> AsyncIterator[BatchResult]:
        decoder = await self._guard(self._client.messages.batches.results(batch_id))
        async for item in decoder:
            custom_id = from_wire_id(item.custom_id)
            result = item.result
            if result.type == "succeeded":
                message = result.message
                yield custom_id, _to_completion(message, message.model, 0.0)
            elif result.type == "errored":
                error = getattr(result.error, "error", None)
                text = getattr(error, "message", "") or str(result.error)
                yield custom_id, ItemError("errored", f"{getattr(error, 'type', 'error')}: {text}")
            else:
                yield custom_id, ItemError(result.type, f"the request was {result.type} before it ran")

    async def cancel(self, batch_id: str) -> None:
        await self._guard(self._client.messages.batches.cancel(batch_id))

    async def aclose(self) -> None:
        await self._client.close()
