"""Mask e-mail addresses and phone numbers in text that leaves sheetbot (audit exports, logs).

The board's rows are customers' data; an audit export goes to people who need the trail, not the
contacts in it. Phone detection is deliberately conservative about numbers that are not phones:
ISO dates and times, prices and amounts, and bare ids without a `+`, `00` or separators stay as
they are, because an export whose dates are masked is useless for an audit.
"""

from __future__ import annotations

import re
from typing import Any

EMAIL = re.compile(r"(?<![\w.+-])([\w.+-])[\w.+-]*@([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)")

#: A run that might be a phone number: optional `+`/`00`, digits with spaces, dashes, slashes, dots
#: or parentheses between them. Whether it is one is decided by `_is_phone`.
_CANDIDATE = re.compile(r"(?<![\w+.,:/-])(?:\+|00)?\(?\d[\d\s()./-]{5,}\d(?![\w.,]?\d)(?![\w@])")
_DATE = re.compile(r"\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{4}")


def _is_phone(text: str) -> bool:
    digits = re.sub(r"\D", "", text)
    if _DATE.search(text) or "\n" in text:
        return False
    international = text.startswith(("+", "00"))
    if international:
        return 8 <= len(digits) <= 15
    # A national number needs a separator pattern typical of phones, and no decimal point.
    has_separator = bool(re.search(r"\d[\s/-]\d|\(\d+\)", text))
    has_decimal = bool(re.search(r"\d\.\d{1,2}$", text))
    return has_separator and not has_decimal and 9 <= len(digits) <= 15


def _mask_phone(match: re.Match[str]) -> str:
    text = match.group(0)
    stripped = text.rstrip()
    if not _is_phone(stripped):
        return text
    return "[phone]" + text[len(stripped) :]


def mask_text(text: str) -> str:
    """E-mail addresses become `j***@example.com`, phone numbers `[phone]`."""
    if not text:
        return text
    masked = EMAIL.sub(lambda m: f"{m.group(1)}***@{m.group(2)}", text)
    return _CANDIDATE.sub(_mask_phone, masked)


def mask(value: Any) -> Any:
    """Mask every string inside a JSON-like value (dicts, lists), keys included."""
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, dict):
        return {mask(k): mask(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [mask(v) for v in value]
    return value
