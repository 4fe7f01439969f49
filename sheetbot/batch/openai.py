"""OpenAI Batch API: a JSONL file of chat-completion bodies, uploaded with purpose ``batch``.

Limits: 50,000 requests or 200 MB an input file. The output file holds answers, the error file
failures (``batch_expired`` / ``batch_cancelled`` for requests that never ran). A server without
``/v1/batches`` or ``/v1/files`` (most OpenAI-compatible local servers) answers 404: that becomes
BatchUnsupportedError, and the night runs those rows live instead (see mode.py).

Finding a batch again: every create carries ``metadata={"sheetbot_key": key}`` and names the input file
uploaded for it; the list of batches (newest first) shows both, so a batch found is ours for certain.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from datetime import datetime
from typing import Any, Literal

import openai
from openai.types.chat import ChatCompletion

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
from sheetbot.errors import BatchUnsupportedError, ProviderError
from sheetbot.providers.base import CompletionRequest
from sheetbot.providers.errors_map import ErrorContext
from sheetbot.providers.openai_chat import OPENAI, _to_completion, chat_body

ENDPOINT: Literal["/v1/chat/completions"] = "/v1/chat/completions"
_ENDED = {"completed", "failed", "expired", "cancelled"}
_ITEM_KINDS = {"batch_expired": "expired", "batch_cancelled": "canceled"}


class OpenAIBatches(SdkBatches[openai.AsyncOpenAI]):
    """The Batch and Files APIs on the openai SDK, with the live provider's client and error ladder."""

    vendor = OPENAI
    name = "openai"
    max_requests = 50_000
    max_bytes = 200 * 1024 * 1024

    def _line(self, wire: str, request: CompletionRequest) -> dict[str, Any]:
        body = chat_body(request, base_url=self._base_url)  # the same body as a live call's
        return {"custom_id": wire, "method": "POST", "url": ENDPOINT, "body": body}

    def request_bytes(self, request: CompletionRequest) -> int:
        return json_bytes(self._line("x" * 24, request))

    def _status_error(
        self, status: int, body: object, headers: Mapping[str, str] | None, ctx: ErrorContext, fallback: str = ""
    ) -> ProviderError:
        if status == 404:  # the SDK's NotFoundError
            return BatchUnsupportedError(
                f"{self.label} at {self._where} has no Batch API (HTTP 404 on /v1/files or /v1/batches): "
                "set the workflow's mode to live"
            )
        return super()._status_error(status, body, headers, ctx, fallback)

    async def upload(self, requests: Mapping[str, CompletionRequest]) -> str:
        data = "".join(json.dumps(self._line(w, r), ensure_ascii=False) + "\n" for w, r in requests.items())
        model = next(iter(requests.values())).model if requests else "(batch)"
        upload = await self._call(
            self._client.files.create(file=("batch.jsonl", data.encode("utf-8")), purpose="batch"), model
        )
        return upload.id

    async def create(self, *, key: str, requests: Mapping[str, CompletionRequest], file_id: str) -> str:
        model = next(iter(requests.values())).model if requests else "(batch)"
        once = self._client.with_options(max_retries=0)  # a retried create is a second batch, paid twice
        batch = await self._call(
            once.batches.create(
                input_file_id=file_id, endpoint=ENDPOINT, completion_window="24h", metadata={"sheetbot_key": key}
            ),
            model,
        )
        return batch.id

    async def find(self, *, key: str, file_id: str, count: int, since: datetime) -> Sighting:
        oldest = (since - CLOCK_MARGIN).timestamp()
        found: list[str] = []
        page = await self._call(self._client.batches.list(limit=100))
        for _ in range(MAX_PAGES):
            for batch in page.data:
                if batch.created_at < oldest:
                    return Sighting(found, complete=True, tagged=True)
                if (batch.metadata or {}).get("sheetbot_key") == key or (file_id and batch.input_file_id == file_id):
                    found.append(batch.id)
            if not page.has_next_page():
                return Sighting(found, complete=True, tagged=True)
            page = await self._call(page.get_next_page())
        return Sighting(found, complete=False, tagged=True)

    async def poll(self, batch_id: str) -> BatchStatus:
        batch = await self._call(self._client.batches.retrieve(batch_id))
        counts = batch.request_counts.model_dump() if batch.request_counts is not None else {}
        failed = ""
        if batch.status == "failed":
            errors = [e.message or e.code or "" for e in (batch.errors.data or [])] if batch.errors else []
            failed = f"{self.label} failed batch {batch_id}: {'; '.join(e for e in errors if e) or 'no reason given'}"
        return BatchStatus(ended=batch.status in _ENDED, counts={k: int(v) for k, v in counts.items()}, failed=failed)

    async def results(self, batch_id: str) -> AsyncIterator[BatchResult]:
        batch = await self._call(self._client.batches.retrieve(batch_id))
        for file_id in (batch.output_file_id, batch.error_file_id):
            if not file_id:
                continue
            content = await self._call(self._client.files.content(file_id))
            for line in content.text.splitlines():
                if line.strip():
                    yield _item(json.loads(line))

    async def cancel(self, batch_id: str) -> None:
        await self._call(self._client.batches.cancel(batch_id))


def _item(line: dict[str, Any]) -> BatchResult:
    """One line of an output or error file: an answer, or why there is none."""
    custom_id = str(line.get("custom_id"))
    response = line.get("response") or {}
    error = line.get("error")
    if error:
        code = str(error.get("code") or "")
        return custom_id, ItemError(_ITEM_KINDS.get(code, "errored"), f"{code}: {error.get('message', '')}")
    body = response.get("body") or {}
    if response.get("status_code") != 200:
        message = (body.get("error") or {}).get("message", "") if isinstance(body, dict) else str(body)
        return custom_id, ItemError("errored", f"HTTP {response.get('status_code')}: {message}")
    completion = ChatCompletion.model_validate(body)
    return custom_id, _to_completion(completion, completion.model, 0.0, structured=True)
