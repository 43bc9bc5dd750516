"""Reading a returned DOCX (as issued, filled in on a computer, or re-saved by LibreOffice/Word).

Identity: the custom properties ``BaoxueDocId``/``BaoxueForm``/``BaoxueVariant``/
``BaoxueTemplateVersion`` written at render time (``Identity.properties()``); a DOCX carries no
MAC, so this identity is a claim the caller checks against the issued record. A ``BaoxueQR``
property, when present, is verified like a printed code. Without properties the form is detected
by its printed title and labels and the printed document number is returned instead.

Parts: a paragraph holding a bookmark ``bx_part_<key>`` starts that part; failing that, a
paragraph printed as the part marker ``（存根）``; failing that, section breaks (one section per
part). See ``forms/build_templates.py``.
"""

from __future__ import annotations

import logging
import zipfile
from pathlib import Path

import docx
from docx.opc.exceptions import PackageNotFoundError
from docx.oxml.ns import qn
from docx.table import Table
from docx.text.paragraph import Paragraph as DocxParagraph
from lxml import etree

from forms import identity as ident
from forms import layout as L
from forms.errors import UnreadableDocument, UnsupportedInput
from forms.geometry import PART_MARK_RE, Cell, Paragraph, PartContent, TableModel, locate_part, norm
from parsers.base import (
    DOCX_MIME,
    ParsedForm,
    detect_form,
    doc_number_of,
    not_ours,
    parsed_form,
    read_fields,
    sniff,
    spec_and_variant,
)
from parsers.digital import DigitalParser

log = logging.getLogger(__name__)

_CUSTOM = "docProps/custom.xml"
_CP_NS = "{http://schemas.openxmlformats.org/officeDocument/2006/custom-properties}"
BOOKMARK_PREFIX = "bx_part_"
# Entities are never expanded nor fetched (uploads are refused with a DTD before this, see
# parsers.preflight; this parser is the second line).
_SAFE_XML = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False, load_dtd=False)


def custom_properties(path: Path) -> dict[str, str]:
    """The DOCX custom (user-defined) properties as text."""
    try:
        with zipfile.ZipFile(path) as z:
            if _CUSTOM not in z.namelist():
                return {}
            root = etree.fromstring(z.read(_CUSTOM), _SAFE_XML)
    except (zipfile.BadZipFile, etree.XMLSyntaxError, OSError) as e:
        log.debug("no custom properties in %s: %s", path, e)
        return {}
    out = {}
    for prop in root.iter(_CP_NS + "property"):
        name = prop.get("name")
        if name:
            out[name] = "".join(prop.itertext()).strip()
    return out


def _cell_marked(tc) -> bool:
    return bool(tc.findall(".//" + qn("w:drawing")) or tc.findall(".//" + qn("w:pict"))
                or tc.findall(".//" + qn("w:object")))


def _table_model(table: Table, part: str, index: int) -> TableModel:
    rows = []
    for ri, row in enumerate(table.rows):
        seen = set()
        cells = []
        ci = 0
        for cell in row.cells:
            if id(cell._tc) in seen:
                continue
            seen.add(id(cell._tc))
            text = "\n".join(p.text for p in cell.paragraphs)
            cells.append(Cell(text, {"kind": "docx", "part": part, "table": index, "row": ri, "col": ci},
                              None, _cell_marked(cell._tc)))
            ci += 1
        rows.append(cells)
    return TableModel(rows, {"kind": "docx", "part": part, "table": index})


def _bookmarks(p_el) -> list[str]:
    return [b.get(qn("w:name")) or "" for b in p_el.iter(qn("w:bookmarkStart"))]


def _body_items(document):
    """Top-level paragraphs and tables in order (content controls unwrapped)."""
    def walk(parent):
        for child in parent.iterchildren():
            if child.tag == qn("w:p"):
                yield "p", child
            elif child.tag == qn("w:tbl"):
                yield "t", child
            elif child.tag == qn("w:sdt"):
                content = child.find(qn("w:sdtContent"))
                if content is not None:
                    yield from walk(content)
    yield from walk(document.element.body)


def split_parts(document, parts: tuple[L.Part, ...]) -> tuple[dict[str, PartContent], list[str]]:
    """Split the body into the layout's parts (bookmarks, else markers, else section breaks)."""
    warnings: list[str] = []
    keys = [p.key for p in parts]
    names = {norm(p.name): p.key for p in parts}
    items = list(_body_items(document))

    def by_bookmark(i, kind, el):
        if kind != "p":
            return None
        for name in _bookmarks(el):
            if name.startswith(BOOKMARK_PREFIX) and name[len(BOOKMARK_PREFIX):] in keys:
                return name[len(BOOKMARK_PREFIX):]
        return None

    def by_marker(i, kind, el):
        if kind != "p":
            return None
        text = "".join(t.text or "" for t in el.iter(qn("w:t"))).strip()
        m = PART_MARK_RE.match(text)
        if m and norm(m.group(1)) in names:
            return names[norm(m.group(1))]
        return None

    starts: list[str | None] = [None] * len(items)
    if len(parts) == 1:
        starts = [keys[0]] + [None] * (len(items) - 1) if items else []
    else:
        for finder in (by_bookmark, by_marker):
            found = [finder(i, k, el) for i, (k, el) in enumerate(items)]
            if sum(1 for f in found if f) >= 1:
                starts = found
                if finder is by_marker:
                    warnings.append("未找到各联书签，按印出的联名拆分")
                break
        else:
            # Section breaks: a paragraph holding a w:sectPr ends a part.
            warnings.append("未找到各联标记，按分节拆分")
            part_i = 0
            starts[0:1] = [keys[0]] if items else []
            for i, (k, el) in enumerate(items):
                if k == "p" and el.find(qn("w:pPr") + "/" + qn("w:sectPr")) is not None and i + 1 < len(items):
                    part_i += 1
                    if part_i < len(keys):
                        starts[i + 1] = keys[part_i]
    contents: dict[str, PartContent] = {}
    current: PartContent | None = None
    tables_seen = 0
    for (kind, el), start in zip(items, starts, strict=True):
        if start is not None:
            current = contents.setdefault(start, PartContent(start))
        if current is None:
            continue  # content before the first part marker
        if kind == "t":
            current.tables.append(_table_model(Table(el, document._body), current.key, tables_seen))
            tables_seen += 1
        else:
            p = DocxParagraph(el, document._body)
            text = p.text
            if text.strip():
                current.paragraphs.append(Paragraph(text, {"kind": "docx", "part": current.key,
                                                           "paragraph": len(current.paragraphs)}))
    return contents, warnings


def _all_text(document) -> str:
    out = []
    for kind, el in _body_items(document):
        if kind == "p":
            out.append("".join(t.text or "" for t in el.iter(qn("w:t"))))
        else:
            out.extend("".join(t.text or "" for t in tc.iter(qn("w:t"))) for tc in el.iter(qn("w:tc")))
    return "\n".join(out)


class DocxParser(DigitalParser):
    """DOCX files rendered by this service (see the module docstring)."""

    name = "docx"

    @classmethod
    def score(cls, path: Path, mime: str | None) -> int | None:
        path = Path(path)
        if mime not in (None, "", DOCX_MIME, "application/zip", "application/octet-stream"):
            return None
        if sniff(path) != "zip":
            return None
        try:
            with zipfile.ZipFile(path) as z:
                return 100 if "word/document.xml" in z.namelist() else None
        except zipfile.BadZipFile:
            return None

    def parse(self, path: Path, *, secret: ident.QrKeys | str) -> ParsedForm:
        path = Path(path)
        try:
            document = docx.Document(str(path))
        except (PackageNotFoundError, zipfile.BadZipFile, KeyError, etree.XMLSyntaxError, ValueError) as e:
            raise UnreadableDocument(f"DOCX 文件“{path.name}”已损坏或无法读取：{e}", file=path.name) from e
        props = custom_properties(path)
        warnings: list[str] = []
        identity = None
        method = "title"
        qr = props.get("BaoxueQR") or props.get("BaoxueQR1")
        if qr:
            decoded = ident.decode(qr, secret)  # TamperedDocument when forged
            identity = ident.Identity(decoded.doc_id, decoded.form, decoded.variant, decoded.version)
            method = "qr"
            if decoded.retired_key:
                warnings.append(decoded.key_note)
        elif props.get("BaoxueForm") and props.get("BaoxueDocId"):
            identity = ident.Identity(props["BaoxueDocId"], props["BaoxueForm"], props.get("BaoxueVariant") or None,
                                      props.get("BaoxueTemplateVersion") or "")
            method = "metadata"
        if identity is not None:
            if props.get("BaoxueDocId") and props["BaoxueDocId"] != identity.doc_id:
                from forms.errors import TamperedDocument

                raise TamperedDocument("文书标识与文档属性不一致", doc_id=identity.doc_id)
            spec, variant = spec_and_variant(identity.form, identity.variant)
            if identity.version and identity.version != spec.version:
                warnings.append(f"文书模板版本 {identity.version} 与当前版本 {spec.version} 不同")
        else:
            text = _all_text(document)
            found = detect_form(text)
            if found is None:
                raise not_ours(path)
            spec, variant, _score = found
            warnings.append("文档没有文书标识（自定义属性），按标题和栏目识别，需按文号核对")
        parts = tuple(spec.parts(variant))
        contents, split_warnings = split_parts(document, parts)
        warnings.extend(split_warnings)
        located = {key: locate_part(spec, next(p for p in parts if p.key == key), content, variant)
                   for key, content in contents.items()}
        if not any(loc.located for loc in located.values()):
            if identity is None:
                raise not_ours(path)
            raise UnsupportedInput(f"文件“{path.name}”带有文书标识，但内容不是《{spec.doc_title(variant)}》的版式",
                                   file=path.name)
        result = read_fields(spec, variant, located)
        number = doc_number_of(spec, result, None if identity else _all_text(document))
        return parsed_form(identity=identity, spec=spec, variant=variant, result=result, input_kind="docx",
                           warnings=warnings, doc_number=number, method=method)
