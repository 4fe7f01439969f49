"""Whether to trust the self-check (issue 13, item 4): how often people approved, as-is, the outputs that passed
every check, against those that failed one. Shown by `sheetbot report` per workflow, and per night and workflow
in `report --json` (the new key ``self_check``; every other key as before).

Only graded outputs count (a grading that failed or was skipped says nothing either way), and only the first
decision on each output, so a row reworked twice is not counted three times for one verdict.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sheetbot.config.models import Config
from sheetbot.morning.metrics import NightMetrics
from sheetbot.state import State
from sheetbot.state.self_checks import SelfCheckTally

#: `report` stays within this many columns (issue 13, item 8).
WIDTH = 100


def split(tallies: Iterable[SelfCheckTally], workflow: str) -> dict[str, dict[str, object]]:
    """``{"passed": {decided, approved, approval_rate}, "failed": {…}}`` for one workflow."""
    out: dict[str, dict[str, object]] = {}
    for verdict in ("passed", "failed"):
        rows = [t for t in tallies if t.workflow == workflow and t.passed == (verdict == "passed")]
        decided, approved = sum(t.decided for t in rows), sum(t.approved for t in rows)
        out[verdict] = {
            "decided": decided,
            "approved": approved,
            "approval_rate": round(approved / decided, 4) if decided else None,
        }
    return out


def with_self_check(state: State | None, metrics: Sequence[NightMetrics]) -> list[dict[str, object]]:
    """Each entry of `report --json` with its ``self_check`` key added."""
    by_night: dict[str, list[SelfCheckTally]] = {}
    out = []
    for m in metrics:
        if state is not None and m.night not in by_night:
            by_night[m.night] = state.self_check_tallies([m.night])
        out.append({**m.as_dict(), "self_check": split(by_night.get(m.night, []), m.workflow)})
    return out


def self_check_lines(state: State, config: Config, nights: Sequence[str]) -> list[str]:
    """One line per workflow with a self-check, e.g.
    ``self-check listing: passed all 8/10 approved as-is (80%) · failed one 2/9 (22%)``."""
    tallies = state.self_check_tallies(nights)
    lines = []
    for name, wf in config.workflows.items():
        if wf.self_check is None:
            continue
        s = split(tallies, name)
        figures = f"passed all {_share(s['passed'])} · failed one {_share(s['failed'])}"
        line = f"self-check {name}: approved as-is when it {figures}"
        # A long name takes a second line rather than cutting a figure off: these are what the team reads.
        lines += [line] if len(line) <= WIDTH else [f"self-check {name}: approved as-is when it", f"  {figures}"]
    return lines


def _share(figures: dict[str, object]) -> str:
    decided, approved, rate = figures["decided"], figures["approved"], figures["approval_rate"]
    if not decided:
        return "0/0 (no decisions yet)"
    assert isinstance(rate, float)
    return f"{approved}/{decided} ({rate:.0%})"
