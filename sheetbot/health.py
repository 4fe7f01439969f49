"""`/healthz` for `serve`: the last lock, run and harvest with their outcome; 503 when the last night failed.

A platform's health check (or a person with curl) learns in one request whether last night
finished and drained. Served by the stdlib in a daemon thread, on 127.0.0.1 unless the YAML
says otherwise, so nothing extra is installed and nothing is exposed by default.
"""

from __future__ import annotations

import json
import threading
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from sheetbot.secrets import scrub_any


class Health:
    """What `serve` has done, shared between its loop and the HTTP thread."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self.phases: dict[str, dict[str, Any]] = {}
        self.last_night: dict[str, Any] | None = None

    def record(self, phase: str, *, at: datetime, ok: bool, outcome: str) -> None:
        with self._guard:
            self.phases[phase] = {"at": at.isoformat(), "ok": ok, "outcome": outcome}

    def night(self, night: str, *, ok: bool, outcome: str) -> None:
        """The last night's verdict: not ok when it did not finish or did not drain."""
        with self._guard:
            self.last_night = {"night": night, "ok": ok, "outcome": outcome}

    def snapshot(self) -> tuple[int, dict[str, Any]]:
        with self._guard:
            failed = self.last_night is not None and not self.last_night["ok"]
            body = {"status": "failing" if failed else "ok", "last_night": self.last_night, **self.phases}
        return (503 if failed else 200), scrub_any(body)  # outcomes quote errors: a health check is an exit


def start_health_server(health: Health, *, host: str = "127.0.0.1", port: int = 8080) -> ThreadingHTTPServer:
    """Serve `/healthz` until ``server.shutdown()``; port 0 picks a free port (``server.server_address``)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?")[0] != "/healthz":
                self.send_error(404, "only /healthz is served here")
                return
            code, body = health.snapshot()
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="sheetbot-healthz", daemon=True
    ).start()
    return server
