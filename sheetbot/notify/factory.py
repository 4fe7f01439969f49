"""Build the channels the YAML's `notify:` names; secrets come from the environment, by the names given.

A channel whose secret is missing is left out with a warning (and listed in the returned problems):
serve must keep working the board even when a webhook URL was forgotten.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping

from sheetbot.config.watching import NotifyConfig
from sheetbot.errors import ConfigError
from sheetbot.notify.base import Fanout, Notifier
from sheetbot.notify.email import EmailNotifier
from sheetbot.notify.slack import SlackNotifier
from sheetbot.notify.webhook import WebhookNotifier
from sheetbot.safety import secrets
from sheetbot.safety.signing import signing_key
from sheetbot.safety.urls import url_problem

log = logging.getLogger("sheetbot.notify")


def build_fanout(
    cfg: NotifyConfig, env: Mapping[str, str], *, sleep: Callable[[float], None] = time.sleep, warn: bool = True
) -> tuple[Fanout, list[str]]:
    channels: list[Notifier] = []
    problems: list[str] = []

    def secret(key: str, name: str | None) -> str | None:
        value = env.get(name or "") if name else None
        value = value if value and value.strip() else None  # blank is "not set"
        if name and not value:
            problems.append(f"notify.{key}: the environment variable {name} is not set: export it, or remove the key")
        if name and value:
            secrets.learn([value])
            bad = secrets.bad_secret(name, value)
            if bad:  # a pasted line break would be sent, and echoed back in error texts
                problems.append(f"notify.{key}: {bad}")
                return None
        return value or None

    if cfg.slack_webhook_env:
        url = secret("slack_webhook_env", cfg.slack_webhook_env)
        refused = url_problem(url) if url else None  # the YAML's own URLs were checked at load
        if refused:
            problems.append(f"notify.slack_webhook_env: the URL in {cfg.slack_webhook_env} {refused}")
        elif url:
            channels.append(SlackNotifier(url, tries=cfg.tries, sleep=sleep))
    if cfg.webhook_url:
        name = cfg.webhook_secret_env or "SHEETBOT_WEBHOOK_SECRET"
        key = secret("webhook_secret_env", name)
        try:
            signing_key(key or "-", name=name)
        except ConfigError as exc:  # a whsec_ secret that is not base64
            problems.append(f"notify.webhook_secret_env: {exc.problems[0].message}")
            key = None
        if key:
            channels.append(WebhookNotifier(cfg.webhook_url, key, tries=cfg.tries, sleep=sleep))
    if cfg.email_to:
        if not cfg.smtp_host or not cfg.email_from:
            problems.append("notify.email_to is set, but notify.smtp_host or notify.email_from is not: set both")
        else:
            user = secret("smtp_user_env", cfg.smtp_user_env)
            password = secret("smtp_password_env", cfg.smtp_password_env)
            channels.append(
                EmailNotifier(
                    host=cfg.smtp_host,
                    port=cfg.smtp_port,
                    sender=cfg.email_from,
                    to=cfg.email_to,
                    user=user,
                    password=password,
                    starttls=cfg.smtp_starttls,
                    tries=cfg.tries,
                    sleep=sleep,
                )
            )
    for problem in problems if warn else ():  # `check` reports them itself, with their lines
        log.warning(problem)
    return Fanout([(c, None) for c in channels]), problems
