"""`sheetbot serve --config a.yaml --config b.yaml` (or `--config folder/`): many boards in one process.

Each board is today's :class:`Server` loop on a thread of its own, with its own config (schedule, timezone,
budgets), state, process lock, notifier and health. Threads, not one loop over all boards: a live night is a
long call into the night's own event loop, and a board's lock, run or harvest must never wait for another
board's night. What the boards share is what is one thing in the world: a provider account (same kind, base
URL and API key: one rpm/tpm budget and one circuit breaker, sheetbot/providers/shared.py), the HTTP port
(/healthz and /metrics with a section and a ``board`` label per board, sheetbot/service/board_reports.py) and
the stop signal.

One board's failure never stops the others:
- a phase that raises is the Server's business as for one board (logged, on /healthz, retried later);
- a board that cannot even be opened (a revoked Sheet, a deleted workbook) makes its loop raise: its thread
  logs it, shows it on /healthz as ``board`` not ok, waits ``retry_after_s`` and starts its loop again;
- its YAML is re-read when the file changes; an edit that is not valid keeps the last good config, is
  logged and shown on /healthz as ``config`` not ok, and alerted on the board's notify channels (once a night).

Which files: each ``--config`` is a YAML file or a folder. A folder's ``*.yaml``/``*.yml`` files whose top
level has a ``board:`` or ``workflows:`` key are sheetbot configs (others, a docker-compose.yaml say, are left
alone). Decided: a file named on the command line that is not valid stops the start (you asked for it by
name); a bad file found in a folder gets a one-line error naming it in the log and on /healthz (``skipped``)
and the folder's other boards are served; fix it and restart. A board's name is its file's stem; two boards
of one name, two boards on one state file, or two different health ports refuse the start with one line.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import yaml

from sheetbot.clock import Clock
from sheetbot.config.models import Config
from sheetbot.errors import ConfigError
from sheetbot.morning.messages import alert
from sheetbot.night.context import NightContext
from sheetbot.night.stopping import GRACE_S
from sheetbot.notify.base import Fanout, Notifier
from sheetbot.providers.shared import Accounts
from sheetbot.safety import secrets
from sheetbot.service.arenas import limit_malloc_arenas
from sheetbot.service.health import Health, failed_outcome
from sheetbot.service.scheduler import Day
from sheetbot.service.serve import Server

log = logging.getLogger("sheetbot.service.many")

OpenBoardContext = Callable[[Config], AbstractContextManager[NightContext]]
#: Where the boards' threads keep their board's name, for the log lines they write.
_current = threading.local()


# -- which boards ---------------------------------------------------------------------------------------------
@dataclass
class BoardFile:
    """One board to serve: its name (the file's stem), its YAML file and the config read from it."""

    name: str
    path: Path
    config: Config


def looks_like_sheetbot(path: Path) -> bool:
    """A YAML file in a folder is a sheetbot config when its top level names a board or workflows."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return True  # unreadable: let loading say what is wrong with it, naming it
    return isinstance(data, dict) and bool({"board", "workflows"} & set(data))


def config_files(paths: Sequence[str | Path]) -> list[tuple[Path, bool]]:
    """Every config file the arguments name, with whether it came from a folder (then a bad one is skipped)."""
    found: list[tuple[Path, bool]] = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
            found += [(p, True) for p in files if looks_like_sheetbot(p)]
        elif path.is_file():
            found.append((path, False))
        else:
            raise ConfigError(f"--config {given}: no such file or folder")
    once: dict[Path, tuple[Path, bool]] = {}
    for path, in_folder in found:  # a file named twice (or also in a named folder) is one board, served once
        once.setdefault(path.resolve(), (path, in_folder))
    return list(once.values())


def load_boards(
    paths: Sequence[str | Path], *, load: Callable[[Path], Config] | None = None
) -> tuple[list[BoardFile], dict[str, str]]:
    """The boards to serve, and the folder files skipped with their one-line reason (see the module's doc)."""
    from sheetbot.config.load import load_config

    load = load or load_config
    boards: list[BoardFile] = []
    skipped: dict[str, str] = {}
    for path, in_folder in config_files(paths):
        try:
            config = load(path)
        except (ConfigError, OSError) as exc:
            if not in_folder:
                raise
            skipped[str(path)] = one_line(exc)
            log.error("%s is skipped, the folder's other boards are served: %s", path, skipped[str(path)])
            continue
        boards.append(BoardFile(path.stem, path, config))
    if not boards:
        raise ConfigError(f"no sheetbot config to serve in {', '.join(map(str, paths))}")
    _refuse_clashes(boards)
    return boards, skipped


def _refuse_clashes(boards: Sequence[BoardFile]) -> None:
    names: dict[str, Path] = {}
    states: dict[str, str] = {}
    for board in boards:
        if board.name in names:
            raise ConfigError(f"two boards are named {board.name} ({names[board.name]}, {board.path}): rename one file")
        names[board.name] = board.path
        if board.config.api is not None:
            raise ConfigError(
                f"{board.path}: the intake API (`api:`) serves one board: run {board.name} in a `serve` of its own, "
                "or remove `api:` from it"
            )
        if "://" not in board.config.state:  # a database URL keeps boards apart itself (a schema each)
            state = str(board.config.state_path.resolve())
            if state in states:
                raise ConfigError(
                    f"boards {states[state]} and {board.name} share the state file {state}: give each its own state:"
                )
            states[state] = board.name


def health_address(boards: Sequence[BoardFile]) -> tuple[str, int] | None:
    """The one (host, port) the boards' `serve:` sections ask for; None when none does."""
    asked = {
        (b.config.serve.health_host, b.config.serve.health_port)
        for b in boards
        if b.config.serve.health_port is not None
    }
    if len(asked) > 1:
        listed = ", ".join(f"{h}:{p}" for h, p in sorted(asked, key=str))
        raise ConfigError(
            f"the boards ask for different health ports ({listed}): one process serves one; "
            "set the same serve.health_port in each, or in one only"
        )
    return next(iter(asked), None)


def one_line(exc: BaseException) -> str:
    return " ".join(secrets.scrub(str(exc)).split()) or type(exc).__name__


def file_stamp(path: Path) -> tuple[int, int] | None:
    try:
        info = path.stat()
    except OSError:
        return None
    return info.st_mtime_ns, info.st_size


# -- one board ------------------------------------------------------------------------------------------------
class BoardServer(Server):
    """Today's Server for one of many boards: it re-reads its YAML when the file changes, keeping the last good."""

    def __init__(
        self,
        *,
        name: str,
        path: Path,
        open_board_context: OpenBoardContext,
        config: Config,
        clock: Clock,
        sleep: Callable[[float], object],
        notifier: Notifier | Fanout,
        health: Health | None = None,
        stop: threading.Event | None = None,
        max_sleep_s: float = 60.0,
        retry_after_s: float = 300.0,
        grace_s: float = GRACE_S,
        load: Callable[[Path], Config] | None = None,
        reloaded: Callable[[Config], None] | None = None,
        slots: threading.Semaphore | None = None,
    ) -> None:
        #: The process's bookkeeping slots, shared by every board (None: unbounded). See :meth:`_attempt`.
        self.slots = slots
        super().__init__(
            config=config,
            open_context=lambda: open_board_context(self.config),
            clock=clock,
            sleep=sleep,
            notifier=notifier,
            health=health,
            stop=stop,
            max_sleep_s=max_sleep_s,
            retry_after_s=retry_after_s,
            grace_s=grace_s,
        )
        self.name = name
        self.path = path
        self._load = load
        self._reloaded = reloaded
        self.seen = file_stamp(path)

    def _attempt(self, action: str, day: Day) -> bool:
        """A phase that only keeps books (reads and writes the board and the state) waits for one of the
        process's slots: a hundred boards sharing a cutoff would otherwise all hold their rows in memory at the
        same moment and fight over the GIL, for no phase finishing sooner. A phase that waits on the models (a
        run with live or batch workflows, the urgent lane) takes no slot: a long live night must never hold
        another board's lock or harvest back."""
        if self.slots is None or action == "urgent" or (action == "run" and self._calls_models()):
            return self._phase(action, day)
        with self.slots:
            return self._phase(action, day)

    def _phase(self, action: str, day: Day) -> bool:
        """The phase itself, once it may start (what a measuring subclass times: bench/scale.py)."""
        return super()._attempt(action, day)

    def _calls_models(self) -> bool:
        return any(wf.mode != "preview" for wf in self.config.workflows.values())

    def tick(self) -> list[str]:
        self.reload()
        done = super().tick()
        failed = self.health.phases.get("board")
        if failed is not None and not failed["ok"]:  # it could be opened again: say so on /healthz
            outcome = f"working again (it had {failed['outcome']} at {failed['at']})"
            self.health.record("board", at=self.clock.now(), ok=True, outcome=outcome)
        return done

    def reload(self) -> bool:
        """Take the YAML as it is now if it changed and is valid; True if the config was replaced."""
        from sheetbot.config.load import load_config

        stamp = file_stamp(self.path)
        if stamp == self.seen:
            return False
        self.seen = stamp
        now = self.clock.now()
        try:
            config = (self._load or load_config)(self.path)
        except (ConfigError, OSError) as exc:
            why = one_line(exc)
            log.error("%s changed and is not valid; the last good config is kept: %s", self.path, why)
            self.health.record("config", at=now, ok=False, outcome=f"not valid, the last good one is kept: {why}")
            self._alert_bad_config(why)
            return False
        self.config = config
        if self._reloaded is not None:
            self._reloaded(config)
        log.info("%s changed: the new config is in use", self.path)
        self.health.record("config", at=now, ok=True, outcome="re-read after an edit")
        return True

    def _alert_bad_config(self, why: str) -> None:
        night = self.day().tonight.night
        text = f"{self.path.name} was edited and is not valid: {why}. sheetbot keeps working with the last good one."
        try:
            with self.open_context() as ctx:
                self._notify(ctx, alert("config_invalid", night, f"board {self.name}: the YAML is not valid", text))
        except Exception:
            log.exception("could not send the config_invalid alert")

    def work(self, *, until: datetime | None = None) -> None:
        """The board's thread: loop until stopped; a board that cannot be worked at all is retried, never fatal."""
        _current.board = self.name
        while not self.stopping():
            try:
                self.loop(until=until)
                return
            except Exception as exc:
                log.exception("board %s cannot be worked now (tried again in %s): %s", self.name, self.retry_after, exc)
                self.health.record("board", at=self.clock.now(), ok=False, outcome=failed_outcome(exc))
                if until is not None and self.clock.now() >= until:
                    return
                self.sleep(self.retry_after.total_seconds())


def work_all(servers: Sequence[BoardServer], *, until: datetime | None = None) -> list[threading.Thread]:
    """One thread per board, started; the caller joins them. The threads share a few malloc arenas, one per
    bookkeeping slot, rather than glibc's eight per core (sheetbot/service/arenas.py)."""
    limit_malloc_arenas(bookkeeping_slots())
    threads = [
        threading.Thread(target=s.work, kwargs={"until": until}, name=f"sheetbot-board-{s.name}") for s in servers
    ]
    for thread in threads:
        thread.start()
    return threads


class BoardNameFilter(logging.Filter):
    """Each log line a board's thread writes says which board (``board`` field; ``[name]`` before the text)."""

    def filter(self, record: logging.LogRecord) -> bool:
        board = getattr(_current, "board", None)
        if board is not None and not hasattr(record, "board"):
            record.board = board
            record.msg, record.args = f"[{board}] {record.getMessage()}", None
        return True


# -- the process ----------------------------------------------------------------------------------------------
def bookkeeping_slots() -> int:
    """How many boards keep books at once: one per core (at least two), as CPU-bound work gains nothing more."""
    return max(2, os.cpu_count() or 2)


def serve_many(
    config_paths: Sequence[str | Path],
    *,
    wait: bool = False,
    env: Mapping[str, str] | None = None,
    clock: Clock | None = None,
    stop: threading.Event | None = None,
    grace_s: float = GRACE_S,
) -> int:
    """The production wiring for many boards (serve_forever's, once per board, sharing what is one thing)."""
    from sheetbot.clock import SystemClock
    from sheetbot.service.board_reports import BoardsHealth, boards_registry
    from sheetbot.service.http_app import start_http_server
    from sheetbot.service.leader import serve_leadership
    from sheetbot.service.process_lock import install_stop_handlers
    from sheetbot.service.prometheus import state_collector

    boards, skipped = load_boards(config_paths)
    address = health_address(boards)
    clock = clock or SystemClock()
    env = dict(os.environ) if env is None else env
    stop = install_stop_handlers(stop or threading.Event())
    accounts = Accounts()
    slots = threading.BoundedSemaphore(bookkeeping_slots())
    servers: list[BoardServer] = []
    for board in boards:
        secrets.learn_config(board.config, env)
        for name, entry in board.config.providers.items():
            accounts.account(board.name, name, entry, env)  # every entry first: the stricter limits hold at once
        servers.append(
            _board_server(board, env=env, clock=clock, stop=stop, grace_s=grace_s, accounts=accounts, slots=slots)
        )
    for account in accounts.shared():
        log.info(
            "provider entries %s share one account: one rpm/tpm budget, one circuit breaker", sorted(account.users)
        )
    filters = [(h, BoardNameFilter()) for h in logging.getLogger("sheetbot").handlers]
    for handler, name_filter in filters:
        handler.addFilter(name_filter)
    http = None
    if address is not None:
        collectors = {s.name: state_collector(s.config) for s in servers}
        health = BoardsHealth({s.name: s.health for s in servers}, skipped)
        http = start_http_server(health, host=address[0], port=address[1], metrics=boards_registry(collectors))
        log.info("health on http://%s:%d/healthz, Prometheus metrics on /metrics", *http.server_address[:2])
    try:
        with ExitStack() as locks:
            for server in servers:  # each board's own leadership: its lock file, or its advisory lock in PostgreSQL
                if locks.enter_context(serve_leadership(server.config, server.health, stop, wait=wait)) is None:
                    return 0  # stopped while a standby
            log.info("serving %d board(s): %s", len(servers), ", ".join(s.name for s in servers))
            for thread in work_all(servers):
                thread.join()
    finally:
        if http is not None:
            http.shutdown()
        for handler, name_filter in filters:
            handler.removeFilter(name_filter)
    return 0


def _board_server(
    board: BoardFile,
    *,
    env: Mapping[str, str],
    clock: Clock,
    stop: threading.Event,
    grace_s: float,
    accounts: Accounts,
    slots: threading.Semaphore | None = None,
) -> BoardServer:
    from sheetbot.notify.factory import build_fanout
    from sheetbot.service.wiring import open_context

    notifier, _ = build_fanout(board.config.notify, env)

    def context(config: Config) -> AbstractContextManager[NightContext]:
        return open_context(board.path, config=config, env=env, clock=clock, accounts=accounts, board=board.name)

    server = BoardServer(
        name=board.name,
        path=board.path,
        open_board_context=context,
        config=board.config,
        clock=clock,
        sleep=stop.wait,
        notifier=notifier,
        health=Health(),
        stop=stop,
        grace_s=grace_s,
        slots=slots,
    )

    def reloaded(config: Config) -> None:
        secrets.learn_config(config, env)
        server.notifier, _ = build_fanout(config.notify, env)

    server._reloaded = reloaded
    return server
