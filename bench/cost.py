"""What a night costs live, in batch mode, and in batch mode with prompt caching.

For 200 rows of each ready workflow (sheetbot.cli.demo.recipes(), inputs of realistic length as in
bench/night.py), the estimate sheetbot's `check` and preview nights show (sheetbot.batch.estimate):
four characters a token, every answer using all of max_tokens. No network, no model call.
Caching counts only where the provider would cache (a shared system prompt over the model's minimum);
``--ignore-cache-minimum`` shows what caching would save if every shared system prompt were long enough.
   python bench/cost.py [--rows 200] [--ignore-cache-minimum]
"""

from __future__ import annotations

import argparse
import random

from sheetbot.batch.estimate import estimate
from sheetbot.cli.demo import demo_config
from sheetbot.config.models import Config

NAMED = ("brand", "keywords", "channel", "audience", "competitor", "url", "product", "context")
SAMPLE = "merino 200 g/m² waterproof shell 28 L daypack torso 40-51 cm reorder weeks of cover stock 140 avg 35 per "
SAMPLE += "week the zip broke after two hikes fits small returns within 30 days 700 fill-power down = +49 @team -5%"


def _text(rng: random.Random, low: int, high: int) -> str:
    words = rng.choices(SAMPLE.split(), k=rng.randint(low, high) // 4)
    return " ".join(words)[:high].strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200, help="rows of each workflow (default 200)")
    parser.add_argument("--ignore-cache-minimum", action="store_true", help="cache every shared system prompt")
    args = parser.parse_args()
    raw = demo_config()
    for wf in raw["workflows"].values():
        wf["mode"] = "batch"
    config = Config.model_validate(raw)
    rng = random.Random(7)
    header = (
        f"{'workflow':<22}{'rows':>5}{'live $':>10}{'batch $':>10}{'cached $':>10}{'batch/live':>12}{'cached/live':>13}"
    )
    print(header)
    print("-" * len(header))
    totals = [0.0, 0.0, 0.0]
    for name in sorted(config.workflows):
        rows = [
            {"type": name, "input": _text(rng, 200, 600), **{n: _text(rng, 5, 40) for n in NAMED}}
            for _ in range(args.rows)
        ]
        e = estimate(config, name, rows, min_cache_tokens=0 if args.ignore_cache_minimum else None)
        totals = [totals[0] + e.live_usd, totals[1] + e.batch_usd, totals[2] + e.cached_usd]
        print(
            f"{name:<22}{e.rows:>5}{e.live_usd:>10.4f}{e.batch_usd:>10.4f}{e.cached_usd:>10.4f}"
            f"{e.batch_usd / e.live_usd:>12.3f}{e.cached_usd / e.live_usd:>13.3f}"
        )
    live, batch, cached = totals
    print("-" * len(header))
    print(
        f"{'all':<22}{args.rows * len(config.workflows):>5}{live:>10.4f}{batch:>10.4f}{cached:>10.4f}"
        f"{batch / live:>12.3f}{cached / live:>13.3f}"
    )
    print(f"aim batch ≤ 0.5 × live: {'met' if batch <= 0.5 * live + 1e-9 else 'NOT met'}")
    cheaper = cached < batch - 1e-9
    why = "" if cheaper else " (no shared system prompt reaches the provider's minimum cacheable length)"
    print(f"aim caching lower still: {'met' if cheaper else 'NOT met'}{why}")


if __name__ == "__main__":
    main()
