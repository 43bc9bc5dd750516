"""The DOCX carries each page's QR code too (forms/docx_qr.py): printed from Word/WPS — here through
a separate LibreOffice run over the DOCX itself — every page shows exactly its own code, with the
payload the PDF carries for that page."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
import zxingcpp

from forms import docx_qr, stamp, tools
from forms import identity as ident
from forms.pdf import get_converter
from tests._render_helpers import SECRET, rendered_samples, soffice_convert

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not tools.probe("soffice").installed, reason="LibreOffice not installed")]


@pytest.fixture(scope="module")
def printed_from_docx():
    """label -> (PDF metadata payloads per page, codes read on each page of the DOCX's own print)."""
    import pypdfium2 as pdfium

    from forms.pdfium_lock import PDFIUM_LOCK

    conv = get_converter()
    docs, payloads = {}, {}
    for s in rendered_samples():
        raw, starts = conv.convert_with_layout(s.docx)
        pdf, n = stamp.stamp_pdf(raw, s.identity, SECRET)
        meta = stamp.read_metadata(pdf)
        payloads[s.label] = [meta[f"BaoxueQR{i}"] for i in range(1, n + 1)]
        docs[f"{s.label}.docx"] = docx_qr.add_page_codes(s.docx, starts, stamp.page_widths_mm(pdf), s.identity,
                                                         SECRET)
    printed = soffice_convert(docs, "pdf")  # a print from the DOCX alone, in another office process
    out = {}
    for name, data in printed.items():
        read = []
        with PDFIUM_LOCK:
            doc = pdfium.PdfDocument(data)
            try:
                for i in range(len(doc)):
                    img = doc[i].render(scale=150 / 72, grayscale=True).to_numpy()
                    gray = np.ascontiguousarray(img[..., 0] if img.ndim == 3 else img)
                    read.append([c.text for c in zxingcpp.read_barcodes(gray, formats=zxingcpp.BarcodeFormat.QRCode)])
            finally:
                doc.close()
        out[name.removesuffix(".docx")] = (payloads[name.removesuffix(".docx")], read, docs[name])
    return out


@pytest.mark.parametrize("label", [s.label for s in rendered_samples()])
def test_every_page_of_the_docx_print_has_its_own_code(printed_from_docx, label):
    payloads, read, docx = printed_from_docx[label]
    assert len(read) == len(payloads), "the DOCX prints to as many pages as the PDF"
    assert read == [[p] for p in payloads]  # exactly one code per page, the PDF's payload of that page
    for i, p in enumerate(payloads, 1):
        got = ident.decode(p, SECRET)
        assert (got.page, got.pages) == (i, len(payloads))
    with zipfile.ZipFile(io.BytesIO(docx)) as z:
        assert len([n for n in z.namelist() if n.startswith("word/media/baoxue_qr_")]) == len(payloads)
