"""Calls to one spreadsheet: the key and the credentials, retries on 429/5xx/network errors, and
Google's answers mapped to sheetbot's errors (each message names the spreadsheet, the account and the fix).

`GoogleSheetsBoard` inherits `SheetsCalls`; the board sets the attributes declared here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import requests
from google.auth.exceptions import RefreshError, TransportError
from google.oauth2 import service_account
from gspread.exceptions import APIError, NoValidUrlKeyFound
from gspread.http_client import HTTPClient
from gspread.utils import absolute_range_name, extract_id_from_url

from sheetbot.errors import BoardError, BoardNotFound, BoardWriteError
from sheetbot.safety.retry import RetryCallState, exponential, retrying

T = TypeVar("T")
SCOPES = ("https://www.googleapis.com/auth/spreadsheets",)
_RETRY_LATER = "; outputs are kept and will be written on the next run"


def spreadsheet_key(spreadsheet: str) -> str:
    """The key from a spreadsheet's URL, or the key itself."""
    text = spreadsheet.strip()
    if "/" not in text:
        return text
    try:
        return extract_id_from_url(text)
    except NoValidUrlKeyFound:
        raise BoardError(
            f"board.spreadsheet {text!r} is not a Google Sheets URL: use the URL from the browser "
            "(https://docs.google.com/spreadsheets/d/<key>/edit) or just the key"
        ) from None


def load_credentials(path: Path) -> service_account.Credentials:
    """Service-account credentials from their JSON key file (no network: the token comes at the first call)."""
    try:
        # google-auth leaves this classmethod unannotated.
        credentials: service_account.Credentials = service_account.Credentials.from_service_account_file(  # type: ignore[no-untyped-call]
            str(path), scopes=SCOPES
        )
        return credentials
    except FileNotFoundError:
        raise BoardError(
            f"service-account file {path} not found: fix board.credentials in the YAML (relative to the YAML "
            "file), or set the environment variable GOOGLE_APPLICATION_CREDENTIALS to the key file's path"
        ) from None
    except (ValueError, KeyError, OSError) as err:
        raise BoardError(
            f"{path} is not a service-account key ({_one_line(err)}): download a JSON key for the service "
            "account from the Google Cloud console (IAM → Service accounts → Keys)"
        ) from None


class SheetsCalls:
    """The requests, retries and errors of `GoogleSheetsBoard` (which sets these attributes)."""

    key: str
    sheet: str
    account_email: str
    attempts: int
    _http: HTTPClient
    _sleep: Callable[[float], None]

    def describe(self) -> str:
        return f"Google Sheet {self.key} [{self.sheet}]"

    # -- requests, retries and errors --------------------------------------------------------
    def _range(self, cells: str | None = None) -> str:
        return absolute_range_name(self.sheet, cells)

    def _values(self, cells: str) -> list[list[str]]:
        answer = self._http.values_get(self.key, cells, params={"valueRenderOption": "FORMATTED_VALUE"})
        return [[str(v) for v in row] for row in answer.get("values", [])]

    def _free_sheet_id(self) -> int:
        meta = self._call(
            lambda: self._http.fetch_sheet_metadata(self.key, params={"fields": "sheets.properties.sheetId"})
        )
        return next_sheet_id(meta)

    def _call(
        self, fn: Callable[[], T], *, writing: bool = False, missing_sheet_ok: bool = False, refused_ok: bool = False
    ) -> T:
        """Run ``fn`` (its requests) with backoff on 429, 5xx and network errors; map what is left to our errors.

        ``missing_sheet_ok``: None when the range names a tab that is not there; ``refused_ok``: None when
        Google refuses the request's content (HTTP 400), for a caller that has another way to ask."""
        try:
            return retrying(tries=self.attempts, wait=_backoff, sleep=self._sleep, retry_on=_transient)(fn)
        except APIError as err:
            if (missing_sheet_ok and _bad_range(err)) or (refused_ok and err.response.status_code == 400):
                return None  # type: ignore[return-value]
            error = self._failure(err)
        except RefreshError as err:
            error = BoardError(
                f"Google refused the service account {self.account_email} ({_one_line(err)}): "
                "check that its key is current, or create a new key in the Google Cloud console"
            )
        except (requests.RequestException, TransportError) as err:
            error = BoardError(
                f"could not reach Google Sheets for {self.describe()} after {self.attempts} tries "
                f"({_one_line(err)}): check the network"
            )
        if writing and not isinstance(error, BoardWriteError):  # whatever stopped a write, the outputs wait
            error = BoardWriteError(f"{error}{_RETRY_LATER}")
        raise error from None

    def _failure(self, err: APIError) -> BoardError:
        status = err.response.status_code
        message = str(err.error.get("message", "")).strip()
        if status == 403 and ("has not been used" in message or "is disabled" in message):
            return BoardError(
                "the Google Sheets API is not enabled for the service account's project: enable it in the Google "
                "Cloud console (APIs & Services → Library → Google Sheets API), then retry"
            )
        if status == 403:
            return BoardNotFound(
                f"spreadsheet {self.key} is not shared with the service account {self.account_email}: open it in "
                f"Google Sheets, click Share and add {self.account_email} as an Editor"
            )
        if status == 404:
            return BoardNotFound(
                f"spreadsheet {self.key} was not found: check board.spreadsheet (the key or the URL), and that it "
                f"is shared with {self.account_email}"
            )
        if _bad_range(err):
            return self._missing_sheet()
        if status == 429:
            return BoardError(
                f"Google Sheets kept refusing {self.describe()} with HTTP 429 (quota: 60 requests a minute per "
                f"service account) after {self.attempts} tries: let other tools using this account slow down"
            )
        return BoardError(f"Google Sheets answered HTTP {status} for {self.describe()}: {message or 'no reason given'}")

    def _missing_sheet(self) -> BoardNotFound:
        meta = self._call(
            lambda: self._http.fetch_sheet_metadata(self.key, params={"fields": "sheets.properties.title"})
        )
        names = ", ".join(repr(s["properties"]["title"]) for s in meta.get("sheets", []))
        return BoardNotFound(
            f"spreadsheet {self.key} has no worksheet {self.sheet!r} (it has {names}): run `sheetbot init` to "
            "create it, or fix board.sheet in the YAML"
        )


def next_sheet_id(meta: Mapping[str, Any]) -> int:
    """An id no tab of the spreadsheet has (``meta``: a ``spreadsheets.get`` answer with the tabs' ids)."""
    return max((s["properties"]["sheetId"] for s in meta.get("sheets", [])), default=0) + 1


# -- errors -------------------------------------------------------------------------------------
def _transient(err: BaseException) -> bool:
    if isinstance(err, APIError):
        return err.response.status_code == 429 or err.response.status_code >= 500
    return isinstance(err, requests.ConnectionError | requests.Timeout | TransportError)


_exponential = exponential(first_s=1, cap_s=64, jitter_s=1)


def _backoff(state: RetryCallState) -> float:
    """Truncated exponential backoff with jitter, as Google advises for 429; longer if the answer says so."""
    wait = float(_exponential(state))
    err = state.outcome.exception() if state.outcome else None
    if isinstance(err, APIError):
        with contextlib.suppress(ValueError):  # Retry-After may also be an HTTP date: then ours stands
            wait = max(wait, float(err.response.headers.get("Retry-After", 0)))
    return wait


def _bad_range(err: APIError) -> bool:
    return err.response.status_code == 400 and "Unable to parse range" in str(err.error.get("message", ""))


def _one_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__
