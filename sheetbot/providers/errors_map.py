"""Turn an SDK failure into sheetbot's two provider errors, worded for the admin who reads them at 9am.

The anthropic and openai SDKs raise the same family of exceptions (a status error carrying the HTTP
response, a timeout, a connection error, a response that did not parse) under different classes.
The one ladder in sheetbot.providers.sdk catches each vendor's classes, for its live and its batch
client alike, and hands the facts to the functions here, so the retry policy and the wording live in
one place and both vendors read alike.

Every message is one line, names the provider entry, says what to do, and quotes the server's own
words (shortened). The API key is scrubbed from anything the server sends back.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from sheetbot.errors import (
    AccountProviderError,
    PermanentProviderError,
    ProviderError,
    RequestShapeError,
    RetryableProviderError,
)
from sheetbot.safety import secrets

#: Statuses worth another try besides 5xx: request timeout, lock conflict, rate limit.
RETRYABLE_STATUS = frozenset({408, 409, 429})
#: Words servers use when the prompt does not fit the model (OpenAI, Anthropic, vLLM, Ollama).
_TOO_LONG_HINTS = (
    "context length",
    "context_length",
    "context window",
    "maximum context",
    "prompt is too long",
    "too long",
    "too many tokens",
)

#: Request parameters a server may refuse by their shape. The one named first in the server's message is
#: the one refused ("Unsupported parameter: 'max_tokens' … use 'max_completion_tokens'").
SHAPE_FIELDS = (
    "max_completion_tokens",
    "max_tokens",
    "response_format",
    "json_schema",
    "json_object",
    "tool_choice",
    "tools",
    "temperature",
)
#: Words of a refusal of the request's shape (OpenAI, pydantic/FastAPI servers, llama.cpp, vLLM, Ollama).
_SHAPE_HINTS = (
    "input should be",
    "unsupported parameter",
    "unsupported value",
    "not supported",
    "does not support",
    "unrecognized request argument",
    "extra inputs are not permitted",
    "extra_forbidden",
    "extra field",
    "unknown parameter",
    "unknown field",
    "unexpected keyword",
    "must be one of",
    "literal_error",
    "is not allowed",
)


@dataclass(frozen=True)
class ErrorContext:
    """What a message needs to name: the provider entry, the model, where it lives, the key's variable."""

    label: str
    model: str
    where: str
    api_key_env: str | None = None
    secret: str = field(default="", repr=False)

    @property
    def key_hint(self) -> str:
        if self.api_key_env:
            return f"check the environment variable {self.api_key_env}"
        return "check the API key"

    def scrub(self, text: str) -> str:
        """Remove the API key (in any escaped or cut form) and every other known secret from server text:
        some servers echo the key they refused."""
        if self.secret:
            secrets.learn([self.secret])
        return secrets.scrub(text)


def shorten(text: str, limit: int = 200) -> str:
    """One line of at most ``limit`` characters, so a message fits a sheet cell and a log line."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def parse_retry_after(headers: Mapping[str, str] | None, *, now: float | None = None) -> float | None:
    """Seconds to wait, from ``retry-after-ms`` or ``retry-after`` (seconds, maybe fractional, or a date).

    ``now`` (Unix seconds) is passed in by tests; a date in the past means "now" (0).
    """
    if not headers:
        return None
    millis = headers.get("retry-after-ms")
    if millis is not None:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    now_s = time.time() if now is None else now
    return max(0.0, when.timestamp() - now_s)


def server_message(body: object, fallback: str = "") -> str:
    """The human part of an error body, in either vendor's shape, FastAPI's ``detail`` (a text, or a list
    of validation errors, each ``loc: msg``), or plain text from a proxy."""
    if isinstance(body, Mapping) and "detail" in body and "error" not in body:
        detail = body["detail"]
        if isinstance(detail, str):
            return detail
        if isinstance(detail, list):
            parts = [
                ".".join(str(p) for p in item.get("loc", ())) + ": " + str(item.get("msg", ""))
                for item in detail
                if isinstance(item, Mapping)
            ]
            return "; ".join(parts) or fallback
    if isinstance(body, Mapping):
        inner = body.get("error", body)
        message = inner.get("message") if isinstance(inner, Mapping) else None
        if isinstance(message, str):
            return message
        if isinstance(inner, str):
            return inner
        message = body.get("message")
        if isinstance(message, str):
            return message
    if isinstance(body, str) and body.strip():
        return body
    return fallback


def refused_field(status: int, body: object, fallback: str = "") -> str | None:
    """The parameter a server refused by the request's shape, or None when the body says something else.

    Read from the body, never the status: llama-cpp-python answers a ``response_format`` it does not know
    with HTTP 500, which would otherwise pass for an outage. Auth and rate-limit statuses are never shape.
    """
    if status in (401, 402, 403, 408, 409, 429):
        return None
    text = (server_message(body, fallback) + " " + str(body)).lower()
    validation = isinstance(body, Mapping) and isinstance(body.get("detail"), list)  # FastAPI's 422 shape
    if not validation and not any(hint in text for hint in _SHAPE_HINTS):
        return None
    found = [(text.find(field), field) for field in SHAPE_FIELDS if field in text]
    return min(found)[1] if found else None


def status_error(
    status: int, body: object, headers: Mapping[str, str] | None, ctx: ErrorContext, fallback: str = ""
) -> ProviderError:
    """Map an HTTP error status to a retryable or permanent error with a message that says the fix."""
    said = ctx.scrub(shorten(ctx.scrub(server_message(body, fallback))))  # whole and cut forms of a secret
    quoted = f' — {ctx.label} said: "{said}"' if said else ""
    raw = ctx.scrub(str(body)).lower() + " " + said.lower()
    name, model = ctx.label, ctx.model

    field = refused_field(status, body, fallback)
    if field is not None:
        return RequestShapeError(
            f"{name} at {ctx.where} refused the parameter {field} for model {model} (HTTP {status}): "
            f"the server does not support it; retrying will not help{quoted}",
            field=field,
            status_code=status,
        )
    if status in RETRYABLE_STATUS or status >= 500:
        if status == 429 and "insufficient_quota" in raw:
            return AccountProviderError(
                f"{name} account is out of quota (HTTP 429): check billing and usage limits{quoted}",
                status_code=status,
            )
        wait_s = parse_retry_after(headers)
        retry = f"retry after {wait_s:g}s" if wait_s is not None else "retry later"
        what = {
            408: f"{name} timed out on its side (HTTP 408): {retry}",
            409: f"{name} reported a conflict (HTTP 409): {retry}",
            429: f"{name} rate limit reached for model {model} (HTTP 429): {retry}; "
            f"lower providers.{name}.concurrency if this keeps happening",
            529: f"{name} is overloaded (HTTP 529): {retry}",
        }.get(status, f"{name} had a server error (HTTP {status}), a problem on their side: {retry}")
        return RetryableProviderError(what + quoted, status_code=status, retry_after_s=wait_s)

    if status in (401, 402, 403):
        fix = {
            401: f"{name} refused the API key (HTTP 401): {ctx.key_hint}",
            402: f"{name} wants payment (HTTP 402): check the account's billing",
            403: f"{name} gives no permission for model {model} (HTTP 403): {ctx.key_hint} and the key's access",
        }[status]
        return AccountProviderError(fix + quoted, status_code=status)
    if status == 413 or (status == 400 and any(hint in raw for hint in _TOO_LONG_HINTS)):
        fix = f"the prompt is too long for model {model} ({name}, HTTP {status}): shorten the input or the template"
    elif status == 400 and "temperature" in raw:
        fix = (
            f"{name} does not accept the temperature for model {model} (HTTP 400): "
            "remove temperature from the workflow or use another value"
        )
    elif status == 400:
        fix = (
            f"{name} rejected the request for model {model} (HTTP 400): "
            "check the workflow's model, max_tokens and temperature"
        )
    elif status == 404:
        fix = f"model {model} not found at {ctx.where} (HTTP 404): check the model name"
    elif status == 422:
        fix = f"{name} could not process the request for model {model} (HTTP 422): check the workflow"
    else:
        fix = f"{name} rejected the request for model {model} (HTTP {status}): retrying will not help"
    return PermanentProviderError(fix + quoted, status_code=status)


def timeout_error(ctx: ErrorContext, timeout_s: float) -> RetryableProviderError:
    return RetryableProviderError(
        f"{ctx.label} did not answer within {timeout_s:g}s for model {ctx.model}: retry later, "
        "and raise timeout_s if long answers keep timing out"
    )


def connection_error(ctx: ErrorContext, cause: BaseException | None) -> RetryableProviderError:
    # An HTTP library names the whole URL it called: the host is said by `where`, the rest may be a credential.
    detail = f" ({ctx.scrub(shorten(secrets.describe_error(cause)))})" if cause is not None else ""
    return RetryableProviderError(
        f"{ctx.label} could not be reached at {ctx.where}{detail}: retry later, "
        "and check the network or base_url if this persists"
    )


def malformed_error(ctx: ErrorContext, detail: str) -> RetryableProviderError:
    return RetryableProviderError(
        f"{ctx.label} sent a malformed response for model {ctx.model} ({ctx.scrub(shorten(detail))}): retry later"
    )
