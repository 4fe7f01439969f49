"""FakeLLM: a stand-in for the OpenAI and Anthropic HTTP APIs, for tests that go through the real SDKs.

It sits at the HTTP transport, so everything above it (SDK request building, parsing, retries,
error classes, sheetbot's providers) runs for real, and nothing touches the network::

    fake = FakeLLM()
    provider = OpenAIProvider(api_key="sk-test", base_url=None, max_retries=0,
                              http_client=fake.async_client())
    fake.fail_next(429, headers={"retry-after": "7"})      # the next request gets a rate limit
    ...
    assert fake.requests[-1].json["model"] == "gpt-4o-mini"

Answers are deterministic: text ``"OUTPUT for: " + the first 60 characters of the prompt`` (newlines
collapsed), input tokens ``ceil(len(system + prompt) / 4)``, output tokens ``ceil(len(text) / 4)``.
Scripted events (``fail_next``, ``truncate_next``, ``malformed_next``, ``timeout_next``) are queued and
used one per request, in order.

A request for structured output (OpenAI ``response_format`` json_schema or json_object, or Anthropic ``tools`` with a
forced ``tool_choice``) is answered in that vendor's shape: OpenAI message content is the JSON text,
Anthropic content is one ``tool_use`` block with the object as its ``input`` (``stop_reason: "tool_use"``).
The object is ``default_answer(schema)`` (a valid one) unless ``answer_with(fn)`` scripts it; ``fn`` may
return a string instead, sent as plain text, as a server that ignores the schema would.
"""

from __future__ import annotations

import json
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx2

#: Per status: (OpenAI error type, OpenAI error code, Anthropic error type), as the real APIs send them.
_ERROR_KINDS = {
    400: ("invalid_request_error", None, "invalid_request_error"),
    401: ("invalid_request_error", "invalid_api_key", "authentication_error"),
    403: ("permission_error", None, "permission_error"),
    404: ("invalid_request_error", "model_not_found", "not_found_error"),
    413: ("invalid_request_error", None, "request_too_large"),
    429: ("requests", "rate_limit_exceeded", "rate_limit_error"),
    529: ("server_error", None, "overloaded_error"),
}


@dataclass(frozen=True)
class FakeRequest:
    """One request as the fake received it; ``json`` is the parsed body (None if it was not JSON)."""

    method: str
    url: str
    path: str
    headers: dict[str, str]
    json: Any


def _text_of(content: Any) -> str:
    """A message's content as text, whether a string or a list of content blocks/parts."""
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return content or ""


def split_prompt(body: dict[str, Any]) -> tuple[str, str]:
    """(system, prompt) of a request body in either vendor's shape."""
    messages = body.get("messages") or []
    system = _text_of(body.get("system"))
    system += "".join(_text_of(m.get("content")) for m in messages if m.get("role") in ("system", "developer"))
    users = [m for m in messages if m.get("role") == "user"]
    return system, _text_of(users[-1].get("content")) if users else ""


def requested_schema(body: dict[str, Any]) -> dict[str, Any] | None:
    """The JSON schema a request asks the answer to follow, in either vendor's shape; None for plain text."""
    response_format = body.get("response_format") or {}
    if response_format.get("type") == "json_schema":
        return response_format.get("json_schema", {}).get("schema") or {}
    if response_format.get("type") == "json_object":  # JSON mode; llama.cpp and vLLM take a `schema` beside it
        return response_format.get("schema") or {}
    choice = body.get("tool_choice") or {}
    tools = {tool.get("name"): tool for tool in body.get("tools") or []}
    if choice.get("type") == "tool" and choice.get("name") in tools:
        return tools[choice["name"]].get("input_schema") or {}
    return None


def default_answer(schema: dict[str, Any]) -> Any:
    """A valid value for a schema: the first enum value, 3, 2.5, True, "text", ["a", "b"], or an object of those."""
    if schema.get("enum"):
        return schema["enum"][0]
    if schema.get("type") == "object":
        return {key: default_answer(prop) for key, prop in (schema.get("properties") or {}).items()}
    samples: dict[str, object] = {"integer": 3, "number": 2.5, "boolean": True, "array": ["a", "b"]}
    return samples.get(str(schema.get("type")), "text")


def default_reply(body: dict[str, Any]) -> str:
    """``"OUTPUT for: "`` and the first 60 characters of the prompt, newlines collapsed to spaces."""
    return "OUTPUT for: " + " ".join(split_prompt(body)[1].split())[:60]


class FakeLLM:
    """Answers POST ``…/chat/completions`` (OpenAI) and ``…/messages`` (Anthropic); records every request."""

    def __init__(self) -> None:
        self.requests: list[FakeRequest] = []
        #: Set False to answer OpenAI calls without ``usage``, as some local servers do.
        self.include_usage = True
        self._reply: Callable[[dict[str, Any]], str] = default_reply
        self._structured: Callable[[dict[str, Any]], dict[str, Any] | str] | None = None
        self._events: deque[tuple[str, Any]] = deque()
        #: What GET /v1/models lists (the vendors' shapes); empty: a server that names no models.
        self.models: list[str] = []
        #: False: GET /v1/batches answers 404, as a server without a Batch API does.
        self.batch_api = True
        self.transport = httpx2.MockTransport(self._handle)

    def async_client(self) -> httpx2.AsyncClient:
        """A client for the SDKs' ``http_client=``, wired to this fake."""
        return httpx2.AsyncClient(transport=self.transport)

    # -- scripting ----------------------------------------------------------------------
    def fail_next(
        self, status: int, *, times: int = 1, headers: dict[str, str] | None = None, body: Any = None
    ) -> None:
        """The next ``times`` requests get HTTP ``status``. ``body``: a message text (wrapped in the
        vendor's error shape), a dict (sent as-is), or None (a generic message)."""
        for _ in range(times):
            self._events.append(("fail", (status, headers or {}, body)))

    def reply_with(self, fn: Callable[[dict[str, Any]], str]) -> None:
        """Answer with ``fn(request json)`` from now on."""
        self._reply = fn

    def answer_with(self, fn: Callable[[dict[str, Any]], dict[str, Any] | str]) -> None:
        """Answer structured-output requests with ``fn(request json)`` from now on: a dict is the answer
        object, a str is sent as plain text (content / a text block) instead of structured output."""
        self._structured = fn

    def truncate_next(self) -> None:
        """The next answer stops at max_tokens (finish_reason "length" / stop_reason "max_tokens")."""
        self._events.append(("truncate", None))

    def malformed_next(self) -> None:
        """The next answer is HTTP 200 with a body that is not JSON."""
        self._events.append(("malformed", None))

    def timeout_next(self, *, times: int = 1) -> None:
        """The next ``times`` requests raise ``httpx2.ReadTimeout``, as a stalled server would."""
        for _ in range(times):
            self._events.append(("timeout", None))

    # -- the transport --------------------------------------------------------------------
    def _handle(self, request: httpx2.Request) -> httpx2.Response:
        try:
            body = json.loads(request.content) if request.content else None
        except ValueError:
            body = None
        path = request.url.path
        self.requests.append(FakeRequest(request.method, str(request.url), path, dict(request.headers), body))
        is_openai = path.endswith("/chat/completions")
        if request.method == "GET" and path.endswith("/models"):
            if self._events and self._events[0][0] == "fail":  # a scripted failure answers any request
                status, headers, err = self._events.popleft()[1]
                return self._error(status, headers, err, is_openai="anthropic-version" not in request.headers)
            return self._models(anthropic="anthropic-version" in request.headers)
        if request.method == "GET" and path.endswith("/batches") and self.batch_api:
            return httpx2.Response(200, json={"object": "list", "data": [], "has_more": False})
        if request.method != "POST" or not (is_openai or path.endswith("/messages")):
            return self._error(404, {}, f"FakeLLM has no endpoint {request.method} {path}", is_openai=True)
        event: tuple[str, Any] = self._events.popleft() if self._events else ("ok", None)
        kind, arg = event
        if kind == "fail":
            status, headers, err = arg
            return self._error(status, headers, err, is_openai=is_openai)
        if kind == "timeout":
            raise httpx2.ReadTimeout("FakeLLM: timed out", request=request)
        if kind == "malformed":
            return httpx2.Response(200, content=b"<html>502 Bad Gateway", headers={"content-type": "application/json"})
        body = body or {}
        schema = requested_schema(body)
        obj = self._reply(body) if schema is None else (self._structured or (lambda _: default_answer(schema)))(body)
        text = obj if isinstance(obj, str) else json.dumps(obj)
        answer = self._answer(body, text, truncated=kind == "truncate", is_openai=is_openai)
        if not (is_openai or isinstance(obj, str)):  # Anthropic: the answer is the forced tool's input
            tool_use = {"type": "tool_use", "id": f"toolu_fake_{len(self.requests)}", "input": obj}
            answer["content"] = [{**tool_use, "name": body["tool_choice"]["name"]}]
            answer["stop_reason"] = "max_tokens" if kind == "truncate" else "tool_use"
        return httpx2.Response(200, json=answer)

    def _answer(self, body: dict[str, Any], text: str, *, truncated: bool, is_openai: bool) -> dict[str, Any]:
        system, prompt = split_prompt(body)
        n_in = math.ceil(len(system + prompt) / 4)
        limit = body.get("max_tokens") or body.get("max_completion_tokens") or 0
        n_out = int(limit) if truncated else math.ceil(len(text) / 4)
        model = body.get("model", "fake-model")
        n = len(self.requests)
        if is_openai:
            answer: dict[str, Any] = {
                "id": f"chatcmpl-fake-{n}",
                "object": "chat.completion",
                "created": 0,
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": "length" if truncated else "stop",
                    }
                ],
            }
            if self.include_usage:
                answer["usage"] = {
                    "prompt_tokens": n_in,
                    "completion_tokens": n_out,
                    "total_tokens": n_in + n_out,
                    "prompt_tokens_details": {"cached_tokens": 0},
                }
            return answer
        return {
            "id": f"msg_fake_{n}",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [{"type": "text", "text": text}],
            "stop_reason": "max_tokens" if truncated else "end_turn",
            "stop_sequence": None,
            "usage": {
                "input_tokens": n_in,
                "output_tokens": n_out,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
            },
        }

    def _models(self, *, anthropic: bool) -> httpx2.Response:
        if anthropic:
            data: list[dict[str, object]] = [
                {"id": m, "type": "model", "display_name": m, "created_at": "2025-01-01T00:00:00Z"} for m in self.models
            ]
            return httpx2.Response(200, json={"data": data, "has_more": False, "first_id": None, "last_id": None})
        data = [{"id": m, "object": "model", "created": 0, "owned_by": "fake"} for m in self.models]
        return httpx2.Response(200, json={"object": "list", "data": data})

    @staticmethod
    def _error(status: int, headers: dict[str, str], body: Any, *, is_openai: bool) -> httpx2.Response:
        if isinstance(body, dict):
            return httpx2.Response(status, json=body, headers=headers)
        message = body if isinstance(body, str) else f"FakeLLM: scripted HTTP {status}"
        oa_type, oa_code, an_type = _ERROR_KINDS.get(status, ("server_error", None, "api_error"))
        payload: dict[str, Any] = (
            {"error": {"message": message, "type": oa_type, "param": None, "code": oa_code}}
            if is_openai
            else {"type": "error", "error": {"type": an_type, "message": message}}
        )
        return httpx2.Response(status, json=payload, headers=headers)
