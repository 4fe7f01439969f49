"""API requests per phase (init, lock, run, its final write-back, harvest) at 100, 1,000 and 10,000 rows.

For every board in tests/boards_under_test.py that has an API (Google Sheets, faked at HTTP by
tests/fake_google.py; no network): a fresh sheet of N typed-in rows without sheetbot's columns, then
`init` → lock → run → (a reviewer approves every row, uncounted) → harvest, through the real lifecycle with a
preview workflow (no model calls). "run" is the whole window: the write marking rows running, the re-read
that flags inputs changed after the lock, and the final write-back. Aim for Google Sheets: the same few
requests per phase at any size (≤ 3 per board call), far under 60 requests a minute per service account.
A measurement, not a test: it always exits 0.      python bench/board_calls.py [--rows 100 1000 10000]
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from boards_under_test import BOARDS, PHASES, PREVIEW, Night, airtable_board, measure_phases
from harness import at


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, nargs="+", default=[100, 1_000, 10_000])
    args = parser.parse_args(argv)
    print(f"{'board':<14} {'rows':>7} " + " ".join(f"{p:>14}" for p in PHASES) + f" {'seconds':>8}")
    for name, factory in BOARDS.items():
        for rows in args.rows:
            started = time.perf_counter()
            with tempfile.TemporaryDirectory(prefix="sheetbot-bench-") as folder:
                try:
                    counts = measure_phases(factory, Path(folder), rows)
                except LookupError:  # a board without an API (the workbook, memory)
                    break
            cells = " ".join(f"{counts.get(p, 0):>14}" for p in PHASES)
            print(f"{name:<14} {rows:>7,} {cells} {time.perf_counter() - started:>8.1f}", flush=True)
    print("\n".join(["", *airtable_section(args.rows)]))
    return 0


# -- Airtable: its requests by kind, and its PATCHes against the aim ⌈records written / 10⌉ ----------------------
def airtable_section(sizes: list[int]) -> list[str]:
    """Airtable's requests per phase by kind: meta (bases and tables), lists (pages of 100 records), fields
    added, PATCHes (10 records each) against the aim Σ⌈records a write changes / 10⌉, and the seconds that
    pacing at 5 requests a second makes the phase wait (on the fake clock: nothing sleeps for real)."""
    line = "{:<8} {:>7} {:<8} {:>6} {:>5} {:>6} {:>7} {:>6} {:>8} {:>10} {:>8}"
    head = ("board", "rows", "phase", "calls", "meta", "lists", "fields+", "PATCH", "records", "aim", "paced s")
    lines = [line.format(*head)]
    for size in sizes:
        for phase, got in _airtable_night(size).items():
            kinds, aim = got["kinds"], got["aim"]
            met = f"{aim} " + ("ok" if kinds.get("update", 0) == aim else "MISSED")
            meta = kinds.get("bases", 0) + kinds.get("tables", 0)
            fields = kinds.get("create_field", 0) + kinds.get("create_table", 0)
            counts = (sum(kinds.values()), meta, kinds.get("list", 0), fields, kinds.get("update", 0))
            lines.append(
                line.format("airtable", f"{size:,}", phase, *counts, got["records"], met, f"{got['paced_s']:.0f}")
            )
    return lines


def _airtable_night(rows: int) -> dict[str, dict]:
    with tempfile.TemporaryDirectory(prefix="sheetbot-bench-") as tmp, ExitStack() as stack:
        under = airtable_board(Path(tmp), stack, ["type", "priority", "input", "brand"])
        fake = under.person.fake  # type: ignore[attr-defined]
        for n in range(rows):
            fake.add(type="listing", input=f"item {n}", brand="Kestrel")
        night, out = Night(Path(tmp), under.board, workflows=PREVIEW), {}

        def phase(name: str, action: object) -> None:
            before, started = len(fake.calls), fake.time.now
            action()  # type: ignore[operator]
            calls = fake.calls[before:]
            writes: list[int] = []  # records per board write: a write's PATCHes come one after another
            for previous, call in zip([None, *calls], calls, strict=False):
                if call.kind == "update":
                    writes += [] if previous is not None and previous.kind == "update" else [0]
                    writes[-1] += call.records
            assert all(c.status == 200 for c in calls), "Airtable refused a request: pacing or batching is off"
            out[name] = {
                "kinds": Counter(c.kind for c in calls),
                "records": sum(writes),
                "aim": sum(math.ceil(w / 10) for w in writes),
                "paced_s": fake.time.now - started,
            }

        with night.context() as ctx:
            spec = ctx.schema()
        phase("init", lambda: under.board.ensure_schema(spec))
        phase("lock", night.lock)
        night.clock.set(at("2026-11-24T01:00"))
        phase("run", night.run)
        for record in fake.table.records.values():  # a reviewer approves every record (uncounted)
            record["fields"]["review"] = "approve"
        night.clock.set(at("2026-11-24T09:00"))
        phase("harvest", night.harvest)
    return out


if __name__ == "__main__":
    raise SystemExit(main())
