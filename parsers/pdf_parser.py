"""Reading a returned digital PDF (rendered by this service, possibly filled in with a PDF editor).

Identity, strongest first:

1. the per-page QR payloads the stamper writes into the document info (``/BaoxueQR1``,
   ``/BaoxueQR2``...), each verified with the HMAC secret (``forms.identity.decode``): a forged
   or altered payload raises TamperedDocument, as do payloads of different documents in one file
   or a ``/BaoxueDocId`` that contradicts them;
2. the printed QR code itself: the page corner rendered with pdfium and decoded with zxing-cpp
   (when the info was lost, e.g. the file went through another PDF tool);
3. ``/BaoxueDocId``, ``/BaoxueForm``, ``/BaoxueVariant``, ``/BaoxueTemplateVersion`` without a
   code (unverified; a warning says so);
4. none: the form is detected by its printed title and labels and the printed document number
   is returned for the caller to look up (``identity`` None).

A scanned PDF (``parsers.base.pdf_kind``) is not read here: the scan pipeline reads it.
Fields are located with ``forms.geometry.analyse_pdf`` (pdfplumber tables on the drawn cell
borders, prose by regex), so every reading's source carries its page and box.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path

from pypdf import PdfReader
from pypdf.errors import PdfReadError

from forms import identity as ident
from forms.errors import TamperedDocument, UnreadableDocument, UnsupportedInput
from forms.geometry import analyse_pdf, pdf_pages
from parsers.base import (
    PDF_MIME,
    ParsedForm,
    detect_form,
    doc_number_of,
    not_ours,
    parsed_form,
    pdf_kind,
    read_fields,
    sniff,
    spec_and_variant,
)
from parsers.digital import DigitalParser

log = logging.getLogger(__name__)


def pdf_info(reader: PdfReader) -> dict[str, str]:
    """The document info dict as plain strings, keys without the leading slash."""
    try:
        meta = reader.metadata or {}
    except PdfReadError:
        return {}
    out = {}
    for k, v in dict(meta).items():
        try:
            out[str(k).lstrip("/")] = str(v)
        except (TypeError, ValueError):
            continue
    return out


def qr_from_pages(data: bytes, limit_pages: int = 50, dpi: int = 200) -> list[str]:
    """QR payloads read from the top-right corner of each page, where the stamper draws the code
    as vectors: only that corner is rendered (``parsers.images.render_pdf``) and read with the one
    QR reader (``parsers.qr.find_codes``)."""
    from pypdf import PdfReader

    from forms.geometry import stamp_zone
    from parsers.images import CorruptImage, render_pdf
    from parsers.qr import find_codes

    found = []
    try:
        reader = PdfReader(io.BytesIO(data))
        sizes = [float(p.mediabox.width) for p in reader.pages[:limit_pages]]
    except (PdfReadError, OSError, ValueError, KeyError, TypeError) as e:
        log.debug("pypdf cannot open: %s", e)
        return []
    for page_no, width in enumerate(sizes, 1):
        try:
            [corner] = render_pdf(data, dpi=dpi, pages=[page_no], crop_pt=stamp_zone(width), grey=True)
        except CorruptImage as e:
            log.debug("page %d not rendered: %s", page_no, e.message)
            continue
        found += [hit.payload for hit in find_codes(corner) if hit.payload.startswith(ident.PREFIX + "|")]
    return found


def identify(reader: PdfReader, secret: ident.QrKeys | str, data: bytes | None = None
             ) -> tuple[ident.Identity | None, list[str], str]:
    """The document identity from QR payloads or metadata (module docstring)."""
    info = pdf_info(reader)
    warnings: list[str] = []
    payloads = [v for k, v in sorted(info.items()) if k.startswith("BaoxueQR")]
    if not payloads and data is not None:
        payloads = qr_from_pages(data)
        if payloads:
            warnings.append("PDF 元数据中没有二维码信息，已从页面上的二维码读出文书标识")
    decoded = [ident.decode(p, secret) for p in payloads]  # TamperedDocument / UnsupportedInput
    if decoded:
        ids = {(d.doc_id, d.form, d.variant, d.version) for d in decoded}
        if len(ids) > 1:
            raise TamperedDocument("同一文件中的二维码属于不同的文书：可能是拼接的文书",
                                   doc_ids=sorted({d.doc_id for d in decoded}))
        d = decoded[0]
        if info.get("BaoxueDocId") and info["BaoxueDocId"] != d.doc_id:
            raise TamperedDocument("PDF 元数据中的文书编号与二维码不一致", doc_id=d.doc_id)
        pages = len(reader.pages)
        if d.pages and d.pages != pages:
            warnings.append(f"二维码标明共{d.pages}页，文件有{pages}页")
        warnings.extend(dict.fromkeys(x.key_note for x in decoded if x.retired_key))
        return ident.Identity(d.doc_id, d.form, d.variant, d.version), warnings, "qr"
    if info.get("BaoxueForm") and info.get("BaoxueDocId"):
        warnings.append("PDF 没有二维码信息，文书标识来自元数据，未经校验")
        return ident.Identity(info["BaoxueDocId"], info["BaoxueForm"], info.get("BaoxueVariant") or None,
                              info.get("BaoxueTemplateVersion") or ""), warnings, "metadata"
    return None, warnings, "title"


class PdfParser(DigitalParser):
    """Digital PDFs rendered by this service (see the module docstring)."""

    name = "pdf"

    @classmethod
    def score(cls, path: Path, mime: str | None) -> int | None:
        path = Path(path)
        if mime not in (None, "", PDF_MIME, "application/octet-stream"):
            return None
        if sniff(path) != "pdf":
            return None
        return 100 if pdf_kind(path) == "digital" else None

    def parse(self, path: Path, *, secret: ident.QrKeys | str) -> ParsedForm:
        path = Path(path)
        data = path.read_bytes()
        try:
            reader = PdfReader(io.BytesIO(data))
            if reader.is_encrypted:
                raise UnsupportedInput(f"PDF 文件“{path.name}”已加密，请上传未加密的文件", file=path.name)
        except PdfReadError as e:
            raise UnreadableDocument(f"PDF 文件“{path.name}”已损坏或无法读取：{e}", file=path.name) from e
        if pdf_kind(path) != "digital":
            raise UnsupportedInput(f"文件“{path.name}”是扫描件（没有文字层），扫描件由扫描识别流程读取",
                                   file=path.name, kind="scanned")
        identity, warnings, method = identify(reader, secret, data)
        pages = pdf_pages(data)
        if identity is not None:
            spec, variant = spec_and_variant(identity.form, identity.variant)
            if identity.version and identity.version != spec.version:
                warnings.append(f"文书模板版本 {identity.version} 与当前版本 {spec.version} 不同")
        else:
            text = "\n".join([t for p in pages for t, _b, _x in p.lines]
                             + [c.text for p in pages for t in p.tables for r in t.rows for c in r])
            found = detect_form(text)
            if found is None:
                raise not_ours(path)
            spec, variant, _score = found
            warnings.append("PDF 没有文书标识（二维码/元数据），按标题和栏目识别，需按文号核对")
        analysis = analyse_pdf(data, spec, variant, pages=pages)
        warnings.extend(analysis.warnings)
        if not any(loc.located for loc in analysis.parts.values()):
            if identity is None:
                raise not_ours(path)
            raise UnsupportedInput(f"文件“{path.name}”带有文书标识，但内容不是《{spec.doc_title(variant)}》的版式",
                                   file=path.name)
        result = read_fields(spec, variant, analysis.parts, pdf=True)
        number = doc_number_of(spec, result, None if identity else analysis.text())
        return parsed_form(identity=identity, spec=spec, variant=variant, result=result, input_kind="pdf",
                           warnings=warnings, doc_number=number, method=method)
