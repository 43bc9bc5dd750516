"""Each page's identity QR code in the DOCX too, so that a copy printed from Word or WPS is known
when it comes back (the PDF gets its codes from ``forms.stamp``).

A DOCX has no pages, only the flow LibreOffice or Word lays out; a header image would repeat one
code on every page of a section. So each page's code is a picture anchored in the first paragraph
(or table row) that starts on that page, positioned relative to the page at the same place as the
PDF's code (``forms.layout.QR_*``), with no text wrap: it changes nothing in the flow. Where each
page starts comes from LibreOffice's layout of this very DOCX
(``PdfConverter.convert_with_layout``); the payload of page *i* of *n* is the PDF's. A page on
which nothing starts (one long paragraph running over it) cannot carry its code: the templates keep
paragraphs whole (``w:keepLines``) and table rows unsplit, so every page starts something.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Sequence

import segno
from lxml import etree

from forms import identity as ident_mod
from forms.identity import Identity, QrKeys
from forms.layout import QR_RIGHT_MM, QR_SIZE_MM, QR_TOP_MM
from forms.stamp import QR_ERROR, QUIET_MODULES

W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
R = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_EMU_PER_MM = 36000
_IMAGE_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/image"


def _png(payload: str) -> tuple[bytes, float]:
    """The code as PNG (quiet zone included) and its side in mm, the code itself ``QR_SIZE_MM``."""
    qr = segno.make_qr(payload, error=QR_ERROR, boost_error=True)
    n = qr.symbol_size(border=0)[0]
    buf = io.BytesIO()
    qr.save(buf, kind="png", scale=12, border=QUIET_MODULES)
    return buf.getvalue(), QR_SIZE_MM * (n + 2 * QUIET_MODULES) / n


def _anchor(rel_id: str, shape_id: int, x_mm: float, y_mm: float, side_mm: float) -> etree._Element:
    emu = round(side_mm * _EMU_PER_MM)
    xml = (
        f'<w:r xmlns:w="{W}" xmlns:r="{R}" '
        'xmlns:wp="http://schemas.openxmlformats.org/drawingml/2006/wordprocessingDrawing" '
        'xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main" '
        'xmlns:pic="http://schemas.openxmlformats.org/drawingml/2006/picture"><w:drawing>'
        f'<wp:anchor distT="0" distB="0" distL="0" distR="0" simplePos="0" relativeHeight="{shape_id}" '
        'behindDoc="0" locked="1" layoutInCell="0" allowOverlap="1"><wp:simplePos x="0" y="0"/>'
        f'<wp:positionH relativeFrom="page"><wp:posOffset>{round(x_mm * _EMU_PER_MM)}</wp:posOffset></wp:positionH>'
        f'<wp:positionV relativeFrom="page"><wp:posOffset>{round(y_mm * _EMU_PER_MM)}</wp:posOffset></wp:positionV>'
        f'<wp:extent cx="{emu}" cy="{emu}"/><wp:effectExtent l="0" t="0" r="0" b="0"/><wp:wrapNone/>'
        f'<wp:docPr id="{shape_id}" name="BaoxueQR{shape_id}"/><wp:cNvGraphicFramePr>'
        '<a:graphicFrameLocks noChangeAspect="1"/></wp:cNvGraphicFramePr><a:graphic>'
        '<a:graphicData uri="http://schemas.openxmlformats.org/drawingml/2006/picture"><pic:pic>'
        f'<pic:nvPicPr><pic:cNvPr id="{shape_id}" name="qr{shape_id}.png"/><pic:cNvPicPr/></pic:nvPicPr>'
        f'<pic:blipFill><a:blip r:embed="{rel_id}"/><a:stretch><a:fillRect/></a:stretch></pic:blipFill>'
        f'<pic:spPr><a:xfrm><a:off x="0" y="0"/><a:ext cx="{emu}" cy="{emu}"/></a:xfrm>'
        '<a:prstGeom prst="rect"><a:avLst/></a:prstGeom></pic:spPr></pic:pic></a:graphicData></a:graphic>'
        '</wp:anchor></w:drawing></w:r>')
    return etree.fromstring(xml)


def _section_break_only(p) -> bool:
    """An empty paragraph that only carries a section break: LibreOffice imports it as the break
    itself, not as a paragraph of its own (so it is not counted in the layout's element list)."""
    return p.find(f"{{{W}}}pPr/{{{W}}}sectPr") is not None and not p.findall(f".//{{{W}}}r")


def add_page_codes(docx: bytes, starts: Sequence[tuple[int, int | None, int]], page_widths_mm: Sequence[float],
                   identity: Identity, secret: QrKeys | str) -> bytes:
    """``docx`` with page *i*'s code anchored on page *i* (see the module docstring).

    ``starts``: (body element index, table row or None, page) from the converter; ``page_widths_mm``:
    each page's width (portrait or landscape), from the PDF of the same layout."""
    n = len(page_widths_mm)
    first: dict[int, tuple[int, int | None]] = {}
    for index, row, page in starts:
        first.setdefault(page, (index, row))
    with zipfile.ZipFile(io.BytesIO(docx)) as zin:
        members = {i.filename: zin.read(i.filename) for i in zin.infolist()}
        order = [i.filename for i in zin.infolist()]
    body_root = etree.fromstring(members["word/document.xml"])
    body = body_root.find(f"{{{W}}}body")
    elements = [c for c in body if c.tag == f"{{{W}}}tbl" or (c.tag == f"{{{W}}}p" and not _section_break_only(c))]
    rels = etree.fromstring(members["word/_rels/document.xml.rels"])
    for page in range(1, n + 1):
        if page not in first:
            continue  # nothing starts on this page (see the module docstring)
        index, row = first[page]
        el = elements[index]
        if row is not None:
            tr = el.findall(f"{{{W}}}tr")[row]
            para = tr.find(f".//{{{W}}}p")
        else:
            para = el
        png, side = _png(ident_mod.encode(identity.for_page(page, n), secret))
        name = f"media/baoxue_qr_{page}.png"
        members[f"word/{name}"] = png
        order.append(f"word/{name}")
        rel_id = f"rIdBaoxueQr{page}"
        rel = etree.SubElement(rels, "{http://schemas.openxmlformats.org/package/2006/relationships}Relationship")
        rel.set("Id", rel_id)
        rel.set("Type", _IMAGE_REL)
        rel.set("Target", name)
        quiet = (side - QR_SIZE_MM) / 2
        x = page_widths_mm[page - 1] - QR_RIGHT_MM - QR_SIZE_MM - quiet
        run = _anchor(rel_id, 9000 + page, x, QR_TOP_MM - quiet, side)
        ppr = para.find(f"{{{W}}}pPr")
        para.insert(list(para).index(ppr) + 1 if ppr is not None else 0, run)
    members["word/document.xml"] = etree.tostring(body_root, xml_declaration=True, encoding="UTF-8",
                                                  standalone=True)
    members["word/_rels/document.xml.rels"] = etree.tostring(rels, xml_declaration=True, encoding="UTF-8",
                                                             standalone=True)
    ct = members["[Content_Types].xml"].decode("utf-8")
    if not re.search(r'Extension="png"', ct, re.IGNORECASE):
        ct = ct.replace("<Default ", '<Default Extension="png" ContentType="image/png"/><Default ', 1)
        members["[Content_Types].xml"] = ct.encode("utf-8")
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zout:
        for name in order:
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zout.writestr(info, members[name], compresslevel=1)
    return out.getvalue()
