"""What in an ``.xlsx`` package openpyxl would drop at its first save, found before anything is saved.

openpyxl rewrites the whole workbook from its own object model: cells, styles, data validation,
conditional formats, tables, notes and its own charts survive; text boxes, pictures (without Pillow,
and cropping or effects with it), SmartArt, slicers, timelines, form and ActiveX controls, embedded
objects, threaded comments and macros do not, and Excel-made charts and pivot tables come back
stripped of what openpyxl's model lacks. A person's workbook must never lose them because sheetbot
saved it, so the package is inspected instead: its relationships say which sheet holds what. Only
small parts are parsed (relationships, drawings), never the sheets' cells.
"""

from __future__ import annotations

import io
import posixpath
import zipfile
from collections.abc import Collection
from dataclasses import dataclass
from xml.etree import ElementTree

_RELS = "{http://schemas.openxmlformats.org/package/2006/relationships}"
_MAIN = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
_R = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"
_XDR = "{http://schemas.openxmlformats.org/drawingml/2006/spreadsheetDrawing}"
_A = "{http://schemas.openxmlformats.org/drawingml/2006/main}"
_MC = "{http://schemas.openxmlformats.org/markup-compatibility/2006}"

#: Relationship types (the last part of the type URI, lower case) whose target openpyxl drops or rebuilds
#: without what its model lacks, and what a person would call the object.
LOST_RELATIONSHIPS = {
    "vbaproject": "macros (a VBA project)",
    "pivottable": "a pivot table",
    "pivotcachedefinition": "a pivot table's cache",
    "slicer": "a slicer",
    "slicercache": "a slicer",
    "timeline": "a timeline",
    "timelinecache": "a timeline",
    "ctrlprop": "a form control (button, check box, list)",
    "control": "an ActiveX control",
    "activexcontrol": "an ActiveX control",
    "oleobject": "an embedded object",
    "package": "an embedded object",
    "image": "a background picture",
    "threadedcomment": "threaded comments (replies would be lost)",
    "querytable": "a query table",
    "connections": "data connections (Power Query)",
    "powerpivotdata": "a data model (Power Pivot)",
    "rdrichvalue": "pictures in cells",
    "rdrichvaluestructure": "pictures in cells",
    "webextension": "an add-in",
    "chartsheet": "a chart sheet",
    "dialogsheet": "a dialog sheet",
    "macrosheet": "an Excel 4 macro sheet",
    "xlmacrosheet": "an Excel 4 macro sheet",
    "xlintlmacrosheet": "an Excel 4 macro sheet",
}
#: Parts that are lost wherever they hang: found even where no relationship names them.
LOST_PARTS = {
    "xl/vbaproject.bin": "macros (a VBA project)",
    "xl/pivottables/": "a pivot table",
    "xl/slicers/": "a slicer",
    "xl/slicercaches/": "a slicer",
    "xl/timelines/": "a timeline",
    "xl/timelinecaches/": "a timeline",
    "xl/activex/": "an ActiveX control",
    "xl/ctrlprops/": "a form control (button, check box, list)",
    "xl/embeddings/": "an embedded object",
    "xl/threadedcomments/": "threaded comments (replies would be lost)",
    "xl/richdata/": "pictures in cells",
    "xl/model/": "a data model (Power Pivot)",
}
_MACRO_TYPES = ("macroenabled", "vbaproject")


@dataclass(frozen=True, order=True)
class Loss:
    """Something saving would lose: ``sheet`` None means the workbook as a whole."""

    sheet: str | None
    kind: str


def losses(data: bytes, *, own_sheets: Collection[str] = ()) -> list[Loss]:
    """What saving this package through openpyxl would lose, one entry per (sheet, kind), sorted.

    Charts on ``own_sheets`` are sheetbot's (the Dashboard it redraws itself) and are not a loss.
    Raises nothing for a file that is not a zip: openpyxl's load says what is wrong with it.
    """
    try:
        package = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        return []
    with package:
        return sorted(_Inspection(package, own_sheets).run())


class _Inspection:
    def __init__(self, package: zipfile.ZipFile, own_sheets: Collection[str]) -> None:
        self.package = package
        self.names = {name.lower(): name for name in package.namelist()}
        self.own = set(own_sheets)
        self.found: set[Loss] = set()

    def run(self) -> set[Loss]:
        types = self._read("[Content_Types].xml") or b""
        if any(marker.encode() in types.lower() for marker in _MACRO_TYPES):
            self.found.add(Loss(None, "macros (a VBA project)"))
        book = self._main_part()
        sheets = self._sheet_names(book)
        for rel_type, target in self._relationships(book):
            if rel_type == "worksheet":
                self._sheet(sheets.get(target, target), target)
            elif rel_type == "chartsheet" and sheets.get(target) in self.own:
                continue
            elif rel_type in LOST_RELATIONSHIPS:
                where = sheets.get(target) if rel_type in ("chartsheet", "dialogsheet") else None
                self._lose(where, LOST_RELATIONSHIPS[rel_type])
        kinds = {loss.kind for loss in self.found}
        for name in self.names:
            for prefix, kind in LOST_PARTS.items():
                if name.startswith(prefix) and kind not in kinds:
                    self._lose(None, kind)
                    kinds.add(kind)
        return self.found

    def _lose(self, sheet: str | None, kind: str) -> None:
        if kind == "a pivot table's cache":  # said once, with the pivot table it belongs to
            kind = "a pivot table"
            if any(loss.kind == kind for loss in self.found):
                return
        self.found.add(Loss(sheet, kind))

    # -- the package's structure ---------------------------------------------------------------
    def _main_part(self) -> str:
        for rel_type, target in self._relationships(""):
            if rel_type == "officedocument":
                return target
        return "xl/workbook.xml"

    def _sheet_names(self, book: str) -> dict[str, str]:
        """Part name → sheet name, for every sheet the workbook lists."""
        targets = {rid: target for rid, (_, target) in self._relationship_ids(book).items()}
        root = self._xml(book)
        names: dict[str, str] = {}
        if root is not None:
            for sheet in root.iter(f"{_MAIN}sheet"):
                target = targets.get(sheet.get(f"{_R}id", ""))
                if target:
                    names[target] = sheet.get("name", target)
        return names

    def _sheet(self, sheet: str, part: str) -> None:
        for rel_type, target in self._relationships(part):
            if rel_type == "drawing":
                self._drawing(sheet, target)
            elif rel_type in LOST_RELATIONSHIPS:
                self._lose(sheet, LOST_RELATIONSHIPS[rel_type])

    def _drawing(self, sheet: str, part: str) -> None:
        """Each object anchored in a sheet's drawing: charts are kept on sheetbot's own sheets only."""
        root = self._xml(part)
        if root is None:
            return
        for anchor in root:
            for shape in anchor:
                kind = _shape_kind(shape)
                if kind is None or (kind == "a chart" and sheet in self.own):
                    continue
                self._lose(sheet, kind)

    # -- reading parts --------------------------------------------------------------------------
    def _read(self, name: str) -> bytes | None:
        real = self.names.get(name.lower())
        return None if real is None else self.package.read(real)

    def _xml(self, name: str) -> ElementTree.Element | None:
        data = self._read(name)
        if data is None:
            return None
        try:
            return ElementTree.fromstring(data)
        except ElementTree.ParseError:
            return None

    def _relationship_ids(self, part: str) -> dict[str, tuple[str, str]]:
        """rId → (type, target part name) for ``part``'s relationships ("" for the package's own)."""
        folder, name = posixpath.split(part)
        root = self._xml(posixpath.join(folder, "_rels", f"{name}.rels"))
        out: dict[str, tuple[str, str]] = {}
        if root is None:
            return out
        for rel in root.iter(f"{_RELS}Relationship"):
            if rel.get("TargetMode") == "External":
                continue
            target = rel.get("Target", "")
            full = target.lstrip("/") if target.startswith("/") else posixpath.normpath(posixpath.join(folder, target))
            rel_type = rel.get("Type", "").rstrip("/").rsplit("/", 1)[-1].lower()
            out[rel.get("Id", "")] = (rel_type, full)
        return out

    def _relationships(self, part: str) -> list[tuple[str, str]]:
        return list(self._relationship_ids(part).values())


def _shape_kind(shape: ElementTree.Element) -> str | None:
    """What a person would call one object of a drawing (None: anchor bookkeeping, not an object)."""
    tag = shape.tag
    if tag == f"{_XDR}sp":
        return "a text box or shape"
    if tag == f"{_XDR}pic":
        return "a picture"
    if tag == f"{_XDR}grpSp":
        return "a group of shapes"
    if tag == f"{_XDR}cxnSp":
        return "a line or connector"
    if tag == f"{_XDR}contentPart":
        return "ink or a drawing"
    if tag == f"{_XDR}graphicFrame":
        data = shape.find(f".//{_A}graphicData")
        uri = (data.get("uri", "") if data is not None else "").lower()
        if uri.endswith("/chart"):
            return "a chart"
        if "diagram" in uri:
            return "a SmartArt diagram"
        if "slicer" in uri:
            return "a slicer"
        if "timeslicer" in uri or "timeline" in uri:
            return "a timeline"
        return "an object (chart, diagram or control)"
    if tag == f"{_MC}AlternateContent":  # newer objects: slicers, timelines, new chart types, 3D models
        text = ElementTree.tostring(shape, encoding="unicode").lower()
        for needle, kind in (("timeslicer", "a timeline"), ("slicer", "a slicer"), ("chartex", "a chart")):
            if needle in text:
                return kind
        return "an object Excel made (slicer, chart or model)"
    return None


def describe(losses_: list[Loss]) -> str:
    """``a picture and a text box or shape on sheet 'Notes'; macros (a VBA project)``."""
    by_sheet: dict[str | None, list[str]] = {}
    for loss in losses_:
        kinds = by_sheet.setdefault(loss.sheet, [])
        if loss.kind not in kinds:
            kinds.append(loss.kind)
    parts = []
    for sheet, kinds in by_sheet.items():
        what = kinds[0] if len(kinds) == 1 else ", ".join(kinds[:-1]) + " and " + kinds[-1]
        parts.append(what if sheet is None else f"{what} on sheet {sheet!r}")
    return "; ".join(parts)
