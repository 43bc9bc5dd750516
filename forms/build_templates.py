"""Write the docxtpl sources ``templates/forms/*.docx`` from each spec's layout.

Run ``python -m forms.build_templates`` after changing a spec's layout; the output is deterministic
(fixed zip timestamps and core properties), so an unchanged layout gives byte-identical files and
the generated templates are committed next to this script.

One template per distinct layout: every registered spec, every variant's ``spec.parts(variant)``,
file name ``spec.template_name(variant)``. Blocks of ``forms.layout`` become:

* ``Title`` / ``Para``: one paragraph; ``{field}`` -> ``{{ f.field or '____' }}`` (blank values
  print as ____), ``{variant.key}`` -> ``{{ variant.key }}``, ``{form.title}`` ->
  ``{{ form.title }}``, ``{doc.key}`` -> ``{{ doc.key or '____' }}``; each tag is one run.
* ``Grid``: a bordered fixed-width table (widths in mm, spans as merged cells ``w:gridSpan``);
  a ``Label`` cell holds its text, a ``Value`` cell exactly one run ``{{ f.<field> }}``. A row
  containing a Value with ``height_mm`` gets that minimum height (signature and seal zones). The
  run of a field printed as character boxes (``Field.hand_boxes``) is set at ``BOX_PT``, and its
  cell must hold the boxes on one line.
* ``Rows``: a header row of column labels repeated on every page (``w:tblHeader``), then the
  docxtpl row loop ``{%tr for r in rows.<field> %}`` / one row of ``{{ r.<col> }}`` (number
  column ``{{ r._no }}``) / ``{%tr endfor %}``.
* ``Spacer``: an empty paragraph of exactly that height.
* ``Heading``: a 黑体 line kept with what follows. ``Items``: a docxtpl paragraph loop
  ``{%p for r in rows.<field> %}``, one body paragraph per row, each kept whole on a page.
* ``Signoff``: the 落款 — unit(s) and date right-aligned (date four characters from the right),
  two blank lines above for the seal, kept with the paragraph before it.
* ``Banji``: the 版记 — a text box anchored in a last empty paragraph (kept with the one before)
  and placed at the bottom of the type area of that page, lines between rules.
* ``Grid(keep=True)`` / ``Rows(keep=True)``: every row kept with the next (``w:keepNext``) and the
  block kept with the one before, so a signature table or a short list never breaks or stands alone.
* ``Rows(keep_tail=k)``: two tables, each with the header row: ``rows.<field>[:-k]`` (omitted
  when there are at most k rows), not kept, so the list starts under what precedes it and splits
  over pages; then ``rows.<field>[-k:]`` with every row kept with the next, so the last k rows
  move whole to the page of the signatures.

Pages and parts: each ``Part`` is one section (A4, landscape when ``Part.landscape``) starting on
a new page. Portrait margins are ``layout.MARGINS_MM`` (GB/T 9704: type area 156 x 225 mm);
landscape parts use a 35 mm top margin (below the stamped QR square, which ends
``QR_TOP_MM + QR_SIZE_MM`` = 28 mm from the top, its quiet zone and the caption the header prints
under it) and narrower side margins when the tables need the width. The header prints the caption
under the QR ("<doc id>  <page>/<pages>"), the footer "第 X 页 共 Y 页" (PAGE / NUMPAGES fields).

**Part markers** (how the parsers split a document into parts; both survive a LibreOffice
re-save):

1. every part's first paragraph carries a bookmark ``bx_part_<key>`` (DOCX parser);
2. in layouts with more than one part that paragraph prints the part name small and
   right-aligned as ``（<name>）`` — e.g. ``（存根）`` — so PDF text and scans show it too
   (``PART_MARK_FORMAT``); a page whose first text line is not a marker continues the previous
   part. Single-part layouts print no marker (their paragraph is an empty 1 pt line).

Styles (fonts at style level, ``w:ascii``/``w:hAnsi``/``w:eastAsia``; the renderer swaps the four
role fonts below for the configured ones): ``BxTitle`` 22 pt (2号) bold in the title face
(FandolSong, for 小标宋); ``BxBody``/``BxSubtitle`` 16 pt (3号) in the body face (FandolFang, 仿宋)
on the GB/T 9704 grid of 22 lines × 28 characters; ``BxHeading`` 16 pt in the heading face (黑体);
``BxSmall`` 12 pt and ``BxBanji`` 14 pt (4号) in the body face; ``BxCell``/``BxLabel`` form tables
10.5 pt (五号) in the table face (Noto Serif CJK SC); ``BxPartMark``/``BxFooter`` 9 pt,
``BxCaption`` 5 pt; exact line pitches. Values of a
fixed shape (ID numbers, 学籍号, phones, dates) in cells too narrow for them get a horizontal
character scale (``w:w``, not below 75 %) so they print on one line.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import logging
import re
import sys
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import docx
from docx.enum.section import WD_ORIENT, WD_SECTION
from docx.enum.style import WD_STYLE_TYPE
from docx.enum.table import WD_CELL_VERTICAL_ALIGNMENT, WD_ROW_HEIGHT_RULE
from docx.enum.text import WD_ALIGN_PARAGRAPH, WD_LINE_SPACING
from docx.oxml import OxmlElement
from docx.oxml.ns import qn
from docx.shared import Mm, Pt, RGBColor

from forms import layout as L
from forms.registry import all_specs
from forms.spec import FormSpec, Kind, Variant

log = logging.getLogger(__name__)

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates" / "forms"
# Template font names, one per role; the renderer swaps each for its configured face
# (config.FONT_BODY, FONT_TITLE, FONT_TABLE, FONT_HEADING). GB/T 9704: 正文 3号仿宋, 标题 2号小标宋,
# 一级标题 黑体. FandolFang / FandolSong (bold, the free stand-in for 小标宋) are installed by
# scripts/setup.sh; form tables keep a 宋体 face (Noto Serif CJK SC) at 五号.
FONT_BODY = "FandolFang"
FONT_TITLE = "FandolSong"
FONT_TABLE = "Noto Serif CJK SC"
FONT_HEADING = "Noto Sans CJK SC"
PART_MARK_FORMAT = "（{name}）"
BOOKMARK_PREFIX = "bx_part_"

A4 = (210.0, 297.0)  # mm
LANDSCAPE_MARGINS_MM = {"top": 35.0, "bottom": 20.0, "left": 20.0, "right": 20.0}
MIN_SIDE_MARGIN_MM = 15.0
CELL_PT = 10.5  # 五号
CELL_LINE_PT = 14.0  # exact line pitch in table cells
GRID_ROW_MIN_MM = 7.0  # room for handwriting in a one-line cell
ROWS_ROW_MIN_MM = 8.0
CELL_MARGIN_MM = 1.2  # left/right padding inside cells
# Character boxes (Field.hand_boxes) print at 小二: □ is one em wide and 0.8 em tall in Noto
# Serif CJK, each box about 5 mm tall and 6 mm apart: a digit of ordinary handwriting (3-4.5 mm)
# fits inside it, clear of the edges a scan must take away.
BOX_PT = 18.0
# ... in a drop-out grey (issue 15): light enough that a scan's ink threshold leaves the boxes out
# (a fax drops them; at 200 dpi and more they are paler than any pen's ink), so a digit written over
# or along an edge keeps its strokes; the scan reader takes the boxes away only where a scan still
# shows them (``parsers.scan.boxes.box_writing``). Clearly visible on paper (18 % grey, darker than
# Word's lightest table shading).
BOX_RGB = (0xD0, 0xD0, 0xD0)
BOX_LINE_PT = 26.0
FIXED_DATE = dt.datetime(2026, 1, 1, 0, 0, 0)
ZIP_DATE = (1980, 1, 1, 0, 0, 0)

# Para/Title style names of forms.layout -> (docx style, font, size pt, bold, exact line pitch pt).
# GB/T 9704 5.2.2: 22 lines in the 156 x 225 mm type area: 3号 (16 pt) on a line pitch of
# 225 mm / 22 = 28.95 pt. At 16 pt a line holds 27 characters, not the standard's 28 (Word gets 28
# from a character grid that squeezes the pitch; LibreOffice drops the punctuation at the end of a
# full line when characters are set closer, so the pitch is left alone).
BODY_PT, BODY_LINE_PT = 16.0, 28.95
STYLES = {
    "title": ("BxTitle", FONT_TITLE, 22.0, True, 36.0),
    "subtitle": ("BxSubtitle", FONT_BODY, BODY_PT, False, BODY_LINE_PT),
    "body": ("BxBody", FONT_BODY, BODY_PT, False, BODY_LINE_PT),
    "heading": ("BxHeading", FONT_HEADING, BODY_PT, False, BODY_LINE_PT),
    "small": ("BxSmall", FONT_BODY, 12.0, False, 19.0),
}
BANJI_PT, BANJI_LINE_PT = 14.0, 24.0  # 版记: 4号仿宋
EXTRA_STYLES = {
    "cell": ("BxCell", FONT_TABLE, CELL_PT, False, CELL_LINE_PT),
    "label": ("BxLabel", FONT_TABLE, CELL_PT, False, CELL_LINE_PT),
    "partmark": ("BxPartMark", FONT_TABLE, 9.0, False, 12.0),
    "footer": ("BxFooter", FONT_TABLE, 9.0, False, 12.0),
    "tiny": ("BxTiny", FONT_TABLE, 1.0, False, 1.0),
    "banji": ("BxBanji", FONT_BODY, BANJI_PT, False, BANJI_LINE_PT),
}
# Prose is set flush left, not justified: in a zh-CN paragraph LibreOffice (7.4) hangs a comma or
# full stop that ends a full line past the margin, as Chinese typography does, but in a justified
# paragraph it then does not print it at all. Full-width characters keep the lines even anyway.
JUSTIFY = WD_ALIGN_PARAGRAPH.LEFT
# 落款: room above the issuing unit for the top of the seal (GB/T 9704 7.3.5.1: the seal, about
# 42 mm across, presses on the unit and the date and reaches to within a line of the text).
SIGNOFF_GAP_LINES = 2


class LayoutError(ValueError):
    """A layout the builder cannot turn into a template (names the form, part and block)."""


# ---- what to build ----------------------------------------------------------------------------

@dataclass(frozen=True)
class TemplateJob:
    spec: FormSpec
    variants: tuple[Variant | None, ...]  # the variants sharing this layout
    parts: tuple
    name: str


def template_jobs(specs: Iterable[FormSpec] | None = None) -> list[TemplateJob]:
    """One job per distinct template file over every registered spec and variant."""
    jobs: dict[str, TemplateJob] = {}
    for spec in (specs if specs is not None else all_specs().values()):
        for variant in (spec.variants or (None,)):
            name = spec.template_name(variant)
            parts = tuple(spec.parts(variant))
            if name in jobs:
                prev = jobs[name]
                if prev.parts != parts:
                    raise LayoutError(f"{spec.code}: variants {prev.variants[0] and prev.variants[0].code} "
                                      f"and {variant and variant.code} print differently but share "
                                      f"template {name}; give their Layouts distinct template_key")
                jobs[name] = TemplateJob(spec, (*prev.variants, variant), parts, name)
            else:
                jobs[name] = TemplateJob(spec, (variant,), parts, name)
    return list(jobs.values())


# ---- low-level XML helpers ------------------------------------------------------------------

def _set_fonts(rpr, font: str) -> None:
    rfonts = rpr.find(qn("w:rFonts"))
    if rfonts is None:
        rfonts = OxmlElement("w:rFonts")
        rpr.insert(0, rfonts)
    for attr in list(rfonts.attrib):
        del rfonts.attrib[attr]  # drop theme fonts: they would win over the names
    for attr in ("w:ascii", "w:hAnsi", "w:eastAsia", "w:cs"):
        rfonts.set(qn(attr), font)


def _twips(mm: float) -> int:
    return round(mm / 25.4 * 1440)


def _el(tag: str, **attrs) -> OxmlElement:
    e = OxmlElement(tag)
    for k, v in attrs.items():
        e.set(qn(k.replace("_", ":", 1)), str(v))
    return e


_PPR_AFTER_AUTOSPACE = ("bidi", "adjustRightInd", "snapToGrid", "spacing", "ind", "contextualSpacing",
                        "mirrorIndents", "suppressOverlap", "jc", "textDirection", "textAlignment",
                        "textboxTightWrap", "outlineLvl", "divId", "cnfStyle", "rPr", "sectPr", "pPrChange")


def _no_autospace(ppr) -> None:
    """No automatic extra space between CJK and Latin/digits: dates and numbers keep their
    natural width and fit the cells they were sized for. No hanging punctuation either
    (``w:overflowPunct`` off): a comma hung past a full justified line was not printed at all."""
    anchor = next((c for c in ppr if c.tag.split("}")[1] in _PPR_AFTER_AUTOSPACE), None)
    for tag in ("w:overflowPunct", "w:autoSpaceDE", "w:autoSpaceDN"):
        el = _el(tag, w_val=0)
        if anchor is None:
            ppr.append(el)
        else:
            anchor.addprevious(el)


def _add_style(doc, name: str, font: str, size: float, bold: bool, line: float, *,
               align=None, before: float = 0, after: float = 0, first_line_pt: float | None = None):
    style = doc.styles.add_style(name, WD_STYLE_TYPE.PARAGRAPH)
    style.base_style = doc.styles["Normal"]
    style.quick_style = True
    style.font.size = Pt(size)
    style.font.bold = bold
    _set_fonts(style.element.get_or_add_rPr(), font)
    pf = style.paragraph_format
    pf.line_spacing_rule = WD_LINE_SPACING.EXACTLY
    pf.line_spacing = Pt(line)
    pf.space_before = Pt(before)
    pf.space_after = Pt(after)
    pf.widow_control = False
    if align is not None:
        pf.alignment = align
    if first_line_pt:
        pf.first_line_indent = Pt(first_line_pt)
    _no_autospace(style.element.get_or_add_pPr())
    return style


def _setup_styles(doc) -> None:
    """Document defaults and the named styles (fonts at style level, no theme fonts)."""
    styles_el = doc.styles.element
    rpr_default = styles_el.find(qn("w:docDefaults") + "/" + qn("w:rPrDefault") + "/" + qn("w:rPr"))
    _set_fonts(rpr_default, FONT_TABLE)
    lang = rpr_default.find(qn("w:lang"))
    if lang is None:
        lang = OxmlElement("w:lang")
        rpr_default.append(lang)
    lang.set(qn("w:val"), "en-US")
    lang.set(qn("w:eastAsia"), "zh-CN")
    normal = doc.styles["Normal"]
    _set_fonts(normal.element.get_or_add_rPr(), FONT_TABLE)
    normal.font.size = Pt(CELL_PT)
    normal.paragraph_format.space_after = Pt(0)
    normal.paragraph_format.space_before = Pt(0)
    _add_style(doc, "BxTitle", FONT_TITLE, 22.0, True, 36.0, align=WD_ALIGN_PARAGRAPH.CENTER)
    _add_style(doc, "BxSubtitle", FONT_BODY, BODY_PT, False, BODY_LINE_PT, align=WD_ALIGN_PARAGRAPH.CENTER)
    for name in ("BxBody", "BxHeading"):
        st = _add_style(doc, name, FONT_HEADING if name == "BxHeading" else FONT_BODY, BODY_PT, False,
                        BODY_LINE_PT, align=JUSTIFY)
        # a paragraph is never split over two pages: every page starts a paragraph or a table row,
        # where the DOCX's own QR code of that page is anchored (forms/docx_qr.py)
        st.paragraph_format.keep_together = True
    doc.styles["BxHeading"].paragraph_format.keep_with_next = True
    _add_style(doc, "BxSmall", FONT_BODY, 12.0, False, 19.0, align=JUSTIFY)
    _add_style(doc, "BxCell", FONT_TABLE, CELL_PT, False, CELL_LINE_PT, align=WD_ALIGN_PARAGRAPH.LEFT)
    _add_style(doc, "BxLabel", FONT_TABLE, CELL_PT, False, CELL_LINE_PT, align=WD_ALIGN_PARAGRAPH.CENTER)
    _add_style(doc, "BxPartMark", FONT_TABLE, 9.0, False, 12.0, align=WD_ALIGN_PARAGRAPH.RIGHT)
    _add_style(doc, "BxFooter", FONT_TABLE, 9.0, False, 12.0, align=WD_ALIGN_PARAGRAPH.CENTER)
    _add_style(doc, "BxTiny", FONT_TABLE, 1.0, False, 1.0)
    _add_style(doc, "BxCaption", FONT_TABLE, CAPTION_PT, False, CAPTION_PT + 1, align=WD_ALIGN_PARAGRAPH.RIGHT)
    _add_style(doc, "BxBanji", FONT_BODY, BANJI_PT, False, BANJI_LINE_PT, align=WD_ALIGN_PARAGRAPH.LEFT)


def _style_for(style: str) -> str:
    try:
        return STYLES[style][0]
    except KeyError:
        raise LayoutError(f"unknown paragraph style {style!r}; known: {', '.join(STYLES)}") from None


# ---- placeholders -------------------------------------------------------------------------------

def tag(expr: str) -> str:
    """A Jinja print tag: ``{{ expr }}``."""
    return "{{ " + expr + " }}"


def jinja_for(name: str) -> str:
    """The docxtpl tag printing placeholder ``name`` of a Title/Para text."""
    if "." not in name:
        return tag(f"f.{name} or '____'")
    head = name.split(".", 1)[0]
    if head == "variant" or name == "form.title" or head == "form":
        return tag(name)
    if head == "doc":
        return tag(f"{name} or '____'")
    raise LayoutError(f"unknown placeholder {{{name}}}: use {{field}}, {{variant.key}}, "
                      f"{{form.title}} or {{doc.key}}")


def _add_text_runs(paragraph, text: str) -> None:
    """Literal text and one run per placeholder tag (docxtpl needs each tag inside one run)."""
    pos = 0
    for m in L.PLACEHOLDER_RE.finditer(text):
        if m.start() > pos:
            paragraph.add_run(text[pos:m.start()])
        paragraph.add_run(jinja_for(m.group(1)))
        pos = m.end()
    if pos < len(text):
        paragraph.add_run(text[pos:])


def _check_fields(spec: FormSpec, part: L.Part) -> None:
    names = {f.name for f in spec.fields}
    for block in part.blocks:
        if isinstance(block, (L.Title, L.Para)):
            refs = [p for p in L.placeholders(block.text) if "." not in p]
            for p in L.placeholders(block.text):
                jinja_for(p)  # raises for an unknown kind of placeholder
            if isinstance(block, L.Para):
                _style_for(block.style)
        elif isinstance(block, L.Grid):
            refs = [c.field for r in block.rows for c in r if isinstance(c, L.Value)]
            for r in block.rows:
                total = sum(c.span for c in r)
                if total != len(block.widths):
                    raise LayoutError(f"{spec.code}/{part.key}: a grid row spans {total} columns, "
                                      f"widths give {len(block.widths)}: {r}")
        elif isinstance(block, L.Rows):
            refs = [block.field]
            f = spec.field(block.field)
            if f.kind != Kind.TABLE:
                raise LayoutError(f"{spec.code}/{part.key}: Rows({block.field}) is not a TABLE field")
            for c in block.columns:
                f.column(c)
        elif isinstance(block, (L.Spacer, L.Heading)):
            refs = []
        elif isinstance(block, L.Items):
            refs = [block.field]
            f = spec.field(block.field)
            if f.kind != Kind.TABLE:
                raise LayoutError(f"{spec.code}/{part.key}: Items({block.field}) is not a TABLE field")
            for p in L.placeholders(block.text):
                if p not in ("_no", "_cn"):
                    f.column(p)
        elif isinstance(block, L.Signoff):
            refs = [*block.names, block.date, *block.seals]
            if len(block.seals) != len(block.names):
                raise LayoutError(f"{spec.code}/{part.key}: a Signoff needs one seal per name")
            for name in block.seals:
                if spec.field(name).kind != Kind.SEAL:
                    raise LayoutError(f"{spec.code}/{part.key}: {name} is not a SEAL field")
        elif isinstance(block, L.Banji):
            refs = [p for t in block.lines for p in L.placeholders(t) if "." not in p]
            for t in block.lines:
                for p in L.placeholders(t):
                    jinja_for(p)
        else:
            raise LayoutError(f"{spec.code}/{part.key}: unknown block {block!r}")
        for r in refs:
            if r not in names:
                raise LayoutError(f"{spec.code}/{part.key}: {r!r} is not a field of the spec")


# ---- page setup ------------------------------------------------------------------------------------

def _widest_table_mm(part: L.Part, spec: FormSpec) -> float:
    widest = 0.0
    for block in part.blocks:
        if isinstance(block, L.Grid):
            widest = max(widest, sum(block.widths))
        elif isinstance(block, L.Rows) and block.widths:
            widest = max(widest, sum(block.widths))
    return widest


def page_setup(part: L.Part, spec: FormSpec) -> tuple[tuple[float, float], dict[str, float]]:
    """Page size (w, h) and margins in mm for one part."""
    if part.landscape:
        size = (A4[1], A4[0])
        margins = dict(LANDSCAPE_MARGINS_MM)
        left, right = L.MARGINS_MM["left"], L.MARGINS_MM["right"]
    else:
        size = A4
        margins = dict(L.MARGINS_MM)
        left, right = margins["left"], margins["right"]
    need = _widest_table_mm(part, spec)
    free = size[0] - left - right
    if need > free + 0.1:  # narrower side margins, symmetric, never under the minimum
        side = max(MIN_SIDE_MARGIN_MM, (size[0] - need) / 2)
        left = right = side
    margins["left"], margins["right"] = left, right
    return size, margins


def _apply_section(section, part: L.Part, spec: FormSpec) -> float:
    (w, h), m = page_setup(part, spec)
    section.orientation = WD_ORIENT.LANDSCAPE if part.landscape else WD_ORIENT.PORTRAIT
    section.page_width, section.page_height = Mm(w), Mm(h)
    section.top_margin, section.bottom_margin = Mm(m["top"]), Mm(m["bottom"])
    section.left_margin, section.right_margin = Mm(m["left"]), Mm(m["right"])
    section.header_distance = Mm(CAPTION_TOP_MM)
    section.footer_distance = Mm(min(12.0, m["bottom"] - 8))
    section.gutter = Mm(0)
    return w - m["left"] - m["right"]


# The caption under the stamped QR square (forms/stamp.py): the document id and "page/pages", printed
# by the template so that its font is embedded like every other and a copy printed from Word has
# it too; a scan without a readable code is identified by it (parsers/scan.py). It sits in the
# header, inside the stamper's corner (geometry.stamp_zone), under the code's white quiet zone.
CAPTION_PT = 5.0
CAPTION_TOP_MM = L.QR_TOP_MM + L.QR_SIZE_MM + 3.0


def _add_header(section, right_margin_mm: float) -> None:
    section.header.is_linked_to_previous = False
    p = section.header.paragraphs[0]
    p.style = "BxCaption"
    # reach into the right margin so the caption lies under the code, not left of it
    p.paragraph_format.right_indent = Mm(L.QR_RIGHT_MM - right_margin_mm)
    p.add_run(tag("ident and ident.doc_id") + "  ")
    _add_field(p, "PAGE")
    p.add_run("/")
    _add_field(p, "NUMPAGES")


def _add_field(p, instr: str) -> None:
    """A PAGE / NUMPAGES field (begin, instruction, separate, placeholder result, end)."""
    for kind in ("begin", None, "separate", "1", "end"):
        run = p.add_run()
        if kind is None:
            it = _el("w:instrText")
            it.set(qn("xml:space"), "preserve")
            it.text = f" {instr} "
            run._r.append(it)
        elif kind == "1":
            run.text = "1"
        else:
            run._r.append(_el("w:fldChar", w_fldCharType=kind))


def _add_footer(section) -> None:
    section.footer.is_linked_to_previous = False
    p = section.footer.paragraphs[0]
    p.style = "BxFooter"
    p.add_run("第 ")
    _add_field(p, "PAGE")
    p.add_run(" 页 共 ")
    _add_field(p, "NUMPAGES")
    p.add_run(" 页")


# ---- 版记 text box ---------------------------------------------------------------------------------

_EMU_PER_MM = 36000
_BANJI_NS = ('xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main" '
             'xmlns:wp="http://schemas.openxmlformats.org/drawingml/2006/wordprocessingDrawing" '
             'xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main" '
             'xmlns:wps="http://schemas.microsoft.com/office/word/2010/wordprocessingShape"')


def _banji_drawing(block: L.Banji, width_mm: float, shape_id: int):
    """A run holding the 版记 text box: each line a paragraph of 4号仿宋 indented one character,
    with a thick rule above the first and below the last and thin rules between (GB/T 9704 8)."""
    from xml.sax.saxutils import escape

    from lxml import etree

    n = len(block.lines)
    paras = []
    for i, text in enumerate(block.lines):
        top = '<w:top w:val="single" w:sz="8" w:space="2" w:color="000000"/>' if i == 0 else ""
        bottom = "12" if i == n - 1 else "4"
        runs = []
        pos = 0
        for m in L.PLACEHOLDER_RE.finditer(text):
            if m.start() > pos:
                runs.append(escape(text[pos:m.start()]))
            runs.append(escape(jinja_for(m.group(1))))
            pos = m.end()
        runs.append(escape(text[pos:]))
        body = "".join(f'<w:r><w:t xml:space="preserve">{r}</w:t></w:r>' for r in runs if r)
        ind = round(BANJI_PT * 20)
        paras.append(f'<w:p><w:pPr><w:pStyle w:val="BxBanji"/><w:pBdr>{top}<w:bottom w:val="single" w:sz="{bottom}" '
                     f'w:space="2" w:color="000000"/></w:pBdr><w:ind w:left="{ind}" w:right="{ind}"/></w:pPr>'
                     f'{body}</w:p>')
    cx = round(width_mm * _EMU_PER_MM)
    cy = round(n * (BANJI_LINE_PT + 5) / 72 * 25.4 * _EMU_PER_MM)
    xml = (f'<w:r {_BANJI_NS}><w:drawing><wp:anchor distT="0" distB="0" distL="0" distR="0" simplePos="0" '
           f'relativeHeight="{shape_id}" behindDoc="0" locked="0" layoutInCell="0" allowOverlap="0">'
           '<wp:simplePos x="0" y="0"/><wp:positionH relativeFrom="margin"><wp:align>center</wp:align>'
           '</wp:positionH><wp:positionV relativeFrom="margin"><wp:align>bottom</wp:align></wp:positionV>'
           f'<wp:extent cx="{cx}" cy="{cy}"/><wp:effectExtent l="0" t="0" r="0" b="0"/><wp:wrapTopAndBottom/>'
           f'<wp:docPr id="{shape_id}" name="Banji{shape_id}"/><wp:cNvGraphicFramePr/><a:graphic>'
           '<a:graphicData uri="http://schemas.microsoft.com/office/word/2010/wordprocessingShape"><wps:wsp>'
           '<wps:cNvSpPr txBox="1"/><wps:spPr><a:xfrm><a:off x="0" y="0"/>'
           f'<a:ext cx="{cx}" cy="{cy}"/></a:xfrm><a:prstGeom prst="rect"><a:avLst/></a:prstGeom><a:noFill/>'
           f'<a:ln><a:noFill/></a:ln></wps:spPr><wps:txbx><w:txbxContent>{"".join(paras)}</w:txbxContent>'
           '</wps:txbx><wps:bodyPr rot="0" vert="horz" wrap="square" lIns="0" tIns="0" rIns="0" bIns="0" '
           'anchor="b"><a:spAutoFit/></wps:bodyPr></wps:wsp></a:graphicData></a:graphic></wp:anchor>'
           '</w:drawing></w:r>')
    return etree.fromstring(xml)


# ---- blocks ------------------------------------------------------------------------------------------

class _Builder:
    def __init__(self, job: TemplateJob):
        self.job = job
        self.spec = job.spec
        self.doc = docx.Document()
        for part in job.parts:
            _check_fields(self.spec, part)
        _setup_styles(self.doc)
        self._bookmark_id = 0
        self._banji_id = 0
        self._chain_start = None  # see keep_previous
        # python-docx's default document starts with no paragraph; sections[0] is the body sectPr.

    # paragraphs
    def paragraph(self, style: str, text: str = ""):
        p = self.doc.add_paragraph(style=style)
        if text:
            _add_text_runs(p, text)
        return p

    def bookmark(self, paragraph, name: str) -> None:
        self._bookmark_id += 1
        start = _el("w:bookmarkStart", w_id=self._bookmark_id, w_name=name)
        end = _el("w:bookmarkEnd", w_id=self._bookmark_id)
        ppr = paragraph._p.find(qn("w:pPr"))
        idx = 1 if ppr is not None else 0
        paragraph._p.insert(idx, start)
        paragraph._p.append(end)

    def part_head(self, part: L.Part, multi: bool) -> None:
        if multi:
            p = self.paragraph("BxPartMark")
            p.add_run(PART_MARK_FORMAT.format(name=part.name))
        else:
            p = self.paragraph("BxTiny")
        p.paragraph_format.keep_with_next = True
        self.bookmark(p, BOOKMARK_PREFIX + part.key)

    def title(self, block: L.Title) -> None:
        style = "BxSubtitle" if block.style == "subtitle" else "BxTitle"
        p = self.paragraph(style, block.text)
        p.paragraph_format.keep_with_next = True

    def para(self, block: L.Para) -> None:
        p = self.paragraph(_style_for(block.style), block.text)
        pf = p.paragraph_format
        pf.alignment = {"justify": JUSTIFY, "left": WD_ALIGN_PARAGRAPH.LEFT,
                        "right": WD_ALIGN_PARAGRAPH.RIGHT, "center": WD_ALIGN_PARAGRAPH.CENTER}[block.align]
        if block.indent:
            size = STYLES[block.style][2]
            pf.first_line_indent = Pt(2 * size)

    def heading(self, block: L.Heading) -> None:
        self.paragraph("BxHeading", block.text)  # the style keeps it with the next paragraph

    def items(self, block: L.Items) -> None:
        """One body paragraph per row (docxtpl paragraph loop), each kept whole on one page."""
        self.paragraph("BxBody", "{%p for r in rows." + block.field + " %}")
        p = self.doc.add_paragraph(style="BxBody")
        # "[…{col}…]" prints only when the row has that column (an optional column)
        for k, piece in enumerate(re.split(r"[\[\]]", block.text)):
            optional = k % 2 == 1
            names = L.placeholders(piece)
            if optional:
                p.add_run("{% if " + " and ".join(f"r.{n}" for n in names) + " %}")
            pos = 0
            for m in L.PLACEHOLDER_RE.finditer(piece):
                if m.start() > pos:
                    p.add_run(piece[pos:m.start()])
                # a value's own line breaks (an article's paragraphs) run on as prose: a forced break
                # inside a justified paragraph would stretch the line before it
                p.add_run(tag(f"r.{m.group(1)} | replace('\\n', '')"))
                pos = m.end()
            if pos < len(piece):
                p.add_run(piece[pos:])
            if optional:
                p.add_run("{% endif %}")
        p.paragraph_format.keep_together = True
        if block.indent:
            p.paragraph_format.first_line_indent = Pt(2 * BODY_PT)
        self.paragraph("BxBody", "{%p endfor %}")

    def keep_previous(self):
        """Keep the last paragraph (or table) printed with what comes next (the 落款, a kept
        table); returns that paragraph (a table's last one)."""
        body = self.doc.element.body
        last = [c for c in body.iterchildren() if c.tag in (qn("w:p"), qn("w:tbl"))][-1]
        paras = [last] if last.tag == qn("w:p") else list(last.iter(qn("w:p")))
        for p in paras:
            ppr = p.get_or_add_pPr()
            if ppr.find(qn("w:keepNext")) is None:
                ppr.insert(1 if ppr.find(qn("w:pStyle")) is not None else 0, _el("w:keepNext"))
        return paras[-1] if paras else None

    def signoff(self, block: L.Signoff, content_mm: float, more: bool) -> None:
        """Units right-aligned (several units side by side, each a line lower than the one to its
        left, so that each seal has its own place), then the date. The paragraph before is kept
        with them; a 版记 is anchored in it, so that text, 落款 and 版记 land on one page."""
        self._chain_start = self.keep_previous()
        *names, date = block.paras()
        n = len(names)
        for k, name in enumerate(names):
            p = self.paragraph("BxBody", name.text)
            pf = p.paragraph_format
            pf.alignment = WD_ALIGN_PARAGRAPH.RIGHT
            pf.right_indent = Pt(2 * BODY_PT) + Mm(content_mm * (n - 1 - k) / n)
            if k == 0:
                pf.space_before = Pt(SIGNOFF_GAP_LINES * BODY_LINE_PT)
            pf.keep_with_next = True
            pf.keep_together = True
        p = self.paragraph("BxBody", date.text)
        p.paragraph_format.alignment = WD_ALIGN_PARAGRAPH.RIGHT
        p.paragraph_format.right_indent = Pt(4 * BODY_PT)  # 成文日期右空四字
        p.paragraph_format.keep_with_next = more  # with the 附注 after it

    def banji(self, block: L.Banji, content_mm: float) -> None:
        """The 版记 as a text box anchored in the part's last paragraph and placed at the bottom of
        the type area of that paragraph's page."""
        # anchored where the part's closing chain (text kept with the 落款) starts, else in its last
        # paragraph: on the page that ends the part, with the chain above it
        p = (docx.text.paragraph.Paragraph(self._chain_start, self.doc._body) if self._chain_start is not None
             else self.doc.paragraphs[-1])
        if block.when:
            p.add_run("{% if f." + block.when + " %}")
        self._banji_id += 1
        p._p.append(_banji_drawing(block, content_mm, 4000 + self._banji_id))
        if block.when:
            p.add_run("{% endif %}")

    def spacer(self, block: L.Spacer) -> None:
        p = self.paragraph("BxTiny")
        p.paragraph_format.line_spacing = Pt(max(1.0, block.height_mm / 25.4 * 72))

    # tables
    def _table(self, widths_mm: tuple[float, ...], nrows: int):
        table = self.doc.add_table(rows=nrows, cols=len(widths_mm))
        table.autofit = False
        tbl = table._tbl
        tblpr = tbl.tblPr
        for child in list(tblpr):
            tblpr.remove(child)
        # children in schema order: tblW, jc, tblBorders, tblLayout, tblCellMar
        tblpr.append(_el("w:tblW", w_w=sum(_twips(w) for w in widths_mm), w_type="dxa"))
        tblpr.append(_el("w:jc", w_val="center"))
        borders = _el("w:tblBorders")
        for side in ("top", "left", "bottom", "right"):
            borders.append(_el(f"w:{side}", w_val="single", w_sz=8, w_space=0, w_color="000000"))
        for side in ("insideH", "insideV"):
            borders.append(_el(f"w:{side}", w_val="single", w_sz=4, w_space=0, w_color="000000"))
        tblpr.append(borders)
        tblpr.append(_el("w:tblLayout", w_type="fixed"))
        mar = _el("w:tblCellMar")
        for side, mm in (("top", 0), ("left", CELL_MARGIN_MM), ("bottom", 0), ("right", CELL_MARGIN_MM)):
            mar.append(_el(f"w:{side}", w_w=_twips(mm), w_type="dxa"))
        tblpr.append(mar)
        grid = tbl.tblGrid
        for gc, w in zip(grid.findall(qn("w:gridCol")), widths_mm, strict=True):
            gc.set(qn("w:w"), str(_twips(w)))
        for row in table.rows:
            for cell, w in zip(row.cells, widths_mm, strict=True):
                cell.width = Mm(w)
        return table

    @staticmethod
    def _row_props(row, min_mm: float, header: bool = False) -> None:
        row.height = Mm(min_mm)
        row.height_rule = WD_ROW_HEIGHT_RULE.AT_LEAST
        trpr = row._tr.get_or_add_trPr()
        trpr.insert(0, _el("w:cantSplit"))
        if header:
            trpr.append(_el("w:tblHeader"))

    @staticmethod
    def _cell_text(cell, text: str, style: str, valign=WD_CELL_VERTICAL_ALIGNMENT.CENTER,
                   scale: int | None = None, size_pt: float | None = None, blank_boxes: str | None = None) -> None:
        """``text`` as the cell's run; with ``blank_boxes`` (a context flag: the field is blank and
        prints its character boxes) the run twice, in ``BOX_RGB`` when the flag is set and in the
        ink's colour otherwise (a value given is printed as any other), by docxtpl run tags."""
        p = cell.paragraphs[0]
        p.style = style
        if text:
            if blank_boxes:
                p.add_run(f"{{%r if {blank_boxes} %}}")
            runs = [p.add_run(text)]
            if blank_boxes:
                p.add_run("{%r else %}")
                runs.append(p.add_run(text))
                p.add_run("{%r endif %}")
            for k, run in enumerate(runs):
                if scale:
                    run._r.get_or_add_rPr().append(_el("w:w", w_val=scale))
                if size_pt:
                    run.font.size = Pt(size_pt)
                    if blank_boxes and k == 0:
                        run.font.color.rgb = RGBColor(*BOX_RGB)
            if size_pt:
                p.paragraph_format.line_spacing = Pt(BOX_LINE_PT)
        cell.vertical_alignment = valign

    @staticmethod
    def _keep_rows(rows) -> None:
        """Every paragraph of these rows kept with the next: the rows stay together on one page."""
        for row in rows:
            for p in row._tr.iter(qn("w:p")):
                ppr = p.get_or_add_pPr()
                if ppr.find(qn("w:keepNext")) is None:
                    ppr.insert(1 if ppr.find(qn("w:pStyle")) is not None else 0, _el("w:keepNext"))

    def grid(self, block: L.Grid, content_mm: float) -> None:
        if block.keep:
            self.keep_previous()
        widths = _fit_widths(block.widths, content_mm)
        table = self._table(widths, len(block.rows))
        for r, cells in enumerate(block.rows):
            row = table.rows[r]
            heights = [c.height_mm for c in cells if isinstance(c, L.Value) and c.height_mm]
            self._row_props(row, max([GRID_ROW_MIN_MM, *heights]))
            col = 0
            for cell in cells:
                tc = row.cells[col]
                if cell.span > 1:
                    tc = tc.merge(row.cells[col + cell.span - 1])
                if isinstance(cell, L.Label):
                    self._cell_text(tc, cell.text, "BxLabel")
                else:
                    tall = bool(cell.height_mm)
                    width = sum(widths[col:col + cell.span])
                    f = self.spec.field(cell.field)
                    boxed = f.hand_boxes
                    if boxed:
                        _check_box_room(self.spec.code, f, width)
                    self._cell_text(tc, tag(f"f.{cell.field}"), "BxCell",
                                    WD_CELL_VERTICAL_ALIGNMENT.TOP if tall
                                    else WD_CELL_VERTICAL_ALIGNMENT.CENTER,
                                    None if boxed else fit_scale(f, width), BOX_PT if boxed else None,
                                    blank_boxes=f"boxes.{cell.field}" if boxed else None)
                col += cell.span
        if block.keep:  # every row with the next: the grid whole, and with the block after it
            self._keep_rows(table.rows)

    def rows(self, block: L.Rows, content_mm: float) -> None:
        if block.keep:
            self.keep_previous()
        f = self.spec.field(block.field)
        columns = [f.column(c) for c in (block.columns or [c.name for c in f.columns])]
        heads = ([block.number_column] if block.number_column else []) + [c.label for c in columns]
        tags = ([tag("r._no")] if block.number_column else []) + [tag(f"r.{c.name}") for c in columns]
        if block.widths:
            if len(block.widths) != len(heads):
                raise LayoutError(f"{self.spec.code}: Rows({block.field}) has {len(heads)} columns "
                                  f"but {len(block.widths)} widths")
            widths = _fit_widths(block.widths, content_mm)
        else:
            widths = _default_widths(block, columns, content_mm)
        fields = ([None] if block.number_column else []) + columns
        items = "rows." + block.field
        if not block.keep_tail:
            table = self._rows_table(block, widths, heads, tags, fields, items)
            if block.keep:  # every row with the next: the table whole, and with the block after it
                self._keep_rows(table.rows[:3])
            return
        # The last ``keep_tail`` rows go with the block after the list (its signatures) as a table
        # of their own under a repeated header row: that short table kept whole with the next
        # block; the list before it not kept at all, so it starts under the part's header and
        # splits over pages freely. (One table whose every row keeps with the next would be kept
        # whole by LibreOffice and moved to page 2; keeping only its last rows does not carry them
        # over to the signatures once the table is split.)
        k = block.keep_tail
        self.paragraph("BxTiny", "{%p if " + items + f"|length > {k} %}}")
        self._rows_table(block, widths, heads, tags, fields, f"{items}[:-{k}]")
        gap = self.paragraph("BxTiny")  # two tables need a paragraph between them
        gap.paragraph_format.keep_with_next = True
        self.paragraph("BxTiny", "{%p endif %}")
        tail = self._rows_table(block, widths, heads, tags, fields, f"{items}[-{k}:]")
        self._keep_rows(tail.rows[:3])

    def _rows_table(self, block: L.Rows, widths, heads, tags, fields, items: str):
        """A header row (repeated on every page), then one row per item of ``items`` (Jinja)."""
        table = self._table(widths, 4)
        self._row_props(table.rows[0], ROWS_ROW_MIN_MM, header=True)
        for cell, text in zip(table.rows[0].cells, heads, strict=True):
            self._cell_text(cell, text, "BxLabel")
        self._cell_text(table.rows[1].cells[0], "{%tr for r in " + items + " %}", "BxCell")
        self._row_props(table.rows[2], ROWS_ROW_MIN_MM)
        for i, (cell, text) in enumerate(zip(table.rows[2].cells, tags, strict=True)):
            self._cell_text(cell, text, "BxLabel" if i == 0 and block.number_column else "BxCell",
                            scale=fit_scale(fields[i], widths[i]) if fields[i] is not None else None)
        self._cell_text(table.rows[3].cells[0], "{%tr endfor %}", "BxCell")
        return table

    # parts
    def build(self) -> bytes:
        multi = len(self.job.parts) > 1
        for i, part in enumerate(self.job.parts):
            if i == 0:
                section = self.doc.sections[0]
            else:
                self._section_break()
                section = self.doc.sections[-1]
            content_mm = _apply_section(section, part, self.spec)
            self._chain_start = None
            if i == 0:
                _add_footer(section)
            _add_header(section, page_setup(part, self.spec)[1]["right"])
            self.part_head(part, multi)
            for block in part.blocks:
                if isinstance(block, L.Title):
                    self.title(block)
                elif isinstance(block, L.Para):
                    self.para(block)
                elif isinstance(block, L.Spacer):
                    self.spacer(block)
                elif isinstance(block, L.Heading):
                    self.heading(block)
                elif isinstance(block, L.Items):
                    self.items(block)
                elif isinstance(block, L.Signoff):
                    rest = part.blocks[part.blocks.index(block) + 1:]
                    self.signoff(block, content_mm, any(not isinstance(b, L.Banji) for b in rest))
                elif isinstance(block, L.Banji):
                    self.banji(block, content_mm)
                elif isinstance(block, L.Grid):
                    self.grid(block, content_mm)
                elif isinstance(block, L.Rows):
                    self.rows(block, content_mm)
        self._core_properties()
        buf = io.BytesIO()
        self.doc.save(buf)
        return _deterministic_zip(buf.getvalue())

    def _section_break(self) -> None:
        """End the current section (previous part) and start a new one on a new page.

        python-docx's ``add_section`` puts the closing ``w:sectPr`` into a new empty paragraph;
        make it a 1 pt line so a part that fills its last page does not spill an empty page."""
        self.doc.add_section(WD_SECTION.NEW_PAGE)
        body = self.doc.element.body
        closing = [p for p in body.iterchildren(qn("w:p"))
                   if p.find(qn("w:pPr") + "/" + qn("w:sectPr")) is not None][-1]
        ppr = closing.find(qn("w:pPr"))
        pstyle = _el("w:pStyle", w_val="BxTiny")
        ppr.insert(0, pstyle)

    def _core_properties(self) -> None:
        cp = self.doc.core_properties
        cp.title = self.spec.title
        cp.subject = self.job.name
        cp.author = "forms.build_templates"
        cp.last_modified_by = "forms.build_templates"
        cp.comments = f"{self.spec.code} {self.spec.version}; generated from the spec layout"
        cp.revision = 1
        cp.created = FIXED_DATE
        cp.modified = FIXED_DATE
        cp.last_printed = FIXED_DATE
        cp.keywords = ""
        cp.category = ""


# Printed width (in em of the cell font) of values of a fixed shape: digits are about 0.55 em, and
# LibreOffice puts about 0.2 em between CJK and digits (its Asian/Latin spacing; w:autoSpaceDN off
# is not honoured on import), e.g. 2025年12月31日 = 8 digits + 3 CJK + 5 transitions.
_FIXED_EM = {Kind.ID_NUMBER: 18 * 0.55, Kind.XUEJI_NO: 0.75 + 18 * 0.55, Kind.PHONE: 12 * 0.55,
             Kind.DATE: 8 * 0.55 + 3 + 5 * 0.21, Kind.DATETIME: 12 * 0.55 + 5 + 9 * 0.21}
MIN_SCALE = 75


def fit_scale(f, width_mm: float) -> int | None:
    """Horizontal character scale (percent, ``w:w``) that keeps a fixed-shape value (ID number,
    学籍号, phone, date) on one line in a cell ``width_mm`` wide; None when it fits as it is."""
    em = _FIXED_EM.get(getattr(f, "kind", None))
    if em is None:
        return None
    need = em * CELL_PT / 72 * 25.4 + 0.6  # a little slack for rounding in the layout engine
    room = width_mm - 2 * CELL_MARGIN_MM
    if need <= room:
        return None
    return max(MIN_SCALE, int(100 * room / need))


def _check_box_room(form: str, f, width_mm: float) -> None:
    """A field's character boxes must fit on one line of its cell (never squeezed: a person writes
    one digit in each)."""
    need = len(f.box_pattern()) * BOX_PT / 72 * 25.4 + 0.6
    if need > width_mm - 2 * CELL_MARGIN_MM:
        raise LayoutError(f"{form}: the {f.boxes} character boxes of {f.name} need {need:.0f} mm, its cell "
                          f"gives {width_mm - 2 * CELL_MARGIN_MM:.0f} mm: widen the cell (span more columns)")


def _fit_widths(widths: tuple[float, ...], content_mm: float) -> tuple[float, ...]:
    total = sum(widths)
    if total <= content_mm + 0.1:
        return tuple(widths)
    k = content_mm / total
    log.warning("table of %.1f mm scaled to %.1f mm", total, content_mm)
    return tuple(w * k for w in widths)


def _default_widths(block: L.Rows, columns, content_mm: float) -> tuple[float, ...]:
    """Column widths by a rough weight (longer labels and text columns get more room)."""
    weights = []
    for c in columns:
        base = {Kind.DATE: 24, Kind.DATETIME: 30, Kind.ID_NUMBER: 40, Kind.XUEJI_NO: 42, Kind.PHONE: 26,
                Kind.NAME: 18, Kind.INT: 12, Kind.BOOL: 12, Kind.SIGNATURE: 20, Kind.SEAL: 24,
                Kind.CHOICE: 20, Kind.MULTI: 28}.get(c.kind, 30)
        weights.append(max(base, 4.2 * min(len(c.label), 6)))
    num = [10.0] if block.number_column else []
    rest = content_mm - sum(num)
    k = rest / sum(weights)
    return tuple(num + [w * k for w in weights])


# ---- deterministic package -------------------------------------------------------------------------

def _deterministic_zip(raw: bytes) -> bytes:
    """Re-pack with fixed timestamps and member order so identical input gives identical bytes."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(raw)) as zin, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            zi = zipfile.ZipInfo(info.filename, date_time=ZIP_DATE)
            zi.compress_type = zipfile.ZIP_DEFLATED
            zi.external_attr = 0o644 << 16
            zout.writestr(zi, data, compresslevel=9)
    return out.getvalue()


def build_template(job: TemplateJob) -> bytes:
    """The DOCX bytes of one template."""
    return _Builder(job).build()


def build_all(out_dir: Path | str = TEMPLATES_DIR, specs: Iterable[FormSpec] | None = None) -> list[Path]:
    """(Re)write every template; returns the files written (unchanged files are left alone)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for job in template_jobs(specs):
        data = build_template(job)
        path = out / job.name
        if not path.exists() or path.read_bytes() != data:
            path.write_bytes(data)
            log.info("wrote %s", path)
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(TEMPLATES_DIR), help="output folder (default templates/forms)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    paths = build_all(args.out)
    for p in paths:
        sys.stdout.write(f"{p}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = ["build_all", "build_template", "template_jobs", "TemplateJob", "LayoutError", "jinja_for",
           "PART_MARK_FORMAT", "BOOKMARK_PREFIX", "page_setup"]
