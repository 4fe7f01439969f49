"""Live mode against a slow, rate-limited, flaky OpenAI-compatible server: rows per minute as a share of the limit.

Each scenario, in a fresh folder: bench/llm_server.py on 127.0.0.1 (latency, rpm limit, share of 5xx answers);
a `.xlsx` queue of N rows of one live workflow on an `openai` provider pointed at it (`rpm` set to the server's
limit, `concurrency` high enough for it); then `lock` and `run` through `open_context` with the real clock, the
real SDK and a dummy OPENAI_API_KEY, as the CLI does. Scenario A: no failures. Scenario B: a share of 5xx.
The server quantises its limit (rpm/60 a second), as OpenAI does. Aims: rows per minute ≥ 0.9 of the rpm limit;
in B, every row finished (status `review`) and requests per minute, retries included, ≥ 0.9 of the limit.
A measurement, not a test: it always exits 0.
    python bench/live.py [--rows 1000] [--latency 0.5] [--rpm 1200] [--fail-share 0.1] [--scenario both]
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import yaml
from openpyxl import load_workbook

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run as a script: bench/ is not a package
from llm_server import LLMServer, LLMServerProcess, ServerStats

from sheetbot.cli.demo import write_sample_workbook
from sheetbot.night.context import Progress
from sheetbot.night.lock import lock
from sheetbot.night.run import RunReport, run
from sheetbot.service.wiring import open_context

AIM_RATIO = 0.9
MODEL = "gpt-4.1-mini"
WORKFLOW = "product_blurb"
ENV = {"OPENAI_API_KEY": "sk-bench-not-a-real-key"}
#: The server stops by itself after this long; the run's hard stop (`until`) comes a minute earlier.
MAX_DURATION_S = 15 * 60
INPUT = (
    "Merino wool hiking sock, 200 g/m², cushioned sole, sizes 36–47, made in Portugal. Keeps feet dry on "
    "long days; reinforced heel and toe; flat seams. Customers say it runs half a size small."
)


@dataclass(frozen=True)
class Scenario:
    name: str
    rows: int
    latency_s: float
    rpm: int
    fail_share: float
    concurrency: int
    burst_window_s: float | None
    in_process: bool = False

    def describe(self) -> str:
        burst = f"{self.burst_window_s:g} s bursts" if self.burst_window_s else "per minute only"
        return (
            f"scenario {self.name}: {self.rows:,} rows, latency {self.latency_s:g} s, limit {self.rpm:,} rpm "
            f"({burst}), {self.fail_share:.0%} of answers 5xx, concurrency {self.concurrency}"
        )


def build(folder: Path, scenario: Scenario, base_url: str) -> Path:
    """The YAML (one live workflow, caps above N) and a workbook of typed-in rows, after `init`."""
    config: dict[str, Any] = {
        "timezone": "UTC",
        "board": {"kind": "local", "path": "queue.xlsx", "sheet": "Queue"},
        "state": "sheetbot.db",
        "limits": {"nightly_rows": scenario.rows, "nightly_usd": 1_000.0},
        "providers": {
            "openai": {
                "api_key_env": "OPENAI_API_KEY",
                "base_url": base_url,
                "rpm": scenario.rpm,
                "concurrency": scenario.concurrency,
                "timeout_s": 30.0,
            }
        },
        "prices": {MODEL: {"input": 0.40, "output": 1.60, "cache_read": 0.10}},
        "workflows": {
            WORKFLOW: {
                "provider": "openai",
                "model": MODEL,
                "mode": "live",
                "max_tokens": 300,
                "system": "You write product copy for an outdoor-gear shop.",
                "prompt": "Write a two-sentence product blurb. Keep every fact.\n{{input}}",
            }
        },
    }
    path = folder / "sheetbot.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True), encoding="utf-8")
    rows = [{"type": WORKFLOW, "priority": "P2", "input": f"#{i + 1}: {INPUT}"} for i in range(scenario.rows)]
    with open_context(path, env=ENV) as ctx:
        board = ctx.config.board
        write_sample_workbook(ctx.config.resolve_path(board.path), board.sheet, rows, dict(ctx.col))
        ctx.board.ensure_schema(ctx.schema())
    return path


def board_statuses(config_path: Path) -> Counter[str]:
    """The `status` column as the reviewers will see it in the morning."""
    book = load_workbook(config_path.parent / "queue.xlsx", read_only=True)
    lines = book["Queue"].iter_rows(values_only=True)
    where = list(next(lines)).index("status")
    statuses = Counter(str(line[where] or "") for line in lines if any(v is not None for v in line))
    book.close()
    return statuses


def progress_printer(every: int, started: float) -> Progress:
    """A line every `every` rows: a long run shows it is alive."""

    def report(done: int, total: int, what: str) -> None:
        if done % every == 0 or done == total:
            print(f"    {what}: {done:,}/{total:,} rows after {time.perf_counter() - started:.1f} s", flush=True)

    return report


def one_scenario(scenario: Scenario) -> None:
    print(scenario.describe(), flush=True)
    options: dict[str, Any] = dict(
        latency_s=scenario.latency_s,
        rpm=scenario.rpm,
        fail_share=scenario.fail_share,
        burst_window_s=scenario.burst_window_s,
        max_duration_s=MAX_DURATION_S,
    )
    server = LLMServer(**options) if scenario.in_process else LLMServerProcess(**options)
    with server, tempfile.TemporaryDirectory(prefix="sheetbot-live-") as tmp:
        config_path = build(Path(tmp), scenario, server.base_url)
        started = time.perf_counter()
        every = max(1, scenario.rows // 5)
        with open_context(config_path, env=ENV, progress=progress_printer(every, started)) as ctx:
            locked = lock(ctx)
            lock_s = time.perf_counter() - started
            run_started, run_started_mono = time.perf_counter(), time.monotonic()
            ran = run(ctx, until=ctx.now() + timedelta(seconds=MAX_DURATION_S - 60))
            run_s = time.perf_counter() - run_started
        statuses = board_statuses(config_path)
        stats = server.stats()
    print_figures(scenario, locked.locked.total(), ran, lock_s, run_s, run_started_mono, statuses, stats)


def print_figures(
    scenario: Scenario,
    locked: int,
    ran: RunReport,
    lock_s: float,
    run_s: float,
    run_started_mono: float,
    statuses: Counter[str],
    stats: ServerStats,
) -> None:
    """The figures, each per minute of the whole `run` (write-backs included) and as a share of the limit."""
    done, failed, deferred = ran.done.total(), ran.failed.total(), ran.deferred.total()
    rpm = scenario.rpm
    rows_ratio = done / run_s * 60 / rpm
    accepted_ratio = stats.accepted / run_s * 60 / rpm
    # Every try counts against the limit, so failed tries lower what rows alone can reach.
    ceiling = done / stats.accepted if stats.accepted else 1.0
    finished = statuses.get("review", 0) == scenario.rows
    calls = [r for r in stats.records if r.status != 429]
    if calls:
        first = min(r.arrived_s for r in calls)
        calls_s = max(r.answered_s for r in calls) - first
        timing = (
            f"before the first call {first - run_started_mono:.1f} s, calls {calls_s:.1f} s "
            f"({len(calls) / calls_s * 60 / rpm:.2f} of the limit), "
            f"after the last answer {run_s - (first - run_started_mono) - calls_s:.1f} s"
        )
    else:
        timing = "no call reached the server"
    arrivals = sorted(r.arrived_s for r in calls)
    gaps_ms = sorted((b - a) * 1000 for a, b in pairwise(arrivals))
    print(f"  locked            {locked:,} rows in {lock_s:.1f} s")
    print(f"  run wall          {run_s:.1f} s ({timing})")
    print(f"  rows              done {done:,}, failed {failed:,}, deferred {deferred:,}")
    print(f"  board statuses    {', '.join(f'{k} {v:,}' for k, v in statuses.most_common())}")
    print(
        f"  rows/min          {done / run_s * 60:,.0f} = {rows_ratio:.2f} of the limit "
        f"(at most {ceiling:.2f} with {stats.accepted:,} requests for {done:,} rows)"
    )
    print(
        f"  requests/min      {stats.accepted / run_s * 60:,.0f} incl. retries = {accepted_ratio:.2f} of the limit; "
        f"{stats.requests / run_s * 60:,.0f} incl. 429s = {stats.requests / run_s * 60 / rpm:.2f}"
    )
    print(
        f"  server saw        {stats.requests:,} requests: {stats.ok:,} ok, {stats.rate_limited:,} × 429, "
        f"{stats.server_errors:,} × 5xx, {stats.bad_requests:,} other; at most {stats.max_in_flight} in flight"
    )
    if gaps_ms:
        print(
            f"  pacing            gaps between accepted requests: median {_pct(gaps_ms, 0.5):.1f} ms, "
            f"p90 {_pct(gaps_ms, 0.9):.1f} ms, p99 {_pct(gaps_ms, 0.99):.1f} ms, max {gaps_ms[-1]:.0f} ms "
            f"(the limit spaces them {60_000 / rpm:.1f} ms)"
        )
    if arrivals:
        buckets = Counter(int((t - arrivals[0]) // 10) for t in arrivals)
        series = " ".join(str(buckets.get(i, 0)) for i in range(max(buckets) + 1))
        print(f"  per 10 s          accepted requests: {series} (the limit allows {rpm // 6:,})")
    print(f"  cost              ${ran.cost_usd:.4f}; drained: {ran.drained}")
    verdicts = [f"rows/min ≥ {AIM_RATIO} of the limit: {_met(rows_ratio >= AIM_RATIO)}"]
    if scenario.fail_share:
        verdicts.append(f"requests/min ≥ {AIM_RATIO} of the limit: {_met(accepted_ratio >= AIM_RATIO)}")
    verdicts.append(f"every row finished: {'yes' if finished else 'NO'}")
    print(f"  aims              {'; '.join(verdicts)}", flush=True)


def _pct(ordered: list[float], share: float) -> float:
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def _met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000)
    parser.add_argument("--latency", type=float, default=0.5, help="seconds per answer (default 0.5)")
    parser.add_argument("--rpm", type=int, default=1_200, help="the server's limit and the YAML's rpm")
    parser.add_argument("--fail-share", type=float, default=0.1, help="share of 5xx answers in scenario B")
    parser.add_argument("--scenario", choices=("A", "B", "both"), default="both")
    parser.add_argument(
        "--concurrency",
        type=int,
        default=None,
        help="providers.openai.concurrency (default 3.2 × rpm/60 × latency: 32 at the defaults, room for retries)",
    )
    parser.add_argument(
        "--burst-window",
        type=float,
        default=1.0,
        help="the server also allows only rpm/60 × this many requests in any this-many seconds; 0: per minute only",
    )
    parser.add_argument(
        "--in-process", action="store_true", help="run the server in this process (its threads then share the GIL)"
    )
    args = parser.parse_args()
    concurrency = args.concurrency or max(8, math.ceil(3.2 * args.rpm / 60 * args.latency))
    shares = {"A": 0.0, "B": args.fail_share}
    names = ("A", "B") if args.scenario == "both" else (args.scenario,)
    for name in names:
        scenario = Scenario(
            name=name,
            rows=args.rows,
            latency_s=args.latency,
            rpm=args.rpm,
            fail_share=shares[name],
            concurrency=concurrency,
            burst_window_s=args.burst_window or None,
            in_process=args.in_process,
        )
        one_scenario(scenario)
        print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
