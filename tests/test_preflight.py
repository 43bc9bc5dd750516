"""Bounded intake checks (``parsers.preflight``) on legitimate files: they pass, whatever their
size within the limits (the hostile side is tests/test_hostile.py)."""

from __future__ import annotations

import zlib

import numpy as np
import pikepdf

from parsers.preflight import Limits, check_file


def test_scanned_pdf_with_many_flate_images_passes(tmp_path):
    # Scanner PDFs often hold Flate-compressed page images: each is bounded by the pixel cap and
    # decoded one page at a time, so they do not count towards the total of decoded streams.
    pdf = pikepdf.new()
    page_px = (np.random.default_rng(1).random((1169, 827)) > 0.97).astype(np.uint8) * 255
    raw = zlib.compress(page_px.tobytes(), 6)
    for i in range(12):
        pdf.add_blank_page(page_size=(595, 842))
        img = pikepdf.Stream(pdf, raw)
        img.Type, img.Subtype = pikepdf.Name.XObject, pikepdf.Name.Image
        img.Width, img.Height, img.BitsPerComponent = 827, 1169, 8
        img.ColorSpace, img.Filter = pikepdf.Name.DeviceGray, pikepdf.Name.FlateDecode
        page = pdf.pages[i]
        page.Resources = pikepdf.Dictionary(XObject=pikepdf.Dictionary(Im0=pdf.make_indirect(img)))
        page.Contents = pdf.make_stream(b"q 595 0 0 842 0 0 cm /Im0 Do Q")
    path = tmp_path / "scan.pdf"
    pdf.save(path, compress_streams=False, stream_decode_level=pikepdf.StreamDecodeLevel.none)
    limits = Limits(pdf_total_bytes=4 * 1024 * 1024)  # 12 pages x 0.97 MB of pixels exceed it
    assert check_file(path, "pdf", limits=limits) == {"pages": 12}


def test_our_own_docx_and_pdf_pass(tmp_path):
    from pathlib import Path

    from tests.hostile.make import plain_docx

    sample = Path(__file__).parent / "samples" / "scans" / "issued.pdf"
    assert check_file(sample, "pdf") == {"pages": 5}
    docx = tmp_path / "plain.docx"
    docx.write_bytes(plain_docx())
    out = check_file(docx, "zip")
    assert out["members"] > 5 and out["uncompressed"] < 1024 * 1024
