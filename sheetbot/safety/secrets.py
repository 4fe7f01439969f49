"""The one scrubber: secrets never leave their environment variable, whatever text carries them out.

Everything sheetbot writes outside the process (log lines, the board's `error` cell, the state's error
fields, `/healthz`, notifications, audit exports) passes through ``scrub``. It removes:

- the value of every environment variable the YAML names (every `*_env` key: API keys, tokens, webhook
  URLs, SMTP logins, signing secrets) and of any variable whose name says it is a secret, in the forms
  text carries them: as is, stripped, JSON-escaped, repr-escaped, URL-encoded, whitespace-collapsed,
  and cut off (a prefix of 8 or more characters that ends where the text was shortened);
- the credential parts of any URL: `user:password@` and every query value (`?token=…`);
- anything shaped like an `sk-…` API key or a `Bearer …` token.

Why one process-wide list (the house avoids module-level state): a secret is a fact of the process, like
its logging handlers. The State, the board writer, the notifiers, `/healthz` and the log filter are all
exits, and each must know every secret the moment any part of sheetbot reads one; threading a list
through each would leave the next new exit unscrubbed. Secrets are added where they are read from the
environment (``learn``, ``learn_config``) and never removed while the process lives (tests ``forget_all``).

A secret with whitespace or a control character (a copy-paste accident: a trailing newline) is refused
where it is read (``bad_secret``), so the escaped form never reaches a server that could echo it.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterable, Mapping
from typing import overload
from urllib.parse import quote, quote_plus, urlsplit

from pydantic import BaseModel

#: Shorter values are not masked as a whole: "1", "true" or "prod" would blank out ordinary words.
MIN_SECRET = 6
#: The shortest cut-off prefix of a secret that is still masked.
MIN_PREFIX = 8
#: Variables whose names say they hold a secret, whether or not the YAML names them.
_SECRET_NAME = re.compile(r"(_KEY|_TOKEN|_SECRET|PASSWORD|_WEBHOOK|_WEBHOOK_URL|_DSN)$", re.IGNORECASE)
_API_KEY = re.compile(r"\bsk-[A-Za-z0-9_\-]{6,}")
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=\-]{8,}")
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s\"'<>`]+")
_USERINFO = re.compile(r"(?<=://)[^/\s@?#\"'<>]+@")
_QUERY_VALUE = re.compile(r"([?&][^=&\s#\"'<>]+)=[^&\s#\"'<>]+")
#: What a secret may not hold: any whitespace or control character (C0, DEL, C1, and Unicode's Cc/Zs/…).
_BAD_CHAR = re.compile(r"[\s\x00-\x1f\x7f-\x9f\u200b-\u200d\u2028\u2029\ufeff]")
#: Characters a token is made of: a prefix followed by one of these was not cut, it is another value.
_TOKEN_CHAR = re.compile(r"[A-Za-z0-9_\-+/=%.~:]")

_guard = threading.Lock()
_secrets: set[str] = set()
_forms: list[tuple[str, int]] = []  # (form, shortest prefix masked), longest first


def bad_secret(name: str, value: str) -> str | None:
    """Why ``value`` (read from the variable ``name``) cannot be used, or None. Never repeats the value."""
    match = _BAD_CHAR.search(value)
    if match is None:
        return None
    where = "at the start" if match.start() == 0 else "at the end" if match.start() == len(value) - 1 else "inside"
    return (
        f"the environment variable {name} holds a line break, space or control character {where} "
        f"({match.group()!a}): copy the value again without it and export {name} anew"
    )


def _min_prefix(form: str) -> int:
    """A URL's scheme and host are not the secret: its path and query are. Cut forms must reach past the host."""
    if "://" in form:
        try:
            parts = urlsplit(form)
        except ValueError:
            return MIN_PREFIX
        head = f"{parts.scheme}://{parts.netloc}/"
        if form.startswith(head):
            return max(MIN_PREFIX, len(head) + 1)
    return MIN_PREFIX


def _forms_of(secret: str) -> set[str]:
    """The ways text carries a secret: escaped by JSON or repr, URL-encoded, stripped, spaces collapsed."""
    forms = {
        secret,
        secret.strip(),
        " ".join(secret.split()),
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        repr(secret)[1:-1],
        quote(secret, safe=""),
        quote(secret),
        quote_plus(secret),
    }
    forms.update(piece for piece in secret.split() if len(piece) >= MIN_PREFIX)
    return {f for f in forms if len(f) >= MIN_SECRET}


def learn(values: Iterable[str | None]) -> None:
    """Add secrets to the process's list: from now on every exit masks them."""
    with _guard:
        new = {v for v in values if v and len(v.strip()) >= MIN_SECRET} - _secrets
        if not new:
            return
        _secrets.update(new)
        forms = {f for s in _secrets for f in _forms_of(s)}
        _forms[:] = sorted(
            ((f, min(_min_prefix(f), len(f))) for f in forms), key=lambda item: len(item[0]), reverse=True
        )


def env_names(config: BaseModel | Mapping[str, object]) -> set[str]:
    """Every environment variable the validated config names: the value of every `*_env` key, at any depth.

    Any pydantic model (or its dump): this layer sits below sheetbot.config and does not know its Config."""
    data = config.model_dump() if isinstance(config, BaseModel) else config
    names: set[str] = set()

    def walk(node: object) -> None:
        if isinstance(node, Mapping):
            for key, value in node.items():
                if str(key).endswith("_env") and isinstance(value, str) and value:
                    names.add(value)
                else:
                    walk(value)
        elif isinstance(node, list | tuple):
            for item in node:
                walk(item)

    walk(data)
    return names


def learn_config(config: BaseModel | Mapping[str, object], env: Mapping[str, str]) -> None:
    """Learn the values of the variables the config names, and of any variable named like a secret."""
    names = env_names(config) | {"SHEETBOT_WEBHOOK_SECRET"}  # notify's default signing-secret variable
    learn(env.get(name) for name in names)
    learn_env(env)


def learn_env(env: Mapping[str, str]) -> None:
    """Learn the values of variables whose names say they are secrets (`*_KEY`, `*_TOKEN`, `*PASSWORD`…)."""
    learn(value for name, value in env.items() if _SECRET_NAME.search(name))


def forget_all() -> None:
    """Tests only: start from an empty list."""
    with _guard:
        _secrets.clear()
        _forms.clear()


def _cut_here(text: str, end: int) -> bool:
    """A prefix ending at ``end`` was cut (end of text, an ellipsis, a space or quote), not another value."""
    if end >= len(text) or text.startswith(("…", "..."), end):
        return True
    return not _TOKEN_CHAR.match(text[end])


def _mask_form(text: str, form: str, min_prefix: int) -> str:
    head = form[:min_prefix]
    out: list[str] = []
    i = 0
    while True:
        j = text.find(head, i)
        if j < 0:
            out.append(text[i:])
            return "".join(out)
        k = min_prefix
        while k < len(form) and j + k < len(text) and text[j + k] == form[k]:
            k += 1
        out.append(text[i:j])
        if k == len(form) or _cut_here(text, j + k):
            out.append("***")
        else:
            out.append(text[j : j + k])
        i = j + k


def scrub_urls(text: str) -> str:
    """Mask the credential parts of every URL: `user:password@` and the query's values."""
    text = _USERINFO.sub("***@", text)
    return _QUERY_VALUE.sub(r"\1=***", text)


def scrub(text: str) -> str:
    """``text`` without any secret sheetbot knows, any URL credential, or anything shaped like a key."""
    if not text:
        return text
    with _guard:
        forms = list(_forms)
    for form, min_prefix in forms:
        if form[:min_prefix] in text:
            text = _mask_form(text, form, min_prefix)
    text = scrub_urls(text)
    text = _BEARER.sub(lambda m: f"{m.group(1)} ***", text)
    return _API_KEY.sub("sk-***", text)


@overload
def scrub_any(value: str) -> str: ...
@overload
def scrub_any(value: Mapping[str, object]) -> dict[str, object]: ...
@overload
def scrub_any(value: object) -> object: ...
def scrub_any(value: object) -> object:
    """``scrub`` every text inside a JSON-like value (dicts, lists), keys and values alike."""
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, Mapping):
        return {scrub_any(k) if isinstance(k, str) else k: scrub_any(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub_any(v) for v in value]
    return value


def redact_urls(text: str) -> str:
    """Every URL cut to its scheme and host: an HTTP library's exception text names the whole URL it called,
    and a webhook's path is its credential."""

    def short(match: re.Match[str]) -> str:
        url = match.group(0)
        try:
            parts = urlsplit(url)
            host = parts.hostname or ""
            port = f":{parts.port}" if parts.port else ""
        except ValueError:
            return "(a URL)"
        rest = url[len(parts.scheme) + 3 :].split("/", 1)
        tail = "/…" if len(rest) > 1 and rest[1] else ""
        return f"{parts.scheme}://{host}{port}{tail}"

    return _URL.sub(short, text)


def describe_error(exc: BaseException) -> str:
    """An exception as one safe line for a message: its type and text, URLs cut to the host, secrets masked."""
    text = " ".join(str(exc).split())
    return scrub(f"{type(exc).__name__}: {redact_urls(text)}" if text else type(exc).__name__)


def url_with_login(value: str) -> bool:
    """True when ``value`` is a URL with `user:password@` (or `user@`) in it: a credential written in the YAML."""
    return any(_USERINFO.search(m.group(0)) for m in _URL.finditer(value))
