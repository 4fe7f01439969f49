"""What servers really accept: llama.cpp's HTTP 500 to json_schema, OpenAI's reasoning models, at the transport."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from fakebatch import FakeBatch
from fakellm import FakeLLM

from sheetbot.batch.openai import OpenAIBatches
from sheetbot.config.models import ProviderConfig
from sheetbot.errors import PermanentProviderError, RequestShapeError
from sheetbot.providers.base import Completion, CompletionRequest
from sheetbot.providers.factory import make_provider
from sheetbot.providers.resilient import ResilientProvider

LOCAL = "http://127.0.0.1:8080/v1"
SCHEMA = {
    "type": "object",
    "properties": {"score": {"type": "integer"}},
    "required": ["score"],
    "additionalProperties": False,
}
#: llama-cpp-python 0.3 (RouteErrorHandler wraps the pydantic error as an OpenAI-style 500).
LLAMA_CPP_PYTHON = {
    "error": {
        "message": "1 validation error for CreateChatCompletionRequest\nresponse_format.type\n  Input should be "
        "'text' or 'json_object' [type=literal_error, input_value='json_schema', input_type=str]",
        "type": "internal_server_error",
        "param": None,
        "code": None,
    }
}
#: llama.cpp's own server (ik_llama.cpp and older builds).
LLAMA_SERVER = {
    "error": {
        "code": 500,
        "message": 'response_format type must be one of "text" or "json_object", but got: json_schema',
        "type": "server_error",
    }
}
#: FastAPI's own validation error (a server whose request model forbids the field).
FASTAPI_422 = {
    "detail": [
        {
            "type": "literal_error",
            "loc": ["body", "response_format", "type"],
            "msg": "Input should be 'text' or 'json_object'",
            "input": "json_schema",
        }
    ]
}


def req(i: int = 1, **overrides: Any) -> CompletionRequest:
    fields: dict[str, Any] = dict(
        custom_id=f"t{i}:1:final", model="local-model", system="", prompt=f"Score {i}", max_tokens=64, timeout_s=5
    )
    return CompletionRequest(**{**fields, **overrides})


def resilient(fake: FakeLLM, *, base_url: str | None = LOCAL, **config: Any) -> ResilientProvider:
    provider = make_provider(
        "openai",
        ProviderConfig(**{"base_url": base_url, "max_retries": 3, "breaker_failures": 1, **config}),
        env={"OPENAI_API_KEY": "sk-test"},
        http_client=fake.async_client(),
        sleep=_no_sleep,
    )
    assert isinstance(provider, ResilientProvider)
    return provider


async def _no_sleep(seconds: float) -> None:
    return None


def run(provider: ResilientProvider, *requests: CompletionRequest) -> list[Completion]:
    async def go() -> list[Completion]:
        return [await provider.complete(r) for r in requests]

    return asyncio.run(go())


# -- item 13: a refusal of the request's shape ------------------------------------------------------------
@pytest.mark.parametrize(("status", "body"), [(500, LLAMA_CPP_PYTHON), (500, LLAMA_SERVER), (422, FASTAPI_422)])
def test_a_server_without_json_schema_gets_json_mode_and_the_breaker_stays_shut(status: int, body: Any) -> None:
    fake = FakeLLM()
    fake.fail_next(status, body=body)
    provider = resilient(fake)
    first, second = run(provider, req(1, output_schema=SCHEMA), req(2, output_schema=SCHEMA))
    assert first.data == {"score": 3} and second.data == {"score": 3}
    # no retry of the refused shape, no breaker: one refusal, then JSON mode, remembered for the second row
    assert [r.json["response_format"]["type"] for r in fake.requests] == ["json_schema", "json_object", "json_object"]
    assert fake.requests[1].json["response_format"]["schema"] == SCHEMA
    assert not provider.breaker_open and provider.failures == 0
    assert "refused response_format for model local-model" in first.notes[0]
    assert f"(HTTP {status}): asked for JSON mode" in first.notes[0]


def test_json_mode_refused_too_falls_back_to_plain_text_checked_afterwards() -> None:
    fake = FakeLLM()
    fake.fail_next(500, body=LLAMA_CPP_PYTHON)
    fake.fail_next(400, body="response_format: json_object is not supported by this server")
    fake.reply_with(lambda body: 'Here you are: {"score": 4}')
    provider = resilient(fake)
    (done,) = run(provider, req(1, output_schema=SCHEMA))
    last = fake.requests[-1].json
    assert "response_format" not in last and '"score"' in last["messages"][-1]["content"]
    assert done.text == 'Here you are: {"score": 4}' and not provider.breaker_open
    assert len(done.notes) == 2 and "asked for JSON in the prompt" in done.notes[1]


def test_plain_text_rows_of_that_provider_never_notice() -> None:
    fake = FakeLLM()
    fake.fail_next(500, body=LLAMA_CPP_PYTHON)
    provider = resilient(fake)
    _, plain = run(provider, req(1, output_schema=SCHEMA), req(2))
    assert plain.text.startswith("OUTPUT for: Score 2") and "response_format" not in fake.requests[-1].json


def test_a_server_refusing_every_shape_fails_the_row_with_its_words_not_an_outage() -> None:
    fake = FakeLLM()
    fake.fail_next(500, body=LLAMA_CPP_PYTHON, times=3)
    provider = resilient(fake)

    async def go() -> Exception:
        with pytest.raises(PermanentProviderError) as info:
            await provider.complete(req(1, output_schema=SCHEMA))
        return info.value

    error = asyncio.run(go())
    assert isinstance(error, RequestShapeError) and "Input should be 'text' or 'json_object'" in str(error)
    assert len(fake.requests) == 3 and not provider.breaker_open


def test_a_real_outage_is_still_an_outage() -> None:
    fake = FakeLLM()
    fake.fail_next(500, body={"error": {"message": "CUDA error: out of memory", "type": "internal_server_error"}})
    fake.fail_next(500, body="Internal Server Error")
    provider = resilient(fake, breaker_failures=5)
    run(provider, req(1, output_schema=SCHEMA))
    assert provider.failures == 0 and len(fake.requests) == 3  # two retried 500s, then the answer
    assert all(r.json["response_format"]["type"] == "json_schema" for r in fake.requests)


# -- item 16: max_tokens / max_completion_tokens and temperature ----------------------------------------------
@pytest.mark.parametrize(
    ("base_url", "model", "tokens", "temperature"),
    [
        (None, "gpt-4.1-mini", "max_completion_tokens", True),
        (None, "o3-mini", "max_completion_tokens", False),
        (None, "o1", "max_completion_tokens", False),
        (None, "gpt-5-mini", "max_completion_tokens", False),
        ("https://api.openai.com/v1", "o4-mini", "max_completion_tokens", False),
        (LOCAL, "llama-3.2-3b", "max_tokens", True),
        ("https://vllm.internal/v1", "gpt-4o", "max_tokens", True),
    ],
)
def test_live_and_batch_bodies_fit_the_server(base_url: str | None, model: str, tokens: str, temperature: bool) -> None:
    request = req(1, model=model, temperature=0.3)
    fake = FakeLLM()
    run(resilient(fake, base_url=base_url), request)
    live = fake.requests[0].json
    batch = FakeBatch(lambda: 0.0)

    async def submit() -> None:
        client = OpenAIBatches(api_key="sk-test", base_url=base_url, http_client=batch.async_client())
        file_id = await client.upload({"wire-1": request})
        await client.create(key="night-key", requests={"wire-1": request}, file_id=file_id)

    asyncio.run(submit())
    (line,) = batch.lines
    for body in (live, line["body"]):
        other = {"max_tokens", "max_completion_tokens"} - {tokens}
        assert body[tokens] == 64 and not other & set(body)
        assert ("temperature" in body) is temperature


@pytest.mark.parametrize(
    ("base_url", "refusal", "switched_to"),
    [
        (
            LOCAL,
            "Unsupported parameter: 'max_tokens' is not supported with this model. "
            "Use 'max_completion_tokens' instead.",
            "max_completion_tokens",
        ),
        (None, "Unrecognized request argument supplied: max_completion_tokens", "max_tokens"),
    ],
)
def test_a_refused_token_parameter_is_switched_once_without_a_failure(
    base_url: str | None, refusal: str, switched_to: str
) -> None:
    fake = FakeLLM()
    fake.fail_next(400, body=refusal)
    provider = resilient(fake, base_url=base_url)
    first, _ = run(provider, req(1), req(2))
    assert [switched_to in r.json for r in fake.requests] == [False, True, True]
    assert provider.failures == 0 and not provider.breaker_open
    assert f"sent {switched_to} instead of" in first.notes[0]


def test_a_refused_temperature_is_left_out() -> None:
    fake = FakeLLM()
    fake.fail_next(
        400,
        body="Unsupported value: 'temperature' does not support 0.3 with this model. Only the default (1) value is "
        "supported.",
    )
    provider = resilient(fake)
    run(provider, req(1, temperature=0.3))
    assert "temperature" in fake.requests[0].json and "temperature" not in fake.requests[1].json


def test_the_notes_never_hold_the_key() -> None:
    fake = FakeLLM()
    fake.fail_next(500, body=LLAMA_CPP_PYTHON)
    (done,) = run(resilient(fake), req(1, output_schema=SCHEMA))
    assert "sk-test" not in json.dumps(done.notes)
