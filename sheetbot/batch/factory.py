"""Build the batch client for a provider entry; keys come from the environment mapping, as for live."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from sheetbot.batch.base import BatchProvider
from sheetbot.config.models import ProviderConfig
from sheetbot.providers.factory import api_key_for

if TYPE_CHECKING:
    import httpx2

#: Makes the batch client for the YAML's provider entry ``name``; injected so tests control the transport.
BatchFactory = Callable[[str], BatchProvider]


def make_batch_provider(
    name: str, config: ProviderConfig, *, env: Mapping[str, str], http_client: httpx2.AsyncClient | None = None
) -> BatchProvider:
    """The Batch API client for ``providers.<name>``; raises if its API key is not set."""
    kind = config.kind or name
    var, api_key = api_key_for(name, config, env=env)
    if kind == "anthropic":
        from sheetbot.batch.anthropic import AnthropicBatches as cls
    else:
        from sheetbot.batch.openai import OpenAIBatches as cls  # type: ignore[assignment]
    return cls(
        api_key=api_key,
        base_url=config.base_url,
        http_client=http_client,
        label=name,
        api_key_env=var,
        # Each call bounded (issue 10): the YAML's timeout, at most two retries (creates get none).
        max_retries=min(config.max_retries, 2),
        timeout_s=config.timeout_s,
    )
