"""The YAML's models for what watches the nights: notifications, `serve`'s health port, drift alerts, escalation."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, WithJsonSchema, field_validator

from sheetbot.config.fields import DAY, MAX_NIGHTS, MAX_ROWS, MAX_USD, Strict, webhook_url


class NotifyConfig(Strict):
    """Where the morning summary and alerts go. Secrets never sit here: only the names of env variables."""

    slack_webhook_env: str | None = None
    webhook_url: str | None = None
    webhook_secret_env: str | None = None
    email_to: list[str] = Field(default_factory=list)
    email_from: str | None = None
    smtp_host: str | None = None
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_starttls: bool = True
    smtp_user_env: str | None = None
    smtp_password_env: str | None = None
    #: Tries per message before it is logged as lost (a failed notification never breaks the night).
    tries: int = Field(default=3, ge=1, le=10)

    @field_validator("webhook_url")
    @classmethod
    def _outbound(cls, url: str | None) -> str | None:
        return None if url is None else webhook_url(url)


class ServeConfig(Strict):
    """`sheetbot serve`: the health endpoint (off unless a port is set)."""

    health_port: int | None = Field(default=None, ge=0, le=65535)
    health_host: str = "127.0.0.1"


def seconds(value: object) -> object:
    """`4h`, `90m`, `7d`, `30s` or a number of hours, as seconds."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return float(value) * 3600
    text = str(value).strip().lower()
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if text and text[-1] in units:
        try:
            return float(text[:-1]) * units[text[-1]]
        except ValueError:
            pass
    raise ValueError(f"{value!r} is not a duration: write e.g. 4h, 90m or 7d")


#: A duration in seconds, written in the YAML as `4h`, `90m`, `7d` (a bare number means hours).
Duration = Annotated[
    float,
    BeforeValidator(seconds),
    Field(gt=0, le=MAX_NIGHTS * DAY),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_NIGHTS * 24},
                # loose on purpose (`seconds` reads the number with float()); `check` judges the rest
                {"type": "string", "pattern": r"^\s*[-+0-9._eE ]*[0-9][-+0-9._eE ]*[smhdSMHD]\s*$"},
            ],
            "description": "A duration: 4h, 90m, 7d, 30s, or a number of hours.",
        }
    ),
]


class AlertsConfig(Strict):
    """Drift thresholds, checked after each harvest (see sheetbot/morning/alerts.py)."""

    enabled: bool = True
    #: Decided outputs a rate needs before it can raise an alert: one rework out of two rows is not 50% drift.
    #: The edit and rework rates count one night's decisions; approval counts the `approval_nights` together.
    min_decided: int = Field(default=10, ge=1, le=MAX_ROWS)
    #: Approval as-is under this rate for `approval_nights` nights running.
    approval_min: float = Field(default=0.70, ge=0, le=1)
    approval_nights: int = Field(default=2, ge=1, le=MAX_NIGHTS)
    edit_max: float = Field(default=0.25, ge=0, le=1)
    rework_max: float = Field(default=0.15, ge=0, le=1)
    completion_min: float = Field(default=1.0, ge=0, le=1)
    #: Cost per output higher than the night before, this many nights running.
    cost_rising_nights: int = Field(default=3, ge=1, le=MAX_NIGHTS)
    #: The review backlog larger than the night before, this many nights running.
    backlog_rising_nights: int = Field(default=3, ge=1, le=MAX_NIGHTS)
    #: The channel route for drift alerts (None: every channel).
    route: str | None = None


class QueueDepthTrigger(Strict):
    over: int = Field(default=100, ge=0, le=MAX_ROWS)
    for_min: float = Field(default=60, ge=0, le=MAX_NIGHTS * 24 * 60)
    route: str | None = "on_call"


class WaitingTrigger(Strict):
    """An item waiting longer than `factor` × its priority's SLA."""

    factor: float = Field(default=1.5, gt=0, le=1000)
    route: str | None = "on_call"


class CostTrigger(Strict):
    """A night's cost per task over `over_usd` pauses every workflow not listed as critical."""

    over_usd: float | None = Field(default=None, gt=0, le=MAX_USD)
    route: str | None = "on_call"


SlaPriority = Literal["P0", "P1", "P2", "P3"]
_DEFAULT_SLA: dict[SlaPriority, float] = {"P0": 4 * 3600.0, "P1": 24 * 3600.0, "P2": 72 * 3600.0, "P3": 168 * 3600.0}


class EscalationConfig(Strict):
    enabled: bool = True
    sla: dict[SlaPriority, Duration] = Field(default_factory=lambda: dict(_DEFAULT_SLA))
    queue_depth: QueueDepthTrigger = QueueDepthTrigger()
    waiting: WaitingTrigger = WaitingTrigger()
    cost_per_task: CostTrigger = CostTrigger()
    #: Workflows a cost escalation never pauses.
    critical: list[str] = Field(default_factory=list)

    @field_validator("sla")
    @classmethod
    def _every_priority(cls, sla: dict[SlaPriority, float]) -> dict[SlaPriority, float]:
        """`sla: {P0: 2h}` changes P0 only; the other priorities keep their defaults."""
        return {**_DEFAULT_SLA, **sla}
