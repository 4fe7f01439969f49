"""A whole night's bookkeeping on a big local workbook: seconds and memory per phase. See bench/README.md.

Each run, in a fresh folder: a `.xlsx` queue of N rows over the ten ready workflows (preview, caps high enough
that every row locks); lock → run → harvest, each in a fresh process as the CLI runs it, timed through
`open_context` with its own peak memory (ru_maxrss of that process). Between run and
harvest a "reviewer" decides every row with openpyxl (70% approve, 20% edit, 10% rework), untimed.
A measurement, not a test: it always exits 0.   python bench/night.py [--rows 10000] [--repeat 3] [--tracemalloc]
"""

from __future__ import annotations

import argparse
import multiprocessing
import random
import resource
import statistics
import tempfile
import time
import tracemalloc
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import yaml
from openpyxl import load_workbook

from sheetbot.cli.demo import demo_config, write_sample_workbook
from sheetbot.clock import FakeClock
from sheetbot.night.harvest import harvest
from sheetbot.night.lock import lock
from sheetbot.night.run import run
from sheetbot.service.wiring import open_context

AIM_S, AIM_MB = 30.0, 300.0
NAMED = ("brand", "keywords", "channel", "audience", "competitor", "url", "product", "context")  # {{…}} besides input
SAMPLE = "merino 200 g/m² waterproof shell 28 L daypack torso 40-51 cm reorder weeks of cover stock 140 avg 35 per "
SAMPLE += "week the zip broke after two hikes fits small returns within 30 days 700 fill-power down = +49 @team -5%"
Figures = tuple[float, float, float]  # seconds, peak RSS MB, tracemalloc peak MB (nan when not traced)


def _text(rng: random.Random, low: int, high: int) -> str:
    """Realistic text of low..high characters (some starting with `=`, `+`, `-` or `@`, as inputs do)."""
    vocabulary, size = SAMPLE.split(), rng.randint(low, high)
    words = rng.choices(vocabulary, k=size // 4)  # words average about 4.5 characters with their space
    return " ".join(words)[:size].strip()


def build(folder: Path, n_rows: int, seed: int) -> Path:
    """The YAML (every recipe in preview, caps at a million) and a workbook of typed-in rows, after `init`."""
    config = demo_config()
    config["limits"] = {"nightly_rows": 1_000_000, "nightly_usd": 1_000_000.0}
    config["workflows"] = {name: {**wf, "nightly_rows": 1_000_000} for name, wf in config["workflows"].items()}
    path = folder / "sheetbot.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True), encoding="utf-8")
    rng, kinds = random.Random(seed), sorted(config["workflows"])
    rows = [
        {"type": kinds[i % len(kinds)], "priority": rng.choice(("P0", "P1", "P2", "P2", "P3")),
         "input": _text(rng, 200, 600), **{name: _text(rng, 5, 40) for name in NAMED}}
        for i in range(n_rows)
    ]  # fmt: skip
    with open_context(path, env={}) as ctx:
        board = ctx.config.board
        write_sample_workbook(ctx.config.resolve_path(board.path), board.sheet, rows, dict(ctx.col))
        ctx.board.ensure_schema(ctx.schema())
    return path


def review(workbook: Path, sheet: str, col: dict[str, str], seed: int) -> None:
    """The morning, as a person does it in Excel: a decision on every row, then save."""
    rng, book = random.Random(seed), load_workbook(workbook)
    ws = book[sheet]
    where = {cell.value: cell.column for cell in ws[1]}
    for row in range(2, ws.max_row + 1):
        decision = rng.choices(("approve", "edit", "rework"), weights=(7, 2, 1))[0]
        ws.cell(row=row, column=where[col["review"]], value=decision)
        if decision == "edit":
            edited = ws.cell(row=row, column=where[col["edited_output"]], value=_text(rng, 200, 600))
            edited.data_type = "s"  # typed text, even when it starts with "=" (openpyxl would store a formula)
        elif decision == "rework":
            ws.cell(row=row, column=where[col["notes"]], value="Shorter, and keep the sizes exactly as given.")
    book.save(workbook)


def _phase(name: str, config_path: Path, moment: datetime, trace: bool) -> tuple[Figures, dict[str, int]]:
    """One phase in a fresh interpreter, as a `sheetbot` command runs: its time and its own peak memory."""
    if trace:
        tracemalloc.start()
    clock = FakeClock(moment)
    with open_context(config_path, clock=clock, env={}) as ctx:
        start = time.perf_counter()
        report = lock(ctx) if name == "lock" else run(ctx) if name == "run" else harvest(ctx)
        seconds = time.perf_counter() - start
    heap = tracemalloc.get_traced_memory()[1] / 2**20 if trace else float("nan")
    counts = dict(getattr(report, {"lock": "locked", "run": "done", "harvest": "decisions"}[name]))
    return (seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, heap), counts  # KiB on Linux


def measure(name: str, config_path: Path, moment: datetime, trace: bool) -> tuple[Figures, dict[str, int]]:
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(_phase, name, config_path, moment, trace).result()


def one_night(n_rows: int, seed: int, trace: bool) -> dict[str, Figures]:
    with tempfile.TemporaryDirectory(prefix="sheetbot-bench-") as tmp:
        config_path = build(Path(tmp), n_rows, seed)
        # Fixed moments, so each run is the same night whatever the hour: the cutoff, in the window, the morning.
        cutoff = datetime(2026, 11, 22, 17, 0, tzinfo=ZoneInfo("Europe/Berlin"))
        out: dict[str, Figures] = {}
        out["lock"], locked = measure("lock", config_path, cutoff, trace)
        out["run"], ran = measure("run", config_path, cutoff + timedelta(hours=8), trace)
        with open_context(config_path, env={}) as ctx:
            workbook, sheet, col = ctx.config.resolve_path(ctx.config.board.path), ctx.config.board.sheet, dict(ctx.col)
        review(workbook, sheet, col, seed)
        out["harvest"], decided = measure("harvest", config_path, cutoff + timedelta(hours=16), trace)
        counts = (sum(locked.values()), sum(ran.values()), sum(decided.values()))
        check = "ok" if counts == (n_rows,) * 3 else f"MISMATCH, expected {n_rows} each"
        by_name = {str(k): v for k, v in decided.items()}
        print(f"  locked {counts[0]}, done {counts[1]}, decided {counts[2]} {by_name}: {check}")
        out["total"] = (sum(out[p][0] for p in ("lock", "run", "harvest")), max(f[1] for f in out.values()), 0.0)
        return out


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--tracemalloc", action="store_true", help="one more run, traced: Python heap peaks (slow)")
    args = parser.parse_args()
    runs = []
    for i in range(args.repeat):
        print(f"run {i + 1}/{args.repeat}: {args.rows:,} rows", flush=True)
        runs.append(one_night(args.rows, seed=i, trace=False))
    traced = one_night(args.rows, seed=0, trace=True) if args.tracemalloc else None
    note = "; py heap: tracemalloc peak, one more run, traced" if traced else ""
    print(f"\n{args.rows:,} rows; seconds: median of {args.repeat} runs; peak RSS: ru_maxrss of the phase's own "
          f"process, worst run{note}")  # fmt: skip
    line = "{:<8} {:>8} {:>8} {:>14} {:>13}"
    print(line.format("phase", "seconds", "rows/s", "peak RSS (MB)", "py heap (MB)"))
    for phase in ("lock", "run", "harvest", "total"):
        seconds = statistics.median(r[phase][0] for r in runs)
        heap = f"{traced[phase][2]:.0f}" if traced and phase != "total" else "-"
        rss = max(r[phase][1] for r in runs)
        print(line.format(phase, f"{seconds:.2f}", f"{args.rows / seconds:,.0f}", f"{rss:.0f}", heap))
    verdict = "met" if seconds < AIM_S and rss < AIM_MB else "NOT met"  # the total row's figures
    print(f"\naim: whole night's bookkeeping under {AIM_S:.0f} s and under {AIM_MB:.0f} MB: {verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
