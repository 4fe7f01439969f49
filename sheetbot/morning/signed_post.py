"""One signed POST, retried within this phase: what on_approve's webhook and the intake API's callbacks send.

The body is signed by Standard Webhooks (sheetbot/safety/signing.py) with the ``Idempotency-Key`` as its
``webhook-id``, so a receiver that got a POST twice (we never learned it arrived) drops the second. A 429, a
5xx, a timeout or a dropped connection is tried again with backoff; a redirect or a refused URL is not
(sheetbot/safety/outbound.py: it would not change). Problems name the host only: a URL may carry a token.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from urllib.parse import urlsplit

import requests

from sheetbot.errors import OutboundError
from sheetbot.safety.outbound import post
from sheetbot.safety.retry import exponential, retrying
from sheetbot.safety.signing import signature_headers


class _Retryable(Exception):
    """A 429, a 5xx, a timeout or a dropped connection: worth another try."""


def signed_post(
    http: requests.Session,
    url: str,
    body: str,
    *,
    key: str,
    secret: str,
    now: Callable[[], datetime],
    timeout_s: float,
    tries: int,
    sleep: Callable[[float], None],
    before_try: Callable[[], None] | None = None,
) -> str | None:
    """None once a 2xx answered; else why not, in one line. ``before_try`` runs before every POST (on_approve
    records `sending` there, so a crash mid-POST is known to have maybe reached the receiver)."""
    where = urlsplit(url).hostname or "the receiver"

    def once() -> requests.Response:
        if before_try is not None:
            before_try()
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": key,
            **signature_headers(secret, body, msg_id=key, timestamp=int(now().timestamp())),
        }
        try:
            response = post(http, url, data=body.encode(), headers=headers, timeout_s=timeout_s)
        except requests.RequestException as exc:
            raise _Retryable(f"{type(exc).__name__} from {where}") from None
        if response.status_code == 429 or response.status_code >= 500:
            raise _Retryable(f"HTTP {response.status_code} from {where}")
        return response

    policy = retrying(tries=tries, wait=exponential(first_s=1, cap_s=30), sleep=sleep, retry_on=_Retryable)
    try:
        response = policy(once)
    except (_Retryable, OutboundError) as exc:
        return str(exc)
    return None if 200 <= response.status_code < 300 else f"HTTP {response.status_code} from {where}"
