"""What prompts need from the board, and what a rework attempt adds to them."""

from __future__ import annotations

from collections.abc import Mapping

from sheetbot.config.models import WorkflowConfig
from sheetbot.config.names import did_you_mean
from sheetbot.night.templates import brace_problems, placeholders

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
</reviewer_notes>"""


def template_names(workflow: WorkflowConfig) -> list[str]:
    """Every {{name}} the workflow's templates use, steps included, in order."""
    texts = [workflow.system, workflow.prompt]
    for step in workflow.steps:
        texts += [step.system or "", step.prompt]
    names: dict[str, None] = {}
    for text in texts:
        for name in placeholders(text):
            names.setdefault(name, None)
    return list(names)


def template_mistakes(workflow: WorkflowConfig) -> list[tuple[tuple[str | int, ...], str]]:
    """(key under the workflow, what is wrong) for each template: braces that open no placeholder, and
    {{steps.NAME}} naming no step before it. Either would only show at the night, in every row."""
    texts: list[tuple[tuple[str | int, ...], str, list[str]]] = [
        (("system",), workflow.system, []),  # used by the first step too: no step has answered yet
        (("prompt",), workflow.prompt, []),
    ]
    for index, step in enumerate(workflow.steps):
        earlier = [s.name for s in workflow.steps[:index]]
        texts += [
            (("steps", index, "system"), step.system or "", earlier),
            (("steps", index, "prompt"), step.prompt, earlier),
        ]
    out: list[tuple[tuple[str | int, ...], str]] = []
    for key, text, earlier in texts:
        out += [(key, problem) for problem in brace_problems(text)]
        for name in placeholders(text):
            wanted = name.removeprefix("steps.")
            if name.startswith("steps.") and wanted not in earlier:
                before = ", ".join(earlier) or "none here"
                out.append(
                    (
                        key,
                        f"{{{{{name}}}}} names no earlier step.{did_you_mean(wanted, earlier)} "
                        f"A template reads only the steps before it (here: {before})",
                    )
                )
    return out


def missing_columns(workflow: WorkflowConfig, columns: set[str], aliases: Mapping[str, str]) -> list[str]:
    """Names the templates use that are neither a board column nor a renamed logical column.
    ``{{steps.NAME}}`` is an earlier step's answer, not a column."""
    return [n for n in template_names(workflow) if not n.startswith("steps.") and _column_of(n, aliases) not in columns]


def _column_of(name: str, aliases: Mapping[str, str]) -> str:
    """The header {{name}} reads: the one the YAML maps a logical column to, else the name itself
    (see templates.row_lookup, which reads the same way)."""
    return aliases.get(name, name)


def rework_section(attempt: int, previous_output: str, notes: str | None) -> str:
    """What a rework attempt adds to the last step's prompt: the answer sent back, and why.
    Inserted after rendering, so the notes are text, never a template."""
    return REWORK_SECTION.format(
        previous=attempt - 1, output=previous_output, notes=(notes or "").strip() or "(no notes given)"
    )


def guidelines_section(guidelines: list[str]) -> str:
    """The workflow's `guidelines:` (recurring reviewer notes made lasting), appended to the system prompt.
    Added after rendering, like the rework notes: text, never a template."""
    items = [g.strip() for g in guidelines if g.strip()]
    if not items:
        return ""
    return "\n\nGuidelines from reviewers:\n" + "\n".join(f"- {g}" for g in items)
