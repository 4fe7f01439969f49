"""The night's providers: made on first use, one per provider entry, closed when the run ends.

Apart from the run (run.py) because it is its own concern: a provider that cannot be made (no API key)
is remembered, so its rows are deferred with the same reason without asking again, and what a provider
does on its own (the circuit breaker opening and closing) is audited for the morning's alerts.
Preview workflows get a PreviewProvider priced from the YAML: no request leaves the machine.
"""

from __future__ import annotations

import contextlib

from sheetbot.config.models import WorkflowConfig
from sheetbot.errors import SheetbotError, StateError
from sheetbot.night.context import EventHook, NightContext
from sheetbot.providers.base import Provider, ProviderEvent
from sheetbot.providers.preview import PreviewProvider


class ProviderPool:
    """The night's providers, made on first use; a provider that cannot be made (no key) is remembered."""

    def __init__(self, ctx: NightContext) -> None:
        self.ctx = ctx
        self.made: dict[str, Provider] = {}
        self.broken: dict[str, SheetbotError] = {}
        self.events: list[tuple[str, str]] = []

    def __call__(self, wf: WorkflowConfig) -> tuple[str, Provider]:
        if wf.mode == "preview":
            key = f"preview:{wf.model}"
            if key not in self.made:
                price = self.ctx.config.prices[wf.model]
                self.made[key] = PreviewProvider(price_per_mtok_input=price.input, price_per_mtok_output=price.output)
            return key, self.made[key]
        # `batch` rows come here only when they run live (a server without a Batch API): sheetbot.batch.
        if wf.provider in self.broken:
            raise self.broken[wf.provider]
        if wf.provider not in self.made:
            try:
                self.made[wf.provider] = self.ctx.providers(wf.provider, self._event_hook(wf.provider))
            except SheetbotError as exc:
                self.broken[wf.provider] = exc
                raise
        return wf.provider, self.made[wf.provider]

    def _event_hook(self, provider: str) -> EventHook:
        def record(event: str, detail: ProviderEvent) -> None:
            # Retries are routine; the breaker is what the morning's alerts are made of, and the 429s (their
            # details name no call) are what /metrics counts, from the audit, so a restart loses none.
            if event.startswith("circuit") or event == "rate_limited":
                self.events.append((event, provider))
                # Called inside a provider's call, perhaps after a paid answer: a state fault here must not
                # lose it (the answer's own write finds the fault and keeps the answer in the journal).
                with contextlib.suppress(StateError):
                    self.ctx.state.audit(event, now=self.ctx.now(), detail={"provider": provider, **detail})

        return record

    async def aclose(self) -> None:
        for provider in self.made.values():
            await provider.aclose()
