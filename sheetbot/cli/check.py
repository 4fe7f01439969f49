"""`sheetbot check`: every problem with the YAML, the board and the credentials, at once.

Credentials are not only looked for in the environment: each provider is asked, for free, which models it
offers (the SDK's models list). That shows the server answers and takes the key; a model the vendor does
not list, and a batch workflow on a server without a Batch API, are reported too. Nothing is spent.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sheetbot.boards.base import Board
from sheetbot.boards.factory import open_board
from sheetbot.config.load import Inspection, inspect
from sheetbot.config.models import Config
from sheetbot.config.names import did_you_mean
from sheetbot.errors import (
    BoardError,
    BoardNotFound,
    ConfigError,
    Problem,
    ProviderError,
    SheetbotError,
    StateError,
)
from sheetbot.night.context import schema_for
from sheetbot.night.prompts import missing_columns, template_mistakes
from sheetbot.night.templates import placeholders
from sheetbot.safety import secrets

#: How long `check` waits for the state's PostgreSQL server to answer.
STATE_PROBE_S = 5.0

if TYPE_CHECKING:
    import httpx2

#: Seconds a provider has to answer the models list before `check` says it does not answer.
PROBE_TIMEOUT_S = 10.0


def run_check(
    path: str | Path, *, env: Mapping[str, str] | None = None, http_client: httpx2.AsyncClient | None = None
) -> list[str]:
    """One line per problem, each naming the key (and its line) and what to do; empty when all is well.
    ``http_client`` carries the providers' probes (tests pass one wired to a fake server)."""
    env = dict(os.environ) if env is None else env
    try:
        found = inspect(path)
    except ConfigError as exc:
        return [str(p) for p in exc.problems]
    problems = list(found.problems)
    if found.config is None:
        return [str(p) for p in problems]
    secrets.learn_config(found.config, env)
    problems += _template_problems(found)
    problems += _board_problems(found, path, env)
    problems += _credential_problems(found, env, http_client)
    problems += _notify_problems(found, env)
    problems += _action_secret_problems(found, env)
    problems += _api_problems(found, env)
    problems += _state_problems(found)
    return [str(p) for p in problems]


def _board_key(config: Config, exc: BoardError) -> tuple[str, str]:
    """The YAML key a board error is about, so `check` points at the line to fix."""
    text, board = str(exc), config.board
    if board.kind == "airtable":
        if board.token_env in text:
            return ("board", "token_env")
        return ("board", "sheet") if isinstance(exc, BoardNotFound) and board.sheet in text else ("board", "base")
    if board.kind == "google_sheets":
        if "credentials" in text or "GOOGLE_APPLICATION_CREDENTIALS" in text:
            return ("board", "credentials")
        return ("board", "sheet") if isinstance(exc, BoardNotFound) else ("board", "spreadsheet")
    # The workbook is there: a missing worksheet is board.sheet's fault, anything else the file's.
    return ("board", "sheet") if isinstance(exc, BoardNotFound) else ("board", "path")


def _template_problems(found: Inspection) -> list[Problem]:
    """`{{x}` and {{steps.NAME}} of no earlier step: the night would send the first as typed and fail on the second."""
    assert found.config is not None
    return [
        found.problem(("workflows", name, *key), f"workflow {name}: {message}")
        for name, wf in found.config.workflows.items()
        for key, message in template_mistakes(wf)
    ]


def _board_problems(found: Inspection, path: str | Path, env: Mapping[str, str]) -> list[Problem]:
    """The board exists and has the columns the workflows' templates use."""
    config = found.config
    assert config is not None
    init = f"run `sheetbot init --config {path}`"
    try:
        board = open_board(config, env=env)
        sheet = board.read()
    except ConfigError as exc:  # a board kind this version cannot open
        return [found.problem(("board", "kind"), p.message.removeprefix("board.kind: ")) for p in exc.problems]
    except BoardError as exc:
        workbook = config.resolve_path(config.board.path)
        if config.board.kind == "local" and not workbook.exists():
            message = f"the workbook {workbook} does not exist yet: {init} to create it"
            return [found.problem(("board", "path"), message)]
        return [found.problem(_board_key(config, exc), str(exc))]
    except SheetbotError as exc:
        return [found.problem(("board",), str(exc))]
    problems: list[Problem] = []
    columns = config.columns.logical()
    header = set(sheet.columns)
    used = set(schema_for(config).columns)  # `checklist` only when a workflow has one
    absent = [c for c in columns.values() if c not in header and c in used]
    if absent and config.board.kind == "airtable":
        problems += _airtable_fields(found, board, init)
    elif absent:
        problems.append(found.problem(("board",), f"the board has no column {', '.join(absent)}: {init} to add them"))
    known = sorted(header | set(columns))  # the board's headers, and sheetbot's names for its columns
    for name, wf in config.workflows.items():
        # A logical column that sheetbot adds itself (input, notes) is reported once, above.
        missing = [c for c in missing_columns(wf, header, columns) if columns.get(c) not in absent]
        for column in missing:
            key = next((k for k in ("system", "prompt") if column in placeholders(getattr(wf, k) or "")), "steps")
            problems.append(
                found.problem(
                    ("workflows", name, key),
                    f"workflow {name} uses {{{{{column}}}}}, but the board has no column {column!r}."
                    f"{did_you_mean(column, known)} Fix the template, or add the column ({init} adds it)",
                )
            )
    return problems


def _airtable_fields(found: Inspection, board: Board, init: str) -> list[Problem]:
    """Airtable fields are typed: say which to add and as what, for a token that may not add them itself."""
    from sheetbot.boards.airtable import AirtableBoard, missing_fields

    assert found.config is not None and isinstance(board, AirtableBoard)
    try:
        fields = missing_fields(board, schema_for(found.config, with_template_columns=True))
    except SheetbotError as exc:
        return [found.problem(("board",), f"cannot list the table's fields: {exc}")]
    wanted = "; ".join(f"{name} ({kind})" for name, kind in fields)
    return [
        found.problem(
            ("board", "sheet"),
            f"the table lacks fields: add {wanted} by hand, or {init} "
            "with a token that has the schema.bases:write scope",
        )
    ]


def _notify_problems(found: Inspection, env: Mapping[str, str]) -> list[Problem]:
    """A channel whose secret is missing would be skipped by `serve`: say so now, not at 9am."""
    from sheetbot.notify.factory import build_fanout

    assert found.config is not None
    _, problems = build_fanout(found.config.notify, env, warn=False)
    out = []
    for line in problems:
        where, _, message = line.partition(": ")
        key = tuple(where.split(".")) if where.startswith("notify.") and message else ("notify",)
        out.append(found.problem(key, message or line))
    return out


def _action_secret_problems(found: Inspection, env: Mapping[str, str]) -> list[Problem]:
    """An on_approve secret that cannot sign (unset, blank, a whsec_ that is not base64) would leave every
    approved row pending at the harvest: say so now."""
    from sheetbot.safety.signing import signing_key

    assert found.config is not None
    problems = []
    for name, wf in found.config.workflows.items():
        if wf.on_approve is None or wf.on_approve.secret_env is None:  # a `queue:` only signs nothing
            continue
        var = wf.on_approve.secret_env
        value = (env.get(var) or "").strip()
        try:
            if not value:
                raise ConfigError(f"the environment variable {var} is not set: export the webhook's secret")
            signing_key(value, name=var)
        except ConfigError as exc:
            problems.append(found.problem(("workflows", name, "on_approve", "secret_env"), exc.problems[0].message))
    return problems


def _state_problems(found: Inspection) -> list[Problem]:
    """A PostgreSQL state that cannot be reached is found now, not at the cutoff. Only a connection is made:
    the board's schema is created by the first phase that needs it. A SQLite file needs no probe."""
    from sheetbot.config.state_target import PostgresTarget
    from sheetbot.state.postgres import Connection

    assert found.config is not None
    target = found.config.state_target
    if not isinstance(target, PostgresTarget):
        return []
    try:
        Connection(target, busy_timeout_s=STATE_PROBE_S).close()
    except StateError as exc:
        return [found.problem(("state",), str(exc))]
    return []


def _api_problems(found: Inspection, env: Mapping[str, str]) -> list[Problem]:
    """`api:` whose token (or callback secret) is unset: `serve` would refuse every request, or sign nothing."""
    from sheetbot.safety.signing import signing_key

    assert found.config is not None
    api = found.config.api
    if api is None:
        return []
    problems = []
    if found.config.serve.health_port is None:
        message = "the intake API answers on serve's HTTP port: set serve.health_port (e.g. 8080) to serve it"
        problems.append(found.problem(("api",), message))
    if not (env.get(api.token_env) or "").strip():
        message = f"the environment variable {api.token_env} is not set: export the intake API's bearer token"
        problems.append(found.problem(("api", "token_env"), message))
    if api.callback_secret_env is not None:
        try:
            signing_key((env.get(api.callback_secret_env) or "").strip(), name=api.callback_secret_env)
        except ConfigError as exc:
            problems.append(found.problem(("api", "callback_secret_env"), exc.problems[0].message))
    return problems


def _credential_problems(
    found: Inspection, env: Mapping[str, str], http_client: httpx2.AsyncClient | None = None
) -> list[Problem]:
    """Every provider that a live or batch workflow uses has its API key, answers, and takes the key."""
    from sheetbot.providers.factory import make_provider  # the SDKs take a second to import: only when needed

    config = found.config
    assert config is not None
    users: dict[str, list[str]] = {}
    for name, wf in config.workflows.items():
        if wf.mode != "preview":
            users.setdefault(wf.provider, []).append(name)
    problems: list[Problem] = []
    for name in sorted(users):
        if name not in config.providers:
            continue  # reported with the YAML's problems
        try:
            provider = make_provider(name, config.providers[name], env=env, http_client=http_client, resilient=False)
        except ConfigError as exc:
            problems += [found.problem(("providers", name), p.message) for p in exc.problems]
            continue
        except SheetbotError as exc:
            reason = str(exc).removeprefix(f"provider {name}: ")
            problems.append(found.problem(("providers", name), f"{reason} (used by {', '.join(users[name])})"))
            continue
        problems += [
            found.problem(key, message)
            for key, message in asyncio.run(_probe(config, name, provider, close=http_client is None))
        ]
    return problems


async def _probe(config: Config, name: str, provider: Any, *, close: bool) -> list[tuple[tuple[str | int, ...], str]]:
    """Ask the provider what it offers, without spending: (YAML key, problem) for what will not work.
    ``close``: the client is ours (a caller's client is theirs to close)."""
    from sheetbot.providers.openai_chat import is_openai_api

    entry = config.providers[name]
    own_api = entry.base_url is None or (config.provider_kind(name) == "openai" and is_openai_api(entry.base_url))
    found: list[tuple[tuple[str | int, ...], str]] = []
    batch_api: bool | None = None
    try:
        try:
            models = await provider.list_models(timeout_s=PROBE_TIMEOUT_S)
        except ProviderError as exc:
            if exc.status_code != 404:  # 404: a server that answers but lists no models (some compatible ones)
                return [(("providers", name), f"the provider did not answer as it should: {exc}")]
            models = []
        for wf_name, wf in config.workflows.items():
            wanted = {wf.model, *(s.model for s in wf.steps if s.model)}
            if wf.provider != name or wf.mode == "preview":
                continue
            for model in sorted(wanted - set(models)):
                if own_api and models:  # a compatible server may serve any name: only the vendors' lists count
                    found.append(
                        (("workflows", wf_name, "model"), f"{name} does not offer model {model!r}: check its name")
                    )
            if wf.mode == "batch" and not own_api and config.provider_kind(name) == "openai":
                if batch_api is None:  # asked once: listing batches is free
                    batch_api = await provider.has_batch_api(timeout_s=PROBE_TIMEOUT_S)
                if not batch_api:
                    found.append(
                        (
                            ("workflows", wf_name, "mode"),
                            f"{name} at {entry.base_url} has no Batch API: the rows of {wf_name} would run live "
                            "at the full price; set mode: live",
                        )
                    )
    finally:
        if close:
            await provider.aclose()
    return found
