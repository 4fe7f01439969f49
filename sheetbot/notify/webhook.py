"""A generic webhook, signed with HMAC-SHA256 so the receiver knows it came from this sheetbot.

Each POST carries the JSON body and two headers:

    X-Sheetbot-Timestamp: 1764032400            (Unix seconds)
    X-Sheetbot-Signature: sha256=<hex HMAC-SHA256(secret, f"{timestamp}.{raw body}")>

A receiver verifies it with ``verify_signature`` (or the same four lines in any language): recompute
the HMAC over the timestamp, a dot and the raw body bytes as received; compare in constant time;
refuse timestamps more than five minutes old (a replayed request).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any

import requests

from sheetbot.notify.base import Message
from sheetbot.notify.retry import deliver
from sheetbot.outbound import post


def webhook_body(message: Message) -> dict[str, Any]:
    return {
        "kind": message.kind,
        "title": message.title,
        "text": message.text,
        "severity": message.severity,
        "facts": dict(message.facts),
        "sections": [{"heading": h, "lines": list(lines)} for h, lines in message.sections],
        "route": message.route,
    }


def sign(secret: str, timestamp: str, body: str) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.{body}".encode(), hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify_signature(
    secret: str, timestamp: str, body: str, signature: str, *, now_s: float | None = None, tolerance_s: float = 300
) -> bool:
    """What a receiver does: the signature matches and the timestamp is fresh."""
    now_s = time.time() if now_s is None else now_s
    try:
        fresh = abs(now_s - int(timestamp)) <= tolerance_s
    except ValueError:
        return False
    return fresh and hmac.compare_digest(sign(secret, timestamp, body), signature)


class WebhookNotifier:
    name = "webhook"

    def __init__(
        self,
        url: str,
        secret: str,
        *,
        tries: int = 3,
        timeout_s: float = 10.0,
        sleep: Callable[[float], None] = time.sleep,
        wall: Callable[[], float] = time.time,
        session: requests.Session | None = None,
    ) -> None:
        self.url = url
        self.secret = secret
        self.tries = tries
        self.timeout_s = timeout_s
        self.sleep = sleep
        self.wall = wall
        self.session = session or requests.Session()

    def send(self, message: Message) -> bool:
        body = json.dumps(webhook_body(message), default=str, ensure_ascii=False, sort_keys=True)

        def attempt() -> None:
            timestamp = str(int(self.wall()))  # re-signed on every try: a retry is fresh
            headers = {
                "Content-Type": "application/json",
                "X-Sheetbot-Timestamp": timestamp,
                "X-Sheetbot-Signature": sign(self.secret, timestamp, body),
            }
            response = post(self.session, self.url, data=body.encode(), headers=headers, timeout_s=self.timeout_s)
            response.raise_for_status()

        return deliver(self.name, message.kind, attempt, tries=self.tries, sleep=self.sleep)
