"""The checks on a config's raw data that pydantic cannot make, and pydantic's own errors said plainly.

They run on the data as YAML read it, wary of wrong types (pydantic reports those), so that `sheetbot
check` lists a secret pasted in the YAML next to a model without a price, whether or not the rest validates.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import UnionType
from typing import Annotated, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic_core import ErrorDetails

from sheetbot.config.example import example_config, example_workflows
from sheetbot.config.models import ColumnsConfig, Config
from sheetbot.config.names import closest, did_you_mean
from sheetbot.config.state_target import is_postgres, password_in_url
from sheetbot.config.step_gates import gate_problems
from sheetbot.config.yaml_file import KeyPath, Lines
from sheetbot.errors import Problem
from sheetbot.safety.secrets import url_with_login

#: Keys that must never hold a secret in the YAML, and the key to use instead.
_SECRET_KEYS = {
    "api_key": "api_key_env",
    "token": "token_env",
    "password": "password_env",
    "secret": "webhook_secret_env",
    "webhook_secret": "webhook_secret_env",
}

#: The keys that hold a time of day. Unquoted, YAML reads 17:00 as the number 1020 (base 60), which
#: pydantic would then take as 00:17:00: so a number here is refused instead of silently shifted.
_TIME_KEYS: tuple[KeyPath, ...] = (
    ("schedule", "cutoff"),
    ("schedule", "summary"),
    ("schedule", "window", "start"),
    ("schedule", "window", "end"),
)
_HH_MM = re.compile(r"^([01]?\d|2[0-3]):[0-5]\d$")
#: What a `*_env` key must hold: the name of a variable, never its value.
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PROVIDER_KINDS = ("anthropic", "openai")
#: A `{{name}}` placeholder, as sheetbot/night/templates.py reads it (the night sits above the config).
_PLACEHOLDER = re.compile(r"\{\{\s*([^{}]+?)\s*\}\}")


def secrets_in_yaml(data: object, path: KeyPath, lines: Lines) -> list[Problem]:
    """A key that holds a secret. The message never repeats the value: check output ends up in CI logs."""
    problems: list[Problem] = []
    if isinstance(data, dict):
        for key, value in data.items():
            child = (*path, str(key))
            if str(key) in _SECRET_KEYS and value not in (None, ""):
                problems.append(
                    lines.problem(
                        child,
                        "secrets do not belong in the YAML: remove this key, put the value in an environment "
                        f"variable and name the variable with `{_SECRET_KEYS[str(key)]}`",
                    )
                )
            else:
                problems += secrets_in_yaml(value, child, lines)
    elif isinstance(data, list):
        for index, item in enumerate(data):
            problems += secrets_in_yaml(item, (*path, index), lines)
    return problems


def logins_in_urls(data: object, path: KeyPath, lines: Lines) -> list[Problem]:
    """`https://user:password@host` in any value (base_url, webhooks): a credential written in the YAML."""
    if path == ("state",) and isinstance(data, str) and is_postgres(data):  # `user@` names the role: no secret
        if not password_in_url(data):
            return []
        message = (
            "a password in the state's PostgreSQL URL puts a credential in the YAML: remove it and set "
            "PGPASSWORD in the environment (or the whole URL as DATABASE_URL, with `state:` left out)"
        )
        return [lines.problem(path, message)]
    if isinstance(data, str):
        if url_with_login(data):
            message = (
                "a URL with `user:password@` puts a credential in the YAML: remove it and give the login "
                "through the key's environment variable (e.g. api_key_env)"
            )
            return [lines.problem(path, message)]
        return []
    problems: list[Problem] = []
    items = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list) else ()
    for key, value in items:
        problems += logins_in_urls(value, (*path, key if isinstance(key, int) else str(key)), lines)
    return problems


def env_names(data: object, path: KeyPath, lines: Lines) -> list[Problem]:
    """`api_key_env: sk-…` is the key itself pasted in the wrong place: refuse it without repeating it."""
    problems: list[Problem] = []
    if isinstance(data, dict):
        for key, value in data.items():
            child = (*path, str(key))
            if str(key).endswith("_env") and isinstance(value, str) and not _ENV_NAME.match(value):
                problems.append(
                    lines.problem(
                        child,
                        "must name an environment variable (letters, digits and _, e.g. ANTHROPIC_API_KEY), "
                        "not hold the secret itself: put the value in that variable",
                    )
                )
            else:
                problems += env_names(value, child, lines)
    elif isinstance(data, list):
        for index, item in enumerate(data):
            problems += env_names(item, (*path, index), lines)
    return problems


def unquoted_times(data: Mapping[str, object], lines: Lines) -> list[Problem]:
    """Times written without quotes: YAML turns 17:00 into 1020, which must not become 00:17."""
    problems: list[Problem] = []
    for key_path in _TIME_KEYS:
        value: object = data
        for key in key_path:
            value = value.get(key) if isinstance(value, dict) else None
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        text = lines.scalars.get(key_path, (str(value), None))[0]
        if _HH_MM.match(text):
            message = f'write the time in quotes, "{text}": without them YAML reads {text} as the number {value}'
        else:
            message = f'{text} is not a time: write it as "HH:MM" in quotes, e.g. "17:00"'
        problems.append(lines.problem(key_path, message))
    return problems


def _kind(value: object) -> str:
    if value is None:
        return "empty"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, str):
        return "text"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    return type(value).__name__


def allowed_keys(path: KeyPath, model: type[BaseModel] = Config) -> list[str]:
    """The keys the YAML may write at ``path``: the fields of the model found there (empty if none is).
    pydantic's extra_forbidden says a key is unknown but not which were meant; this finds the candidates."""
    annotation: object = model
    for part in path:
        annotation = _unwrap(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            field = annotation.model_fields.get(str(part))
            if field is None:
                return []
            annotation = field.annotation
        elif get_origin(annotation) in (dict, list):  # a name (workflows.blog) or an index (steps[0])
            annotation = get_args(annotation)[-1]
        else:
            return []
    annotation = _unwrap(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return list(annotation.model_fields)
    return []


def _unwrap(annotation: object) -> object:
    """X from `X | None` and from Annotated[X, …]."""
    while True:
        if get_origin(annotation) is Annotated:
            annotation = get_args(annotation)[0]
            continue
        if get_origin(annotation) in (Union, UnionType):
            models = [a for a in get_args(annotation) if a is not type(None)]
            if len(models) == 1:
                annotation = models[0]
                continue
        return annotation


def problem_from_pydantic(err: ErrorDetails, lines: Lines) -> Problem:
    loc: KeyPath = tuple(err["loc"])
    kind = err["type"]
    value = err.get("input")
    ctx = err.get("ctx") or {}
    if kind == "extra_forbidden":
        near = closest(str(loc[-1]), allowed_keys(loc[:-1]))
        hint = f"did you mean `{near}`?" if near else "check its spelling"
        message = f"unknown key {loc[-1]!r}: {hint} (see {example_config()} for the keys)"
        if any(str(p) in _SECRET_KEYS for p in loc):
            message = "secrets do not belong in the YAML: name an environment variable instead"
    elif kind == "missing":
        message = f"this key is required: add `{loc[-1]}:`"
    elif kind == "literal_error":
        message = f"{value!r} is not allowed here; use one of {ctx.get('expected', '')}"
    elif kind in {"time_parsing", "time_type"}:
        message = f'{value!r} is not a time: write it as "HH:MM" in quotes, e.g. "17:00"'
    elif kind in {"dict_type", "model_type", "model_attributes_type"}:
        message = f"must be a mapping of `key: value` lines, not {_kind(value)}"
    elif kind == "string_type":
        message = f"must be text, not {_kind(value)}"
        if isinstance(value, bool):
            message += ': YAML reads yes/no/on/off as true/false, so put the word in quotes, e.g. "yes"'
    elif kind == "list_type":
        message = f"must be a list, e.g. [a, b], not {_kind(value)}"
    elif kind in {"greater_than", "greater_than_equal", "less_than", "less_than_equal"}:
        message = str(err["msg"]).replace("Input should be", "must be") + f", not {value!r}"
    else:
        message = str(err["msg"]).removeprefix("Value error, ").replace("Input should be", "must be")
    return lines.problem(loc, message)


def cross_checks(data: Mapping[str, object], lines: Lines) -> list[Problem]:
    """What pydantic cannot see: keys that must agree with each other.

    Works on the raw data, wary of wrong types (pydantic reports those), so that these problems are
    listed even when some other key does not validate.
    """
    problems: list[Problem] = []

    def add(path: KeyPath, message: str) -> None:
        problems.append(lines.problem(path, message))

    def mapping(value: object) -> dict[object, object]:
        return value if isinstance(value, dict) else {}

    providers = data.get("providers")
    prices = data.get("prices")
    workflows = data.get("workflows")
    for name, provider in mapping(providers).items():
        kind = mapping(provider).get("kind")
        if kind is None and name not in _PROVIDER_KINDS:
            add(
                ("providers", str(name)),
                f"unknown provider {name!r}: name it anthropic or openai, or add "
                "`kind: openai` for an OpenAI-compatible server",
            )
    if workflows is None or workflows == {}:
        add(("workflows",), f"no workflows are defined: add one under `workflows:` (see {example_workflows()})")
    # A `providers:` or `prices:` of the wrong type is pydantic's to report, not a missing entry.
    providers_ok = providers is None or isinstance(providers, dict)
    prices_ok = prices is None or isinstance(prices, dict)
    for name, wf in mapping(workflows).items():
        where: KeyPath = ("workflows", str(name))
        wf = mapping(wf)
        provider, model = wf.get("provider"), wf.get("model")
        if isinstance(provider, str) and providers_ok and provider not in mapping(providers):
            known = ", ".join(sorted(map(str, mapping(providers)))) or "none"
            add(
                (*where, "provider"),
                f"provider {provider!r} is not configured under `providers:` (configured: {known}): "
                f"add `{provider}: {{api_key_env: …}}` there or use a configured one",
            )
        if wf.get("urgent") is not None and wf.get("mode") == "batch":
            add(
                (*where, "urgent"),
                "an urgent lane runs rows live during the day, but this workflow is `mode: batch`: "
                "remove `urgent:` or set `mode: live`",
            )
        models: list[tuple[KeyPath, object]] = [((*where, "model"), model)]
        steps = wf.get("steps")
        if isinstance(steps, list):  # a step may use a model of its own
            models += [((*where, "steps", i, "model"), mapping(step).get("model")) for i, step in enumerate(steps)]
        fallback = wf.get("fallback")
        if isinstance(fallback, dict):  # graceful degradation (issue 14): a model of its own, maybe a provider
            problems += fallback_checks(where, wf, fallback, mapping(providers) if providers_ok else None, lines)
            models.append(((*where, "fallback", "model"), fallback.get("model")))
        for key_path, name_ in models:
            if isinstance(name_, str) and prices_ok and name_ not in mapping(prices):
                add(
                    key_path,
                    f"model {name_!r} has no price: add `prices: {{{name_}: "
                    "{input: …, output: …}}` in dollars per million tokens (0 for a local model)",
                )
        problems.extend(self_check_problems(wf, where, mapping(providers), mapping(prices), lines))
    problems += gate_problems(mapping(workflows), lines)
    problems += chain_problems(mapping(workflows), lines)
    board = mapping(data.get("board"))
    if board.get("kind") == "google_sheets" and not board.get("spreadsheet"):
        add(("board", "spreadsheet"), "google_sheets needs `spreadsheet:` (the sheet's key or URL)")
    if board.get("kind") == "airtable" and not board.get("base"):
        add(("board", "base"), "airtable needs `base:` (the base id, appXXXXXXXXXXXXXX)")
    columns = mapping(board.get("columns"))
    headers = [str(columns.get(name, default)) for name, default in ColumnsConfig().logical().items()]
    dupes = sorted({h for h in headers if headers.count(h) > 1})
    if dupes:
        add(("board", "columns"), f"two columns share the header {dupes[0]!r}: give each its own")
    return problems


def self_check_problems(
    wf: Mapping[object, object],
    where: KeyPath,
    providers: Mapping[object, object],
    prices: Mapping[object, object],
    lines: Lines,
) -> list[Problem]:
    """`self_check:` (issue 13, item 4) grades against the checklist, with a priced model on a known provider."""
    check = wf.get("self_check")
    if not isinstance(check, dict):
        return []  # absent, or the wrong type: pydantic reports that
    at: KeyPath = (*where, "self_check")
    problems = []
    checklist = wf.get("checklist")
    if not (isinstance(checklist, list) and any(str(item).strip() for item in checklist)):
        problems.append(
            lines.problem(at, "self_check grades outputs against the workflow's `checklist:`, which is empty: add one")
        )
    model, provider = check.get("model"), check.get("provider")
    if isinstance(model, str) and model not in prices:
        problems.append(
            lines.problem(
                (*at, "model"),
                f"self-check model {model!r} has no price: add `prices: {{{model}: {{input: …, output: …}}}}` "
                "in dollars per million tokens, so its cost is counted and capped",
            )
        )
    if isinstance(provider, str) and provider not in providers:
        known = ", ".join(sorted(map(str, providers))) or "none"
        problems.append(
            lines.problem(
                (*at, "provider"),
                f"provider {provider!r} is not configured under `providers:` (configured: {known}): "
                "use a configured one, or leave it out to use the workflow's",
            )
        )
    return problems


def fallback_checks(
    where: KeyPath,
    wf: Mapping[object, object],
    fallback: Mapping[object, object],
    providers: Mapping[object, object] | None,
    lines: Lines,
) -> list[Problem]:
    """A `fallback:` that names an unknown provider, or is the primary itself (it would never help)."""
    problems: list[Problem] = []
    provider, model = fallback.get("provider"), fallback.get("model")
    if isinstance(provider, str) and providers is not None and provider not in providers:
        known = ", ".join(sorted(map(str, providers))) or "none"
        problems.append(
            lines.problem(
                (*where, "fallback", "provider"),
                f"fallback provider {provider!r} is not configured under `providers:` (configured: {known}): "
                "add it there or name a configured one",
            )
        )
    same_provider = provider is None or provider == wf.get("provider")
    if same_provider and isinstance(model, str) and model == wf.get("model"):
        problems.append(
            lines.problem(
                (*where, "fallback"),
                f"the fallback is the primary itself ({wf.get('provider')} {model}): name another model "
                "(e.g. a smaller one) or another provider, or remove `fallback:`",
            )
        )
    return problems


def _chain_entries(wf: object) -> list[tuple[KeyPath, str, object]]:
    """(key path of `workflow:`, the workflow named, the `input:` template) of each `on_approve.queue` entry."""
    action = wf.get("on_approve") if isinstance(wf, dict) else None
    queue = action.get("queue") if isinstance(action, dict) else None
    entries = list(enumerate(queue)) if isinstance(queue, list) else [(None, queue)]
    out: list[tuple[KeyPath, str, object]] = []
    for index, entry in entries:
        if isinstance(entry, dict) and isinstance(entry.get("workflow"), str):
            at: KeyPath = ("on_approve", "queue") if index is None else ("on_approve", "queue", index)
            out.append(((*at, "workflow"), entry["workflow"], entry.get("input")))
    return out


def chain_problems(workflows: Mapping[object, object], lines: Lines) -> list[Problem]:
    """Chained workflows (issue 14): each `queue:` names a workflow of this config, its input template uses
    only what an approved row has, and no chain comes back to where it started (each approval would add a
    row that, approved, adds another, forever)."""
    problems: list[Problem] = []
    names = [str(n) for n in workflows]
    edges: dict[str, list[tuple[KeyPath, str]]] = {}
    for name, wf in workflows.items():
        fields = wf.get("outputs") if isinstance(wf, dict) else None
        allowed = {"output", "input"} | {
            str(f["name"]) for f in (fields if isinstance(fields, list) else []) if isinstance(f, dict) and "name" in f
        }
        for key, target, template in _chain_entries(wf):
            where: KeyPath = ("workflows", str(name), *key)
            if target not in workflows:
                known = ", ".join(names)
                problems.append(
                    lines.problem(
                        where,
                        f"queue names workflow {target!r}, which is not defined.{did_you_mean(target, names)} "
                        f"Fix the name or add the workflow (defined: {known})",
                    )
                )
                continue
            edges.setdefault(str(name), []).append((where, target))
            for used in _PLACEHOLDER.findall(template) if isinstance(template, str) else []:
                if used not in allowed:
                    problems.append(
                        lines.problem(
                            (*where[:-1], "input"),
                            f"{{{{{used}}}}} is not something an approved row has: use {{{{output}}}}, {{{{input}}}}"
                            " or one of the workflow's `outputs:` fields",
                        )
                    )
    reported: set[frozenset[str]] = set()
    for start in edges:
        for where, path in _cycles_from(start, edges):
            if frozenset(path) not in reported:
                reported.add(frozenset(path))
                chain = " → ".join(path)
                problems.append(
                    lines.problem(
                        where,
                        f"the chain {chain} is a cycle: every approval would queue another row forever; "
                        "remove one of these `queue:` entries",
                    )
                )
    return problems


def _cycles_from(start: str, edges: Mapping[str, list[tuple[KeyPath, str]]]) -> list[tuple[KeyPath, list[str]]]:
    """Chains that lead from ``start`` back to it: (the key of the entry that closes it, the workflows)."""
    found: list[tuple[KeyPath, list[str]]] = []
    stack: list[tuple[str, list[str]]] = [(start, [start])]
    while stack:
        node, path = stack.pop()
        for where, target in edges.get(node, []):
            if target == start:
                found.append((where, [*path, start]))
            elif target not in path:
                stack.append((target, [*path, target]))
    return found
