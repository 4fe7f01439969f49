"""E-mail over SMTP: plain text (the Message's text and sections), STARTTLS by default, login from env."""

from __future__ import annotations

import smtplib
import ssl
import time
from collections.abc import Callable, Sequence
from email.message import EmailMessage

from sheetbot.notify.base import Message
from sheetbot.notify.retry import deliver


def email_text(message: Message) -> str:
    parts = [message.text]
    for heading, lines in message.sections:
        parts.append(f"{heading}\n" + "\n".join(f"  {line}" for line in lines))
    return "\n\n".join(p for p in parts if p.strip()) + "\n"


class EmailNotifier:
    name = "email"

    def __init__(
        self,
        *,
        host: str,
        port: int,
        sender: str,
        to: Sequence[str],
        user: str | None = None,
        password: str | None = None,
        starttls: bool = True,
        tries: int = 3,
        timeout_s: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.host, self.port, self.sender, self.to = host, port, sender, list(to)
        self.user, self.password, self.starttls = user, password, starttls
        self.tries, self.timeout_s, self.sleep = tries, timeout_s, sleep

    def build(self, message: Message) -> EmailMessage:
        mail = EmailMessage()
        prefix = "" if message.severity == "info" else f"[{message.severity}] "
        mail["Subject"] = prefix + message.title
        mail["From"] = self.sender
        mail["To"] = ", ".join(self.to)
        mail.set_content(email_text(message))
        return mail

    def send(self, message: Message) -> bool:
        mail = self.build(message)

        def attempt() -> None:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout_s) as smtp:
                if self.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if self.user:
                    smtp.login(self.user, self.password or "")
                smtp.send_message(mail)

        return deliver(self.name, message.kind, attempt, tries=self.tries, sleep=self.sleep)
