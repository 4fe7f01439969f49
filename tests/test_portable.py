"""Every OS (issue 13 item 12): sheetbot itself imports no POSIX-only module, so it runs on Windows too.

Windows cannot be had here, so the test takes away what Windows lacks: in a fresh interpreter, an import
hook makes every POSIX-only module (fcntl, pwd, termios, …) fail to import *for sheetbot's own modules*,
and the POSIX-only functions of ``os`` (fchmod, posix_fallocate, …) are removed. Then it runs the demo and
a whole review → lock → run → harvest cycle through the CLI, and the journal's locked append and replay.
Libraries keep their imports: portalocker takes fcntl on Linux and LockFileEx on Windows, its own business.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

HIDE = textwrap.dedent(
    """
    import builtins, importlib.abc, os, sys

    POSIX_ONLY = {"fcntl", "pwd", "grp", "termios", "tty", "pty", "resource", "syslog", "posix", "crypt"}
    # What `os` has on Linux and macOS but not on Windows (os.fchmod: not before Python 3.13).
    for name in ("fchmod", "fchown", "posix_fallocate", "getuid", "geteuid", "getgid", "fork", "setsid"):
        if hasattr(os, name):
            delattr(os, name)

    def ours(module: str) -> bool:
        return module == "sheetbot" or module.startswith("sheetbot.")

    def refuse(name: str) -> ModuleNotFoundError:
        return ModuleNotFoundError(f"No module named {name!r} (hidden: POSIX only)", name=name)

    real_import = builtins.__import__

    def guarded(name, globals=None, locals=None, fromlist=(), level=0):
        # Through __import__ even a module already in sys.modules (imported by a library) is refused.
        if level == 0 and name.split(".")[0] in POSIX_ONLY and ours((globals or {}).get("__name__", "")):
            raise refuse(name)
        return real_import(name, globals, locals, fromlist, level)

    class Hidden(importlib.abc.MetaPathFinder):
        # importlib.import_module("fcntl") from sheetbot: the first frame outside importlib decides.
        def find_spec(self, fullname, path=None, target=None):
            if fullname.split(".")[0] not in POSIX_ONLY:
                return None
            frame = sys._getframe(1)
            while frame is not None and frame.f_code.co_filename.startswith(("<frozen", "<builtin")):
                frame = frame.f_back
            while frame is not None and frame.f_globals.get("__name__", "").startswith("importlib"):
                frame = frame.f_back
            if frame is not None and ours(frame.f_globals.get("__name__", "")):
                raise refuse(fullname)
            return None

    builtins.__import__ = guarded
    sys.meta_path.insert(0, Hidden())
    """
)

CYCLE = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    from openpyxl import load_workbook

    from sheetbot.cli.main import main

    folder = Path(sys.argv[1])
    config = str(folder / "sheetbot.yaml")
    assert main(["demo", "--dir", str(folder)]) == 0, "demo"

    # A reviewer sends one row back with notes: harvest, then the next night locks, runs and harvests it.
    book = folder / "queue.xlsx"
    wb = load_workbook(book)
    ws = wb["Queue"]
    col = {cell.value: cell.column for cell in ws[1]}
    row = next(r for r in range(2, ws.max_row + 1) if ws.cell(r, col["status"]).value == "review")
    ws.cell(row, col["review"]).value = "rework"
    ws.cell(row, col["notes"]).value = "Shorter, please."
    wb.save(book)
    for command in ("harvest", "lock", "run", "harvest", "report", "check"):
        code = main([command, "--config", config])
        assert code == 0 or (command == "check" and code == 1), (command, code)

    # The journal: appended and replayed under its file lock.
    from sheetbot.state.journal import Journal
    journal = Journal(folder / "probe.journal")
    journal.append({"id": "x1", "kind": "settled", "at": "2026-01-01T00:00:00+00:00", "change": {}})
    assert journal.replay(lambda entry: None) == 1 and not journal.pending()
    print("portable: ok")
    """
)


def run_hidden(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", HIDE + code, *args], capture_output=True, text=True, timeout=240, check=False
    )


def test_the_hook_really_hides_fcntl_from_sheetbot() -> None:
    probe = run_hidden(
        "import types\n"
        "mod = types.ModuleType('sheetbot.probe')\n"
        "try:\n"
        "    exec('import fcntl', mod.__dict__)\n"
        "except ModuleNotFoundError as exc:\n"
        "    print('hidden:', exc)\n"
        "import importlib, portalocker\n"  # a library keeps its own imports
        "print('library:', importlib.import_module('fcntl').__name__)\n"
    )
    assert "hidden: No module named 'fcntl'" in probe.stdout, probe.stderr
    assert "library: fcntl" in probe.stdout


def test_demo_and_a_night_run_without_posix_only_modules(tmp_path: Path) -> None:
    done = run_hidden(CYCLE, str(tmp_path / "demo"))
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "portable: ok" in done.stdout
    assert "unexpected error" not in done.stdout + done.stderr
