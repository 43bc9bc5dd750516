"""Layout rules checked by machine on a rendered, stamped PDF: what a clerk looks for before
printing and signing, as code.

``check_document(pdf, spec, variant, cleaned, secret=...)`` returns the ``Problem``s found (an
empty list: the document may go out). The rules:

* ``pdf``: the file is structurally valid (qpdf's check through pikepdf), every font is embedded
  and is one of the configured faces (``faces``; a symbol face for ☐☑ is allowed);
* ``qr`` / ``page-number``: every page carries its QR code (decoded from the page image, page i of
  n, verified with the secret) and its printed "第 i 页 共 n 页";
* ``alone``: no page holds only a closing block — the 落款 and its seals, the 抄送 版记, or a
  signature table kept together (``Grid(keep=True)``) — with none of the text it closes, and no
  part ends on a page holding only a line or two of text;
* ``heading-last``: no heading (``Heading``, ``Title``) is the last line of a page;
* ``heading-alone``: no page holds only what stands above a part's list (its title, number,
  header grid and notes) while the list starts on a later page;
* ``split``: a block marked keep-together (``Grid``/``Rows`` with ``keep``) lies on one page;
* ``overflow``: no printed character lies outside the type area (the footer, the caption under the
  QR and punctuation hanging one character into the right margin excepted) or outside its table
  cell;
* ``missing``: every field with a value that the layout prints is found printed (its printed form,
  whitespace ignored) on the pages of its part.
"""

from __future__ import annotations

import io
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from forms import geometry as G
from forms import identity as ident
from forms import layout as L
from forms.pdfium_lock import with_pdfium_lock
from forms.spec import Filled, FormSpec, Kind, Variant, format_value, is_blank

# Base names (subset prefix removed) of the faces a document may embed: the configured ones and
# the symbol face LibreOffice takes for ☐ ☑ ✗, which the CJK faces lack.
DEFAULT_FACES = ("FandolFang", "FandolSong", "NotoSerifCJK", "NotoSansCJK", "DejaVuSans")
HANGING = "，。、；：？！”’」』）》"
TOL_PT = 1.0


@dataclass(frozen=True)
class Problem:
    page: int  # 1-based; 0 for the whole file
    rule: str
    detail: str

    def __str__(self) -> str:
        return f"p{self.page} {self.rule}: {self.detail}"


def _norm(text: str) -> str:
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", text or ""))


# ---- file structure and fonts -------------------------------------------------------------------

def pdf_problems(pdf: bytes, faces: Iterable[str] = DEFAULT_FACES) -> list[Problem]:
    """qpdf's structural check, and every font embedded and of an allowed face."""
    import pikepdf

    out: list[Problem] = []
    try:
        doc = pikepdf.open(io.BytesIO(pdf))
    except pikepdf.PdfError as e:
        return [Problem(0, "pdf", f"not readable: {e}")]
    with doc:
        out += [Problem(0, "pdf", msg) for msg in doc.check_pdf_syntax()]
        faces = tuple(faces)
        seen: set[str] = set()
        for no, page in enumerate(doc.pages, 1):
            fonts = page.obj.get("/Resources", {}).get("/Font", {})
            for key in fonts.keys():
                font = fonts[key]
                name = str(font.get("/BaseFont", "")).lstrip("/")
                base = name.split("+", 1)[-1]
                if name in seen:
                    continue
                seen.add(name)
                desc = font.get("/FontDescriptor")
                if desc is None and "/DescendantFonts" in font:
                    desc = font["/DescendantFonts"][0].get("/FontDescriptor")
                if desc is None or not any(k in desc for k in ("/FontFile", "/FontFile2", "/FontFile3")):
                    out.append(Problem(no, "pdf", f"font {base} is not embedded"))
                if not base.startswith(faces):
                    out.append(Problem(no, "pdf", f"font {base} is not one of the configured faces"))
    return out


# ---- page images: the QR code ------------------------------------------------------------------------

@with_pdfium_lock
def _page_images(pdf: bytes, dpi: int) -> list:
    import pypdfium2 as pdfium

    doc = pdfium.PdfDocument(pdf)
    try:
        return [doc[i].render(scale=dpi / 72, grayscale=True).to_numpy() for i in range(len(doc))]
    finally:
        doc.close()


def qr_problems(pdf: bytes, secret: ident.QrKeys | str, doc_id: str | None = None, dpi: int = 150) -> list[Problem]:
    """Every page's code decodes, verifies, and says page i of n (of this document)."""
    import numpy as np
    import zxingcpp

    images = _page_images(pdf, dpi)
    n = len(images)
    out = []
    for i, img in enumerate(images, 1):
        gray = np.ascontiguousarray(img[..., 0] if img.ndim == 3 else img)
        h, w = gray.shape
        corner = gray[: int(h * 0.2), int(w * 0.6):]
        codes = zxingcpp.read_barcodes(corner, formats=zxingcpp.BarcodeFormat.QRCode)
        if not codes:
            out.append(Problem(i, "qr", "no readable QR code in the top-right corner"))
            continue
        try:
            got = ident.decode(codes[0].text, secret)
        except Exception as e:  # noqa: BLE001 - any decoding failure is the finding
            out.append(Problem(i, "qr", f"QR code does not verify: {e}"))
            continue
        if (got.page, got.pages) != (i, n) or (doc_id and got.doc_id != doc_id):
            out.append(Problem(i, "qr", f"QR code says {got.doc_id} page {got.page}/{got.pages}"))
    return out


# ---- the layout rules -------------------------------------------------------------------------------

def _closing_blocks(part: L.Part) -> tuple:
    """The blocks that close a part: from its first 落款, 版记 or kept signature table to the end."""
    for i, b in enumerate(part.blocks):
        if isinstance(b, (L.Signoff, L.Banji)) or (isinstance(b, L.Grid) and b.keep):
            return part.blocks[i:]
    return ()


def _closing_fields(part: L.Part) -> set[str]:
    """Fields of the closing blocks of a part: 落款, 版记, kept signature tables."""
    out: set[str] = set()
    for b in _closing_blocks(part):
        if isinstance(b, L.Signoff):
            out |= {*b.names, b.date, *b.seals}
        elif isinstance(b, L.Banji):
            out |= {n for t in b.lines for n in L.placeholders(t) if "." not in n}
        elif isinstance(b, L.Grid) and b.keep:
            out |= {c.field for r in b.rows for c in r if isinstance(c, L.Value)}
    return out


def _banji_prefixes(part: L.Part) -> list[str]:
    """Leading printed text of the closing lines that are not fields (版记 lines, closing notes)."""
    out = []
    for b in _closing_blocks(part):
        texts = b.lines if isinstance(b, L.Banji) else (b.text,) if isinstance(b, L.Para) else ()
        for t in texts:
            lit = L.PLACEHOLDER_RE.split(t)[0]
            if _norm(lit):
                out.append(_norm(lit)[:8])
    return out


def _is_furniture_line(text: str, part_names: set[str]) -> bool:
    t = text.strip()
    if G.FOOTER_RE.match(t):
        return True
    m = G.PART_MARK_RE.match(t)
    return bool(m and G.norm(m.group(1)) in part_names)


def layout_problems(pdf: bytes, spec: FormSpec, variant: Variant | None,
                    cleaned: Mapping[str, Any]) -> list[Problem]:
    """The page rules (alone, heading-last, split, overflow, missing, page-number)."""
    from forms.build_templates import page_setup

    analysis = G.analyse_pdf(pdf, spec, variant)
    parts = {p.key: p for p in spec.parts(variant)}
    part_names = {G.norm(p.name) for p in parts.values()}
    out: list[Problem] = []
    n = len(analysis.pages)
    located_by_page: dict[int, list[G.Located]] = {}
    for loc in analysis.parts.values():
        for item in loc.located.values():
            page = item.source.get("page")
            if page:
                located_by_page.setdefault(page, []).append(item)

    page_text: dict[int, str] = {}
    for page in analysis.pages:
        no = page.number
        part = parts.get(page.part) if page.part else None
        lines = [(t, box) for t, _b, box in page.lines if box is not None]
        content = [(t, box) for t, box in lines if not _is_furniture_line(t, part_names)]
        cell_text = [c.text for t in page.tables for r in t.rows for c in r]
        page_text[no] = _norm("".join(t for t, _ in content) + "".join(cell_text))
        # page number printed
        want = f"第{no}页共{n}页"
        if not any(_norm(t) == want for t, _ in lines):
            out.append(Problem(no, "page-number", f"“第 {no} 页 共 {n} 页” not printed"))
        if part is None:
            continue
        # alone: only closing content on the page
        closing = _closing_fields(part)
        fields_here = {it.field for it in located_by_page.get(no, [])}
        banji = _banji_prefixes(part)
        closing_lines = {it.source.get("lines", [None])[0] for it in located_by_page.get(no, [])
                         if it.field in closing and it.kind == "text"}
        other_lines = [t for i, (t, _b, box) in enumerate(page.lines)
                       if box is not None and not _is_furniture_line(t, part_names)
                       and i not in closing_lines and not any(_norm(t).startswith(p) for p in banji)]
        if closing and (fields_here or lines) and fields_here <= closing and not other_lines \
                and not any(t.rows and not _table_is_closing(t, located_by_page.get(no, []), closing)
                            for t in page.tables):
            out.append(Problem(no, "alone", "the page holds only a closing block (落款/印章/抄送/签名表)"))
        # heading as the last line of the page
        if content:
            last = _norm(content[-1][0])
            heads = {_norm(b.text) for b in part.blocks if isinstance(b, L.Heading)}
            heads |= {_norm(_constant_text(b.text, spec, variant)) for b in part.blocks
                      if isinstance(b, L.Title)}
            last_table_bottom = max((t.bbox[3] for t in page.tables if t.bbox), default=0)
            if last in heads and content[-1][1][1] > last_table_bottom:
                out.append(Problem(no, "heading-last", f"“{content[-1][0].strip()}” ends the page"))
        # overflow: outside the type area
        (w_mm, h_mm), m = page_setup(part, spec)
        pt = G.PT_PER_MM
        left, right = m["left"] * pt, (w_mm - m["right"]) * pt
        top, bottom = m["top"] * pt, (h_mm - m["bottom"]) * pt
        zone = G.stamp_zone(page.width)
        for t, boxes, box in page.lines:
            if box is None or _is_furniture_line(t, part_names) or G._contains(zone, box):  # noqa: SLF001
                continue
            for ch, b in zip(t, boxes, strict=False):
                if b is None or ch.isspace():
                    continue
                size = b[3] - b[1]
                slack = size + TOL_PT if ch in HANGING else TOL_PT
                if b[0] < left - TOL_PT or b[2] > right + slack or b[1] < top - TOL_PT or b[3] > bottom + TOL_PT:
                    out.append(Problem(no, "overflow", f"“{ch}” of “{t.strip()[:20]}” lies outside the type area"))
                    break
        for t in page.tables:
            if t.bbox and (t.bbox[0] < left - 2 * pt or t.bbox[2] > right + 2 * pt or t.bbox[3] > bottom + TOL_PT):
                out.append(Problem(no, "overflow", "a table lies outside the type area"))
    out += _overflowing_cells(pdf)
    # a part whose last page carries only a line or two of text (a note, a closing formula)
    for key, part in parts.items():
        pages = [p for p in analysis.pages if p.part == key]
        if len(pages) < 2:
            continue
        last = pages[-1]
        lines = [t for t, _b, box in last.lines if box is not None and not _is_furniture_line(t, part_names)]
        if not last.tables and len(lines) <= 2:
            out.append(Problem(last.number, "alone", f"the last page of {part.name} holds only {lines}"))
    out += _heading_alone(analysis, parts)
    # split keep-together blocks
    for key, part in parts.items():
        loc = analysis.parts.get(key)
        if loc is None:
            continue
        for b in part.blocks:
            names: list[str] = []
            if isinstance(b, L.Grid) and b.keep:
                names = [c.field for r in b.rows for c in r if isinstance(c, L.Value)]
                pages = {loc.located[x].source.get("page") for x in names if x in loc.located}
            elif isinstance(b, L.Rows) and b.keep:
                pages = {it.source.get("page") for p, it in loc.located.items() if p.startswith(b.field + "[")}
            else:
                continue
            if len(pages) > 1:
                out.append(Problem(min(pages), "split", f"a keep-together block is split over pages {sorted(pages)}"))
    # every value printed
    out += _missing_values(analysis, spec, variant, cleaned, page_text)
    return out


def _heading_alone(analysis, parts: Mapping[str, L.Part]) -> list[Problem]:
    """``heading-alone``: a part whose list (``Rows``) starts on a later page than the part, so
    that its first page(s) hold only what stands above the list (title, number, header grid,
    notes) — the 交接表 whose pupils begin on page 2 under nothing."""
    out: list[Problem] = []
    for key, part in parts.items():
        loc = analysis.parts.get(key)
        rows = next((b for b in part.blocks if isinstance(b, L.Rows)), None)
        if loc is None or rows is None or rows.keep or part.blocks.index(rows) == 0:
            continue  # a short list kept whole (keep=True) may move on with what follows it
        pages = sorted(p.number for p in analysis.pages if p.part == key)
        listed = sorted({it.source.get("page") for path, it in loc.located.items()
                         if path.startswith(rows.field + "[") and it.source.get("page")})
        if not (pages and listed and listed[0] > pages[0]):
            continue
        by_number = {p.number: p for p in analysis.pages}
        for no in range(pages[0], listed[0]):
            page = by_number[no]
            # only where the page had room for the list: nearly a third of it left blank
            bottom = max([box[3] for _t, _b, box in page.lines if box is not None
                          and not G.FOOTER_RE.match(_t.strip())]
                         + [t.bbox[3] for t in page.tables if t.bbox], default=0)
            if bottom < page.height * 0.7:
                out.append(Problem(no, "heading-alone", f"the page holds only the heading of {part.name}; "
                                                        f"its list starts on page {listed[0]}"))
    return out


def _constant_text(text: str, spec: FormSpec, variant: Variant | None) -> str:
    return L.PLACEHOLDER_RE.sub(lambda m: G.printed_constant(m.group(1), spec, variant) or "", text)


def _table_is_closing(table, located: list[G.Located], closing: set[str]) -> bool:
    fields = {it.field for it in located if it.source.get("table") == table.source.get("table")}
    return bool(fields) and fields <= closing


@with_pdfium_lock
def _overflowing_cells(pdf: bytes) -> list[Problem]:
    """Characters that start inside a table cell and run past its right or bottom border."""
    import pypdfium2 as pdfium

    out = []
    doc = pdfium.PdfDocument(pdf)
    try:
        for i in range(len(doc)):
            page = doc[i]
            width, height = (float(v) for v in page.get_size())
            chars, segments, _marks = G._page_objects(page)  # noqa: SLF001
            for t in G._find_tables(width, height, segments):  # noqa: SLF001
                for r in t.rows:
                    for box in r.cells:
                        if box is None:
                            continue
                        for ch in chars:
                            cx = (ch["x0"] + ch["x1"]) / 2
                            cy = (ch["top"] + ch["bottom"]) / 2
                            if box[0] <= cx <= box[2] and box[1] <= cy <= box[3] and (
                                    ch["x1"] > box[2] + TOL_PT or ch["bottom"] > box[3] + TOL_PT):
                                out.append(Problem(i + 1, "overflow", f"“{ch['text']}” runs past its cell"))
                                break
        return out
    finally:
        doc.close()


def _printed_forms(f, value, cleaned: Mapping[str, Any] | None = None) -> list[str]:
    """What a value prints as (more than one form where a layout may print it either way)."""
    text = str(value) if f.mask_on_print and cleaned is not None and f.prints_full(cleaned) \
        else format_value(f, value)
    forms = [text]
    if f.kind in (Kind.CHOICE,) and value:
        forms.append(f.choice_label(value))
    return [x for x in forms if _norm(x)]


def _missing_values(analysis, spec: FormSpec, variant, cleaned, page_text: dict[int, str]) -> list[Problem]:
    out = []
    for part in spec.parts(variant):
        pages = [p.number for p, k in zip(analysis.pages, analysis.page_parts, strict=True) if k == part.key]
        text = "".join(page_text.get(p, "") for p in pages)
        for name in dict.fromkeys(L.printed_names(part)):
            f = spec.field(name)
            value = cleaned.get(name)
            if f.kind in (Kind.SIGNATURE, Kind.SEAL) or is_blank(value):
                continue
            if f.kind == Kind.TABLE:
                cols = _printed_columns(part, name, f)
                for i, row in enumerate(value or []):
                    for c in cols:
                        v = row.get(c.name)
                        if is_blank(v) or c.kind in (Kind.SIGNATURE, Kind.SEAL):
                            continue
                        if not any(_norm(x) in text for x in _printed_forms(c, v)):
                            out.append(Problem(pages[0] if pages else 0, "missing",
                                               f"{name}[{i}].{c.name} = {str(v)[:30]!r} not printed"))
                continue
            if f.filled == Filled.HAND and f.hand_boxes and is_blank(value):
                continue
            if not any(_norm(x) in text for x in _printed_forms(f, value, cleaned)):
                out.append(Problem(pages[0] if pages else 0, "missing", f"{name} = {str(value)[:30]!r} not printed"))
    return out


def _printed_columns(part: L.Part, name: str, f) -> list:
    for b in part.blocks:
        if isinstance(b, L.Rows) and b.field == name:
            return [f.column(c) for c in (b.columns or [c.name for c in f.columns])]
        if isinstance(b, L.Items) and b.field == name:
            return [f.column(c) for c in L.placeholders(b.text) if c not in ("_no", "_cn")]
    return list(f.columns)


def check_document(pdf: bytes, spec: FormSpec, variant: Variant | None, cleaned: Mapping[str, Any], *,
                   secret: ident.QrKeys | str, doc_id: str | None = None,
                   faces: Iterable[str] = DEFAULT_FACES) -> list[Problem]:
    """Every rule of the module docstring over one rendered, stamped document."""
    return [*pdf_problems(pdf, faces), *qr_problems(pdf, secret, doc_id),
            *layout_problems(pdf, spec, variant, cleaned)]
