"""OpenAI Batch API: a JSONL file of chat-completion bodies, uploaded with purpose ``batch``.

Limits: 50,000 requests or 200 MB an input file. The output file holds answers, the error file
failures (``batch_expired`` / ``batch_cancelled`` for requests that never ran). A server without
``/v1/batches`` or ``/v1/files`` (most OpenAI-compatible local servers) answers 404: that becomes
BatchUnsupportedError, and the night runs those rows live instead (see night.py).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Sequence
from typing import Any, Literal, TypeVar

import httpx2
import openai
from openai.types.chat import ChatCompletion

from sheetbot.batch.base import BatchResult, BatchStatus, BatchUnsupportedError, ItemError, json_bytes
from sheetbot.providers.base import CompletionRequest
from sheetbot.providers.errors_map import ErrorContext, connection_error, malformed_error, status_error
from sheetbot.providers.openai_chat import _to_completion, chat_body

T = TypeVar("T")
ENDPOINT: Literal["/v1/chat/completions"] = "/v1/chat/completions"
_ENDED = {"completed", "failed", "expired", "cancelled"}
_ITEM_KINDS = {"batch_expired": "expired", "batch_cancelled": "canceled"}


class OpenAIBatches:
    name = "openai"
    max_requests = 50_000
    max_bytes = 200 * 1024 * 1024

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str | None,
        http_client: httpx2.AsyncClient | None = None,
        label: str = "openai",
        api_key_env: str | None = None,
        max_retries: int = 2,
    ) -> None:
        self._label = label
        self._where = base_url or label
        self._base_url = base_url
        self._ctx = ErrorContext(
            label=label, model="(batch)", where=self._where, api_key_env=api_key_env, secret=api_key
        )
        self._client = openai.AsyncOpenAI(
            api_key=api_key, base_url=base_url, max_retries=max_retries, http_client=http_client
        )

    def _line(self, request: CompletionRequest) -> dict[str, Any]:
        body = chat_body(request, base_url=self._base_url)  # the same body as a live call's
        return {"custom_id": request.custom_id, "method": "POST", "url": ENDPOINT, "body": body}

    def request_bytes(self, request: CompletionRequest) -> int:
        return json_bytes(self._line(request))

    async def _guard(self, call: Awaitable[T]) -> T:
        try:
            return await call
        except openai.NotFoundError:
            raise BatchUnsupportedError(
                f"{self._label} at {self._where} has no Batch API (HTTP 404 on /v1/files or /v1/batches): "
                "set the workflow's mode to live"
            ) from None
        except openai.APIStatusError as exc:
            raise status_error(exc.status_code, exc.body, exc.response.headers, self._ctx, exc.message) from None
        except openai.APIConnectionError as exc:
            raise connection_error(self._ctx, exc.__cause__) from None
        except (openai.APIResponseValidationError, json.JSONDecodeError) as exc:
            raise malformed_error(self._ctx, str(exc)) from None

    async def submit(self, requests: Sequence[CompletionRequest]) -> str:
        data = "".join(json.dumps(self._line(r), ensure_ascii=False) + "\n" for r in requests).encode("utf-8")
        upload = await self._guard(self._client.files.create(file=("batch.jsonl", data), purpose="batch"))
        batch = await self._guard(
            self._client.batches.create(input_file_id=upload.id, endpoint=ENDPOINT, completion_window="24h")
        )
        return batch.id

    async def poll(self, batch_id: str) -> BatchStatus:
        batch = await self._guard(self._client.batches.retrieve(batch_id))
        counts = batch.request_counts.model_dump() if batch.request_counts is not None else {}
        failed = ""
        if batch.status == "failed":
            errors = [e.message or e.code or "" for e in (batch.errors.data or [])] if batch.errors else []
            failed = f"{self._label} failed batch {batch_id}: {'; '.join(e for e in errors if e) or 'no reason given'}"
        return BatchStatus(ended=batch.status in _ENDED, counts={k: int(v) for k, v in counts.items()}, failed=failed)

    async def results(self, batch_id: str) -> AsyncIterator[BatchResult]:
        batch = await self._guard(self._client.batches.retrieve(batch_id))
        for file_id in (batch.output_file_id, batch.error_file_id):
            if not file_id:
                continue
            content = await self._guard(self._client.files.content(file_id))
            for line in content.text.splitlines():
                if line.strip():
                    yield _item(json.loads(line))

    async def cancel(self, batch_id: str) -> None:
        await self._guard(self._client.batches.cancel(batch_id))

    async def aclose(self) -> None:
        await self._client.close()


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
