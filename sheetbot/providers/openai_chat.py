"""OpenAI Chat Completions, for OpenAI itself and any OpenAI-compatible server (Ollama, vLLM) via base_url.

Chat Completions rather than the Responses API because it is the one endpoint every compatible
server implements. ``max_tokens`` rather than ``max_completion_tokens`` for the same reason: local
servers know the old name, and this SDK still accepts it.

Structured output goes through ``response_format`` json_schema in strict mode: the model is constrained
to the schema, and the answer arrives as JSON text in ``message.content``.
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx2
import openai
from openai.types.chat import ChatCompletion

from sheetbot.errors import PermanentProviderError, ProviderError
from sheetbot.providers.base import Completion, CompletionRequest, Usage
from sheetbot.providers.errors_map import (
    ErrorContext,
    connection_error,
    malformed_error,
    server_message,
    shorten,
    status_error,
    timeout_error,
)

#: The name of the response format; OpenAI allows [A-Za-z0-9_-]{1,64}.
SCHEMA_NAME = "sheetbot_output"


class OpenAIProvider:
    """One chat completion per call; SDK errors become Retryable/PermanentProviderError."""

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
        self.label = label
        self._api_key = api_key
        self._api_key_env = api_key_env
        self._base_url = base_url
        self._client = openai.AsyncOpenAI(
            api_key=api_key, base_url=base_url, max_retries=max_retries, http_client=http_client
        )

    def _context(self, model: str) -> ErrorContext:
        return ErrorContext(
            label=self.label,
            model=model,
            where=self._base_url or self.label,
            api_key_env=self._api_key_env,
            secret=self._api_key,
        )

    async def complete(self, request: CompletionRequest) -> Completion:
        options = chat_body(request)
        messages = options.pop("messages")
        for key in ("model", "max_tokens"):
            options.pop(key)
        ctx = self._context(request.model)
        started = time.monotonic()
        try:
            response = await self._client.chat.completions.create(
                model=request.model,
                messages=messages,  # type: ignore[arg-type]
                max_tokens=request.max_tokens,
                timeout=request.timeout_s,
                **options,
            )
        except openai.APIStatusError as exc:
            if request.output_schema is not None:
                refused = _schema_refused(exc.status_code, exc.body, ctx, exc.message)
                if refused is not None:
                    raise refused from None
            raise status_error(exc.status_code, exc.body, exc.response.headers, ctx, exc.message) from None
        except openai.APITimeoutError:
            raise timeout_error(ctx, request.timeout_s) from None
        except openai.APIConnectionError as exc:
            raise connection_error(ctx, exc.__cause__) from None
        except (openai.APIResponseValidationError, json.JSONDecodeError) as exc:
            raise malformed_error(ctx, str(exc)) from None
        latency_s = time.monotonic() - started
        try:
            return _to_completion(response, request.model, latency_s, structured=request.output_schema is not None)
        except (AttributeError, IndexError, KeyError, TypeError, ValueError) as exc:
            raise malformed_error(ctx, f"{type(exc).__name__}: {exc}") from None

    async def aclose(self) -> None:
        await self._client.close()


def chat_body(request: CompletionRequest) -> dict[str, Any]:
    """The chat-completions body for a request: shared by live calls and Batch API lines (``body``)."""
    messages: list[dict[str, str]] = []
    if request.system:
        messages.append({"role": "system", "content": request.system})
    messages.append({"role": "user", "content": request.prompt})
    body: dict[str, Any] = {"model": request.model, "messages": messages, "max_tokens": request.max_tokens}
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.output_schema is not None:
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": SCHEMA_NAME, "schema": dict(request.output_schema), "strict": True},
        }
    return body


def _schema_refused(status: int, body: object, ctx: ErrorContext, fallback: str) -> ProviderError | None:
    """A 400/422 about ``response_format``: a server (or model) without structured output, or a bad schema.

    Some OpenAI-compatible servers reject the parameter outright; retrying cannot help, and the fix is in
    the workflow, so the message says which.
    """
    said = ctx.scrub(shorten(server_message(body, fallback)))
    raw = (ctx.scrub(str(body)) + " " + said).lower()
    if status not in (400, 422) or not any(word in raw for word in ("response_format", "json_schema")):
        return None
    quoted = f' — {ctx.label} said: "{said}"' if said else ""
    if "invalid schema" in raw:
        fix = (
            f"{ctx.label} rejected the structured-output schema for model {ctx.model} (HTTP {status}): "
            "check the workflow's `outputs:` (names, types, choices)"
        )
    else:
        fix = (
            f"{ctx.label} at {ctx.where} does not support structured output for model {ctx.model} "
            f"(HTTP {status}): remove `outputs:` from the workflow, or use a model or server that supports "
            "response_format json_schema"
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
