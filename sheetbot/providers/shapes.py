"""What a server accepts: the request's shape, and the step down when it refuses a part of it.

Servers differ in what they take, and say so only by refusing: llama.cpp's OpenAI-compatible server
knows ``response_format`` json_object but not json_schema (and answers HTTP 500); OpenAI's reasoning
models refuse ``max_tokens`` and ``temperature``; a proxy in front of Claude may not pass tools through.
A refusal of the shape is not an outage (it never counts toward the circuit breaker) and not the row's
fault: the provider sends what the server supports instead, remembers it for that model for the rest of
the run, and says what it did in a note for the run report.

The ladder for structured output: the native mechanism (OpenAI json_schema, Anthropic's forced tool),
then JSON mode with the schema in the prompt (OpenAI-compatible servers), then plain text with the schema
in the prompt. Every answer is validated by pydantic afterwards (sheetbot.config.outputs), whatever the rung.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

from sheetbot.errors import RequestShapeError
from sheetbot.providers.base import Completion

#: How a structured answer is asked for: the vendor's own mechanism, JSON mode, or words in the prompt.
Structured = Literal["native", "json_object", "text"]
TokenParam = Literal["max_tokens", "max_completion_tokens"]

#: OpenAI's reasoning models (o1, o3, o4-mini, the gpt-5 family): no ``max_tokens``, no ``temperature``.
_REASONING = re.compile(r"^(?:[\w.-]+/)?(?:o\d+(?:[-.].*)?|gpt-5(?:[-.].*)?)$", re.IGNORECASE)
_STRUCTURED_FIELDS = frozenset({"response_format", "json_schema", "json_object", "tools", "tool_choice"})


def is_reasoning_model(model: str) -> bool:
    """True for models that refuse ``temperature`` and want ``max_completion_tokens`` (o-series, gpt-5)."""
    return bool(_REASONING.match(model.strip()))


@dataclass(frozen=True)
class Shape:
    """The parts of a request a server has shown it accepts; the defaults are what it is sent first."""

    token_param: TokenParam = "max_tokens"
    temperature: bool = True
    structured: Structured = "native"


def first_shape(*, openai_api: bool, model: str) -> Shape:
    """What to send before the server has said anything: OpenAI's own API gets ``max_completion_tokens``
    (``max_tokens`` is deprecated there, and its reasoning models refuse it); compatible servers the old
    name they all know. Reasoning models get no temperature."""
    return Shape(
        token_param="max_completion_tokens" if openai_api else "max_tokens",
        temperature=not is_reasoning_model(model),
    )


def step_down(shape: Shape, field: str, *, json_mode: bool) -> tuple[Shape, str] | None:
    """The shape to send after the server refused ``field``, and what changed (for the run report);
    None when there is nothing left to leave out (the refusal then fails the row with its reason).
    ``json_mode``: the vendor has a JSON mode to fall back to (OpenAI-compatible servers)."""
    if field in ("max_tokens", "max_completion_tokens"):
        other: TokenParam = "max_completion_tokens" if field == "max_tokens" else "max_tokens"
        if shape.token_param == field:
            return replace(shape, token_param=other), f"sent {other} instead of {field}"
        return None
    if field == "temperature" and shape.temperature:
        return replace(shape, temperature=False), "sent no temperature (the model's default)"
    if field in _STRUCTURED_FIELDS:
        if shape.structured == "native" and json_mode:
            return replace(shape, structured="json_object"), "asked for JSON mode with the schema in the prompt"
        if shape.structured != "text":
            return replace(shape, structured="text"), "asked for JSON in the prompt and checked the answer"
    return None


def schema_instructions(schema: Mapping[str, Any]) -> str:
    """What a prompt says when the server cannot be made to follow the schema: answer with JSON only."""
    return "\n\nAnswer with one JSON object only, no other text, that follows this JSON schema:\n" + json.dumps(
        dict(schema), ensure_ascii=False
    )


class ShapeMemory:
    """What each model of one provider has shown it accepts, for one run, and the notes that say so."""

    def __init__(self, *, label: str, where: str, json_mode: bool, first: Callable[[str], Shape]) -> None:
        self.label, self.where, self.json_mode = label, where, json_mode
        self._first = first
        self._shapes: dict[str, Shape] = {}
        self._notes: dict[str, list[str]] = {}

    async def call(self, model: str, create: Callable[[Shape], Awaitable[Completion]]) -> Completion:
        """``create`` with the shape the model accepts, stepping down on each refusal of the shape; the
        completion carries a note for each step taken for this model. At most one step per part."""
        shape = self._shapes.get(model) or self._first(model)
        while True:
            try:
                completion = await create(shape)
            except RequestShapeError as exc:
                lower = step_down(shape, exc.field, json_mode=self.json_mode)
                if lower is None:
                    raise
                shape, what = lower
                self._shapes[model] = shape
                self._notes.setdefault(model, []).append(
                    f"{self.label} at {self.where} refused {exc.field} for model {model} "
                    f"(HTTP {exc.status_code}): {what}, for the rest of the run"
                )
                continue
            return replace(completion, notes=tuple(self._notes.get(model, ())))
