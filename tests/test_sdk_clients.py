"""The shared base of the four SDK clients (sheetbot/providers/sdk.py): one error ladder per vendor, climbed
alike by the live provider and the batch client, and the SDK client built one way (retries, timeout, no
redirect, closing). The SDKs run for real; only their HTTP transport is faked (httpx2.MockTransport)."""

from __future__ import annotations

import asyncio
import http.server
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

import httpx2
import pytest

from sheetbot.batch.anthropic import AnthropicBatches
from sheetbot.batch.openai import OpenAIBatches
from sheetbot.errors import (
    AccountProviderError,
    BatchUnsupportedError,
    PermanentProviderError,
    ProviderError,
    RetryableProviderError,
)
from sheetbot.providers.anthropic_messages import AnthropicProvider
from sheetbot.providers.base import CompletionRequest
from sheetbot.providers.openai_chat import OpenAIProvider

SECRET = "sk-test-LADDER-0123456789"
KEY_ENV = "LADDER_KEY"
CLIENTS = [("anthropic", "live"), ("anthropic", "batch"), ("openai", "live"), ("openai", "batch")]
Handler = Callable[[httpx2.Request], httpx2.Response]


def _client(kind: str, mode: str, transport: httpx2.AsyncBaseTransport | None, **options: Any) -> Any:
    http_client = httpx2.AsyncClient(transport=transport) if transport is not None else None
    common: dict[str, Any] = {"api_key": SECRET, "http_client": http_client, "label": kind, "api_key_env": KEY_ENV}
    if mode == "live":
        cls: Any = AnthropicProvider if kind == "anthropic" else OpenAIProvider
        return cls(**common, max_retries=0, **{"base_url": None, **options})
    cls = AnthropicBatches if kind == "anthropic" else OpenAIBatches
    return cls(**common, **{"base_url": None, "max_retries": 0, **options})


def _call(kind: str, mode: str, handler: Handler) -> Any:
    """One call through the real SDK: a completion (live) or a batch's status (batch)."""

    async def go() -> Any:
        async with _client(kind, mode, httpx2.MockTransport(handler)) as client:
            if mode == "live":
                request = CompletionRequest(
                    custom_id="t1:1:0", model="some-model", system="", prompt="hi", max_tokens=8, timeout_s=5.0
                )
                return await client.complete(request)
            return await client.poll("batch_1")

    return asyncio.run(go())


def _failure(kind: str, mode: str, handler: Handler) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        _call(kind, mode, handler)
    assert SECRET not in str(caught.value)
    return caught.value


def _status(status: int, message: str = "scripted", headers: dict[str, str] | None = None) -> Handler:
    def handler(request: httpx2.Request) -> httpx2.Response:
        body = {"type": "error", "error": {"type": "error", "message": message}}  # both vendors read error.message
        return httpx2.Response(status, json=body, headers=headers or {})

    return handler


def _raise(error: type[httpx2.TransportError]) -> Handler:
    def handler(request: httpx2.Request) -> httpx2.Response:
        raise error("scripted", request=request)

    return handler


def _malformed(request: httpx2.Request) -> httpx2.Response:
    return httpx2.Response(200, content=b"<html>502 Bad Gateway", headers={"content-type": "application/json"})


# -- the ladder: the same SDK failure is the same sheetbot error, live and batch, for both vendors ---------------
@pytest.mark.parametrize(("kind", "mode"), CLIENTS)
def test_a_refused_key_is_an_account_error_naming_the_variable(kind: str, mode: str) -> None:
    error = _failure(kind, mode, _status(401, f"invalid x-api-key {SECRET}"))
    assert type(error) is AccountProviderError and error.status_code == 401
    assert KEY_ENV in str(error) and kind in str(error)


@pytest.mark.parametrize(("kind", "mode"), CLIENTS)
def test_a_rate_limit_is_retryable_after_the_servers_wait(kind: str, mode: str) -> None:
    error = _failure(kind, mode, _status(429, headers={"retry-after": "7"}))
    assert type(error) is RetryableProviderError and error.status_code == 429 and error.retry_after_s == 7


@pytest.mark.parametrize(("kind", "mode"), CLIENTS)
@pytest.mark.parametrize("status", [500, 503, 529])
def test_a_server_error_is_retryable(kind: str, mode: str, status: int) -> None:
    error = _failure(kind, mode, _status(status))
    assert type(error) is RetryableProviderError and error.status_code == status


@pytest.mark.parametrize(("kind", "mode"), CLIENTS)
def test_a_dropped_connection_is_retryable_and_names_where(kind: str, mode: str) -> None:
    error = _failure(kind, mode, _raise(httpx2.ConnectError))
    assert type(error) is RetryableProviderError and f"{kind} could not be reached at {kind}" in str(error)


@pytest.mark.parametrize(("kind", "mode"), CLIENTS)
def test_a_malformed_answer_is_retryable(kind: str, mode: str) -> None:
    error = _failure(kind, mode, _malformed)
    assert type(error) is RetryableProviderError and "sent a malformed response" in str(error)


@pytest.mark.parametrize("kind", ["anthropic", "openai"])
def test_a_live_timeout_names_the_calls_own_timeout(kind: str) -> None:
    error = _failure(kind, "live", _raise(httpx2.ReadTimeout))
    assert type(error) is RetryableProviderError and "did not answer within 5s" in str(error)


@pytest.mark.parametrize("kind", ["anthropic", "openai"])
def test_a_batch_timeout_reads_as_a_server_out_of_reach(kind: str) -> None:
    error = _failure(kind, "batch", _raise(httpx2.ReadTimeout))
    assert type(error) is RetryableProviderError and "could not be reached" in str(error)


@pytest.mark.parametrize("kind", ["anthropic", "openai"])
def test_a_bad_request_is_permanent_live_and_refuses_the_whole_batch(kind: str) -> None:
    live = _failure(kind, "live", _status(400, "max_tokens: must be at most 8192"))
    assert type(live) is PermanentProviderError and "rejected the request for model some-model" in str(live)
    batch = _failure(kind, "batch", _status(400, "requests.0.params.model: bad"))
    assert type(batch) is PermanentProviderError
    assert str(batch) == f'{kind} refused the whole batch for model (batch) (HTTP 400): "requests.0.params.model: bad"'


@pytest.mark.parametrize(("kind", "mode"), [("anthropic", "live"), ("anthropic", "batch"), ("openai", "live")])
def test_not_found_is_permanent(kind: str, mode: str) -> None:
    error = _failure(kind, mode, _status(404))
    assert type(error) is PermanentProviderError and "not found" in str(error) and error.status_code == 404


def test_not_found_on_openais_batch_api_means_the_server_has_none() -> None:
    error = _failure("openai", "batch", _status(404))
    assert type(error) is BatchUnsupportedError
    assert str(error) == (
        "openai at openai has no Batch API (HTTP 404 on /v1/files or /v1/batches): set the workflow's mode to live"
    )


# -- the SDK client, built one way --------------------------------------------------------------------------------
@pytest.mark.parametrize(("kind", "mode"), CLIENTS)
def test_the_sdk_client_gets_the_key_base_url_and_retries_asked_for(kind: str, mode: str) -> None:
    seen: list[httpx2.Request] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        raise httpx2.ConnectError("refused", request=request)

    async def go() -> None:
        client = _client(kind, mode, httpx2.MockTransport(handler), base_url="https://llm.example/v1")
        async with client:
            assert client._client.max_retries == 0
            with pytest.raises(
                RetryableProviderError, match=re.escape("could not be reached at https://llm.example/v1")
            ):
                await (client.list_models(timeout_s=5.0) if mode == "live" else client.poll("batch_1"))
        assert client._client.is_closed(), "async with closes the SDK client"

    asyncio.run(go())
    assert len(seen) == 1 and seen[0].url.host == "llm.example"
    key = seen[0].headers.get("x-api-key") or seen[0].headers.get("authorization")
    assert key is not None and SECRET in key


@pytest.mark.parametrize("kind", ["anthropic", "openai"])
def test_a_batch_client_bounds_each_call(kind: str) -> None:
    client = _client(kind, "batch", None, max_retries=2, timeout_s=30.0)
    assert client._client.max_retries == 2 and client._client.timeout == 30.0
    assert client.time_limit_s == 90.0  # its timeout times its tries
    asyncio.run(client.aclose())


class _Redirect(http.server.BaseHTTPRequestHandler):
    """A loopback server that sends every request elsewhere, and one that records what reaches it."""

    location: ClassVar[str] = ""
    received: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        if self.location:
            self.send_response(307)
            self.send_header("Location", self.location + self.path)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.received.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        return None


@contextmanager
def _serve(handler: type[_Redirect]) -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("kind", ["anthropic", "openai"])
def test_a_batch_client_follows_no_redirect_with_the_key(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    target: type[_Redirect] = type("Target", (_Redirect,), {"location": "", "received": []})
    with _serve(target) as elsewhere:
        source = type("Source", (_Redirect,), {"location": elsewhere, "received": []})
        with _serve(source) as base:

            async def go() -> None:
                async with _client(kind, "batch", None, base_url=f"{base}/v1", timeout_s=5.0) as client:
                    await client.poll("batch_1")

            with pytest.raises(ProviderError):
                asyncio.run(go())
    assert target.received == [], "the SDK re-sent the call (and its key) where Location pointed"
