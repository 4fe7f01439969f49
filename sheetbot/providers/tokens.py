"""A token estimate that needs no tokenizer and no network."""

from __future__ import annotations

import math


def estimate_tokens(text: str) -> int:
    """About one token per four characters of English text: ``ceil(len(text) / 4)``, at least 1 if non-empty.

    A rough rule of thumb, not a tokenizer: it is off by tens of percent for code, other languages
    and unusual text. Good enough for cost previews and budget checks before a night runs; the real
    counts come back in each completion's usage.
    """
    return math.ceil(len(text) / 4) if text else 0
