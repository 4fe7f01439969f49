"""Structured output: a workflow's ``outputs:`` as a JSON schema for the model, and a check of the answer.

The answer is checked even though the provider constrains it (OpenAI strict ``response_format``, Anthropic's
forced tool): a model can be cut off at max_tokens or refuse, and a compatible server may answer in JSON text.
A failed check is ``InvalidAnswer``, not a provider error: the call worked and was paid for, so the row gets
one retry with the problems in the prompt (``repair_prompt``), then fails with them in its ``error`` column.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Annotated, Any

from pydantic import AfterValidator, AliasChoices, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from pydantic import create_model as _create_model
from pydantic_core import ErrorDetails

from sheetbot.config.field_keys import schema_key
from sheetbot.config.models import OutputField
from sheetbot.errors import InvalidAnswer

#: A validated field value: text and choices as str, integer, number, boolean, list of texts.
Value = str | int | float | bool | list[str]

_JSON_TYPE = {"text": "string", "integer": "integer", "number": "number", "boolean": "boolean", "list": "array"}
_KIND = {"text": "text", "integer": "a whole number", "number": "a number", "boolean": "yes or no", "list": "a list"}
#: Pydantic error types (by prefix) -> the kind of value that was expected.
_ERROR_KIND = dict(int="integer", float="number", finite="number", bool="boolean", list="list", string="text")
_FENCE = re.compile(r"```[A-Za-z]*\s*\n?(.*?)```", re.DOTALL)


def schema_keys(fields: Sequence[OutputField]) -> list[str]:
    """Each field's property name. Two fields with one key (``a b`` and ``a_b``) are refused by the YAML's
    validation (``colliding_keys``): renaming one behind the admin's back would make answers ambiguous."""
    return [schema_key(field.name) for field in fields]


def _property(field: OutputField) -> dict[str, Any]:
    prop: dict[str, Any] = {"type": _JSON_TYPE.get(field.type, "string")}
    if field.type == "list":
        prop["items"] = {"type": "string"}
    if field.type == "choice":
        prop["enum"] = list(field.choices)
    if field.description:
        prop["description"] = field.description
    return prop


def json_schema(fields: Sequence[OutputField]) -> dict[str, Any]:
    """A flat object schema that OpenAI strict mode accepts (every property required, no additional
    properties, no optional keywords) and that works unchanged as an Anthropic tool ``input_schema``."""
    keys = schema_keys(fields)
    return {
        "type": "object",
        "properties": {key: _property(field) for key, field in zip(keys, fields, strict=True)},
        "required": keys,
        "additionalProperties": False,
    }


def _show(value: object) -> str:
    """A value as a reviewer reads it in a message: strings quoted, everything short."""
    text = f"'{value}'" if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    text = " ".join(text.split())
    return text if len(text) <= 60 else text[:57] + ("…'" if isinstance(value, str) else "…")


def _not_bool(kind: str, value: object) -> object:
    """Pydantic's lax mode reads true as 1; an answer of true for a score is a mistake, not a number."""
    if isinstance(value, bool):
        raise ValueError(f"{_show(value)} is not {_KIND[kind]}")
    return value


def _split(value: object) -> object:
    """A list answered as one string (local servers do this) is split at commas and line breaks."""
    return [part.strip() for part in re.split(r"[,\n]", value) if part.strip()] if isinstance(value, str) else value


def _choice(choices: Sequence[str], value: str) -> str:
    """Match case-insensitively, and keep the spelling the workflow declared."""
    found = {c.strip().casefold(): c for c in choices}.get(value.strip().casefold())
    if found is None:
        raise ValueError(f"{_show(value)} is not one of {', '.join(choices)}")
    return found


def _annotation(field: OutputField) -> Any:
    return {
        "integer": Annotated[int, BeforeValidator(partial(_not_bool, "integer"))],
        "number": Annotated[float, BeforeValidator(partial(_not_bool, "number")), Field(allow_inf_nan=False)],
        "boolean": bool,
        "list": Annotated[list[str], BeforeValidator(_split)],
        "choice": Annotated[str, AfterValidator(partial(_choice, field.choices))],
    }.get(field.type, str)


def model_for(fields: Sequence[OutputField]) -> type[BaseModel]:
    """A pydantic model of the answer: every field required, no others. Attributes are ``f0``, ``f1``… in
    field order, because a field name is a column header and may not be an identifier (``first name``)."""
    definitions: dict[str, Any] = {}
    for i, (key, field) in enumerate(zip(schema_keys(fields), fields, strict=True)):
        alias = AliasChoices(field.name, key) if key != field.name else field.name
        definitions[f"f{i}"] = (_annotation(field), Field(validation_alias=alias))
    config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)
    return _create_model("StructuredAnswer", __config__=config, **definitions)


def _problem(error: ErrorDetails, names: Mapping[str, str], expected: str) -> str:
    """One pydantic error in reviewer's words: ``score: 'four' is not a whole number``."""
    loc = [str(part) for part in error.get("loc", ())]
    where = names.get(loc[0], loc[0]) if loc else "answer"
    if len(loc) > 1 and loc[1].isdigit():
        where += f" item {int(loc[1]) + 1}"
    kind = error.get("type", "")
    fixed = {"missing": "no value given", "extra_forbidden": f"not asked for (the fields are {expected})"}
    if kind in fixed:
        return f"{where}: {fixed[kind]}"
    if kind == "value_error":
        return f"{where}: {error['ctx']['error']}"
    for prefix, words in _ERROR_KIND.items():
        if kind.startswith(prefix):
            return f"{where}: {_show(error.get('input'))} is not {_KIND[words]}"
    return f"{where}: {error.get('msg', 'invalid')}"


def parse_json(text: str) -> object:
    """The JSON in a text answer: the whole text, a ```json fenced block, or the outermost ``{…}``."""
    start, end = text.find("{"), text.rfind("}")
    candidates = [text, *(m.group(1) for m in _FENCE.finditer(text))]
    if 0 <= start < end:
        candidates.append(text[start : end + 1])
    for candidate in candidates:
        try:
            return json.loads(candidate)
        except ValueError:
            continue
    raise InvalidAnswer([f"the answer is not JSON: it begins {_show(text.strip())}"])


def validate_answer(fields: Sequence[OutputField], answer: Mapping[str, object] | str | None) -> dict[str, Value]:
    """Check an answer (an object, or text holding JSON) against ``fields``; values keyed by field name.
    InvalidAnswer lists every problem at once, so the single retry can fix them all."""
    expected = ", ".join(f.name for f in fields)
    if answer is None or (isinstance(answer, str) and not answer.strip()):
        raise InvalidAnswer([f"the answer is empty: expected the fields {expected}"])
    data = parse_json(answer) if isinstance(answer, str) else answer
    if not isinstance(data, Mapping):
        raise InvalidAnswer([f"the answer is not an object with the fields {expected}: it is {_show(data)}"])
    names = {k: f.name for k, f in zip(schema_keys(fields), fields, strict=True)}
    try:
        parsed = model_for(fields).model_validate(dict(data))
    except ValidationError as exc:
        raise InvalidAnswer([_problem(e, names, expected) for e in exc.errors()]) from None
    return {field.name: getattr(parsed, f"f{i}") for i, field in enumerate(fields)}


def _cell(value: object) -> str | int | float:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(str(item) for item in value)
    return value if isinstance(value, int | float) else "" if value is None else str(value)


def cells(fields: Sequence[OutputField], values: Mapping[str, object]) -> dict[str, str | int | float]:
    """What goes in each field's column: lists joined with ", ", booleans yes/no, numbers as numbers."""
    return {field.name: _cell(values.get(field.name)) for field in fields}


def readable(fields: Sequence[OutputField], values: Mapping[str, object]) -> str:
    """The answer for the ``output`` column, one ``name: value`` line per field."""
    shown = {k: int(v) if isinstance(v, float) and v.is_integer() else v for k, v in cells(fields, values).items()}
    return "\n".join(f"{name}: {value}" for name, value in shown.items())


def repair_prompt(prompt: str, error: InvalidAnswer | str, *, fields: Sequence[OutputField] | None = None) -> str:
    """The prompt for the single retry: the original, then what was wrong and (given ``fields``) what to send."""
    kinds = [f"one of {', '.join(f.choices)}" if f.type == "choice" else _KIND[f.type] for f in fields or ()]
    wanted = ", ".join(f"{f.name} ({kind})" for f, kind in zip(fields or (), kinds, strict=True))
    return (
        f"{prompt.rstrip()}\n\n---\nYour previous answer could not be used: {error}.\n"
        f"Answer again, in full, as a JSON object{' with the fields ' + wanted if wanted else ''}, "
        "following the required schema exactly."
    )
