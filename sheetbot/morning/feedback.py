"""The feedback loop: what reviewers keep asking for, so admins can make it a lasting guideline.

`sheetbot feedback WORKFLOW` counts the rework notes of recent nights (normalised, so "Shorter."
and "shorter" are one note; a note with several sentences counts each) and sums up the edits:
how much reviewers lengthen or shorten outputs, and which phrases they most often remove or add.
What recurs goes into the workflow's `guidelines:` in the YAML, and from then on into its system
prompt (night/prompts.py), instead of being typed into the notes column night after night.
"""

from __future__ import annotations

import difflib
import re
from collections import Counter
from dataclasses import dataclass, field

from sheetbot.state import State

_SPLIT = re.compile(r"[.;!?\n]+|\s+-\s+|,?\s+\band also\b\s+|,\s+and\s+")
_WORD = re.compile(r"\S+")


def normalise(note: str) -> str:
    """Lowercase, no surrounding punctuation or bullets, single spaces."""
    text = re.sub(r"\s+", " ", note.strip().lower())
    return text.strip(" -*•.,;:!?\"'")


def note_parts(note: str) -> list[str]:
    """A note's separate requests: sentences, lines, and clauses joined by ", and"."""
    return [p for p in (normalise(x) for x in _SPLIT.split(note)) if p]


@dataclass
class Feedback:
    workflow: str
    nights: list[str] = field(default_factory=list)
    decided: int = 0
    reworked: int = 0
    edited: int = 0
    notes: list[tuple[str, int]] = field(default_factory=list)
    #: Mean characters an edit adds (negative: removes), and the mean relative change.
    mean_length_change: float | None = None
    mean_length_change_pct: float | None = None
    removed: list[tuple[str, int]] = field(default_factory=list)
    added: list[tuple[str, int]] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def _changes(before: str, after: str) -> tuple[list[str], list[str]]:
    """Word runs removed from ``before`` and added in ``after`` (lowercased, at most 6 words each)."""
    old, new = _WORD.findall(before.lower()), _WORD.findall(after.lower())
    removed, added = [], []
    for op, a1, a2, b1, b2 in difflib.SequenceMatcher(a=old, b=new, autojunk=False).get_opcodes():
        if op in ("delete", "replace") and 0 < a2 - a1 <= 6:
            removed.append(" ".join(old[a1:a2]).strip(".,;:!?"))
        if op in ("insert", "replace") and 0 < b2 - b1 <= 6:
            added.append(" ".join(new[b1:b2]).strip(".,;:!?"))
    return [r for r in removed if r], [a for a in added if a]


def feedback(state: State, workflow: str, *, nights: int = 14, top: int = 10) -> Feedback:
    recent = state.reviewed_nights(workflow, nights)
    report = Feedback(workflow=workflow, nights=recent)
    if not recent:
        return report
    reviews = state.reviews_with_output(workflow, recent)
    notes: Counter[str] = Counter()
    removed: Counter[str] = Counter()
    added: Counter[str] = Counter()
    deltas: list[int] = []
    ratios: list[float] = []
    for r in reviews:
        report.decided += 1
        if r.decision == "rework":
            report.reworked += 1
        if r.notes and r.decision in ("rework", "edit"):
            notes.update(set(note_parts(r.notes)))
        report.edited += r.decision == "edit"
        if r.decision == "edit" and r.edited_output is not None and r.output is not None:
            before, after = r.output, r.edited_output
            deltas.append(len(after) - len(before))
            if before:
                ratios.append((len(after) - len(before)) / len(before))
            gone, new = _changes(before, after)
            removed.update(set(gone))
            added.update(set(new))
    report.notes = notes.most_common(top)
    report.removed = removed.most_common(top)
    report.added = added.most_common(top)
    if deltas:
        report.mean_length_change = round(sum(deltas) / len(deltas), 1)
    if ratios:
        report.mean_length_change_pct = round(sum(ratios) / len(ratios), 4)
    return report


def describe(report: Feedback) -> str:
    """Plain text for the terminal, ending with how to turn a note into a guideline."""
    if not report.nights:
        return f"{report.workflow}: no review decisions recorded yet"
    span = report.nights[-1] if len(report.nights) == 1 else f"{report.nights[-1]} … {report.nights[0]}"
    lines = [
        f"{report.workflow}: {report.decided} decision(s) over {len(report.nights)} night(s) ({span}); "
        f"{report.reworked} sent to rework, {report.edited} edited",
    ]
    if report.notes:
        lines += ["", "Most frequent notes:"]
        lines += [f"  {n:>3} × {text}" for text, n in report.notes]
    if report.mean_length_change is not None:
        pct = report.mean_length_change_pct
        relative = f" ({pct:+.0%})" if pct is not None else ""
        lines += ["", f"Edits change the length by {report.mean_length_change:+.0f} characters on average{relative}"]
    if report.removed:
        lines.append("Most often removed: " + "; ".join(f"“{t}” ({n})" for t, n in report.removed[:5]))
    if report.added:
        lines.append("Most often added: " + "; ".join(f"“{t}” ({n})" for t, n in report.added[:5]))
    if report.notes:
        lines += [
            "",
            f"To make a note lasting, add it under `workflows: {report.workflow}: guidelines:` in the YAML;",
            "it is added to the system prompt from the next night on.",
        ]
    return "\n".join(lines)
