"""Real workbooks holding what people put in them besides cells: built with openpyxl where it can (charts),
and part by part in the zip where it cannot (text boxes, pictures, pivot tables, macros, slicers, …), the
way Excel writes them: a part, its content type, and a relationship from the sheet (or the workbook)."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

from openpyxl import load_workbook
from openpyxl.chart import BarChart, Reference

REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
PKG_REL = "http://schemas.openxmlformats.org/package/2006/relationships"
XDR = "http://schemas.openxmlformats.org/drawingml/2006/spreadsheetDrawing"
A = "http://schemas.openxmlformats.org/drawingml/2006/main"
#: A 1×1 transparent PNG.
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d49444154789c63000100000500010d0a2db40000000049454e44ae426082"
)
_ANCHOR = "<xdr:twoCellAnchor><xdr:from><xdr:col>1</xdr:col><xdr:colOff>0</xdr:colOff><xdr:row>1</xdr:row><xdr:rowOff>0</xdr:rowOff></xdr:from><xdr:to><xdr:col>4</xdr:col><xdr:colOff>0</xdr:colOff><xdr:row>6</xdr:row><xdr:rowOff>0</xdr:rowOff></xdr:to>{}<xdr:clientData/></xdr:twoCellAnchor>"  # noqa: E501
TEXT_BOX = _ANCHOR.format(
    '<xdr:sp macro="" textlink=""><xdr:nvSpPr><xdr:cNvPr id="2" name="TextBox 1"/><xdr:cNvSpPr txBox="1"/>'
    '</xdr:nvSpPr><xdr:spPr><a:prstGeom prst="rect"><a:avLst/></a:prstGeom></xdr:spPr><xdr:txBody><a:bodyPr/>'
    "<a:p><a:r><a:t>Read me first</a:t></a:r></a:p></xdr:txBody></xdr:sp>"
)
PICTURE = _ANCHOR.format(
    '<xdr:pic><xdr:nvPicPr><xdr:cNvPr id="3" name="Picture 1"/><xdr:cNvPicPr/></xdr:nvPicPr><xdr:blipFill>'
    '<a:blip r:embed="rIdImg"/><a:stretch><a:fillRect/></a:stretch></xdr:blipFill><xdr:spPr>'
    '<a:prstGeom prst="rect"><a:avLst/></a:prstGeom></xdr:spPr></xdr:pic>'
)


def workbook(path: Path, *, queue: str = "Queue", others: tuple[str, ...] = ("Notes",)) -> Path:
    """A queue sheet with a header and a row, and other sheets of a person's own."""
    from openpyxl import Workbook

    book = Workbook()
    ws = book.active
    assert ws is not None
    ws.title = queue
    ws.append(["id", "type", "priority", "input", "brand"])
    ws.append(["", "listing", "", "Trail tent", "Kestrel"])
    for name in others:
        sheet = book.create_sheet(name)
        sheet.append(["month", "sales"])
        sheet.append(["Jan", 3])
        sheet.append(["Feb", 5])
    book.save(path)
    return path


def add_chart(path: Path, sheet: str) -> None:
    """A chart a person made on ``sheet`` (openpyxl can make one)."""
    book = load_workbook(path)
    ws = book[sheet]
    chart = BarChart()
    chart.add_data(Reference(ws, min_col=2, min_row=1, max_row=3), titles_from_data=True)
    ws.add_chart(chart, "D2")
    book.save(path)


def _sheet_part(files: dict[str, bytes], sheet: str) -> str:
    book = files["xl/workbook.xml"].decode()
    rels = files["xl/_rels/workbook.xml.rels"].decode()
    rid = re.search(rf'<sheet [^>]*name="{re.escape(sheet)}"[^>]*r:id="([^"]+)"', book)
    if rid is None:
        rid = re.search(rf'<sheet [^>]*r:id="([^"]+)"[^>]*name="{re.escape(sheet)}"', book)
    assert rid is not None, book
    target = re.search(rf'<Relationship [^>]*Target="([^"]+)"[^>]*Id="{rid.group(1)}"', rels)
    if target is None:
        target = re.search(rf'<Relationship [^>]*Id="{rid.group(1)}"[^>]*Target="([^"]+)"', rels)
    assert target is not None, rels
    return target.group(1).lstrip("/") if target.group(1).startswith("/") else "xl/" + target.group(1)


def _relate(files: dict[str, bytes], source: str, rel_type: str, target: str, rid: str) -> None:
    folder, name = source.rsplit("/", 1)
    rels = f"{folder}/_rels/{name}.rels"
    text = files.get(rels, f'<Relationships xmlns="{PKG_REL}"></Relationships>'.encode()).decode()
    rel = f'<Relationship Id="{rid}" Type="{REL}/{rel_type}" Target="/{target}"/>'
    files[rels] = text.replace("</Relationships>", rel + "</Relationships>").encode()


def _content_type(files: dict[str, bytes], part: str, content_type: str) -> None:
    text = files["[Content_Types].xml"].decode()
    override = f'<Override PartName="/{part}" ContentType="{content_type}"/>'
    files["[Content_Types].xml"] = text.replace("</Types>", override + "</Types>").encode()


def inject(
    path: Path,
    *,
    sheet: str | None,
    rel_type: str,
    part: str,
    body: bytes,
    content_type: str = "application/xml",
    extra: dict[str, bytes] | None = None,
    book_xml: str = "",
) -> None:
    """Add ``part`` to the package, related from ``sheet``'s part (None: from the workbook); ``book_xml``
    (with ``{rid}``) goes into the workbook part before ``</workbook>``."""
    with zipfile.ZipFile(path) as package:
        files = {name: package.read(name) for name in package.namelist()}
    source = "xl/workbook.xml" if sheet is None else _sheet_part(files, sheet)
    files[part] = body
    files.update(extra or {})
    _content_type(files, part, content_type)
    rid = f"rIdSheetbotTest{len(files)}"
    _relate(files, source, rel_type, part, rid)
    if book_xml:
        xml = files["xl/workbook.xml"].decode().replace("</workbook>", book_xml.format(rid=rid) + "</workbook>")
        files["xl/workbook.xml"] = xml.encode()
    if rel_type == "drawing" and sheet is not None:  # the sheet names its drawing, as Excel writes it
        xml = files[source].decode()
        files[source] = xml.replace("</worksheet>", f'<drawing r:id="{rid}"/></worksheet>').encode()
        if 'xmlns:r="' not in xml:
            files[source] = files[source].replace(b"<worksheet ", f'<worksheet xmlns:r="{REL}" '.encode(), 1)
    _write(path, files)


def _write(path: Path, files: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as package:
        for name, data in files.items():
            package.writestr(name, data)


def add_drawing(path: Path, sheet: str, *anchors: str, picture: bool = False) -> None:
    """A drawing on ``sheet`` holding ``anchors`` (TEXT_BOX, PICTURE), as Excel saves one."""
    body = f'<xdr:wsDr xmlns:xdr="{XDR}" xmlns:a="{A}" xmlns:r="{REL}">{"".join(anchors)}</xdr:wsDr>'.encode()
    extra: dict[str, bytes] = {}
    if picture:
        extra["xl/media/image91.png"] = PNG
        extra["xl/drawings/_rels/drawing91.xml.rels"] = (
            f'<Relationships xmlns="{PKG_REL}"><Relationship Id="rIdImg" Type="{REL}/image" '
            'Target="../media/image91.png"/></Relationships>'
        ).encode()
    inject(
        path,
        sheet=sheet,
        rel_type="drawing",
        part="xl/drawings/drawing91.xml",
        body=body,
        content_type="application/vnd.openxmlformats-officedocument.drawing+xml",
        extra=extra,
    )


def add_pivot_table(path: Path, sheet: str) -> None:
    """A pivot table on ``sheet`` and its cache, related from the workbook, as Excel writes them."""
    cache = (
        '<pivotCacheDefinition xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
        f'xmlns:r="{REL}" refreshOnLoad="1" recordCount="0"><cacheSource type="worksheet">'
        '<worksheetSource ref="A1:B3" sheet="Notes"/></cacheSource><cacheFields count="2">'
        '<cacheField name="month" numFmtId="0"><sharedItems/></cacheField>'
        '<cacheField name="sales" numFmtId="0"><sharedItems containsNumber="1"/></cacheField>'
        "</cacheFields></pivotCacheDefinition>"
    ).encode()
    inject(
        path,
        sheet=None,
        rel_type="pivotCacheDefinition",
        part="xl/pivotCache/pivotCacheDefinition1.xml",
        body=cache,
        content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.pivotCacheDefinition+xml",
        book_xml=f'<pivotCaches xmlns:r="{REL}"><pivotCache cacheId="1" r:id="{{rid}}"/></pivotCaches>',
    )
    table = (
        b'<pivotTableDefinition xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" name="Pivot1" '
        b'cacheId="1" dataCaption="Values"><location ref="D1:E3" firstHeaderRow="1" firstDataRow="1" '
        b'firstDataCol="1"/><pivotFields count="2"><pivotField axis="axisRow" showAll="0"><items count="1">'
        b'<item t="default"/></items></pivotField><pivotField dataField="1" showAll="0"/></pivotFields>'
        b'<rowFields count="1"><field x="0"/></rowFields><dataFields count="1">'
        b'<dataField name="Sum of sales" fld="1" baseField="0" baseItem="0"/></dataFields></pivotTableDefinition>'
    )
    inject(
        path,
        sheet=sheet,
        rel_type="pivotTable",
        part="xl/pivotTables/pivotTable1.xml",
        body=table,
        content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.pivotTable+xml",
    )


def add_macros(path: Path) -> None:
    """A VBA project, the workbook saved back with the plain .xlsx content type (a renamed .xlsm)."""
    inject(
        path,
        sheet=None,
        rel_type="vbaProject",
        part="xl/vbaProject.bin",
        body=b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504),
        content_type="application/vnd.ms-office.vbaProject",
    )


def parts(path: Path) -> list[str]:
    with zipfile.ZipFile(path) as package:
        return sorted(package.namelist())
