"""The `check` errors of review gates between steps (issue 14, `review: true` on a step).

A gate stops a row after its step so a person decides before the next step runs; a gate on the last step
would only repeat the final review, and batch rounds (sheetbot/batch) do not stop between steps, so each
is refused at `check` with the key and its YAML line.
"""

from __future__ import annotations

from collections.abc import Mapping

from sheetbot.config.yaml_file import Lines
from sheetbot.errors import Problem


def gate_problems(workflows: Mapping[object, object], lines: Lines) -> list[Problem]:
    """One problem per gate that cannot work, on the raw YAML data (wrong types are pydantic's to report)."""
    problems: list[Problem] = []
    for name, wf in workflows.items():
        if not isinstance(wf, dict) or not isinstance(wf.get("steps"), list):
            continue
        steps: list[object] = wf["steps"]
        for index, step in enumerate(steps):
            if not isinstance(step, dict) or step.get("review") is not True:
                continue
            where = ("workflows", str(name), "steps", index, "review")
            step_name = step.get("name", index)
            if index == len(steps) - 1:
                problems.append(
                    lines.problem(
                        where,
                        f"step {step_name!r} is the last step: its answer goes to review anyway; "
                        "put `review: true` on an earlier step, or remove it",
                    )
                )
            elif wf.get("mode") == "batch":
                problems.append(
                    lines.problem(
                        where,
                        f"step {step_name!r} has a review gate, but batch mode does not stop between steps: "
                        "use mode live for this workflow, or remove `review: true`",
                    )
                )
    return problems
