"""What every phase of the night is given: the configuration and the seams, never a vendor."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any

from sheetbot.boards.base import Board, SchemaSpec
from sheetbot.clock import Clock
from sheetbot.config.models import Config
from sheetbot.night.windows import NightWindow, night_at
from sheetbot.providers.base import Provider
from sheetbot.state import State
from sheetbot.status import Decision, Status

#: Reports progress on long work: (done, total, what).
Progress = Callable[[int, int, str], None]


def no_progress(done: int, total: int, what: str) -> None:
    return None


#: Hears what a provider does on its own: retries, the circuit breaker opening and closing.
EventHook = Callable[[str, dict[str, Any]], None]

#: Makes the provider named in the YAML (e.g. "anthropic"); injected so tests control the transport.
ProviderFactory = Callable[[str, EventHook], Provider]


@dataclass
class NightContext:
    config: Config
    board: Board
    state: State
    clock: Clock
    providers: ProviderFactory
    progress: Progress = no_progress
    env: Mapping[str, str] = field(default_factory=dict)
    #: How the night waits between retries; tests pass one that returns at once.
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    #: Makes a provider entry's Batch API client (sheetbot.batch.factory); None: built from config and env.
    batch_providers: Callable[[str], Any] | None = None
    #: The admin's word (`--adopt-unknown`): take over rows the state does not know (sheetbot/night/repair.py).
    adopt_unknown: bool = False

    def now(self) -> datetime:
        return self.clock.now()

    def night(self) -> NightWindow:
        return night_at(self.clock.now(), self.config.schedule, self.config.tz)

    @cached_property
    def col(self) -> Mapping[str, str]:
        """Logical column name → the header on this board (asked for per row: computed once)."""
        return self.config.columns.logical()

    def schema(self, *, with_template_columns: bool = False) -> SchemaSpec:
        return schema_for(self.config, with_template_columns=with_template_columns)


def schema_for(config: Config, *, with_template_columns: bool = False) -> SchemaSpec:
    """sheetbot's columns and the structured outputs' columns; with ``with_template_columns``, also
    every column the workflows' templates name (what `init` adds, so `lock` does not fail those rows)."""
    from sheetbot.night.prompts import template_names

    col = config.columns.logical()
    columns = list(col.values())
    for wf in config.workflows.values():
        columns += [f.name for f in wf.outputs]
        if with_template_columns:
            columns += [n for n in template_names(wf) if not n.startswith("steps.") and n not in col]
    return SchemaSpec(
        columns=list(dict.fromkeys(columns)),
        review_column=col["review"],
        review_choices=[str(d) for d in Decision],
        status_column=col["status"],
        status_choices=[str(s) for s in Status],
        wide_columns=[col["input"], col["output"], col["notes"], col["edited_output"], col["error"]],
    )
