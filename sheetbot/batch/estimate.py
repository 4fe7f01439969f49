"""Tonight's cost before it is spent: live, batch, and batch with prompt caching, per workflow.

Used by preview nights (the run report), `sheetbot check` and bench/cost.py. Token counts are the
usual four-characters estimate and every answer is assumed to use all of ``max_tokens``, so each figure
is an upper bound, and the three columns are comparable. Caching counts only where the provider would
cache: a system prompt that is the same for every row and at least the model's minimum
(sheetbot.providers.pricing.CACHE_MIN_TOKENS: 4,096 tokens for Claude Haiku 4.5, 1,024 for Sonnet). Anthropic's
first row writes the cache (1.25× input), the rows after it read it (0.1×).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from sheetbot.config.models import Config
from sheetbot.night.task import workflow_steps
from sheetbot.night.templates import placeholders, render, row_lookup
from sheetbot.providers.base import Usage
from sheetbot.providers.pricing import cache_minimum, cost_usd
from sheetbot.providers.tokens import estimate_tokens
from sheetbot.state import Task


@dataclass(frozen=True)
class Estimate:
    workflow: str
    rows: int
    live_usd: float
    batch_usd: float
    cached_usd: float

    def line(self) -> str:
        return (
            f"{self.workflow}: {self.rows} row(s) ≈${self.live_usd:.4f} live, ≈${self.batch_usd:.4f} batch, "
            f"≈${self.cached_usd:.4f} batch with caching (if every answer used max_tokens)"
        )


def estimate(
    config: Config,
    workflow: str,
    snapshots: Iterable[Mapping[str, str]],
    *,
    aliases: Mapping[str, str] | None = None,
    min_cache_tokens: int | None = None,
) -> Estimate:
    """The three figures for these rows (each a locked snapshot: column → value) of one workflow.
    ``min_cache_tokens`` overrides the providers' minimum cacheable prompt (bench: "if it were long enough")."""
    wf = config.workflows[workflow]
    kind = config.provider_kind(wf.provider)
    aliases = aliases if aliases is not None else config.columns.logical()
    live = batch = cached = 0.0
    rows = 0
    warm: set[tuple[str, str]] = set()  # (model, system) already written to the cache tonight
    for snapshot in snapshots:
        rows += 1
        base = row_lookup(snapshot, aliases)
        earlier: dict[str, str] = {}
        for step in workflow_steps(wf):
            model, max_tokens = step.model or wf.model, step.max_tokens or wf.max_tokens
            price = config.prices[model]
            template = step.system if step.system is not None else wf.system

            lookup = _lookup(base, earlier)
            system, prompt = render(template, lookup), render(step.prompt, lookup)
            earlier[step.name] = "x" * (4 * max_tokens)  # the next step sees a full-length answer
            s, p = estimate_tokens(system), estimate_tokens(prompt)
            live += cost_usd(price, Usage(input_tokens=s + p, output_tokens=max_tokens))
            batch += cost_usd(price, Usage(input_tokens=s + p, output_tokens=max_tokens), batch=True)
            if (
                not system
                or placeholders(template)
                or s < (cache_minimum(model) if min_cache_tokens is None else min_cache_tokens)
            ):
                cached += cost_usd(price, Usage(input_tokens=s + p, output_tokens=max_tokens), batch=True)
                continue
            first = (model, system) not in warm
            warm.add((model, system))
            usage = Usage(
                input_tokens=p + (s if first and kind != "anthropic" else 0),
                output_tokens=max_tokens,
                cache_write_tokens=s if first and kind == "anthropic" else 0,
                cache_read_tokens=0 if first else s,
            )
            cached += cost_usd(price, usage, batch=True)
    return Estimate(workflow, rows, live, batch, cached)


def _lookup(base: Callable[[str], str | None], earlier: Mapping[str, str]) -> Callable[[str], str | None]:
    def lookup(name: str) -> str | None:
        return earlier.get(name.removeprefix("steps.")) if name.startswith("steps.") else base(name)

    return lookup


def tonight(config: Config) -> list[Estimate]:
    """Estimates for the rows locked for tonight, per workflow (nothing if no state file exists yet)."""
    from sheetbot.state import State
    from sheetbot.status import Status

    if not config.state_exists:
        return []
    with State(config.state_target) as state:
        tasks = state.tasks_with_status(Status.LOCKED)
    by_workflow: dict[str, list[Mapping[str, str]]] = {}
    for task in tasks:
        if task.workflow and task.workflow in config.workflows:
            by_workflow.setdefault(task.workflow, []).append(task.snapshot)
    return [estimate(config, name, rows) for name, rows in sorted(by_workflow.items())]


def preview_notes(config: Config, tasks: Iterable[Task], aliases: Mapping[str, str]) -> list[str]:
    """One line per preview workflow for the run report: what its rows would cost in each mode."""
    by_workflow: dict[str, list[Mapping[str, str]]] = {}
    for task in tasks:
        wf = config.workflows.get(task.workflow or "")
        if wf is not None and wf.mode == "preview":
            by_workflow.setdefault(task.workflow or "", []).append(task.snapshot)
    return [f"preview {estimate(config, n, rows, aliases=aliases).line()}" for n, rows in sorted(by_workflow.items())]
