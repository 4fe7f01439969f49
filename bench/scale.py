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

With ``--board google`` each board is a Google Sheet behind tests/fake_google.py (HTTP faked with `responses`,
no network; google-auth and gspread for real), one spreadsheet per board, and the calls are the Sheets API
requests each board made in the phase (token requests are not counted). The fake's own work (parsing and
answering the requests) runs in the board's thread and counts as bookkeeping CPU; its spreadsheets are in the
process's memory, as the memory boards' rows are.

    python bench/scale.py                          # 100 boards x 1,000 rows
    python bench/scale.py --board google           # the same against the Google fake
    python bench/scale.py --boards 10 --rows 100   # a quick look
"""

from __future__ import annotations

import argparse
import re
import resource
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import responses
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from fake_google import API, TOKEN_URI, FakeGoogleSheets

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


HEADER = ["type", "priority", "input", "brand"]


class Measured(BoardServer):
    """A BoardServer that notes, per phase, its thread's CPU seconds, wall seconds and board calls."""

    board: Any
    counted: Callable[[], int]  # board calls (memory) or Sheets API requests (Google) so far
    rows: Callable[[], list[dict[str, str]]]  # the board's rows as they are now, column → value
    approve: Callable[[], None]  # the reviewer: every row approved, untimed
    cpu: dict[str, float]
    wall: dict[str, float]
    calls: dict[str, int]

    def _phase(self, action: str, day: Any) -> bool:
        cpu, wall, calls = time.thread_time(), time.perf_counter(), self.counted()
        try:
            return super()._phase(action, day)
        finally:
            self.cpu[action] += time.thread_time() - cpu
            self.wall[action] += time.perf_counter() - wall
            self.calls[action] += self.counted() - calls


class GoogleFakes:
    """One FakeGoogleSheets per board behind one `responses` mock: a request goes to the fake whose spreadsheet
    key its URL names. (A started RequestsMock patches requests globally, so the fakes cannot each start their
    own.) The fakes share one set of access tokens, as the boards share one service account."""

    def __init__(self) -> None:
        self.fakes: dict[str, FakeGoogleSheets] = {}
        self.tokens: set[str] = set()
        self.lock = threading.Lock()
        self.mock = responses.RequestsMock(assert_all_requests_are_fired=False)
        self.mock.add_callback(responses.POST, TOKEN_URI, callback=self._token)
        for method in (responses.GET, responses.POST, responses.PUT, responses.DELETE):
            self.mock.add_callback(method, re.compile(re.escape(API) + r"/.*"), callback=self._api)

    def add(self, folder: Path, key: str, rows: list[list[Any]]) -> FakeGoogleSheets:
        fake = FakeGoogleSheets(folder, {"Queue": rows}, key=key)
        fake._tokens = self.tokens
        self.fakes[key] = fake
        return fake

    def _token(self, request: Any) -> Any:
        with self.lock:
            return next(iter(self.fakes.values()))._token(request)

    def _api(self, request: Any) -> Any:
        key = urlsplit(request.url).path.removeprefix("/v4/spreadsheets/").split("/")[0].split(":")[0]
        fake = self.fakes[key]
        answer = fake._api(request)
        # The fake and `responses` keep every request and answer (bodies included); the counts are all this bench
        # reads, and the kept traffic would otherwise be counted as the serve process's memory.
        fake.requests.clear()
        self.mock.calls.reset()
        for match in self.mock.registered():
            match.calls.reset()
        return answer


def make_board(
    folder: Path, n: int, rows: int, slots: threading.Semaphore | None = None, google: GoogleFakes | None = None
) -> Measured:
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
    typed = [{"type": "listing", "input": f"board {n} item {i}", "brand": "Kestrel"} for i in range(rows)]
    fake: FakeGoogleSheets | None = None
    board: Any
    if google is None:
        board = MemoryBoard(HEADER, typed)
    else:
        fake = google.add(here, f"1FakeSheetbotScaleKey{n:04d}_0123456789abcdefgh", [HEADER] + [
            [r.get(c, "") for c in HEADER] for r in typed
        ])  # fmt: skip
        board = fake.board("Queue")
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
    if fake is None:
        memory: MemoryBoard = board
        server.counted = lambda: len(memory.calls)
        server.rows = lambda: memory.rows
        server.approve = lambda: _approve_memory(memory)
    else:
        sheets = fake
        server.counted = lambda: sum(sheets.api_calls().values())
        server.rows = lambda: sheets.person("Queue").rows()
        server.approve = lambda: _approve_google(sheets)
    server.cpu, server.wall, server.calls = defaultdict(float), defaultdict(float), defaultdict(int)
    return server


def _approve_memory(board: MemoryBoard) -> None:
    """The reviewer on a memory board: `approve` in every row's review cell."""
    for row in board.rows:
        row["review"] = "approve"


def _approve_google(fake: FakeGoogleSheets) -> None:
    """The reviewer on the Google sheet: `approve` in every data row's review cell."""
    grid = fake.grid("Queue")
    header = [str(v) for v in grid.cells[0]]
    column = header.index("review")
    for row in range(1, len(grid.cells)):
        grid.put(row, column, "approve")


def _size(rows: list[dict[str, str]]) -> int:
    """Bytes the boards' own rows hold (what a Google Sheet keeps on Google's side, not in sheetbot)."""
    return sys.getsizeof(rows) + sum(sys.getsizeof(r) + sum(sys.getsizeof(v) for v in r.values()) for r in rows)


def measure(boards: int, rows: int, slots: int, kind: str = "memory") -> dict[str, Any]:
    """``slots``: boards keeping books at once, as serve_many sets them (0: unbounded). ``kind``: memory or
    google (each board a spreadsheet behind the Google fake)."""
    shared = threading.BoundedSemaphore(slots) if slots else None
    google = GoogleFakes() if kind == "google" else None
    with tempfile.TemporaryDirectory(prefix="sheetbot-scale-") as folder, google.mock if google else nullcontext():
        servers = [make_board(Path(folder), n, rows, shared, google) for n in range(boards)]
        started = time.perf_counter()
        for thread in work_all(servers, until=REVIEW):
            thread.join()
        for server in servers:  # the reviewer, untimed
            server.approve()
        for thread in work_all(servers, until=END):
            thread.join()
        wall = time.perf_counter() - started
        data_mb = sum(_size(s.rows()) for s in servers) / 2**20
        decided = sum(sum(1 for r in s.rows() if r.get("status") == "approved") for s in servers)
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
    parser.add_argument(
        "--board", choices=("memory", "google"), default="memory", help="memory boards, or the Google Sheets fake"
    )
    args = parser.parse_args(argv)
    m = measure(args.boards, args.rows, args.slots, args.board)
    what = "Sheets API requests" if args.board == "google" else "board calls"
    print(f"boards: {args.board}; bookkeeping slots: {args.slots or 'unbounded'}; calls: {what} per board")
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
        f"peak memory {m['peak_mb']:.0f} MB (aim < {AIM_MB:.0f} MB), of which the boards' own rows "
        f"{m['data_mb']:.0f} MB; {m['approved']:,} rows approved by the harvest"
        + ("" if args.board == "memory" else " (board data: the fake spreadsheets' rows, held in this process)")
    )
    if m["missing"]:
        print(f"NOT DONE: {', '.join(m['missing'])}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
