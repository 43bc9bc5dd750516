"""Stamp every page of a rendered PDF with its identity QR code, and write the PDF metadata.

Each page *i* of *n* gets a QR code (segno, error correction M, boosted when free) holding
``identity.encode(identity.for_page(i, n), secret)``, drawn as vector rectangles in a content
stream appended to the page (no raster image, no re-parsing of the page's own content, so a
page costs well under a millisecond), at the box ``forms.layout.QR_*`` measured from the page's
visual top-right corner (portrait, landscape and /Rotate-d pages alike). A small line under the
code repeats the document id and page number for people.

The document info gets ``/Title`` and the identity properties (``/BaoxueDocId``, ``/BaoxueForm``,
``/BaoxueVariant``, ``/BaoxueTemplateVersion``) plus ``/BaoxueQR1`` .. ``/BaoxueQR<n>``, each page's
payload, so a digital PDF is identified without decoding an image.
"""

from __future__ import annotations

import io
import logging

import segno
from pypdf import PdfReader, PdfWriter
from pypdf.errors import PdfReadError
from pypdf.generic import ArrayObject, DecodedStreamObject, NameObject

from forms import identity as ident_mod
from forms.errors import UnreadableDocument
from forms.identity import Identity, QrKeys
from forms.layout import QR_RIGHT_MM, QR_SIZE_MM, QR_TOP_MM

log = logging.getLogger(__name__)

MM = 72 / 25.4  # PDF points per millimetre
QR_ERROR = "m"
QUIET_MODULES = 4  # white margin painted around the code (the QR standard's quiet zone)


def qr_modules(payload: str) -> tuple[tuple[int, ...], ...]:
    """The QR code's module matrix (1 = dark), without quiet zone."""
    qr = segno.make_qr(payload, error=QR_ERROR, boost_error=True)
    return tuple(tuple(row) for row in qr.matrix)


def _qr_ops(matrix, x: float, y: float, size: float) -> list[str]:
    """Fill operators drawing ``matrix`` in the square (x, y, size) -- y is the bottom edge.

    Horizontal runs of dark modules become one rectangle each, which keeps the stream small."""
    n = len(matrix)
    m = size / n
    ops = []
    for r, row in enumerate(matrix):
        top = y + size - (r + 1) * m
        c = 0
        while c < n:
            if row[c]:
                start = c
                while c < n and row[c]:
                    c += 1
                ops.append(f"{x + start * m:.3f} {top:.3f} {(c - start) * m:.3f} {m:.3f} re")
            else:
                c += 1
    return ops


def _visual_matrix(rotation: int, box) -> tuple[tuple[float, ...], float, float]:
    """Matrix mapping visual coordinates (origin at the displayed page's lower left) to user space,
    and the displayed width and height."""
    llx, lly, urx, ury = (float(v) for v in (box.left, box.bottom, box.right, box.top))
    w, h = urx - llx, ury - lly
    rotation %= 360
    if rotation == 90:
        return (0, 1, -1, 0, urx, lly), h, w
    if rotation == 180:
        return (-1, 0, 0, -1, urx, ury), w, h
    if rotation == 270:
        return (0, -1, 1, 0, llx, ury), h, w
    return (1, 0, 0, 1, llx, lly), w, h


def overlay_stream(payload: str, rotation: int, box) -> bytes:
    """The content stream painting the QR code (and its white quiet zone) on one page."""
    matrix, width, height = _visual_matrix(rotation, box)
    size = QR_SIZE_MM * MM
    x = width - QR_RIGHT_MM * MM - size
    y = height - QR_TOP_MM * MM - size
    modules = qr_modules(payload)
    quiet = size / len(modules) * QUIET_MODULES
    ops = ["q", "{} {} {} {} {:.3f} {:.3f} cm".format(*matrix),
           # White quiet zone first: the code must stay readable even if the corner is not empty.
           "1 g", f"{x - quiet:.3f} {y - quiet:.3f} {size + 2 * quiet:.3f} {size + 2 * quiet:.3f} re f",
           "0 g", *_qr_ops(modules, x, y, size), "f", "Q"]
    return ("\n".join(ops) + "\n").encode("ascii")


def _add_stream(writer: PdfWriter, data: bytes):
    stream = DecodedStreamObject()
    stream.set_data(data)
    return writer._add_object(stream)  # noqa: SLF001 - pypdf has no public "add indirect object"


def _stamp_page(writer: PdfWriter, page, payload: str) -> None:
    box = page.mediabox
    contents = page.get("/Contents")
    existing = contents.get_object() if contents is not None else None
    if existing is None:
        refs = []
    elif isinstance(existing, ArrayObject):
        refs = list(existing)
    else:
        refs = [contents]
    # Wrap the page's own content in q/Q so its graphics state cannot leak into the overlay.
    new = [_add_stream(writer, b"q\n"), *refs, _add_stream(writer, b"\nQ\n"),
           _add_stream(writer, overlay_stream(payload, page.rotation, box))]
    page[NameObject("/Contents")] = ArrayObject(new)


def stamp_pdf(pdf_bytes: bytes, identity: Identity, secret: QrKeys | str, *, title: str | None = None
              ) -> tuple[bytes, int]:
    """Put the identity QR code on every page and the identity into the metadata.

    Returns the new PDF and its page count. ``title`` (the form's printed title) becomes /Title;
    by default the title LibreOffice carried over from the DOCX core properties is kept."""
    try:
        reader = PdfReader(io.BytesIO(pdf_bytes))
        writer = PdfWriter(clone_from=reader)
    except (PdfReadError, ValueError, OSError) as e:
        raise UnreadableDocument(f"PDF 无法读取，不能加盖二维码：{e}") from e
    n = len(writer.pages)
    meta = {k: str(v) for k, v in (reader.metadata or {}).items()}
    for i, page in enumerate(writer.pages, start=1):
        payload = ident_mod.encode(identity.for_page(i, n), secret)
        _stamp_page(writer, page, payload)
        meta[f"/BaoxueQR{i}"] = payload
    meta.update({f"/{k}": v for k, v in identity.properties().items()})
    if title is not None:
        meta["/Title"] = title
    writer.add_metadata(meta)
    out = io.BytesIO()
    writer.write(out)
    log.debug("stamped %s: %d page(s)", identity.doc_id, n)
    return out.getvalue(), n


def page_widths_mm(pdf_bytes: bytes) -> list[float]:
    """Each page's displayed width in mm (landscape pages and /Rotate-d ones alike)."""
    reader = PdfReader(io.BytesIO(pdf_bytes))
    out = []
    for page in reader.pages:
        _matrix, width, _height = _visual_matrix(page.rotation, page.mediabox)
        out.append(width / MM)
    return out


def read_metadata(pdf_bytes: bytes) -> dict[str, str]:
    """The Baoxue entries of a PDF's document info (for parsers and tests)."""
    try:
        meta = PdfReader(io.BytesIO(pdf_bytes)).metadata or {}
    except (PdfReadError, ValueError, OSError) as e:
        raise UnreadableDocument(f"PDF 无法读取：{e}") from e
    return {k.lstrip("/"): str(v) for k, v in meta.items() if k.startswith("/Baoxue") or k == "/Title"}
