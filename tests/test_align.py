"""parsers.align: pages line up with their template within a few pixels whatever the damage."""

from __future__ import annotations

import numpy as np
import pytest

from parsers.align import AlignmentFailed, TemplatePage, align
from parsers.images import PageImage
from parsers.qr import find_codes
from tests import synth_pages as sp

CASES = {
    "clean": lambda p: p,
    "skew+15": lambda p: sp.rotate(p, 15),
    "skew-9": lambda p: sp.rotate(p, -9),
    "quarter": lambda p: sp.quarter(sp.rotate(p, 3), 1),
    "upside-down": lambda p: sp.quarter(p, 2),
    "phone": lambda p: sp.perspective(p, 0.07, seed=5),
    "degraded": lambda p: sp.jpeg(sp.noise(sp.blur(sp.rotate(p, 6))), 50),
    "black-and-white": lambda p: sp.black_and_white(sp.rotate(p, -3)),
}


def _points(geometry) -> np.ndarray:
    boxes = list(geometry["fields"].values()) + list(geometry["tables"])
    return np.array([[x, y] for x0, y0, x1, y1 in boxes for x, y in ((x0, y0), (x1, y0), (x1, y1), (x0, y1))])


@pytest.mark.parametrize("dpi", [150, 200, 300])
@pytest.mark.parametrize("name", list(CASES))
def test_alignment_error_small(dpi, name):
    page = CASES[name](sp.make_page(dpi, seed=dpi))
    [hit] = find_codes(page.pixels)
    aligned = align(page.pixels, page.geometry, qr=hit)
    pts = _points(page.geometry)
    err = np.linalg.norm(aligned.to_source(pts) - page.to_px(pts), axis=1)
    assert aligned.method == "table"
    assert err.mean() < 3.0 and err.max() < 5.0, (err.mean(), err.max())
    assert aligned.rotation == hit.rotation
    assert abs(aligned.scan_dpi - dpi) / dpi < (0.25 if name == "phone" else 0.03)


def test_crop_is_upright_and_at_requested_dpi():
    page = sp.rotate(sp.quarter(sp.make_page(300), 2), 11)
    [hit] = find_codes(page.pixels)
    aligned = align(page.pixels, page.geometry, qr=hit)
    box = page.geometry["fields"]["principal_signature"]
    crop = aligned.crop(box, pad_pt=0)
    assert crop.shape == (round((box[3] - box[1]) * 200 / 72), round((box[2] - box[0]) * 200 / 72), 3)
    # The cell's left border (the label/value rule) is a dark column at x=0 and the
    # text "年 月 日" sits bottom-right, not top-left: the crop is upright.
    assert crop[:, :3].mean() < 200
    gray = crop.mean(axis=2)
    assert gray[-40:, -180:].min() < 100 and gray[8:40, 30:120].min() > 200
    x0, y0, x1, y1 = aligned.box_px(box)
    assert 0 <= x0 < x1 <= aligned.image.shape[1] and 0 <= y0 < y1 <= aligned.image.shape[0]


def test_template_from_mapping_variants():
    t = TemplatePage.from_mapping({"width": 595, "height": 842, "table": [1, 2, 3, 4], "qr_box": [5, 6, 7, 8]})
    assert t.tables == ((1.0, 2.0, 3.0, 4.0),) and t.qr == (5.0, 6.0, 7.0, 8.0) and t.width_pt == 595.0


def test_falls_back_to_qr_when_table_missing():
    page = sp.rotate(sp.make_page(200), 4)
    geometry = dict(page.geometry, tables=[[20.0, 700.0, 60.0, 760.0]])  # a table that is not there
    [hit] = find_codes(page.pixels)
    aligned = align(PageImage(page.pixels, None, "x.png"), geometry, qr=hit)
    assert aligned.method == "qr"
    pts = _points(page.geometry)
    err = np.linalg.norm(aligned.to_source(pts) - page.to_px(pts), axis=1)
    assert err.max() < 20


def test_no_anchor_raises():
    blank = np.full((2339, 1654, 3), 255, np.uint8)
    with pytest.raises(AlignmentFailed) as err:
        align(blank, {"size": sp.A4_PT, "tables": [sp.TABLE], "qr": sp.qr_box_pt()})
    assert "重新扫描" in err.value.message and "表格外框" in err.value.message  # shown on the upload page
