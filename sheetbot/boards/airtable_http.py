"""The transport every Airtable request passes: paced (5 in any 1.25 s per base: Airtable's 5 a second with a
margin for transit times) and retried the way Airtable asks (429: wait 30 s; 5xx and dropped connections:
exponential backoff), and Airtable's error bodies."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from sheetbot.safety.retry import RetryCallState, exponential, retrying

# Loose types: send() passes requests.Session.send's own arguments through untouched.

RATE_LIMIT_WAIT_S = 30.0  # Airtable: "wait 30 seconds before subsequent requests will succeed"
#: Added to the pacing window. Airtable counts requests when they *arrive*; a pacer that sends 5 a second
#: exactly lets a sixth arrive within the second whenever it travels faster than the request five before it
#: (13 429s in a 300-row night, 30 s each). With 0.25 s, any 6 consecutive requests leave at least 1.25 s
#: apart, so arrivals stay at 5 a second unless transit times differ by more than 250 ms (bench/board_calls.py
#: measures it against a strict server). The cost: 4 requests a second instead of 5, about 19 s on a
#: 1,000-row night of ~380 requests, against 30 s for a single 429.
PACING_MARGIN_S = 0.25

Clock = Callable[[], float]
Sleep = Callable[[float], None]


class Pacer:
    """At most ``⌊per_s⌋`` requests in any window of ``⌊per_s⌋/per_s + margin_s`` seconds (5 in any 1.25 s).

    The invariant is on send times: any ``⌊per_s⌋ + 1`` consecutive requests span at least the window, so a
    server counting arrivals in a second sees at most ``⌊per_s⌋`` while transit times vary by less than
    ``margin_s``. A burst of 5 after a pause is fine (5 in a second is allowed); a sliding count of 4 a second
    would not be safer: it lets 4 + 4 go out 1.0 s apart, and jitter then puts 6 in one second.
    Time is passed in (a monotonic clock and a sleep), so tests measure pacing without waiting.
    """

    def __init__(self, per_s: float, *, monotonic: Clock, sleep: Sleep, margin_s: float = PACING_MARGIN_S) -> None:
        self.burst = max(1, int(per_s))
        self.window_s = self.burst / per_s + margin_s
        self.monotonic, self.sleep = monotonic, sleep
        self.sent: deque[float] = deque(maxlen=self.burst)

    def wait(self) -> None:
        now = self.monotonic()
        if len(self.sent) == self.burst and now < self.sent[0] + self.window_s:
            self.sleep(self.sent[0] + self.window_s - now)
            now = max(self.monotonic(), self.sent[0] + self.window_s)
        self.sent.append(now)


class _Transport(HTTPAdapter):
    """Every request this board sends passes here: paced, and retried the way Airtable asks."""

    def __init__(self, pacer: Pacer, *, sleep: Sleep, attempts: int) -> None:
        super().__init__()
        self.pacer, self.pause, self.attempts = pacer, sleep, attempts
        self.backoff = exponential(first_s=1, cap_s=RATE_LIMIT_WAIT_S, jitter_s=1)

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        method = (request.method or "GET").upper()
        policy = retrying(
            tries=self.attempts,
            wait=self._wait,
            sleep=self.pause,
            retry_on=(requests.ConnectionError, requests.Timeout),
            retry_result=lambda r: r.status_code == 429 or (r.status_code >= 500 and method != "POST"),
        )
        return policy(self._send_once, request, *args, **kwargs)

    def _send_once(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        self.pacer.wait()
        return super().send(request, *args, **kwargs)

    def _wait(self, state: RetryCallState) -> float:
        outcome = state.outcome
        if outcome is not None and not outcome.failed and outcome.result().status_code == 429:
            retry_after = outcome.result().headers.get("Retry-After", "")
            return max(RATE_LIMIT_WAIT_S, float(retry_after) if retry_after.isdigit() else 0.0)
        return float(self.backoff(state))


def _error_of(response: requests.Response | None) -> tuple[str, str]:
    """(type, message) from Airtable's error bodies: {"error": {...}}, {"error": "NOT_FOUND"} or {"errors": [...]}."""
    try:
        body = response.json() if response is not None else {}
    except ValueError:
        return "", ""
    error = body.get("error") if isinstance(body, dict) else None
    if error is None and isinstance(body, dict) and body.get("errors"):
        first = body["errors"][0]
        return str(first.get("error", "")), str(first.get("message", ""))
    if isinstance(error, dict):
        return str(error.get("type", "")), str(error.get("message", ""))
    return (str(error), "") if error else ("", "")
