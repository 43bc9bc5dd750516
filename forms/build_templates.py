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

Pages and parts: each ``Part`` is one section (A4, landscape when ``Part.landscape``) starting on
a new page. Portrait margins are ``layout.MARGINS_MM`` (公文 page setup); landscape parts use a
33 mm top margin (below the stamped QR square, which ends ``QR_TOP_MM + QR_SIZE_MM`` = 28 mm from
the top, its quiet zone and caption) and narrower side margins when the tables need the width. The footer prints
"第 X 页 共 Y 页" (PAGE / NUMPAGES fields).

**Part markers** (how the parsers split a document into parts; both survive a LibreOffice
re-save):

1. every part's first paragraph carries a bookmark ``bx_part_<key>`` (DOCX parser);
2. in layouts with more than one part that paragraph prints the part name small and
   right-aligned as ``（<name>）`` — e.g. ``（存根）`` — so PDF text and scans show it too
   (``PART_MARK_FORMAT``); a page whose first text line is not a marker continues the previous
   part. Single-part layouts print no marker (their paragraph is an empty 1 pt line).

Styles (fonts at style level, ``w:ascii``/``w:hAnsi``/``w:eastAsia``; the renderer swaps the two
font names below for the configured ones): ``BxTitle`` 22 pt (2号) and ``BxSubtitle`` 16 pt bold
(3号) in "Noto Sans CJK SC"; ``BxBody`` prose 16 pt (3号), or 15/14 pt when the static content of a
prose part would not fit on one page, ``BxSmall`` 12 pt, ``BxCell``/``BxLabel`` form tables 10.5 pt
(五号) in "Noto Serif CJK SC"; ``BxPartMark`` and ``BxFooter`` 9 pt; exact line pitches. Values of a
fixed shape (ID numbers, 学籍号, phones, dates) in cells too narrow for them get a horizontal
character scale (``w:w``, not below 75 %) so they print on one line.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import logging
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
from docx.shared import Mm, Pt

from forms import layout as L
from forms.registry import all_specs
from forms.spec import FormSpec, Kind, Variant

log = logging.getLogger(__name__)

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates" / "forms"
FONT_BODY = "Noto Serif CJK SC"
FONT_TITLE = "Noto Sans CJK SC"
PART_MARK_FORMAT = "（{name}）"
BOOKMARK_PREFIX = "bx_part_"

A4 = (210.0, 297.0)  # mm
LANDSCAPE_MARGINS_MM = {"top": 33.0, "bottom": 20.0, "left": 20.0, "right": 20.0}
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
BOX_LINE_PT = 26.0
FIXED_DATE = dt.datetime(2026, 1, 1, 0, 0, 0)
ZIP_DATE = (1980, 1, 1, 0, 0, 0)

# Para/Title style names of forms.layout -> (docx style, font, size pt, bold, exact line pitch pt).
STYLES = {
    "title": ("BxTitle", FONT_TITLE, 22.0, False, 34.0),
    "subtitle": ("BxSubtitle", FONT_TITLE, 16.0, True, 26.0),
    "body": ("BxBody", FONT_BODY, 15.0, False, 26.0),
    "small": ("BxSmall", FONT_BODY, 12.0, False, 19.0),
}
# Prose sizes tried, largest first, until every prose part fits on one page (estimated from the
# static content: titles, prose, grid rows, table headers and minimum rows); else the smallest.
BODY_STEPS = ((16.0, 28.0), (15.0, 26.0), (14.0, 23.0))  # 3号..4号 (GB/T 9704: 3号)
EXTRA_STYLES = {
    "cell": ("BxCell", FONT_BODY, CELL_PT, False, CELL_LINE_PT),
    "label": ("BxLabel", FONT_BODY, CELL_PT, False, CELL_LINE_PT),
    "partmark": ("BxPartMark", FONT_BODY, 9.0, False, 12.0),
    "footer": ("BxFooter", FONT_BODY, 9.0, False, 12.0),
    "tiny": ("BxTiny", FONT_BODY, 1.0, False, 1.0),
}


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
    natural width and fit the cells they were sized for."""
    anchor = next((c for c in ppr if c.tag.split("}")[1] in _PPR_AFTER_AUTOSPACE), None)
    for tag in ("w:autoSpaceDE", "w:autoSpaceDN"):
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


def _setup_styles(doc, body: tuple[float, float]) -> None:
    """Document defaults and the named styles (fonts at style level, no theme fonts)."""
    styles_el = doc.styles.element
    rpr_default = styles_el.find(qn("w:docDefaults") + "/" + qn("w:rPrDefault") + "/" + qn("w:rPr"))
    _set_fonts(rpr_default, FONT_BODY)
    lang = rpr_default.find(qn("w:lang"))
    if lang is None:
        lang = OxmlElement("w:lang")
        rpr_default.append(lang)
    lang.set(qn("w:val"), "en-US")
    lang.set(qn("w:eastAsia"), "zh-CN")
    normal = doc.styles["Normal"]
    _set_fonts(normal.element.get_or_add_rPr(), FONT_BODY)
    normal.font.size = Pt(CELL_PT)
    normal.paragraph_format.space_after = Pt(0)
    normal.paragraph_format.space_before = Pt(0)
    size, line = body
    _add_style(doc, "BxTitle", FONT_TITLE, 22.0, False, 34.0, align=WD_ALIGN_PARAGRAPH.CENTER,
               after=8)
    _add_style(doc, "BxSubtitle", FONT_TITLE, 16.0, True, 26.0, align=WD_ALIGN_PARAGRAPH.CENTER,
               after=4)
    _add_style(doc, "BxBody", FONT_BODY, size, False, line, align=WD_ALIGN_PARAGRAPH.JUSTIFY)
    _add_style(doc, "BxSmall", FONT_BODY, 12.0, False, 19.0, align=WD_ALIGN_PARAGRAPH.JUSTIFY)
    _add_style(doc, "BxCell", FONT_BODY, CELL_PT, False, CELL_LINE_PT, align=WD_ALIGN_PARAGRAPH.LEFT)
    _add_style(doc, "BxLabel", FONT_BODY, CELL_PT, False, CELL_LINE_PT,
               align=WD_ALIGN_PARAGRAPH.CENTER)
    _add_style(doc, "BxPartMark", FONT_BODY, 9.0, False, 12.0, align=WD_ALIGN_PARAGRAPH.RIGHT)
    _add_style(doc, "BxFooter", FONT_BODY, 9.0, False, 12.0, align=WD_ALIGN_PARAGRAPH.CENTER)
    _add_style(doc, "BxTiny", FONT_BODY, 1.0, False, 1.0)


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
        elif isinstance(block, L.Spacer):
            refs = []
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
    section.header_distance = Mm(10)
    section.footer_distance = Mm(min(12.0, m["bottom"] - 8))
    section.gutter = Mm(0)
    return w - m["left"] - m["right"]


def _add_footer(section) -> None:
    section.footer.is_linked_to_previous = False
    p = section.footer.paragraphs[0]
    p.style = "BxFooter"

    def field(instr: str):
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

    p.add_run("第 ")
    field("PAGE")
    p.add_run(" 页 共 ")
    field("NUMPAGES")
    p.add_run(" 页")


# ---- blocks ------------------------------------------------------------------------------------------

class _Builder:
    def __init__(self, job: TemplateJob):
        self.job = job
        self.spec = job.spec
        self.doc = docx.Document()
        for part in job.parts:
            _check_fields(self.spec, part)
        self.body_step = _choose_body_step(job)
        _setup_styles(self.doc, self.body_step)
        self._bookmark_id = 0
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
        pf.alignment = {"justify": WD_ALIGN_PARAGRAPH.JUSTIFY, "left": WD_ALIGN_PARAGRAPH.LEFT,
                        "right": WD_ALIGN_PARAGRAPH.RIGHT, "center": WD_ALIGN_PARAGRAPH.CENTER}[block.align]
        if block.indent:
            size = self.body_step[0] if block.style == "body" else STYLES[block.style][2]
            pf.first_line_indent = Pt(2 * size)

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
                   scale: int | None = None, size_pt: float | None = None) -> None:
        p = cell.paragraphs[0]
        p.style = style
        if text:
            run = p.add_run(text)
            if scale:
                run._r.get_or_add_rPr().append(_el("w:w", w_val=scale))
            if size_pt:
                run.font.size = Pt(size_pt)
                p.paragraph_format.line_spacing = Pt(BOX_LINE_PT)
        cell.vertical_alignment = valign

    def grid(self, block: L.Grid, content_mm: float) -> None:
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
                                    None if boxed else fit_scale(f, width), BOX_PT if boxed else None)
                col += cell.span

    def rows(self, block: L.Rows, content_mm: float) -> None:
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
        table = self._table(widths, 4)
        self._row_props(table.rows[0], ROWS_ROW_MIN_MM, header=True)
        for cell, text in zip(table.rows[0].cells, heads, strict=True):
            self._cell_text(cell, text, "BxLabel")
        self._cell_text(table.rows[1].cells[0], "{%tr for r in rows." + block.field + " %}", "BxCell")
        self._row_props(table.rows[2], ROWS_ROW_MIN_MM)
        fields = ([None] if block.number_column else []) + columns
        for i, (cell, text) in enumerate(zip(table.rows[2].cells, tags, strict=True)):
            self._cell_text(cell, text, "BxLabel" if i == 0 and block.number_column else "BxCell",
                            scale=fit_scale(fields[i], widths[i]) if fields[i] is not None else None)
        self._cell_text(table.rows[3].cells[0], "{%tr endfor %}", "BxCell")

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
            if i == 0:
                _add_footer(section)
            self.part_head(part, multi)
            for block in part.blocks:
                if isinstance(block, L.Title):
                    self.title(block)
                elif isinstance(block, L.Para):
                    self.para(block)
                elif isinstance(block, L.Spacer):
                    self.spacer(block)
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


def _choose_body_step(job: TemplateJob) -> tuple[float, float]:
    """Largest prose size whose estimated height lets every prose part fit on one page."""
    for size, line in BODY_STEPS:
        if all(_estimate_part_mm(job, part, size, line) <= _usable_height(job, part)
               for part in job.parts if any(isinstance(b, L.Para) for b in part.blocks)):
            return size, line
    return BODY_STEPS[-1]


def _usable_height(job: TemplateJob, part: L.Part) -> float:
    (w, h), m = page_setup(part, job.spec)
    return h - m["top"] - m["bottom"] - 2  # a little slack for rounding


_TYPICAL = 8  # characters a blank-or-filled placeholder is assumed to print


def _estimate_part_mm(job: TemplateJob, part: L.Part, size: float, line: float) -> float:
    (w, h), m = page_setup(part, job.spec)
    width_mm = w - m["left"] - m["right"]
    pt_per_mm = 72 / 25.4
    total = 4.0  # part mark
    for block in part.blocks:
        if isinstance(block, L.Title):
            s = STYLES["subtitle" if block.style == "subtitle" else "title"]
            chars = len(_expand(block.text, job))
            per_line = max(1, int(width_mm * pt_per_mm / s[2]))
            total += (-(-chars // per_line)) * s[4] / pt_per_mm + (8 if s[0] == "BxTitle" else 4) / pt_per_mm
        elif isinstance(block, L.Para):
            if block.style == "body":
                fs, ls = size, line
            else:
                fs, ls = STYLES[block.style][2], STYLES[block.style][4]
            per_line = max(1, int(width_mm * pt_per_mm / fs))
            n = 0
            for piece in _expand(block.text, job).split("\n"):
                chars = _display_len(piece) + (2 if block.indent else 0)
                n += max(1, -(-chars // per_line))
            total += n * ls / pt_per_mm
        elif isinstance(block, L.Spacer):
            total += block.height_mm
        elif isinstance(block, L.Grid):
            for r in block.rows:
                hs = [c.height_mm for c in r if isinstance(c, L.Value) and c.height_mm]
                total += max([GRID_ROW_MIN_MM, *hs])
        elif isinstance(block, L.Rows):
            f = job.spec.field(block.field)
            total += ROWS_ROW_MIN_MM * (1 + max(f.min_rows, 1))
    return total


def _display_len(text: str) -> float:
    """Width in em: CJK and full-width characters 1, others about half."""
    n = 0.0
    for ch in text:
        n += 1.0 if ord(ch) > 0x2E80 else 0.55
    return int(n + 0.999)


def _expand(text: str, job: TemplateJob) -> str:
    """Text with placeholders replaced by the longest printed text among the job's variants."""
    def one(name: str) -> str:
        if name.startswith("variant."):
            key = name.split(".", 1)[1]
            vals = []
            for v in job.variants:
                if v is None:
                    continue
                val = v.title if key == "title" else v.code if key == "code" else v.data.get(key, "")
                vals.append(val if isinstance(val, str) else "\n".join(map(str, val))
                            if isinstance(val, (list, tuple)) else str(val))
            return max(vals, key=len, default="")
        if name == "form.title":
            return max((job.spec.doc_title(v) for v in job.variants), key=len)
        return "＿" * _TYPICAL
    return L.PLACEHOLDER_RE.sub(lambda m: one(m.group(1)), text)


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
