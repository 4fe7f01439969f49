"""Find the rows that updates belong to, in the board as it is now.

Shared by every backend that addresses rows by position (the workbook, Google
Sheets, the memory board): they hand in the current rows, get back positions.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from sheetbot.boards.base import RowUpdate


@dataclass
class Placement:
    """``targets`` maps an index into ``updates`` to the row indexes to write it to."""

    targets: dict[int, list[int]] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)


def resolve(
    updates: Sequence[RowUpdate],
    rows: Sequence[Mapping[str, str]],
    *,
    id_column: str,
    refs: Sequence[str] | None = None,
) -> Placement:
    """Place each update on the row(s) it belongs to.

    * A plain update goes to every row whose id cell holds its task id (normally one;
      a copy made since the last read carries the id too, and gets its own id at the
      next phase).
    * A claim (a row getting its id) goes to the row at ``claim.ref`` if that row still
      has the old id and the same values; otherwise to the first row that has the old
      id and the same values and is not claimed yet. A row that cannot be found is
      reported missing rather than guessed at.
    """
    by_id: dict[str, list[int]] = defaultdict(list)
    for index, row in enumerate(rows):
        by_id[str(row.get(id_column, "")).strip()].append(index)
    ref_index = {ref: i for i, ref in enumerate(refs)} if refs is not None else {}

    placement = Placement()
    claimed: set[int] = set()
    # Claims first: a copy that a claim moves off an id must not also get that id's plain update.
    for u_index, update in enumerate(updates):
        claim = update.claim
        if claim is None:
            continue
        target = _find_claimed_row(
            claim.ref, claim.old_id, claim.fingerprint, rows, ref_index, by_id, claimed, id_column
        )
        if target is None:
            placement.missing.append(update.task_id)
        else:
            claimed.add(target)
            placement.targets[u_index] = [target]
    for u_index, update in enumerate(updates):
        if update.claim is not None:
            continue
        task_id = update.task_id.strip()
        found = [i for i in by_id.get(task_id, []) if i not in claimed] if task_id else []
        if found:
            placement.targets[u_index] = found
        else:
            placement.missing.append(update.task_id)
    return placement


def _find_claimed_row(
    ref: str,
    old_id: str,
    fingerprint: Mapping[str, str],
    rows: Sequence[Mapping[str, str]],
    ref_index: Mapping[str, int],
    by_id: Mapping[str, list[int]],
    claimed: set[int],
    id_column: str,
) -> int | None:
    def matches(index: int) -> bool:
        row = rows[index]
        if index in claimed or str(row.get(id_column, "")).strip() != old_id:
            return False
        return all(str(row.get(k, "")) == str(v) for k, v in fingerprint.items() if k != id_column)

    at_ref = ref_index.get(ref)
    if at_ref is not None and matches(at_ref):
        return at_ref
    for index in by_id.get(old_id, []):
        if matches(index):
            return index
    return None
