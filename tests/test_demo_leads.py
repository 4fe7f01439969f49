"""The demo leads somewhere: its "Next:" commands work as printed, going live locks rows, its YAML reads well."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml

from sheetbot.cli.demo import demo_config, later_rows, sheetbot_command
from sheetbot.cli.main import main
from sheetbot.config.load import load_config
from sheetbot.config.schema import modeline
from sheetbot.morning.summary import describe_lock
from sheetbot.night.lock import LockReport
from sheetbot.status import Status

VENV_SHEETBOT = Path(sys.executable).parent / "sheetbot"
SYSTEM_PATH = os.pathsep.join(["/usr/bin", "/bin"])  # no venv's bin


def executable(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n", encoding="utf-8")
    path.chmod(0o755)
    return path


def next_section(out: str) -> list[str]:
    return out[out.index("\nNext:") :].splitlines()[1:]


def printed(lines: list[str], word: str) -> list[str]:
    """The command a line of the Next: section prints for `word` (e.g. harvest), as argv."""
    line = next(line for line in lines if f" {word} --config" in line)
    return shlex.split(line.split("&&")[0])


# -- (a) the commands name the sheetbot that ran -------------------------------------------------------
def test_bare_sheetbot_only_when_path_finds_the_running_one(tmp_path: Path) -> None:
    venv = executable(tmp_path / "venv" / "bin" / "sheetbot")
    other = executable(tmp_path / "other" / "bin" / "sheetbot")
    python = str(tmp_path / "venv" / "bin" / "python")
    assert sheetbot_command(argv0=str(venv), executable=python, path=str(venv.parent)) == "sheetbot"
    # PATH without the venv's bin: sheetbot is not found, or another one is found first.
    assert sheetbot_command(argv0=str(venv), executable=python, path=SYSTEM_PATH) == str(venv)
    both = os.pathsep.join([str(other.parent), str(venv.parent)])
    assert sheetbot_command(argv0=str(venv), executable=python, path=both) == str(venv)
    # `python -m sheetbot`: the console script beside the interpreter, or else the module itself.
    assert sheetbot_command(argv0="/x/sheetbot/__main__.py", executable=python, path=SYSTEM_PATH) == str(venv)
    lone = str(tmp_path / "bare" / "python")
    assert sheetbot_command(argv0="-c", executable=lone, path=SYSTEM_PATH) == f"{lone} -m sheetbot"


@pytest.mark.skipif(not VENV_SHEETBOT.is_file(), reason="needs the installed console script beside the interpreter")
@pytest.mark.parametrize("on_path", [False, True], ids=["venv-not-on-PATH", "venv-on-PATH"])
def test_the_printed_harvest_command_works_as_printed(
    on_path: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    search = os.pathsep.join([str(VENV_SHEETBOT.parent), SYSTEM_PATH]) if on_path else SYSTEM_PATH
    monkeypatch.setattr(sys, "argv", [str(VENV_SHEETBOT), "demo"])
    monkeypatch.setenv("PATH", search)
    assert main(["demo", "--dir", str(tmp_path / "d")]) == 0
    lines = next_section(capsys.readouterr().out)
    argv = printed(lines, "harvest")
    if on_path:
        assert argv[0] == "sheetbot"
        assert not any("source " in line for line in lines)
    else:
        assert argv[0] == str(VENV_SHEETBOT)
        assert any(f"source {VENV_SHEETBOT.parent / 'activate'}" in line for line in lines)
    env = {"PATH": search, "HOME": str(tmp_path)}
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert printed(lines, "lock")[0] == argv[0]


# -- (b) going live locks rows ---------------------------------------------------------------------------
def test_going_live_as_advised_locks_the_rows_typed_after_the_cutoff(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "d"
    assert main(["demo", "--dir", str(folder)]) == 0
    out = capsys.readouterr().out
    advised = folder / "workflows" / "listing_rewrite.yaml"
    assert f"set `mode: live` in {advised}" in out
    text = advised.read_text(encoding="utf-8")
    assert "mode: preview" in text
    advised.write_text(text.replace("mode: preview", "mode: live"), encoding="utf-8")
    config = str(folder / "sheetbot.yaml")
    assert load_config(config).workflows["listing_rewrite"].mode == "live"

    assert main(["lock", "--config", config]) == 0
    first = capsys.readouterr().out
    assert f"locked {len(later_rows())} row(s)" in first
    assert "listing_rewrite 1" in first

    assert main(["lock", "--config", config]) == 0  # nothing left: it says why, and what to do
    again = capsys.readouterr().out
    assert "locked 0 row(s)" in again
    assert "nothing to lock: no row is queued: 28 wait for review" in again
    assert f"{len(later_rows())} are already locked" in again and "sheetbot harvest" in again


def test_a_lock_of_nothing_says_why() -> None:
    empty = describe_lock(LockReport(night="2026-11-24"))
    assert "nothing to lock: no row is queued. A new row" in empty
    report = LockReport(night="2026-11-24", waiting=Counter({Status.REVIEW: 2, Status.APPROVED: 1}))
    said = describe_lock(report)
    assert "2 wait for review" in said and "1 are done" in said
    busy = LockReport(night="2026-11-24", locked=Counter({"blog_draft": 1}), waiting=Counter({Status.REVIEW: 2}))
    assert "nothing to lock" not in describe_lock(busy)


# -- (c) a short YAML that includes the ready workflows --------------------------------------------------
def test_the_demo_yaml_is_short_commented_and_includes_the_workflows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "d"
    assert main(["demo", "--dir", str(folder)]) == 0
    path = folder / "sheetbot.yaml"
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    assert lines[0] + "\n" == modeline()
    assert len(lines) < 80
    assert sum(1 for line in lines if line.lstrip().startswith("#")) >= 5
    assert "\\n" not in text  # no escaped strings: the prompts live in the workflow files
    raw = yaml.safe_load(text)
    assert raw["include"] == ["workflows/*.yaml"] and "workflows" not in raw
    config = load_config(path)
    assert set(config.workflows) == set(demo_config()["workflows"])
    assert {wf.mode for wf in config.workflows.values()} == {"preview"}
    capsys.readouterr()
    assert main(["check", "--config", str(path)]) == 0


def test_demo_config_is_the_same_config_inlined(tmp_path: Path) -> None:
    """bench/night.py and bench/cost.py write demo_config() as a YAML of their own, without the workflow files."""
    path = tmp_path / "sheetbot.yaml"
    path.write_text(yaml.safe_dump(demo_config(), sort_keys=False), encoding="utf-8")
    config = load_config(path)
    assert len(config.workflows) == 10 and not config.include
    assert {wf.mode for wf in config.workflows.values()} == {"preview"}
