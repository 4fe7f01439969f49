"""Airtable field values: what a person reads in a cell, what a field of a given type accepts, and a
field type as Airtable's UI names it."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from sheetbot.boards.base import CellValue
from sheetbot.boards.values import AIRTABLE_CELL_UNITS, as_text, clean_text, plain_text

# Vendor JSON: a cell's value in Airtable's JSON depends on the field's type (Airtable's shape): number, bool, str.

_NUMERIC = frozenset({"number", "currency", "percent", "duration", "rating"})
_LABELS = {"singleLineText": "Single line text", "multilineText": "Long text", "number": "Number"}


def cell_text(value: object) -> str:
    """A field value as the text a person reads: numbers "0.25", checkboxes TRUE/FALSE, lists joined."""
    if isinstance(value, list):
        return ", ".join(text for text in (cell_text(item) for item in value) if text)
    if isinstance(value, dict):  # collaborators, attachments, buttons, barcodes, AI text, formula errors
        for key in ("name", "text", "value", "label", "filename", "email", "url", "specialValue", "error"):
            if value.get(key) not in (None, ""):
                return cell_text(value[key])
        return ""
    return as_text(value)


def field_value(value: CellValue, field_type: str) -> Any:
    """A plain value typed for its field: numbers into number fields, text into the rest, "" as empty."""
    if value is None or value == "":
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        if not math.isfinite(value):
            return None
        return value if field_type in _NUMERIC else plain_text(value, AIRTABLE_CELL_UNITS)
    text = clean_text(str(value), AIRTABLE_CELL_UNITS)
    if field_type in _NUMERIC:
        try:
            number = float(text)
        except ValueError:
            return text  # Airtable's 422 then names the field and the value
        return number if math.isfinite(number) else None
    return text


def field_label(field: Mapping[str, Any]) -> str:
    """A field type as Airtable's UI names it, with what a person must pick when adding it by hand."""
    kind = str(field.get("type", ""))
    options = field.get("options") or {}
    if kind == "singleSelect":
        return "Single select: " + ", ".join(str(c["name"]) for c in options.get("choices", []))
    if kind == "number":
        return f"Number, {options.get('precision', 0)} decimal places"
    return _LABELS.get(kind, kind)
