"""Where the example config is in this install, for the messages that send people to it.

In the repo it is ``config/sheetbot.yaml`` (with ``config/workflows/``); a wheel carries the same files as the
package ``sheetbot.example`` (pyproject.toml), so a message names a file that exists after `pipx install`.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def example_folder() -> Path:
    """The folder holding sheetbot.yaml and workflows/ (a real folder: sheetbot is never run from a zip)."""
    return Path(str(files("sheetbot.example")))


def example_config() -> Path:
    return example_folder() / "sheetbot.yaml"


def example_workflows() -> Path:
    return example_folder() / "workflows"
