"""The weekly review (issue 14 item 5): a week of nights under `serve` on a fake clock, then what a person reads."""

from __future__ import annotations

import json
import re
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import date, timedelta
from itertools import count
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
import yaml
from boards_under_test import TEAM_HEADER, Night, airtable_board
from fake_airtable import AirtablePerson
from fakellm import FakeLLM
from harness import Shop, at

from sheetbot.cli.check import run_check
from sheetbot.cli.main import main
from sheetbot.cli.weekly import week_lines
from sheetbot.config.load import load_config
from sheetbot.config.weekly import WeeklyConfig
from sheetbot.morning.weekly import WeeklyReport, data, weekly_message
from sheetbot.notify.base import MemoryNotifier, Message
from sheetbot.notify.slack import slack_payload
from sheetbot.service.serve import Server

WEEK = ["2026-11-23", "2026-11-24", "2026-11-25", "2026-11-26", "2026-11-27", "2026-11-28", "2026-11-29"]
WEEKLY = {
    "day": "monday",
    "at": "09:30",
    "targets": {
        "success_rate": 0.9,
        "p95_latency_s": {"P0": 1, "P2": 60},
        "recover_h": 24,
        "cost_per_task_usd": 0.01,
    },
}


def two_seconds_a_call() -> SimpleNamespace:
    """The model's clock as the OpenAI provider reads it: every call takes exactly 2 s (one call at a time)."""
    ticks = count(step=2.0)
    return SimpleNamespace(monotonic=lambda: float(next(ticks)))


def make_server(shop: Shop, notifier: MemoryNotifier) -> Server:
    return Server(
        config=shop.config,
        open_context=shop.context,
        clock=shop.clock,
        sleep=lambda s: shop.clock.advance(seconds=s),
        notifier=notifier,
        max_sleep_s=86_400,
    )


@dataclass
class Week:
    shop: Shop
    notes: MemoryNotifier
    server: Server


def live_a_week(folder: Path) -> Week:
    """Monday 2026-11-23 to Monday 2026-11-30 10:00 under serve: two listing rows a night (one P0 on Monday);
    Wednesday's two rows are refused (HTTP 401, deferred: an alert), Thursday's first row is rejected (HTTP 400,
    failed); odd days go back for rework; Tuesday the blog workflow is paused by the cost escalation, and
    Thursday it is resumed and the listing guidelines edited."""
    shop = Shop(folder, concurrency=1)
    data = yaml.safe_load(shop.config_path.read_text(encoding="utf-8"))
    data["weekly"] = WEEKLY
    data["schedule"] = {"harvest_every_min": 0}
    data["escalation"] = {"cost_per_task": {"over_usd": 0.000001}, "critical": ["listing"]}
    shop.config_path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    shop.config = load_config(shop.config_path)
    notes = MemoryNotifier()
    shop.clock.set(at("2026-11-23T10:00"))
    server = make_server(shop, notes)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("sheetbot.providers.openai_chat.time", two_seconds_a_call())
        for index, day in enumerate(WEEK):
            for n in range(2):
                shop.add(type="listing", input=f"{day} mug {n}", brand="Acme", priority="P0" if index + n == 0 else "")
            if day == "2026-11-25":
                shop.fake.fail_next(401)
            if day == "2026-11-26":
                shop.fake.fail_next(400)
                with shop.state() as state:
                    state.resume("blog")
                    state.audit("resume", now=shop.clock.now(), detail={"workflow": "blog"})
                listing = shop.config.workflows["listing"].model_copy(update={"guidelines": ["Keep it short"]})
                shop.config = shop.config.model_copy(
                    update={"workflows": {**shop.config.workflows, "listing": listing}}
                )
            morning = (date.fromisoformat(day) + timedelta(days=1)).isoformat()
            server.loop(until=at(f"{morning}T09:15"))
            waiting = [row for row in shop.rows() if row["status"] == "review"]
            for place, row in enumerate(waiting):
                if index % 2:
                    shop.set(row["id"], review="rework", notes="Mention the size" if place else "Shorter  please")
                else:
                    shop.set(row["id"], review="approve")
            server.loop(until=at(f"{morning}T10:00"))
    return Week(shop, notes, server)


@pytest.fixture(scope="module")
def week(tmp_path_factory: pytest.TempPathFactory) -> Week:
    return live_a_week(tmp_path_factory.mktemp("week"))


def report(shop: Shop, capsys: pytest.CaptureFixture[str], *args: str) -> str:
    capsys.readouterr()
    assert main(["report", "--config", str(shop.config_path), *args]) == 0
    return capsys.readouterr().out


def test_report_week_shows_the_figures_a_user_reads(week: Week, capsys: pytest.CaptureFixture[str]) -> None:
    text = report(week.shop, capsys, "--week", "2026-W48")
    assert text.startswith("sheetbot weekly review 2026-W48: nights 2026-11-23 – 2026-11-29")
    assert all(len(line) <= 100 for line in text.splitlines())
    lines = [line.strip() for line in text.splitlines()]
    # done 2+2+0+5+2+7+2 = 20 (reworks run again), Wednesday's 2 deferred (refused key), Thursday's 1 failed
    assert "✘ success rate       87.0% (20/23)                      target ≥ 90.0%" in lines
    assert "✘ p95 latency P0     2.0 s                              target ≤ 1 s" in lines
    assert "✔ p95 latency P2     2.0 s                              target ≤ 60 s" in lines
    # the refused key alerted after Wednesday's run; Thursday's run failed a row; Friday's was clean
    assert "✘ time to recover    48.0 h worst of 2                  target ≤ 24 h" in lines
    assert "listing after night_not_drained (night 2026-11-25): recovered in 48.0 h" in lines
    assert "listing after completion_drift (night 2026-11-26): recovered in 16.0 h" in lines
    assert "✔ cost per task      $0.000044 ($0.0009 / 20)           target ≤ $0.01" in lines
    assert "2 deferred: openai refused the API key (HTTP 401): check the environmen…" in lines
    assert "1 failed: openai rejected the request for model gpt-4.1-mini (HTTP 40…" in lines
    assert lines[lines.index("Most frequent rework notes:") + 1 :][:2] == ["11× Mention the size", "3× Shorter please"]
    outliers = lines[lines.index("Outliers:") + 1 : lines.index("What changed:")]
    assert outliers[0].startswith("most expensive         $0.0001") and "(listing 11-2" in outliers[0]
    assert outliers[3].startswith("slowest                  2.0 s") and outliers[6].startswith("longest output")
    changes = lines[lines.index("What changed:") + 1 :]
    assert changes[:2] == ["Mon 11-23 blog: added", "Mon 11-23 listing: added"]
    assert changes[2].startswith("Tue 11-24 paused blog: listing cost $0.0000 per task on night 2026-11-23")
    assert changes[3:5] == ["Thu 11-26 resumed blog", "Thu 11-26 listing: guidelines edited"]


def test_report_week_json_has_the_same_figures(week: Week, capsys: pytest.CaptureFixture[str]) -> None:
    data = json.loads(report(week.shop, capsys, "--week", "2026-W48", "--json"))
    levels = {level["key"]: level for level in data["levels"]}
    assert data["week"] == "2026-W48" and data["nights"][0] == "2026-11-23"
    assert levels["success_rate"]["value"] == pytest.approx(20 / 23) and levels["success_rate"]["met"] is False
    assert levels["p95_latency_s.P0"]["value"] == 2.0 and levels["p95_latency_s.P2"]["met"] is True
    assert sorted(data["missed"]) == ["p95_latency_s.P0", "recover_h", "success_rate"]


def test_the_digest_goes_out_once_at_its_time_not_again_after_a_restart(week: Week) -> None:
    digests = [m for m in week.notes.sent if m.kind == "weekly_digest"]
    assert len(digests) == 1 and digests[0].title == "sheetbot weekly review 2026-W48"
    sent_at = [t for action, t in week.server.done if action == "weekly"]
    assert sent_at == [at("2026-11-30T09:30")]
    assert "✘ success rate" in digests[0].text and digests[0].severity == "warning"
    restarted = make_server(week.shop, week.notes)
    week.shop.clock.set(at("2026-11-30T11:00"))
    assert "weekly" not in restarted.tick()
    assert [m.kind for m in week.notes.sent].count("weekly_digest") == 1


def test_a_missed_target_is_one_alert_per_target_and_week(week: Week) -> None:
    missed = [m for m in week.notes.sent if m.kind == "weekly_target_missed"]
    assert sorted(str(m.facts["target"]) for m in missed) == ["p95_latency_s.P0", "recover_h", "success_rate"]
    assert any(m.text.startswith("success rate: 87.0% (20/23), target ≥ 90.0%") for m in missed)
    restarted = make_server(week.shop, week.notes)
    week.shop.clock.set(at("2026-11-30T12:00"))
    restarted.tick()
    assert len([m for m in week.notes.sent if m.kind == "weekly_target_missed"]) == 3


def weekly_kinds(notes: MemoryNotifier) -> list[str]:
    return [kind for kind in notes.kinds() if kind.startswith("weekly")]


class FirstDigestFails(MemoryNotifier):
    """A channel down when the first digest goes out: it is sent again at the next tick."""

    def send(self, message: Message) -> bool:
        if message.kind == "weekly_digest" and not getattr(self, "refused", False):
            self.refused = True
            return False
        return super().send(message)


def test_the_digest_waits_for_its_time_and_a_retry_alerts_no_target_twice(tmp_path: Path) -> None:
    shop = Shop(tmp_path / "shop")
    shop.config = shop.config.model_copy(update={"weekly": WeeklyConfig.model_validate(WEEKLY)})
    notes = FirstDigestFails()
    shop.clock.set(at("2026-11-23T09:31"))
    assert "weekly" not in make_server(shop, notes).tick()  # its time, but the week before ran nothing
    shop.add(type="listing", input="Mug", brand="Acme")
    shop.add(type="listing", input="Cup", brand="Acme")
    shop.fake.fail_next(400)
    shop.clock.set(at("2026-11-27T17:00"))
    shop.lock()
    shop.clock.set(at("2026-11-28T01:00"))
    shop.run()
    shop.clock.set(at("2026-11-30T09:29"))
    assert "weekly" not in make_server(shop, notes).tick()
    shop.clock.set(at("2026-11-30T09:30"))
    assert "weekly" in make_server(shop, notes).tick()  # delivery failed: tried again at the next tick
    assert weekly_kinds(notes) == ["weekly_target_missed"]  # 1 of 2 done: under 90%
    shop.clock.set(at("2026-11-30T09:31"))
    assert "weekly" in make_server(shop, notes).tick()
    assert weekly_kinds(notes) == ["weekly_target_missed", "weekly_digest"]
    shop.clock.set(at("2026-11-30T09:32"))
    assert "weekly" not in make_server(shop, notes).tick()


def test_the_review_on_airtable_masks_what_reviewers_wrote(tmp_path: Path) -> None:
    with ExitStack() as stack:
        under = airtable_board(tmp_path, stack, TEAM_HEADER)
        person = cast(AirtablePerson, under.person)
        night = Night(tmp_path, under.board)
        night.config = night.config.model_copy(update={"weekly": WeeklyConfig.model_validate(WEEKLY)})
        person.add(type="listing", input="Trail tent", brand="Kestrel")
        person.add(type="listing", input="Camp stove", brand="Kestrel")
        night.fake.fail_next(400)
        night.lock()
        night.clock.set(at("2026-11-24T01:00"))
        night.run()
        [row] = [r for r in person.rows() if r["status"] == "review"]
        person.set(row["id"], review="rework", notes="Ask ana.lopez@shop.test about the size")
        night.clock.set(at("2026-11-24T09:00"))
        night.harvest()
        text = week_lines(night.config, "2026-W48", as_json=False, clock=night.clock)
    lines = [line.strip() for line in text.splitlines()]
    assert "✘ success rate       50.0% (1/2)                        target ≥ 90.0%" in lines
    assert "1 failed: openai rejected the request for model gpt-4.1-mini (HTTP 40…" in lines
    notes = next(line for line in lines if line.startswith("1× "))
    assert "ana.lopez@shop.test" not in notes and "Ask" in notes


@pytest.mark.parametrize(
    ("weekly", "key"),
    [
        ({"day": "funday"}, "weekly.day"),
        ({"targets": {"success_rate": 1.5}}, "weekly.targets.success_rate"),
        ({"targets": {"p95_latency_s": {"P9": 60}}}, "weekly.targets.p95_latency_s.P9.[key]"),
        ({"targets": {"p95_latency_s": {"P0": 0}}}, "weekly.targets.p95_latency_s.P0"),
        ({"targets": {"cost_per_task_usd": "cheap"}}, "weekly.targets.cost_per_task_usd"),
        ({"targts": {}}, "weekly.targts"),
        ({"targets": {"recover_h": -1}}, "weekly.targets.recover_h"),
        ({"at": "25:00"}, "weekly.at"),
    ],
)
def test_a_bad_weekly_section_is_a_one_line_check_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], weekly: dict[str, Any], key: str
) -> None:
    shop = Shop(tmp_path / "shop")
    data = yaml.safe_load(shop.config_path.read_text(encoding="utf-8"))
    data["weekly"] = weekly
    shop.config_path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    capsys.readouterr()
    assert main(["check", "--config", str(shop.config_path)]) != 0
    problems = [line for line in capsys.readouterr().out.splitlines() if line.startswith("✗")]
    assert len(problems) == 1 and problems[0].startswith(f"✗ {key} ("), problems
    assert re.search(r"sheetbot\.yaml:\d+\): \S", problems[0]), problems  # the line, then what to fix


def test_a_bad_week_label_says_how_to_write_it(week: Week, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["report", "--config", str(week.shop.config_path), "--week", "2026-48"]) != 0
    assert "YYYY-Www, e.g. 2026-W47" in capsys.readouterr().err


def test_the_readme_example_passes_check(tmp_path: Path) -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("### The weekly review") :]
    block = section[section.index("```yaml\n") + 8 : section.index("```\n", section.index("```yaml\n") + 8)]
    shop = Shop(tmp_path / "shop")
    data = yaml.safe_load(shop.config_path.read_text(encoding="utf-8")) | yaml.safe_load(block)
    shop.config_path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    assert main(["init", "--config", str(shop.config_path)]) == 0
    assert run_check(shop.config_path, env=shop.env, http_client=FakeLLM().async_client()) == []
    assert load_config(shop.config_path).weekly == WeeklyConfig.model_validate(yaml.safe_load(block)["weekly"])


def test_what_reviewers_wrote_cannot_ping_or_link_in_slack() -> None:
    review = WeeklyReport(
        week="2026-W48", nights=WEEK, rework_notes=[(data("<!channel> see <https://x.test|here>"), 2)]
    )
    message = weekly_message(review, board="queue.xlsx")
    notes = dict(message.sections)["Most frequent rework notes"]
    assert notes == ["2× &lt;!channel&gt; see &lt;https://x.test|here&gt;"]
    assert "<!channel>" not in json.dumps(slack_payload(message))
    assert "2× <!channel> see <https://x.test|here>" in message.text  # e-mail and the terminal: as typed


def test_what_changed_follows_the_nights_not_the_calendar(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Night 2026-11-29 runs until Monday 05:00: a lock by hand at 02:30 that night (the first lock of a new
    workflow) belongs to that night's week, W48, not to W49 whose first night is the 30th."""
    shop = Shop(tmp_path)
    shop.add(type="listing", input="Trail tent", brand="Kestrel")
    shop.clock.set(at("2026-11-30T02:30"))  # Monday, inside night 2026-11-29's window
    assert shop.lock().night == "2026-11-29"
    w48 = report(shop, capsys, "--week", "2026-W48")
    assert "listing: added" in w48
    assert "listing: added" not in report(shop, capsys, "--week", "2026-W49")
