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
    for call in state.calls_of_night(night, workflow):
        price = (prices or {}).get(call.model)
        if call.mode != "batch":
            total += call.cost_usd
        elif price is not None:
            usage = Usage(call.input_tokens, call.output_tokens, call.cache_write_tokens, call.cache_read_tokens)
            total += cost_usd(price, usage)
        else:
            total += call.cost_usd * 2
    return total
