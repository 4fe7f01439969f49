"""Structured output: the schema, the check of an answer, its cells, and both SDKs end to end with FakeLLM."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx2
import pytest
from fakellm import FakeLLM

from sheetbot.config.models import OutputField
from sheetbot.config.outputs import (
    cells,
    json_schema,
    model_for,
    readable,
    repair_prompt,
    schema_keys,
    validate_answer,
)
from sheetbot.errors import InvalidAnswer, PermanentProviderError, RequestShapeError, SheetbotError
from sheetbot.providers.anthropic_messages import AnthropicProvider
from sheetbot.providers.base import Completion, CompletionRequest
from sheetbot.providers.openai_chat import OpenAIProvider

FIELDS = [
    OutputField(name="sentiment", type="choice", choices=["positive", "neutral", "negative"], description="Overall"),
    OutputField(name="score", type="integer"),
    OutputField(name="themes", type="list"),
    OutputField(name="urgent", type="boolean"),
    OutputField(name="summary"),
    OutputField(name="confidence", type="number"),
]
GOOD = {
    "sentiment": "positive",
    "score": 4,
    "themes": ["fit", "warmth"],
    "urgent": False,
    "summary": "Loves it",
    "confidence": 0.9,
}
KINDS = ["openai", "anthropic"]


def problems(answer: Any, fields: list[OutputField] = FIELDS) -> list[str]:
    with pytest.raises(InvalidAnswer) as info:
        validate_answer(fields, answer)
    assert isinstance(info.value, SheetbotError) and str(info.value) == "; ".join(info.value.problems)
    return info.value.problems


# -- the schema -----------------------------------------------------------------------------
def test_schema_follows_openai_strict_rules() -> None:
    schema = json_schema(FIELDS)
    assert schema["type"] == "object" and schema["additionalProperties"] is False
    assert schema["required"] == list(schema["properties"]) == [f.name for f in FIELDS]
    props = schema["properties"]
    assert props["sentiment"] == {
        "type": "string",
        "enum": ["positive", "neutral", "negative"],
        "description": "Overall",
    }
    assert props["score"] == {"type": "integer"} and props["confidence"] == {"type": "number"}
    assert props["themes"] == {"type": "array", "items": {"type": "string"}}
    assert props["urgent"] == {"type": "boolean"} and props["summary"] == {"type": "string"}
    json.dumps(schema)  # plain JSON, ready for either SDK


def test_field_names_with_spaces_get_keys_anthropic_accepts() -> None:
    fields = [OutputField(name="first name"), OutputField(name="last_name"), OutputField(name="x" * 70)]
    keys = schema_keys(fields)
    assert keys == ["first_name", "last_name", "x" * 64]  # names that would collide are refused by the YAML
    assert list(json_schema(fields)["properties"]) == keys
    # the answer may use the key or the name; values come back under the field's name (its column)
    values = validate_answer(fields[:1], {"first_name": "Ada"})
    assert values == {"first name": "Ada"} == validate_answer(fields[:1], {"first name": "Ada"})


# -- validation -----------------------------------------------------------------------------
def test_good_answer_is_normalised() -> None:
    assert validate_answer(FIELDS, GOOD) == GOOD
    lax = {**GOOD, "sentiment": " Positive", "score": "4", "urgent": "yes", "themes": "fit, warmth", "confidence": "1"}
    values = validate_answer(FIELDS, lax)
    assert values["sentiment"] == "positive" and values["score"] == 4 and values["urgent"] is True
    assert values["themes"] == ["fit", "warmth"] and values["confidence"] == 1.0


def test_problems_are_listed_in_reviewer_words() -> None:
    found = problems({**GOOD, "sentiment": "meh", "score": "four"})
    assert found == [
        "sentiment: 'meh' is not one of positive, neutral, negative",
        "score: 'four' is not a whole number",
    ]
    assert problems({**GOOD, "score": 4.5}) == ["score: 4.5 is not a whole number"]
    assert problems({**GOOD, "score": True}) == ["score: true is not a whole number"]
    assert problems({**GOOD, "confidence": "high"}) == ["confidence: 'high' is not a number"]
    assert problems({**GOOD, "urgent": "maybe"}) == ["urgent: 'maybe' is not yes or no"]
    assert problems({**GOOD, "themes": [None]}) == ["themes item 1: null is not text"]


def test_extra_and_missing_keys() -> None:
    assert problems({**GOOD, "mood": "happy"}) == [f"mood: not asked for (the fields are {', '.join(GOOD)})"]
    missing = {k: v for k, v in GOOD.items() if k not in ("score", "themes")}
    assert problems(missing) == ["score: no value given", "themes: no value given"]


def test_json_text_in_a_code_fence_or_with_words_around_it() -> None:
    fenced = "Here you go:\n```json\n" + json.dumps(GOOD, indent=2) + "\n```\nAnything else?"
    assert validate_answer(FIELDS, fenced) == GOOD
    assert validate_answer(FIELDS, "Sure! " + json.dumps(GOOD)) == GOOD
    assert validate_answer(FIELDS, json.dumps(GOOD)) == GOOD


def test_text_that_is_not_a_json_object() -> None:
    assert problems("I think the customer is happy.") == [
        "the answer is not JSON: it begins 'I think the customer is happy.'"
    ]
    assert problems("") == [f"the answer is empty: expected the fields {', '.join(GOOD)}"]
    assert problems(None) == problems("  ")
    assert problems("[1, 2]") == [f"the answer is not an object with the fields {', '.join(GOOD)}: it is [1, 2]"]
    long = problems("x" * 500)[0]
    assert len(long) < 120 and long.endswith("…'")


def test_model_for_forbids_extra_keys_and_is_a_pydantic_model() -> None:
    model = model_for(FIELDS)
    assert model.model_validate(GOOD).f1 == 4  # type: ignore[attr-defined]
    with pytest.raises(ValueError):
        model.model_validate({**GOOD, "other": 1})


# -- rendering ------------------------------------------------------------------------------
def test_cells_and_readable() -> None:
    values = validate_answer(FIELDS, {**GOOD, "urgent": True, "confidence": 2})
    assert cells(FIELDS, values) == {
        "sentiment": "positive",
        "score": 4,
        "themes": "fit, warmth",
        "urgent": "yes",
        "summary": "Loves it",
        "confidence": 2.0,
    }
    assert readable(FIELDS, values) == (
        "sentiment: positive\nscore: 4\nthemes: fit, warmth\nurgent: yes\nsummary: Loves it\nconfidence: 2"
    )
    assert cells(FIELDS[:4], {"urgent": False})["urgent"] == "no"


def test_repair_prompt_says_what_was_wrong() -> None:
    error = InvalidAnswer(["score: 'four' is not a whole number"])
    prompt = repair_prompt("Classify this review.\n", error)
    assert prompt.startswith("Classify this review.\n\n---\nYour previous answer could not be used: score: 'four'")
    assert "following the required schema" in prompt
    described = repair_prompt("P", str(error), fields=FIELDS[:3])
    assert "sentiment (one of positive, neutral, negative), score (a whole number), themes (a list)" in described


# -- through the real SDKs --------------------------------------------------------------------
def request(**overrides: Any) -> CompletionRequest:
    fields: dict[str, Any] = dict(custom_id="t1:1:0", model="m", system="", prompt="Review: great", max_tokens=64)
    fields |= {"timeout_s": 5.0, "output_schema": json_schema(FIELDS)} | overrides
    return CompletionRequest(**fields)


def call(kind: str, fake: FakeLLM, req: CompletionRequest | None = None) -> Completion:
    cls = OpenAIProvider if kind == "openai" else AnthropicProvider

    async def go() -> Completion:
        provider = cls(api_key="sk-test", base_url=None, max_retries=0, http_client=fake.async_client(), label=kind)
        try:
            return await provider.complete(req or request())
        finally:
            await provider.aclose()

    return asyncio.run(go())


@pytest.mark.parametrize("kind", KINDS)
def test_request_asks_for_the_schema_and_data_is_parsed(kind: str) -> None:
    fake = FakeLLM()
    done = call(kind, fake)
    body = fake.requests[0].json
    schema = json_schema(FIELDS)
    if kind == "openai":
        assert body["response_format"] == {
            "type": "json_schema",
            "json_schema": {"name": "sheetbot_output", "schema": schema, "strict": True},
        }
        assert "tools" not in body
    else:
        assert body["tools"] == [
            {
                "name": "record_output",
                "description": "Record the answer in the required fields.",
                "input_schema": schema,
            }
        ]
        assert body["tool_choice"] == {"type": "tool", "name": "record_output"}
        assert "response_format" not in body
    expected = {**GOOD, "sentiment": "positive", "score": 3, "themes": ["a", "b"], "urgent": True}
    expected |= {"summary": "text", "confidence": 2.5}
    assert done.data == expected and json.loads(done.text) == expected
    assert validate_answer(FIELDS, done.data) == expected


@pytest.mark.parametrize("kind", KINDS)
def test_scripted_answers_and_invalid_ones_reach_validation(kind: str) -> None:
    fake = FakeLLM()
    fake.answer_with(lambda body: {**GOOD, "sentiment": "meh"})
    done = call(kind, fake)
    assert done.data is not None and done.data["sentiment"] == "meh"
    assert problems(done.data) == ["sentiment: 'meh' is not one of positive, neutral, negative"]
    fake.answer_with(lambda body: "Sorry, I can only answer in prose.")
    done = call(kind, fake)
    assert done.data is None and done.text == "Sorry, I can only answer in prose."
    assert problems(done.text)[0].startswith("the answer is not JSON")


@pytest.mark.parametrize("kind", KINDS)
def test_without_a_schema_nothing_changes(kind: str) -> None:
    fake = FakeLLM()
    done = call(kind, fake, request(output_schema=None))
    body = fake.requests[0].json
    assert not {"response_format", "tools", "tool_choice"} & set(body)
    assert done.data is None and done.text == "OUTPUT for: Review: great"


@pytest.mark.parametrize("kind", KINDS)
def test_truncated_structured_answer_is_flagged(kind: str) -> None:
    fake = FakeLLM()
    fake.truncate_next()
    done = call(kind, fake)
    assert done.truncated


@pytest.mark.parametrize(
    "message",
    [
        "response_format 'json_schema' is not supported by this server",
        "Invalid parameter: 'response_format' of type 'json_schema' is not supported with this model.",
    ],
)
def test_openai_server_without_json_schema_falls_back_to_json_mode(message: str) -> None:
    fake = FakeLLM()
    fake.fail_next(400, body=message)
    done = call("openai", fake)
    assert done.data is not None and len(fake.requests) == 2
    again = fake.requests[1].json
    assert again["response_format"]["type"] == "json_object" and again["response_format"]["schema"]
    assert "JSON schema" in again["messages"][-1]["content"]  # the schema travels in the prompt as well
    assert done.notes and "asked for JSON mode with the schema in the prompt" in done.notes[0]


def test_an_invalid_schema_is_still_the_workflows_to_fix() -> None:
    fake = FakeLLM()
    fake.fail_next(400, body="Invalid schema for response_format 'sheetbot_output': ...")
    with pytest.raises(PermanentProviderError) as info:
        call("openai", fake)
    assert "rejected the structured-output schema" in str(info.value) and info.value.status_code == 400


def test_a_local_server_refusing_every_shape_fails_with_its_own_words() -> None:
    def handler(req: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(422, json={"detail": [{"loc": ["body", "response_format"], "msg": "extra fields"}]})

    async def go() -> Completion:
        client = httpx2.AsyncClient(transport=httpx2.MockTransport(handler))
        provider = OpenAIProvider(api_key="k", base_url="http://127.0.0.1:8000/v1", max_retries=0, http_client=client)
        return await provider.complete(request())

    with pytest.raises(RequestShapeError) as info:
        asyncio.run(go())
    assert "at http://127.0.0.1:8000/v1 refused the parameter response_format" in str(info.value)
    assert "body.response_format: extra fields" in str(info.value)


def test_other_400s_keep_their_usual_message_with_a_schema() -> None:
    fake = FakeLLM()
    fake.fail_next(400, body="This model's maximum context length is 128000 tokens.")
    with pytest.raises(PermanentProviderError, match="the prompt is too long"):
        call("openai", fake)
