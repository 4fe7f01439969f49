"""The value Excel stores with a formula when it saves, written into a real .xlsx by hand.

openpyxl writes formulas without a computed value; Excel writes both. Tests that need a workbook as a
person's Excel leaves it build it with openpyxl, then put the values in with this.
"""

from __future__ import annotations

import re
import shutil
import zipfile
from pathlib import Path


def save_as_excel_would(book: Path, cached: dict[str, str]) -> None:
    """Put the computed value of formula cells (by coordinate) into the file, as Excel does on save."""
    temp = book.with_suffix(".tmp")
    with zipfile.ZipFile(book) as src, zipfile.ZipFile(temp, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename.startswith("xl/worksheets/sheet"):
                xml = data.decode()
                for ref, value in cached.items():
                    xml, n = re.subn(
                        rf'<c r="{ref}"([^>]*)><f>(.*?)</f><v\s*/>',
                        rf'<c r="{ref}"\1 t="str"><f>\2</f><v>{value}</v>',
                        xml,
                    )
                    assert n == 1, ref
                data = xml.encode()
            dst.writestr(item, data)
    shutil.move(temp, book)
