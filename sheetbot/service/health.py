"""`/healthz` for `serve`: the last lock, run and harvest with their outcome; 503 when the last night failed.
The same server answers `/metrics` for Prometheus (sheetbot/service/prometheus.py) under the same bounds.

A platform's health check (or a person with curl) learns in one request whether last night
finished and drained. Served by the stdlib in a daemon thread, on 127.0.0.1 unless the YAML
says otherwise, so no web framework is needed and nothing is exposed by default.

The port may be reachable by anyone, so it is bounded: at most ``max_workers`` connections are served
at once (the rest wait in the listen backlog), each read waits at most ``read_timeout_s`` and a whole
request must arrive within ``request_deadline_s``, so a client that connects and sends nothing, or one
byte at a time (slowloris), cannot hold a thread for long nor grow the thread count. Answers never carry
exception text: a failure is a fixed message, its details go to the log.
"""

from __future__ import annotations

import io
import json
import logging
import socket
import threading
import time
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, TypedDict

from prometheus_client.exposition import choose_encoder

from sheetbot.safety.secrets import scrub_any

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer
    from prometheus_client.registry import CollectorRegistry

log = logging.getLogger("sheetbot.service.health")

#: Connections served at once; a health check needs one, a few spare cover a burst of probes.
MAX_WORKERS = 4
#: Longest wait for the next bytes of a request.
READ_TIMEOUT_S = 5.0
#: Longest time a whole request may take to arrive, however it trickles in.
REQUEST_DEADLINE_S = 10.0
#: What a request that failed inside sheetbot gets back: never the exception's text.
FAILED_BODY = {"status": "error", "error": "the health check failed inside sheetbot: see its log"}
METRICS_FAILED_BODY = b"# the metrics failed inside sheetbot: see its log\n"


def failed_outcome(exc: BaseException) -> str:
    """What /healthz shows for a phase that raised: the kind only; the message (which may name paths,
    hosts or data) stays in the log, where the phase already wrote it."""
    return f"failed ({type(exc).__name__}): see the sheetbot log"


class PhaseRecord(TypedDict):
    """A phase's last outing, as /healthz shows it under the phase's name."""

    at: str
    ok: bool
    outcome: str


class NightRecord(TypedDict):
    """The last night's verdict, as /healthz shows it under ``last_night``."""

    night: str
    ok: bool
    outcome: str


class Health:
    """What `serve` has done, shared between its loop and the HTTP thread."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self.phases: dict[str, PhaseRecord] = {}
        self.last_night: NightRecord | None = None
        #: "leader" (this process works the board) or "standby" (another does; sheetbot.service.leader).
        self.role: str | None = None
        #: While a standby: who leads, in words.
        self.leader: str | None = None

    def lead(self, role: str, leader: str | None = None) -> None:
        with self._guard:
            self.role, self.leader = role, leader

    def record(self, phase: str, *, at: datetime, ok: bool, outcome: str) -> None:
        with self._guard:
            self.phases[phase] = {"at": at.isoformat(), "ok": ok, "outcome": outcome}

    def night(self, night: str, *, ok: bool, outcome: str) -> None:
        """The last night's verdict: not ok when it did not finish or did not drain."""
        with self._guard:
            self.last_night = {"night": night, "ok": ok, "outcome": outcome}

    def snapshot(self) -> tuple[int, dict[str, object]]:
        with self._guard:
            failed = self.last_night is not None and not self.last_night["ok"]
            body: dict[str, object] = {"status": "failing" if failed else "ok", "last_night": self.last_night}
            if self.role is not None:
                body["role"] = self.role
            if self.leader is not None:
                body["leader"] = self.leader
            body.update(self.phases)
        return (503 if failed else 200), scrub_any(body)  # outcomes quote errors: a health check is an exit


class _DeadlineReader(io.RawIOBase):
    """The connection's bytes, each read bounded by the per-read timeout and the request's deadline.

    A socket timeout alone restarts on every byte, so a slowloris client would keep the thread forever;
    the deadline counts from the connection's start. Past it a read raises TimeoutError, which
    BaseHTTPRequestHandler answers by closing the connection.
    """

    def __init__(self, sock: socket.socket, *, read_timeout_s: float, deadline_s: float) -> None:
        super().__init__()
        self._sock = sock
        self._read_timeout_s = read_timeout_s
        self._deadline = time.monotonic() + deadline_s

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("the request did not arrive in time")
        self._sock.settimeout(min(self._read_timeout_s, remaining))
        return self._sock.recv_into(buffer)


class BoundedHTTPServer(ThreadingHTTPServer):
    """A thread per connection, but never more than ``max_workers`` at once: the accept loop waits for a
    free worker, so a flood of connections queues in the kernel's backlog instead of spawning threads."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], *, max_workers: int) -> None:
        self._workers = threading.BoundedSemaphore(max_workers)
        super().__init__(address, handler)

    def process_request(self, request: socket.socket | tuple[bytes, socket.socket], client_address: object) -> None:
        self._workers.acquire()
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._workers.release()
            raise

    def process_request_thread(
        self, request: socket.socket | tuple[bytes, socket.socket], client_address: object
    ) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._workers.release()


def start_health_server(
    health: Health,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    max_workers: int = MAX_WORKERS,
    read_timeout_s: float = READ_TIMEOUT_S,
    request_deadline_s: float = REQUEST_DEADLINE_S,
    metrics: CollectorRegistry | None = None,
) -> ThreadingHTTPServer:
    """Serve `/healthz` (and `/metrics` from ``metrics``, sheetbot/service/prometheus.py) until
    ``server.shutdown()``; port 0 picks a free port (``server.server_address``). Both paths share the bounds."""
    served = "only /healthz and /metrics are served here" if metrics is not None else "only /healthz is served here"

    class Handler(BaseHTTPRequestHandler):
        timeout = read_timeout_s  # the socket's timeout, also for writing to a client that does not read

        def setup(self) -> None:
            super().setup()
            raw = _DeadlineReader(self.connection, read_timeout_s=read_timeout_s, deadline_s=request_deadline_s)
            self.rfile = io.BufferedReader(raw)

        def do_GET(self) -> None:
            path = self.path.split("?")[0]
            if path == "/healthz":
                self._healthz()
            elif path == "/metrics" and metrics is not None:
                self._metrics(metrics)
            else:
                self.send_error(404, served)

        def _healthz(self) -> None:
            try:
                code, body = health.snapshot()
                data = json.dumps(body).encode()
            except Exception:  # details to the log; the client learns only that it failed
                log.exception("/healthz failed")
                code, data = 500, json.dumps(FAILED_BODY).encode()
            self._send(code, "application/json", data)

        def _metrics(self, registry: CollectorRegistry) -> None:
            """The exposition format the scraper asks for (Accept), as prometheus_client negotiates it:
            the text format by default, OpenMetrics when asked; the content type is the library's."""
            try:
                encode, content_type = choose_encoder(self.headers.get("Accept", ""))
                code, data = 200, encode(registry)
            except Exception:  # e.g. the state cannot be read: details to the log, never to the scraper
                log.exception("/metrics failed")
                code, content_type, data = 500, "text/plain; charset=utf-8", METRICS_FAILED_BODY
            self._send(code, content_type, data)

        def _send(self, code: int, content_type: str, data: bytes) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            return

    server = BoundedHTTPServer((host, port), Handler, max_workers=max_workers)
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="sheetbot-healthz", daemon=True
    ).start()
    return server
