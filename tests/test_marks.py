"""parsers.marks: tick boxes, seals, fingerprints and signatures on aligned synthetic pages."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from parsers import marks
from parsers.align import align
from parsers.qr import find_codes
from tests import synth_pages as sp


def _aligned(page):
    [hit] = find_codes(page.pixels)
    return align(page.pixels, page.geometry, qr=hit)


DAMAGE = {
    "clean": lambda p: p,
    "skew": lambda p: sp.rotate(p, -12),
    "phone": lambda p: sp.perspective(p, 0.05, seed=3),
    "degraded": lambda p: sp.jpeg(sp.noise(sp.blur(sp.rotate(sp.quarter(p, 2), 6))), 50),
}


@pytest.mark.parametrize("dpi", [150, 200])
@pytest.mark.parametrize("damage", list(DAMAGE))
@pytest.mark.parametrize("filled", [True, False])
def test_marks_on_pages(dpi, damage, filled):
    ticked = ("reason_family",) if filled else ("reason_study", "reason_other")
    page = DAMAGE[damage](sp.make_page(dpi, ticked=ticked, signed=filled, sealed=filled, seed=dpi))
    al = _aligned(page)
    states = {name: marks.tick_state(al.crop(box, pad_pt=3)) for name, box in sp.TICKS.items()}
    assert {n for n, m in states.items() if m.state == marks.TICKED} == set(ticked)
    assert all(m.state == marks.EMPTY for n, m in states.items() if n not in ticked)
    assert all(m.confidence > 0.9 for m in states.values())
    colour = marks.is_colour(page.pixels)
    seal = marks.seal_present(al.crop(page.geometry["fields"]["school_seal"], pad_pt=-3), colour=colour)
    sig = marks.signature_present(al.crop(page.geometry["fields"]["principal_signature"], pad_pt=-2))
    if filled:
        assert seal.state == marks.PRESENT and seal.score > 0.01
        assert sig.state == marks.PRESENT
    else:
        assert seal.state in (marks.ABSENT, marks.AMBIGUOUS) and seal.state != marks.PRESENT
        assert sig.state == marks.ABSENT


def _box(inner: np.ndarray | None = None, size: int = 40) -> np.ndarray:
    crop = np.full((size + 16, size + 16, 3), 255, np.uint8)
    cv2.rectangle(crop, (8, 8), (8 + size, 8 + size), (0, 0, 0), 2)
    if inner is not None:
        crop[8:8 + size, 8:8 + size][inner] = 0
    return crop


def test_tick_ambiguous_band_is_never_guessed():
    size = 40
    dot = np.zeros((size, size), bool)
    dot[18:23, 17:24] = True  # a small speck: more than nothing, less than a tick
    state, score = marks.tick_state(_box(dot))
    assert state == marks.AMBIGUOUS and 0.03 < score < 0.07
    assert marks.tick_state(_box(dot)).needs_review
    cross = np.zeros((size, size), bool)
    for i in range(size):
        cross[i, max(0, i - 2):i + 2] = True
        cross[i, max(0, size - i - 3):size - i + 1] = True
    assert marks.tick_state(_box(cross)).state == marks.TICKED
    # The printed border alone, even thick and slightly off-centre, is empty.
    crop = _box()
    crop = np.roll(crop, 3, axis=1)
    assert marks.tick_state(crop).state == marks.EMPTY


def test_seal_needs_colour_and_shape():
    crop = np.full((300, 300, 3), 255, np.uint8)
    assert marks.seal_present(crop, colour=True).state == marks.ABSENT
    ring = crop.copy()
    cv2.circle(ring, (150, 150), 110, (220, 30, 40), 6)
    cv2.putText(ring, "SEAL", (95, 160), cv2.FONT_HERSHEY_SIMPLEX, 1.2, (220, 30, 40), 3)
    assert marks.seal_present(ring, dpi=200).state == marks.PRESENT
    # The same seal in a grey scan: cannot tell, so ambiguous (a person checks).
    grey = cv2.cvtColor(cv2.cvtColor(ring, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
    m = marks.seal_present(grey)
    assert m.state == marks.AMBIGUOUS and "黑白扫描件" in m.reason  # the review queue shows it as it is
    # A red pen line is red ink but not a seal.
    pen = crop.copy()
    cv2.line(pen, (20, 150), (280, 160), (200, 20, 30), 3)
    m = marks.seal_present(pen, colour=True)
    assert m.state == marks.AMBIGUOUS and "公章" in m.reason and not any(c.isascii() and c.isalpha() for c in m.reason)


def test_fingerprint():
    crop = np.full((200, 200, 3), 255, np.uint8)
    assert marks.fingerprint_present(crop, colour=True).state == marks.ABSENT
    finger = crop.copy()
    cv2.ellipse(finger, (100, 100), (45, 65), 0, 0, 360, (190, 40, 50), -1)
    for r in range(5, 60, 6):  # ridges
        cv2.ellipse(finger, (100, 100), (r * 45 // 65, r), 0, 0, 360, (255, 255, 255), 1)
    assert marks.fingerprint_present(finger, dpi=200).state == marks.PRESENT


def test_signature_with_reference_ignores_printed_text():
    page = sp.make_page(200, signed=False, sealed=False)
    signed = sp.make_page(200, signed=True, sealed=False)
    box = page.geometry["fields"]["principal_signature"]
    blank_al, signed_al = _aligned(page), _aligned(sp.rotate(signed, 5))
    ref = blank_al.crop(box, pad_pt=-2)
    assert marks.signature_present(blank_al.crop(box, pad_pt=-2), reference=ref).state == marks.ABSENT
    assert marks.signature_present(signed_al.crop(box, pad_pt=-2), reference=ref).state == marks.PRESENT
    # A couple of specks of dirt are not a signature.
    dirty = blank_al.crop(box, pad_pt=-2).copy()
    dirty[100:104, 200:204] = 0
    assert marks.signature_present(dirty, reference=ref).state != marks.PRESENT
    with pytest.raises(ValueError):
        marks.signature_present(dirty, reference=ref[:10])


def test_tick_box_found_between_neighbouring_strokes():
    """A crop that also holds the upright stroke of the next character (□随…) or a table rule
    above: the square is still the printed box, so an empty box reads empty and a tick ticked."""
    size = 40
    for ticked in (False, True):
        crop = np.full((size + 16, size + 28, 3), 255, np.uint8)
        cv2.rectangle(crop, (8, 8), (8 + size, 8 + size), (0, 0, 0), 2)
        crop[2:54, 62:64] = 0  # the neighbour's stroke, taller than the box
        crop[1:3, :] = 0  # a table rule just above
        if ticked:
            cv2.line(crop, (16, 28), (24, 40), (0, 0, 0), 4)
            cv2.line(crop, (24, 40), (42, 14), (0, 0, 0), 4)
        m = marks.tick_state(crop)
        assert m.state == (marks.TICKED if ticked else marks.EMPTY), m
        assert m.confidence > 0.9


def test_upright_pen_stroke_inside_box_is_a_tick_not_an_edge():
    size = 40
    inner = np.zeros((size, size), bool)
    inner[3:size - 3, 24:28] = True  # a straight "|" mark, right of centre
    m = marks.tick_state(_box(inner, size))
    assert m.state == marks.TICKED


def test_seal_cut_by_its_cell_still_reads_as_a_seal():
    """A 30 mm seal stamped over a lower cell: the zone crop holds two arcs and the text between
    them, not one ring. Still a seal; two red pen strokes far apart are not."""
    dpi = 200
    r = int(15 / 25.4 * dpi)  # 15 mm radius
    big = np.full((2 * r + 60, 2 * r + 200, 3), 255, np.uint8)
    cv2.circle(big, (r + 100, r + 30), r, (220, 30, 40), 7)
    cv2.putText(big, "SEAL", (r + 40, r + 50), cv2.FONT_HERSHEY_SIMPLEX, 1.6, (220, 30, 40), 4)
    cut = big[30 + int(0.3 * r):30 + int(1.7 * r)]  # top and bottom of the ring outside the zone
    m = marks.seal_present(cut, dpi=dpi, colour=True)
    assert m.state == marks.PRESENT, m
    strokes = np.full((200, 900, 3), 255, np.uint8)
    cv2.line(strokes, (20, 40), (30, 160), (200, 20, 30), 4)
    cv2.line(strokes, (860, 40), (870, 160), (200, 20, 30), 4)
    assert marks.seal_present(strokes, dpi=dpi, colour=True).state == marks.AMBIGUOUS


def test_broken_thin_signature_is_never_called_absent():
    """A 150-dpi fax leaves a pen line as short dashes: never "absent" (no person would look
    again); a zone with a few specks of dust still is."""
    rng = np.random.default_rng(4)
    crop = np.full((120, 420, 3), 255, np.uint8)
    pts = np.stack([np.linspace(100, 380, 40), 60 + 25 * np.sin(np.linspace(0, 9, 40)) + rng.normal(0, 4, 40)],
                   axis=1).astype(np.int32)
    cv2.polylines(crop, [pts], False, (20, 20, 60), 2)
    crop[:, 100:380][:, (np.arange(280) // 7) % 2 == 1] = 255  # every other 7-px slice gone
    assert marks.signature_present(crop, dpi=200).state != marks.ABSENT
    dust = np.full((120, 420, 3), 255, np.uint8)
    for x, y in rng.integers(10, 100, size=(6, 2)):
        dust[y:y + 2, x * 4:x * 4 + 2] = 0
    assert marks.signature_present(dust, dpi=200).state == marks.ABSENT
