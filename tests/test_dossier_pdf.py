"""The dossier's page-making parts (cases/dossier/pdf.py) on small files: a PNG shown from its own
compressed data (the original pixels exactly, nothing re-encoded), the PNGs PDF cannot hold as
they are decoded once; page fingerprints (version 2: images as stored) survive a re-save and
change with one byte of an image; several text parts set in one build, each on its own pages."""

from __future__ import annotations

import io

import numpy as np
import pdfplumber
import pikepdf
import pytest
from PIL import Image

from cases.dossier import pdf as P


def _png(img: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG", **kw)
    return buf.getvalue()


def _picture(mode: str) -> Image.Image:
    rng = np.random.default_rng(7)
    rgb = Image.fromarray(rng.integers(0, 256, (37, 53, 3), dtype=np.uint8), "RGB")
    if mode == "P":
        return rgb.quantize(16)
    return rgb.convert(mode)


def _shown(data: bytes, filename: str = "scan.png") -> tuple[pikepdf.Pdf, pikepdf.Page, pikepdf.Stream]:
    pdf = pikepdf.new()
    [page] = P.image_pages(pdf, data, filename)
    pdf.pages.append(page)
    page = pdf.pages[0]
    return pdf, page, page.Resources.XObject.Im0


@pytest.mark.parametrize("mode", ["RGB", "L", "P", "1"])
def test_a_png_is_shown_from_its_own_data_pixel_for_pixel(mode):
    img = _picture(mode)
    data = _png(img, dpi=(200, 200))
    info = P.PngInfo.read(data)
    assert info is not None and (info.width, info.height, info.dpi) == (53, 37, 200.0)
    pdf, page, image = _shown(data)
    assert image.Filter == pikepdf.Name.FlateDecode and image.DecodeParms.Predictor == 15
    assert image.read_raw_bytes() == info.idat  # the PNG's compressed pixels, not re-encoded
    shown = pikepdf.PdfImage(image).as_pil_image()
    assert np.array_equal(np.asarray(shown.convert("RGB")), np.asarray(img.convert("RGB")))
    # shown at its own size at 200 dpi
    assert [round(float(x), 2) for x in page.MediaBox] == [0, 0, round(53 * 72 / 200, 2), round(37 * 72 / 200, 2)]
    out = io.BytesIO()
    pdf.save(out)
    with pikepdf.open(io.BytesIO(out.getvalue())) as again:
        assert P.page_fingerprint(again.pages[0]) == P.page_fingerprint(page)


@pytest.mark.parametrize("kind", ["RGBA", "interlaced", "16-bit"])
def test_a_png_pdf_cannot_hold_as_it_is_is_decoded_once(kind):
    img = _picture("RGB")
    if kind == "RGBA":
        img = img.convert("RGBA")
        data = _png(img)
    elif kind == "interlaced":
        # Pillow writes no interlaced PNG: set the IHDR's interlace flag on a real one by hand
        data = bytearray(_png(img))
        data[28] = 1
        import zlib

        data[29:33] = zlib.crc32(bytes(data[12:29])).to_bytes(4, "big")
        data = bytes(data)
    else:
        data = _png(Image.fromarray(np.full((20, 30), 40000, dtype=np.uint16)).convert("I;16"))
    assert P.PngInfo.read(data) is None
    if kind == "interlaced":
        return  # the flag alone makes the data undecodable: only the refusal is checked
    _pdf, _page, image = _shown(data)
    assert image.Filter == pikepdf.Name.DCTDecode


def test_fingerprints_change_with_one_byte_of_an_image_and_keep_version_one():
    data = _png(_picture("RGB"))
    pdf, page, image = _shown(data)
    before, before_v1 = P.page_fingerprint(page), P.page_fingerprint(page, 1)
    assert before != before_v1  # format 1 dossiers are verified by version 1
    raw = bytearray(image.read_raw_bytes())
    raw[len(raw) // 2] ^= 0x01
    image.write(bytes(raw), filter=pikepdf.Name.FlateDecode, decode_parms=image.DecodeParms)
    assert P.page_fingerprint(page) != before


def test_text_parts_each_start_on_their_own_page_and_are_counted():
    long_part = [P.Line("第二部分", "heading"), *(P.Line(f"第{i}行：" + "说明文字" * 12) for i in range(90))]
    parts = [[P.Line("第一部分", "heading")], long_part, [P.Line("第三部分", "heading")]]
    data, counts = P.text_parts(parts, footer="页脚")
    assert counts[0] == 1 and counts[1] >= 3 and counts[2] == 1
    with pdfplumber.open(io.BytesIO(data)) as pdf:
        texts = [p.extract_text() or "" for p in pdf.pages]
    assert len(texts) == sum(counts)
    assert texts[0].startswith("第一部分") and texts[1].startswith("第二部分")
    assert texts[counts[0] + counts[1]].startswith("第三部分")
    assert all("页脚" in t for t in texts)
