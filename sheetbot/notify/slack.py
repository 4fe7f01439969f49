"""Slack incoming webhook: the message as Block Kit (header, text, one section per Message section).

Sent through sheetbot/safety/outbound.py: no redirect followed, https only (the URL is a credential)."""

from __future__ import annotations

import time
from collections.abc import Callable

import requests

from sheetbot.notify.base import Message
from sheetbot.notify.retry import deliver
from sheetbot.safety.outbound import post

_ICON = {"info": "", "warning": ":warning: ", "critical": ":rotating_light: "}
_MAX_TEXT = 2900  # Slack refuses a section text over 3,000 characters


def _cut(text: str) -> str:
    return text if len(text) <= _MAX_TEXT else text[: _MAX_TEXT - 1] + "…"


def slack_payload(message: Message) -> dict[str, object]:
    blocks: list[dict[str, object]] = [
        {"type": "header", "text": {"type": "plain_text", "text": (_ICON[message.severity] + message.title)[:150]}}
    ]
    if message.sections:
        for heading, lines in message.sections:
            body = "\n".join(lines) or "–"
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _cut(f"*{heading}*\n{body}")}})
    else:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _cut(message.text)}})
    return {"text": message.title, "blocks": blocks}


class SlackNotifier:
    name = "slack"

    def __init__(
        self,
        url: str,
        *,
        tries: int = 3,
        timeout_s: float = 10.0,
        sleep: Callable[[float], None] = time.sleep,
        session: requests.Session | None = None,
    ) -> None:
        self.url = url
        self.tries = tries
        self.timeout_s = timeout_s
        self.sleep = sleep
        self.session = session or requests.Session()

    def send(self, message: Message) -> bool:
        payload = slack_payload(message)

        def attempt() -> None:
            post(self.session, self.url, json=payload, timeout_s=self.timeout_s).raise_for_status()

        return deliver(self.name, message.kind, attempt, tries=self.tries, sleep=self.sleep)
