"""Build a provider from its YAML entry and an environment mapping.

The environment is passed in, never read from ``os.environ`` here: tests and ``sheetbot check`` hand
over exactly what they want, and API keys only ever travel from that mapping into the SDK client.

The SDK client is built with ``max_retries=0``: retries belong to ResilientProvider, which honours
``retry-after``, counts every try for the circuit breaker and the rate limiter, and gives its slot back
while it waits. ``config.max_retries`` is that wrapper's budget, not the SDK's.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from sheetbot.config.models import ProviderConfig
from sheetbot.errors import ConfigError, PermanentProviderError, Problem
from sheetbot.providers.base import EventHook, Provider
from sheetbot.providers.ratelimit import RateLimiter
from sheetbot.providers.resilient import ResilientProvider
from sheetbot.safety import secrets

if TYPE_CHECKING:
    import httpx2

    from sheetbot.providers.shared import Account

DEFAULT_KEY_ENV = {"anthropic": "ANTHROPIC_API_KEY", "openai": "OPENAI_API_KEY"}
#: What an OpenAI-compatible server on this machine gets as a key: the SDK insists on one, Ollama ignores it.
LOCAL_PLACEHOLDER_KEY = "not-needed"
_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "0.0.0.0"})


def is_local_url(url: str | None) -> bool:
    """True for a server on this machine (Ollama, vLLM on localhost), which needs no real API key."""
    if not url:
        return False
    host = (urlsplit(url).hostname or "").lower()
    return host in _LOCAL_HOSTS or host.endswith(".localhost")


def api_key_for(name: str, config: ProviderConfig, *, env: Mapping[str, str]) -> tuple[str, str]:
    """(the environment variable, its key) for ``providers.<name>``. A server on this machine needs no key;
    any other provider without one is refused here, before a row is touched."""
    kind = config.kind or name
    var = config.api_key_env or DEFAULT_KEY_ENV.get(kind, "")
    api_key = env.get(var) or ""
    if api_key.strip():  # blank is "not set"; a key with a stray line break is refused below
        secrets.learn([api_key])
        bad = secrets.bad_secret(var, api_key)
        if bad:  # a pasted line break reaches the server, and comes back in its error text
            raise PermanentProviderError(f"provider {name}: {bad}")
        return var, api_key
    if kind == "openai" and is_local_url(config.base_url):
        return var, LOCAL_PLACEHOLDER_KEY
    raise PermanentProviderError(f"provider {name}: set the environment variable {var} to your API key")


def make_provider(
    name: str,
    config: ProviderConfig,
    *,
    env: Mapping[str, str],
    http_client: httpx2.AsyncClient | None = None,
    monotonic: Callable[[], float] | None = None,
    sleep: Callable[[float], Awaitable[None]] | None = None,
    on_event: EventHook | None = None,
    resilient: bool = True,
    account: Account | None = None,
) -> Provider:
    """The provider for the YAML entry ``providers.<name>``; raises if its API key is not set.

    By default it comes wrapped in a ResilientProvider with its own RateLimiter (one per provider entry:
    the limits are the account's). ``resilient=False`` gives the bare SDK provider, which never retries.
    ``monotonic``/``sleep`` are for tests (default: the real clock); ``on_event`` hears retries and
    breaker changes. ``account``: the rpm/tpm buckets and breaker this entry shares with other boards' entries
    of the same account (sheetbot/providers/shared.py), instead of its own.
    """
    kind = config.kind or name
    if kind not in DEFAULT_KEY_ENV:
        raise ConfigError(
            [
                Problem(
                    f"providers.{name}",
                    f"unknown provider kind {kind!r}: set kind: anthropic or kind: openai",
                )
            ]
        )
    var, api_key = api_key_for(name, config, env=env)
    # The SDKs are imported only when a provider is made: lock, harvest and preview nights never pay the
    # ~80 MB and the import time they cost.
    if kind == "anthropic":
        from sheetbot.providers.anthropic_messages import AnthropicProvider as cls
    else:
        from sheetbot.providers.openai_chat import OpenAIProvider as cls  # type: ignore[assignment]
    inner = cls(
        api_key=api_key,
        base_url=config.base_url,
        max_retries=0,
        http_client=http_client,
        label=name,
        api_key_env=var,
    )
    if not resilient:
        return inner
    monotonic = monotonic or time.monotonic
    sleep = sleep or asyncio.sleep
    limiter = RateLimiter(
        concurrency=config.concurrency,
        rpm=config.rpm,
        tpm=config.tpm,
        monotonic=monotonic,
        sleep=sleep,
        limits=None if account is None else account.limits,
    )
    return ResilientProvider(
        inner,
        name=name,
        config=config,
        limiter=limiter,
        monotonic=monotonic,
        sleep=sleep,
        on_event=on_event,
        # OpenAI counts max_tokens against the tpm limit when the request arrives, whatever the answer
        # then uses: giving unused tokens back would overrun its accounting. Anthropic counts real usage.
        refund_tokens=kind != "openai",
        breaker=None if account is None else account.breaker,
    )
