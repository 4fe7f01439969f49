"""`/healthz` for `serve`: the last lock, run and harvest with their outcome; 503 when the last night failed.

A platform's health check (or a person with curl) learns in one request whether last night finished and
drained. This module keeps the record and makes the body; the app on serve's HTTP port answers it
(sheetbot/service/http_app.py, on uvicorn, on 127.0.0.1 unless the YAML says otherwise, bounded against
slow clients: sheetbot/service/http_server.py). Answers never carry exception text: a failure is a fixed
message, its details go to the log.
"""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Protocol, TypedDict

from sheetbot.safety.secrets import scrub_any

#: What a request that failed inside sheetbot gets back: never the exception's text.
FAILED_BODY = {"status": "error", "error": "the health check failed inside sheetbot: see its log"}
METRICS_FAILED_BODY = b"# the metrics failed inside sheetbot: see its log\n"


def failed_outcome(exc: BaseException) -> str:
    """What /healthz shows for a phase that raised: the kind only; the message (which may name paths,
    hosts or data) stays in the log, where the phase already wrote it."""
    return f"failed ({type(exc).__name__}): see the sheetbot log"


class HealthSource(Protocol):
    """What /healthz answers from: one board's :class:`Health`, or many boards' (service/board_reports.py)."""

    def snapshot(self) -> tuple[int, dict[str, object]]: ...


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
