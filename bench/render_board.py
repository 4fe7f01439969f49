"""A picture of the demo board, rendered from the real workbook by LibreOffice (headless), for the README.

Runs `sheetbot demo` in a temporary folder (or takes a workbook you name), copies the workbook, sets that
copy to print the reviewer's columns on one landscape page (the board itself is not changed), asks
LibreOffice to print it (PDF) and rasterises the page to PNG with pdftoppm: what LibreOffice draws is the
workbook as saved, with its colours, filter buttons, widths and wrapped text, not a drawing of it. Needs
`soffice` (LibreOffice) and `pdftoppm` (poppler-utils) on PATH; without them, says so and exits 0 (like
every script here, a tool, not a test). On Debian: `apt-get install libreoffice-calc poppler-utils`.

    python bench/render_board.py                          # → docs/demo-board.png
    python bench/render_board.py --out board.png --columns 5 --rows 30
    python bench/render_board.py --workbook queue.xlsx --sheet Queue
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from openpyxl import load_workbook
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.page import PageMargins
from rich.console import Console

from sheetbot.cli.demo import run_demo

#: LibreOffice's binary names, on Linux/macOS (soffice) and some distributions (libreoffice).
OFFICE = ("soffice", "libreoffice")
#: The reviewer's columns (id … checks): what the picture shows by default, with the status beside them.
COLUMNS = 9
ROWS = 20
TIMEOUT_S = 180
#: Resolution of the picture: legible in a README at GitHub's width.
DPI = 110


def office() -> str | None:
    return next((found for name in OFFICE if (found := shutil.which(name))), None)


def page_of(workbook: Path, sheet: str, columns: int, rows: int, out: Path) -> Path:
    """A copy of the workbook whose first printed page is the board's first ``columns`` columns and its
    status (the columns between are hidden in the copy), landscape, one page wide: LibreOffice renders a
    spreadsheet's first page to PNG."""
    book = load_workbook(workbook)
    for other in [name for name in book.sheetnames if name != sheet]:
        del book[other]  # the Dashboard would otherwise be the page LibreOffice picks, if it came first
    ws = book[sheet]
    header = [cell.value for cell in ws[1]]
    last = header.index("status") + 1 if "status" in header[columns:] else columns
    for col in range(columns + 1, last):
        ws.column_dimensions[get_column_letter(col)].hidden = True
    ws.print_area = f"A1:{get_column_letter(last)}{rows + 1}"
    ws.page_setup.orientation = "landscape"
    ws.page_setup.fitToWidth, ws.page_setup.fitToHeight = 1, 0
    ws.sheet_properties.pageSetUpPr.fitToPage = True
    ws.print_options.gridLines = True
    ws.page_margins = PageMargins(left=0.15, right=0.15, top=0.15, bottom=0.15, header=0, footer=0)
    ws.oddHeader.center.text = ws.oddFooter.center.text = None  # no page name or number in the picture
    book.save(out)
    return out


def render(workbook: Path, sheet: str, out: Path, *, columns: int, rows: int) -> str:
    """LibreOffice prints the page to PDF and poppler's ``pdftoppm`` rasterises it: Calc's own PNG export
    filter fails headless on some builds ("no export filter"), while its PDF export is the printing path
    every build has."""
    binary = office()
    if binary is None:
        return "LibreOffice (soffice) is not installed here: install it and run this again (nothing rendered)"
    raster = shutil.which("pdftoppm")
    if raster is None:
        return "pdftoppm (poppler-utils) is not installed here: install it and run this again (nothing rendered)"
    with tempfile.TemporaryDirectory() as folder:
        page = page_of(workbook, sheet, columns, rows, Path(folder) / "board.xlsx")
        done = subprocess.run(
            [binary, "--headless", "--convert-to", "pdf", "--outdir", folder, str(page)],
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            check=False,
        )
        pdf = Path(folder) / "board.pdf"
        if done.returncode != 0 or not pdf.exists():
            return f"LibreOffice could not render {workbook} ({(done.stderr or done.stdout).strip()[:300]})"
        stem = Path(folder) / "board"
        shot = subprocess.run(
            [raster, "-png", "-r", str(DPI), "-f", "1", "-l", "1", "-singlefile", str(pdf), str(stem)],
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            check=False,
        )
        png = stem.with_suffix(".png")
        if shot.returncode != 0 or not png.exists():
            return f"pdftoppm could not rasterise the page ({shot.stderr.strip()[:300]})"
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(png, out)
    return f"wrote {out} from {workbook} [{sheet}]"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workbook", type=Path, help="a workbook to render (default: a fresh `sheetbot demo`)")
    parser.add_argument("--sheet", default="Queue")
    parser.add_argument("--out", type=Path, default=Path("docs/demo-board.png"))
    parser.add_argument("--columns", type=int, default=COLUMNS, help="columns from A to show")
    parser.add_argument("--rows", type=int, default=ROWS, help="rows below the header to show")
    args = parser.parse_args(argv)
    if office() is None:
        print("LibreOffice (soffice) is not installed here: install it and run this again (nothing rendered)")
        return 0
    with tempfile.TemporaryDirectory() as folder:
        workbook = args.workbook
        if workbook is None:
            run_demo(Path(folder) / "demo", console=Console(file=sys.stderr, quiet=True))
            workbook = Path(folder) / "demo" / "queue.xlsx"
        print(render(workbook, args.sheet, args.out, columns=args.columns, rows=args.rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
