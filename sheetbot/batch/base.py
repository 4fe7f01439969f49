"""The batch seam: upload, create, find again, poll, read and cancel one job of many requests.

Orchestration (mode.py, send.py) sees only this interface; anthropic.py and openai.py speak the
vendors' Batch APIs. Requests travel under *wire ids*, ``<key>-<n>``: ``key`` names one create of ours
(send.py records it before the create), ``n`` the request's place in it. A wire id fits every vendor's
alphabet and length (Anthropic: ``^[a-zA-Z0-9_-]{1,64}$``) whatever the task id a person typed, and
results, which come back in any order, are matched through the mapping stored with the batch
(wire id -> ``task:attempt:step``), never by position.

``create`` is sent exactly once (no SDK retries): a retried create after a lost answer is a second
batch, paid twice. Whether a create whose answer was lost made a batch is asked with ``find``.

The protocol itself and its result types live in sheetbot/providers/batch_seam.py (the night's context
names them); they are imported here too, so batch mode and the clients find them where they always did.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, TypeVar

from sheetbot.errors import PermanentProviderError, ProviderError
from sheetbot.providers.base import CompletionRequest
from sheetbot.providers.batch_seam import BatchProvider as BatchProvider  # the seam's types, re-exported here
from sheetbot.providers.batch_seam import BatchResult as BatchResult
from sheetbot.providers.batch_seam import BatchStatus as BatchStatus
from sheetbot.providers.batch_seam import ItemError as ItemError
from sheetbot.providers.batch_seam import Sighting as Sighting
from sheetbot.providers.errors_map import ErrorContext, server_message, shorten, status_error
from sheetbot.providers.sdk import ClientT, SdkClient

if TYPE_CHECKING:
    import httpx2

T = TypeVar("T")


#: Batches a listing looks through before it gives up (newest first, 100 a page).
MAX_PAGES = 20
#: How far a vendor's clock and ours may disagree when a listing looks for a batch made since a moment.
CLOCK_MARGIN = timedelta(minutes=10)


def batch_status_error(
    status: int, body: object, headers: Mapping[str, str] | None, ctx: ErrorContext, fallback: str = ""
) -> ProviderError:
    """An HTTP error on a batch call. A refused request shape (400, 413, 422) names the vendor's own reason
    first: one bad request refuses the whole batch, and the live advice ("check model, max_tokens") would
    send the admin the wrong way. Everything else reads as for a live call."""
    if status in (400, 413, 422):
        said = ctx.scrub(shorten(server_message(body, fallback), 400)) or "no reason given"
        return PermanentProviderError(
            f'{ctx.label} refused the whole batch for model {ctx.model} (HTTP {status}): "{said}"', status_code=status
        )
    return status_error(status, body, headers, ctx, fallback)


class SdkBatches(SdkClient[ClientT]):
    """A batch client on a vendor SDK: the live provider's client construction, context and error ladder
    (sheetbot.providers.sdk), with what differs for batches. Each call is bounded by a client-wide timeout
    and at most ``max_retries`` SDK retries (creates get none); a timeout reads as a server that could not
    be reached; an HTTP error is worded by ``_status_error`` (a batch refused whole, by default)."""

    name: str

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str | None,
        http_client: httpx2.AsyncClient | None = None,
        label: str | None = None,
        api_key_env: str | None = None,
        max_retries: int = 2,
        timeout_s: float = 120.0,
    ) -> None:
        super().__init__(
            api_key=api_key,
            base_url=base_url,
            max_retries=max_retries,
            http_client=http_client,
            label=self.name if label is None else label,
            api_key_env=api_key_env,
            timeout_s=timeout_s,
        )
        self.time_limit_s = timeout_s * (max_retries + 1)

    def _status_error(
        self, status: int, body: object, headers: Mapping[str, str] | None, ctx: ErrorContext, fallback: str = ""
    ) -> ProviderError:
        return batch_status_error(status, body, headers, ctx, fallback)

    async def _call(self, call: Awaitable[T], model: str = "(batch)") -> T:
        """Await one SDK call; its errors come out as sheetbot's, naming ``model`` when the call has one."""
        return await self._guard(call, self._context(model), status=self._status_error)


def split(
    requests: Sequence[CompletionRequest],
    *,
    max_requests: int,
    max_bytes: int,
    size: Callable[[CompletionRequest], int],
) -> list[list[CompletionRequest]]:
    """Chunks that fit one batch each, in order. A single request over ``max_bytes`` still gets its own
    chunk: the provider then refuses it with a message, rather than sheetbot dropping it silently."""
    chunks: list[list[CompletionRequest]] = []
    current: list[CompletionRequest] = []
    used = 0
    for request in requests:
        n = size(request)
        if current and (len(current) >= max_requests or used + n > max_bytes):
            chunks.append(current)
            current, used = [], 0
        current.append(request)
        used += n
    if current:
        chunks.append(current)
    return chunks


def json_bytes(value: object) -> int:
    return len(json.dumps(value, ensure_ascii=False).encode("utf-8")) + 1


#: Every vendor's custom_id alphabet and length (Anthropic's is the strictest).
WIRE_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


def wire_ids(key: str, custom_ids: Sequence[str]) -> dict[str, str]:
    """``custom_id`` -> its wire id in the create named ``key``: short, unique in the batch, any vendor's
    alphabet. The mapping is stored with the batch; results are matched through it."""
    out = {custom_id: f"{key}-{n}" for n, custom_id in enumerate(custom_ids)}
    assert all(WIRE_ID.fullmatch(w) for w in out.values()), key
    return out


def key_of(wire: str) -> str:
    """The create a wire id was sent in."""
    return wire.rsplit("-", 1)[0]


def legacy_wire_id(custom_id: str) -> str:
    """The wire id of a batch sent before wire ids carried the key (``_`` + hex per byte outside
    ``[A-Za-z0-9-]``): such a batch may still be open in a state file; its results are matched by this."""
    return "".join(
        c if re.fullmatch(r"[A-Za-z0-9-]", c) else "".join(f"_{b:02x}" for b in c.encode()) for c in custom_id
    )
