"""parsers.images: loading uploads, clear errors for corrupt/empty/huge input, blank pages."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from forms.errors import UnreadableDocument, UnsupportedInput
from parsers import images
from parsers.images import (
    CorruptImage,
    EmptyDocument,
    ImageTooLarge,
    UnsupportedImageFormat,
    is_blank,
    load_pages,
    rotate_quarter,
)
from tests import synth_pages as sp


def _save(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def test_png_with_dpi_from_path(tmp_path):
    page = sp.make_page(150)
    path = tmp_path / "scan.png"
    path.write_bytes(sp.png_bytes(page.pixels, dpi=150))
    [loaded] = load_pages(path)
    assert loaded.dpi == 150
    assert loaded.source == "scan.png" and loaded.index == 0
    assert loaded.pixels.shape == page.pixels.shape and loaded.pixels.dtype == np.uint8
    assert np.array_equal(loaded.pixels, page.pixels)


def test_jpeg_exif_orientation_is_applied_and_72dpi_is_unknown():
    img = Image.new("RGB", (300, 200), "white")
    img.paste((0, 0, 0), (0, 0, 50, 50))  # black square top-left as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    data = _save(img, "JPEG", exif=exif, dpi=(72, 72), quality=95)
    [page] = load_pages(data, filename="phone.jpg")
    assert (page.width, page.height) == (200, 300)
    assert page.pixels[10, 190].max() < 60  # the square is now top-right
    assert page.dpi is None


def test_multipage_tiff_all_frames_and_modes():
    frames = [Image.new("L", (120, 80), 255), Image.new("1", (120, 80), 1), Image.new("RGB", (90, 60), "red")]
    data = _save(frames[0], "TIFF", save_all=True, append_images=frames[1:], dpi=(300, 300))
    pages = load_pages(data, filename="batch.tif")
    assert [p.index for p in pages] == [0, 1, 2]
    assert [(p.width, p.height) for p in pages] == [(120, 80), (120, 80), (90, 60)]
    assert pages[2].pixels[0, 0].tolist() == [255, 0, 0]
    assert pages[0].dpi == 300


def test_image_only_pdf_is_rasterised_at_200_dpi():
    page = sp.make_page(100, seed=3)
    pil = Image.fromarray(page.pixels)
    data = _save(pil, "PDF", resolution=100.0, save_all=True, append_images=[pil])
    pages = load_pages(data, filename="scan.pdf")
    assert len(pages) == 2 and all(p.dpi == 200 for p in pages)
    # A4 at 200 dpi.
    assert abs(pages[0].width - 1654) <= 2 and abs(pages[0].height - 2339) <= 2
    assert not is_blank(pages[1])


def test_huge_image_refused_from_header_before_decoding(monkeypatch):
    # A valid PNG header declaring 20000x20000 with almost no data: decoding it would need 1.2 GB.
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    data = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 100)) + chunk(b"IEND", b""))
    # With Pillow's own guard at its default, our limit must still answer first and clearly.
    with pytest.raises(ImageTooLarge) as err:
        load_pages(data, filename="huge.png")
    assert "huge.png”第1页" in err.value.message and "图像过大" in err.value.message
    assert err.value.details["page"] == 1
    assert isinstance(err.value, UnsupportedInput)
    # Below Pillow's guard, our own header check answers, with the size.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    with pytest.raises(ImageTooLarge) as err:
        load_pages(data, filename="huge.png")
    assert "20000x20000" in err.value.message and "上限 72 百万像素" in err.value.message


def test_page_over_custom_limit_names_the_page():
    frames = [Image.new("L", (50, 50), 255), Image.new("L", (400, 400), 255)]
    data = _save(frames[0], "TIFF", save_all=True, append_images=frames[1:])
    with pytest.raises(ImageTooLarge) as err:
        load_pages(data, filename="two.tif", max_pixels=10_000)
    assert "two.tif”第2页" in err.value.message


@pytest.mark.parametrize("data, error, words", [
    (b"", EmptyDocument, "是空的"),
    (b"hello, this is text", UnsupportedImageFormat, "不是 PNG"),
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, CorruptImage, "已损坏"),
    (b"%PDF-1.4\n garbage garbage", CorruptImage, "PDF"),
])
def test_bad_inputs_give_clear_typed_errors(data, error, words):
    with pytest.raises(error) as err:
        load_pages(data, filename="bad.bin")
    assert "bad.bin" in err.value.message and words in err.value.message
    assert err.value.code == error.code


def test_truncated_jpeg_is_corrupt_not_a_crash():
    data = _save(Image.fromarray(sp.make_page(72).pixels), "JPEG", quality=80)
    with pytest.raises(CorruptImage) as err:
        load_pages(data[: len(data) // 3], filename="cut.jpg")
    assert isinstance(err.value, UnreadableDocument)
    assert "cut.jpg”第1页" in err.value.message


def test_pdf_without_pages_is_empty():
    from pypdf import PdfWriter
    buf = io.BytesIO()
    PdfWriter().write(buf)
    with pytest.raises(EmptyDocument):
        load_pages(buf.getvalue(), filename="none.pdf")


def test_missing_file_is_unreadable(tmp_path):
    with pytest.raises(UnreadableDocument):
        load_pages(tmp_path / "nope.png")


def test_is_blank():
    white = np.full((2339, 1654, 3), 255, np.uint8)
    assert is_blank(white)
    # Scanner noise, JPEG artefacts, a dark edge and a few specks are still blank.
    rng = np.random.default_rng(0)
    noisy = np.clip(white.astype(int) + rng.normal(0, 6, white.shape), 0, 255).astype(np.uint8)
    noisy[:, :20] = 30
    noisy[1000:1002, 800:802] = 0
    assert is_blank(noisy)
    # A shaded phone photo of an empty sheet is blank; the same with one line of text is not.
    shade = np.linspace(1.0, 0.6, white.shape[1])[None, :, None]
    assert is_blank((white * shade).astype(np.uint8))
    texted = white.copy()
    texted[1200:1230, 300:900] = 0
    assert not is_blank(texted)
    assert not is_blank(sp.make_page(100).pixels)
    assert is_blank(images.PageImage(white, 200, "x.png"))


def test_rotate_quarter_undoes_clockwise_turn():
    a = np.arange(6, dtype=np.uint8).reshape(2, 3)
    turned_cw = np.rot90(a, -1)
    assert np.array_equal(rotate_quarter(turned_cw, 90), a)
    assert rotate_quarter(a, 0) is a
