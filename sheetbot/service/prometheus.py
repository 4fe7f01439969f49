"""`/metrics` for `serve`: what ops teams scrape, computed from the state at each scrape.

A custom ``prometheus_client`` Collector on a registry of its own (not the library's global one, which
would also export this process's Python internals and anything else that registered there). Each scrape
opens the state, asks it named questions (sheetbot/state/tallies.py, and the report's own per-night
figures, sheetbot/morning/metrics.py) and closes it: the numbers are the state's, so a restart of `serve`
resets no ``_total`` and double-counts nothing, and /metrics, `report` and the alerts never disagree.

Labels are bounded: workflow, provider and model names come from the YAML (a name the state holds but the
YAML no longer has is counted under ``(other)``; a row that never had a workflow under ``(none)``);
statuses from the Status enum; modes and outcomes from fixed lists. Never a row id, a night's date, an
error message or any text from the board, so nothing a customer wrote (nor a secret) reaches a scrape.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from sheetbot.config.models import Config
from sheetbot.morning.metrics import NightMetrics, night_metrics
from sheetbot.state import State
from sheetbot.state.tallies import CallTally
from sheetbot.status import Status

#: What a name the YAML does not (or no longer) know is counted under; a row with no workflow yet.
OTHER = "(other)"
NONE = "(none)"
MODES = ("live", "batch", "preview")
STATUSES = frozenset(str(s) for s in Status)
#: A breaker's states, as ``sheetbot_circuit_breaker_state`` shows them (one of them 1, the others 0).
BREAKER_STATES = {"circuit_closed": "closed", "circuit_open": "open", "circuit_half_open": "half_open"}
#: How long a scrape waits for the state's lock (a night holds it only for short commits).
SCRAPE_WAIT_S = 5.0

OpenState = Callable[[], AbstractContextManager[State]]


@dataclass
class _Figures:
    """Everything one scrape read from the state, taken in one go so the state is open only briefly."""

    statuses: dict[tuple[str | None, str], int] = field(default_factory=dict)
    calls: list[CallTally] = field(default_factory=list)
    events: dict[tuple[str, str], int] = field(default_factory=dict)
    breakers: dict[str, str] = field(default_factory=dict)
    batches: dict[str, int] = field(default_factory=dict)
    last_night: list[NightMetrics] = field(default_factory=list)
    finished_at: str | None = None
    drained: int | None = None


class StateCollector(Collector):
    """Reads the state at each scrape and yields sheetbot's metric families (all prefixed ``sheetbot_``)."""

    def __init__(self, config: Config, open_state: OpenState) -> None:
        self.config = config
        self.open_state = open_state
        self.workflows = sorted(config.workflows)
        self.providers = sorted(config.providers)
        models = {wf.model for wf in config.workflows.values()} | set(config.prices)
        models |= {step.model for wf in config.workflows.values() for step in wf.steps if step.model}
        models |= {wf.fallback.model for wf in config.workflows.values() if wf.fallback is not None}
        self.models = models

    def describe(self) -> Iterable[Metric]:
        """Nothing up front: registering must not open the state (the registry would otherwise collect)."""
        return []

    # -- bounded labels ----------------------------------------------------------------
    def workflow(self, name: str | None) -> str:
        return NONE if name is None else name if name in self.config.workflows else OTHER

    def provider(self, name: str) -> str:
        if name in self.config.providers:
            return name
        return "preview" if name.startswith("preview:") else OTHER  # preview calls leave no machine

    def model(self, name: str) -> str:
        return name if name in self.models else OTHER

    # -- the scrape --------------------------------------------------------------------
    def read(self) -> _Figures:
        with self.open_state() as state:
            figures = _Figures(
                statuses=state.status_counts(),
                calls=state.call_tallies(),
                events=state.provider_event_counts(),
                breakers=state.last_circuit_events(),
                batches=state.open_batch_counts(),
                last_night=night_metrics(state, nights=1, prices=self.config.prices),
            )
            finished = [n for n in state.nights(limit=7) if n["run_finished_at"]]
            if finished:
                figures.finished_at, figures.drained = finished[0]["run_finished_at"], finished[0]["drained"]
        return figures

    def collect(self) -> Iterator[Metric]:
        figures = self.read()
        yield self._rows(figures)
        yield from self._calls(figures)
        yield from self._providers(figures)
        yield from self._last_night(figures)

    def _rows(self, figures: _Figures) -> Metric:
        rows = GaugeMetricFamily(
            "sheetbot_rows", "Rows sheetbot tracks, by workflow and status, now.", labels=["workflow", "status"]
        )
        counts: dict[tuple[str, str], int] = {(wf, str(s)): 0 for wf in self.workflows for s in Status}
        for (workflow, status), n in figures.statuses.items():
            key = (self.workflow(workflow), status if status in STATUSES else OTHER)
            counts[key] = counts.get(key, 0) + n
        for (workflow, status), n in sorted(counts.items()):
            rows.add_metric([workflow, status], n)
        return rows

    def _calls(self, figures: _Figures) -> Iterator[Metric]:
        calls = CounterMetricFamily(
            "sheetbot_model_calls",
            "Model calls ever made, by outcome: ok (stored), invalid (answered, paid, but cut off or not valid), "
            "error (no answer).",
            labels=["provider", "model", "mode", "outcome"],
        )
        cost = CounterMetricFamily("sheetbot_cost_usd", "Dollars spent on model calls, ever.", labels=["workflow"])
        by_call: dict[tuple[str, str, str, str], int] = defaultdict(int)
        by_workflow: dict[str, float] = dict.fromkeys(self.workflows, 0.0)
        # Issue 14: what each model cost per workflow, so a fallback's share shows (the series above stay as
        # they were: a new label on sheetbot_cost_usd would break the dashboards built on it).
        per_model = CounterMetricFamily(
            "sheetbot_model_cost_usd", "Dollars spent on model calls, ever, by model.", labels=["workflow", "model"]
        )
        by_model: dict[tuple[str, str], float] = defaultdict(float)
        for t in figures.calls:
            by_model[(self.workflow(t.workflow), self.model(t.model))] += t.cost_usd
            mode = t.mode if t.mode in MODES else OTHER
            by_call[(self.provider(t.provider), self.model(t.model), mode, t.outcome)] += t.calls
            workflow = self.workflow(t.workflow)
            by_workflow[workflow] = by_workflow.get(workflow, 0.0) + t.cost_usd
        for labels, n in sorted(by_call.items()):
            calls.add_metric(list(labels), n)
        for workflow, usd in sorted(by_workflow.items()):
            cost.add_metric([workflow], round(usd, 6))
        for labels_, usd in sorted(by_model.items()):
            per_model.add_metric(list(labels_), round(usd, 6))
        yield calls
        yield cost
        yield per_model

    def _providers(self, figures: _Figures) -> Iterator[Metric]:
        limited = CounterMetricFamily(
            "sheetbot_rate_limited", "HTTP 429 answers from a provider (each try), ever.", labels=["provider"]
        )
        opened = CounterMetricFamily(
            "sheetbot_circuit_breaker_opened", "Times a provider's circuit breaker opened, ever.", labels=["provider"]
        )
        state = GaugeMetricFamily(
            "sheetbot_circuit_breaker_state",
            "A provider's circuit breaker as last recorded (1 for its state): a breaker lives while a night "
            "calls the provider, so after a night this is how that night left it.",
            labels=["provider", "state"],
        )
        batches = GaugeMetricFamily(
            "sheetbot_open_batches", "Batch API jobs whose results are not all stored yet.", labels=["provider"]
        )
        for provider in self.providers:
            limited.add_metric([provider], figures.events.get(("rate_limited", provider), 0))
            opened.add_metric([provider], figures.events.get(("circuit_open", provider), 0))
            now = BREAKER_STATES.get(figures.breakers.get(provider, "circuit_closed"), "closed")
            for name in BREAKER_STATES.values():
                state.add_metric([provider, name], 1 if name == now else 0)
        open_batches: dict[str, int] = dict.fromkeys(self.providers, 0)
        for provider, n in figures.batches.items():
            open_batches[self.provider(provider)] = open_batches.get(self.provider(provider), 0) + n
        for provider, n in sorted(open_batches.items()):
            batches.add_metric([provider], n)
        yield from (limited, opened, state, batches)

    def _last_night(self, figures: _Figures) -> Iterator[Metric]:
        rows = GaugeMetricFamily(
            "sheetbot_last_night_rows",
            "The latest night's rows by outcome: locked, done, failed, deferred (as `sheetbot report`).",
            labels=["workflow", "outcome"],
        )
        completion = GaugeMetricFamily(
            "sheetbot_last_night_completion_ratio",
            "The latest night's done / locked rows (as `sheetbot report`).",
            labels=["workflow"],
        )
        cost = GaugeMetricFamily("sheetbot_last_night_cost_usd", "The latest night's spend.", labels=["workflow"])
        outcomes: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        for m in figures.last_night:
            figures_of = outcomes[self.workflow(m.workflow)]
            for outcome, n in (("locked", m.locked), ("done", m.done), ("failed", m.failed), ("deferred", m.deferred)):
                figures_of[outcome] += n
            figures_of["cost"] += m.cost_usd
        for workflow, of in sorted(outcomes.items()):
            for outcome in ("locked", "done", "failed", "deferred"):
                rows.add_metric([workflow, outcome], of[outcome])
            if of["locked"]:
                completion.add_metric([workflow], round(of["done"] / of["locked"], 4))
            cost.add_metric([workflow], round(of["cost"], 6))
        yield from (rows, completion, cost)
        if figures.finished_at is not None:
            finished = GaugeMetricFamily(
                "sheetbot_last_night_finished_timestamp_seconds", "When the latest finished night's run ended."
            )
            finished.add_metric([], datetime.fromisoformat(figures.finished_at).timestamp())
            drained = GaugeMetricFamily(
                "sheetbot_last_night_drained", "1 when the latest finished night ran every row it locked, else 0."
            )
            drained.add_metric([], 1 if figures.drained else 0)
            yield from (finished, drained)


def state_collector(config: Config, open_state: OpenState | None = None) -> StateCollector:
    """The board's collector; ``open_state`` defaults to the YAML's state (many boards: one each, board_reports)."""

    def default() -> State:
        return State(config.state_target, busy_timeout_s=SCRAPE_WAIT_S)

    return StateCollector(config, open_state or default)


def metrics_registry(config: Config, open_state: OpenState | None = None) -> CollectorRegistry:
    """A registry of its own holding only sheetbot's collector; ``open_state`` defaults to the YAML's state."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(state_collector(config, open_state))
    return registry
