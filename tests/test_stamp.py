"""forms/stamp.py: a verifiable QR code on every page (decoded from a 200 dpi rendering), placed at the
layout's top-right box for portrait, landscape and rotated pages; identity in the PDF metadata."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import zxingcpp
from PIL import Image
from pypdf import PdfReader, PdfWriter

from forms import identity as idm
from forms import stamp, tools
from forms.errors import TamperedDocument, UnreadableDocument
from forms.layout import QR_RIGHT_MM, QR_SIZE_MM, QR_TOP_MM

SECRET = "test-qr-secret"
A4 = (595.276, 841.89)
IDENT = idm.Identity("K7M2Q9X4A1BC", "responsibility", "R-CT", "2026.1")

pytestmark = pytest.mark.skipif(not tools.probe("pdftoppm").installed, reason="poppler-utils missing")


def blank_pdf(sizes: list[tuple[float, float]], rotate: int = 0, title: str | None = None) -> bytes:
    w = PdfWriter()
    for width, height in sizes:
        page = w.add_blank_page(width, height)
        if rotate:
            page.rotate(rotate)
    if title:
        w.add_metadata({"/Title": title})
    out = io.BytesIO()
    w.write(out)
    return out.getvalue()


def rasterise(pdf: bytes, page: int, tmp_path: Path) -> Image.Image:
    src = tmp_path / "in.pdf"
    src.write_bytes(pdf)
    tools.run(["pdftoppm", "-r", "200", "-f", str(page), "-l", str(page), "-png", str(src),
               str(tmp_path / "p")])
    (png,) = sorted(tmp_path.glob("p-*.png"))
    img = Image.open(png).convert("L")
    img.load()
    png.unlink()
    return img


def decode_qr(img: Image.Image) -> tuple[str, tuple[float, float]]:
    (code,) = zxingcpp.read_barcodes(img, formats=zxingcpp.BarcodeFormat.QRCode)
    p = code.position
    cx = (p.top_left.x + p.top_right.x + p.bottom_left.x + p.bottom_right.x) / 4
    cy = (p.top_left.y + p.top_right.y + p.bottom_left.y + p.bottom_right.y) / 4
    return code.text, (cx, cy)


def expected_centre_px(width_pt: float) -> tuple[float, float]:
    px_per_mm = 200 / 25.4
    cx = width_pt / 72 * 200 - (QR_RIGHT_MM + QR_SIZE_MM / 2) * px_per_mm
    return cx, (QR_TOP_MM + QR_SIZE_MM / 2) * px_per_mm


def test_every_page_carries_a_verifiable_code(tmp_path: Path):
    pdf, pages = stamp.stamp_pdf(blank_pdf([A4, A4, A4]), IDENT, SECRET, title="控辍保学责任书")
    assert pages == 3
    for i in (1, 2, 3):
        text, (cx, cy) = decode_qr(rasterise(pdf, i, tmp_path))
        got = idm.decode(text, SECRET)
        assert got == IDENT.for_page(i, 3)
        ex, ey = expected_centre_px(A4[0])
        assert abs(cx - ex) < 8 and abs(cy - ey) < 8  # within 1 mm of the layout's box
    meta = stamp.read_metadata(pdf)
    assert meta["Title"] == "控辍保学责任书"
    assert meta["BaoxueDocId"] == "K7M2Q9X4A1BC" and meta["BaoxueForm"] == "responsibility"
    assert meta["BaoxueVariant"] == "R-CT" and meta["BaoxueTemplateVersion"] == "2026.1"
    assert [idm.decode(meta[f"BaoxueQR{i}"], SECRET).page for i in (1, 2, 3)] == [1, 2, 3]


def test_altered_payload_is_rejected(tmp_path: Path):
    pdf, _ = stamp.stamp_pdf(blank_pdf([A4]), IDENT, SECRET)
    text, _ = decode_qr(rasterise(pdf, 1, tmp_path))
    assert idm.decode(text, SECRET).doc_id == IDENT.doc_id
    for pos in (5, text.index("|1/1|") + 1, len(text) - 1):  # doc id, page number, MAC
        forged = text[:pos] + ("Z" if text[pos] != "Z" else "Y") + text[pos + 1:]
        with pytest.raises(TamperedDocument):
            idm.decode(forged, SECRET)
    with pytest.raises(TamperedDocument):
        idm.decode(text, "another-secret")


def test_landscape_and_rotated_pages(tmp_path: Path):
    landscape = (A4[1], A4[0])
    pdf, _ = stamp.stamp_pdf(blank_pdf([landscape]), IDENT, SECRET)
    _, (cx, cy) = decode_qr(rasterise(pdf, 1, tmp_path))
    ex, ey = expected_centre_px(landscape[0])
    assert abs(cx - ex) < 8 and abs(cy - ey) < 8
    # A portrait page shown landscape through /Rotate 90: the code still sits top right as seen.
    for rot in (90, 270):
        pdf, _ = stamp.stamp_pdf(blank_pdf([A4], rotate=rot), IDENT, SECRET)
        img = rasterise(pdf, 1, tmp_path)
        assert img.size[0] > img.size[1]
        text, (cx, cy) = decode_qr(img)
        assert idm.decode(text, SECRET).page == 1
        ex, ey = expected_centre_px(A4[1])
        assert abs(cx - ex) < 8 and abs(cy - ey) < 8, rot


def test_overlay_uses_no_font_and_keeps_the_title():
    """The overlay is drawing only (the caption under the code is printed by the template header),
    so the stamper adds no font: nothing unembedded, no direct font object poppler chokes on."""
    import pikepdf

    src = blank_pdf([A4, A4], title="义务教育阶段学生辍学情况报告单")
    pdf, _ = stamp.stamp_pdf(src, IDENT, SECRET)
    reader = PdfReader(io.BytesIO(pdf))
    assert reader.metadata["/Title"] == "义务教育阶段学生辍学情况报告单"
    assert reader.pages[1].extract_text().strip() == ""
    with pikepdf.open(io.BytesIO(pdf)) as doc:
        assert doc.check_pdf_syntax() == []
        for page in doc.pages:
            assert "/Font" not in page.obj.get("/Resources", {})


def test_vector_not_raster():
    pdf, _ = stamp.stamp_pdf(blank_pdf([A4]), IDENT, SECRET)
    page = PdfReader(io.BytesIO(pdf)).pages[0]
    assert not list(page.images)
    assert b" re" in page.get_contents().get_data()


def test_unreadable_pdf():
    with pytest.raises(UnreadableDocument):
        stamp.stamp_pdf(b"not a pdf", IDENT, SECRET)
