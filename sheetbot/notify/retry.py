"""Deliver with a few tries and a log line; never raise: a failed notification never breaks the night."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from tenacity import RetryError, Retrying, stop_after_attempt, wait_exponential

from sheetbot.safety.secrets import describe_error

log = logging.getLogger("sheetbot.notify")


def deliver(
    channel: str, kind: str, attempt: Callable[[], None], *, tries: int = 3, sleep: Callable[[float], None] = time.sleep
) -> bool:
    """Run ``attempt`` until it does not raise, at most ``tries`` times with exponential backoff."""
    retrying = Retrying(
        stop=stop_after_attempt(tries),
        wait=wait_exponential(multiplier=1, min=1, max=30),
        sleep=sleep,
        reraise=False,
    )
    try:
        retrying(attempt)
    except RetryError as exc:
        cause = exc.last_attempt.exception()
        why = describe_error(cause) if cause is not None else "no reason given"  # never the URL as it is
        log.error("notification %s to %s failed after %d tries: %s", kind, channel, tries, why)
        return False
    log.info("notification %s sent to %s", kind, channel)
    return True
