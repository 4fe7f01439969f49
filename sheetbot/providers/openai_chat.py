"""OpenAI Chat Completions, for OpenAI itself and any OpenAI-compatible server (Ollama, vLLM) via base_url.

Chat Completions rather than the Responses API because it is the one endpoint every compatible
server implements. OpenAI's own API gets ``max_completion_tokens`` (``max_tokens`` is deprecated there
and its reasoning models refuse it); compatible servers get ``max_tokens``, the name they all know.
Whatever a server refuses by shape is left out or replaced and remembered per model (sheetbot.providers.shapes).

Structured output goes through ``response_format`` json_schema in strict mode: the model is constrained
to the schema, and the answer arrives as JSON text in ``message.content``. A server without json_schema
(llama.cpp) gets JSON mode with the schema in the prompt, then plain text with the schema in the prompt.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx2
import openai
from openai.types.chat import ChatCompletion

from sheetbot.errors import PermanentProviderError, ProviderError
from sheetbot.providers.base import Completion, CompletionRequest, Usage
from sheetbot.providers.errors_map import (
    ErrorContext,
    malformed_error,
    server_message,
    shorten,
    status_error,
)
from sheetbot.providers.sdk import SdkClient, Vendor
from sheetbot.providers.shapes import Shape, ShapeMemory, first_shape, schema_instructions

#: The name of the response format; OpenAI allows [A-Za-z0-9_-]{1,64}.
SCHEMA_NAME = "sheetbot_output"
OPENAI_HOST = "api.openai.com"

#: The openai SDK: its client, and the errors the ladder (sheetbot.providers.sdk) translates, live and batch.
OPENAI = Vendor(
    client=openai.AsyncOpenAI,
    default_http_client=openai.DefaultAsyncHttpxClient,
    http_status=openai.APIStatusError,
    timeout=openai.APITimeoutError,
    connection=openai.APIConnectionError,
    malformed=(openai.APIResponseValidationError, json.JSONDecodeError),
)


def is_openai_api(base_url: str | None) -> bool:
    """True for OpenAI's own API (no base_url, or api.openai.com), False for a compatible server."""
    return not base_url or (urlsplit(base_url).hostname or "").lower() == OPENAI_HOST


class OpenAIProvider(SdkClient[openai.AsyncOpenAI]):
    """One chat completion per call; SDK errors become Retryable/PermanentProviderError."""

    vendor = OPENAI
    name = "openai"

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str | None,
        max_retries: int,
        http_client: httpx2.AsyncClient | None = None,
        label: str = "openai",
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
        openai_api = is_openai_api(base_url)
        self._shapes = ShapeMemory(
            label=label,
            where=self._where,
            json_mode=True,
            first=lambda model: first_shape(openai_api=openai_api, model=model),
        )

    async def complete(self, request: CompletionRequest) -> Completion:
        return await self._shapes.call(request.model, lambda shape: self._create(request, shape))

    async def _create(self, request: CompletionRequest, shape: Shape) -> Completion:
        options = chat_body(request, shape=shape)
        messages = options.pop("messages")
        model = options.pop("model")
        ctx = self._context(request.model)
        started = time.monotonic()
        response = await self._guard(
            self._client.chat.completions.create(model=model, messages=messages, timeout=request.timeout_s, **options),
            ctx,
            timeout_s=request.timeout_s,
            status=status_error if request.output_schema is None else _structured_status_error,
        )
        latency_s = time.monotonic() - started
        try:
            return _to_completion(response, request.model, latency_s, structured=request.output_schema is not None)
        except (AttributeError, IndexError, KeyError, TypeError, ValueError) as exc:
            raise malformed_error(ctx, f"{type(exc).__name__}: {exc}") from None

    async def list_models(self, *, timeout_s: float) -> list[str]:
        """The model ids the server offers: a free call that shows the server answers and takes the key."""
        page = await self._guard(
            self._client.models.list(timeout=timeout_s), self._context("(any)"), timeout_s=timeout_s
        )
        return [model.id for model in page.data]  # one page: enough to see the server and the key

    async def has_batch_api(self, *, timeout_s: float) -> bool:
        """False when the server answers 404 to listing batches (most compatible servers); free to ask."""
        try:
            await self._client.batches.list(limit=1, timeout=timeout_s)
        except openai.NotFoundError:
            return False
        except openai.OpenAIError:
            return True  # anything else is not "no such endpoint": the models list reports it
        return True


def _structured_status_error(
    status: int, body: object, headers: Mapping[str, str] | None, ctx: ErrorContext, fallback: str = ""
) -> ProviderError:
    """An HTTP error on a structured request: a schema the server found invalid is told apart first."""
    return _schema_refused(status, body, ctx, fallback) or status_error(status, body, headers, ctx, fallback)


def chat_body(request: CompletionRequest, *, base_url: str | None = None, shape: Shape | None = None) -> dict[str, Any]:
    """The chat-completions body for a request: shared by live calls and Batch API lines (``body``).

    ``shape`` is what the server has shown it accepts; by default what OpenAI's own API (no ``base_url``)
    or a compatible server (``base_url``) is sent first.
    """
    shape = shape or first_shape(openai_api=is_openai_api(base_url), model=request.model)
    prompt = request.prompt
    if request.output_schema is not None and shape.structured != "native":
        prompt += schema_instructions(request.output_schema)
    messages: list[dict[str, str]] = []
    if request.system:
        messages.append({"role": "system", "content": request.system})
    messages.append({"role": "user", "content": prompt})
    body: dict[str, Any] = {"model": request.model, "messages": messages, shape.token_param: request.max_tokens}
    if request.temperature is not None and shape.temperature:
        body["temperature"] = request.temperature
    if request.output_schema is not None:
        schema = dict(request.output_schema)
        if shape.structured == "native":
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": SCHEMA_NAME, "schema": schema, "strict": True},
            }
        elif shape.structured == "json_object":  # llama.cpp and vLLM constrain the answer to `schema`
            body["response_format"] = {"type": "json_object", "schema": schema}
    return body


def _schema_refused(status: int, body: object, ctx: ErrorContext, fallback: str) -> ProviderError | None:
    """A 400/422 saying the workflow's schema itself is invalid: the fix is in the workflow's ``outputs:``.

    A server that does not know ``response_format`` json_schema at all is a refusal of the request's
    shape instead (status_error), and falls back to what the server supports.
    """
    said = ctx.scrub(shorten(ctx.scrub(server_message(body, fallback))))  # whole and cut forms of a secret
    raw = (ctx.scrub(str(body)) + " " + said).lower()
    if status not in (400, 422) or "invalid schema" not in raw:
        return None
    quoted = f' — {ctx.label} said: "{said}"' if said else ""
    fix = (
        f"{ctx.label} rejected the structured-output schema for model {ctx.model} (HTTP {status}): "
        "check the workflow's `outputs:` (names, types, choices)"
    )
    return PermanentProviderError(fix + quoted, status_code=status)


def _parse_object(text: str) -> dict[str, Any] | None:
    """The answer as a JSON object, or None: validation reports what is wrong with the text."""
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _to_completion(response: object, model: str, latency_s: float, *, structured: bool = False) -> Completion:
    """Read text, usage and finish reason; raises on a body that is not a chat completion.

    The SDK hands back a plain ``str`` when the server answers with a non-JSON content type, and
    a half-built model when JSON lacks fields: both end up as a malformed-response error.
    """
    if not isinstance(response, ChatCompletion):
        raise TypeError(f"expected a chat completion, got {type(response).__name__}")
    choice = response.choices[0]
    message = choice.message
    text = message.content or getattr(message, "refusal", None) or ""
    usage = Usage()
    if response.usage is not None:  # some local servers send no usage at all
        details = response.usage.prompt_tokens_details
        cached = (details.cached_tokens or 0) if details is not None else 0
        # OpenAI counts cached tokens inside prompt_tokens; Anthropic (and our Usage) keeps them apart, so
        # each token is priced once: at the input price or at the cache-read price.
        usage = Usage(
            input_tokens=max((response.usage.prompt_tokens or 0) - cached, 0),
            output_tokens=response.usage.completion_tokens or 0,
            cache_read_tokens=cached,
        )
    return Completion(
        text=text,
        usage=usage,
        model=getattr(response, "model", None) or model,
        truncated=choice.finish_reason == "length",
        latency_s=latency_s,
        data=_parse_object(message.content or "") if structured else None,
    )
