"""What a night would have cost live: the figure `sheetbot report` sets beside what batch mode paid."""

from __future__ import annotations

from collections.abc import Mapping

from sheetbot.config.models import PriceConfig
from sheetbot.providers.base import Usage
from sheetbot.providers.pricing import cost_usd
from sheetbot.state import State


def live_usd(state: State, night: str, workflow: str, prices: Mapping[str, PriceConfig] | None = None) -> float:
    """The night's spend with every batch call priced live: from its tokens when the price table is given,
    else by undoing the usual 50% discount. Live and preview calls count as they are."""
    total = 0.0
    rows = state.query(
        "SELECT model, mode, cost_usd, input_tokens, output_tokens, cache_write_tokens, cache_read_tokens "
        "FROM attempts WHERE night = ? AND workflow = ?",
        (night, workflow),
    )
    for r in rows:
        price = (prices or {}).get(r["model"])
        if r["mode"] != "batch":
            total += float(r["cost_usd"])
        elif price is not None:
            usage = Usage(r["input_tokens"], r["output_tokens"], r["cache_write_tokens"], r["cache_read_tokens"])
            total += cost_usd(price, usage)
        else:
            total += float(r["cost_usd"]) * 2
    return total
