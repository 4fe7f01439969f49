"""Airtable's 5 requests a second, counted the way a strict server counts: arrivals, not send times.

A server counting arrivals in any 1-second window (inclusive) answers 429 to the sixth. Send times that sit
exactly at 5 a second become 6 arrivals in a second as soon as one request travels a little slower than the
fifth after it. The pacer's invariant is on send times with a margin for that: any 6 consecutive requests
span at least 1.25 s, so arrivals never reach 6 in a second while transit times differ by under 0.25 s.
"""

from __future__ import annotations

import random
from bisect import bisect_left

import pytest
from fake_airtable import FakeTime

from sheetbot.boards.airtable_http import PACING_MARGIN_S, Pacer

LIMIT = 5  # Airtable: 5 requests a second per base
JITTER_S = 0.2  # transit-time spread a strict server may see between two requests (< the margin)


def _most_in_window(times: list[float], window_s: float) -> int:
    """The most times in any closed window of ``window_s`` seconds."""
    ordered = sorted(times)
    return max(i - bisect_left(ordered, t - window_s - 1e-9) + 1 for i, t in enumerate(ordered))


def _paced_sends(pacer: Pacer, time: FakeTime, rng: random.Random, count: int) -> list[float]:
    """Send times of ``count`` sequential requests whose round trips vary from nothing to half a second."""
    sent = []
    for _ in range(count):
        pacer.wait()
        sent.append(time.now)
        time.now += rng.choice([0.0, 0.0, rng.uniform(0.0, 0.05), rng.uniform(0.0, 0.5)])
    return sent


@pytest.mark.parametrize("seed", range(5))
def test_any_six_consecutive_requests_span_the_second_plus_the_margin(seed: int) -> None:
    time, rng = FakeTime(), random.Random(seed)
    sent = _paced_sends(Pacer(LIMIT, monotonic=time.monotonic, sleep=time.sleep), time, rng, 1_000)
    spans = [sent[i + LIMIT] - sent[i] for i in range(len(sent) - LIMIT)]
    assert min(spans) >= 1.0 + PACING_MARGIN_S - 1e-9
    assert PACING_MARGIN_S > JITTER_S  # the margin covers the jitter the next test injects


@pytest.mark.parametrize("seed", range(5))
def test_a_strict_server_counting_arrivals_never_sees_six_in_a_second(seed: int) -> None:
    """1,000 requests (a 1,000-row night is about 380), each arriving 0–200 ms after it was sent."""
    time, rng = FakeTime(), random.Random(seed)
    sent = _paced_sends(Pacer(LIMIT, monotonic=time.monotonic, sleep=time.sleep), time, rng, 1_000)
    arrivals = [t + rng.uniform(0.0, JITTER_S) for t in sent]
    assert _most_in_window(arrivals, 1.0) <= LIMIT


def test_the_margin_costs_a_fifth_of_the_rate_and_nothing_more() -> None:
    """Back to back, 5 requests go out at once, then 5 every 1.25 s: 4 a second over a night."""
    time = FakeTime()
    pacer = Pacer(LIMIT, monotonic=time.monotonic, sleep=time.sleep)
    for _ in range(401):
        pacer.wait()
    assert time.now - 1000.0 == pytest.approx(400 / 4)


def test_a_lower_rate_keeps_the_same_margin_in_seconds() -> None:
    time = FakeTime()
    pacer = Pacer(2, monotonic=time.monotonic, sleep=time.sleep)
    sent = []
    for _ in range(20):
        pacer.wait()
        sent.append(time.now)
    assert min(sent[i + 2] - sent[i] for i in range(len(sent) - 2)) >= 1.0 + PACING_MARGIN_S - 1e-9
