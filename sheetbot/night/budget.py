"""Tonight's dollars: what is spent, what calls in flight may still spend, and the caps.

A call reserves its worst case (the prompt's estimated tokens plus every allowed
output token) before it starts and settles at its real cost when it ends, so many
calls in flight together can never push the night past a cap. Rows are started
highest priority first, so when a cap is reached it is the lower priorities that
wait for a later night.
"""

from __future__ import annotations

from collections import defaultdict

from sheetbot.config.models import Config
from sheetbot.state import State


class Budget:
    def __init__(self, config: Config, state: State, night: str) -> None:
        self.config = config
        self.night_cap = config.limits.nightly_usd
        self.spent = state.spent_usd(night=night)
        self.spent_by_workflow: dict[str, float] = defaultdict(float)
        for name in config.workflows:
            self.spent_by_workflow[name] = state.spent_usd(night=night, workflow=name)
        self.reserved = 0.0
        self.reserved_by_workflow: dict[str, float] = defaultdict(float)

    def refuse(self, workflow: str, worst_case_usd: float) -> str | None:
        """Why a call that may cost ``worst_case_usd`` must not start, or None if it may."""
        if self.spent + self.reserved + worst_case_usd > self.night_cap:
            what = f"tonight's budget of ${self.night_cap:.2f} (limits.nightly_usd)"
            return _refusal(what, self.spent, self.reserved, worst_case_usd)
        cap = self.config.workflows[workflow].nightly_usd
        if cap is not None:
            spent, reserved = self.spent_by_workflow[workflow], self.reserved_by_workflow[workflow]
            if spent + reserved + worst_case_usd > cap:
                what = f"tonight's budget for {workflow} of ${cap:.2f} (nightly_usd)"
                return _refusal(what, spent, reserved, worst_case_usd)
        return None

    def reserve(self, workflow: str, usd: float) -> None:
        self.reserved += usd
        self.reserved_by_workflow[workflow] += usd

    def release(self, workflow: str, reserved_usd: float) -> None:
        self.reserved -= reserved_usd
        self.reserved_by_workflow[workflow] -= reserved_usd

    def spend(self, workflow: str, usd: float) -> None:
        self.spent += usd
        self.spent_by_workflow[workflow] += usd

    def exhausted(self) -> bool:
        return self.spent >= self.night_cap


def _refusal(what: str, spent: float, reserved: float, worst_case: float) -> str:
    in_flight = f" and ${reserved:.4f} held for calls in flight" if reserved > 0 else ""
    return (
        f"deferred: {what} would be exceeded: ${spent:.4f} spent{in_flight}, and this row could cost up to "
        f"${worst_case:.4f}; it runs on a later night"
    )
