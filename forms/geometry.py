"""Where each field of a form sits in a rendered document: the layout-driven locator shared by the
DOCX and PDF parsers, the PDF page analysis, and the geometry record kept for scans.

A document (DOCX or PDF) is first reduced to a neutral model per ``Part``: its tables (rows of
distinct cells, merged cells counted once, each with its text and source) and its prose
paragraphs (text plus, for PDF, the box of every character). ``locate_part`` then finds every
field of the part through the layout alone:

* ``Grid`` values by label: the cell whose normalised text equals a ``Label`` of the part; its
  value is the next distinct cell in the row (labels are unique within a part);
* ``Rows`` tables by their header row (the column labels, repeated on each page), then one row
  per item, cells assigned to columns by horizontal overlap with the header (PDF) or by position;
* ``Para``/``Title`` placeholders by a regex made from the paragraph text: literal text escaped
  and whitespace-insensitive, each placeholder a lazy group.

``record_geometry(pdf_bytes, spec, variant)`` runs the PDF analysis at render time and returns a
JSON-serialisable record, one entry per page (all boxes ``[x0, top, x1, bottom]`` in PDF points,
origin top-left, as pdfplumber)::

    {"form": "dropout_report", "variant": null, "template": "dropout_report.docx",
     "pages": [{"page": 1, "part": "main", "size": [595.3, 841.9],
                "qr": [...],                      # where the QR square is stamped (layout constants)
                "tables": [[...], ...],           # each table's outline (drawn cell borders)
                "outline": [...],                 # union of the tables (null when none)
                "fields": {"student_name": {"bbox": [...], "kind": "cell"},
                           "attempts[0].date": {"bbox": [...], "kind": "cell"},
                           "guardian_name": {"bbox": [...], "kind": "text", "lines": [[...]]}},
                "labels": {"student_name": [...], "attempts[].date": [...]}}]}

``kind`` "cell" is a value cell (signature and seal zones included), "text" a placeholder in
prose (its box covers the printed value's characters, or the ____ printed for a blank).
"""

from __future__ import annotations

import bisect
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from forms import layout as L
from forms.pdfium_lock import with_pdfium_lock
from forms.spec import FormSpec, Variant

BBox = tuple[float, float, float, float]
PT_PER_MM = 72 / 25.4
PART_MARK_RE = re.compile(r"^[（(]\s*(.+?)\s*[）)]$")


# ---- neutral document model ---------------------------------------------------------------------

@dataclass
class Cell:
    """One distinct table cell (a merged cell once)."""

    text: str
    source: dict
    bbox: BBox | None = None
    marked: bool = False  # holds an image or drawing (a signature, seal or fingerprint)


@dataclass
class TableModel:
    rows: list[list[Cell]]
    source: dict
    bbox: BBox | None = None


@dataclass
class Paragraph:
    """Prose outside tables. ``boxes`` (PDF only) gives each character of ``text`` its box, or
    None for inserted separators."""

    text: str
    source: dict
    boxes: list[BBox | None] | None = None


@dataclass
class PartContent:
    key: str
    tables: list[TableModel] = field(default_factory=list)
    paragraphs: list[Paragraph] = field(default_factory=list)


@dataclass(frozen=True)
class Located:
    """Where one field path was found and the text printed there."""

    path: str  # student_name | attempts[0].date | guardian_name
    field: str  # the spec field (the table for a row cell)
    part: str
    text: str
    source: dict
    kind: str = "cell"  # cell | text
    column: str | None = None
    row: int | None = None
    bbox: BBox | None = None
    label_bbox: BBox | None = None
    lines: tuple[BBox, ...] = ()
    marked: bool = False


@dataclass
class PartLocation:
    """Everything found in one part, plus what the layout has that was not found."""

    key: str
    located: dict[str, Located] = field(default_factory=dict)
    tables: dict[str, int] = field(default_factory=dict)  # Rows field -> printed rows found
    missing: list[str] = field(default_factory=list)
    header_bboxes: dict[str, BBox] = field(default_factory=dict)  # "attempts[].date" -> box


# ---- text helpers ------------------------------------------------------------------------------------

_NORM_RE = re.compile(r"[\s:：()（）]")


def norm(text: str) -> str:
    """Normalised label text: NFKC, no whitespace, colons or brackets."""
    return _NORM_RE.sub("", unicodedata.normalize("NFKC", str(text or "")))


def _is_wide(ch: str) -> bool:
    return unicodedata.east_asian_width(ch) in ("W", "F")


def unwrap(text: str) -> str:
    """Join lines wrapped by the page width: nothing between wide (CJK) characters, a space
    between narrow ones."""
    lines = [ln.strip() for ln in (text or "").split("\n")]
    out = ""
    for ln in lines:
        if not ln:
            continue
        if out and not _is_wide(out[-1]) and not _is_wide(ln[0]):
            out += " "
        out += ln
    return out


def layout_parts(spec: FormSpec, variant: Variant | None) -> tuple[L.Part, ...]:
    return tuple(spec.parts(variant))


def part_mark(part: L.Part) -> str:
    """The printed part marker, e.g. （存根） (see forms/build_templates.py)."""
    return f"（{part.name}）"


# ---- Para regexes ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ParaPattern:
    block: Any
    names: tuple[str, ...]  # placeholder per group g0, g1...
    full: re.Pattern
    search: re.Pattern
    first_literal: str  # normalised, for a cheap pre-check


def _literal(text: str) -> str:
    return "".join(re.escape(ch) + r"\s*" for ch in text if not ch.isspace())


def printed_constant(name: str, spec: FormSpec | None, variant: Variant | None) -> str | None:
    """The printed text of a non-field placeholder known from the spec (``{variant.key}``,
    ``{form.title}``), else None (fields and ``{doc.key}`` are only known from the document)."""
    if name == "form.title" and spec is not None:
        return spec.doc_title(variant)
    if name.startswith("variant.") and variant is not None:
        key = name.split(".", 1)[1]
        val = variant.title if key == "title" else variant.code if key == "code" else variant.data.get(key)
        return val if isinstance(val, str) else None
    return None


def para_pattern(block: L.Para | L.Title, spec: FormSpec | None = None,
                 variant: Variant | None = None) -> ParaPattern | None:
    """The regex matching ``block``'s printed paragraph: literal text (and the variant's printed
    constants) whitespace-insensitive, each other placeholder a lazy group. None for empty text."""
    text = block.text
    pieces: list[tuple[str, Any]] = []
    names: list[str] = []
    pos = 0
    for m in L.PLACEHOLDER_RE.finditer(text):
        pieces.append(("L", text[pos:m.start()]))
        const = printed_constant(m.group(1), spec, variant)
        if const is not None:
            pieces.append(("L", const))
        else:
            pieces.append(("G", len(names)))
            names.append(m.group(1))
        pos = m.end()
    pieces.append(("L", text[pos:]))
    # merge adjacent literals
    merged: list[tuple[str, Any]] = []
    for kind, val in pieces:
        if kind == "L" and merged and merged[-1][0] == "L":
            merged[-1] = ("L", merged[-1][1] + val)
        else:
            merged.append((kind, val))
    if not any(v.strip() for k, v in merged if k == "L") and not names:
        return None

    def build(edge_bounded: bool) -> str:
        out = []
        for i, (kind, val) in enumerate(merged):
            if kind == "L":
                out.append(_literal(val))
            else:
                at_edge = (i == 0 or i == len(merged) - 1 or
                           (i == 1 and not merged[0][1].strip()) or
                           (i == len(merged) - 2 and not merged[-1][1].strip()))
                body = r"(?:(?!\n\n).)*?" if edge_bounded and at_edge else r".*?"
                out.append(rf"(?P<g{val}>{body})\s*")
        return "".join(out)

    full = re.compile(r"^\s*" + build(False) + r"$", re.DOTALL)
    lead_group = merged[0][0] == "G" or (merged[0][0] == "L" and not merged[0][1].strip())
    trail_group = merged[-1][0] == "G" or (merged[-1][0] == "L" and not merged[-1][1].strip())
    lead = r"(?:^|(?<=\n\n))\s*" if lead_group else ""
    trail = r"(?=\n\n|$)" if trail_group else ""
    search = re.compile(lead + build(True) + trail, re.DOTALL)
    first = next((norm(v) for k, v in merged if k == "L" and norm(v)), "")
    return ParaPattern(block, tuple(names), full, search, first)


def _para_value(text: str, start: int, end: int) -> str:
    return unwrap(text[start:end]).strip()


FOOTER_RE = re.compile(r"^第\s*\d+\s*页\s*共\s*\d+\s*页$")


def _is_furniture(text: str, parts_names: set[str]) -> bool:
    """Part markers and page footers: printed by the template, never a Para of the layout."""
    t = text.strip()
    if FOOTER_RE.match(t):
        return True
    m = PART_MARK_RE.match(t)
    return bool(m and norm(m.group(1)) in parts_names)


# ---- locating fields in one part ------------------------------------------------------------------

def _rows_header(spec: FormSpec, block: L.Rows) -> list[tuple[str | None, str]]:
    """[(column name or None for the number column, printed header label)]."""
    f = spec.field(block.field)
    cols = [f.column(c) for c in (block.columns or [c.name for c in f.columns])]
    head = [(None, block.number_column)] if block.number_column else []
    return head + [(c.name, c.label) for c in cols]


def _header_match(row: list[Cell], header: list[tuple[str | None, str]]) -> bool:
    got = [norm(c.text) for c in row]
    want = [norm(label) for _, label in header]
    if got == want:
        return True
    hits = sum(1 for w in want if w in got)
    return len(got) >= len(want) - 1 and hits >= max(2, int(0.8 * len(want)))


def _overlap(a: BBox, b: BBox) -> float:
    return max(0.0, min(a[2], b[2]) - max(a[0], b[0]))


def _assign_columns(row: list[Cell], head_cells: list[Cell],
                    header: list[tuple[str | None, str]]) -> dict[str | None, Cell]:
    out: dict[str | None, Cell] = {}
    if all(c.bbox for c in row) and all(c.bbox for c in head_cells) and len(head_cells) == len(header):
        for cell in row:
            best = max(range(len(head_cells)), key=lambda i: _overlap(cell.bbox, head_cells[i].bbox))
            if _overlap(cell.bbox, head_cells[best].bbox) > 0:
                name = header[best][0]
                if name in out:  # two cells under one header: keep both texts
                    prev = out[name]
                    out[name] = Cell(prev.text + "\n" + cell.text, prev.source, _union([prev.bbox, cell.bbox]),
                                     prev.marked or cell.marked)
                else:
                    out[name] = cell
        return out
    for (name, _label), cell in zip(header, row, strict=False):
        out[name] = cell
    return out


def locate_part(spec: FormSpec, part: L.Part, content: PartContent,
                variant: Variant | None = None) -> PartLocation:
    """Find every field of ``part`` in ``content`` (see the module docstring)."""
    loc = PartLocation(part.key)
    rows_blocks = [b for b in part.blocks if isinstance(b, L.Rows)]
    headers = {b.field: _rows_header(spec, b) for b in rows_blocks}
    # 1. Rows tables (possibly continued over pages, each continuation with its header row).
    rows_tables: set[int] = set()
    matched: set[str] = set()
    counters = {b.field: 0 for b in rows_blocks}
    for ti, table in enumerate(content.tables):
        for name, header in headers.items():
            start = next((ri for ri, r in enumerate(table.rows[:3]) if _header_match(r, header)), None)
            if start is None:
                continue
            rows_tables.add(ti)
            matched.add(name)
            head_cells = table.rows[start]
            for (col, _label), hc in zip(header, head_cells, strict=False):
                if col is not None and hc.bbox is not None and f"{name}[].{col}" not in loc.header_bboxes:
                    loc.header_bboxes[f"{name}[].{col}"] = hc.bbox
            for r in table.rows[start + 1:]:
                if _header_match(r, header):
                    continue  # a repeated header
                cells = _assign_columns(r, head_cells, header)
                i = counters[name]
                counters[name] += 1
                for (col, _label) in header:
                    if col is None:
                        continue
                    cell = cells.get(col)
                    if cell is None:
                        continue
                    path = f"{name}[{i}].{col}"
                    lab = loc.header_bboxes.get(f"{name}[].{col}")
                    loc.located[path] = Located(path, name, part.key, cell.text, cell.source, "cell", col, i,
                                                cell.bbox, lab, (), cell.marked)
            break
    loc.tables = dict(counters)
    loc.missing.extend(name for name in headers if name not in matched)
    # 2. Grid values by label.
    labels = {norm(text): name for text, name in L.labels_of(part).items()}
    found: set[str] = set()
    for ti, table in enumerate(content.tables):
        if ti in rows_tables:
            continue
        for r in table.rows:
            i = 0
            while i < len(r):
                key = norm(r[i].text)
                name = labels.get(key)
                if name and name not in found and i + 1 < len(r):
                    cell, lab = r[i + 1], r[i]
                    found.add(name)
                    loc.located[name] = Located(name, name, part.key, cell.text, cell.source, "cell", None, None,
                                                cell.bbox, lab.bbox, (), cell.marked)
                    i += 2
                    continue
                i += 1
    for name in labels.values():
        if name not in found:
            loc.missing.append(name)
    # 3. Title/Para blocks in order (each consumes its paragraph), reading the placeholders.
    furniture = {norm(part.name)}
    paragraphs = [p for p in content.paragraphs if not _is_furniture(p.text, furniture)]
    cursor = 0
    for block in L.expand(part.blocks):
        if not isinstance(block, (L.Para, L.Title)):
            continue
        pat = para_pattern(block, spec, variant)
        if pat is None:
            continue
        fields_here = [n for n in pat.names if "." not in n]
        hit = _match_paragraphs(pat, paragraphs, cursor)
        if hit is None:
            loc.missing.extend(n for n in fields_here if n not in loc.located)
            continue
        para, m, cursor = hit
        for gi, name in enumerate(pat.names):
            if "." in name or name in loc.located:
                continue
            start, end = m.span(f"g{gi}")
            text = _para_value(para.text, start, end)
            boxes = [b for b in (para.boxes or [])[start:end] if b is not None]
            lines = tuple(_line_boxes(boxes))
            loc.located[name] = Located(name, name, part.key, text, para.source, "text", None, None,
                                        _union(lines) if lines else None, None, lines)
    # 4. Seal zones of a 落款, placed over the issuing unit and the date.
    for block in part.blocks:
        if isinstance(block, L.Signoff):
            _signoff_zones(block, part.key, loc)
    return loc


SEAL_ZONE_MM = 46.0  # a 42 mm official seal and a little room for it to sit askew


def _signoff_zones(block: L.Signoff, part_key: str, loc: PartLocation) -> None:
    """Each seal's zone: a square of ``SEAL_ZONE_MM`` over its unit's name and the date, the two
    lines a little below its centre (GB/T 9704 7.3.5.1). Without boxes (a DOCX) the seal is
    located without a box; a missing name or date leaves it missing."""
    date = loc.located.get(block.date)
    for name, seal in zip(block.names, block.seals, strict=True):
        unit = loc.located.get(name)
        if unit is None or date is None:
            loc.missing.append(seal)
            continue
        bbox = None
        if unit.bbox is not None and date.bbox is not None:
            half = SEAL_ZONE_MM * PT_PER_MM / 2
            cx = (unit.bbox[0] + unit.bbox[2]) / 2 if len(block.names) > 1 else (date.bbox[0] + date.bbox[2]) / 2
            cy = (unit.bbox[1] + date.bbox[3]) / 2 - 3 * PT_PER_MM if len(block.names) == 1 else \
                (unit.bbox[1] + unit.bbox[3]) / 2
            bbox = (cx - half, cy - half, cx + half, cy + half)
        loc.located[seal] = Located(seal, seal, part_key, "", unit.source, "cell", None, None, bbox)


def _match_paragraphs(pat: ParaPattern, paragraphs: list[Paragraph], cursor: int):
    """The first paragraph at or after ``cursor`` that ``pat`` matches entirely, else a match in
    the following paragraphs joined (PDF paragraph boundaries are a heuristic).
    Returns (paragraph, match, new cursor) or None."""
    for i in range(cursor, len(paragraphs)):
        para = paragraphs[i]
        if pat.first_literal and pat.first_literal[:4] not in norm(para.text):
            continue
        m = pat.full.match(para.text)
        if m:
            return para, m, i + 1
    rest = paragraphs[cursor:]
    if not rest:
        return None
    joined, boxes, spans = "", [], []
    for para in rest:
        if joined:
            joined += "\n\n"
            boxes.extend([None, None])
        spans.append(len(joined))
        joined += para.text
        boxes.extend(para.boxes or [None] * len(para.text))
    m = pat.search.search(joined)
    if not m:
        return None
    first = max(i for i, s0 in enumerate(spans) if s0 <= m.start())
    last = max(i for i, s0 in enumerate(spans) if s0 <= max(m.start(), m.end() - 1))
    return Paragraph(joined, rest[first].source, boxes), m, cursor + last + 1


def _union(boxes: Iterable[BBox | None]) -> BBox | None:
    bs = [b for b in boxes if b]
    if not bs:
        return None
    return (min(b[0] for b in bs), min(b[1] for b in bs), max(b[2] for b in bs), max(b[3] for b in bs))


def _line_boxes(boxes: list[BBox]) -> list[BBox]:
    """Union of character boxes per text line."""
    lines: list[list[BBox]] = []
    for b in boxes:
        if lines and abs(lines[-1][-1][1] - b[1]) < 0.5 * max(1.0, b[3] - b[1]):
            lines[-1].append(b)
        else:
            lines.append([b])
    return [_union(ln) for ln in lines]


# ---- PDF pages --------------------------------------------------------------------------------------------

_TABLE_SETTINGS = {"snap_tolerance": 2, "join_tolerance": 2, "intersection_tolerance": 2}


def _inside(ch: Mapping, box: BBox) -> bool:
    cx = (ch["x0"] + ch["x1"]) / 2
    cy = (ch["top"] + ch["bottom"]) / 2
    return box[0] <= cx <= box[2] and box[1] <= cy <= box[3]


def _lines_of(chars: Sequence[Mapping]) -> list[list[Mapping]]:
    """Group characters into text lines (top to bottom, left to right)."""
    out: list[list[Mapping]] = []
    for ch in sorted(chars, key=lambda c: (round(c["top"], 1), c["x0"])):
        # a flat glyph (—, _, 一) has a short box: judge it by its font size, not its box
        size = max(1.0, ch["bottom"] - ch["top"], 0.8 * float(ch.get("size") or 0))
        mid = (ch["top"] + ch["bottom"]) / 2
        for line in out:
            lm = (line[0]["top"] + line[0]["bottom"]) / 2
            if abs(lm - mid) < 0.45 * size:
                line.append(ch)
                break
        else:
            out.append([ch])
    for line in out:
        line.sort(key=lambda c: c["x0"])
    out.sort(key=lambda ln: min(c["top"] for c in ln))
    return out


def _line_text(line: Sequence[Mapping]) -> tuple[str, list[BBox | None]]:
    text, boxes = "", []
    prev = None
    for ch in line:
        t = ch["text"]
        if prev is not None and t != " " and not text.endswith(" "):
            gap = ch["x0"] - prev["x1"]
            if gap > 1.5 * max(1.0, ch["size"]):  # a tab stop or a wide gap: keep a separator
                text += " "
                boxes.append(None)
        text += t
        boxes.extend([(ch["x0"], ch["top"], ch["x1"], ch["bottom"])] * len(t))
        prev = ch
    return text, boxes


def wrap_separator(prev_text: str, prev_boxes: Sequence[BBox | None], next_text: str,
                   next_boxes: Sequence[BBox | None], right_edge: float | None) -> str:
    """What a line wrap stood for: nothing next to wide (CJK) characters or where a token too long
    for the line was broken (the line ran to the right edge), else a space."""
    a, b = prev_text.rstrip(), next_text.lstrip()
    if not a or not b:
        return ""
    if prev_text != a:  # the line ends with a printed space
        return " "
    if _is_wide(a[-1]) or _is_wide(b[0]):
        return ""
    last = next((bx for bx in reversed(prev_boxes) if bx is not None), None)
    first = next((bx for bx in next_boxes if bx is not None), None)
    if right_edge is not None and last is not None and first is not None:
        if right_edge - last[2] < 1.5 * (first[2] - first[0]):
            return ""  # forced break inside a token
    return " "


def chars_text(chars: Sequence[Mapping], right_edge: float | None = None) -> str:
    """Text of characters (one cell), wrapped lines joined (see ``wrap_separator``)."""
    out, prev = "", None
    for ln in _lines_of(chars):
        text, boxes = _line_text(ln)
        if prev is not None:
            out = out.rstrip() + wrap_separator(prev[0], prev[1], text, boxes, right_edge)
        out += text.strip() if prev is None else text.lstrip()
        prev = (text, boxes)
    return out.strip()


CELL_PAD_PT = 1.2 * PT_PER_MM  # the templates' left/right cell margin (forms/build_templates.py)


@dataclass
class PdfPage:
    number: int  # 1-based
    width: float
    height: float
    tables: list[TableModel]
    lines: list[tuple[str, list[BBox | None], BBox]]  # prose lines outside tables
    part: str | None = None


def stamp_zone(width_pt: float) -> BBox:
    """The top-right corner the stamper paints (QR, quiet zone, caption): never form content."""
    x0, top, x1, bottom = qr_box(width_pt)
    m = 4 * PT_PER_MM
    return (x0 - m, max(0.0, top - m), x1 + m, bottom + 1.5 * m)


THIN_PT = 3.0  # a path this thin along one axis is a drawn border segment


def _page_objects(page) -> tuple[list[dict], list[BBox], list[BBox]]:
    """Characters (pdfplumber-style dicts, top-left origin), thin path segments (borders) and the
    boxes of everything else drawn (images, other paths: signatures, seals) of one pdfium page."""
    import pypdfium2.raw as pdfium_c

    width, height = (float(v) for v in page.get_size())
    textpage = page.get_textpage()
    raw = textpage.raw
    rect = pdfium_c.FS_RECTF()
    chars = []
    for i in range(textpage.count_chars()):
        if pdfium_c.FPDFText_IsGenerated(raw, i) == 1:
            continue  # spaces and line ends pdfium infers; only printed characters count
        code = pdfium_c.FPDFText_GetUnicode(raw, i)
        if code in (0, 0xFFFE, 0xFFFF) or code in (0x0A, 0x0D):
            continue
        if not pdfium_c.FPDFText_GetLooseCharBox(raw, i, rect):
            continue
        chars.append({"text": chr(code), "x0": rect.left, "x1": rect.right, "top": height - rect.top,
                      "bottom": height - rect.bottom, "size": pdfium_c.FPDFText_GetFontSize(raw, i)})
    segments: list[BBox] = []
    marks: list[BBox] = []
    for obj in page.get_objects(filter=[pdfium_c.FPDF_PAGEOBJ_PATH, pdfium_c.FPDF_PAGEOBJ_IMAGE]):
        x0, y0, x1, y1 = obj.get_bounds()
        box = (x0, height - y1, x1, height - y0)
        thin = (x1 - x0 <= THIN_PT) != (y1 - y0 <= THIN_PT)
        if obj.type == pdfium_c.FPDF_PAGEOBJ_PATH and thin:
            segments.append(box)
        elif x1 - x0 > THIN_PT or y1 - y0 > THIN_PT:
            marks.append(box)
    return chars, segments, marks


def _edges(segments: Sequence[BBox]) -> tuple[list[dict], list[dict]]:
    """Vertical and horizontal edges (pdfplumber's edge dicts) along the middle of each segment."""
    v, h = [], []
    for x0, top, x1, bottom in segments:
        if x1 - x0 <= THIN_PT:
            x = (x0 + x1) / 2
            v.append({"object_type": "line_edge", "orientation": "v", "x0": x, "x1": x, "top": top,
                      "bottom": bottom, "width": 0.0, "height": bottom - top})
        else:
            y = (top + bottom) / 2
            h.append({"object_type": "line_edge", "orientation": "h", "x0": x0, "x1": x1, "top": y,
                      "bottom": y, "width": x1 - x0, "height": 0.0})
    return v, h


def _find_tables(width: float, height: float, segments: Sequence[BBox]):
    """pdfplumber's table finder (snap, join, intersect, cells, tables) on the drawn borders."""
    import types

    from pdfplumber.table import TableFinder

    v, h = _edges(segments)
    if len(v) < 2 or len(h) < 2:
        return []
    settings = dict(_TABLE_SETTINGS, vertical_strategy="explicit", horizontal_strategy="explicit",
                    explicit_vertical_lines=v, explicit_horizontal_lines=h)
    return TableFinder(types.SimpleNamespace(bbox=(0, 0, width, height)), settings).tables


def _page_model(page, number: int) -> PdfPage:
    """One pdfium page as the neutral model: tables with cell texts, prose lines outside them.
    Whatever the stamper painted in the QR corner is ignored."""
    width, height = (float(v) for v in page.get_size())
    zone = stamp_zone(width)
    chars, segments, marks = _page_objects(page)
    chars = [c for c in chars if not _contains(zone, (c["x0"], c["top"], c["x1"], c["bottom"]))]
    segments = [b for b in segments if not _contains(zone, b)]
    marks = [b for b in marks if not _contains(zone, b)]
    tables = _find_tables(width, height, segments)
    models: list[TableModel] = []
    table_boxes = []
    taken: set[int] = set()
    # characters by vertical centre, so each cell looks only at the characters of its band
    centres = sorted(((c["top"] + c["bottom"]) / 2, k) for k, c in enumerate(chars))
    keys = [y for y, _k in centres]
    for ti, t in enumerate(tables):
        table_boxes.append(t.bbox)
        rows: list[list[Cell]] = []
        for ri, r in enumerate(t.rows):
            row: list[Cell] = []
            for ci, box in enumerate(r.cells):
                if box is None:
                    continue
                box = tuple(float(v) for v in box)
                mine = []
                for _y, k in centres[bisect.bisect_left(keys, box[1]):bisect.bisect_right(keys, box[3])]:
                    if k not in taken and _inside(chars[k], box):
                        mine.append(chars[k])
                        taken.add(k)
                mine.sort(key=lambda c: (c["top"], c["x0"]))
                marked = any(_contains(box, m) for m in marks)
                source = {"kind": "pdf", "page": number, "table": ti, "row": ri, "col": ci, "bbox": _r(box)}
                row.append(Cell(chars_text(mine, box[2] - CELL_PAD_PT), source, box, marked))
            if row:
                rows.append(row)
        models.append(TableModel(rows, {"kind": "pdf", "page": number, "table": ti,
                                        "bbox": _r(t.bbox)}, tuple(float(v) for v in t.bbox)))
    rest = [ch for k, ch in enumerate(chars) if k not in taken
            and not any(_inside(ch, tb) for tb in table_boxes)]
    lines = []
    for ln in _lines_of(rest):
        text, boxes = _line_text(ln)
        lines.append((text, boxes, _union(b for b in boxes if b)))
    return PdfPage(number, width, height, models, lines)


def _contains(outer: BBox, inner: BBox) -> bool:
    cx, cy = (inner[0] + inner[2]) / 2, (inner[1] + inner[3]) / 2
    return outer[0] <= cx <= outer[2] and outer[1] <= cy <= outer[3]


def _r(box) -> list[float]:
    return [round(float(v), 2) for v in box]


def page_part(page: PdfPage, parts: Sequence[L.Part]) -> str | None:
    """The part a page starts (by its printed marker above any table), else None."""
    names = {norm(p.name): p.key for p in parts}
    top_table = min((t.bbox[1] for t in page.tables if t.bbox), default=page.height)
    for text, _boxes, box in page.lines:
        if box is None or box[1] > min(top_table, page.height * 0.35):
            break
        m = PART_MARK_RE.match(text.strip())
        if m and norm(m.group(1)) in names:
            return names[norm(m.group(1))]
    return None


def _paragraphs(page: PdfPage, right_edge: float) -> list[Paragraph]:
    """Prose lines grouped into paragraphs: a line continues the previous one when that one ran to
    the right margin and the gap between them is a normal line gap."""
    paras: list[Paragraph] = []
    prev_box = None
    for li, (text, boxes, box) in enumerate(page.lines):
        if box is None:
            continue
        size = box[3] - box[1]
        cont = (prev_box is not None and prev_box[2] >= right_edge - 1.5 * size
                and 0 <= box[1] - prev_box[3] < 1.2 * size)
        if cont:
            last = paras[-1]
            sep = wrap_separator(last.text, last.boxes, text, boxes, right_edge)
            if last.text != last.text.rstrip():
                n = len(last.text) - len(last.text.rstrip())
                last.text, last.boxes = last.text[:-n], last.boxes[:-n]
            last.text += sep + text
            last.boxes.extend([None] * len(sep) + list(boxes))
            last.source["lines"].append(li)
        else:
            paras.append(Paragraph(text, {"kind": "pdf", "page": page.number, "lines": [li]}, list(boxes)))
        prev_box = box
    return paras


@dataclass
class PdfAnalysis:
    pages: list[PdfPage]
    parts: dict[str, PartLocation]
    page_parts: list[str | None]
    warnings: list[str] = field(default_factory=list)

    def text(self) -> str:
        out = []
        for p in self.pages:
            out.extend(t for t, _b, _x in p.lines)
            for t in p.tables:
                out.extend(c.text for r in t.rows for c in r)
        return "\n".join(out)


@with_pdfium_lock
def pdf_pages(pdf: bytes | str | Path) -> list[PdfPage]:
    """The neutral model of every page (tables from the drawn cell borders, prose lines).

    Characters, borders and marks come from pdfium (pypdfium2, shipped with pdfplumber), which reads
    a page in milliseconds; the cells are found by pdfplumber's table finder on those borders."""
    import pypdfium2 as pdfium

    from forms.errors import UnreadableDocument

    try:
        doc = pdfium.PdfDocument(bytes(pdf) if isinstance(pdf, (bytes, bytearray)) else str(pdf))
    except pdfium.PdfiumError as e:
        raise UnreadableDocument(f"PDF 无法读取：{e}") from e
    try:
        return [_page_model(doc[i], i + 1) for i in range(len(doc))]
    finally:
        doc.close()


def assign_parts(pages: list[PdfPage], parts: Sequence[L.Part]) -> tuple[list[str | None], list[str]]:
    """Each page's part: its marker, else the previous page's part. Single-part layouts need no
    marker; without any marker in a multi-part layout, pages map to parts in order."""
    warnings = []
    if len(parts) == 1:
        return [parts[0].key] * len(pages), warnings
    marks = [page_part(p, parts) for p in pages]
    if not any(marks):
        warnings.append("未找到各联标记，按页序对应各联")
        keys = [p.key for p in parts]
        return [keys[min(i, len(keys) - 1)] for i in range(len(pages))], warnings
    out: list[str | None] = []
    current = None
    for m in marks:
        current = m or current
        out.append(current)
    return out, warnings


def analyse_pdf(pdf: bytes | str | Path, spec: FormSpec, variant: Variant | None,
                pages: list[PdfPage] | None = None) -> PdfAnalysis:
    """Split a PDF into the layout's parts and locate every field."""
    from forms.build_templates import page_setup

    parts = layout_parts(spec, variant)
    pages = pages if pages is not None else pdf_pages(pdf)
    page_parts, warnings = assign_parts(pages, parts)
    by_key = {p.key: p for p in parts}
    contents: dict[str, PartContent] = {p.key: PartContent(p.key) for p in parts}
    for page, key in zip(pages, page_parts, strict=True):
        page.part = key
        if key is None:
            continue
        (w_mm, _h), m = page_setup(by_key[key], spec)
        right = (w_mm - m["right"]) * PT_PER_MM
        contents[key].tables.extend(page.tables)
        contents[key].paragraphs.extend(_paragraphs(page, right))
    located = {p.key: locate_part(spec, p, contents[p.key], variant) for p in parts}
    return PdfAnalysis(pages, located, page_parts, warnings)


# ---- geometry record ---------------------------------------------------------------------------------

def qr_box(width_pt: float) -> list[float]:
    """Where the QR square is stamped on a page of this width (layout constants)."""
    size = L.QR_SIZE_MM * PT_PER_MM
    x1 = width_pt - L.QR_RIGHT_MM * PT_PER_MM
    top = L.QR_TOP_MM * PT_PER_MM
    return _r((x1 - size, top, x1, top + size))


def geometry_from_analysis(analysis: PdfAnalysis, spec: FormSpec, variant: Variant | None) -> dict:
    pages = []
    for page in analysis.pages:
        tables = [_r(t.bbox) for t in page.tables if t.bbox]
        entry: dict[str, Any] = {
            "page": page.number, "part": page.part, "size": [round(page.width, 2), round(page.height, 2)],
            "qr": qr_box(page.width), "tables": tables,
            "outline": _r(_union(tuple(t) for t in tables)) if tables else None,
            "fields": {}, "labels": {},
        }
        pages.append(entry)
    by_number = {p["page"]: p for p in pages}
    for loc in analysis.parts.values():
        for path, item in loc.located.items():
            page_no = item.source.get("page")
            if page_no not in by_number or item.bbox is None:
                continue
            entry = by_number[page_no]
            rec: dict[str, Any] = {"bbox": _r(item.bbox), "kind": item.kind}
            if item.kind == "text" and len(item.lines) > 1:
                rec["lines"] = [_r(b) for b in item.lines]
            entry["fields"][path] = rec
            if item.label_bbox is not None:
                key = path if item.row is None else f"{item.field}[].{item.column}"
                entry["labels"].setdefault(key, _r(item.label_bbox))
    return {"form": spec.code, "variant": variant.code if variant else None,
            "template": spec.template_name(variant), "pages": pages}


def record_geometry(pdf_bytes: bytes, spec: FormSpec, variant: Variant | None) -> dict:
    """Per page: part, size, QR box, table outlines, and the box of every field's value (and
    label) in PDF points, top-left origin. JSON-serialisable (see the module docstring)."""
    analysis = analyse_pdf(pdf_bytes, spec, variant)
    return geometry_from_analysis(analysis, spec, variant)
