"""The YAML contract as pydantic models: the board, schedule, limits, providers, prices and workflows.

The building blocks are in fields.py, what watches the nights (notify, alerts, escalation) in watching.py;
loading, line numbers and messages in load.py, yaml_file.py and checks.py.
"""

from __future__ import annotations

from datetime import time
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    Field,
    PrivateAttr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from sheetbot.config.api import ApiConfig
from sheetbot.config.field_keys import colliding_keys
from sheetbot.config.fields import (
    DAY,
    HOUR,
    MAX_PRICE,
    MAX_ROWS,
    MAX_USD,
    ClockTime,
    Strict,
    webhook_url,
)
from sheetbot.config.state_target import PostgresTarget, board_schema, postgres_url
from sheetbot.config.watching import AlertsConfig, EscalationConfig, NotifyConfig, ServeConfig
from sheetbot.config.weekly import WeeklyConfig

BoardKind = Literal["local", "google_sheets", "airtable"]
ProviderKind = Literal["anthropic", "openai"]
Mode = Literal["live", "batch", "preview"]


class ColumnsConfig(Strict):
    """Header names on the board, for teams whose sheet already has its own."""

    id: str = "id"
    type: str = "type"
    input: str = "input"
    priority: str = "priority"
    status: str = "status"
    night: str = "night"
    output: str = "output"
    review: str = "review"
    notes: str = "notes"
    edited_output: str = "edited_output"
    error: str = "error"
    cost: str = "cost"
    #: The workflow's `checklist:`, one "☐ item" a line, written beside each output (when a workflow has one).
    checklist: str = "checklist"
    #: Who decided (issue 13): a person types their name beside the decision; read at the harvest, never
    #: required. On Airtable, name a "Last modified by" field here (set to watch the review field).
    reviewer: str = "reviewer"
    #: The self-check's verdict per checklist item (`self_check:`), e.g. "✘ 1/2 · ✔ facts · ✘ title: too long".
    checks: str = "checks"
    #: Which model made the output (issue 14): the workflow's, or its `fallback:` when the primary could not serve.
    model: str = "model"
    #: Chained workflows (issue 14): the id of the approved row a chained row came from (bookkeeping).
    parent: str = "parent"

    def logical(self) -> dict[str, str]:
        """Logical name -> header on the board."""
        return self.model_dump()


class BoardConfig(Strict):
    kind: BoardKind = "local"
    path: str = "queue.xlsx"
    sheet: str = "Queue"
    spreadsheet: str | None = None
    credentials: str | None = None
    base: str | None = None
    token_env: str = "AIRTABLE_TOKEN"
    endpoint_url: str | None = None
    #: Airtable: requests a second to one base (Airtable allows 5; lower it when other apps share the base).
    requests_per_s: float = Field(default=5.0, gt=0, le=5)
    #: Seconds one request to the board's API may take.
    timeout_s: float = Field(default=60.0, gt=0, le=HOUR)
    #: google_sheets: warn people who edit a locked row's input cells, from the lock until the harvest.
    protect_locked: bool = False
    #: `init` adds a `reviewer` column, where each reviewer signs their decision (read whenever present).
    reviewer_column: bool = False
    columns: ColumnsConfig = ColumnsConfig()


class WindowConfig(Strict):
    start: ClockTime = time(1, 0)
    end: ClockTime = time(5, 0)


class ScheduleConfig(Strict):
    cutoff: ClockTime = time(17, 0)
    window: WindowConfig = WindowConfig()
    summary: ClockTime = time(9, 0)
    harvest_every_min: int = Field(default=30, ge=0, le=24 * 60)


class LimitsConfig(Strict):
    nightly_rows: int = Field(default=200, ge=0, le=MAX_ROWS)
    nightly_usd: float = Field(default=25.0, ge=0, le=MAX_USD)
    #: Seconds a state write waits for another program's lock on the state file (a backup tool) before the
    #: phase stops with a one-line error; the night waits without holding up calls in flight.
    state_wait_s: float = Field(default=120.0, gt=0, le=HOUR)


class ProviderConfig(Strict):
    #: anthropic | openai; defaults to the entry's own name, so `ollama: {kind: openai, ...}` works.
    kind: ProviderKind | None = None
    api_key_env: str | None = None
    base_url: str | None = None
    #: Calls in flight at once.
    concurrency: int = Field(default=4, ge=1, le=1024)
    #: Requests and tokens per minute the account allows; sheetbot stays under them.
    rpm: int | None = Field(default=None, ge=1, le=10_000_000)
    tpm: int | None = Field(default=None, ge=1, le=10_000_000_000)
    #: Seconds one call may take.
    timeout_s: float = Field(default=120.0, gt=0, le=DAY)
    #: Retries of one call on 429, 5xx, timeouts and dropped connections (exponential backoff with jitter).
    max_retries: int = Field(default=4, ge=0, le=20)
    #: Consecutive failed calls that open the circuit breaker, and how long it stays open.
    breaker_failures: int = Field(default=5, ge=1, le=10_000)
    breaker_cooldown_s: float = Field(default=900.0, ge=0, le=DAY)
    #: mode: batch — seconds between polls of a running batch (backing off to 4× this while it runs).
    batch_poll_s: float = Field(default=60.0, gt=0, le=DAY)

    @field_validator("base_url")
    @classmethod
    def _outbound(cls, url: str | None) -> str | None:
        """The API key goes wherever base_url points: https (http only to loopback), never link-local."""
        from sheetbot.safety.urls import url_problem

        problem = None if url is None else url_problem(url)
        if problem is not None:
            raise ValueError(f"base_url {problem}")
        return url


class PriceConfig(Strict):
    """Dollars per million tokens."""

    input: float = Field(ge=0, le=MAX_PRICE)
    output: float = Field(ge=0, le=MAX_PRICE)
    cache_write: float | None = Field(default=None, ge=0, le=MAX_PRICE)
    cache_read: float | None = Field(default=None, ge=0, le=MAX_PRICE)
    batch_discount: float = Field(default=0.5, ge=0, le=1)


FieldType = Literal["text", "integer", "number", "boolean", "list", "choice"]


class OutputField(Strict):
    """One field of a structured answer; it goes to the board column of the same name."""

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_ ]*$")
    type: FieldType = "text"
    #: The allowed values of a `choice` field.
    choices: list[str] = Field(default_factory=list)
    description: str = ""

    @model_validator(mode="after")
    def _choices_for_choice(self) -> OutputField:
        if self.type == "choice" and not self.choices:
            raise ValueError(f"output field {self.name!r} is a choice: list its allowed values under `choices:`")
        return self


class StepConfig(Strict):
    """One step of a multi-step workflow (research → draft → polish)."""

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    prompt: str
    system: str | None = None
    model: str | None = None
    max_tokens: int | None = Field(default=None, gt=0, le=200_000)
    #: A gate (issue 14): after this step the row stops in `review` with the step's answer; approve or edit
    #: lets the next step run (the next night), rework redoes this step with the notes (sheetbot/night/gates.py).
    review: bool = False
    #: When an approved or edited gate's next step runs: at the next night's lock, or (same_window) at once
    #: into tonight's window if the decision is harvested while it is open (`run`/`serve` then take it).
    resume: Literal["next_night", "same_window"] = "next_night"


class QueueConfig(Strict):
    """A chained workflow (issue 14): once a person approves or edits a row, a new row for ``workflow`` is added
    to the board (sheetbot/morning/chains.py), its input rendered once from the approved row."""

    workflow: str
    #: `{{output}}` (the approved or edited text), `{{input}}` and the structured output's fields.
    input: str = "{{output}}"
    #: The new row's `priority` cell (blank: none).
    priority: str | None = None


class OnApproveConfig(Strict):
    """What follows a person's approve or edit: a signed webhook with the final text, new rows for other
    workflows (`queue:`), or both."""

    webhook: str | None = Field(default=None, pattern=r"^https?://\S+$")
    #: The environment variable holding the HMAC-SHA256 secret the receiver checks signatures with.
    secret_env: str | None = None
    timeout_s: float = Field(default=10.0, gt=0, le=HOUR)
    #: Tries within one harvest; what still fails is tried again at the next harvest.
    max_tries: int = Field(default=3, ge=1, le=10)
    #: One chained workflow, or a list of them (fan-out).
    queue: QueueConfig | list[QueueConfig] | None = None

    @field_validator("webhook")
    @classmethod
    def _outbound(cls, url: str | None) -> str | None:
        return None if url is None else webhook_url(url)

    @model_validator(mode="after")
    def _something_to_do(self) -> OnApproveConfig:
        if self.webhook is None and not self.queues:
            raise ValueError("on_approve needs `webhook:` (with `secret_env:`) or `queue:` (a workflow to chain)")
        if self.webhook is not None and self.secret_env is None:
            raise ValueError("a webhook needs `secret_env:`: the environment variable holding its signing secret")
        return self

    @property
    def queues(self) -> list[QueueConfig]:
        """The chained workflows, in order: one entry or a list is the same thing."""
        if self.queue is None:
            return []
        return self.queue if isinstance(self.queue, list) else [self.queue]


class TrialConfig(Strict):
    """`sheetbot trial`: a workflow run now on a sample, on its own sheet, judged against a launch bar."""

    #: Approval as-is a trial must reach before the workflow goes live.
    launch_bar: float = Field(default=0.75, ge=0, le=1)
    #: The trial sheet is named "<sheet> <workflow>" (one per workflow, so trials never mix).
    sheet: str = "Trial"
    #: How long a trial run may take before what is left is deferred.
    max_hours: float = Field(default=4.0, gt=0, le=7 * 24)


class SelfCheckConfig(Strict):
    """`self_check:` a cheap model grades each output against the workflow's checklist, the same night."""

    model: str
    #: A provider entry under `providers:`; default: the workflow's own.
    provider: str | None = None
    #: Room for the verdict (a pass/fail and a short reason per item).
    max_tokens: int = Field(default=600, gt=0, le=8_000)


class FallbackConfig(Strict):
    """The model a row runs on when the workflow's own cannot serve tonight (sheetbot/night/fallback.py):
    its circuit breaker is open, its key is refused, or the budget left fits only this one's worst case."""

    #: A provider entry under `providers:`; default: the workflow's own.
    provider: str | None = None
    model: str


class UrgentConfig(Strict):
    """The urgent daytime lane (issue 14): while `serve` runs, this workflow's rows of ``priority`` are locked
    and run live within ``within_min`` minutes during the day, at most ``nightly_rows`` of them per day, their
    spend counted against the coming night's budgets (sheetbot/night/urgent.py). The rest wait for the night."""

    priority: Literal["P0", "P1", "P2", "P3"] = "P0"
    within_min: int = Field(default=15, ge=1, le=12 * 60)
    #: The most urgent rows per day (named as the night's cap is; a day belongs to the night it precedes).
    nightly_rows: int = Field(default=20, ge=0, le=MAX_ROWS)


class WorkflowConfig(Strict):
    provider: str
    model: str
    mode: Mode = "live"
    max_tokens: int = Field(default=1024, gt=0, le=200_000)
    nightly_rows: int | None = Field(default=None, ge=0, le=MAX_ROWS)
    temperature: float | None = Field(default=None, ge=0, le=2)
    #: Seconds one call may take (default: the provider's timeout_s).
    timeout_s: float | None = Field(default=None, gt=0, le=DAY)
    #: Seconds a whole task (every step and retry) may take.
    task_timeout_s: float | None = Field(default=None, gt=0, le=DAY)
    #: Dollars one task may cost, and this workflow may spend in one night.
    max_usd_per_task: float | None = Field(default=None, gt=0, le=MAX_USD)
    nightly_usd: float | None = Field(default=None, ge=0, le=MAX_USD)
    #: Failed calls a row may have in one night before it is dead-lettered (`failed`).
    max_failed_calls: int = Field(default=3, ge=1, le=20)
    description: str = ""
    system: str = ""
    steps: list[StepConfig] = Field(default_factory=list)
    #: Declared after `steps` so its check can see them.
    prompt: str = Field(default="", validate_default=True)
    outputs: list[OutputField] = Field(default_factory=list)
    checklist: list[str] = Field(default_factory=list)
    #: Lasting instructions distilled from reviewers' notes (`sheetbot feedback`); added to the system prompt.
    guidelines: list[str] = Field(default_factory=list)
    on_approve: OnApproveConfig | None = None
    #: A first pass against the checklist by a cheap model (sheetbot/night/self_check.py).
    self_check: SelfCheckConfig | None = None
    #: Graceful degradation (issue 14): `{model: …}` or `{provider: …, model: …}`.
    fallback: FallbackConfig | None = None
    urgent: UrgentConfig | None = None

    @field_validator("outputs")
    @classmethod
    def _distinct_outputs(cls, outputs: list[OutputField]) -> list[OutputField]:
        """Every field must keep its own key in the schema the model answers to (see config/field_keys.py)."""
        clashes = colliding_keys([f.name for f in outputs])
        if clashes:
            named = "; ".join(" and ".join(repr(n) for n in group) for group in clashes)
            raise ValueError(
                f"the output fields {named} would share one name in the answer's schema "
                "(spaces become underscores, names are cut at 64 characters): rename one of them"
            )
        return outputs

    @field_validator("steps")
    @classmethod
    def _unique_steps(cls, steps: list[StepConfig]) -> list[StepConfig]:
        names = [s.name for s in steps]
        if len(set(names)) != len(names):
            raise ValueError("two steps share a name: give each step its own `name`")
        return steps

    @field_validator("prompt")
    @classmethod
    def _prompt_or_steps(cls, prompt: str, info: ValidationInfo) -> str:
        steps = info.data.get("steps")
        if steps and prompt.strip():
            raise ValueError("a workflow has either `prompt:` or `steps:`, not both: move the prompt into a step")
        if not steps and not prompt.strip():
            raise ValueError(
                "a prompt is required (or `steps:`): write the instructions, with {{input}} for the row's input"
            )
        return prompt


class Config(Strict):
    timezone: str = "UTC"
    board: BoardConfig = BoardConfig()
    state: str = "sheetbot.db"
    #: PostgreSQL state (issue 15): the board's schema in the database; default derived from the board.
    state_schema: str | None = Field(default=None, pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    schedule: ScheduleConfig = ScheduleConfig()
    limits: LimitsConfig = LimitsConfig()
    providers: dict[str, ProviderConfig] = Field(default_factory=dict)
    prices: dict[str, PriceConfig] = Field(default_factory=dict)
    workflows: dict[str, WorkflowConfig] = Field(default_factory=dict)
    notify: NotifyConfig = NotifyConfig()
    serve: ServeConfig = ServeConfig()
    #: The intake API on serve's HTTP port (sheetbot/config/api.py); None: no /tasks.
    api: ApiConfig | None = None
    alerts: AlertsConfig = AlertsConfig()
    escalation: EscalationConfig = EscalationConfig()
    trial: TrialConfig = TrialConfig()
    #: The weekly review (sheetbot/morning/weekly.py); None: no digest, `report --week` uses no targets.
    weekly: WeeklyConfig | None = None
    #: Extra YAML files (globs, relative to this one) whose `workflows:` are merged in.
    include: list[str] = Field(default_factory=list)

    _base_dir: Path = PrivateAttr(default_factory=Path.cwd)
    _source: Path | None = PrivateAttr(default=None)

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown timezone {value!r}: use an IANA name such as Europe/Berlin") from None
        return value

    # -- derived -------------------------------------------------------------------
    @property
    def base_dir(self) -> Path:
        return self._base_dir

    @property
    def source(self) -> Path | None:
        return self._source

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def state_path(self) -> Path:
        """The SQLite file; with PostgreSQL, the local name its journal, claims, reserve and lock files extend."""
        target = self.state_target
        return target.path if isinstance(target, PostgresTarget) else target

    @property
    def state_exists(self) -> bool:
        """Whether there is a state to read: the SQLite file exists; PostgreSQL's opens (and is made) on demand."""
        target = self.state_target
        return isinstance(target, PostgresTarget) or target.exists()

    @property
    def state_target(self) -> Path | PostgresTarget:
        """Where the state lives (sheetbot.config.state_target): a SQLite file or a PostgreSQL schema."""
        url = postgres_url(self.state, Config.model_fields["state"].default)
        if url is None:
            return self.resolve_path(self.state)
        board = self.board
        identity = board.spreadsheet or (
            f"{board.base}/{board.sheet}" if board.base else str(self.resolve_path(board.path))
        )
        schema = self.state_schema or board_schema(identity)
        return PostgresTarget(url=url, schema=schema, path=self._base_dir / f".{schema}.pgstate")

    @property
    def columns(self) -> ColumnsConfig:
        return self.board.columns

    def resolve_path(self, value: str) -> Path:
        path = Path(value).expanduser()
        return path if path.is_absolute() else self._base_dir / path

    def provider_kind(self, name: str) -> str:
        return self.providers[name].kind or name
