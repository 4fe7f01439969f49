"""How long a whole night's bookkeeping takes on a big local workbook, and how much memory it needs.

    python bench/night.py [--rows 10000] [--repeat 3] [--tracemalloc]

Each run builds a fresh folder: a `.xlsx` queue of N rows over the ten ready workflows (preview mode,
caps high enough that every row locks), then times lock → run → harvest through `open_context`, the
path the CLI takes. Between run and harvest a "reviewer" picks a decision on every row with openpyxl
(70% approve, 20% edit, 10% rework); that, like building the workbook, is not timed. A measurement,
not a test: it always exits 0.
"""

from __future__ import annotations

import argparse
import gc
import random
import resource
import statistics
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml
from openpyxl import load_workbook

from sheetbot.app import open_context
from sheetbot.clock import FakeClock
from sheetbot.demo import demo_config, write_sample_workbook
from sheetbot.night.harvest import harvest
from sheetbot.night.lock import lock
from sheetbot.night.run import run

PHASES = ("lock", "run", "harvest")
AIM_SECONDS, AIM_MB = 30.0, 300.0
#: The columns the recipes' templates name besides {{input}}; every row fills them.
NAMED = ("brand", "keywords", "channel", "audience", "competitor", "url", "product", "context")
WORDS = (
    "merino base layer 200 g/m² waterproof shell 28 L daypack torso 40-51 cm hip-belt pocket reorder "
    "weeks of cover stock 140 avg 35 per week customer says the zip broke after two hikes fits small "
    "free returns within 30 days packs into its own pocket 700 fill-power down = +49 @team -5%"
).split()


def _text(rng: random.Random, low: int, high: int) -> str:
    size, words = rng.randint(low, high), []
    while sum(len(w) + 1 for w in words) < size:
        words.append(rng.choice(WORDS))
    return " ".join(words)[:size].strip()


def build(folder: Path, n_rows: int, seed: int) -> Path:
    """The config (every workflow in preview, caps at a million) and a workbook of n_rows typed-in rows."""
    config = demo_config()
    config["limits"] = {"nightly_rows": 1_000_000, "nightly_usd": 1_000_000.0}
    for workflow in config["workflows"].values():
        workflow["nightly_rows"] = 1_000_000
    path = folder / "sheetbot.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True), encoding="utf-8")
    rng, kinds = random.Random(seed), sorted(config["workflows"])
    rows = [
        {"type": kinds[i % len(kinds)], "priority": rng.choice(("P0", "P1", "P2", "P2", "P3")),
         "input": _text(rng, 200, 600), **{name: _text(rng, 5, 40) for name in NAMED}}
        for i in range(n_rows)
    ]  # fmt: skip
    with open_context(path, env={}) as ctx:
        write_sample_workbook(ctx.config.resolve_path(ctx.config.board.path), ctx.config.board.sheet, rows,
                              dict(ctx.col))  # fmt: skip
        ctx.board.ensure_schema(ctx.schema())  # `sheetbot init`, done once before the first night
    return path


def review(workbook: Path, sheet: str, col: dict[str, str], seed: int) -> None:
    """What the reviewers do in the morning, in Excel: a decision on every row, then save."""
    rng, book = random.Random(seed), load_workbook(workbook)
    ws = book[sheet]
    header = {cell.value: cell.column for cell in ws[1]}
    for row in range(2, ws.max_row + 1):
        pick = rng.random()
        decision = "approve" if pick < 0.7 else "edit" if pick < 0.9 else "rework"
        ws.cell(row=row, column=header[col["review"]], value=decision)
        if decision == "edit":
            ws.cell(row=row, column=header[col["edited_output"]], value=_text(rng, 200, 600))
        if decision == "rework":
            ws.cell(row=row, column=header[col["notes"]], value="Shorter, and keep the sizes exactly as given.")
    book.save(workbook)


def _reset_peak_rss() -> None:
    """Linux: start the process's RSS high-water mark again from what it holds now (clear_refs 5)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass  # elsewhere the figure stays the process's peak so far


def _measure(action: Callable[[], Any], trace: bool) -> tuple[float, float, float]:
    """(seconds, peak RSS in MB, tracemalloc peak in MB or nan) of one phase."""
    gc.collect()
    _reset_peak_rss()
    if trace:
        tracemalloc.start()
    start = time.perf_counter()
    action()
    seconds = time.perf_counter() - start
    traced = tracemalloc.get_traced_memory()[1] / 2**20 if trace else float("nan")
    tracemalloc.stop()
    return seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, traced  # KiB on Linux


def one_night(n_rows: int, seed: int, trace: bool) -> dict[str, tuple[float, float, float]]:
    with tempfile.TemporaryDirectory(prefix="sheetbot-bench-") as tmp:
        config_path = build(Path(tmp), n_rows, seed)
        # Fixed moments, so every run is the same night whatever the hour: cutoff, inside the window, morning.
        cutoff = datetime(2026, 11, 22, 17, 0, tzinfo=ZoneInfo("Europe/Berlin"))
        clock = FakeClock(cutoff)
        out: dict[str, tuple[float, float, float]] = {}
        with open_context(config_path, clock=clock, env={}) as ctx:
            out["lock"] = _measure(lambda: lock(ctx), trace)
            clock.set(cutoff + timedelta(hours=8))
            out["run"] = _measure(lambda: run(ctx), trace)
            review(ctx.config.resolve_path(ctx.config.board.path), ctx.config.board.sheet, dict(ctx.col), seed)
            clock.set(cutoff + timedelta(hours=16))
            out["harvest"] = _measure(lambda: print(f"  harvest: {dict(harvest(ctx).decisions)}"), trace)
        return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--tracemalloc", action="store_true", help="also trace Python allocations (slower)")
    args = parser.parse_args()
    runs = []
    for i in range(args.repeat):
        print(f"run {i + 1}/{args.repeat}: {args.rows:,} rows …", flush=True)
        runs.append(one_night(args.rows, seed=i, trace=False))
    traced = one_night(args.rows, seed=0, trace=True) if args.tracemalloc else None

    print(f"\n{args.rows:,} rows, median of {args.repeat} runs; peak RSS = max over runs (ru_maxrss, "
          f"high-water reset per phase){'; py-heap = tracemalloc peak, a separate traced run' if traced else ''}")  # fmt: skip
    line = "{:<8} {:>9} {:>9} {:>14} {:>12}"
    print(line.format("phase", "seconds", "rows/s", "peak RSS (MB)", "py-heap (MB)"))
    total_s, total_mb = 0.0, 0.0
    for phase in PHASES:
        seconds = statistics.median(r[phase][0] for r in runs)
        rss = max(r[phase][1] for r in runs)
        heap = f"{traced[phase][2]:.0f}" if traced else "-"
        total_s, total_mb = total_s + seconds, max(total_mb, rss)
        print(line.format(phase, f"{seconds:.2f}", f"{args.rows / seconds:,.0f}", f"{rss:.0f}", heap))
    print(line.format("total", f"{total_s:.2f}", f"{args.rows / total_s:,.0f}", f"{total_mb:.0f}", ""))
    verdict = "met" if total_s < AIM_SECONDS and total_mb < AIM_MB else "NOT met"
    print(f"\naim: whole night's bookkeeping under {AIM_SECONDS:.0f} s and under {AIM_MB:.0f} MB — {verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
