"""Many boards, one `serve` process: peak memory, bookkeeping seconds and board calls per phase (issue 15 item 5).

N memory boards of M typed-in rows each, every board with its own YAML (a preview workflow: no model calls, no
network), its own SQLite state and its own FakeClock, worked by the machinery `serve --config folder/` uses
(sheetbot/service/many.py: one BoardServer and one thread per board) from 16:30 through a night: the lock at
the 17:00 cutoff, the run at 01:00, then a reviewer approves every row (untimed) and the 09:00 summary
harvests. Daytime harvests are off (harvest_every_min: 0) so that the night's phases are what is measured.

Per phase: bookkeeping seconds per 1,000 rows (the CPU time of the boards' threads in that phase, summed over
boards; the threads share the GIL, so CPU time is each board's own work and wall time is also printed), and
the board calls per board (read, write, ...: each is one API request or one batch on the Google board, see
bench/board_calls.py). Peak memory is the process's ru_maxrss. A measurement, not a test: it always exits 0.

    python bench/scale.py                          # 100 boards x 1,000 rows
    python bench/scale.py --boards 10 --rows 100   # a quick look
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml

from sheetbot.batch.mode import Batches
from sheetbot.boards.memory import MemoryBoard
from sheetbot.clock import FakeClock
from sheetbot.config.load import load_config
from sheetbot.config.models import Config
from sheetbot.morning.steps import Morning
from sheetbot.night.context import NightContext
from sheetbot.notify.base import MemoryNotifier
from sheetbot.service.many import BoardServer, bookkeeping_slots, work_all
from sheetbot.state import State

BERLIN = ZoneInfo("Europe/Berlin")
START, REVIEW, END = (
    datetime.fromisoformat(t).replace(tzinfo=BERLIN)
    for t in ("2026-11-23T16:30", "2026-11-24T08:00", "2026-11-24T09:30")
)
PHASES = ("lock", "run", "summary")
AIM_MB, AIM_S_PER_100K = 500.0, 300.0
PREVIEW = {
    "listing": {"provider": "openai", "model": "gpt-4.1-mini", "mode": "preview", "prompt": "Rewrite:\n{{input}}"}
}


class Measured(BoardServer):
    """A BoardServer that notes, per phase, its thread's CPU seconds, wall seconds and board calls."""

    board: MemoryBoard
    cpu: dict[str, float]
    wall: dict[str, float]
    calls: dict[str, int]

    def _phase(self, action: str, day: Any) -> bool:
        cpu, wall, calls = time.thread_time(), time.perf_counter(), len(self.board.calls)
        try:
            return super()._phase(action, day)
        finally:
            self.cpu[action] += time.thread_time() - cpu
            self.wall[action] += time.perf_counter() - wall
            self.calls[action] += len(self.board.calls) - calls


def make_board(folder: Path, n: int, rows: int, slots: threading.Semaphore | None = None) -> Measured:
    here = folder / f"board-{n:03d}"
    here.mkdir(parents=True)
    path = here / "sheetbot.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "timezone": "Europe/Berlin",
                "board": {"kind": "local", "path": "queue.xlsx", "sheet": "Queue"},  # the memory board stands in
                "state": "sheetbot.db",
                "schedule": {"harvest_every_min": 0},
                "limits": {"nightly_rows": 100_000, "nightly_usd": 1_000.0},
                "providers": {"openai": {"api_key_env": "OPENAI_API_KEY", "base_url": "https://llm.test/v1"}},
                "prices": {"gpt-4.1-mini": {"input": 0.4, "output": 1.6}},
                "workflows": PREVIEW,
            },
            sort_keys=False,
        ),
        encoding="utf-8",
    )
    config = load_config(path)
    board = MemoryBoard(
        ["type", "priority", "input", "brand"],
        [{"type": "listing", "input": f"board {n} item {i}", "brand": "Kestrel"} for i in range(rows)],
    )
    clock = FakeClock(START)

    @contextmanager
    def context(config: Config) -> Iterator[NightContext]:
        state = State(config.state_path)

        def no_models(name: str, on_event: Any) -> Any:
            raise AssertionError("a preview night calls no model")

        try:
            yield NightContext(
                config=config,
                board=board,
                state=state,
                clock=clock,
                providers=no_models,
                env={},
                batch_mode=Batches(),
                morning=Morning(),
            )
        finally:
            state.close()

    with context(config) as ctx:
        board.ensure_schema(ctx.schema())
    server = Measured(
        name=here.name,
        path=path,
        open_board_context=context,
        config=config,
        clock=clock,
        sleep=lambda s: clock.advance(seconds=s),
        notifier=MemoryNotifier(),
        max_sleep_s=86_400,
        slots=slots,
    )
    server.board = board
    server.cpu, server.wall, server.calls = defaultdict(float), defaultdict(float), defaultdict(int)
    return server


def _size(rows: list[dict[str, str]]) -> int:
    """Bytes the memory boards' own rows hold (what a Google Sheet keeps on Google's side, not in sheetbot)."""
    return sys.getsizeof(rows) + sum(sys.getsizeof(r) + sum(sys.getsizeof(v) for v in r.values()) for r in rows)


def measure(boards: int, rows: int, slots: int) -> dict[str, Any]:
    """``slots``: boards keeping books at once, as serve_many sets them (0: unbounded)."""
    shared = threading.BoundedSemaphore(slots) if slots else None
    with tempfile.TemporaryDirectory(prefix="sheetbot-scale-") as folder:
        servers = [make_board(Path(folder), n, rows, shared) for n in range(boards)]
        started = time.perf_counter()
        for thread in work_all(servers, until=REVIEW):
            thread.join()
        for server in servers:  # the reviewer, untimed
            for row in server.board.rows:
                row["review"] = "approve"
        for thread in work_all(servers, until=END):
            thread.join()
        wall = time.perf_counter() - started
        data_mb = sum(_size(s.board.rows) for s in servers) / 2**20
        decided = sum(sum(1 for r in s.board.rows if r.get("status") == "approved") for s in servers)
        done = {a for s in servers for a, _ in s.done}
        missing = [p for p in PHASES if p not in done]
        thousands = boards * rows / 1000
        return {
            "boards": boards,
            "rows": rows,
            "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "wall_s": wall,
            "cpu_per_1k": {p: sum(s.cpu[p] for s in servers) / thousands for p in PHASES},
            "wall_per_1k": {p: sum(s.wall[p] for s in servers) / thousands for p in PHASES},
            "calls": {p: max(s.calls[p] for s in servers) for p in PHASES},
            "approved": decided,
            "data_mb": data_mb,
            "missing": missing,
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--boards", type=int, default=100)
    parser.add_argument("--rows", type=int, default=1_000, help="rows per board")
    parser.add_argument(
        "--slots", type=int, default=bookkeeping_slots(), help="boards keeping books at once (0: unbounded)"
    )
    args = parser.parse_args(argv)
    m = measure(args.boards, args.rows, args.slots)
    print(f"bookkeeping slots: {args.slots or 'unbounded'}")
    total_rows = m["boards"] * m["rows"]
    cpu = sum(m["cpu_per_1k"].values())
    print(
        f"{'boards':>6} {'rows/board':>10} {'rows':>9} {'peak MB':>8} {'wall s':>7}  "
        + "  ".join(f"{p + ' s/1k':>12}" for p in PHASES)
        + "  "
        + "  ".join(f"{p + ' calls':>13}" for p in PHASES)
    )
    print(
        f"{m['boards']:>6} {m['rows']:>10,} {total_rows:>9,} {m['peak_mb']:>8.0f} {m['wall_s']:>7.1f}  "
        + "  ".join(f"{m['cpu_per_1k'][p]:>12.3f}" for p in PHASES)
        + "  "
        + "  ".join(f"{m['calls'][p]:>13}" for p in PHASES)
    )
    print("(summary = the 09:00 harvest and the morning message; calls: the most any board made in that phase)")
    print(
        "wall seconds per 1,000 rows, the threads overlapping: "
        + ", ".join(f"{p} {m['wall_per_1k'][p]:.3f}" for p in PHASES)
    )
    projected = cpu * 100  # for 100,000 rows
    print(
        f"bookkeeping for 100,000 rows at this rate: {projected:.0f} s of CPU (aim < {AIM_S_PER_100K:.0f} s); "
        f"peak memory {m['peak_mb']:.0f} MB (aim < {AIM_MB:.0f} MB), of which the memory boards' own rows "
        f"{m['data_mb']:.0f} MB; {m['approved']:,} rows approved by the harvest"
    )
    if m["missing"]:
        print(f"NOT DONE: {', '.join(m['missing'])}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
