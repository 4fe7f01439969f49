"""How long personal-data masking takes per log line and per export row.

Masking runs on every log line and every audit-export cell, so its cost is paid everywhere. Three kinds
of text: typical log lines (timestamps, row ids, costs, no personal data), rows full of contacts, and
long model outputs. Prints microseconds per call; no network.
   python bench/masking.py [--repeat 2000]
"""

from __future__ import annotations

import argparse
import time

from sheetbot.safety.masking import mask_text

LOG_LINES = [
    "2026-11-29T21:39:01+00:00 INFO night: row 1234 done in 12.3s, 1834 tokens, cost=$0.004512",
    "2026-11-29T21:39:02+00:00 WARNING provider anthropic: 529 overloaded, retry 2 of 5 in 8s",
    "harvest: 200 rows written back to Sheet1 (batch msgbatch_01HXYZ, 2026-11-29 05:00)",
]
CONTACT_ROWS = [
    "Jane Doe <jane.doe@example.com>, +49 30 1234567, IBAN DE89 3704 0044 0532 0130 00",
    'call 555.123.4567 or "john doe"@example.com, card 4111 1111 1111 1111, order #100234',
]
OUTPUT = " ".join(["The merino shell (SKU AB-1234-XL) costs €129.00, ships 2026-12-01, 30-day returns."] * 20)


def _per_call_us(texts: list[str], repeat: int) -> float:
    start = time.perf_counter()
    for _ in range(repeat):
        for text in texts:
            mask_text(text)
    return (time.perf_counter() - start) / (repeat * len(texts)) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2000)
    args = parser.parse_args()
    for name, texts in (("log line", LOG_LINES), ("contact row", CONTACT_ROWS), ("long output", [OUTPUT])):
        print(f"{name:12} {_per_call_us(texts, args.repeat):8.1f} µs per call")


if __name__ == "__main__":
    main()
