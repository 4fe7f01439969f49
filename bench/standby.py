"""A standby that takes over (issue 15): two real `sheetbot serve` processes on one board in PostgreSQL, the
leader killed with SIGKILL while two calls are in flight; prints the takeover timeline and the model requests
per row. The scenario is tests/standby_night.py, the one tests/test_standby.py asserts on.

    .venv/bin/python bench/standby.py                       # $SHEETBOT_TEST_POSTGRES, else $DATABASE_URL
    .venv/bin/python bench/standby.py --url postgresql://user:pw@127.0.0.1/db
    .venv/bin/python bench/standby.py --mode batch          # killed while its batch runs at the provider

Like every benchmark it exits 0 whatever it measures; without a server it says how to get one.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from standby_night import CONCURRENCY, ROWS, StandbyNight
from state_backends import HOW


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default=os.environ.get("SHEETBOT_TEST_POSTGRES") or os.environ.get("DATABASE_URL"))
    parser.add_argument("--mode", choices=("live", "batch"), default="live")
    args = parser.parse_args()
    if not args.url:
        print(HOW.format(why="no PostgreSQL URL (--url, SHEETBOT_TEST_POSTGRES or DATABASE_URL)"))
        return 0
    with tempfile.TemporaryDirectory() as folder:
        night = StandbyNight(Path(folder) / "shop", args.url, mode=args.mode)
        try:
            outcome = night.play()
        finally:
            night.close()
    per_row = Counter(outcome.requests.values())
    how = "one batch" if args.mode == "batch" else f"{CONCURRENCY} calls at once"
    print(f"{ROWS} rows, {how}, two `sheetbot serve` processes on one PostgreSQL board")
    for line in outcome.timeline.lines():
        print(line)
    print(
        "live model requests per row: "
        + (", ".join(f"{rows} row(s) x {count}" for count, rows in sorted(per_row.items())) or "none")
        + f" (total {sum(outcome.requests.values())}; rows in review: "
        + f"{sum(1 for s in outcome.statuses.values() if s == 'review')}/{ROWS})"
    )
    if args.mode == "batch":
        print(f"batches created at the provider: {len(outcome.batches)} ({', '.join(outcome.batches)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
