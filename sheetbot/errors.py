"""Every error sheetbot raises on purpose, in one tree.

Messages are written for the admin who reads them at 9am: each names the object
(key path, row id, column, environment variable) and says what to do about it.
The CLI prints ``str(error)`` on one line and exits non-zero; nothing below is
meant to reach the user as a traceback.

::

    SheetbotError
    ├── ConfigError            the YAML file is missing, unreadable or invalid (carries every problem)
    ├── BoardError             the board cannot be read or written
    │   ├── BoardNotFound      the workbook / sheet / table does not exist
    │   ├── BoardSchemaError   columns are missing (run `sheetbot init`)
    │   ├── WorkbookNotKept    saving the workbook would lose what openpyxl cannot keep (charts, macros, …)
    │   └── BoardWriteError    a write failed; outputs stay in the state and are written next time
    ├── StateError             the SQLite state file cannot be used
    │   ├── StateUnavailableError  locked by another program, disk full, I/O error, read-only: a fault outside
    │   ├── TransitionError    a status change the lifecycle does not allow
    │   └── UnknownRowsError   the board shows rows in sheetbot statuses the state file does not know
    ├── TemplateError          a prompt template names something that is not there
    ├── InvalidAnswer          a paid answer does not fit the workflow's `outputs:` (one repair, then failed)
    ├── LockedError            another sheetbot process works this board right now
    ├── OutboundError          a webhook URL sheetbot will not call, or an answer it will not follow (a 3xx)
    └── ProviderError          a model call failed
        ├── RetryableProviderError   429, 5xx, timeouts, connection errors: try again later
        ├── PermanentProviderError   400, 404, context too long: retrying will not help
        │   ├── AccountProviderError     401, 402, 403, out of quota: the account's problem; rows wait
        │   ├── RequestShapeError        the server refuses a parameter (response_format, max_tokens…)
        │   └── BatchUnsupportedError    the server has no Batch API: the rows may run live
        └── CircuitOpenError         the provider failed too often in a row: calls wait out a cool-down
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class SheetbotError(Exception):
    """Base of every error sheetbot raises on purpose."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the configuration, where it is, and (if known) the line."""

    where: str
    message: str
    line: int | None = None
    file: str | None = None

    def __str__(self) -> str:
        place = self.where or "(top level)"
        if self.line is not None:
            loc = f"{self.file}:{self.line}" if self.file else f"line {self.line}"
            place = f"{place} ({loc})"
        return f"{place}: {self.message}"


class ConfigError(SheetbotError):
    """The configuration cannot be used; ``problems`` lists every reason, not just the first."""

    def __init__(self, problems: Sequence[Problem] | str, *, path: str | None = None) -> None:
        if isinstance(problems, str):
            problems = [Problem("", problems)]
        self.problems = list(problems)
        self.path = path
        first = str(self.problems[0]) if self.problems else "invalid configuration"
        more = f" (and {len(self.problems) - 1} more: run `sheetbot check`)" if len(self.problems) > 1 else ""
        prefix = f"{path}: " if path else ""
        super().__init__(f"{prefix}{first}{more}")


class BoardError(SheetbotError):
    """The board cannot be read or written."""


class BoardNotFound(BoardError):
    """The workbook, worksheet or table named in the YAML does not exist."""


class BoardSchemaError(BoardError):
    """The board lacks columns sheetbot needs."""


class WorkbookNotKept(BoardError):
    """The workbook holds what openpyxl drops when it saves (a text box, a picture, a pivot table, macros…):
    sheetbot refuses it before saving anything."""


class BoardWriteError(BoardError):
    """A write to the board failed. Outputs are already in the state and are written on the next run."""


class StateError(SheetbotError):
    """The SQLite state file cannot be opened or used."""


class StateUnavailableError(StateError):
    """The state file cannot be written (or read) right now: another program holds its lock, the disk is full,
    an I/O error, a read-only file or folder. Not sheetbot's bug, and not the row's: the admin fixes the
    machine and runs the command again. ``kind`` is locked | full | io | readonly | unusable.

    The message is built from parts so the night can add what it kept (``kept``: paid answers written to the
    journal beside the state, stored by the next run), what it could not keep (``lost``), and the reserve
    beside the state whose space it used to keep them (``reserve``, sheetbot.state.reserve).
    """

    def __init__(
        self,
        kind: str,
        problem: str,
        fix: str,
        *,
        again: str = "run sheetbot again",
        kept: int = 0,
        lost: int = 0,
        journal: str = "",
        journal_problem: str = "",
        reserve: str = "",
    ) -> None:
        self.kind, self.problem, self.fix, self.again = kind, problem, fix, again
        self.kept, self.lost, self.journal, self.journal_problem = kept, lost, journal, journal_problem
        self.reserve = reserve
        super().__init__(self._message())

    def _message(self) -> str:
        text = f"{self.problem}: {self.fix}, then {self.again}"
        if self.kept:
            text += f"; {_answers(self.kept)} kept in {self.journal} and will be stored then"
        if self.lost:
            text += (
                f"; {_answers(self.lost, verb=False)} could not be kept: the journal {self.journal} could not be "
                f"written ({self.journal_problem}), so {'that row is' if self.lost == 1 else 'those rows are'} "
                "called again next time"
            )
        if self.reserve:
            them = " to keep it" if self.kept == 1 else " to keep them" if self.kept else ""
            text += f"; the reserve {self.reserve} was used{them} (sheetbot makes it again once space is free)"
        return text

    def told(
        self,
        *,
        again: str,
        kept: int = 0,
        lost: int = 0,
        journal: str = "",
        journal_problem: str = "",
        reserve: str = "",
    ) -> StateUnavailableError:
        """The same fault, with what the caller kept and the command to run again."""
        return StateUnavailableError(
            self.kind,
            self.problem,
            self.fix,
            again=again,
            kept=kept,
            lost=lost,
            journal=journal,
            journal_problem=journal_problem,
            reserve=reserve,
        )


def _answers(n: int, *, verb: bool = True) -> str:
    noun = "paid answer" if n == 1 else "paid answers"
    if not verb:
        return f"{n} {noun}"
    return f"{n} {noun} {'is' if n == 1 else 'are'}"


class TransitionError(StateError):
    """A status change that the lifecycle table does not allow."""


class UnknownRowsError(StateError):
    """The board holds rows in sheetbot's statuses that the state file does not know (it was emptied,
    replaced, or restored from an older copy). Every phase stops until the admin decides: putting the right
    state file back, or adopting the rows (``--adopt-unknown``), so no decision is dropped and nothing is paid
    twice."""

    def __init__(self, message: str, *, task_ids: Sequence[str]) -> None:
        super().__init__(message)
        self.task_ids = list(task_ids)


class TemplateError(SheetbotError):
    """A template names a column or step that does not exist."""


class LockedError(SheetbotError):
    """Another sheetbot process holds the lock on this state file."""


class OutboundError(SheetbotError):
    """A webhook URL sheetbot refuses (plain http off loopback, link-local, cloud metadata) or a redirect
    answer: sheetbot follows none, so a 3xx is a failed delivery (sheetbot/safety/outbound.py)."""


class ProviderError(SheetbotError):
    """A model call failed. ``status_code`` is the HTTP status where there was one."""

    def __init__(self, message: str, *, status_code: int | None = None, retry_after_s: float | None = None):
        super().__init__(message)
        self.status_code = status_code
        self.retry_after_s = retry_after_s


class RetryableProviderError(ProviderError):
    """Rate limits, server errors, timeouts, dropped connections: the same call may work later."""


class PermanentProviderError(ProviderError):
    """Bad request, bad key, no permission, prompt too long: the same call will fail again."""


class AccountProviderError(PermanentProviderError):
    """The key is refused, lacks permission, or the account has no money or quota (401/402/403).

    Every row of the provider would hit it alike, so it is the account's problem, not the row's: the row
    is deferred with this message (which names the environment variable) and runs once it is fixed; no
    failed call is counted against the row.
    """


class RequestShapeError(PermanentProviderError):
    """The server refused the request's shape, not its content: a parameter it does not know or support
    (``response_format`` json_schema on llama.cpp, ``max_tokens`` on OpenAI's reasoning models).

    Recognised from the body, whatever the status code (llama-cpp-python answers HTTP 500). Never a sign
    of an outage: it does not count toward the circuit breaker. ``field`` names the refused parameter, so
    the provider can send what the server supports instead.
    """

    def __init__(self, message: str, *, field: str, status_code: int | None = None) -> None:
        super().__init__(message, status_code=status_code)
        self.field = field


class CircuitOpenError(ProviderError):
    """The provider's circuit breaker is open: it failed too many calls in a row, so no call is sent.

    Neither retryable within the call nor permanent for the row: the provider is down, out of quota or
    refusing the key, and hammering it would only burn each row's failure budget. The row should wait
    (``retry_after_s`` says how long the cool-down still lasts); the message quotes the last failure.
    """


class BatchUnsupportedError(PermanentProviderError):
    """The server has no Batch API (many OpenAI-compatible local servers): the rows may run live."""


class InvalidAnswer(SheetbotError):
    """The model's answer does not fit the workflow's ``outputs:``; ``problems`` has one line per field.

    Not a ProviderError: the call worked and was paid for, so the row gets one repair try, not a retry."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


class IntakeError(SheetbotError):
    """A `POST /tasks` the intake API refuses (sheetbot/morning/intake.py); ``status`` is the HTTP answer:
    422 (a field to fix), 409 (an Idempotency-Key reused with another body), 503 (the board cannot take rows)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class LeadershipLostError(StateUnavailableError):
    """This `serve` no longer holds the board's leader lock in PostgreSQL (sheetbot.service.leader): another
    process may be working the board, so this one writes nothing more and stops (sheetbot.state.fence)."""

    def __init__(self, schema: str) -> None:
        self.schema = schema
        super().__init__(
            "fenced",
            f"this sheetbot lost the leadership of the board in schema {schema} (its lock connection to PostgreSQL "
            "ended), so a standby may be working it now",
            "nothing to fix by hand: serve stops; a supervisor starts it again as a standby",
            again="check the database connection",
        )
