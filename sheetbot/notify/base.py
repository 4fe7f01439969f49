"""The notifier seam: one message in, delivered to a channel; a failure never breaks the night.

Every sender (the morning summary, completion alerts, drift alerts, escalations) builds a
``Message``; every channel (Slack, e-mail, webhook) turns it into its own format. ``route``
names where it goes (e.g. ``on_call``); channels without a route take everything.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal, Protocol

from sheetbot.safety.secrets import scrub, scrub_any

Severity = Literal["info", "warning", "critical"]


@dataclass(frozen=True)
class Message:
    #: A stable machine name: "morning_summary", "night_not_drained", "approval_drift", …
    kind: str
    title: str
    #: Plain text, for e-mail and logs; one idea per line.
    text: str
    severity: Severity = "info"
    #: Structured facts for webhooks and Slack fields (night, workflow, figures).
    facts: Mapping[str, object] = field(default_factory=dict)
    #: Sections for rich channels: (heading, lines).
    sections: Sequence[tuple[str, Sequence[str]]] = ()
    route: str | None = None


def scrubbed(message: Message) -> Message:
    """The message with every known secret masked: a notification leaves the process like a log line."""
    return replace(
        message,
        title=scrub(message.title),
        text=scrub(message.text),
        facts=scrub_any(dict(message.facts)),
        sections=[(scrub(h), [scrub(line) for line in lines]) for h, lines in message.sections],
    )


class Notifier(Protocol):
    name: str

    def send(self, message: Message) -> bool:
        """Deliver; True on success. Retries and logging are the notifier's own; it never raises."""
        ...


class MemoryNotifier:
    """The honest stand-in: records every message; can be told to fail."""

    def __init__(self, name: str = "memory", *, fail: bool = False) -> None:
        self.name = name
        self.fail = fail
        self.sent: list[Message] = []

    def send(self, message: Message) -> bool:
        if self.fail:
            return False
        self.sent.append(message)
        return True

    def kinds(self) -> list[str]:
        return [m.kind for m in self.sent]


@dataclass(frozen=True)
class Delivery:
    """Which channels got a message and which did not: what sheetbot says about a message ("sent") must
    match what happened, and "all that were tried succeeded" is also true when none was tried."""

    reached: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """Nothing to try again: no channel failed (with no channel at all, there is nothing to retry)."""
        return not self.failed


class Fanout:
    """Every configured channel; a message goes to the channels whose route matches (or that take all)."""

    def __init__(self, channels: Sequence[tuple[Notifier, Sequence[str] | None]] = ()) -> None:
        self.channels = list(channels)

    def deliver(self, message: Message) -> Delivery:
        """Send to every matching channel; which ones got it."""
        message = scrubbed(message)
        reached: list[str] = []
        failed: list[str] = []
        for notifier, routes in self.channels:
            if routes is None or message.route is None or message.route in routes:
                (reached if notifier.send(message) else failed).append(notifier.name)
        return Delivery(tuple(reached), tuple(failed))

    def send(self, message: Message) -> bool:
        return self.deliver(message).ok
