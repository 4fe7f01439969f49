"""Preview mode: show what would be sent and what it might cost, without calling any model.

Admins use it to check templates and prices before spending money; ``sheetbot demo`` uses it to run a
whole night offline. It never touches the network.
"""

from __future__ import annotations

from sheetbot.providers.base import Completion, CompletionRequest, Usage
from sheetbot.providers.tokens import estimate_tokens


class PreviewProvider:
    """Answers every request with the rendered prompt, a token estimate and a worst-case cost."""

    name = "preview"

    def __init__(self, *, price_per_mtok_input: float, price_per_mtok_output: float) -> None:
        self.price_per_mtok_input = price_per_mtok_input
        self.price_per_mtok_output = price_per_mtok_output

    def estimate_usd(self, request: CompletionRequest) -> float:
        """Cost if the answer used all of max_tokens: an upper bound, which is what a budget needs."""
        input_tokens = estimate_tokens(request.system + request.prompt)
        return (input_tokens * self.price_per_mtok_input + request.max_tokens * self.price_per_mtok_output) / 1_000_000

    async def complete(self, request: CompletionRequest) -> Completion:
        input_tokens = estimate_tokens(request.system + request.prompt)
        usd = self.estimate_usd(request)
        text = "\n".join(
            [
                "PREVIEW — no model was called.",
                f"model: {request.model} · max_tokens: {request.max_tokens}",
                f"estimated input tokens: ≈{input_tokens} · estimated cost: ≈${usd:.4f}"
                " (if the answer used all max_tokens)",
                "--- system ---",
                request.system or "(none)",
                "--- prompt ---",
                request.prompt,
            ]
        )
        return Completion(text=text, usage=Usage(), model=request.model, preview=True, estimated_usd=usd)

    async def aclose(self) -> None:
        """Nothing to close: no client, no connections."""
