"""Dollars from tokens, with the price table from the YAML (dollars per million tokens)."""

from __future__ import annotations

from sheetbot.config import PriceConfig
from sheetbot.providers.base import Usage

_MILLION = 1_000_000


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
