"""Assembling the dossier PDF: text pages (cover, 目录, item summaries, manifest) set with reportlab
in an embedded CJK TrueType face (all text parts but the 目录 and the manifest in one build), the
issued PDFs' pages copied as they are, returned scans and photos as image pages holding the
original's own JPEG or PNG data (nothing decoded or re-encoded where PDF can hold it), bookmarks
per item, the signed JSON manifest attached, written and validated as PDF/A by pikepdf's own
PDF/A checker (``pikepdf.pdfa``).

Why PDF/A-**3b** and not 2b: the manifest travels inside the file as an embedded JSON file, and
PDF/A-2 (ISO 19005-2 §6.8) allows only PDF/A files as embedded files; PDF/A-3 allows any file
as an associated file (``/AF``, ``AFRelationship /Data``). Everything else PDF/A-2b asks for
(embedded fonts, an sRGB OutputIntent, XMP with ``pdfaid``, no encryption, no JavaScript) is
the same in 3b, and the checker validates the written bytes. (veraPDF, a Java program, is not
packaged in the registries this project installs from: the tests run ``pikepdf.pdfa``'s validator
on the written bytes, ``qpdf --check``, and assert the part declared in XMP is ``PDFA_FLAVOUR``.)

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
        # a SHA-256 in hex: one unbroken line, set without the CJK line breaker (the manifest's
        # 60-odd digests cost it a quarter of the text pages' time)
        "hash": ParagraphStyle("hash", parent=base, fontSize=7.2, leading=10, wordWrap=None),
        "missing": ParagraphStyle("missing", parent=base, textColor=HexColor("#b00000")),
        "toc": ParagraphStyle("toc", parent=base, fontSize=11.5, leading=19),
        "tocsub": ParagraphStyle("tocsub", parent=base, fontSize=9.5, leading=14, leftIndent=18),
    }


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def text_pages(lines: Sequence[Line], *, footer: str = "") -> bytes:
    """A PDF of flowing paragraphs on A4 (new pages as needed), ``footer`` on every page."""
    return text_parts([lines], footer=footer)[0]


def text_parts(parts: Sequence[Sequence[Line]], *, footer: str = "") -> tuple[bytes, list[int]]:
    """One PDF of several text parts, each starting on a new page, and the pages of each part:
    one reportlab build and one embedded font subset for all of them (a build per part cost the
    dossier a font subset and a parse each)."""
    from reportlab.platypus import Flowable, PageBreak, Paragraph, SimpleDocTemplate, Spacer

    styles = _styles()
    starts: list[int] = []

    class PartStart(Flowable):
        """Records the page its part starts on (drawn there, takes no room)."""

        def wrap(self, _w, _h):
            return 0, 0

        def draw(self):
            starts.append(self.canv.getPageNumber())

    buf = io.BytesIO()
    doc = SimpleDocTemplate(buf, pagesize=A4, leftMargin=64, rightMargin=56, topMargin=64, bottomMargin=60,
                            title="", author="", invariant=1)
    story = []
    for i, lines in enumerate(parts):
        if i:
            story.append(PageBreak())
        story.append(PartStart())
        for line in lines:
            if line.style == "pagebreak":
                story.append(PageBreak())
            elif line.style == "space":
                story.append(Spacer(1, 18))
            else:
                style = styles.get(line.style, styles["body"])
                story.append(Paragraph(_escape(line.text).replace("\n", "<br/>"), style))
    total = [0]

    def on_page(canvas, _doc):
        total[0] = canvas.getPageNumber()
        if footer:
            canvas.setFont(styles["small"].fontName, 8)
            canvas.drawCentredString(A4[0] / 2, 32, footer)

    doc.build(story, onFirstPage=on_page, onLaterPages=on_page)
    if len(starts) != len(parts):
        raise DossierPdfError(f"文本页排版出错：{len(parts)} 部分只排出 {len(starts)} 部分")
    ends = [*starts[1:], total[0] + 1]
    return buf.getvalue(), [e - s for s, e in zip(starts, ends, strict=True)]


# ---- image pages ------------------------------------------------------------------------------------

def _jpeg_page(pdf: pikepdf.Pdf, jpeg: bytes, width: int, height: int, mode: str, dpi: float | None) -> pikepdf.Page:
    """A page showing one JPEG image whole: its own size at ``dpi`` when known, else fitted to A4."""
    colour = pikepdf.Name.DeviceGray if mode == "L" else pikepdf.Name.DeviceRGB
    image = pikepdf.Stream(pdf, jpeg, Type=pikepdf.Name.XObject, Subtype=pikepdf.Name.Image, Width=width,
                           Height=height, ColorSpace=colour, BitsPerComponent=8, Filter=pikepdf.Name.DCTDecode)
    return _image_page(pdf, image, width, height, dpi)


def _image_page(pdf: pikepdf.Pdf, image: pikepdf.Stream, width: int, height: int, dpi: float | None) -> pikepdf.Page:
    """A page showing ``image`` whole: its own size at ``dpi`` when known, else fitted to A4."""
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


@dataclass(frozen=True)
class PngInfo:
    """What PDF needs to show a PNG's compressed pixels as they are (``PngInfo.read``)."""

    width: int
    height: int
    bits: int
    colours: int  # samples per pixel: 1 grey or palette, 3 RGB
    palette: bytes  # PLTE (RGB triplets) for a palette image, else b""
    dpi: float | None
    idat: bytes  # the zlib stream of the pixels, PNG-filtered rows (PDF's /Predictor 15)

    @staticmethod
    def read(data: bytes) -> PngInfo | None:
        """The PNG's image data when PDF can show it without decoding: not interlaced, no alpha
        channel, no transparency and no EXIF orientation (those are decoded and re-encoded)."""
        if data[:8] != b"\x89PNG\r\n\x1a\n":
            return None
        pos, chunks, idat = 8, {}, []
        try:
            while pos + 8 <= len(data):
                length = int.from_bytes(data[pos:pos + 4], "big")
                kind = data[pos + 4:pos + 8]
                body = data[pos + 8:pos + 8 + length]
                if len(body) != length:
                    return None
                pos += 12 + length
                if kind == b"IDAT":
                    idat.append(body)
                elif kind == b"IEND":
                    break
                else:
                    chunks.setdefault(kind, body)
            ihdr = chunks.get(b"IHDR", b"")
            if len(ihdr) != 13 or not idat:
                return None
            width, height = int.from_bytes(ihdr[0:4], "big"), int.from_bytes(ihdr[4:8], "big")
            bits, colour_type, compression, filtering, interlace = ihdr[8:13]
        except (IndexError, ValueError):
            return None
        if compression or filtering or interlace or not width or not height:
            return None
        if b"tRNS" in chunks or b"eXIf" in chunks:
            return None
        if colour_type == 0 and bits in (1, 2, 4, 8):
            colours, palette = 1, b""
        elif colour_type == 2 and bits == 8:
            colours, palette = 3, b""
        elif colour_type == 3 and bits in (1, 2, 4, 8) and b"PLTE" in chunks:
            colours, palette = 1, chunks[b"PLTE"]
            if not palette or len(palette) % 3 or len(palette) // 3 > 2 ** bits:
                return None
        else:
            return None  # grey/RGB with alpha, 16-bit samples: decoded
        dpi = None
        phys = chunks.get(b"pHYs", b"")
        if len(phys) == 9 and phys[8] == 1:  # pixels per metre
            dpi = round(int.from_bytes(phys[0:4], "big") * 0.0254)
        return PngInfo(width, height, bits, colours, palette, float(dpi) if dpi else None, b"".join(idat))


def _png_page(pdf: pikepdf.Pdf, png: PngInfo) -> pikepdf.Page:
    """A page showing a PNG's pixels from its own compressed data (FlateDecode with the PNG
    predictor): no decoding and no re-encoding, the original pixels exactly."""
    if png.palette:
        colour = pikepdf.Array([pikepdf.Name.Indexed, pikepdf.Name.DeviceRGB, len(png.palette) // 3 - 1,
                                pikepdf.String(png.palette)])
    else:
        colour = pikepdf.Name.DeviceGray if png.colours == 1 else pikepdf.Name.DeviceRGB
    parms = pikepdf.Dictionary(Predictor=15, Colors=png.colours, BitsPerComponent=png.bits, Columns=png.width)
    image = pikepdf.Stream(pdf, png.idat, Type=pikepdf.Name.XObject, Subtype=pikepdf.Name.Image, Width=png.width,
                           Height=png.height, ColorSpace=colour, BitsPerComponent=png.bits,
                           Filter=pikepdf.Name.FlateDecode, DecodeParms=parms)
    return _image_page(pdf, image, png.width, png.height, png.dpi)


def image_pages(pdf: pikepdf.Pdf, data: bytes, filename: str, pages: Iterable[int] | None = None) -> list[pikepdf.Page]:
    """Pages showing a returned file as images, the original's pixels as they are where PDF can
    hold them: a JPEG's bytes (DCTDecode), a PNG's compressed data (FlateDecode, PNG predictor);
    TIFF, image-only or digital PDF, and PNGs with alpha or interlacing decoded once
    (``parsers.images``, one rasteriser) and stored as JPEG. ``pages``: 0-based page indexes to
    keep (None: all)."""
    from parsers.images import load_pages

    wanted = set(pages) if pages is not None else None
    if wanted is not None and 0 not in wanted and data[:8] == b"\x89PNG\r\n\x1a\n":
        return []
    info = _jpeg_info(data)
    if info is not None and (wanted is None or 0 in wanted):
        return [_jpeg_page(pdf, data, *info)]
    png = PngInfo.read(data)
    if png is not None:
        return [_png_page(pdf, png)]
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


# Of an image, what the version-2 fingerprint takes besides its stored bytes.
_IMAGE_KEYS = ("/Width", "/Height", "/BitsPerComponent", "/ColorSpace", "/Filter", "/DecodeParms", "/Decode",
               "/ImageMask")


def _image_digest(h, x) -> None:
    """Version 2: an image as stored (its compressed bytes and the keys that say how to draw
    them), not decoded: inflating every scanned page was most of a dossier's build time."""
    for key in _IMAGE_KEYS:
        if key in x:
            h.update(key.encode())
            value = x.get(key)
            h.update(value.unparse(resolved=True) if isinstance(value, pikepdf.Object) else repr(value).encode())
    h.update(x.read_raw_bytes())
    mask = x.get("/SMask")
    if mask is not None:
        h.update(b"/SMask")
        _image_digest(h, mask)


def _xobjects_digest(h, resources, version: int, depth: int = 0) -> None:
    xobjects = resources.get("/XObject", {}) if resources is not None else {}
    for key in sorted(xobjects.keys()):
        x = xobjects[key]
        h.update(key.encode())
        if version >= 2 and x.get("/Subtype") == pikepdf.Name.Image:
            _image_digest(h, x)
        else:
            h.update(_stream_bytes(x))
        if depth < 3 and x.get("/Subtype") == pikepdf.Name.Form:
            _xobjects_digest(h, x.get("/Resources"), version, depth + 1)


FINGERPRINT_VERSION = 2


def page_fingerprint(page: pikepdf.Page, version: int = FINGERPRINT_VERSION) -> str:
    """SHA-256 of what a page shows: its decoded content streams and the images and forms it
    draws (recursively). Changed by any edit of text or image; unchanged by a re-save that keeps
    compressed data as it is (qpdf's and pikepdf's default: Flate data is not recompressed).
    Version 1 (dossiers of manifest format 1) hashed images decoded; version 2 hashes them as
    stored (``_image_digest``)."""
    h = hashlib.sha256()
    contents = page.obj.get("/Contents")
    streams = list(contents) if isinstance(contents, pikepdf.Array) else ([contents] if contents is not None else [])
    for s in streams:
        h.update(_stream_bytes(s))
    _xobjects_digest(h, page.obj.get("/Resources"), version)
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
    # Streams are written as they are: every one is already Flate or DCT (reportlab, LibreOffice,
    # the originals' own JPEG and PNG data), so decoding and recompressing them all (pikepdf.pdfa's
    # default, to be rid of LZW and the like) only cost time: a second per dossier of 40 scans.
    kwargs = {**pdfa.resolve_save_kwargs(PDFA_FLAVOUR), "stream_decode_level": pikepdf.StreamDecodeLevel.none}
    pdf.save(out, **kwargs)
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
