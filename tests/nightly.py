"""Whole nights on the Shop harness, in one call each: for the metrics, alerts, audit and feedback tests."""

from __future__ import annotations

from datetime import date, timedelta

from harness import Shop, at


def night(
    shop: Shop,
    day: str,
    decisions: list[str],
    *,
    workflow: str = "listing",
    input_len: int = 40,
    new: int | None = None,
    notes: str = "",
    edited: str = "My own version",
) -> list[str]:
    """Add ``new`` rows (default: one per decision), lock at 17:00 on ``day``, run at 01:00, and at
    09:00 review the rows up for review in order with ``decisions`` ("" leaves one waiting).
    Returns the ids reviewed, in order."""
    for index in range(len(decisions) if new is None else new):
        text = f"{day} item {index} " + "x" * input_len
        shop.add(type=workflow, input=text[: max(input_len, 20)], brand="Kestrel")
    shop.clock.set(at(f"{day}T17:00"))
    shop.lock()
    morning = (date.fromisoformat(day) + timedelta(days=1)).isoformat()
    shop.clock.set(at(f"{morning}T01:00"))
    shop.run()
    shop.clock.set(at(f"{morning}T09:00"))
    waiting = [r for r in shop.rows() if r["status"] == "review" and r["night"] == day]
    reviewed = []
    for row, decision in zip(waiting, decisions, strict=False):
        if not decision:
            continue
        values: dict[str, str] = {"review": decision}
        if decision in ("rework", "edit") and notes:
            values["notes"] = notes
        elif decision == "rework":
            values["notes"] = "Shorter"  # a rework without notes is sent back to review
        if decision == "edit":
            values["edited_output"] = edited
        shop.set(row["id"], **values)
        reviewed.append(row["id"])
    shop.harvest()
    return reviewed
