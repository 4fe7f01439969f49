"""Two real `sheetbot serve` processes on one board in PostgreSQL; the leader is killed mid-night (issue 15).

Used by tests/test_standby.py and bench/standby.py (which prints the timeline). Only the edges are stand-ins:
the model is LoopbackLLM (a real HTTP server on 127.0.0.1 that the YAML's base_url points at, so every request
is counted where the network starts), the board is a real .xlsx, the state a real PostgreSQL schema. The
processes run on the system clock, so the YAML's timezone is a fixed-offset zone in which it is 02:xx now:
inside the default night window (01:00-05:00), past yesterday's 17:00 cutoff, so serve locks and runs at once.

The scenario: ``ROWS`` rows, ``CONCURRENCY`` calls at once. The first ``ANSWERED`` requests are answered; every
later one is held back (a slow model), so when the leader is killed ``CONCURRENCY`` calls are in flight. Then
answers flow again and the standby must take over and finish the night.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx2
import psycopg
import yaml
from fakebatch import FakeBatch
from harness import Shop
from loopback_llm import LoopbackLLM, answer
from state_backends import without_password

ROWS = 10
CONCURRENCY = 2
ANSWERED = 4
#: What the issue allows between the kill and the standby leading.
TAKEOVER_LIMIT_S = 30.0


def local_two_am_zone(now: datetime | None = None) -> str:
    """A fixed-offset zone (Etc/GMT±N) in which the hour is 02 now."""
    hour = (now or datetime.now(UTC)).hour
    offset = (2 - hour) % 24  # hours east of UTC
    if offset > 14:
        offset -= 24
    return "Etc/GMT" if offset == 0 else f"Etc/GMT{-offset:+d}"  # POSIX: Etc/GMT-3 is UTC+3


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def healthz(port: int) -> dict[str, Any]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
            body: dict[str, Any] = json.loads(response.read())
            return body
    except (OSError, ValueError):
        return {}


#: Batch mode: seconds a batch runs at the fake, and between polls.
BATCH_RUNS_S = 6.0
BATCH_POLL_S = 0.5


class LoopbackBatch:
    """FakeBatch (OpenAI's Files and Batch APIs) behind a real HTTP server on 127.0.0.1, on the real clock:
    ``fake.creates`` counts the batches the server created (what would be billed)."""

    def __init__(self) -> None:
        self.fake = FakeBatch(time.time, duration_s=BATCH_RUNS_S)
        guard = threading.Lock()
        fake = self.fake

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._answer()

            def do_POST(self) -> None:
                self._answer()

            def _answer(self) -> None:
                content = self.rfile.read(int(self.headers.get("content-length") or 0))
                url = f"http://127.0.0.1{self.path}"
                request = httpx2.Request(self.command, url, headers=dict(self.headers), content=content)
                with guard:
                    fake.calls.append(self.command + " " + self.path)
                    response = fake._serve(request)
                answer(self, response)

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Timeline:
    """Seconds on time.monotonic(): the kill, the standby's first /healthz as leader, every row in review."""

    killed: float = 0.0
    took_over: float = 0.0
    finished: float = 0.0
    in_flight_at_kill: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        return [
            "t0 = 0.0 s   kill -9 the leader (in flight: " + ", ".join(self.in_flight_at_kill) + ")",
            f"t1 = {self.took_over - self.killed:.1f} s   the standby says leader on /healthz",
            f"t2 = {self.finished - self.killed:.1f} s   every row in review (the night finished)",
        ]


@dataclass
class Outcome:
    timeline: Timeline
    requests: Counter[str]
    statuses: dict[str, str]
    board: dict[str, str]
    standby_exit: int
    logs: dict[str, str]
    #: Batch mode: the batches the fake created (billed), by id.
    batches: list[str] = field(default_factory=list)


class StandbyNight:
    """The board, the model and the two serve processes of the scenario."""

    def __init__(self, folder: Path, url: str, *, mode: str = "live") -> None:
        self.url = url
        self.schema = f"test_standby_{uuid.uuid4().hex[:12]}"
        self.llm = LoopbackLLM()
        self.batch = LoopbackBatch() if mode == "batch" else None
        bare, password = without_password(url)
        self.shop = Shop(folder, state=bare, state_schema=self.schema, concurrency=CONCURRENCY)
        if password:
            self.shop.env["PGPASSWORD"] = password
        for n in range(ROWS):
            self.shop.add(type="listing", input=f"item-{n}", brand="Acme")
        config = yaml.safe_load(self.shop.config_path.read_text(encoding="utf-8"))
        config["timezone"] = local_two_am_zone()
        config["providers"]["openai"]["base_url"] = self.llm.url
        if self.batch is not None:  # every call goes through the Batch API; a live request would show at llm
            config["workflows"]["listing"]["mode"] = "batch"
            config["providers"]["openai"].update(base_url=self.batch.url, batch_poll_s=BATCH_POLL_S)
        self.ports: dict[str, int] = {}
        self.configs: dict[str, Path] = {}
        for name in ("a", "b"):
            self.ports[name] = free_port()
            config["serve"] = {"health_port": self.ports[name]}
            self.configs[name] = folder / f"serve-{name}.yaml"
            self.configs[name].write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.logs: dict[str, Path] = {name: folder / f"serve-{name}.log" for name in ("a", "b")}
        self._release = threading.Event()

    def start(self, name: str) -> None:
        env = {**os.environ, **self.shop.env}
        env.pop("DATABASE_URL", None)
        with self.logs[name].open("wb") as log:
            self.procs[name] = subprocess.Popen(
                [sys.executable, "-m", "sheetbot", "serve", "--config", str(self.configs[name])],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )

    def role(self, name: str) -> str:
        return str(healthz(self.ports[name]).get("role", ""))

    def wait_for(self, ready: Any, timeout_s: float, what: str) -> float:
        deadline = time.monotonic() + timeout_s
        while not ready():
            if time.monotonic() > deadline:
                raise AssertionError(f"{what} did not happen within {timeout_s:g} s; logs:\n{self.read_logs()}")
            time.sleep(0.05)
        return time.monotonic()

    def read_logs(self) -> str:
        logs = [f"--- serve {n} ---\n{p.read_text(errors='replace')}" for n, p in self.logs.items() if p.exists()]
        return "\n".join(logs)

    def statuses(self) -> dict[str, str]:
        try:
            with psycopg.connect(self.url, autocommit=True) as conn:
                conn.execute(f"SET search_path TO {self.schema}".encode())
                return {str(i): str(s) for i, s in conn.execute(b"SELECT task_id, status FROM tasks").fetchall()}
        except psycopg.Error:
            return {}

    def play(self) -> Outcome:
        """Start the leader, then the standby; kill the leader with calls in flight; wait for the standby."""
        llm, timeline = self.llm, Timeline()

        def hold(body: dict[str, Any]) -> threading.Event | None:
            return None if len(llm.arrived) < ANSWERED or self._release.is_set() else self._release

        llm.hold = hold
        self.start("a")
        self.wait_for(lambda: self.role("a") == "leader", 60, "serve a leading")
        self.start("b")
        self.wait_for(lambda: self.role("b") == "standby", 60, "serve b waiting as a standby")
        if self.batch is not None:  # the batch is created and recorded; it runs at the fake for BATCH_RUNS_S
            fake = self.batch.fake
            self.wait_for(lambda: len(fake.creates) >= 1, 60, "the batch reaching the provider")
            time.sleep(1.0)
            timeline.in_flight_at_kill = [f"batch {b}" for b in fake.creates]
        else:
            self.wait_for(lambda: len(llm.arrived) >= ANSWERED + CONCURRENCY, 60, "the calls reaching the model")
            time.sleep(0.5)  # the answered rows are stored; nothing more arrives while the answers are held
            timeline.in_flight_at_kill = list(llm.arrived[ANSWERED:])
        self.procs["a"].send_signal(signal.SIGKILL)
        timeline.killed = time.monotonic()
        self.procs["a"].wait(timeout=10)
        self._release.set()  # the model answers again (the held answers go to a dead socket)
        timeline.took_over = self.wait_for(lambda: self.role("b") == "leader", 60, "serve b taking over")
        timeline.finished = self.wait_for(
            lambda: (s := self.statuses()) and set(s.values()) == {"review"} and len(s) == ROWS, 120, "the night"
        )
        self.wait_for(lambda: "run" in healthz(self.ports["b"]), 30, "serve b recording the run")
        self.procs["b"].send_signal(signal.SIGTERM)
        code = self.procs["b"].wait(timeout=30)
        return Outcome(
            timeline=timeline,
            requests=Counter(llm.arrived),
            statuses=self.statuses(),
            board={str(r["input"]): str(r["status"]) for r in self.shop.rows()},
            standby_exit=code,
            logs={n: p.read_text(errors="replace") for n, p in self.logs.items()},
            batches=list(self.batch.fake.creates) if self.batch is not None else [],
        )

    def close(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
        self._release.set()
        self.llm.close()
        if self.batch is not None:
            self.batch.close()
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {self.schema} CASCADE".encode())
