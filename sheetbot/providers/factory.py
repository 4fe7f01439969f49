"""Build a provider from its YAML entry and an environment mapping.

The environment is passed in, never read from ``os.environ`` here: tests and ``sheetbot check`` hand
over exactly what they want, and API keys only ever travel from that mapping into the SDK client.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit

import httpx2

from sheetbot.config import ProviderConfig
from sheetbot.errors import ConfigError, PermanentProviderError, Problem
from sheetbot.providers.anthropic_messages import AnthropicProvider
from sheetbot.providers.base import Provider
from sheetbot.providers.openai_chat import OpenAIProvider

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


def make_provider(
    name: str,
    config: ProviderConfig,
    *,
    env: Mapping[str, str],
    http_client: httpx2.AsyncClient | None = None,
) -> Provider:
    """The provider for the YAML entry ``providers.<name>``; raises if its API key is not set."""
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
    var = config.api_key_env or DEFAULT_KEY_ENV[kind]
    api_key = (env.get(var) or "").strip()
    if not api_key:
        if kind == "openai" and is_local_url(config.base_url):
            api_key = LOCAL_PLACEHOLDER_KEY
        else:
            raise PermanentProviderError(f"provider {name}: set the environment variable {var} to your API key")
    cls = AnthropicProvider if kind == "anthropic" else OpenAIProvider
    return cls(
        api_key=api_key,
        base_url=config.base_url,
        max_retries=config.max_retries,
        http_client=http_client,
        label=name,
        api_key_env=var,
    )
