"""Each phase on the local board against the floor openpyxl sets: one load plus one save. See bench/README.md.

Issue 15 asks that every phase on a workbook take at most 1.5× one openpyxl load plus one save of the same
workbook, measured in the same run. A phase cannot beat that floor by much: it must read the file and, when
it changes something, save it whole. What is above it is sheetbot's own overhead (extra loads, saves, per-cell
work, state writes).

Each repeat, in a fresh folder: a `.xlsx` queue of N rows (bench/night.py's setup: every workflow in preview,
no network, caps high enough that every row locks), then `init`, `lock`, `run`, a reviewer's decisions (untimed)
and `harvest`, each in a fresh Python process and `open_context`, as each CLI command runs (so each loads the
workbook itself, and none pays the garbage collector for the objects an earlier phase left behind).
Right after each phase, the baseline, in a fresh process too: `load_workbook` + `save` of the workbook as the
phase left it (the workbook it saved), the median of --baseline tries. `--in-process` runs everything in this
process instead, one phase after the other, as this bench did until stop 21 (at 10,000 rows both ways gave
`run` about 1.6x). `write-back` is the part of `run` spent in the board's `write` (the outputs going into the
workbook); `board` is each phase's time inside board calls.
A measurement, not a test: it always exits 0.   python bench/phases_local.py [--rows 2000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from night import build, review
from openpyxl import load_workbook

from sheetbot.clock import FakeClock
from sheetbot.morning.dashboard import refresh_dashboard
from sheetbot.night.context import NightContext
from sheetbot.night.harvest import harvest
from sheetbot.night.lock import lock
from sheetbot.night.run import run
from sheetbot.service.wiring import open_context

AIM = 1.5
PHASES = ("init", "lock", "run", "write-back", "harvest")
BOARD_CALLS = ("read", "write", "ensure_schema", "flush", "write_dashboard")
CUTOFF = datetime(2026, 11, 22, 17, 0, tzinfo=ZoneInfo("Europe/Berlin"))  # the same night whatever the hour


def baseline(workbook: Path, tries: int) -> tuple[float, float]:
    """The floor: one openpyxl load and one save of this workbook, the median of ``tries`` (wall, CPU)."""
    walls, cpus = [], []
    for _ in range(tries):
        start, cpu = time.perf_counter(), time.process_time()
        book = load_workbook(workbook)
        book.save(workbook.with_name("baseline-copy.xlsx"))
        walls.append(time.perf_counter() - start)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus)


@contextmanager
def timed_board(ctx: NightContext, spent: dict[str, float]) -> Iterator[None]:
    """Count the seconds spent inside the board's own calls (read, write, …), per call name."""
    board: Any = ctx.board
    for name in BOARD_CALLS:
        method = getattr(board, name, None)
        if method is not None:
            setattr(board, name, _timer(method, name, spent))
    yield


def _timer(method: Callable[..., Any], name: str, spent: dict[str, float]) -> Callable[..., Any]:
    def timed(*args: Any, **kwargs: Any) -> Any:
        if spent.get("depth"):  # a board call inside another (write_dashboard → flush): counted once
            return method(*args, **kwargs)
        spent["depth"], start, cpu = 1.0, time.perf_counter(), time.process_time()
        try:
            return method(*args, **kwargs)
        finally:
            spent[name] = spent.get(name, 0.0) + time.perf_counter() - start
            spent[f"{name} cpu"] = spent.get(f"{name} cpu", 0.0) + time.process_time() - cpu
            spent["depth"] = 0.0

    return timed


def _init(ctx: NightContext) -> object:
    """What `sheetbot init` does: the columns, the look, and the dashboard."""
    ctx.board.ensure_schema(ctx.schema(with_template_columns=True))
    return refresh_dashboard(ctx, force=True)


def phase(name: str, config: Path, moment: datetime) -> tuple[float, float, dict[str, float], object]:
    """(wall seconds, CPU seconds, seconds inside board calls, the phase's report)."""
    spent: dict[str, float] = {}
    with open_context(config, clock=FakeClock(moment), env={}) as ctx, timed_board(ctx, spent):
        work = {"init": _init, "lock": lock, "run": run, "harvest": harvest}[name]
        start, cpu = time.perf_counter(), time.process_time()
        report = work(ctx)
        return time.perf_counter() - start, time.process_time() - cpu, spent, report


Figures = tuple[float, float, float, float, float]  # seconds, baseline, CPU s, baseline CPU s, in board calls


FIELDS = {"lock": "locked", "run": "done", "harvest": "decisions"}


def phase_figures(name: str, config: Path, moment: datetime) -> tuple[float, float, dict[str, float], int]:
    """phase(), with the report reduced to the rows it counted (locked, done, decided; 0 for init)."""
    seconds, cpu, spent, report = phase(name, config, moment)
    field = FIELDS.get(name)
    return seconds, cpu, spent, sum(getattr(report, field).values()) if field else 0


def in_child(*args: str) -> Any:
    """This script's --child mode in a fresh interpreter: its one line of JSON."""
    out = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def child(args: list[str]) -> int:
    """`--child phase NAME CONFIG MOMENT` or `--child floor WORKBOOK TRIES`: one measurement, as JSON."""
    if args[0] == "phase":
        print(json.dumps(phase_figures(args[1], Path(args[2]), datetime.fromisoformat(args[3]))))
    else:
        print(json.dumps(baseline(Path(args[1]), int(args[2]))))
    return 0


def one_night(n_rows: int, seed: int, tries: int, *, fresh: bool = True) -> dict[str, Figures]:
    """phase → its Figures; ``fresh``: each phase and each baseline in a new process."""
    out: dict[str, Figures] = {}
    with tempfile.TemporaryDirectory(prefix="sheetbot-phases-") as tmp:
        config = build(Path(tmp), n_rows, seed)
        with open_context(config, env={}) as ctx:
            workbook, sheet, col = ctx.config.resolve_path(ctx.config.board.path), ctx.config.board.sheet, dict(ctx.col)
        moments = {"init": CUTOFF, "lock": CUTOFF, "run": CUTOFF + timedelta(hours=8)}
        moments["harvest"] = CUTOFF + timedelta(hours=16)
        counts = []
        for name in ("init", "lock", "run", "harvest"):
            if name == "harvest":
                review(workbook, sheet, col, seed)
            if fresh:
                seconds, cpu, spent, count = in_child("phase", name, str(config), moments[name].isoformat())
                floor, floor_cpu = in_child("floor", str(workbook), str(tries))
            else:
                seconds, cpu, spent, count = phase_figures(name, config, moments[name])
                floor, floor_cpu = baseline(workbook, tries)
            out[name] = (seconds, floor, cpu, floor_cpu, sum(v for k, v in spent.items() if k in BOARD_CALLS))
            if name == "run":  # the board's write inside run
                write = spent.get("write", 0.0)
                out["write-back"] = (write, floor, spent.get("write cpu", 0.0), floor_cpu, write)
            if name in FIELDS:
                counts.append(count)
        check = "ok" if counts == [n_rows] * 3 else f"MISMATCH, expected {n_rows} each"
        print(f"  locked {counts[0]}, done {counts[1]}, decided {counts[2]}: {check}", flush=True)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--baseline", type=int, default=3, help="load+save tries per phase (their median)")
    parser.add_argument("--in-process", action="store_true", help="every phase in this process, one after another")
    if sys.argv[1:2] == ["--child"]:
        return child(sys.argv[2:])
    args = parser.parse_args()
    runs = []
    for i in range(args.repeat):
        print(f"run {i + 1}/{args.repeat}: {args.rows:,} rows", flush=True)
        runs.append(one_night(args.rows, seed=i, tries=args.baseline, fresh=not args.in_process))
    where = "all in this process" if args.in_process else "each phase and each baseline in a fresh process"
    print(f"\n{args.rows:,} rows; medians of {args.repeat} runs; baseline: openpyxl load + save of the workbook "
          f"as the phase left it; {where}")  # fmt: skip
    line = "{:<11} {:>8} {:>9} {:>7} {:>10} {:>8} {:>8}"
    print(line.format("phase", "seconds", "baseline", "ratio", "CPU ratio", "board s", "aim"))
    for name in PHASES:
        seconds, floor, _, _, inside = (statistics.median(r[name][i] for r in runs) for i in range(5))
        ratio = statistics.median(r[name][0] / r[name][1] for r in runs)
        cpu_ratio = statistics.median(r[name][2] / r[name][3] for r in runs)
        verdict = "met" if cpu_ratio <= AIM else "NOT met"
        cells = (f"{seconds:.2f}", f"{floor:.2f}", f"{ratio:.2f}x", f"{cpu_ratio:.2f}x", f"{inside:.2f}", verdict)
        print(line.format(name, *cells))
    print(
        f"\naim: each phase within {AIM}x one openpyxl load + save of the same workbook (wall clock; on a shared "
        "machine, CPU seconds of this process are the steadier ratio)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
