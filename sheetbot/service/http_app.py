"""The one ASGI app on `serve`'s HTTP port (FastAPI, on uvicorn: sheetbot/service/http_server.py).

- ``GET /healthz``: the last lock, run and harvest with their outcome; 503 when the last night failed
  (sheetbot/service/health.py makes the body);
- ``GET /metrics``: Prometheus, from the state at each scrape (sheetbot/service/prometheus.py);
- with `api:` in the YAML, the intake API (issue 15, item 4): ``POST /tasks`` adds a `queued` row to the board,
  ``GET /tasks/{id}`` says where it is; ``/openapi.json`` describes both. Every /tasks request needs the bearer
  token (compared in constant time, never logged); what a request does is sheetbot/morning/intake.py.

:func:`build_app` takes what it serves (the health record, the metrics registry, the intake), so a `serve`
working many boards can hand it theirs. Answers never carry exception text: a failure is a fixed message,
its details go to the log.
"""

from __future__ import annotations

import hmac
import json
import logging
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Header, Request
from fastapi import Path as PathParam
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import CollectorRegistry
from pydantic import BaseModel, ConfigDict, Field

from sheetbot.config.models import Config
from sheetbot.errors import IntakeError
from sheetbot.morning import intake
from sheetbot.night.context import NightContext
from sheetbot.service.health import FAILED_BODY, METRICS_FAILED_BODY, HealthSource
from sheetbot.service.http_server import MAX_BODY_BYTES, BodyLimit, RunningServer, run_in_thread

log = logging.getLogger("sheetbot.service.http")

OpenContext = Callable[[], AbstractContextManager[NightContext]]
#: An extra column's value at most (the input has its own bound, `api.max_input_chars`).
MAX_FIELD_CHARS = 5_000
FAILED_TASKS = "the request failed inside sheetbot: see its log"


@dataclass
class Intake:
    """What the intake API needs: the board's YAML, a way to open its context, the token, and the guard `serve`
    holds while a phase has the board (a POST's append waits for it briefly; sheetbot/morning/intake.py)."""

    config: Config
    open_context: OpenContext
    token: str
    guard: threading.RLock = field(default_factory=threading.RLock)
    #: Whether this process works the board: a standby (issue 15, PostgreSQL) refuses POSTs with a 503, so a
    #: load balancer tries the leader; its appends would race the leader's writes to the board.
    leading: Callable[[], bool] = lambda: True


class TaskIn(BaseModel):
    """A task to add. Fields besides these are columns the workflows' templates read (e.g. ``brand``)."""

    model_config = ConfigDict(extra="allow", str_strip_whitespace=False)
    __pydantic_extra__: dict[str, Annotated[str, Field(max_length=MAX_FIELD_CHARS)]]

    type: str = Field(min_length=1, max_length=200, description="A workflow of the board's YAML.")
    input: str = Field(min_length=1, description="The text the workflow works on (at most api.max_input_chars).")
    priority: Literal["P0", "P1", "P2", "P3"] | None = None
    callback_url: str | None = Field(
        default=None, max_length=2000, description="Receives a signed POST when a person approves or edits the row."
    )


class Accepted(BaseModel):
    id: str
    status: Literal["queued"]


class TaskOut(BaseModel):
    id: str
    type: str
    status: str
    attempt: int | None
    output: str | None
    decision: str | None
    decided_at: str | None
    error: str | None
    cost_usd: float
    on_board: bool


class ErrorOut(BaseModel):
    detail: str


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut, "description": what}
    for code, what in (
        (401, "No or a wrong bearer token"),
        (413, "The body is larger than api.max_body_bytes"),
        (422, "A field to fix: the message says which and how"),
        (500, "Failed inside sheetbot"),
        (503, "This sheetbot is a standby, or the board cannot take rows: try the leader, or again later"),
    )
}


def build_app(health: HealthSource, *, metrics: CollectorRegistry | None = None, api: Intake | None = None) -> Any:
    """The app for serve's port. Without ``api`` only /healthz (and /metrics with ``metrics``) are served."""
    app = FastAPI(
        title="sheetbot intake API",
        version="1",
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json" if api is not None else None,
    )

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> Response:
        try:
            code, body = health.snapshot()
            data = json.dumps(body).encode()
        except Exception:  # details to the log; the client learns only that it failed
            log.exception("/healthz failed")
            code, data = 500, json.dumps(FAILED_BODY).encode()
        return Response(data, status_code=code, media_type="application/json")

    if metrics is not None:

        @app.get("/metrics", include_in_schema=False)
        def scrape(request: Request) -> Response:
            """The exposition format the scraper asks for (Accept), as prometheus_client negotiates it."""
            try:
                encode, content_type = choose_encoder(request.headers.get("accept", ""))
                code, data = 200, encode(metrics)
            except Exception:  # e.g. the state cannot be read: details to the log, never to the scraper
                log.exception("/metrics failed")
                code, content_type, data = 500, "text/plain; charset=utf-8", METRICS_FAILED_BODY
            return Response(data, status_code=code, headers={"content-type": content_type})

    if api is not None:
        _tasks(app, api)
        assert api.config.api is not None
        return BodyLimit(app, api.config.api.max_body_bytes)
    return BodyLimit(app, MAX_BODY_BYTES)


BEARER = HTTPBearer(auto_error=False, description="The value of the variable api.token_env names.")


class _Authorized:
    """The dependency every /tasks route has: the bearer token, compared in constant time (no prefix leaks)."""

    def __init__(self, token: str) -> None:
        self.expected = token.encode()

    def __call__(self, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)]) -> None:
        given = credentials.credentials.encode() if credentials is not None else b""
        if not hmac.compare_digest(given, self.expected):
            raise IntakeError(401, "send the intake API's token: Authorization: Bearer <token>")


def _tasks(app: FastAPI, api: Intake) -> None:
    authorized = _Authorized(api.token)

    @app.exception_handler(IntakeError)
    def refused(request: Request, exc: IntakeError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return JSONResponse({"detail": str(exc)}, status_code=exc.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        """One line naming the field and what is wrong with it, as the YAML's checks do."""
        first = jsonable_encoder(exc.errors())[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "the body"
        return JSONResponse({"detail": f"{where}: {first.get('msg', 'is not valid')}"}, status_code=422)

    @app.post(
        "/tasks",
        status_code=202,
        response_model=Accepted,
        dependencies=[Depends(authorized)],
        responses={**ERRORS, 409: {"model": ErrorOut, "description": "Idempotency-Key reused with another body"}},
    )
    def add_task(
        task: TaskIn,
        idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
    ) -> Accepted:
        """Add a `queued` row to the board; a retry with the same Idempotency-Key gets the same id."""
        if not api.leading():
            raise IntakeError(
                503, "this sheetbot is a standby: send tasks to the leader (its /healthz says role: leader)"
            )
        sub = intake.Submission(
            type=task.type,
            input=task.input,
            priority=task.priority,
            fields=dict(task.__pydantic_extra__ or {}),
            callback_url=task.callback_url,
        )
        with api.open_context() as ctx:
            record = intake.submit(ctx, sub, key=idempotency_key, guard=api.guard)
        log.info("intake: task %s queued (%s)", record.task_id, task.type)
        return Accepted(id=record.task_id, status="queued")

    @app.get(
        "/tasks/{task_id}",
        response_model=TaskOut,
        dependencies=[Depends(authorized)],
        responses={**ERRORS, 404: {"model": ErrorOut, "description": "No task of this API has this id"}},
    )
    def get_task(task_id: Annotated[str, PathParam(max_length=100)]) -> TaskOut:
        """The task's status, its output and the review's decision once there is one, its cost so far."""
        with api.open_context() as ctx:
            view = intake.task_view(ctx, task_id)
        if view is None:
            raise IntakeError(404, f"no task {task_id!r} was added through this API")
        return TaskOut(**view)


def start_http_server(
    health: HealthSource,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    metrics: CollectorRegistry | None = None,
    api: Intake | None = None,
    **bounds: Any,
) -> RunningServer:
    """Serve :func:`build_app` on ``host:port`` (0: a free port, ``server_address`` tells which) until
    ``shutdown()``; ``bounds`` are http_server.run_in_thread's (limit_concurrency, request_deadline_s, …)."""
    return run_in_thread(build_app(health, metrics=metrics, api=api), host=host, port=port, **bounds)
