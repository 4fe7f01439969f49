"""Webhook signatures by the Standard Webhooks specification (https://www.standardwebhooks.com), made with
its maintained library, so a receiver in any language verifies with an existing library, not ours.

Every signed POST (on_approve and the notification webhook) carries::

    webhook-id:        the message id; for on_approve the idempotency key "<task>:<attempt>"
    webhook-timestamp: Unix seconds
    webhook-signature: v1,<base64 HMAC-SHA256(key, "<id>.<timestamp>.<raw body>")>

**The secret.** The environment variable holds either a Standard Webhooks secret, ``whsec_<base64 key>``
(its key is the decoded bytes), or any other text, whose key is that text's UTF-8 bytes. A receiver hands
its library ``"whsec_" + base64(text)`` for the latter (`receiver_secret` prints it). Empty is a config error:
an HMAC with an empty key proves nothing.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import time
from collections.abc import Mapping
from datetime import UTC, datetime

from standardwebhooks import Webhook

from sheetbot.errors import ConfigError

PREFIX = "whsec_"


def signing_key(secret: str, *, name: str = "the webhook secret") -> bytes:
    """The HMAC key ``secret`` stands for (see the module docstring); ``name`` is the env variable, for errors."""
    if not secret or not secret.strip():
        raise ConfigError(f"{name} is empty: set it to a long random secret (or a whsec_... secret)")
    if not secret.startswith(PREFIX):
        return secret.encode()
    encoded = secret[len(PREFIX) :].rstrip("=")
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if not key:
        raise ConfigError(f"{name} starts with whsec_ but what follows is not base64: copy the whole secret again")
    return key


def receiver_secret(secret: str) -> str:
    """The ``whsec_...`` form of ``secret`` that a receiver's Standard Webhooks library takes."""
    return PREFIX + base64.b64encode(signing_key(secret)).decode()


def signature_headers(secret: str, body: str, *, msg_id: str, timestamp: int) -> dict[str, str]:
    """The three Standard Webhooks headers for ``body`` sent at ``timestamp`` (signed too: replays are refused)."""
    moment = datetime.fromtimestamp(timestamp, UTC)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": Webhook(signing_key(secret)).sign(msg_id, moment, body),
    }


def verify_signature(
    secret: str,
    body: str | bytes,
    headers: Mapping[str, str],
    *,
    now_s: float | None = None,
    tolerance_s: float = 300,
) -> bool:
    """What a receiver does: a ``v1`` signature matches and the timestamp is within ``tolerance_s`` of now.

    The library's own ``Webhook.verify`` does the same against the wall clock and raises; this one takes
    the time (tests, replays of a log) and answers False for anything malformed — a missing or non-numeric
    header, a non-ASCII or non-base64 signature, a body that is not UTF-8. An empty secret raises ConfigError."""
    webhook = Webhook(signing_key(secret))
    try:
        lowered = {str(k).lower(): v for k, v in headers.items()}
        msg_id, stamp, signatures = (lowered.get(h) for h in ("webhook-id", "webhook-timestamp", "webhook-signature"))
        if not (isinstance(msg_id, str) and isinstance(stamp, str) and isinstance(signatures, str)):
            return False
        if not (msg_id and stamp.isascii() and stamp.isdigit() and signatures.isascii()):
            return False
        now = time.time() if now_s is None else now_s
        if abs(now - int(stamp)) > tolerance_s:
            return False
        text = body.decode() if isinstance(body, bytes) else body
        expected = webhook.sign(msg_id, datetime.fromtimestamp(int(stamp), UTC), text).encode()
        return any(hmac.compare_digest(expected, candidate.encode()) for candidate in signatures.split())
    except (ValueError, OverflowError, OSError):  # UnicodeDecodeError is a ValueError
        return False
