"""Providers through the real anthropic/openai SDKs, with FakeLLM at the HTTP transport (no network)."""

from __future__ import annotations

import asyncio
import email.utils
from collections.abc import Callable
from typing import Any

import httpx2
import pytest
from fakellm import FakeLLM

from sheetbot.config.models import ProviderConfig
from sheetbot.errors import ConfigError, PermanentProviderError, RetryableProviderError
from sheetbot.providers.anthropic_messages import AnthropicProvider
from sheetbot.providers.base import Completion, CompletionRequest, Usage
from sheetbot.providers.errors_map import parse_retry_after
from sheetbot.providers.factory import make_provider
from sheetbot.providers.openai_chat import OpenAIProvider
from sheetbot.providers.preview import PreviewProvider
from sheetbot.providers.resilient import ResilientProvider
from sheetbot.providers.tokens import estimate_tokens

SECRET = "sk-test-SECRET-0123456789"
KINDS = ["openai", "anthropic"]


def make(kind: str, client: httpx2.AsyncClient, *, base_url: str | None = None) -> OpenAIProvider | AnthropicProvider:
    cls = OpenAIProvider if kind == "openai" else AnthropicProvider
    env = "OPENAI_API_KEY" if kind == "openai" else "ANTHROPIC_API_KEY"
    return cls(api_key=SECRET, base_url=base_url, max_retries=0, http_client=client, api_key_env=env, label=kind)


def request(**overrides: Any) -> CompletionRequest:
    fields: dict[str, Any] = {
        "custom_id": "t1:1:0",
        "model": "some-model",
        "system": "You write listings.",
        "prompt": "Rewrite this:\nA red mug.",
        "max_tokens": 64,
        "timeout_s": 5.0,
    }
    fields.update(overrides)
    return CompletionRequest(**fields)


def call(kind: str, fake: FakeLLM, req: CompletionRequest | None = None, **kw: Any) -> Completion:
    async def go() -> Completion:
        provider = make(kind, fake.async_client(), **kw)
        try:
            return await provider.complete(req or request())
        finally:
            await provider.aclose()

    return asyncio.run(go())


def fails(kind: str, fake: FakeLLM, **kw: Any) -> Exception:
    with pytest.raises((RetryableProviderError, PermanentProviderError)) as info:
        call(kind, fake, **kw)
    assert SECRET not in str(info.value)
    assert "\n" not in str(info.value)
    return info.value


@pytest.mark.parametrize("kind", KINDS)
def test_text_usage_and_request_body(kind: str) -> None:
    fake = FakeLLM()
    done = call(kind, fake)
    assert done.text == "OUTPUT for: Rewrite this: A red mug."
    assert done.usage == Usage(input_tokens=11, output_tokens=9)
    assert done.model == "some-model" and not done.truncated and not done.preview
    assert done.latency_s >= 0
    (sent,) = fake.requests
    body = sent.json
    # OpenAI's own API (no base_url) gets max_completion_tokens; Anthropic (and compatible servers) max_tokens
    tokens = "max_completion_tokens" if kind == "openai" else "max_tokens"
    assert body["model"] == "some-model" and body[tokens] == 64
    assert "temperature" not in body
    if kind == "openai":
        assert sent.path == "/v1/chat/completions"
        assert body["messages"] == [
            {"role": "system", "content": "You write listings."},
            {"role": "user", "content": "Rewrite this:\nA red mug."},
        ]
    else:
        assert sent.path == "/v1/messages"
        assert body["system"] == "You write listings."
        assert body["messages"] == [{"role": "user", "content": "Rewrite this:\nA red mug."}]


@pytest.mark.parametrize("kind", KINDS)
def test_empty_system_is_not_sent_and_temperature_is(kind: str) -> None:
    fake = FakeLLM()
    call(kind, fake, request(system="", temperature=0.2))
    body = fake.requests[0].json
    assert body["temperature"] == 0.2
    assert "system" not in body
    assert [m["role"] for m in body["messages"]] == ["user"]


@pytest.mark.parametrize("kind", KINDS)
def test_truncated_and_custom_reply(kind: str) -> None:
    fake = FakeLLM()
    fake.reply_with(lambda body: "custom " + body["model"])
    fake.truncate_next()
    done = call(kind, fake)
    assert done.truncated and done.text == "custom some-model" and done.usage.output_tokens == 64


def test_openai_without_usage_counts_zero() -> None:
    fake = FakeLLM()
    fake.include_usage = False
    assert call("openai", fake).usage == Usage()


@pytest.mark.parametrize("kind", KINDS)
def test_cache_tokens_are_reported(kind: str) -> None:
    def handler(req: httpx2.Request) -> httpx2.Response:
        if kind == "openai":
            usage = {"prompt_tokens": 100, "completion_tokens": 5, "total_tokens": 105}
            usage["prompt_tokens_details"] = {"cached_tokens": 80}  # type: ignore[assignment]
            msg = {"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}
            return httpx2.Response(
                200,
                json={
                    "id": "x",
                    "object": "chat.completion",
                    "created": 0,
                    "model": "m",
                    "choices": [msg],
                    "usage": usage,
                },
            )
        usage = {"input_tokens": 3, "output_tokens": 5, "cache_creation_input_tokens": 50}
        usage["cache_read_input_tokens"] = None  # type: ignore[assignment]
        content = [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]
        return httpx2.Response(
            200,
            json={
                "id": "x",
                "type": "message",
                "role": "assistant",
                "model": "m",
                "content": content,
                "stop_reason": "end_turn",
                "usage": usage,
            },
        )

    async def go() -> Completion:
        provider = make(kind, httpx2.AsyncClient(transport=httpx2.MockTransport(handler)))
        return await provider.complete(request())

    done = asyncio.run(go())
    if kind == "openai":
        assert done.usage == Usage(
            input_tokens=20, output_tokens=5, cache_read_tokens=80
        )  # 100 prompt tokens, 80 cached
    else:
        assert done.text == "ab"
        assert done.usage == Usage(input_tokens=3, output_tokens=5, cache_write_tokens=50)


@pytest.mark.parametrize("kind", KINDS)
def test_401_is_permanent_names_the_variable_and_hides_the_key(kind: str) -> None:
    fake = FakeLLM()
    fake.fail_next(401, body=f"Incorrect API key provided: {SECRET}")
    error = fails(kind, fake)
    assert isinstance(error, PermanentProviderError) and error.status_code == 401
    variable = "OPENAI_API_KEY" if kind == "openai" else "ANTHROPIC_API_KEY"
    assert f"{kind} refused the API key (HTTP 401): check the environment variable {variable}" in str(error)


@pytest.mark.parametrize("kind", KINDS)
def test_429_is_retryable_with_retry_after(kind: str) -> None:
    fake = FakeLLM()
    fake.fail_next(429, headers={"retry-after": "7"}, body="Rate limit reached")
    error = fails(kind, fake)
    assert isinstance(error, RetryableProviderError)
    assert error.status_code == 429 and error.retry_after_s == 7
    assert "retry after 7s" in str(error) and "Rate limit reached" in str(error)
    assert len(fake.requests) == 1  # max_retries=0: the SDK did not retry behind our back


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("status", [408, 409, 500, 503, 529])
def test_server_errors_are_retryable(kind: str, status: int) -> None:
    fake = FakeLLM()
    fake.fail_next(status)
    error = fails(kind, fake)
    assert isinstance(error, RetryableProviderError) and error.status_code == status


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    ("status", "words"),
    [(403, "no permission for model some-model"), (404, "model some-model not found at"), (422, "HTTP 422")],
)
def test_client_errors_are_permanent(kind: str, status: int, words: str) -> None:
    fake = FakeLLM()
    fake.fail_next(status)
    error = fails(kind, fake)
    assert isinstance(error, PermanentProviderError) and words in str(error)


@pytest.mark.parametrize("kind", KINDS)
def test_400_context_too_long_is_permanent(kind: str) -> None:
    fake = FakeLLM()
    message = "prompt is too long: 250000 tokens > 200000 maximum"
    if kind == "openai":
        message = "This model's maximum context length is 128000 tokens. However, you requested 250000 tokens."
    fake.fail_next(400, body=message)
    error = fails(kind, fake)
    assert isinstance(error, PermanentProviderError) and error.status_code == 400
    assert "the prompt is too long for model some-model" in str(error)
    assert "shorten the input or the template" in str(error)


@pytest.mark.parametrize("kind", KINDS)
def test_400_about_temperature_says_to_remove_it(kind: str) -> None:
    fake = FakeLLM()
    fake.fail_next(400, body="temperature: 'temperature' is deprecated for this model.")
    error = fails(kind, fake)
    assert isinstance(error, PermanentProviderError) and "remove temperature from the workflow" in str(error)


@pytest.mark.parametrize("kind", KINDS)
def test_malformed_response_is_retryable(kind: str) -> None:
    fake = FakeLLM()
    fake.malformed_next()
    assert "malformed response" in str(fails(kind, fake))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    "respond",
    [
        lambda: httpx2.Response(200, text="<html>hi</html>", headers={"content-type": "text/html"}),
        lambda: httpx2.Response(200, json={"unexpected": True}),
    ],
)
def test_non_json_content_type_or_wrong_shape_is_malformed(kind: str, respond: Callable[[], Any]) -> None:
    async def go() -> Completion:
        provider = make(kind, httpx2.AsyncClient(transport=httpx2.MockTransport(lambda r: respond())))
        return await provider.complete(request())

    with pytest.raises(RetryableProviderError, match="malformed response"):
        asyncio.run(go())


@pytest.mark.parametrize("kind", KINDS)
def test_timeout_and_connection_errors_are_retryable(kind: str) -> None:
    def handler(req: httpx2.Request) -> httpx2.Response:
        raise httpx2.ReadTimeout("slow", request=req)

    async def go(client: httpx2.AsyncClient) -> Completion:
        return await make(kind, client).complete(request())

    with pytest.raises(RetryableProviderError, match="did not answer within 5s"):
        asyncio.run(go(httpx2.AsyncClient(transport=httpx2.MockTransport(handler))))

    def refuse(req: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError("connection refused", request=req)

    with pytest.raises(RetryableProviderError, match="could not be reached"):
        asyncio.run(go(httpx2.AsyncClient(transport=httpx2.MockTransport(refuse))))
    fake = FakeLLM()
    fake.timeout_next()
    assert isinstance(fails(kind, fake), RetryableProviderError)


def test_openai_compatible_base_url_is_used() -> None:
    fake = FakeLLM()
    call("openai", fake, base_url="http://localhost:11434/v1")
    assert fake.requests[0].url.startswith("http://localhost:11434/v1/chat/completions")
    fake.fail_next(404)
    error = fails("openai", fake, base_url="http://localhost:11434/v1")
    assert "model some-model not found at http://localhost:11434/v1" in str(error)


def test_retry_after_forms() -> None:
    assert parse_retry_after({"retry-after": "1.5"}) == 1.5
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    date = email.utils.formatdate(1_000_030, usegmt=True)
    assert parse_retry_after({"retry-after": date}, now=1_000_000) == 30
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({}) is None


def test_factory_needs_the_key_unless_the_server_is_local() -> None:
    with pytest.raises(PermanentProviderError, match="set the environment variable ANTHROPIC_API_KEY"):
        make_provider("anthropic", ProviderConfig(), env={})
    with pytest.raises(PermanentProviderError, match="set the environment variable MY_KEY"):
        make_provider("openai", ProviderConfig(api_key_env="MY_KEY"), env={"MY_KEY": "  "})
    with pytest.raises(ConfigError, match=r"providers\.ollama"):
        make_provider("ollama", ProviderConfig(), env={})

    fake = FakeLLM()
    local = ProviderConfig(kind="openai", base_url="http://127.0.0.1:8000/v1", max_retries=0)
    provider = make_provider("ollama", local, env={}, http_client=fake.async_client())
    assert isinstance(provider, ResilientProvider) and provider.label == "ollama"
    assert isinstance(provider.inner, OpenAIProvider) and provider.inner.label == "ollama"
    asyncio.run(provider.complete(request()))
    assert fake.requests[0].headers["authorization"] == "Bearer not-needed"

    claude = make_provider("anthropic", ProviderConfig(), env={"ANTHROPIC_API_KEY": "k"})
    assert isinstance(claude, ResilientProvider) and isinstance(claude.inner, AnthropicProvider)
    asyncio.run(claude.aclose())


def test_preview_renders_prompt_tokens_and_cost_without_a_request() -> None:
    fake = FakeLLM()
    preview = PreviewProvider(price_per_mtok_input=3.0, price_per_mtok_output=15.0)
    done = asyncio.run(preview.complete(request(max_tokens=1000)))
    assert done.preview and done.usage == Usage() and fake.requests == []
    tokens = estimate_tokens("You write listings." + "Rewrite this:\nA red mug.")
    assert done.estimated_usd == pytest.approx((tokens * 3.0 + 1000 * 15.0) / 1e6)
    assert done.text.startswith("PREVIEW — no model was called.\nmodel: some-model · max_tokens: 1000\n")
    assert f"estimated input tokens: ≈{tokens} · estimated cost: ≈$0.0150" in done.text
    assert done.text.endswith("--- system ---\nYou write listings.\n--- prompt ---\nRewrite this:\nA red mug.")


def test_estimate_tokens() -> None:
    assert [estimate_tokens(t) for t in ("", "a", "abcd", "abcde")] == [0, 1, 1, 2]


SCHEMA = {
    "type": "object",
    "properties": {"score": {"type": "integer"}},
    "required": ["score"],
    "additionalProperties": False,
}


@pytest.mark.parametrize("kind", KINDS)
def test_structured_request_returns_parsed_data(kind: str) -> None:
    fake = FakeLLM()
    fake.answer_with(lambda body: {"score": 5})
    done = call(kind, fake, request(output_schema=SCHEMA))
    assert done.data == {"score": 5} and done.text == '{"score": 5}'
    body = fake.requests[0].json
    assert ("response_format" in body) == (kind == "openai") and ("tool_choice" in body) == (kind == "anthropic")


@pytest.mark.parametrize("kind", KINDS)
def test_structured_request_answered_without_the_structure_keeps_the_text(kind: str) -> None:
    """A refusal (OpenAI) or a reply with no tool call (Anthropic): no data, the words kept for validation."""

    def handler(req: httpx2.Request) -> httpx2.Response:
        if kind == "openai":
            message = {"role": "assistant", "content": None, "refusal": "I can't help with that."}
            choice = {"index": 0, "message": message, "finish_reason": "stop"}
            return httpx2.Response(
                200, json={"id": "x", "object": "chat.completion", "created": 0, "model": "m", "choices": [choice]}
            )
        content = [{"type": "text", "text": "I can't help with that."}]
        usage = {"input_tokens": 1, "output_tokens": 1}
        return httpx2.Response(
            200,
            json={
                "id": "x",
                "type": "message",
                "role": "assistant",
                "model": "m",
                "content": content,
                "stop_reason": "end_turn",
                "usage": usage,
            },
        )

    async def go() -> Completion:
        provider = make(kind, httpx2.AsyncClient(transport=httpx2.MockTransport(handler)))
        return await provider.complete(request(output_schema=SCHEMA))

    done = asyncio.run(go())
    assert done.data is None and done.text == "I can't help with that."
