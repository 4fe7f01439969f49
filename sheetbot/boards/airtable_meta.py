"""The Airtable connection of `AirtableBoard`: the token, the base and the table (looked up through the
metadata API), and Airtable's answers mapped to sheetbot's errors (each naming the token's variable, the
scope, the base or the table, and the fix)."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import requests
from pyairtable import Api
from pyairtable.api.table import Table

from sheetbot.boards.airtable_http import Clock, _error_of, _Transport
from sheetbot.errors import BoardError, BoardNotFound
from sheetbot.safety import secrets

# Vendor JSON: a base's table and field metadata is Airtable's own JSON (its shape), kept as loose dicts.

FIELDS_TTL_S = 60.0  # how long write() trusts the field list it fetched last
SCOPES = "data.records:read, data.records:write and schema.bases:read (schema.bases:write for `sheetbot init`)"
_BASE_ID = re.compile(r"app[A-Za-z0-9]{14}")


class AirtableConnection:
    """The base and table lookups and error mapping of `AirtableBoard` (which sets these attributes)."""

    base: str
    table: str
    env: Mapping[str, str]
    token_env: str
    endpoint_url: str
    timeout_s: float
    attempts: int
    monotonic: Clock
    _transport: _Transport
    _api: Api | None
    _base_id: str | None
    _fields: tuple[float, dict[str, Any]] | None
    _seen: str

    def describe(self) -> str:
        return f"Airtable {self.base} [{self.table}]"

    # -- connection, base, table ----------------------------------------------------------
    def _client(self) -> Api:
        if self._api is None:
            token = self.env.get(self.token_env) or ""
            bad = secrets.bad_secret(self.token_env, token) if token.strip() else None
            if bad:
                raise BoardError(bad)
            if not token:
                raise BoardError(
                    f"{self.token_env} is not set: put an Airtable personal access token in it "
                    f"(airtable.com/create/tokens) with the scopes {SCOPES}"
                )
            timeout = (10, self.timeout_s)
            api = Api(token, timeout=timeout, retry_strategy=None, endpoint_url=self.endpoint_url)  # type: ignore[arg-type]
            api.session.mount("https://", self._transport)
            api.session.mount("http://", self._transport)
            self._api = api
        return self._api

    def _base(self) -> str:
        """The base id: given, or looked up by name once (needs schema.bases:read)."""
        if self._base_id is None:
            if _BASE_ID.fullmatch(self.base):
                self._base_id = self.base
            else:
                api = self._client()
                with self._calling("list the bases", "schema.bases:read"):
                    pages = list(api.iterate_requests("GET", api.build_url("meta/bases")))
                bases = [b for page in pages for b in page.get("bases", [])]
                named = [b for b in bases if b.get("name") == self.base] or [
                    b for b in bases if str(b.get("name", "")).casefold() == self.base.casefold()
                ]
                if not named:
                    seen = ", ".join(repr(b.get("name")) for b in bases) or "none"
                    raise BoardNotFound(
                        f"no Airtable base named {self.base!r} is shared with the token in {self.token_env} "
                        f"(it sees {seen}): fix board.base, or add the base to the token's access list"
                    )
                if len(named) > 1:
                    raise BoardError(
                        f"{len(named)} Airtable bases are named {self.base!r}: put the base id in board.base"
                    )
                self._base_id = str(named[0]["id"])
        return self._base_id

    def _table_meta(self, *, fresh: bool) -> dict[str, Any]:
        """The table's id, name and fields from the metadata API; write() reuses them for a minute."""
        found = self._find_table(fresh=fresh)
        if found is None:
            raise BoardNotFound(
                f"Airtable base {self.base} has no table {self.table!r} (it has {self._seen or 'none'}): "
                "run `sheetbot init` to create it, or fix board.sheet"
            )
        return found

    def _find_table(self, *, fresh: bool) -> dict[str, Any] | None:
        if not fresh and self._fields is not None and self.monotonic() - self._fields[0] < FIELDS_TTL_S:
            return self._fields[1]
        api, base = self._client(), self._base()
        with self._calling("read the table's fields", "schema.bases:read"):
            tables = api.request("GET", api.build_url("meta/bases", base, "tables")).get("tables", [])
        found = next((t for t in tables if self.table in (t.get("id"), t.get("name"))), None) or next(
            (t for t in tables if str(t.get("name", "")).casefold() == self.table.casefold()), None
        )
        self._fields = (self.monotonic(), found) if found is not None else None
        self._seen = ", ".join(repr(t.get("name")) for t in tables)
        return found

    def _records(self, meta: Mapping[str, Any]) -> Table:
        return self._client().table(self._base(), str(meta["id"]))  # by id: a renamed table keeps working

    # -- errors -----------------------------------------------------------------------------
    @contextmanager
    def _calling(self, doing: str, scope: str) -> Iterator[None]:
        try:
            yield
        except requests.RequestException as exc:
            raise self._error(exc, doing, scope) from None

    def _error(self, exc: requests.RequestException, doing: str, scope: str) -> BoardError:
        """One line that names the token's variable, the scope, the base or the table, and the fix."""
        response = exc.response if isinstance(exc, requests.HTTPError) else None
        if response is None:
            return BoardError(
                f"cannot reach Airtable at {self.endpoint_url} to {doing} ({type(exc).__name__}, "
                f"{self.attempts} tries): check the network and board.endpoint_url"
            )
        status, (kind, message) = response.status_code, _error_of(response)
        what, env = f"{status} {kind}".strip(), self.token_env
        if status == 404:
            return BoardNotFound(
                f"Airtable has no base {self.base!r} or no table {self.table!r} ({what}): fix the YAML"
            )
        fix = {
            401: f"Airtable rejected the token in {env} ({what}): put a valid personal access token in {env}",
            403: f"Airtable refused to {doing} in {self.describe()} ({what}): give the token in {env} the scope "
            f"{scope} and add the base to its access list (airtable.com/create/tokens)",
            429: f"Airtable kept answering {what} when sheetbot tried to {doing} ({self.attempts} tries): another "
            "app may be using the base's 5 requests a second, or the workspace's monthly API calls are spent",
        }
        if status >= 500:
            return BoardError(f"Airtable kept failing ({what}) when sheetbot tried to {doing} ({self.attempts} tries)")
        return BoardError(fix.get(status, f"Airtable refused to {doing} in {self.describe()} ({what}: {message})"))
