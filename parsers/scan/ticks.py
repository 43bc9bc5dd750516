"""Hand-drawn marks in printed tick boxes, judged against the issued page (issue 15).

People tick in every way: a thin ✓ inside the box, a thick one, one that starts left of the box
and ends far above it, a small one in a corner, ✗, a box filled in, a ring drawn round the box
and its label. Measuring ink inside the box alone calls the big and the ringed ones "empty" with
full confidence. Here the region round a field's boxes is lined up with the same region of the
issued PDF (as for character boxes) and the printed ink — box outlines and labels — is taken away;
what is left is writing. Each piece of writing belongs to the box its ink lies in; a box is ticked
when its own writing covers enough of its inside, empty only when there is no writing in or near
it, and anything else (writing next to a box but not in it, a ring round it) is for a person.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from parsers import marks
from parsers.images import ink_mask, to_gray
from parsers.scan.ink import INK_SEARCH_PT, ReferencePages, ink_shift
from parsers.scan.readings import BBox

# Printed ink is grown by this much (mm) before it is taken away (scan offset, fax thickening).
PRINT_GROW_MM = 0.35
# Share of a box's inside (inset 15 %) covered by writing: ticked at or above, empty at or below
# EMPTY_IN (with nothing near the box either).
TICKED_IN = 0.05
EMPTY_IN = 0.012
# Writing near the box (within NEAR x the box's side, outside it) that belongs to no ticked box,
# in box areas: at most this much is dust or a stray dot.
NEAR = 0.9
NEAR_MAX = 0.05


@dataclass(frozen=True)
class TickEvidence:
    """Per box: ``inside`` (share of the inside covered by writing) and ``near`` (writing round the
    box belonging to no ticked box, in box areas); ``state`` ticked / empty / ambiguous."""

    inside: float
    near: float
    state: str


def tick_evidence(aligned, boxes: Sequence[BBox], *, dpi: float, reference: ReferencePages,
                  page_no: int) -> list[TickEvidence]:
    """Read a field's tick boxes (PDF points, in order) against the issued page."""
    import cv2

    side = float(np.median([min(b[2] - b[0], b[3] - b[1]) for b in boxes]))
    reach = NEAR * side
    region = (min(b[0] for b in boxes) - reach, min(b[1] for b in boxes) - reach,
              max(b[2] for b in boxes) + reach, max(b[3] for b in boxes) + reach)
    s = dpi / 72.0
    scan_ink = ink_mask(to_gray(aligned.crop(region, pad_pt=INK_SEARCH_PT)), contrast=0.7).astype(np.uint8)
    ref_ink = (reference.crop(page_no, region) < 160).astype(np.uint8)
    rh, rw = ref_ink.shape
    if scan_ink.shape[0] < rh or scan_ink.shape[1] < rw:
        return [TickEvidence(0.0, 0.0, marks.AMBIGUOUS) for _ in boxes]
    margin = int(round(INK_SEARCH_PT * s))
    dx, dy = ink_shift(scan_ink, ref_ink) if ref_ink.any() else (margin, margin)
    ink = scan_ink[dy:dy + rh, dx:dx + rw]
    grow = max(1, int(round(PRINT_GROW_MM * dpi / 25.4)))
    printed = cv2.dilate(ref_ink, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1)))
    written = ink & (1 - printed)
    written = cv2.morphologyEx(written, cv2.MORPH_OPEN, np.ones((2, 2), np.uint8))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(written, connectivity=8)
    px = [tuple(int(round((b[i] - region[i % 2]) * s)) for i in range(4)) for b in boxes]
    insides = []
    for x0, y0, x1, y1 in px:
        mx, my = int(round(0.15 * (x1 - x0))), int(round(0.15 * (y1 - y0)))
        insides.append((slice(max(0, y0 + my), y1 - my), slice(max(0, x0 + mx), x1 - mx)))
    cover = [float(written[sl].mean()) if written[sl].size else 0.0 for sl in insides]
    ticked = [c >= TICKED_IN for c in cover]
    # pieces of writing that reach into a ticked box are that box's tick, wherever else they go
    owned = np.zeros(n, bool)
    for k, sl in enumerate(insides):
        if ticked[k]:
            owned[np.unique(labels[sl])] = True
    owned[0] = True
    out = []
    r = int(round(reach * s))
    for k, (x0, y0, x1, y1) in enumerate(px):
        area = max(1, (x1 - x0) * (y1 - y0))
        ring = labels[max(0, y0 - r):y1 + r, max(0, x0 - r):x1 + r]
        stray = float((~owned[ring]).sum()) / area
        if ticked[k]:
            state = marks.TICKED
        elif cover[k] <= EMPTY_IN and stray <= NEAR_MAX:
            state = marks.EMPTY
        else:
            state = marks.AMBIGUOUS
        out.append(TickEvidence(round(cover[k], 4), round(stray, 4), state))
    return out
