"""parsers.qr: the identity code is found and the page rotation reported on degraded pages."""

from __future__ import annotations

import numpy as np
import pytest

from forms import identity
from parsers.images import rotate_quarter
from parsers.qr import find_codes
from tests import synth_pages as sp


@pytest.fixture(scope="module")
def base():
    return sp.make_page(200, seed=1)


DEGRADATIONS = {
    "clean": lambda p: p,
    "skew+3": lambda p: sp.rotate(p, 3),
    "skew-15": lambda p: sp.rotate(p, -15),
    "quarter-ccw": lambda p: sp.quarter(p, 1),
    "upside-down+5": lambda p: sp.rotate(sp.quarter(p, 2), 5),
    "quarter-cw": lambda p: sp.quarter(p, 3),
    "phone": lambda p: sp.perspective(p, 0.06),
    "blur+noise+jpeg50": lambda p: sp.jpeg(sp.noise(sp.blur(sp.rotate(p, -7), 1.2)), 50),
    "black-and-white": lambda p: sp.black_and_white(sp.rotate(p, 4)),
}
EXPECTED_ROTATION = {"quarter-ccw": 270, "upside-down+5": 180, "quarter-cw": 90}


@pytest.mark.parametrize("name", list(DEGRADATIONS))
def test_code_found_and_rotation_reported(base, name):
    page = DEGRADATIONS[name](base)
    hits = find_codes(page.pixels)
    assert len(hits) == 1
    hit = hits[0]
    assert hit.payload == base.payload
    ident = identity.decode(hit.payload, sp.SECRET)
    assert (ident.doc_id, ident.page, ident.pages, ident.form) == ("7K3M9Q2XW4PD", 1, 1, "dropout_report")
    assert hit.rotation == EXPECTED_ROTATION.get(name, 0)
    # The reported corners sit where the code was drawn (within a few pixels).
    truth = page.to_px(np.array([[sp.qr_box_pt()[0], sp.qr_box_pt()[1]], [sp.qr_box_pt()[2], sp.qr_box_pt()[1]]]))
    assert np.linalg.norm(np.array(hit.corners[0]) - truth[0]) < 8
    assert np.linalg.norm(np.array(hit.corners[1]) - truth[1]) < 8
    # Turning the image by the reported rotation puts the code upright at the top right.
    upright = rotate_quarter(page.pixels, hit.rotation)
    again = find_codes(upright)[0]
    assert again.rotation == 0 and abs(again.angle) <= 16
    assert again.center[0] > upright.shape[1] / 2 and again.center[1] < upright.shape[0] / 2


@pytest.mark.parametrize("dpi", [150, 300])
def test_other_resolutions_found_in_the_corner(dpi):
    page = sp.rotate(sp.make_page(dpi), 2)
    [hit] = find_codes(page.pixels)
    assert hit.payload == page.payload and hit.stage == "corner:top-right"


def test_retries_find_a_code_away_from_the_corners(base):
    # A sheet with the code in the middle (e.g. a cut-out stuck on another page).
    canvas = np.full_like(base.pixels, 255)
    h, w = canvas.shape[:2]
    x0, y0, x1, y1 = (round(v * 200 / 72) for v in sp.qr_box_pt())
    code = base.pixels[y0 - 10:y1 + 10, x0 - 10:x1 + 10]
    cy, cx = h // 2, w // 2
    canvas[cy:cy + code.shape[0], cx - code.shape[1] // 2:cx - code.shape[1] // 2 + code.shape[1]] = code
    [hit] = find_codes(canvas)
    assert hit.payload == base.payload and not hit.stage.startswith("corner")


def test_no_code_gives_empty_list():
    assert find_codes(np.full((600, 400, 3), 255, np.uint8)) == []


def test_several_codes_on_one_sheet_with_exhaustive():
    a, b = sp.make_page(150, page_no=1, pages=2), sp.make_page(150, page_no=2, pages=2)
    sheet = np.concatenate([a.pixels, b.pixels], axis=1)
    payloads = {h.payload for h in find_codes(sheet, exhaustive=True)}
    assert payloads == {a.payload, b.payload}
