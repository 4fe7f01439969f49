"""The prompt a task sends: the workflow's templates filled from the locked row, plus rework context."""

from __future__ import annotations

from collections.abc import Mapping

from sheetbot.config import WorkflowConfig
from sheetbot.templates import placeholders, render, row_lookup

REWORK_SECTION = """

---
A reviewer sent back your previous answer to this task (attempt {previous}). Write a new answer that
addresses every note, and keep everything the notes do not ask you to change.

Your previous answer:
<previous_answer>
{output}
</previous_answer>

The reviewer's notes:
<reviewer_notes>
{notes}
</reviewer_notes>
"""


def missing_columns(workflow: WorkflowConfig, columns: set[str], aliases: Mapping[str, str]) -> list[str]:
    """Names the workflow's templates use that are neither a board column nor a renamed logical column."""
    names = placeholders(workflow.system) + placeholders(workflow.prompt)
    return [n for n in dict.fromkeys(names) if n not in columns and aliases.get(n) not in columns]


def render_prompts(
    workflow: WorkflowConfig,
    values: Mapping[str, str],
    aliases: Mapping[str, str],
    *,
    attempt: int = 1,
    previous_output: str | None = None,
    notes: str | None = None,
) -> tuple[str, str]:
    """(system, prompt). Cell values and reviewer notes are inserted as text, never as templates."""
    lookup = row_lookup(values, aliases)
    system = render(workflow.system, lookup)
    prompt = render(workflow.prompt, lookup)
    if attempt > 1 and previous_output is not None:
        prompt += REWORK_SECTION.format(
            previous=attempt - 1, output=previous_output, notes=(notes or "").strip() or "(no notes given)"
        )
    return system.strip(), prompt.strip()
