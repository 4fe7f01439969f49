"""The command line: exit codes, one-line errors, never a traceback; the demo → harvest flow end to end."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from openpyxl import load_workbook

from sheetbot.cli.main import main

ROOT = Path(__file__).resolve().parents[1]
GOOD = """\
timezone: Europe/Berlin
board: {kind: local, path: queue.xlsx, sheet: Queue}
state: sheetbot.db
providers:
  anthropic: {api_key_env: ANTHROPIC_API_KEY}
prices:
  claude-haiku-4-5: {input: 1.0, output: 5.0}
workflows:
  blog:
    provider: anthropic
    model: claude-haiku-4-5
    mode: preview
    system: You write for {{brand}}.
    prompt: "Write a post about {{input}}"
"""
BAD = """\
timezone: Mars/Olympus
providers:
  anthropic: {api_key: sk-secret123}
prices: {}
workflows:
  blog:
    provider: anthropic
    model: claude-haiku-4-5
    mode: turbo
    max_token: 10
    prompt: x
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def sheetbot(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    return subprocess.run(
        [sys.executable, "-m", "sheetbot", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )


def header(book: Path) -> list[str]:
    ws = load_workbook(book)["Queue"]
    return [c.value for c in next(ws.iter_rows(max_row=1))]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One demo for the module (it runs a whole preview night); tests that change it work on a copy."""
    folder = tmp_path_factory.mktemp("demo") / "d"
    assert main(["demo", "--dir", str(folder)]) == 0
    return folder


@pytest.fixture
def demo_copy(demo: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(demo, tmp_path / "d"))


# -- check ----------------------------------------------------------------------------------------------
def test_check_lists_each_problem_on_its_own_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path / "sheetbot.yaml", BAD)
    assert main(["check", "--config", str(path)]) == 1
    lines = capsys.readouterr().out.splitlines()
    problems = [line for line in lines if line.startswith("✗ ")]
    assert lines == [*problems, f"{len(problems)} problem(s) in {path}"]
    wheres = [line[2:].split(" ", 1)[0] for line in problems]
    assert wheres == [
        "timezone",
        "providers.anthropic.api_key",
        "workflows.blog.model",
        "workflows.blog.mode",
        "workflows.blog.max_token",
    ]
    assert all(f"({path}:" in line for line in problems)
    assert "sk-secret123" not in "\n".join(lines)


def test_check_on_a_good_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path / "sheetbot.yaml", GOOD)
    assert main(["init", "--config", str(path)]) == 0
    capsys.readouterr()
    assert main(["check", "--config", str(path)]) == 0
    assert capsys.readouterr().out.startswith("✓ ")


def test_check_in_a_subprocess_prints_no_traceback(tmp_path: Path) -> None:
    write(tmp_path / "sheetbot.yaml", BAD)
    done = sheetbot("check", "--config", "sheetbot.yaml", cwd=tmp_path)
    assert done.returncode == 1
    assert "Traceback" not in done.stdout + done.stderr
    assert "sk-secret123" not in done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 6 and lines[-1] == "5 problem(s) in sheetbot.yaml"
    assert lines[3].startswith("✗ workflows.blog.mode (sheetbot.yaml:9): 'turbo'")


def copy_example(tmp_path: Path) -> Path:
    """The repository's config/ as a fresh checkout has it (never the real folder: tests must not touch it)."""
    ignore = shutil.ignore_patterns("*.xlsx", "*.db*", "__pycache__")
    return Path(shutil.copytree(ROOT / "config", tmp_path / "config", ignore=ignore))


def test_check_on_a_fresh_checkout_says_init_and_keys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = copy_example(tmp_path) / "sheetbot.yaml"
    for var in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "SLACK_WEBHOOK_URL"):
        monkeypatch.delenv(var, raising=False)
    assert main(["check", "--config", str(path)]) == 1
    out = capsys.readouterr().out
    assert f"sheetbot init --config {path}" in out and "ANTHROPIC_API_KEY" in out and "4 problem(s)" in out
    assert "SLACK_WEBHOOK_URL is not set" in out


@pytest.fixture
def models_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A loopback server that lists no models, where the SDKs look for the vendors (their *_BASE_URL)."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Models(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps({"object": "list", "data": [], "has_more": False}).encode()
            self.send_response(200 if self.path.split("?")[0].endswith("/models") else 404)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Models)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setenv("ANTHROPIC_BASE_URL", url)
    monkeypatch.setenv("OPENAI_BASE_URL", url + "/v1")
    yield url
    server.shutdown()


def test_init_then_check_on_the_example_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, models_server: str
) -> None:
    """After `init`, the example's board has every column its ten workflows use: only the keys remain."""
    folder = copy_example(tmp_path)
    path = str(folder / "sheetbot.yaml")
    assert main(["init", "--config", path]) == 0
    assert {"brand", "keywords"} <= set(header(folder / "queue.xlsx"))
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("SLACK_WEBHOOK_URL", "https://hooks.slack.test/services/x")
    capsys.readouterr()
    assert main(["check", "--config", path]) == 0, capsys.readouterr().out


# -- bad input: one line, exit 1 -------------------------------------------------------------------------
def only_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("sheetbot: error: ")
    assert "Traceback" not in captured.out + captured.err
    return lines[0]


@pytest.mark.parametrize("command", ["init", "lock", "run", "harvest", "report"])
def test_missing_config_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str) -> None:
    path = tmp_path / "nope.yaml"
    assert main([command, "--config", str(path)]) == 1
    line = only_error_line(capsys)
    assert str(path) in line and "not found" in line


def test_lock_with_missing_config_in_a_subprocess(tmp_path: Path) -> None:
    done = sheetbot("lock", "--config", "missing.yaml", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stdout == ""
    [line] = done.stderr.splitlines()
    assert line.startswith("sheetbot: error: config file missing.yaml: not found")


def test_default_config_path_is_config_sheetbot_yaml(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cwd = Path.cwd()
    os.chdir(tmp_path)
    try:
        assert main(["lock"]) == 1
    finally:
        os.chdir(cwd)
    assert "config file config/sheetbot.yaml: not found" in only_error_line(capsys)


def test_invalid_config_is_one_line_and_points_to_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path / "sheetbot.yaml", BAD)
    assert main(["lock", "--config", str(path)]) == 1
    line = only_error_line(capsys)
    assert "(and 4 more: run `sheetbot check`)" in line
    assert "sk-secret123" not in line


def test_run_until_not_a_time(demo_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--config", str(demo_copy / "sheetbot.yaml"), "--until", "notatime"]) == 1
    assert "--until 'notatime' is not a time" in only_error_line(capsys)


def test_run_until_without_timezone(demo_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--config", str(demo_copy / "sheetbot.yaml"), "--until", "2026-11-24T05:00"]) == 1
    assert "needs a timezone" in only_error_line(capsys)


def test_report_before_any_night_is_not_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A fresh install has no nights: the table says so in one line, --json prints an empty list."""
    path = write(tmp_path / "sheetbot.yaml", GOOD)
    for created in (False, True):
        if created:
            assert main(["init", "--config", str(path)]) == 0  # creates the state file, still no night
            capsys.readouterr()
        assert main(["report", "--config", str(path)]) == 0
        captured = capsys.readouterr()
        assert captured.err == ""
        [line] = captured.out.splitlines()
        assert "no nights recorded yet" in line and "sheetbot run" in line
        assert main(["report", "--config", str(path), "--json"]) == 0
        assert json.loads(capsys.readouterr().out) == []


def test_usage_errors_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["bogus"], ["report", "--nights", "0"], ["report", "--nights", "x"], ["lock", "--nope"]):
        with pytest.raises(SystemExit) as exited:
            main(argv)
        assert exited.value.code == 2
        err = capsys.readouterr().err
        assert len(err.splitlines()) == 1 and "error:" in err and "--help" in err


def test_an_unexpected_error_is_one_line_without_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(path: object, **kwargs: object) -> list[str]:
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr("sheetbot.cli.check.run_check", boom)
    assert main(["check", "--config", str(tmp_path / "x.yaml")]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line == "sheetbot: unexpected error: RuntimeError: boom second line (run with --debug for details)"
    with pytest.raises(RuntimeError):
        main(["--debug", "check", "--config", str(tmp_path / "x.yaml")])


def test_a_folder_that_cannot_be_made_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(tmp_path / "file.txt", "not a folder")
    assert main(["demo", "--dir", str(tmp_path / "file.txt" / "d")]) == 1
    assert "file.txt" in only_error_line(capsys)


# -- init ----------------------------------------------------------------------------------------------
def test_init_creates_the_workbook_with_its_columns(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path / "new" / "sheetbot.yaml", GOOD)
    assert main(["init", "--config", str(path)]) == 0
    book = tmp_path / "new" / "queue.xlsx"
    # A new board in the reviewer's order: what they read and decide first, the team's inputs, bookkeeping.
    assert header(book) == ["id", "type", "input", "output", "review", "notes", "edited_output", "priority",
                            "brand", "status", "night", "error", "cost"]  # fmt: skip
    assert "added columns" in capsys.readouterr().out
    assert main(["init", "--config", str(path)]) == 0
    assert "nothing to change" in capsys.readouterr().out


# -- demo → harvest --------------------------------------------------------------------------------------
def test_demo_builds_a_night_and_says_how_to_go_live(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "d"
    assert main(["demo", "--dir", str(folder)]) == 0
    out = capsys.readouterr().out
    assert {p.name for p in folder.iterdir()} >= {"queue.xlsx", "sheetbot.yaml", "sheetbot.db"}
    assert "waiting for review" in out  # the morning summary
    assert "go live" in out and "mode: live" in out and "ANTHROPIC_API_KEY" in out
    assert "sheetbot harvest --config" in out

    assert main(["demo", "--dir", str(folder)]) == 1
    line = only_error_line(capsys)
    assert "already exists" in line and "--force" in line
    assert main(["demo", "--dir", str(folder), "--force"]) == 0


def test_report_json_after_the_demo(demo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["report", "--config", str(demo / "sheetbot.yaml"), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert isinstance(metrics, list) and metrics
    assert all(isinstance(m, dict) for m in metrics)
    assert main(["report", "--config", str(demo / "sheetbot.yaml")]) == 0


def test_demo_then_harvest_moves_the_reviewed_rows(demo_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    book = demo_copy / "queue.xlsx"
    wb = load_workbook(book)
    ws = wb["Queue"]
    names = header(book)
    col = {name: names.index(name) + 1 for name in names}
    waiting = [r for r in range(2, ws.max_row + 1) if ws.cell(r, col["status"]).value == "review"]
    assert len(waiting) >= 2
    approved, rework = waiting[0], waiting[1]
    approved_id, rework_id = ws.cell(approved, col["id"]).value, ws.cell(rework, col["id"]).value
    ws.cell(approved, col["review"]).value = "approve"
    ws.cell(rework, col["review"]).value = "rework"
    ws.cell(rework, col["notes"]).value = "Shorter, and name the warranty."
    wb.save(book)

    capsys.readouterr()
    assert main(["harvest", "--config", str(demo_copy / "sheetbot.yaml")]) == 0
    assert capsys.readouterr().err == ""
    ws = load_workbook(book)["Queue"]
    status = {ws.cell(r, col["id"]).value: ws.cell(r, col["status"]).value for r in range(2, ws.max_row + 1)}
    assert status[approved_id] == "approved"
    assert status[rework_id] in ("rework", "queued")
    assert list(status.values()).count("review") == len(waiting) - 2
