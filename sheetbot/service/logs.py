"""Logging for `serve` and the CLI: readable text by default, one JSON object a line with --log-format json.

A filter on the handler masks secrets before any formatter sees them, with the one scrubber
(sheetbot.safety.secrets: every variable the YAML names, URL credentials, key shapes), then e-mail addresses
and phone numbers (the design: logs mask personal data).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime, tzinfo
from typing import TextIO

from sheetbot.safety import secrets
from sheetbot.safety.masking import mask_text

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class Masker:
    """Replaces secrets and personal data in text."""

    def __init__(self, env: Mapping[str, str]) -> None:
        secrets.learn_env(env)  # the YAML's own names are learned when the config is read

    def __call__(self, text: str) -> str:
        """Secrets first (every one the process knows by now), then personal data with the same rules as
        audit exports (sheetbot.safety.masking), so logs and exports never disagree."""
        return mask_text(secrets.scrub(text))


class MaskFilter(logging.Filter):
    """Masks the message and every extra field, once, before formatting."""

    def __init__(self, masker: Masker) -> None:
        super().__init__()
        self.masker = masker

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self.masker(record.getMessage())
        record.args = None
        for key, value in list(vars(record).items()):
            if key not in _STANDARD and isinstance(value, str):
                setattr(record, key, self.masker(value))
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.masker(record.exc_text)
        return True


class TextFormatter(logging.Formatter):
    """``2026-11-23T01:00:00.000+01:00 INFO    sheetbot.…: message``: ISO 8601 with the UTC offset, so a
    line read next to the schedule, another host's logs or across a DST change says when it happened.

    The clock is the host's local time (``tz`` None): logging starts before the YAML (and its
    ``timezone``) is read, and a log collector lines logs up by host time; the offset makes it exact."""

    def __init__(self, tz: tzinfo | None = None) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")
        self.tz = tz

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        moment = datetime.fromtimestamp(record.created, UTC)
        return moment.astimezone(self.tz).isoformat(timespec="milliseconds")


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (UTC, with its +00:00 offset), level, logger, message, `extra=` fields."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        out.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_text:
            out["error"] = record.exc_text
        return json.dumps(out, default=str, ensure_ascii=False)


def setup_logging(
    *,
    fmt: str = "text",
    env: Mapping[str, str],
    stream: TextIO | None = None,
    level: int = logging.INFO,
    tz: tzinfo | None = None,
) -> logging.Handler:
    """Send the `sheetbot` loggers to ``stream`` (stderr) in ``fmt``; returns the handler (tests remove it).
    Text lines carry the time in ``tz`` (None: the host's local time) with its offset; JSON is UTC."""
    handler = logging.StreamHandler(stream)
    handler.addFilter(MaskFilter(Masker(env)))
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter(tz))
    logger = logging.getLogger("sheetbot")
    logger.addHandler(handler)
    logger.setLevel(level)
    return handler
