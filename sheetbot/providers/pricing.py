"""Dollars from tokens, with the price table from the YAML (dollars per million tokens)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import NamedTuple

from sheetbot.config.models import PriceConfig
from sheetbot.providers.base import Usage

_MILLION = 1_000_000

#: The shortest system prompt each model caches, in tokens; a shorter one is billed at the full input price.
#: From Anthropic's prompt-caching page: Claude Haiku 4.5, Opus 4.5 and 4.6: 4,096; Haiku 3 and 3.5: 2,048;
#: Sonnet and the other Opus models: 1,024. OpenAI caches prompts of 1,024 tokens or more by itself.
#: The one table: every estimate and message asks ``cache_minimum``. First match wins.
CACHE_MIN_TOKENS: tuple[tuple[str, int], ...] = (
    (r"haiku-[4-9]", 4096),  # claude-haiku-4-5, claude-haiku-4-5-20251001
    (r"opus-4-[5-9]", 4096),  # claude-opus-4-5, claude-opus-4-6
    (r"haiku", 2048),  # claude-3-5-haiku-20241022, claude-3-haiku-20240307
)
DEFAULT_CACHE_MIN_TOKENS = 1024


def cache_minimum(model: str) -> int:
    """The fewest tokens a prompt needs for ``model`` to cache it (see CACHE_MIN_TOKENS)."""
    name = model.lower()
    return next((tokens for pattern, tokens in CACHE_MIN_TOKENS if re.search(pattern, name)), DEFAULT_CACHE_MIN_TOKENS)


def cost_usd(price: PriceConfig, usage: Usage, *, batch: bool = False) -> float:
    """What a call cost. Cache writes default to 1.25× input and reads to 0.1× (Anthropic's 5-minute
    cache) when the table does not say; batch mode applies the provider's discount to everything."""
    cache_write = price.cache_write if price.cache_write is not None else price.input * 1.25
    cache_read = price.cache_read if price.cache_read is not None else price.input * 0.1
    dollars = (
        usage.input_tokens * price.input
        + usage.output_tokens * price.output
        + usage.cache_write_tokens * cache_write
        + usage.cache_read_tokens * cache_read
    ) / _MILLION
    if batch:
        dollars *= price.batch_discount
    return dollars


def estimate_usd(price: PriceConfig, *, input_tokens: int, output_tokens: int) -> float:
    return cost_usd(price, Usage(input_tokens=input_tokens, output_tokens=output_tokens))


class PaidCall(NamedTuple):
    """One stored model call as the live price needs it: its model, mode (live, batch, preview), what it cost."""

    model: str
    mode: str
    cost_usd: float
    usage: Usage


def live_usd(calls: Iterable[PaidCall], prices: Mapping[str, PriceConfig] | None = None) -> float:
    """What these calls would have cost live, the figure `sheetbot report` sets beside what batch mode paid:
    every batch call priced live, from its tokens when the price table is given, else by undoing the usual
    50% discount. Live and preview calls count as they are."""
    total = 0.0
    for call in calls:
        price = (prices or {}).get(call.model)
        if call.mode != "batch":
            total += call.cost_usd
        elif price is not None:
            total += cost_usd(price, call.usage)
        else:
            total += call.cost_usd * 2
    return total
