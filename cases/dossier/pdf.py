"""Assembling the dossier PDF: text pages (cover, 目录, item summaries, manifest) set with reportlab
in an embedded CJK TrueType face, the issued PDFs' pages copied as they are, returned scans and
photos as image pages, bookmarks per item, the signed JSON manifest attached, written and
validated as PDF/A by pikepdf's own PDF/A checker (``pikepdf.pdfa``).

Why PDF/A-**3b** and not 2b: the manifest travels inside the file as an embedded JSON file, and
PDF/A-2 (ISO 19005-2 §6.8) allows only PDF/A files as embedded files; PDF/A-3 allows any file
as an associated file (``/AF``, ``AFRelationship /Data``). Everything else PDF/A-2b asks for
(embedded fonts, an sRGB OutputIntent, XMP with ``pdfaid``, no encryption, no JavaScript) is
the same in 3b, and the checker validates the written bytes.

Pure file work: no database. ``cases.dossier.build`` gathers what goes in.
"""

from __future__ import annotations

import hashlib
import io
import logging
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pikepdf
from PIL import Image

log = logging.getLogger(__name__)

# A TrueType CJK face (reportlab embeds TrueType subsets; it cannot embed the CFF-based Noto or
# Fandol faces). AR PL UMing CN (fonts-arphic-uming, installed by scripts/setup.sh) is face 0.
CJK_FONT_PATH = "/usr/share/fonts/truetype/arphic/uming.ttc"
CJK_FONT_INDEX = 0
CJK_FONT = "BxUMing"
# Embedded instead of a non-embedded standard font that a page refers to (the page-code line of
# issued PDFs is set in Helvetica, which PDF/A requires to be embedded).
LATIN_FONT_PATH = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
PDFA_FLAVOUR = "3b"
MANIFEST_NAME = "manifest.json"
A4 = (595.276, 841.89)
SCAN_JPEG_QUALITY = 80
PDF_RASTER_DPI = 150

_font_lock = threading.Lock()
_font_ready = False


class DossierPdfError(Exception):
    """The dossier could not be written as valid PDF/A (the message lists the findings)."""


def register_fonts() -> str:
    """Register the CJK face with reportlab once per process; returns its name."""
    global _font_ready
    with _font_lock:
        if not _font_ready:
            from reportlab.pdfbase import pdfmetrics
            from reportlab.pdfbase.ttfonts import TTFont

            pdfmetrics.registerFont(TTFont(CJK_FONT, CJK_FONT_PATH, subfontIndex=CJK_FONT_INDEX))
            _font_ready = True
    return CJK_FONT


# ---- text pages -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Line:
    """A paragraph of a text page: ``style`` title / heading / body / small / missing / mono."""

    text: str
    style: str = "body"


def _styles():
    from reportlab.lib.colors import HexColor
    from reportlab.lib.styles import ParagraphStyle

    font = register_fonts()
    base = ParagraphStyle("body", fontName=font, fontSize=11, leading=17, wordWrap="CJK")
    return {
        "title": ParagraphStyle("title", parent=base, fontSize=22, leading=32, alignment=1, spaceAfter=18),
        "subtitle": ParagraphStyle("subtitle", parent=base, fontSize=14, leading=22, alignment=1, spaceAfter=24),
        "heading": ParagraphStyle("heading", parent=base, fontSize=15, leading=22, spaceBefore=6, spaceAfter=10),
        "body": base,
        "small": ParagraphStyle("small", parent=base, fontSize=8.5, leading=12),
        "mono": ParagraphStyle("mono", parent=base, fontSize=7.2, leading=10),
        "missing": ParagraphStyle("missing", parent=base, textColor=HexColor("#b00000")),
        "toc": ParagraphStyle("toc", parent=base, fontSize=11.5, leading=19),
        "tocsub": ParagraphStyle("tocsub", parent=base, fontSize=9.5, leading=14, leftIndent=18),
    }


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def text_pages(lines: Sequence[Line], *, footer: str = "") -> bytes:
    """A PDF of flowing paragraphs on A4 (new pages as needed), ``footer`` on every page."""
    from reportlab.platypus import PageBreak, Paragraph, SimpleDocTemplate, Spacer

    styles = _styles()
    buf = io.BytesIO()
    doc = SimpleDocTemplate(buf, pagesize=A4, leftMargin=64, rightMargin=56, topMargin=64, bottomMargin=60,
                            title="", author="", invariant=1)
    story = []
    for line in lines:
        if line.style == "pagebreak":
            story.append(PageBreak())
        elif line.style == "space":
            story.append(Spacer(1, 18))
        else:
            style = styles.get(line.style, styles["body"])
            story.append(Paragraph(_escape(line.text).replace("\n", "<br/>"), style))

    def on_page(canvas, _doc):
        if footer:
            canvas.setFont(styles["small"].fontName, 8)
            canvas.drawCentredString(A4[0] / 2, 32, footer)

    doc.build(story, onFirstPage=on_page, onLaterPages=on_page)
    return buf.getvalue()


# ---- image pages ------------------------------------------------------------------------------------

def _jpeg_page(pdf: pikepdf.Pdf, jpeg: bytes, width: int, height: int, mode: str, dpi: float | None) -> pikepdf.Page:
    """A page showing one JPEG image whole: its own size at ``dpi`` when known, else fitted to A4."""
    colour = pikepdf.Name.DeviceGray if mode == "L" else pikepdf.Name.DeviceRGB
    image = pikepdf.Stream(pdf, jpeg, Type=pikepdf.Name.XObject, Subtype=pikepdf.Name.Image, Width=width,
                           Height=height, ColorSpace=colour, BitsPerComponent=8, Filter=pikepdf.Name.DCTDecode)
    if dpi and 50 <= dpi <= 1200:
        w, h = width * 72.0 / dpi, height * 72.0 / dpi
    else:
        scale = min(A4[0] / width, A4[1] / height)
        w, h = width * scale, height * scale
    content = pikepdf.Stream(pdf, f"q {w:.3f} 0 0 {h:.3f} 0 0 cm /Im0 Do Q".encode())
    page = pikepdf.Dictionary(Type=pikepdf.Name.Page, MediaBox=[0, 0, round(w, 3), round(h, 3)],
                              Resources=pikepdf.Dictionary(XObject=pikepdf.Dictionary(Im0=image)),
                              Contents=content)
    return pikepdf.Page(page)


def _jpeg_info(data: bytes) -> tuple[int, int, str, float | None] | None:
    """Size, mode and dpi of a baseline/progressive JPEG that PDF can show as is (RGB or grey)."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.format != "JPEG" or im.mode not in ("RGB", "L"):
                return None
            exif = im.getexif() if hasattr(im, "getexif") else {}
            if exif and exif.get(0x0112, 1) not in (1, None):
                return None  # rotated by EXIF: re-encode upright
            dpi = im.info.get("dpi", (None,))[0]
            return im.size[0], im.size[1], im.mode, float(dpi) if dpi else None
    except Exception:  # noqa: BLE001 - anything unreadable here is re-encoded from decoded pixels below
        return None


def image_pages(pdf: pikepdf.Pdf, data: bytes, filename: str, pages: Iterable[int] | None = None) -> list[pikepdf.Page]:
    """Pages showing a returned file as images: a JPEG as it is (no re-encoding); PNG, TIFF,
    image-only or digital PDF decoded once (``parsers.images``, one rasteriser) and stored as JPEG.
    ``pages``: 0-based page indexes to keep (None: all)."""
    from parsers.images import load_pages

    wanted = set(pages) if pages is not None else None
    info = _jpeg_info(data)
    if info is not None and (wanted is None or 0 in wanted):
        return [_jpeg_page(pdf, data, *info)]
    out = []
    for page in load_pages(data, filename=filename, pdf_dpi=PDF_RASTER_DPI):
        if wanted is not None and page.index not in wanted:
            continue
        img = Image.fromarray(page.pixels)
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=SCAN_JPEG_QUALITY, optimize=False)
        out.append(_jpeg_page(pdf, buf.getvalue(), img.width, img.height, "RGB", page.dpi))
    return out


# ---- fonts of copied pages --------------------------------------------------------------------------

_latin_font_cache: dict[str, tuple[bytes, list[int]]] = {}


def _latin_font() -> tuple[bytes, list[int]]:
    """DejaVu Sans subset to printable ASCII (TrueType bytes) and its widths for codes 32..126."""
    if "ascii" not in _latin_font_cache:
        from fontTools import subset
        from fontTools.ttLib import TTFont

        font = TTFont(LATIN_FONT_PATH)
        options = subset.Options()
        options.name_IDs = ["*"]
        options.notdef_outline = True
        sub = subset.Subsetter(options)
        sub.populate(unicodes=range(32, 127))
        sub.subset(font)
        cmap = font.getBestCmap()
        scale = 1000.0 / font["head"].unitsPerEm
        hmtx = font["hmtx"]
        widths = [round(hmtx[cmap[c]][0] * scale) if c in cmap else 0 for c in range(32, 127)]
        buf = io.BytesIO()
        font.save(buf)
        _latin_font_cache["ascii"] = (buf.getvalue(), widths)
    return _latin_font_cache["ascii"]


def embed_standard_fonts(pdf: pikepdf.Pdf) -> int:
    """Turn every non-embedded simple Type 1 font of ``pdf`` (a standard-14 face: the Helvetica of
    the page-code line of issued PDFs, reportlab's default font entry) into an embedded TrueType
    subset with WinAnsi encoding, in place, so PDF/A's "every font embedded" holds. Only printable
    ASCII is drawn in those faces. Returns how many font objects were changed."""
    changed = 0
    descriptor = None
    for obj in pdf.objects:
        if not isinstance(obj, pikepdf.Dictionary) or obj.get("/Type") != pikepdf.Name.Font:
            continue
        if obj.get("/Subtype") != pikepdf.Name.Type1 or "/FontDescriptor" in obj:
            continue
        if descriptor is None:
            data, widths = _latin_font()
            file2 = pikepdf.Stream(pdf, data, Length1=len(data))
            descriptor = pdf.make_indirect(pikepdf.Dictionary(
                Type=pikepdf.Name.FontDescriptor, FontName=pikepdf.Name("/BxDejaVuSans"), Flags=32,
                FontBBox=[-1021, -463, 1793, 1232], ItalicAngle=0, Ascent=928, Descent=-236, CapHeight=729,
                StemV=80, FontFile2=file2))
        obj.Subtype = pikepdf.Name.TrueType
        obj.BaseFont = pikepdf.Name("/BxDejaVuSans")
        obj.FirstChar, obj.LastChar = 32, 126
        obj.Widths = pikepdf.Array(widths)
        obj.Encoding = pikepdf.Name.WinAnsiEncoding
        obj.FontDescriptor = descriptor
        changed += 1
    return changed


# ---- page fingerprints ------------------------------------------------------------------------------

def _stream_bytes(obj) -> bytes:
    try:
        return obj.read_bytes(decode_level=pikepdf.StreamDecodeLevel.generalized)
    except pikepdf.PdfError:
        return obj.read_raw_bytes()


def _xobjects_digest(h, resources, depth: int = 0) -> None:
    xobjects = resources.get("/XObject", {}) if resources is not None else {}
    for key in sorted(xobjects.keys()):
        x = xobjects[key]
        h.update(key.encode())
        h.update(_stream_bytes(x))
        if depth < 3 and x.get("/Subtype") == pikepdf.Name.Form:
            _xobjects_digest(h, x.get("/Resources"), depth + 1)


def page_fingerprint(page: pikepdf.Page) -> str:
    """SHA-256 of what a page shows: its decoded content streams and the images and forms it
    draws (recursively). Unchanged by re-saving, changed by any edit of text or image."""
    h = hashlib.sha256()
    contents = page.obj.get("/Contents")
    streams = list(contents) if isinstance(contents, pikepdf.Array) else ([contents] if contents is not None else [])
    for s in streams:
        h.update(_stream_bytes(s))
    _xobjects_digest(h, page.obj.get("/Resources"))
    return h.hexdigest()


# ---- the whole file ---------------------------------------------------------------------------------

@dataclass
class Part:
    """A run of pages of the dossier: ``pages`` already in the output PDF's object space."""

    pages: list[pikepdf.Page] = field(default_factory=list)


@dataclass(frozen=True)
class Bookmark:
    title: str
    page: int  # 0-based
    children: tuple[Bookmark, ...] = ()


def add_bookmarks(pdf: pikepdf.Pdf, marks: Sequence[Bookmark]) -> None:
    with pdf.open_outline() as outline:
        for m in marks:
            item = pikepdf.OutlineItem(m.title, m.page)
            item.children.extend(pikepdf.OutlineItem(c.title, c.page) for c in m.children)
            outline.root.append(item)


def attach_manifest(pdf: pikepdf.Pdf, data: bytes) -> None:
    """The signed manifest as an associated file of the document (PDF/A-3: /AF, /AFRelationship)."""
    spec = pikepdf.AttachedFileSpec(pdf, data, filename=MANIFEST_NAME, mime_type="application/json",
                                    description="卷宗清单（SHA-256 与签名）", relationship=pikepdf.Name.Data)
    pdf.attachments[MANIFEST_NAME] = spec
    pdf.Root.AF = pikepdf.Array([spec.obj])


def strip_page_extras(pages: Iterable[pikepdf.Page]) -> None:
    """Drop page keys PDF/A does not need and the checker does not accept (reportlab's /Trans)."""
    for page in pages:
        if "/Trans" in page.obj:
            del page.obj["/Trans"]


def save_pdfa(pdf: pikepdf.Pdf, *, title: str, subject: str, validate: bool = False) -> bytes:
    """Write ``pdf`` as PDF/A (``PDFA_FLAVOUR``): ``pikepdf.pdfa.prepare`` adds the sRGB
    OutputIntent and the XMP ``pdfaid`` metadata, then the file is written with the save settings
    the flavour needs. With ``validate`` the written bytes are checked by ``pikepdf.pdfa``'s
    validator (seconds per dossier: it reads every embedded font program) and DossierPdfError lists
    the findings; the tests and the batch job validate, the download route does not."""
    import pikepdf.pdfa as pdfa

    with pdf.open_metadata(set_pikepdf_as_editor=False) as meta:
        meta["dc:title"] = title
        meta["dc:description"] = subject
        meta["dc:creator"] = ["Baoxue 保学"]
        meta["xmp:CreatorTool"] = "Baoxue 保学 卷宗"
    pdf.docinfo["/Title"] = title
    out = io.BytesIO()
    if validate:
        try:
            pdfa.save(pdf, out, PDFA_FLAVOUR, output_intent="sRGB")
        except pdfa.PdfaError as e:
            raise DossierPdfError(f"PDF/A-{PDFA_FLAVOUR} 校验未通过：{findings_text(e.report)}") from e
        return out.getvalue()
    pdfa.prepare(pdf, PDFA_FLAVOUR, output_intent="sRGB")
    pdf.save(out, **pdfa.resolve_save_kwargs(PDFA_FLAVOUR))
    return out.getvalue()


def findings_text(report, limit: int = 8) -> str:
    return "; ".join(str(f) for f in report.findings[:limit])


def validate(data: bytes):
    """``pikepdf.pdfa``'s report on written dossier bytes (``report.passed``)."""
    import pikepdf.pdfa as pdfa

    return pdfa.validate_written(io.BytesIO(data), PDFA_FLAVOUR)


def read_manifest(data: bytes | Path) -> tuple[bytes | None, pikepdf.Pdf]:
    """The attached manifest's bytes (None when there is none) and the open PDF."""
    pdf = pikepdf.open(io.BytesIO(data) if isinstance(data, bytes) else data)
    att = pdf.attachments.get(MANIFEST_NAME)
    if att is None:
        return None, pdf
    return att.get_file().read_bytes(), pdf
