"""What every client built on a vendor SDK shares: the live providers (anthropic_messages, openai_chat) and the
batch clients (batch/anthropic, batch/openai) are four of them, two per vendor.

* **The SDK client, built one way** (`SdkClient.__init__`): the key and base_url it is given, the SDK's own
  retries as asked (0 for live calls, whose retries are ResilientProvider's; at most 2 for batch calls), a
  client-wide timeout only when one is given (live calls pass theirs per call), and an HTTP client that
  follows no redirect (safety.outbound.sdk_http_client) unless a test hands in its own transport. The key
  itself comes from the environment mapping through providers.factory.api_key_for, for live and batch alike.
* **The context of every message** (`_context`): the provider entry's label, the model, where the server
  lives, the key's variable, and the key to scrub from what the server says.
* **One error ladder** (`Vendor.translate`): the two SDKs raise the same family of errors (an HTTP status, a
  timeout, a connection that failed, a response that did not parse) under different classes. Each vendor
  module names its classes once, in a `Vendor`; its live and its batch client both climb that ladder, and
  errors_map words the result. Only the step for an HTTP status differs between callers (a batch refused
  whole, a schema refused, a server without a Batch API), so that step is passed in.
* **Closing**: ``aclose``, or ``async with``.

This module imports no SDK: each vendor's module does, and only when a provider of that kind is made.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, Self, TypeVar, cast

from sheetbot.errors import ProviderError
from sheetbot.providers.errors_map import (
    ErrorContext,
    connection_error,
    malformed_error,
    status_error,
    timeout_error,
)
from sheetbot.safety.outbound import sdk_http_client

if TYPE_CHECKING:
    import httpx2

T = TypeVar("T")

#: An HTTP error status as one of sheetbot's errors: (status, body, headers, context, the SDK's message).
StatusMapper = Callable[[int, object, Mapping[str, str] | None, ErrorContext, str], ProviderError]


class _Closable(Protocol):
    async def close(self) -> None: ...


ClientT = TypeVar("ClientT", bound=_Closable)


class _Headers(Protocol):
    @property
    def headers(self) -> Mapping[str, str]: ...


class _StatusFailure(Protocol):
    """What both SDKs' ``APIStatusError`` carry."""

    status_code: int
    body: object
    message: str

    @property
    def response(self) -> _Headers: ...


@dataclass(frozen=True)
class Vendor:
    """One SDK: how its client is made, and the classes of the errors it raises."""

    #: The SDK's async client class (``anthropic.AsyncAnthropic``, ``openai.AsyncOpenAI``).
    client: Callable[..., Any]
    #: The SDK's default HTTP client class, made to follow no redirect.
    default_http_client: Callable[..., Any]
    #: The server answered with an error status (4xx, 5xx).
    http_status: type[Exception]
    #: No answer in time. A subclass of ``connection`` in both SDKs.
    timeout: type[Exception]
    #: The server could not be reached, or the connection dropped.
    connection: type[Exception]
    #: A 2xx answer that is not what the API promises.
    malformed: tuple[type[Exception], ...]

    @property
    def errors(self) -> tuple[type[Exception], ...]:
        """Every error the ladder turns into a ProviderError; anything else is not the vendor's and passes."""
        return (self.http_status, self.connection, *self.malformed)

    def translate(
        self, exc: Exception, ctx: ErrorContext, *, timeout_s: float | None, status: StatusMapper = status_error
    ) -> ProviderError:
        """The ladder, most specific step first. ``timeout_s`` None: the caller set no timeout of its own to
        name (a batch call's is client-wide), and a timeout reads as a server that could not be reached."""
        if isinstance(exc, self.http_status):
            failed = cast(_StatusFailure, exc)
            return status(failed.status_code, failed.body, failed.response.headers, ctx, failed.message)
        if timeout_s is not None and isinstance(exc, self.timeout):
            return timeout_error(ctx, timeout_s)
        if isinstance(exc, self.connection):
            return connection_error(ctx, exc.__cause__)
        if isinstance(exc, self.malformed):
            return malformed_error(ctx, str(exc))
        raise TypeError(f"{type(exc).__name__} is not an error of this SDK") from exc


class SdkClient(Generic[ClientT]):
    """The base of a live provider or a batch client on one vendor's SDK (see the module docstring)."""

    #: The SDK this client speaks; set by each subclass.
    vendor: ClassVar[Vendor]

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str | None,
        max_retries: int,
        http_client: httpx2.AsyncClient | None = None,
        label: str,
        api_key_env: str | None = None,
        timeout_s: float | None = None,
    ) -> None:
        self.label = label
        self._api_key = api_key
        self._api_key_env = api_key_env
        self._base_url = base_url
        #: Where the server lives, for messages: the base_url, or the provider entry for the vendor's own API.
        self._where = base_url or label
        timeout: dict[str, float] = {} if timeout_s is None else {"timeout": timeout_s}
        self._client: ClientT = self.vendor.client(
            api_key=api_key,
            base_url=base_url,
            max_retries=max_retries,
            **timeout,
            http_client=sdk_http_client(self.vendor.default_http_client, http_client),
        )

    def _context(self, model: str) -> ErrorContext:
        return ErrorContext(
            label=self.label, model=model, where=self._where, api_key_env=self._api_key_env, secret=self._api_key
        )

    async def _guard(
        self,
        call: Awaitable[T],
        ctx: ErrorContext,
        *,
        timeout_s: float | None = None,
        status: StatusMapper = status_error,
    ) -> T:
        """Await ``call``; the SDK's errors come out as sheetbot's (Retryable/Permanent/…ProviderError)."""
        try:
            return await call
        except self.vendor.errors as exc:
            raise self.vendor.translate(exc, ctx, timeout_s=timeout_s, status=status) from None

    async def aclose(self) -> None:
        await self._client.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
