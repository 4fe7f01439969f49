"""Deliver with a few tries and a log line; never raise: a failed notification never breaks the night."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from sheetbot.safety.retry import exponential, retrying
from sheetbot.safety.secrets import describe_error

log = logging.getLogger("sheetbot.notify")


def deliver(
    channel: str, kind: str, attempt: Callable[[], None], *, tries: int = 3, sleep: Callable[[float], None] = time.sleep
) -> bool:
    """Run ``attempt`` until it does not raise, at most ``tries`` times with exponential backoff."""
    try:
        retrying(tries=tries, wait=exponential(first_s=1, cap_s=30), sleep=sleep)(attempt)
    except Exception as exc:  # the last try's error, after every try failed
        why = describe_error(exc)  # never the URL as it is
        log.error("notification %s to %s failed after %d tries: %s", kind, channel, tries, why)
        return False
    log.info("notification %s sent to %s", kind, channel)
    return True
