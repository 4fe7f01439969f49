"""How `init` makes the workbook readable at a glance (issue 13): status colours, a filter on the header, the
id column frozen with it, sized and wrapped columns, and the `type` column a dropdown of the workflows.

Each step adds only what is not there yet and never undoes what a person did (their own colours, filter,
dropdown or column widths stay): running `init` twice changes nothing the second time. Each returns
whether it changed the sheet.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from openpyxl.formatting.rule import CellIsRule
from openpyxl.styles import Alignment, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.utils.cell import range_boundaries
from openpyxl.worksheet.datavalidation import DataValidation
from openpyxl.worksheet.worksheet import Worksheet

from sheetbot.boards.base import STATUS_COLOURS

#: Excel's last row: a rule or dropdown covers the whole column below the header.
LAST_ROW = 1_048_576
#: A long-text column nobody sized, in characters.
WIDE_COLUMN_WIDTH = 60
#: A task row's height in points: four lines of wrapped input and output; the whole text is one click away.
ROW_HEIGHT = 60.0
#: Excel refuses a list dropdown whose choices, commas included, exceed 255 characters.
MAX_LIST_CHARS = 255


def below_header(col: int) -> str:
    letter = get_column_letter(col)
    return f"{letter}2:{letter}{LAST_ROW}"


def colour_statuses(ws: Worksheet, col: int, statuses: Iterable[str]) -> bool:
    """A "cell equals" rule per status on the status column, as the Google board has (STATUS_COLOURS)."""
    covered = f"{get_column_letter(col)}2"
    have = {
        formula.strip('"').lower()
        for cf in ws.conditional_formatting
        if covered in cf.sqref
        for rule in cf.rules
        if rule.type == "cellIs" and rule.operator == "equal"
        for formula in rule.formula or ()
    }
    changed = False
    for status in statuses:
        if status in STATUS_COLOURS and status not in have:
            rgb = "FF" + "".join(f"{round(part * 255):02X}" for part in STATUS_COLOURS[status])
            fill = PatternFill(fill_type="solid", start_color=rgb, end_color=rgb)
            rule = CellIsRule(operator="equal", formula=[f'"{status}"'], fill=fill)
            ws.conditional_formatting.add(below_header(col), rule)
            changed = True
    return changed


def filter_header(ws: Worksheet, width: int) -> bool:
    """An auto-filter on the header, over every column and row: sort and filter by status, type, review."""
    if ws.auto_filter.ref or ws.tables or width < 1:  # an Excel table brings its own filter: two would clash
        return False
    ws.auto_filter.ref = f"A1:{get_column_letter(width)}{max(ws.max_row, 2)}"
    return True


def stretch_filter(ws: Worksheet, width: int) -> None:
    """Keep a header filter over the rows and columns added since: Excel filters only the range it was given."""
    ref = ws.auto_filter.ref
    if not ref:
        return
    first_col, first_row, last_col, last_row = range_boundaries(ref)
    if first_row != 1 or first_col is None or last_col is None or last_row is None:
        return
    wide, tall = max(last_col, width), max(last_row, ws.max_row)
    if (wide, tall) != (last_col, last_row):
        ws.auto_filter.ref = f"{get_column_letter(first_col)}1:{get_column_letter(wide)}{tall}"


def list_dropdown(ws: Worksheet, col: int, choices: Sequence[str], *, title: str, strict: bool) -> bool:
    """A dropdown of ``choices`` under the header. A strict one refuses other values (review), a loose one
    warns (type: a workflow added to the YAML since `init` must still be typed). sheetbot's own dropdown
    is brought up to date when the choices change; a person's is left alone."""
    text = ",".join(choices)
    if not choices or len(text) > MAX_LIST_CHARS or any('"' in c or "," in c for c in choices):
        return False  # Excel cannot list these inline; the column stays free text
    span, formula = below_header(col), f'"{text}"'
    covering = [dv for dv in ws.data_validations.dataValidation if f"{get_column_letter(col)}2" in dv.sqref]
    ours = [dv for dv in covering if str(dv.sqref) == span and dv.type == "list"]
    if covering and not ours:
        return False
    if ours:
        if ours[0].formula1 == formula:
            return False
        ours[0].formula1 = formula
        return True
    dropdown = DataValidation("list", formula1=formula, allow_blank=True, showErrorMessage=True)
    dropdown.errorTitle, dropdown.error = title, f"Pick one of: {text.replace(',', ', ')}"
    if not strict:
        dropdown.errorStyle = "warning"
    dropdown.add(span)
    ws.add_data_validation(dropdown)
    return True


def size_columns(
    ws: Worksheet, header: Mapping[str, int], widths: Mapping[str, int], wide: Iterable[str], *, fresh: Iterable[str]
) -> bool:
    """Width for columns nobody has sized, and long-text columns (``wide``) wrapped and top-aligned.
    ``fresh`` are the columns `init` just added: only those, and the long-text ones, are sized (a team's own
    columns keep their look). Cells already typed in a wrapped column get its alignment."""
    sized = {col for d in ws.column_dimensions.values() if d.min and d.max for col in range(d.min, d.max + 1)}
    wrapped, changed = set(wide), False
    aligned: dict[int, Alignment] = {}
    for name in dict.fromkeys([*fresh, *wrapped]):
        col = header.get(name)
        if col is None or col in sized:
            continue
        dimension = ws.column_dimensions[get_column_letter(col)]
        default = WIDE_COLUMN_WIDTH if name in wrapped else min(max(len(name) + 3, 8), 30)
        dimension.width = widths.get(name, default)
        changed = True
        if name in wrapped:  # the other columns keep Excel's alignment: a style on every cell slows each save
            dimension.alignment = aligned[col] = Alignment(wrap_text=True, vertical="top")
    if aligned:  # one pass over the cells the sheet holds, as Excel aligns what is typed in a styled column
        for (row, column), cell in ws._cells.items():
            if row >= 2 and column in aligned and not cell.has_style:
                cell.alignment = aligned[column]
    return changed


def fit_rows(ws: Worksheet, rows: Iterable[int]) -> None:
    """Rows sheetbot wrote get a readable height (ROW_HEIGHT), unless a person set one: left to Excel,
    a wrapped 2,000-character output makes a row taller than the screen. Only on a sheet with wrapped
    columns (`init` made them): a team's own sheet without them keeps Excel's row heights."""
    if not any(d.has_style and d.alignment.wrap_text for d in ws.column_dimensions.values()):
        return
    for row in rows:
        dimension = ws.row_dimensions[row]
        if dimension.ht is None:
            dimension.ht = ROW_HEIGHT
