"""Fault injection against a real `sheetbot` process: calls per row at the server, and outputs lost.

Scenarios (each trial in a folder of its own, with a workbook of --rows rows; see bench/README.md):

* live-kill:  `sheetbot lock`, then `sheetbot run` in LIVE mode against the loopback OpenAI-compatible server
              (bench/llm_server.py), `kill -9` at a random moment, then recovery (below).
* batch-kill: the same in BATCH mode, against the same server's Batch API (files, batches, list; a batch
              completes --batch-delay seconds after it was created, polled or not, and is billed then).
* stale:      lock, copy the workbook, run to the end, copy the old workbook back over the board (Excel open
              all night, saved at 9am), then the next phase (`run`, `harvest` or `lock`, in turn).

Calls are counted at the server, per row (a tag in each row's input): chat completions answered, and the
requests of every batch that completed. "in flight" is, per kill, the calls the server had received before
the kill whose answers were not stored in the state when the process died: the most a restart may have to
pay again. Aim: calls per row = 1.00 + in flight / rows, and 0 outputs lost (every row shows its own output
on the board at the end). A measurement, not a test: it always exits 0.

Recovery is what an admin, cron or `serve` does: `sheetbot lock` when rows of the trial are deferred, then
`sheetbot run`, again every --pause seconds until every row shows its own output or --recover-within seconds
have passed. A batch create whose answer was lost and that no listing shows defers its rows until the
create's time limit (timeout_s × tries) plus SETTLE_S has passed (sheetbot/batch/send.py); the batch trials
use timeout_s 3 s, so that is 69 s. "orphans" are the batches of a trial made at the server that the state
did not know after the recovery: a completed one has billed its rows twice (calls/row > 1.00).

    python bench/faults.py                        # 10 + 10 kill trials and 3 stale ones, 30 rows: 1–4 min
    python bench/faults.py --trials 20 --seed 3 --rows 60 --jobs 6 -v
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from openpyxl import Workbook, load_workbook

sys.path.insert(0, str(Path(__file__).resolve().parent))
from llm_server import BatchRecord, LLMServerProcess, ServerStats

from sheetbot.batch.send import SETTLE_S

TAG = r"\b[LBS]\d+R\d+\b"  # scenario letter, trial, row: "B07R031"
MODEL = "bench-model"
NEXT_PHASES = ("run", "harvest", "lock")
BATCH_TIMEOUT_S = 3.0  # providers.openai.timeout_s of the batch trials; --create-latency must stay well below


@dataclass(frozen=True)
class Send:
    """One batch create as the state recorded it (table batch_sends, sheetbot/batch/send.py)."""

    key: str
    went_out: bool  # sent_at was set: the create may have reached the provider
    status: str  # created | found | absent | refused | sending (still open)

    @property
    def unclear(self) -> bool:
        """The create went out and its answer never arrived: a lookup had to decide (found or absent)."""
        return self.went_out and self.status in ("found", "absent", "sending")

    @property
    def settled(self) -> bool:
        """Closed as absent after the create went out: sheetbot waited out the create's time limit plus
        SETTLE_S before sending its rows again."""
        return self.went_out and self.status == "absent"


@dataclass
class Trial:
    scenario: str
    number: int
    folder: Path
    tags: dict[str, str] = field(default_factory=dict)  # task id -> tag
    killed_at: float | None = None  # time.monotonic() of the kill; None: the run ended first
    stored_at_kill: set[str] = field(default_factory=set)  # tags with an output in the state after the kill
    known_at_kill: set[str] = field(default_factory=set)  # batch ids the state held right after the kill
    known_at_end: set[str] = field(default_factory=set)  # batch ids the state held after the recovery
    sends: list[Send] = field(default_factory=list)  # the state's batch sends after the recovery
    reruns: int = 0
    relocks: int = 0
    recovery_s: float = 0.0  # from the kill (or the run's end) until every row showed its output, or the bound
    recovered: bool = False
    next_phase: str = ""
    lost: int = 0
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0


# -- one trial's folder and its commands ------------------------------------------------------------------------
def setup(trial: Trial, *, rows: int, base_url: str, mode: str) -> None:
    trial.folder.mkdir(parents=True)
    config = {
        "timezone": "Europe/Berlin",
        "board": {"kind": "local", "path": "queue.xlsx", "sheet": "Queue"},
        "state": "sheetbot.db",
        "limits": {"nightly_rows": 10_000, "nightly_usd": 100.0},
        "providers": {
            "openai": {
                "api_key_env": "OPENAI_API_KEY",
                "base_url": base_url,
                "concurrency": 4,
                "max_retries": 2,
                "batch_poll_s": 0.2,
                # A batch call's time limit is timeout_s × its tries (at most 3): an unclear create is
                # settled that long plus SETTLE_S (60 s) after it went out, so 9 + 60 s here, not 420 s.
                **({"timeout_s": BATCH_TIMEOUT_S} if mode == "batch" else {}),
            }
        },
        "prices": {MODEL: {"input": 0.4, "output": 1.6}},
        "workflows": {"listing": {"provider": "openai", "model": MODEL, "mode": mode, "prompt": "Rewrite: {{input}}"}},
    }
    (trial.folder / "sheetbot.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    book = Workbook()
    ws = book.active
    assert ws is not None
    ws.title = "Queue"
    ws.append(["type", "input"])
    for n in range(rows):
        ws.append(["listing", f"item {trial.scenario[0].upper()}{trial.number:02d}R{n:03d}, a tent"])
    book.save(trial.folder / "queue.xlsx")


def command(trial: Trial, phase: str) -> list[str]:
    return [sys.executable, "-m", "sheetbot", phase, "--config", str(trial.folder / "sheetbot.yaml")]


def environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    return {**env, "OPENAI_API_KEY": "sk-bench-not-a-secret"}


def phase(trial: Trial, name: str, *, timeout_s: float = 60.0) -> int:
    try:
        done = subprocess.run(
            command(trial, name), env=environment(), capture_output=True, text=True, timeout=timeout_s, cwd=trial.folder
        )
    except subprocess.TimeoutExpired:  # subprocess.run has killed its own child
        trial.problems.append(f"{name} still running after {timeout_s:g} s: killed")
        return -1
    if done.returncode not in (0, 3):
        trial.problems.append(f"{name} exited {done.returncode}: {(done.stdout + done.stderr).strip()[-300:]}")
    return done.returncode


def board_rows(trial: Trial) -> list[dict[str, str]]:
    ws = load_workbook(trial.folder / "queue.xlsx", read_only=True)["Queue"]
    lines = ws.iter_rows(values_only=True)
    header = [str(h or "") for h in next(lines)]
    return [{h: "" if v is None else str(v) for h, v in zip(header, line, strict=False)} for line in lines]


def tag_of(text: str) -> str:
    import re

    found = re.search(TAG, text)
    return found.group(0) if found else ""


def left_to_run(trial: Trial) -> int:
    with sqlite3.connect(f"file:{trial.folder / 'sheetbot.db'}?mode=ro", uri=True, timeout=30) as db:
        return int(db.execute("SELECT COUNT(*) FROM tasks WHERE status IN ('locked', 'running')").fetchone()[0])


def stored_tags(trial: Trial) -> set[str]:
    """Tags of the rows whose output is in the state (what a restart does not pay for again)."""
    with sqlite3.connect(f"file:{trial.folder / 'sheetbot.db'}?mode=ro", uri=True, timeout=30) as db:
        ids = [r[0] for r in db.execute("SELECT DISTINCT task_id FROM attempts WHERE ok = 1 AND final = 1")]
    return {trial.tags[i] for i in ids if i in trial.tags}


def deferred(trial: Trial) -> int:
    """The trial's rows the state holds as deferred (an unclear batch send among them): `lock` takes them again."""
    with sqlite3.connect(f"file:{trial.folder / 'sheetbot.db'}?mode=ro", uri=True, timeout=30) as db:
        return int(db.execute("SELECT COUNT(*) FROM tasks WHERE status = 'deferred'").fetchone()[0])


def sends(trial: Trial) -> list[Send]:
    try:
        with sqlite3.connect(f"file:{trial.folder / 'sheetbot.db'}?mode=ro", uri=True, timeout=30) as db:
            rows = db.execute("SELECT key, sent_at, status FROM batch_sends ORDER BY recorded_at, rowid").fetchall()
    except sqlite3.Error:
        return []
    return [Send(key, sent_at is not None, status) for key, sent_at, status in rows]


def known_batches(trial: Trial) -> set[str]:
    try:
        with sqlite3.connect(f"file:{trial.folder / 'sheetbot.db'}?mode=ro", uri=True, timeout=30) as db:
            return {r[0] for r in db.execute("SELECT batch_id FROM batches")}
    except sqlite3.Error:
        return set()


def count_lost(trial: Trial) -> int:
    """Rows that do not show their own output (status review, the row's tag in `output`) on the board."""
    lost = 0
    for row in board_rows(trial):
        tag = tag_of(row.get("input", ""))
        if tag and not (row.get("status") == "review" and tag in row.get("output", "")):
            lost += 1
    return lost


# -- the scenarios -------------------------------------------------------------------------------------------------
def kill_trial(
    trial: Trial, *, rows: int, server: LLMServerProcess, mode: str, kill_s: float, recover_s: float, pause_s: float
) -> Trial:
    started = time.perf_counter()
    setup(trial, rows=rows, base_url=server.base_url, mode=mode)
    phase(trial, "lock")
    trial.tags = {r["id"]: tag_of(r["input"]) for r in board_rows(trial) if r.get("id")}
    process = subprocess.Popen(
        command(trial, "run"), env=environment(), cwd=trial.folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    # The moment is random within the run's work: from its first request to the server (imports and
    # start-up before that take seconds on a loaded machine, and a kill there proves nothing).
    prefix = f"{trial.scenario[0].upper()}{trial.number:02d}R"
    while process.poll() is None and server.first_seen(prefix) is None:
        time.sleep(0.02)
    try:
        process.wait(timeout=kill_s)
    except subprocess.TimeoutExpired:
        trial.killed_at = time.monotonic()
        process.send_signal(signal.SIGKILL)  # the process this trial started, by its own handle
        process.wait()
    trial.stored_at_kill, trial.known_at_kill = stored_tags(trial), known_batches(trial)
    recover(trial, recover_s=recover_s, pause_s=pause_s)
    trial.lost = count_lost(trial)
    trial.seconds = time.perf_counter() - started
    return trial


def recover(trial: Trial, *, recover_s: float, pause_s: float) -> None:
    """What the admin, cron or `serve` does after the kill: `sheetbot lock` when rows are deferred (a batch
    send whose outcome sheetbot cannot tell yet defers its rows until the create's time limit plus SETTLE_S
    has passed), then `sheetbot run`; again every ``pause_s`` seconds of the real clock until every row
    shows its own output, or ``recover_s`` seconds have passed."""
    started = time.monotonic()
    while True:
        if deferred(trial):
            trial.relocks += 1
            phase(trial, "lock")
        trial.reruns += 1
        phase(trial, "run", timeout_s=120.0)
        trial.recovered = count_lost(trial) == 0
        if trial.recovered or time.monotonic() - started + pause_s > recover_s:
            break
        time.sleep(pause_s)
    trial.recovery_s = time.monotonic() - started
    trial.known_at_end, trial.sends = known_batches(trial), sends(trial)


def stale_trial(trial: Trial, *, rows: int, server: LLMServerProcess) -> Trial:
    started = time.perf_counter()
    setup(trial, rows=rows, base_url=server.base_url, mode="live")
    phase(trial, "lock")
    trial.tags = {r["id"]: tag_of(r["input"]) for r in board_rows(trial) if r.get("id")}
    book, stale = trial.folder / "queue.xlsx", trial.folder / "stale-copy.xlsx"
    shutil.copy2(book, stale)
    phase(trial, "run", timeout_s=120.0)
    shutil.copyfile(stale, book)  # saved at 9am over the board: a new mtime, yesterday evening's content
    phase(trial, trial.next_phase, timeout_s=120.0)
    trial.lost = count_lost(trial)
    trial.seconds = time.perf_counter() - started
    return trial


def trial_line(trial: Trial, stats: ServerStats) -> str:
    """One trial for -v: the kill, what recovery took, and what the server billed."""
    flying = sum(in_flight(trial, stats).values())
    calls = sum(stats.calls_by_tag.get(t, 0) for t in trial.tags.values())
    killed = "not killed" if trial.killed_at is None else f"stored {len(trial.stored_at_kill):>3} at the kill"
    line = (
        f"{trial.scenario:<10} #{trial.number:<3} {killed:<20} in flight {flying:>3}  calls {calls:>4}  "
        f"lost {trial.lost:>3}"
    )
    if trial.scenario == "stale":
        return f"{line}  then {trial.next_phase}"
    line += f"  runs {trial.reruns} locks {trial.relocks} in {trial.recovery_s:>4.0f} s"
    if trial.scenario != "batch-kill":
        return line
    made = trial_batches(trial, stats)
    unclear = [s for s in trial.sends if s.unclear]
    how = ", ".join(f"{s.key} {'settled absent' if s.settled else s.status}" for s in unclear) or "none"
    return (
        f"{line}  batches {len(made)} (unknown at the kill {orphans_at_kill(trial, stats)}, orphans "
        f"{orphans(trial, stats)})  unclear sends: {how}"
    )


# -- the figures -------------------------------------------------------------------------------------------------
@dataclass
class Figures:
    trials: int = 0
    killed: int = 0
    rows: int = 0
    calls: int = 0
    in_flight: int = 0
    orphans: int = 0  # batches of the trial made at the server that the state did not know after the recovery
    settled: int = 0  # trials with a batch send closed as absent after its create went out (waited out)
    beyond: int = 0  # rows called more often than 1 + their in-flight calls: paid twice for no reason
    lost: int = 0
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)


def in_flight(trial: Trial, stats: ServerStats) -> dict[str, int]:
    """Per tag: live calls the server had received before the kill whose answers the state did not hold
    after it. Those answers died with the connection: a restart must pay for them again.

    A batch is different: its answers wait at the provider, so a restart that finds the batch (the state
    knows its id, or finds it by its key) pays nothing again. Batch rows are therefore aimed at 1.00 call;
    the batches the state did not know after the kill are counted apart (``orphans``)."""
    if trial.killed_at is None:
        return {}
    mine, kill = set(trial.tags.values()), trial.killed_at
    counted: dict[str, int] = {}
    for record in stats.records:
        lost = record.tag in mine and record.tag not in trial.stored_at_kill
        if lost and record.status == 200 and record.arrived_s < kill:
            counted[record.tag] = counted.get(record.tag, 0) + 1
    return counted


def trial_batches(trial: Trial, stats: ServerStats) -> list[BatchRecord]:
    """Every batch the server made with a row of this trial in it."""
    mine = set(trial.tags.values())
    return [b for b in stats.batches if mine & set(b.tags)]


def orphans(trial: Trial, stats: ServerStats) -> int:
    """Batches of this trial made at the server whose id the state did not hold after the recovery: nobody
    will collect them, and a completed one has billed its rows a second time (counted in calls)."""
    return sum(1 for b in trial_batches(trial, stats) if b.batch_id not in trial.known_at_end)


def orphans_at_kill(trial: Trial, stats: ServerStats) -> int:
    """Batches of this trial made before the kill that the state did not hold right after it (a restart
    must find them by their key)."""
    if trial.killed_at is None:
        return 0
    killed_at = trial.killed_at
    return sum(
        1 for b in trial_batches(trial, stats) if b.created_s < killed_at and b.batch_id not in trial.known_at_kill
    )


def figures(trials: Iterable[Trial], stats: ServerStats) -> Figures:
    out = Figures()
    for trial in trials:
        out.trials += 1
        out.killed += trial.killed_at is not None
        tags = set(trial.tags.values())
        out.rows += len(tags)
        flying = in_flight(trial, stats)
        for tag in tags:
            calls = stats.calls_by_tag.get(tag, 0)
            out.calls += calls
            out.beyond += calls > 1 + flying.get(tag, 0)
        out.in_flight += sum(flying.values())
        out.orphans += orphans(trial, stats)
        out.settled += any(s.settled for s in trial.sends)
        out.lost += trial.lost
        out.seconds += trial.seconds
        out.problems += [f"{trial.scenario} #{trial.number}: {p}" for p in trial.problems]
    return out


def table(results: dict[str, Figures]) -> list[str]:
    line = "{:<16} {:>6} {:>6} {:>5} {:>6} {:>9} {:>9} {:>7} {:>5} {:>10} {:>5}"
    head = ("scenario", "trials", "killed", "rows", "calls", "calls/row", "in-flight", "orphans", "aim", "paid twice")
    lines = [line.format(*head, "lost")]
    for name, f in results.items():
        rows = max(f.rows, 1)
        lines.append(
            line.format(
                name,
                f.trials,
                f.killed,
                f.rows,
                f.calls,
                f"{f.calls / rows:.2f}",
                f.in_flight,
                f.orphans,
                f"{(f.rows + f.in_flight) / rows:.2f}",
                f.beyond,
                f.lost,
            )
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--trials", type=int, default=10, help="kill trials per mode (live, batch)")
    parser.add_argument("--stale-trials", type=int, default=3)
    parser.add_argument("--rows", type=int, default=30)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=4, help="trials at once")
    parser.add_argument("--latency", type=float, default=0.3, help="seconds the server takes per live answer")
    parser.add_argument("--batch-delay", type=float, default=1.5, help="seconds until a batch completes")
    parser.add_argument("--create-latency", type=float, default=0.5, help="seconds `create` takes to answer")
    parser.add_argument(
        "--kill-within",
        type=float,
        default=None,
        help="seconds after rows are marked running (default: the run's span)",
    )
    parser.add_argument(
        "--recover-within",
        type=float,
        default=150.0,
        help="seconds after a kill that lock + run may be repeated until every row shows its output",
    )
    parser.add_argument("--pause", type=float, default=5.0, help="seconds between two recovery rounds")
    parser.add_argument("-v", "--verbose", action="store_true", help="one line per trial")
    args = parser.parse_args(argv)
    if args.create_latency >= BATCH_TIMEOUT_S / 2:
        parser.error(f"--create-latency must stay well below the batch trials' timeout_s ({BATCH_TIMEOUT_S:g} s)")
    rng = random.Random(args.seed)
    started = time.perf_counter()
    options = {
        "latency_s": args.latency,
        "batch_delay_s": args.batch_delay,
        "batch_answer_s": args.create_latency,
        "tag_pattern": TAG,
        "seed": args.seed,
    }
    with tempfile.TemporaryDirectory(prefix="sheetbot-faults-") as tmp, LLMServerProcess(**options) as server:
        root = Path(tmp)
        jobs = []
        spans = {  # about how long a run works after its first request: calls, storing, writing back
            "live": args.kill_within or args.rows / 4 * args.latency + 1.5,
            "batch": args.kill_within or args.batch_delay + 2.5,
        }
        for mode in ("live", "batch"):
            for n in range(args.trials):
                trial = Trial(f"{mode}-kill", n, root / f"{mode}-{n}")
                kill_s = rng.uniform(0.0, spans[mode])
                recovery = {"recover_s": args.recover_within, "pause_s": args.pause}
                jobs.append((kill_trial, trial, {"mode": mode, "kill_s": kill_s, **recovery}))
        for n in range(args.stale_trials):
            trial = Trial("stale", n, root / f"stale-{n}", next_phase=NEXT_PHASES[n % len(NEXT_PHASES)])
            jobs.append((stale_trial, trial, {}))
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            futures = [pool.submit(fn, t, rows=args.rows, server=server, **kw) for fn, t, kw in jobs]
            done = [f.result() for f in futures]
        time.sleep(args.batch_delay + 0.5)  # batches nobody polls any more still complete, and are billed
        stats = server.stats()
    groups: dict[str, list[Trial]] = {}
    for trial in done:
        name = trial.scenario if trial.scenario != "stale" else f"stale → {trial.next_phase}"
        groups.setdefault(name, []).append(trial)
    results = {name: figures(trials, stats) for name, trials in groups.items()}
    if args.verbose:
        for trial in done:
            print(trial_line(trial, stats))
        print()
    print(
        f"{args.rows} rows a trial, seed {args.seed}; kill -9 at a random moment within {spans['live']:g} s (live) "
        f"or {spans['batch']:g} s (batch) of its first request; live answers take {args.latency:g} s, "
        f"a batch's create answers after {args.create_latency:g} s and it completes {args.batch_delay:g} s after"
    )
    print(
        f"after a kill: lock (when rows are deferred) + run, every {args.pause:g} s until every row shows its output "
        f"or {args.recover_within:g} s have passed; batch timeout_s {BATCH_TIMEOUT_S:g} s × 3 tries, so an unclear "
        f"create settles {BATCH_TIMEOUT_S * 3 + SETTLE_S:g} s after it went out"
    )
    print("\n".join(table(results)))
    print(
        "aim: calls/row = 1.00 + in-flight / rows (the aim column), 0 rows paid twice (called more than once "
        "beyond their in-flight calls), 0 lost.\nin-flight: live calls received before the kill whose answers "
        "were not stored; orphans: batches of the trial made at the server that the state did not know after "
        "the recovery (billed twice once they complete)"
    )
    batch = [t for t in done if t.scenario == "batch-kill"]
    unclear = [t for t in batch if any(s.unclear for s in t.sends)]
    settled = [t for t in batch if any(s.settled for s in t.sends)]
    if batch:
        slowest = max(t.recovery_s for t in batch)
        print(
            f"batch-kill: {len(unclear)} trial(s) with a create whose answer was lost, {len(settled)} of them "
            f"waited out as absent; {sum(orphans_at_kill(t, stats) for t in batch)} batch(es) unknown right after "
            f"the kill; recovery took at most {slowest:.0f} s"
        )
    problems = [p for f in results.values() for p in f.problems]
    for problem in problems[:10]:
        print(f"problem: {problem}")
    print(f"{time.perf_counter() - started:.0f} s in all")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
