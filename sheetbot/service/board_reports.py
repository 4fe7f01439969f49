"""What `/healthz` and `/metrics` report when one `serve` process works many boards (issue 15 item 3).

Only the payloads live here; the transport (sheetbot/service/health.py, or the ASGI app that replaces it) serves
them as it serves one board's: :class:`BoardsHealth` is a :class:`Health` whose snapshot has a section per board,
and :func:`boards_registry` is a registry whose every sample carries a ``board`` label.

/healthz, decided: the body is ``{"status", "failing": [board, ...], "boards": {name: <that board's one-board
body>}, "skipped": {file: why}}``; the code is 503 when any board's last night failed (did not finish or did
not drain), as for one board, and 200 otherwise. A board whose Sheet cannot be opened, or whose edited YAML is
not valid, shows it in its own section (its ``board`` or ``config`` record, ``ok: false``) without a 503: the
other boards are working, and a platform that restarts the process on a 503 would stop them for nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.samples import Sample

from sheetbot.safety.secrets import scrub_any
from sheetbot.service.health import Health

log = logging.getLogger("sheetbot.service.board_reports")


class BoardsHealth(Health):
    """Every board's Health, and the config files that were skipped at the start, as one /healthz."""

    def __init__(self, boards: Mapping[str, Health], skipped: Mapping[str, str] | None = None) -> None:
        super().__init__()
        self.boards = dict(boards)
        self.skipped = dict(skipped or {})

    def snapshot(self) -> tuple[int, dict[str, object]]:
        sections: dict[str, object] = {}
        failing = []
        for name, health in sorted(self.boards.items()):
            code, body = health.snapshot()
            sections[name] = body
            if code != 200:
                failing.append(name)
        body = {
            "status": "failing" if failing else "ok",
            "failing": failing,
            "boards": sections,
            "skipped": self.skipped,
        }
        return (503 if failing else 200), scrub_any(body)


class BoardsCollector(Collector):
    """Each board's collector, its samples relabelled with ``board``, families of one name merged into one."""

    def __init__(self, collectors: Mapping[str, Collector]) -> None:
        self.collectors = dict(collectors)

    def describe(self) -> Iterable[Metric]:
        return []  # as StateCollector: registering must not open any state

    def collect(self) -> Iterator[Metric]:
        """A board whose state cannot be read is left out of this scrape (``sheetbot_board_scrape_ok`` 0 for it,
        the reason in the log); the other boards' figures are served as usual."""
        merged: dict[str, Metric] = {}
        scraped = GaugeMetricFamily(
            "sheetbot_board_scrape_ok", "1 when this scrape read the board's state, else 0.", labels=["board"]
        )
        for board, collector in sorted(self.collectors.items()):
            try:
                families = list(collector.collect())
            except Exception:
                log.exception("/metrics: the state of board %s could not be read", board)
                scraped.add_metric([board], 0)
                continue
            scraped.add_metric([board], 1)
            for family in families:
                into = merged.get(family.name)
                if into is None:
                    into = merged[family.name] = Metric(family.name, family.documentation, family.type, family.unit)
                for s in family.samples:
                    labels = {"board": board, **s.labels}
                    into.samples.append(Sample(s.name, labels, s.value, s.timestamp, s.exemplar))
        yield from merged.values()
        yield scraped


def boards_registry(collectors: Mapping[str, Collector]) -> CollectorRegistry:
    """A registry of its own for the boards' collectors (sheetbot/service/prometheus.py makes one per board)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(BoardsCollector(collectors))
    return registry
