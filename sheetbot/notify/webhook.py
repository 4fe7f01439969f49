"""A generic webhook, signed by the Standard Webhooks specification so the receiver knows it came from
this sheetbot and verifies it with an existing library (sheetbot/safety/signing.py has the details).

Each POST carries the JSON body and the headers ``webhook-id`` (one id per message, the same on every
retry, also sent as ``Idempotency-Key`` so a receiver drops a duplicate), ``webhook-timestamp`` and
``webhook-signature: v1,<base64>``. A receiver verifies with its Standard Webhooks library, given
``whsec_`` + base64 of the secret (or the ``whsec_`` secret itself), or with `verify_signature`.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import TypedDict

import requests

from sheetbot.notify.base import Message, Severity
from sheetbot.notify.retry import deliver
from sheetbot.safety.outbound import post
from sheetbot.safety.signing import signature_headers, signing_key
from sheetbot.safety.signing import verify_signature as verify_signature


class Section(TypedDict):
    heading: str
    lines: list[str]


class WebhookBody(TypedDict):
    """The JSON a notification webhook receives: the message, its facts and sections as data."""

    kind: str
    title: str
    text: str
    severity: Severity
    facts: dict[str, object]
    sections: list[Section]
    route: str | None


def webhook_body(message: Message) -> WebhookBody:
    return {
        "kind": message.kind,
        "title": message.title,
        "text": message.text,
        "severity": message.severity,
        "facts": dict(message.facts),
        "sections": [{"heading": h, "lines": list(lines)} for h, lines in message.sections],
        "route": message.route,
    }


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
        signing_key(secret)  # an empty or unreadable secret is a config error now, not a bad signature later
        self.url = url
        self.secret = secret
        self.tries = tries
        self.timeout_s = timeout_s
        self.sleep = sleep
        self.wall = wall
        self.session = session or requests.Session()

    def send(self, message: Message) -> bool:
        body = json.dumps(webhook_body(message), default=str, ensure_ascii=False, sort_keys=True)
        msg_id = f"msg_{uuid.uuid4().hex}"  # one per message: every retry carries it, so receivers dedupe

        def attempt() -> None:
            headers = {
                "Content-Type": "application/json",
                "Idempotency-Key": msg_id,
                # re-signed on every try: a retry is fresh
                **signature_headers(self.secret, body, msg_id=msg_id, timestamp=int(self.wall())),
            }
            response = post(self.session, self.url, data=body.encode(), headers=headers, timeout_s=self.timeout_s)
            response.raise_for_status()

        return deliver(self.name, message.kind, attempt, tries=self.tries, sleep=self.sleep)
