"""Many boards in one `serve` process (issue 15 item 3): each on its own schedule and thread, sharing what is
one account, one board's failure never stopping the others, /healthz and /metrics per board.

The boards are Shops (a real .xlsx and a real SQLite file each, the model faked at the SDK's transport). Each
board's thread has its own FakeClock (sleeping moves it), so threads never race for one fake clock; the shared
provider account is tested on one event loop with a virtual clock (sleepers wake in time order), where a
combined request rate can be measured exactly.
"""

from __future__ import annotations

import asyncio
import heapq
import json
import sqlite3
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Coroutine
from contextlib import AbstractContextManager
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx2
import pytest
import yaml
from fakellm import FakeLLM
from harness import Shop

from sheetbot.cli.main import build_parser, main
from sheetbot.clock import FakeClock
from sheetbot.config.load import load_config
from sheetbot.config.models import Config, ProviderConfig
from sheetbot.errors import AccountProviderError, BoardError, ConfigError
from sheetbot.night.context import NightContext
from sheetbot.night.windows import night_at
from sheetbot.notify.base import MemoryNotifier
from sheetbot.providers.base import CompletionRequest
from sheetbot.providers.factory import make_provider
from sheetbot.providers.ratelimit import AccountLimits
from sheetbot.providers.shared import Accounts
from sheetbot.service.board_reports import BoardsHealth, boards_registry
from sheetbot.service.health import Health
from sheetbot.service.http_app import start_http_server
from sheetbot.service.many import BoardServer, load_boards, serve_many, work_all
from sheetbot.service.prometheus import state_collector
from sheetbot.state import State

UTC = ZoneInfo("UTC")
START = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)  # 13:00 in Berlin, 07:00 in New York
UNTIL = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)  # 16:00 in Berlin: before its next cutoff
ENV = {"OPENAI_API_KEY": "sk-test-openai", "ANTHROPIC_API_KEY": "sk-ant-test"}


# -- boards ---------------------------------------------------------------------------------------------------
def shop(tmp_path: Path, name: str, *, timezone: str = "Europe/Berlin", rows: int = 2) -> Shop:
    board = Shop(tmp_path / name)
    if timezone != "Europe/Berlin":
        edit_yaml(board, timezone=timezone)
    board.clock = FakeClock(START)
    for n in range(rows):
        board.add(type="listing", input=f"{name} mug {n}", brand="Acme")
    return board


def edit_yaml(board: Shop, **top: Any) -> None:
    data = yaml.safe_load(board.config_path.read_text(encoding="utf-8"))
    data.update(top)
    board.config_path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    board.config = load_config(board.config_path)


def contexts(board: Shop) -> Callable[[Config], AbstractContextManager[NightContext]]:
    """The board's context with whatever config its server holds now (a reload replaces it)."""

    def open_with(config: Config) -> AbstractContextManager[NightContext]:
        board.config = config
        return board.context()

    return open_with


def server(board: Shop, name: str, cls: type[BoardServer] = BoardServer, **kwargs: Any) -> BoardServer:
    return cls(
        name=name,
        path=board.config_path,
        open_board_context=contexts(board),
        config=board.config,
        clock=board.clock,
        sleep=lambda s: board.clock.advance(seconds=s),
        notifier=kwargs.pop("notifier", None) or MemoryNotifier(),
        max_sleep_s=86_400,
        **kwargs,
    )


def when(srv: BoardServer, action: str) -> list[str]:
    return [t.astimezone(UTC).strftime("%d %H:%M") for a, t in srv.done if a == action]


def statuses(board: Shop) -> set[str]:
    with board.state() as state:
        return {str(t.status) for t in state.tasks().values()}


def work(*servers: BoardServer, until: datetime = UNTIL) -> None:
    for thread in work_all(servers, until=until):
        thread.join(timeout=60)
        assert not thread.is_alive()


# -- schedules ------------------------------------------------------------------------------------------------
def test_two_boards_in_different_timezones_lock_and_run_at_their_own_times(tmp_path: Path) -> None:
    berlin, new_york = shop(tmp_path, "berlin"), shop(tmp_path, "ny", timezone="America/New_York")
    a, b = server(berlin, "berlin"), server(new_york, "ny")
    work(a, b)
    assert when(a, "lock") == ["23 16:00"] and when(a, "run") == ["24 00:00"]  # 17:00 and 01:00 in Berlin
    assert when(b, "lock") == ["23 22:00"] and when(b, "run") == ["24 06:00"]  # 17:00 and 01:00 in New York
    assert when(a, "summary") == ["24 08:00"] and when(b, "summary") == ["24 14:00"]
    assert statuses(berlin) == statuses(new_york) == {"review"}


def test_a_long_night_on_one_board_does_not_delay_another(tmp_path: Path) -> None:
    release = threading.Event()

    class LongNight(BoardServer):
        def _do_run(self, ctx: NightContext, day: Any) -> str:
            if not release.wait(20):  # never released: the boards were worked one after the other
                release.set()
            return super()._do_run(ctx, day)

    slow_board, quick_board = shop(tmp_path, "slow"), shop(tmp_path, "quick")
    slow, quick = server(slow_board, "slow", LongNight), server(quick_board, "quick")
    threads = work_all([slow, quick], until=UNTIL)
    threads[1].join(timeout=30)
    try:
        assert not threads[1].is_alive(), "the quick board waited for the slow board's night"
        assert threads[0].is_alive()  # still inside its night
        assert when(quick, "lock") and when(quick, "run") and when(quick, "summary")
        assert statuses(quick_board) == {"review"} and statuses(slow_board) == {"locked"}
    finally:
        release.set()
        threads[0].join(timeout=60)
    assert statuses(slow_board) == {"review"}


def boards_locking_together(tmp_path: Path, slots: threading.Semaphore | None) -> int:
    """The most boards inside their lock at one moment, each lock waiting up to 2 s for another to join it."""
    guard, active, most = threading.Lock(), [0], [0]
    together = threading.Event()

    class Counting(BoardServer):
        def _do_lock(self, ctx: NightContext, day: Any) -> str:
            with guard:
                active[0] += 1
                most[0] = max(most[0], active[0])
                if active[0] > 1:
                    together.set()
            together.wait(2)  # another board's lock joins now, unless a slot holds it back
            with guard:
                active[0] -= 1
            return super()._do_lock(ctx, day)

    boards = [shop(tmp_path / str(slots is None), name) for name in ("a", "b")]
    work(*(server(board, name, Counting, slots=slots) for board, name in zip(boards, "ab", strict=True)))
    assert all(statuses(board) == {"review"} for board in boards)
    return most[0]


def test_bookkeeping_phases_take_turns_for_the_process_s_slots(tmp_path: Path) -> None:
    """A hundred boards sharing a cutoff would all hold their rows at once: locks take turns for a slot."""
    assert boards_locking_together(tmp_path, None) == 2  # unbounded: the two locks overlap
    assert boards_locking_together(tmp_path, threading.BoundedSemaphore(1)) == 1


def test_a_live_night_takes_no_slot(tmp_path: Path) -> None:
    """A run that waits on the models holds no slot: a long live night never holds another board's lock back."""
    release, slots = threading.Event(), threading.BoundedSemaphore(1)

    class LongNight(BoardServer):
        def _do_run(self, ctx: NightContext, day: Any) -> str:
            release.wait(60)  # released by the test, once the quick board is done (or has waited in vain)
            return super()._do_run(ctx, day)

    slow_board, quick_board = shop(tmp_path, "slow"), shop(tmp_path, "quick")
    slow = server(slow_board, "slow", LongNight, slots=slots)
    quick = server(quick_board, "quick", slots=slots)
    threads = work_all([slow, quick], until=UNTIL)
    threads[1].join(timeout=15)
    try:
        assert not threads[1].is_alive(), "the quick board waited for the slow board's live night"
        assert when(quick, "summary") and statuses(quick_board) == {"review"}
    finally:
        release.set()
        threads[0].join(timeout=60)


# -- one board's failure never stops the others ---------------------------------------------------------------
def test_a_board_that_cannot_be_opened_does_not_stop_the_others(tmp_path: Path) -> None:
    """A revoked Sheet: opening the board fails (Google's 403) until access is given back the next morning."""
    good_board, revoked_board = shop(tmp_path, "good"), shop(tmp_path, "revoked")
    opens = contexts(revoked_board)
    given_back = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)

    def revoked_until_morning(config: Config) -> AbstractContextManager[NightContext]:
        if revoked_board.clock.now() < given_back:
            raise BoardError("Google Sheets answered 403: the caller does not have permission")
        return opens(config)

    good = server(good_board, "good")
    revoked = server(revoked_board, "revoked", retry_after_s=3600)
    revoked.open_context = lambda: revoked_until_morning(revoked.config)
    work(good, revoked)
    assert when(good, "lock") and when(good, "run") and statuses(good_board) == {"review"}
    assert revoked.health.phases["board"]["ok"] is True  # /healthz showed the failure, and now the recovery
    assert "failed (BoardError): see the sheetbot log at 2026-11-24T08:" in revoked.health.phases["board"]["outcome"]
    assert not when(revoked, "run")  # the night was missed while the Sheet could not be opened ...
    assert when(revoked, "harvest")[0] == "24 09:00"  # ... then it came back: worked again at once,
    assert statuses(revoked_board) == {"queued"}  # its rows waiting for tonight's cutoff


def test_a_phase_that_raises_on_one_board_does_not_stop_the_others(tmp_path: Path) -> None:
    class BrokenLock(BoardServer):
        def _do_lock(self, ctx: NightContext, day: Any) -> str:
            raise RuntimeError("a bug in this board's lock")

    good_board, broken_board = shop(tmp_path, "good"), shop(tmp_path, "broken")
    good, broken = server(good_board, "good"), server(broken_board, "broken", BrokenLock)
    work(good, broken)
    assert statuses(good_board) == {"review"} and when(good, "summary")
    assert broken.health.phases["lock"]["ok"] is False
    assert statuses(broken_board) == {"queued"}
    assert when(broken, "harvest")  # the board's other phases went on


def test_a_bad_yaml_after_an_edit_keeps_the_last_good_config_and_alerts(tmp_path: Path) -> None:
    good_board, edited_board = shop(tmp_path, "good"), shop(tmp_path, "edited")
    notes = MemoryNotifier()
    good, edited = server(good_board, "good"), server(edited_board, "edited", notifier=notes)
    work(good, edited, until=datetime(2026, 11, 23, 14, 0, tzinfo=UTC))
    last_good = edited_board.config_path.read_text(encoding="utf-8")
    edited_board.config_path.write_text("timezone: Mars/Olympus\nboard: [nope\n", encoding="utf-8")
    work(good, edited)
    assert edited.health.phases["config"]["ok"] is False
    assert "edited/sheetbot.yaml" in edited.health.phases["config"]["outcome"]
    assert notes.kinds().count("config_invalid") == 1
    assert "the last good one" in notes.sent[notes.kinds().index("config_invalid")].text
    assert when(edited, "lock") == ["23 16:00"] and statuses(edited_board) == {"review"}  # the last good config
    assert statuses(good_board) == {"review"}
    # a valid edit is taken at the next tick: a later cutoff from now on
    edited_board.config_path.write_text(last_good + "schedule: {cutoff: '19:30'}\n", encoding="utf-8")
    edited.tick()
    assert edited.config.schedule.cutoff.hour == 19 and edited.health.phases["config"]["ok"] is True


# -- one account, many boards ---------------------------------------------------------------------------------
class VirtualTime:
    """One event loop's clock: ``sleep`` waits until the clock reaches its wake-up, and the clock jumps to the
    earliest wake-up only once every task is waiting. Two sleepers at once do not add up (as a FakeTime that
    moves on each sleep would make them), so a combined rate is measured as the server would see it."""

    def __init__(self) -> None:
        self.now = 1000.0
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = 0

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._seq += 1
        heapq.heappush(self._sleepers, (self.now + seconds, self._seq, future))
        await future

    def drive(self, work: Coroutine[Any, Any, Any]) -> Any:
        async def go() -> Any:
            task = asyncio.ensure_future(work)
            while not task.done():
                for _ in range(50):
                    await asyncio.sleep(0)
                while self._sleepers and not task.done():
                    wake, _, future = heapq.heappop(self._sleepers)
                    if not future.done():
                        self.now = max(self.now, wake)
                        future.set_result(None)
                        break
            return task.result()

        return asyncio.run(go())


class Stamps(httpx2.AsyncBaseTransport):
    def __init__(self, fake: FakeLLM, clock: VirtualTime) -> None:
        self.fake, self.clock, self.stamps = fake, clock, list[float]()

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        self.stamps.append(self.clock.now)
        return await self.fake.transport.handle_async_request(request)


def most_in_a_minute(stamps: list[float]) -> int:
    stamps = sorted(stamps)
    return max(sum(1 for t in stamps if s <= t < s + 60) for s in stamps)


def request(n: int) -> CompletionRequest:
    return CompletionRequest(
        model="gpt-4.1-mini", system="s", prompt=f"row {n}", max_tokens=50, custom_id=f"r{n}", timeout_s=30
    )


def two_boards_calling(
    entries: dict[str, ProviderConfig], envs: dict[str, dict[str, str]], *, calls: int, shared: bool = True
) -> tuple[Stamps, dict[str, Any], FakeLLM]:
    """Each board's provider entry `openai`, made as its night makes it, all calling at once on one loop."""
    clock, fake = VirtualTime(), FakeLLM()
    transport = Stamps(fake, clock)
    accounts = Accounts(monotonic=clock.monotonic)
    providers = {
        board: make_provider(
            "openai",
            entry,
            env=envs[board],
            http_client=httpx2.AsyncClient(transport=transport),
            monotonic=clock.monotonic,
            sleep=clock.sleep,
            account=accounts.account(board, "openai", entry, envs[board]) if shared else None,
        )
        for board, entry in entries.items()
    }

    async def night() -> None:
        await asyncio.gather(*(p.complete(request(n)) for p in providers.values() for n in range(calls)))

    clock.drive(night())
    return transport, providers, fake


def entry(**kw: Any) -> ProviderConfig:
    return ProviderConfig(api_key_env="OPENAI_API_KEY", base_url="https://llm.test/v1", max_retries=0, **kw)


def test_two_boards_on_one_key_stay_together_under_the_stricter_rpm() -> None:
    entries = {"a": entry(rpm=60, concurrency=8), "b": entry(rpm=120, concurrency=8)}
    transport, _, _ = two_boards_calling(entries, {"a": ENV, "b": ENV}, calls=60)
    assert len(transport.stamps) == 120
    assert most_in_a_minute(transport.stamps) <= 60  # the stricter of the two entries, for both together
    assert transport.stamps[-1] - transport.stamps[0] >= 119 - 1e-6


def test_without_the_shared_account_two_boards_would_overrun_the_key() -> None:
    """The measure above can fail: each board alone under its rpm still overruns the account together."""
    entries = {"a": entry(rpm=60, concurrency=8), "b": entry(rpm=60, concurrency=8)}
    transport, _, _ = two_boards_calling(entries, {"a": ENV, "b": ENV}, calls=60, shared=False)
    assert most_in_a_minute(transport.stamps) > 100


def test_different_keys_are_different_accounts() -> None:
    other = {**ENV, "OPENAI_API_KEY": "sk-another-customer"}
    entries = {"a": entry(rpm=60, concurrency=8), "b": entry(rpm=60, concurrency=8)}
    transport, _, _ = two_boards_calling(entries, {"a": ENV, "b": other}, calls=60)
    assert most_in_a_minute(transport.stamps) > 100  # each key its own 60 a minute


def test_a_revoked_key_seen_by_one_board_holds_the_other_boards_calls() -> None:
    clock, fake = VirtualTime(), FakeLLM()
    accounts = Accounts(monotonic=clock.monotonic)
    made = {
        board: make_provider(
            "openai",
            entry(),
            env=ENV,
            http_client=fake.async_client(),
            monotonic=clock.monotonic,
            sleep=clock.sleep,
            account=accounts.account(board, "openai", entry(), ENV),
        )
        for board in ("a", "b")
    }
    fake.fail_next(401)
    for board in ("a", "b"):
        with pytest.raises(AccountProviderError):
            clock.drive(made[board].complete(request(1)))
    assert len(fake.requests) == 1  # board b's call never left: the account's breaker was open
    assert "sk-test-openai" not in repr(accounts._accounts)  # a hash of the key, never the key


def test_the_shared_buckets_charge_once_under_threads() -> None:
    """Boards call from their own threads: the check-and-charge is one step, so one request fits, not two."""
    limits = AccountLimits(rpm=60, tpm=None, monotonic=lambda: 5.0)
    admitted: list[float] = []
    go = threading.Barrier(8)

    def take() -> None:
        go.wait()
        admitted.append(limits.take(0))

    threads = [threading.Thread(target=take) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert admitted.count(0.0) == 1


# -- /healthz and /metrics per board --------------------------------------------------------------------------
def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return int(answer.status), bytes(answer.read())
    except urllib.error.HTTPError as failed:
        return failed.code, failed.read()


def test_healthz_and_metrics_report_per_board(tmp_path: Path) -> None:
    a_board, b_board = shop(tmp_path, "a"), shop(tmp_path, "b")
    a_board.clock.set(START.replace(hour=17))
    a_board.lock()
    healths = {"a": Health(), "b": Health()}
    healths["a"].night("2026-11-23", ok=False, outcome="did not drain")
    healths["b"].night("2026-11-23", ok=True, outcome="drained")
    healths["b"].record("config", at=START, ok=False, outcome="not valid, the last good one is kept")

    def unreadable() -> State:
        raise OSError("the state's disk is gone")

    broken = state_collector(b_board.config, open_state=unreadable)
    collectors = {"a": state_collector(a_board.config), "b": broken}
    http = start_http_server(BoardsHealth(healths, {"c.yaml": "bad"}), port=0, metrics=boards_registry(collectors))
    host, port = http.server_address[:2]
    base = f"http://{host!s}:{port}"
    try:
        code, body = get(base + "/healthz")
        payload = json.loads(body)
        assert code == 503 and payload["failing"] == ["a"]  # a's last night failed; b's bad edit alone is no 503
        assert payload["boards"]["b"]["status"] == "ok" and payload["boards"]["b"]["config"]["ok"] is False
        assert payload["skipped"] == {"c.yaml": "bad"}
        code, metrics = get(base + "/metrics")
        text = metrics.decode()
        assert code == 200
        assert 'sheetbot_rows{board="a",status="locked",workflow="listing"} 2.0' in text
        assert 'sheetbot_board_scrape_ok{board="a"} 1.0' in text
        assert 'sheetbot_board_scrape_ok{board="b"} 0.0' in text  # b's state unreadable: a's figures still served
        assert text.count("# TYPE sheetbot_rows gauge") == 1
    finally:
        http.shutdown()
    healths["a"].night("2026-11-24", ok=True, outcome="drained")
    assert BoardsHealth(healths).snapshot()[0] == 200


# -- the command line -----------------------------------------------------------------------------------------
def test_serve_takes_config_again_and_again() -> None:
    args = build_parser().parse_args(["serve", "--config", "a.yaml", "--config", "folder/"])
    assert args.config == ["a.yaml", "folder/"]
    assert build_parser().parse_args(["serve"]).config is None  # the default file, one board
    assert build_parser().parse_args(["lock", "--config", "a.yaml"]).config == "a.yaml"


def folder_of_boards(tmp_path: Path) -> Path:
    folder = tmp_path / "boards"
    for name in ("a", "b"):
        board = Shop(tmp_path / name)
        (folder / f"{name}.yaml").parent.mkdir(exist_ok=True)
        data = yaml.safe_load(board.config_path.read_text(encoding="utf-8"))
        data["board"]["path"] = str(board.book)
        data["state"] = str(tmp_path / name / "sheetbot.db")
        (folder / f"{name}.yaml").write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    (folder / "c.yaml").write_text("board: {kind: local}\nworkflows: {x: {nope: 1}}\n", encoding="utf-8")
    (folder / "compose.yaml").write_text("services: {web: {image: nginx}}\n", encoding="utf-8")
    return folder


def test_a_folder_serves_its_good_boards_and_names_the_bad_file(tmp_path: Path) -> None:
    folder = folder_of_boards(tmp_path)
    boards, skipped = load_boards([folder])
    assert [b.name for b in boards] == ["a", "b"]  # compose.yaml is not a sheetbot config: left alone
    assert list(skipped) == [str(folder / "c.yaml")]
    assert "c.yaml" in skipped[str(folder / "c.yaml")] and "\n" not in skipped[str(folder / "c.yaml")]


def test_a_bad_file_named_on_the_command_line_refuses_the_start(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = folder_of_boards(tmp_path)
    with pytest.raises(ConfigError, match=r"c\.yaml"):
        load_boards([folder / "a.yaml", folder / "c.yaml"])
    assert main(["serve", "--config", str(folder / "a.yaml"), "--config", str(folder / "c.yaml")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("sheetbot: error: ") and "c.yaml" in err and "\n" not in err


def test_a_file_named_twice_is_one_board(tmp_path: Path) -> None:
    folder = folder_of_boards(tmp_path)
    boards, _ = load_boards([folder / "a.yaml", folder / "a.yaml", folder])
    assert [b.name for b in boards] == ["a", "b"]


def test_two_boards_on_one_state_file_or_one_name_refuse_the_start(tmp_path: Path) -> None:
    folder = folder_of_boards(tmp_path)
    data = yaml.safe_load((folder / "a.yaml").read_text(encoding="utf-8"))
    (tmp_path / "again").mkdir()
    (tmp_path / "again" / "a.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
    with pytest.raises(ConfigError, match="two boards are named a"):
        load_boards([folder / "a.yaml", tmp_path / "again" / "a.yaml"])
    (folder / "d.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
    with pytest.raises(ConfigError, match="share the state file"):
        load_boards([folder / "a.yaml", folder / "d.yaml"])


def test_an_intake_api_in_a_many_board_serve_refuses_the_start(tmp_path: Path) -> None:
    """The intake API appends to one board: among many it would not know which, so the start says so."""
    folder = folder_of_boards(tmp_path)
    data = yaml.safe_load((folder / "a.yaml").read_text(encoding="utf-8"))
    data["api"] = {"token_env": "SHEETBOT_API_TOKEN"}
    (folder / "a.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"intake API .* serves one board: run a in a `serve` of its own"):
        load_boards([folder / "a.yaml", folder / "b.yaml"])


def test_serve_many_works_every_board_of_a_folder_in_one_process(tmp_path: Path, signals: None) -> None:
    folder = folder_of_boards(tmp_path)
    for name in ("a", "b"):
        Shop(tmp_path / name, create=False).add(type="listing", input=f"{name} mug", brand="Acme")
    clock = FakeClock(datetime(2026, 11, 23, 17, 30, tzinfo=ZoneInfo("Europe/Berlin")))  # past both cutoffs
    stop = threading.Event()

    def locked(name: str) -> bool:
        db = sqlite3.connect(tmp_path / name / "sheetbot.db")
        try:
            return bool(db.execute("SELECT 1 FROM tasks WHERE status = 'locked'").fetchall())
        except sqlite3.Error:
            return False
        finally:
            db.close()

    def stop_when_both_locked() -> None:
        deadline = time.monotonic() + 60
        while not (locked("a") and locked("b")) and time.monotonic() < deadline:
            time.sleep(0.05)
        stop.set()

    watcher = threading.Thread(target=stop_when_both_locked)
    watcher.start()
    assert serve_many([folder], env=ENV, clock=clock, stop=stop, grace_s=0.1) == 0
    watcher.join()
    assert locked("a") and locked("b")
    assert night_at(clock.now(), load_config(folder / "a.yaml").schedule, ZoneInfo("Europe/Berlin")).night


def test_the_readme_example_is_accepted_by_check(tmp_path: Path) -> None:
    from fakellm import FakeLLM as Fake

    from sheetbot.cli.check import run_check

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("### Many boards in one process") :]
    block = section[section.index("```yaml\n") + 8 : section.index("```\n", section.index("```yaml\n") + 8)]
    board = Shop(tmp_path / "shop")
    data = yaml.safe_load(board.config_path.read_text(encoding="utf-8"))
    data["providers"]["openai"].update(yaml.safe_load(block)["providers"]["openai"])
    board.config_path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    assert main(["init", "--config", str(board.config_path)]) == 0
    assert run_check(board.config_path, env=board.env, http_client=Fake().async_client()) == []
    assert load_config(board.config_path).providers["openai"].rpm == 500


def test_a_boards_log_lines_name_the_board() -> None:
    import io
    import logging

    from sheetbot.service.logs import setup_logging
    from sheetbot.service.many import BoardNameFilter, _current

    stream = io.StringIO()
    handler = setup_logging(fmt="json", env={}, stream=stream)
    handler.addFilter(BoardNameFilter())

    def board_thread() -> None:
        _current.board = "acme"
        logging.getLogger("sheetbot.service.serve").info("lock: %d row(s)", 3)

    try:
        thread = threading.Thread(target=board_thread)
        thread.start()
        thread.join()
        logging.getLogger("sheetbot.service.many").info("not a board's line")
    finally:
        logging.getLogger("sheetbot").removeHandler(handler)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert lines[0]["message"] == "[acme] lock: 3 row(s)" and lines[0]["board"] == "acme"
    assert lines[1]["message"] == "not a board's line" and "board" not in lines[1]
