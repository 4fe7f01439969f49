"""Anthropic Messages API: one message per call, text blocks joined, cache usage reported.

Structured output goes through one forced tool, ``record_output``, whose input schema is the workflow's
schema: the answer is the ``tool_use`` block's ``input``. A tool rather than ``output_config``'s JSON
format because every Claude model supports forced tool use. A server that refuses tools or the
temperature (a proxy, a model without sampling options) gets the request without them, remembered per model
for the rest of the run (sheetbot.providers.shapes).
"""

from __future__ import annotations

import json
import time
from typing import Any

import anthropic
import httpx2
from anthropic.types import Message

from sheetbot.providers.base import Completion, CompletionRequest, Usage
from sheetbot.providers.errors_map import malformed_error
from sheetbot.providers.sdk import SdkClient, Vendor
from sheetbot.providers.shapes import Shape, ShapeMemory, schema_instructions

#: The one tool offered when a workflow has ``outputs:``; the model is made to call it.
TOOL_NAME = "record_output"

#: The anthropic SDK: its client, and the errors the ladder (sheetbot.providers.sdk) translates, live and batch.
ANTHROPIC = Vendor(
    client=anthropic.AsyncAnthropic,
    default_http_client=anthropic.DefaultAsyncHttpxClient,
    http_status=anthropic.APIStatusError,
    timeout=anthropic.APITimeoutError,
    connection=anthropic.APIConnectionError,
    malformed=(anthropic.APIResponseValidationError, json.JSONDecodeError),
)


class AnthropicProvider(SdkClient[anthropic.AsyncAnthropic]):
    """One Messages call per request; SDK errors become Retryable/PermanentProviderError."""

    vendor = ANTHROPIC
    name = "anthropic"

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str | None,
        max_retries: int,
        http_client: httpx2.AsyncClient | None = None,
        label: str = "anthropic",
        api_key_env: str | None = None,
    ) -> None:
        super().__init__(
            api_key=api_key,
            base_url=base_url,
            max_retries=max_retries,
            http_client=http_client,
            label=label,
            api_key_env=api_key_env,
        )
        #: What each model has shown it accepts, for the rest of the run (one provider per run).
        self._shapes = ShapeMemory(label=label, where=self._where, json_mode=False, first=lambda model: Shape())

    async def complete(self, request: CompletionRequest) -> Completion:
        return await self._shapes.call(request.model, lambda shape: self._create(request, shape))

    async def _create(self, request: CompletionRequest, shape: Shape) -> Completion:
        options = message_params(request, shape=shape)
        messages = options.pop("messages")
        for key in ("model", "max_tokens"):
            options.pop(key)
        if "temperature" in options:
            # anthropic>=1.0 dropped temperature from create()'s signature; the API still takes it
            # on models that allow sampling options, so it travels in the body, and only when set.
            options["extra_body"] = {"temperature": options.pop("temperature")}
        ctx = self._context(request.model)
        started = time.monotonic()
        # An explicit timeout also skips the SDK's "streaming is required" guard for large max_tokens.
        response = await self._guard(
            self._client.messages.create(
                model=request.model,
                messages=messages,
                max_tokens=request.max_tokens,
                timeout=request.timeout_s,
                **options,
            ),
            ctx,
            timeout_s=request.timeout_s,
        )
        latency_s = time.monotonic() - started
        try:
            return _to_completion(response, request.model, latency_s)
        except (AttributeError, IndexError, KeyError, TypeError, ValueError) as exc:
            raise malformed_error(ctx, f"{type(exc).__name__}: {exc}") from None

    async def list_models(self, *, timeout_s: float) -> list[str]:
        """The model ids the account may use: a free call that shows the server answers and takes the key."""
        call = self._client.models.list(limit=1000, timeout=timeout_s)
        page = await self._guard(call, self._context("(any)"), timeout_s=timeout_s)
        return [model.id for model in page.data]  # one page: enough to see the server and the key


def message_params(request: CompletionRequest, *, shape: Shape | None = None) -> dict[str, Any]:
    """The Messages body for a request: shared by live calls and Message Batches (``params``).
    ``shape``: what the server has shown it accepts (by default everything)."""
    shape = shape or Shape()
    structured = request.output_schema is not None and shape.structured == "native"
    prompt = request.prompt
    if request.output_schema is not None and not structured:
        prompt += schema_instructions(request.output_schema)
    params: dict[str, Any] = {
        "model": request.model,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": request.max_tokens,
    }
    if request.system:
        if request.cache_system:
            block = {"type": "text", "text": request.system, "cache_control": {"type": "ephemeral"}}
            params["system"] = [block]
        else:
            params["system"] = request.system
    if request.temperature is not None and shape.temperature:
        params["temperature"] = request.temperature
    if structured:
        assert request.output_schema is not None
        params["tools"] = [
            {
                "name": TOOL_NAME,
                "description": "Record the answer in the required fields.",
                "input_schema": dict(request.output_schema),
            }
        ]
        params["tool_choice"] = {"type": "tool", "name": TOOL_NAME}
    return params


def _to_completion(response: object, model: str, latency_s: float) -> Completion:
    """Join the text blocks and read usage; raises on a body that is not a message.

    With a ``record_output`` call the data is its input and the text that input as JSON, so the stored
    output is the answer itself; a reply without the call keeps its text, and validation reports it.
    """
    if not isinstance(response, Message):
        raise TypeError(f"expected a message, got {type(response).__name__}")
    text = "".join(block.text for block in response.content if block.type == "text")
    calls = [block for block in response.content if block.type == "tool_use" and block.name == TOOL_NAME]
    data = dict(calls[0].input) if calls and isinstance(calls[0].input, dict) else None
    if data is not None:
        text = json.dumps(data, ensure_ascii=False)
    usage = response.usage
    return Completion(
        text=text,
        usage=Usage(
            input_tokens=usage.input_tokens or 0,
            output_tokens=usage.output_tokens or 0,
            cache_write_tokens=usage.cache_creation_input_tokens or 0,
            cache_read_tokens=usage.cache_read_input_tokens or 0,
        ),
        model=getattr(response, "model", None) or model,
        truncated=response.stop_reason == "max_tokens",
        latency_s=latency_s,
        data=data,
    )
