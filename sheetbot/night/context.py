"""What every phase of the night is given: the configuration and the seams, never a vendor."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from sheetbot.boards.base import Board, SchemaSpec
from sheetbot.clock import Clock
from sheetbot.config import Config
from sheetbot.nights import NightWindow, night_at
from sheetbot.providers.base import Provider
from sheetbot.state import State
from sheetbot.status import Decision, Status

#: Reports progress on long work: (done, total, what).
Progress = Callable[[int, int, str], None]


def no_progress(done: int, total: int, what: str) -> None:
    return None


#: Makes the provider named in the YAML (e.g. "anthropic"); injected so tests control the transport.
ProviderFactory = Callable[[str], Provider]


@dataclass
class NightContext:
    config: Config
    board: Board
    state: State
    clock: Clock
    providers: ProviderFactory
    progress: Progress = no_progress
    env: Mapping[str, str] = field(default_factory=dict)

    def now(self) -> datetime:
        return self.clock.now()

    def night(self) -> NightWindow:
        return night_at(self.clock.now(), self.config.schedule, self.config.tz)

    @property
    def col(self) -> Mapping[str, str]:
        """Logical column name → the header on this board."""
        return self.config.columns.logical()

    def schema(self) -> SchemaSpec:
        col = self.col
        return SchemaSpec(
            columns=list(col.values()),
            review_column=col["review"],
            review_choices=[str(d) for d in Decision],
            status_column=col["status"],
            status_choices=[str(s) for s in Status],
            wide_columns=[col["input"], col["output"], col["notes"], col["edited_output"], col["error"]],
        )
