"""API requests per phase (init, lock, run, its final write-back, harvest) at 100, 1,000 and 10,000 rows.

For every board in tests/boards_under_test.py that has an API (Google Sheets, faked at HTTP by
tests/fake_google.py; no network): a fresh sheet of N typed-in rows without sheetbot's columns, then
`init` → lock → run → (a reviewer approves every row, uncounted) → harvest, through the real lifecycle with a
preview workflow (no model calls). "run" is the whole window: the write marking rows running, the re-read
that flags inputs changed after the lock, and the final write-back. Aim for Google Sheets: the same few
requests per phase at any size (≤ 3 per board call), far under 60 requests a minute per service account.
A measurement, not a test: it always exits 0.      python bench/board_calls.py [--rows 100 1000 10000]

Then the strict-server scenario (item 18): a whole Airtable night of --strict-rows rows against a loopback
HTTP server that counts *arrivals* in any 1-second window (both ends included) and answers 429 to a sixth,
with every request's arrival delayed by a random 0–--jitter-ms (transit-time variance) and its answer by a
random 20–100 ms, on the real clock: requests, 429s, seconds and the effective rate, once with the pacer's
margin at 0 (5 a second by send time, as before item 18) and once with sheetbot's PACING_MARGIN_S.
    python bench/board_calls.py --rows 100 --strict-rows 1000          # ~3 min
    python bench/board_calls.py --rows --strict-rows 0                  # neither (fake-clock counts only)
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import tempfile
import threading
import time
from collections import Counter, deque
from contextlib import ExitStack
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from boards_under_test import BOARDS, PHASES, PREVIEW, Night, airtable_board, measure_phases
from fake_airtable import TOKEN, FakeAirtable
from harness import at

from sheetbot.boards.airtable import AirtableBoard
from sheetbot.boards.airtable_http import PACING_MARGIN_S, RATE_LIMIT_WAIT_S, Pacer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, nargs="*", default=[100, 1_000, 10_000])
    parser.add_argument("--strict-rows", type=int, default=1_000, help="rows of the strict-server night (0: skip)")
    parser.add_argument("--jitter-ms", type=float, default=200.0, help="spread of arrival delays at the server")
    parser.add_argument("--seed", type=int, default=7)
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
    if args.rows:
        print("\n".join(["", *airtable_section(args.rows)]))
    if args.strict_rows:
        print()
        strict_section(args.strict_rows, args.jitter_ms / 1000, args.seed)
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


# -- Airtable against a strict server on the real clock (item 18) ---------------------------------------------------
@dataclass
class StrictFigures:
    requests: int
    rate_limited: int
    busiest_second: int  # most arrivals in any closed 1-second window
    seconds: float
    penalty_s: float  # what the 429s would have cost on the real service (30 s each; 1 s slept here)


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A keep-alive connection the client dropped at the end is normal; anything else is printed."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class StrictAirtable:
    """FakeAirtable's API behind a loopback HTTP server that counts arrivals, as a strict rate limiter would.

    Each request first "travels" a random 0–``jitter_s`` (slept before it counts as arrived), then is counted:
    a sixth arrival within one second of five others (both ends included) gets 429 at once. Accepted ones are
    answered by FakeAirtable (its own limiter off) after a random 20–100 ms. The board is sequential, so the
    spread of arrival delays is exactly what turns send-time pacing into arrival bursts.
    """

    def __init__(self, *, jitter_s: float, seed: int) -> None:
        self.jitter_s, self.rng, self.lock = jitter_s, random.Random(seed), threading.Lock()
        self.arrivals: list[float] = []
        self.recent: deque[float] = deque()
        self.rate_limited = 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return None

            def _any(self) -> None:
                owner.handle(self)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _any

        self.httpd = _QuietServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        clock = type("RealTime", (), {"monotonic": staticmethod(time.monotonic)})()
        self.fake = FakeAirtable(time=clock, endpoint=self.endpoint, enforce_rate_limit=False)  # type: ignore[arg-type]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("content-length") or 0)
        body = handler.rfile.read(length) if length else b""
        with self.lock:
            transit, latency = self.rng.uniform(0.0, self.jitter_s), self.rng.uniform(0.02, 0.1)
        time.sleep(transit)
        with self.lock:
            now = time.monotonic()
            self.arrivals.append(now)
            while self.recent and self.recent[0] < now - 1.0:
                self.recent.popleft()
            refused = len(self.recent) >= 5
            self.recent.append(now)
            if refused:
                self.rate_limited += 1
                status, headers, text = 429, {}, json.dumps({"errors": [{"error": "RATE_LIMIT_REACHED"}]})
            else:
                prepared = requests.Request(
                    handler.command, self.endpoint + handler.path, headers=dict(handler.headers), data=body or None
                ).prepare()
                status, headers, text = self.fake._handle(prepared)
        time.sleep(latency)
        data = text.encode()
        handler.send_response(status)
        for name, value in {"Content-Type": "application/json", **headers}.items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def busiest_second(self) -> int:
        ordered, first, busiest = sorted(self.arrivals), 0, 0
        for last, at_s in enumerate(ordered):
            while at_s - ordered[first] > 1.0:
                first += 1
            busiest = max(busiest, last - first + 1)
        return busiest


def strict_night(rows: int, *, margin_s: float, jitter_s: float, seed: int) -> StrictFigures:
    """init → lock → run → (approve all) → harvest on Airtable through the strict server, on the real clock."""
    server = StrictAirtable(jitter_s=jitter_s, seed=seed)
    penalty = [0.0]

    def sleep(seconds: float) -> None:
        if seconds >= RATE_LIMIT_WAIT_S:  # a 429's wait: counted; 1 s slept, so the window clears for the retry
            penalty[0] += seconds
            seconds = 1.0
        time.sleep(max(seconds, 0.0))

    try:
        with tempfile.TemporaryDirectory(prefix="sheetbot-bench-") as tmp:
            fake = server.fake
            for n in range(rows):
                fake.add(type="listing", input=f"item {n}", brand="Kestrel")
            board = AirtableBoard(
                base="Shop", table="Queue", env={"AIRTABLE_TOKEN": TOKEN}, endpoint_url=server.endpoint, sleep=sleep
            )
            # The margin under measurement (the transport holds the board's pacer).
            board.pacer = board._transport.pacer = Pacer(5, monotonic=time.monotonic, sleep=sleep, margin_s=margin_s)
            night = Night(Path(tmp), board, workflows=PREVIEW)
            started = time.perf_counter()
            with night.context() as ctx:
                spec = ctx.schema()
            board.ensure_schema(spec)
            night.lock()
            night.clock.set(at("2026-11-24T01:00"))
            night.run()
            with server.lock:
                for record in fake.table.records.values():
                    record["fields"]["review"] = "approve"
            night.clock.set(at("2026-11-24T09:00"))
            night.harvest()
            seconds = time.perf_counter() - started
    finally:
        server.close()
    return StrictFigures(len(server.arrivals), server.rate_limited, server.busiest_second(), seconds, penalty[0])


def strict_section(rows: int, jitter_s: float, seed: int) -> None:
    """Prints a line per pacer as it finishes (each night takes about rows × 0.1 s on the real clock)."""
    line = "{:<22} {:>6} {:>9} {:>5} {:>9} {:>8} {:>9} {:>14}"
    lines = [
        f"strict server: {rows:,} rows, a sixth arrival in any 1 s (inclusive) is a 429; "
        f"arrivals delayed 0–{jitter_s * 1000:.0f} ms, answers 20–100 ms (real clock)",
        line.format("pacer", "rows", "requests", "429s", "busiest/s", "seconds", "effective", "+429 penalty"),
    ]
    print("\n".join(lines), flush=True)
    for label, margin in (("5/s by send time (old)", 0.0), (f"5 per {1 + PACING_MARGIN_S:g} s (now)", PACING_MARGIN_S)):
        got = strict_night(rows, margin_s=margin, jitter_s=jitter_s, seed=seed)
        rate = f"{got.requests / got.seconds:.2f}/s"
        figures = (got.requests, got.rate_limited, got.busiest_second, f"{got.seconds:.0f}", rate)
        print(line.format(label, f"{rows:,}", *figures, f"{got.penalty_s:.0f} s"), flush=True)
    print("aim: 0 429s over the night (each costs 30 s on the real service: the penalty column)")


if __name__ == "__main__":
    raise SystemExit(main())
