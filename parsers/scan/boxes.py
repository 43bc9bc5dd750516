"""Printed boxes: where the tick and character boxes of every field sit (from the issued PDF),
and handwritten numbers read one digit per character box (DOMAIN §5.6.2)."""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from forms import validators as v
from forms.pdfium_lock import PDFIUM_LOCK
from forms.spec import BOX_CHARS, Field, Kind
from parsers.base import BBox, FieldReading, jsonable
from parsers.images import FAX_BELOW_DPI, ink_mask, is_fax, to_gray
from parsers.ocr import OcrEngine, OcrFailed, OcrText
from parsers.scan import digits as digit_model
from parsers.scan.handwriting import confirm_reason, digits_only, interpret_hand
from parsers.scan.ink import INK_SEARCH_PT, ReferencePages, ink_shift
from parsers.scan.readings import CONFIRM_KINDS, ReadContext, recognize

log = logging.getLogger(__name__)

# ---- handwritten numbers in character boxes -----------------------------------------------------------

# A box holds writing when what is left of its ink, once the printed boxes and 年月日 are taken
# away, is at least this share of the box's height tall (a written "1" or "0"; not a speck or the
# sliver of a box edge a pixel off).
BOX_INK_MIN_HEIGHT = 0.3
# A box not counted written whose leftover ink still covers this share of the box's area (height
# squared) is doubtful (``BoxWriting.doubtful``); a speck or an edge's sliver is far less.
BOX_DOUBT_AREA = 0.02
# ... and so is one whose inside, away from the edges, holds at least a square this wide (mm) of ink.
BOX_SPECK_MM = 0.3
# Print other than the box edges (年月日) is grown by this much (mm) before it is taken away: the
# scan sits up to a pixel or two off the rendered reference after the best shift. (The edges are
# found on the scan itself, ``_edge_bands``; one the scan does not show is grown by this too.)
BOX_PRINT_GROW_MM = 0.3
# A written box's ink meeting a printed edge over at least this many (mm worth of) pixels runs into
# the edge: part of its stroke may be under or along it (``BoxWriting.on_edge``). Judged on scans
# below ``images.FAX_BELOW_DPI`` only: there (a fax) an edge and a stroke lying on it print as one line
# of the same thickness and nothing tells them apart (a 2's cap along the top edge lost, the 2 read
# as a sure 0 on a 120-dpi fax of the bench); at 200 dpi and more a stroke on an edge shows as the
# edge grown thicker and is given back (``_edge_bands``), and judging every digit that meets an
# edge there would send half the boxed fields of clean scans to a person (measured: right values
# proposed as a plain confirmation 28 -> 14 of 36 on 300-dpi flatbed scans).
BOX_EDGE_TOUCH_MM = 0.3
# At any resolution, a digit read as one of these whose ink runs into that edge may be the other
# digit with its stroke along the edge lost with it: a 2 whose foot lies on the bottom edge reads
# as a sure 7 (or 1), a 7 whose cap lies on the top edge as a sure 1 (4 of the 5 sure-but-wrong
# boxes of a held-out bench run: 2 read as 7). Such a box's reading is never sure alone.
BOX_EDGE_LOOKALIKES = {"bottom": {7: 2, 1: 2}, "top": {1: 7}}
# Drop-out boxes (forms/build_templates.py BOX_RGB): the issued page's print paler than this grey
# (and not a dark glyph's soft edge) is drop-out print, when there is at least BOX_LIGHT_MIN_PX of
# it in the strip. A scan whose long straight ink (runs of BOX_LINE_MIN_PT) comes to BOX_LIGHT_SHOWN
# of the print's shows the boxes, and they are taken away as printed edges; otherwise nothing is
# taken away there (a stroke along or over an edge stays whole) but a piece of ink lying for
# BOX_LIGHT_REMNANT of its pixels along the light print (an edge's dark remnant) is no writing.
BOX_LIGHT_BELOW = 240
BOX_LIGHT_MIN_PX = 40
BOX_LINE_MIN_PT = 8.0
BOX_LIGHT_SHOWN = 0.5
BOX_LIGHT_REMNANT = 0.9


@dataclass(frozen=True, eq=False)
class BoxWriting:
    """What was written in a field's character boxes: ``inked`` per box; ``line``: the written
    digits side by side on white (the printed boxes gone), one line for the recogniser, or None
    when nothing is written; ``digits``: each written box's digit alone (a second reading)."""

    inked: tuple[bool, ...]
    line: np.ndarray | None
    digits: tuple[np.ndarray, ...] = ()
    # boxes (1-based) counted empty that still hold written ink, too little or too short for a
    # digit (a 1 half lost along an edge, a stroke mostly under the print): nobody can say what
    # the field holds, it goes to review.
    doubtful: tuple[int, ...] = ()
    dpi: float = 0.0  # the resolution the page was scanned at (0: not known), not the aligned image's
    # written boxes (1-based) whose ink runs into a printed edge taken away: a stroke may lie on or
    # under the edge (a 2's cap along the top edge gone, the rest read as 0): the digit readers'
    # reading of such a box is never taken as sure on its own
    on_edge: tuple[int, ...] = ()
    # (box, "top" or "bottom") for each written box whose ink runs into that printed edge, at any
    # resolution: with the digit read there it may mean a stroke lost along it (``BOX_EDGE_LOOKALIKES``)
    edges: tuple[tuple[int, str], ...] = ()


def box_writing(aligned, cells: Sequence[BBox], zone: BBox, *, dpi: float,
                reference: ReferencePages | None = None, page_no: int = 0, source_dpi: float = 0.0) -> BoxWriting:
    """Find the handwriting in the printed character boxes ``cells`` (PDF points, in order) of a
    field whose cell is ``zone``.

    The strip around the boxes is cut from the aligned scan with a margin and lined up with the
    same strip of the issued page (page ``page_no`` of ``reference``; without one, the box outlines
    are drawn instead). Each printed box edge is then found on the scan itself — where it lies and
    how thick it is along its length (``_edge_bands``): a fax or a phone photo prints it thicker,
    wavier or a pixel or two off the reference — and only that is taken away; ink of a stroke that
    crosses an edge is given back. Other print (年月日) is taken away as the reference shows it,
    grown a little. Each piece of what is left belongs to the box holding most of it (a piece
    wholly outside the boxes, a digit's overflow, to the box next to it); the pieces of the written
    boxes are put side by side into one line."""
    import cv2

    cells = [tuple(float(x) for x in c) for c in cells]
    box_h = float(np.median([c[3] - c[1] for c in cells]))
    pitch = float(np.median([c[2] - c[0] for c in cells]))
    region = (max(zone[0], min(c[0] for c in cells) - 0.3 * pitch), zone[1] + 1.0,
              min(zone[2], max(c[2] for c in cells) + 0.3 * pitch), zone[3] - 1.0)
    s = dpi / 72.0
    margin = int(round(INK_SEARCH_PT * s))
    scan_rgb = aligned.crop(region, pad_pt=INK_SEARCH_PT)
    scan_grey = to_gray(scan_rgb)
    scan_ink = _writing_ink(scan_grey)
    rh = int(round((region[3] - region[1]) * s))
    rw = int(round((region[2] - region[0]) * s))
    dropped = None  # drop-out print (light boxes) the scan does not show, lined up with ``ink``
    if reference is not None:
        ref_grey = reference.crop(page_no, region)
        ref_ink = (ref_grey < 160).astype(np.uint8)
        rh, rw = ref_ink.shape
        light = ((ref_grey < BOX_LIGHT_BELOW) & (cv2.dilate(ref_ink, np.ones((3, 3), np.uint8)) == 0)).astype(np.uint8)
        if int(light.sum()) >= BOX_LIGHT_MIN_PX:
            dropped = light
    else:
        ref_ink = np.zeros((rh, rw), np.uint8)
        t = max(1, int(round(0.7 * s)))
        for c in cells:
            p0 = (int(round((c[0] - region[0]) * s)), int(round((c[1] - region[1]) * s)))
            p1 = (int(round((c[2] - region[0]) * s)), int(round((c[3] - region[1]) * s)))
            cv2.rectangle(ref_ink, p0, p1, 1, t)
    dx, dy = ink_shift(scan_ink, ref_ink) if ref_ink.any() else (margin, margin)
    window = (slice(dy, dy + rh), slice(dx, dx + rw))
    if dropped is not None:
        near_light = cv2.dilate(dropped, np.ones((5, 5), np.uint8))  # the light print, a pixel or two off
        strong = ink_mask(scan_grey[window], contrast=BOX_INK_STRONG)
        if _shows_lines(strong, dropped, near_light.astype(bool), s):
            # the scan shows the light boxes (a dark fax, a darkened copy): taken away as any print
            ref_ink, dropped = ref_ink | dropped, None
            dx, dy = ink_shift(scan_ink, ref_ink)
            window = (slice(dy, dy + rh), slice(dx, dx + rw))
    ink = np.ascontiguousarray(scan_ink[window])
    grey = scan_grey[window]
    if dropped is not None:
        # where the light print lies only a clearly dark pixel is ink: a pale one there is the
        # print's own grey, never a stroke's soft edge to keep
        ink = np.where(near_light.astype(bool), ink & strong.astype(np.uint8), ink)
    grow = max(1, int(round(BOX_PRINT_GROW_MM * dpi / 25.4)))
    boxes_px = [tuple(int(round((c[i] - region[i % 2]) * s)) for i in range(4)) for c in cells]
    side = max(5, min(b[3] - b[1] for b in boxes_px))
    # the printed lines (box edges, rules) and the rest of the print (年月日)
    length = max(5, int(0.6 * side))
    lines = (cv2.morphologyEx(ref_ink, cv2.MORPH_OPEN, np.ones((1, length), np.uint8)),
             cv2.morphologyEx(ref_ink, cv2.MORPH_OPEN, np.ones((length, 1), np.uint8)))
    other = ref_ink & (1 - cv2.dilate(lines[0] | lines[1], np.ones((3, 3), np.uint8)))
    printed = cv2.dilate(other, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1)))
    search = grow + max(2, int(round(0.25 * dpi / 25.4)))
    bands, merged, thick = _edge_bands(ink, lines, search, grow)
    band = bands[0] | bands[1]
    left = ink & (1 - band) & (1 - printed)
    # A stroke crossing an edge: the scan's ink under the edge is given back where writing lies on
    # both sides of it, right across (a pixel or so aside, or in a line at a slant), never along one
    # side only; and where the edge is thicker than it is elsewhere (writing on it: a 0's side, a
    # 2's foot).
    across = np.zeros_like(left)
    kernels = _line_kernels(thick + 4)  # every 22.5° from the horizontal
    # only across each band, never along it (a digit's cap along the top edge would get the edge
    # between its ends stuck to it)
    for b, ks in ((bands[0], (2, 3, 4, 5, 6)), (bands[1], (6, 7, 0, 1, 2))):
        for k in ks:
            across |= b & cv2.morphologyEx(left, cv2.MORPH_CLOSE, kernels[k])
    reach = thick + 2
    for axis, b in enumerate(bands):
        w = cv2.dilate(left, np.ones((1, 3) if axis == 0 else (3, 1), np.uint8))
        fwd = np.zeros((2 * reach + 1, 1) if axis == 0 else (1, 2 * reach + 1), np.uint8)
        back = fwd.copy()
        if axis == 0:
            fwd[reach:, 0], back[:reach + 1, 0] = 1, 1
        else:
            fwd[0, reach:], back[0, :reach + 1] = 1, 1
        across |= b & cv2.dilate(w, fwd) & cv2.dilate(w, back)
    left = left | (ink & band & (across | merged))
    # What is left right beside an edge and nowhere else (the edge's blur, a sliver or a thick
    # spot of it) is not writing.
    near = cv2.dilate(band, np.ones((5, 5), np.uint8))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(left, connectivity=8)
    if n > 1:
        off = np.bincount(labels.ravel(), weights=(1 - near).ravel().astype(np.float64), minlength=n)
        sliver = np.nonzero(off[1:] == 0)[0] + 1
        if len(sliver):
            left[np.isin(labels, sliver)] = 0
    if dropped is not None:
        # what the scan still shows of the light print (a dark fax of it, a piece of an edge) is
        # not writing: a piece lying along it and nowhere else is dropped
        n, labels, stats, _ = cv2.connectedComponentsWithStats(left, connectivity=8)
        if n > 1:
            on = np.bincount(labels.ravel(), weights=near_light.ravel().astype(np.float64), minlength=n)
            remnant = np.nonzero(on[1:] >= BOX_LIGHT_REMNANT * stats[1:, cv2.CC_STAT_AREA])[0] + 1
            if len(remnant):
                left[np.isin(labels, remnant)] = 0
    keep_out = cv2.dilate(band | printed, np.ones((3, 3), np.uint8)) & (1 - left)
    min_area = max(3, int(round((0.25 * dpi / 25.4) ** 2)))
    interior = np.full(left.shape, -1, np.int32)
    for k, (x0, y0, x1, y1) in enumerate(boxes_px):
        interior[max(0, y0):max(0, y1), max(0, x0):max(0, x1)] = k
    n, labels, stats, inside = _pieces(left, interior, len(cells))
    # Two digits that touch (a 2's foot run on into the 5 beside it) are one piece with much ink
    # in both boxes: cut apart midway between the boxes.
    cut = False
    for i in range(1, n):
        counts = np.sort(inside[i, 1:])
        if len(counts) > 1 and counts[-2] >= max(3 * min_area, 0.1 * counts.sum()):
            held = np.nonzero(inside[i, 1:] >= counts[-2])[0]
            for k in range(int(held.min()), int(held.max())):
                mid = (boxes_px[k][2] + boxes_px[k + 1][0]) // 2
                if 0 <= mid < left.shape[1]:
                    left[:, mid][labels[:, mid] == i] = 0
                    cut = True
    if cut:
        n, labels, stats, inside = _pieces(left, interior, len(cells))
    owner: dict[int, list[int]] = {}
    big = [i for i in range(1, n) if stats[i, cv2.CC_STAT_AREA] >= min_area]
    outside = []
    if big:
        for i in big:
            counts = inside[i, 1:]
            if counts.max() > 0:
                owner.setdefault(int(np.argmax(counts)), []).append(i)
            else:
                outside.append(i)
    # A piece wholly outside the boxes is a digit's overflow (a stroke cut off at the edge) only
    # right beside the writing of the box next to it; anything else there (print the issued page
    # does not show, a rule, a stray mark) is no box's.
    near_px = 0.25 * side
    spans = {k: (min(stats[i, 0] for i in v), min(stats[i, 1] for i in v),
                 max(stats[i, 0] + stats[i, 2] for i in v), max(stats[i, 1] + stats[i, 3] for i in v))
             for k, v in owner.items()}
    for i in outside:
        x, y, w, h = (int(v) for v in stats[i, :4])
        if x == 0 or x + w >= left.shape[1] or max(w, h) >= 0.8 * side and min(w, h) <= thick:
            continue  # cut by the strip's end, or a straight line
        best, dist = None, near_px
        for k, (a0, b0, a1, b1) in spans.items():
            d = max(a0 - (x + w), x - a1, b0 - (y + h), y - b1, 0)
            # an overflow is the smaller part of its digit (年 printed beside a box is not)
            if d <= dist and stats[i, cv2.CC_STAT_AREA] <= sum(int(stats[j, cv2.CC_STAT_AREA]) for j in owner[k]):
                best, dist = k, d
        if best is not None:
            owner[best].append(i)
    tall = BOX_INK_MIN_HEIGHT * box_h * s
    inked, doubtful = [], []
    for k in range(len(cells)):
        comps = owner.get(k, [])
        if not comps:
            inked.append(False)
            continue
        top = min(stats[i, cv2.CC_STAT_TOP] for i in comps)
        bottom = max(stats[i, cv2.CC_STAT_TOP] + stats[i, cv2.CC_STAT_HEIGHT] for i in comps)
        inked.append(bottom - top >= tall)
        if not inked[-1] and sum(int(stats[i, cv2.CC_STAT_AREA]) for i in comps) >= BOX_DOUBT_AREA * (box_h * s) ** 2:
            doubtful.append(k + 1)
    # A box counted empty with ink inside it away from its edges (what a fax or a pale pen left
    # of a digit: a few dots) is doubtful too: an empty box's inside is white.
    specks = max(min_area, int(round((BOX_SPECK_MM * dpi / 25.4) ** 2)))
    for k, on in enumerate(inked):
        if not on and k + 1 not in doubtful and int((left & (interior == k) & (1 - near)).sum()) >= specks:
            doubtful.append(k + 1)
    doubtful.sort()
    if not any(inked):
        return BoxWriting(tuple(inked), None, doubtful=tuple(doubtful), dpi=source_dpi)
    gap = max(4, int(round(0.3 * box_h * s)))
    white = np.full((grey.shape[0], gap), 255, np.uint8)
    pieces, digits = [], []
    for k, on in enumerate(inked):
        if not on:
            continue
        mask = np.isin(labels, owner[k]).astype(np.uint8)
        xs = np.nonzero(mask.any(axis=0))[0]
        x0, x1 = int(xs.min()), int(xs.max()) + 1
        # the written ink and a pixel round it (its soft edge), never the printed box beside it
        keep = ((cv2.dilate(mask, np.ones((3, 3), np.uint8)) & (1 - keep_out)) | mask)[:, x0:x1].astype(bool)
        digit = np.where(keep, grey[:, x0:x1], 255).astype(np.uint8)
        pieces += [digit, white]
        digits.append(np.dstack([np.hstack([white, digit, white])] * 3))
    line = np.hstack([white, *pieces])
    # where a written box's ink meets the printed edge taken away (edge ink not given back)
    edge_ink = cv2.dilate(band & ink & (1 - left), np.ones((3, 3), np.uint8))
    touch = max(2, int(round(BOX_EDGE_TOUCH_MM * dpi / 25.4)))
    on_edge = tuple(k + 1 for k, on in enumerate(inked)
                    if on and is_fax(source_dpi)
                    and int((np.isin(labels, owner[k]) & edge_ink.astype(bool)).sum()) >= touch)
    # at any resolution: which horizontal edge (top or bottom) each written box's ink runs into
    h_ink = cv2.dilate(bands[0] & ink & (1 - left), np.ones((3, 3), np.uint8)).astype(bool)
    edges = []
    for k, on in enumerate(inked):
        if not on:
            continue
        ys = np.nonzero(np.isin(labels, owner[k]) & h_ink)[0]
        middle = (boxes_px[k][1] + boxes_px[k][3]) / 2
        for name, rows in (("top", ys[ys < middle]), ("bottom", ys[ys >= middle])):
            if len(rows) >= touch:
                edges.append((k + 1, name))
    return BoxWriting(tuple(inked), np.dstack([line] * 3), tuple(digits), tuple(doubtful), source_dpi, on_edge,
                      tuple(edges))


def _shows_lines(scan_ink: np.ndarray, light: np.ndarray, near: np.ndarray, scale: float) -> bool:
    """Whether the scan's dark ink (``scan_ink``, the strip lined up with ``light``) shows the light
    print's straight lines (``light``, the issued strip's drop-out boxes; ``near``: where they lie,
    a pixel or two off): as much long straight ink, horizontal and upright, along them as the print
    has (a dark fax, a darkened copy), or next to none (the boxes dropped out: a digit's cap or stem
    is short beside all the edges)."""
    import cv2

    length = max(5, int(round(BOX_LINE_MIN_PT * scale)))
    def long_ink(m: np.ndarray) -> int:
        m = m.astype(np.uint8)
        return int(cv2.morphologyEx(m, cv2.MORPH_OPEN, np.ones((1, length), np.uint8)).sum()
                   + cv2.morphologyEx(m, cv2.MORPH_OPEN, np.ones((length, 1), np.uint8)).sum())
    printed = long_ink(light)
    return printed > 0 and long_ink(scan_ink.astype(bool) & near) >= BOX_LIGHT_SHOWN * printed


def _pieces(left: np.ndarray, interior: np.ndarray, boxes: int):
    """The 8-connected pieces of ``left``: (count, labels, stats, pixels of each piece inside each
    box: column 0 outside every box, column k + 1 inside box k per ``interior``)."""
    import cv2

    n, labels, stats, _ = cv2.connectedComponentsWithStats(left, connectivity=8)
    inside = np.zeros((n, boxes + 1), np.int64)
    np.add.at(inside, (labels.ravel(), interior.ravel() + 1), 1)
    return n, labels, stats, inside


def doubt_reason(bw: BoxWriting) -> str:
    """Why a field with doubtful boxes (``BoxWriting.doubtful``) goes to a person."""
    return "第" + "、".join(map(str, bw.doubtful)) + "个格子有笔迹，但认不出是否写了数字，请核对"


# Ink is what is darker than this share of the paper round it; a pixel only this much darker
# (BOX_INK_WEAK) is ink too when it touches such ink: a light or thin pen's stroke stays whole.
BOX_INK_STRONG = 0.7
BOX_INK_WEAK = 0.82


def _writing_ink(grey: np.ndarray) -> np.ndarray:
    """The strip's ink as 0/1: clearly dark pixels, and the paler ones joined to them (hysteresis)."""
    import cv2

    strong = ink_mask(grey, contrast=BOX_INK_STRONG).astype(np.uint8)
    weak = ink_mask(grey, contrast=BOX_INK_WEAK).astype(np.uint8) | strong
    n, labels = cv2.connectedComponents(weak, connectivity=8)
    if n <= 1:
        return strong
    hit = np.zeros(n, bool)
    hit[np.unique(labels[strong > 0])] = True
    hit[0] = False
    return hit[labels].astype(np.uint8)


def _edge_bands(ink: np.ndarray, lines: tuple[np.ndarray, np.ndarray], search: int,
                grow: int) -> tuple[tuple[np.ndarray, np.ndarray], np.ndarray, int]:
    """Where the printed lines (``lines``: the reference's horizontal and upright lines, lined up
    with ``ink``) lie on the scan, and the writing on them: (0/1 mask of the scan's edge ink, 0/1
    mask of edge ink with writing on it, the edges' usual thickness in pixels).

    Along each line, position by position, the run of scan ink nearest the reference line (within
    ``search`` pixels) is measured. The lines are printed straight and equally thick, so where the
    run is no thicker than the strip's lines of that direction usually are, it is the line alone:
    the line's course is fitted through those places (a fax's or photo's line is thicker, wavier
    and a pixel or two off the reference), and taken away there and along the fit elsewhere.
    Where the run is clearly thicker along a stretch (a 2's foot on the bottom edge, a 0's side
    on an upright one) writing lies on the line: that stretch is the second mask. A line the scan
    does not show is taken as the reference grown by ``grow``."""
    import cv2

    bands, merged = [np.zeros_like(ink), np.zeros_like(ink)], np.zeros_like(ink)
    thick_all: list[float] = []
    for axis in (0, 1):  # 0: horizontal lines (measured down each column); 1: upright ones
        ref = lines[axis] if axis == 0 else lines[axis].T
        img = ink if axis == 0 else ink.T
        out, on_line = np.zeros_like(img), np.zeros_like(img)
        n, _labels, stats, _ = cv2.connectedComponentsWithStats(ref, connectivity=8)
        measured = []
        for i in range(1, n):
            x, y, w, h = (int(v) for v in stats[i, :4])
            y0, y1 = max(0, y - search), min(img.shape[0], y + h + search)
            tops, bots = _runs_across(img[y0:y1, x:x + w], y + h / 2.0 - y0, search, h + 2 * search - 1)
            measured.append((x, y, w, h, y0, tops, bots))
        every = np.concatenate([b - t for *_, t, b in measured]) if measured else np.zeros(0)
        every = every[~np.isnan(every)]
        if not len(every):
            for x, y, w, h, *_ in measured:
                out[max(0, y - grow):y + h + grow, x:x + w] = 1
            bands[axis] |= out if axis == 0 else out.T
            continue
        usual = float(np.median(every))  # writing lies on few of all the lines' positions
        for x, y, w, h, y0, tops, bots in measured:
            ok = ~np.isnan(tops)
            runs = bots - tops
            clean = ok & (runs <= usual + 1)
            at = np.nonzero(clean)[0]
            if len(at) < max(3, 0.15 * w):
                out[max(0, y - grow):y + h + grow, x:x + w] = 1
                continue
            mid = (tops + bots) / 2
            slope = 0.0
            if np.ptp(at) >= 0.3 * w:
                slope = float(np.clip(np.polyfit(at, mid[at], 1)[0], -0.1, 0.1))
            icpt = float(np.median(mid[at] - slope * at))
            thick = float(np.percentile(runs[clean], 90))
            thick_all.append(thick)
            fit = icpt + slope * np.arange(w)
            lo = np.floor(fit - thick / 2).astype(int) - 1
            hi = np.ceil(fit + thick / 2).astype(int) + 1
            lo[clean] = np.minimum(lo[clean], tops[clean].astype(int))
            hi[clean] = np.maximum(hi[clean], bots[clean].astype(int))
            rows = np.arange(out.shape[0])[:, None] - y0
            out[:, x:x + w] |= ((rows >= lo) & (rows < hi)).astype(out.dtype)
            # writing on the line: thicker than the line along a stretch, not just where a stroke
            # ends on it or crosses it (the crossing is given back by the caller's closing)
            thicker = ok & (runs >= usual + max(2.0, 0.5 * usual))
            thicker[:search + 1] = thicker[w - search - 1:] = False  # the corners: the other edge's ink
            # ... and hidden under it: a stroke beside the line, already whole outside the band
            # (a 2's foot just above the bottom edge), would get the edge stuck to it.
            beyond = np.maximum(0, lo - np.nan_to_num(tops, nan=0)) + np.maximum(0, np.nan_to_num(bots, nan=0) - hi)
            thicker &= beyond <= max(2.0, 0.5 * usual)
            for a, b in _stretches(thicker):
                if b - a >= max(4, 0.2 * w):
                    for j in range(a, b):
                        on_line[int(tops[j]) + y0:int(bots[j]) + y0, x + j] = 1
        bands[axis] |= out if axis == 0 else out.T
        merged |= on_line if axis == 0 else on_line.T
    thick = int(round(float(np.median(thick_all)))) + 2 if thick_all else 2 * grow + 1
    return (bands[0], bands[1]), merged, thick


def _line_kernels(length: int) -> list[np.ndarray]:
    """Straight structuring elements ``length`` pixels long in eight directions (every 22.5°)."""
    import cv2

    out = []
    r = (length - 1) / 2.0
    for k in range(8):
        a = np.pi * k / 8
        dx, dy = r * np.cos(a), r * np.sin(a)
        size = 2 * int(np.ceil(max(abs(dx), abs(dy)))) + 1
        c = size // 2
        kern = np.zeros((size, size), np.uint8)
        cv2.line(kern, (int(round(c - dx)), int(round(c - dy))), (int(round(c + dx)), int(round(c + dy))), 1, 1)
        out.append(kern)
    return out


def _runs_across(img: np.ndarray, centre: float, search: int, longest: int) -> tuple[np.ndarray, np.ndarray]:
    """Per column of ``img`` (0/1), the start and end (exclusive) row of the run of ink nearest row
    ``centre`` (NaN where none lies within ``search`` rows or the run is longer than ``longest``: a
    crossing line)."""
    h, w = img.shape
    ink = img.astype(bool)
    rows = np.arange(h)[:, None]
    near = np.argmin(np.where(ink, np.abs(rows + 0.5 - centre), np.inf), axis=0)  # nearest ink row
    has = ink.any(axis=0)
    blank = ~ink
    tops = np.where(blank & (rows < near), rows, -1).max(axis=0) + 1
    bots = np.where(blank & (rows > near), rows, h).min(axis=0)
    dist = np.maximum(0, np.maximum(tops - centre, centre - bots))
    good = has & (dist <= search) & (bots - tops <= longest)
    return np.where(good, tops, np.nan), np.where(good, bots, np.nan)


def _stretches(flags: np.ndarray) -> list[tuple[int, int]]:
    """The [start, end) ranges where ``flags`` is true."""
    d = np.diff(np.concatenate(([0], flags.astype(np.int8), [0])))
    return list(zip(np.nonzero(d == 1)[0].tolist(), np.nonzero(d == -1)[0].tolist(), strict=True))


# A handwritten digit recognised alone, as the line recogniser spells it (UKai-style 0 and 2).
_SINGLE_FIX = {"()": "0", "(0)": "0", "Q": "0", "D": "0", "!": "1", "?": "2"}
# In a line of boxed digits nothing but digits is written: the recogniser's ? is a 2, its Q a 0.
_BOX_LINE_FIX = str.maketrans({"?": "2", "Q": "0"})


def single_digit(text: str) -> str | None:
    """The digit a one-box reading shows, or None when it shows no single digit."""
    import unicodedata

    t = re.sub(r"[\s.,'`·]", "", unicodedata.normalize("NFKC", text or ""))
    t = _SINGLE_FIX.get(t, t)
    d = digits_only(t, allow_x=True)
    return d if len(d) == 1 else None


def boxed_text(f: Field, inked: Sequence[bool], digits: str) -> tuple[str | None, str]:
    """The value written in ``f``'s boxes from the digits read off its line, in box order: (text
    for ``interpret_hand``, "") or (None, why not). A date's month or day may be one digit in the
    second box of its pair; every other box must hold one digit."""
    n = sum(inked)
    if len(digits) != n:
        shown = v.mask_id(digits) if f.kind == Kind.ID_NUMBER else digits
        return None, f"{n}个格子有笔迹，却识别出{len(digits)}个数字（“{shown}”）"
    it = iter(digits)
    per_box = [next(it) if on else "" for on in inked]
    groups, pos, missing = [], 0, 0
    for size in f.box_groups():
        g = per_box[pos:pos + size]
        pos += size
        if f.kind == Kind.DATE and size == 2 and not g[0] and g[1]:
            g = ["0", g[1]]
        missing += sum(1 for c in g if not c)
        groups.append("".join(g))
    if missing:
        return None, f"有{missing}个格子没有写"
    if f.kind == Kind.DATE and len(groups) == 3:
        return f"{groups[0]}年{groups[1]}月{groups[2]}日", ""
    return "".join(groups), ""


# Dates further back than this before today are not candidates (an issue date long ago).
DATE_WINDOW_DAYS = 3 * 366


def _date_boxes(day, inked: Sequence[bool]) -> str | None:
    """The digits a date written as YYYYMMDD in 8 boxes puts in the ``inked`` boxes (a month or
    day below 10 may be one digit in the second box of its pair), or None when it cannot."""
    out = f"{day.year:04d}"
    if not all(inked[:4]):
        return None
    for value, (a, b) in ((day.month, inked[4:6]), (day.day, inked[6:8])):
        if a and b:
            out += f"{value:02d}"
        elif b and not a and value < 10:
            out += str(value)
        else:
            return None
    return out


# ---- a boxed field decoded against what it can hold (issue 15) ----------------------------------------
#
# Every written box's digit read by the digit readers (``digits.classify_many``) is the primary
# evidence; the OCR reading of each box alone and the OCR engines' readings of the whole line are
# independent, weaker evidence (a line that finds the wrong count of digits still counts, by its
# edit distance to each candidate, never as a veto). The field is decoded as a posterior over the
# values it can hold: a date over every date (the plausible window weighted first, other dates and
# a non-date as alternatives), an ID number over the strings its check digit allows, any other
# number box by box (a phone number in 11 boxes as a mobile or a landline number).
#
# Calibrated on DEV data only, never on the held-out writers (``scripts/calibrate_boxes.py``): the
# bench's dev writers (``python -m bench.scan --quick --boxes-only --boxes 48 --hands dev --only
# dpi200,phone,fax120``, seeds 0-7: 1,152 dates, 8,735 boxes) write MNIST validation digits the
# readers never trained on (``bench.hands.digit_bank("dev")``). The readers' reliability is counted
# box by box, on fax scans (below ``images.FAX_BELOW_DPI``) apart from the others (Beta(1, 1)-
# smoothed, non-decreasing in the network's probability); the OCR reliability and the edit cost
# maximise the log-probability of the written date (grid search). With the readers of digits
# VERSION 5 (trained on the drop-out boxes) and the drop-out boxes (forms/build_templates.py
# BOX_RGB): the best date right 1,077 of 1,152 times; at ACCEPT_POSTERIOR 654 of 768 dates of
# 200-dpi and phone scans taken (the most likely wrong date had 0.985), and at ACCEPT_POSTERIOR_FAX
# 221 of 384 of 120-dpi faxes (the most likely wrong 0.992), none wrong. (The VERSION 4 readers, on
# the same writers: 602 and 220, one of them wrong.) Recalibrate when the digit readers or the
# boxes change.
#
# How often the digit readers' reading of a box is right: when ``sure`` (5,416 of 5,416; on faxes
# 2,350 of 2,350), and otherwise by the network's probability of it, in the bins READER_P_EDGES make.
READER_SURE_RIGHT = 0.9998
READER_SURE_RIGHT_FAX = 0.9996
READER_P_EDGES = (0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995)
READER_RIGHT_BY_P = (0.333, 0.333, 0.51, 0.784, 0.91, 0.95, 0.969, 0.972, 0.972, 0.972)
READER_RIGHT_BY_P_FAX = (0.278, 0.429, 0.617, 0.872, 0.872, 0.901, 0.964, 0.973, 0.973, 0.983)
# A reading whose ink runs into an edge the scan shows (``BoxWriting.on_edge``: drop-out boxes a
# fax still shows, or boxes printed black) counts as right at most this often, however sure: a
# stroke along the edge may be gone (a 2 read as a sure 0), and the OCR engines read the same
# crops, so their agreement cannot give it back. (The tables above, counted on drop-out boxes,
# have no such boxes; on DEV's black-box faxes 68% of the boxes ran into an edge.)
READER_ON_EDGE_RIGHT = 0.9
# ... and so does a reading of a crop that lost a share of its ink as specks (``DigitGuess.broken``:
# a stroke broken up; on DEV 86 of 103 right). A reading
# the nearest references do not back (fewer than ``digits.SURE_VOTES`` votes) counts as right at
# most READER_FEW_VOTES_RIGHT however sure the network is (DEV, network 0.95 or more: 96 of 100;
# on faxes 84 of 90).
READER_FEW_VOTES_RIGHT = 0.951
READER_FEW_VOTES_RIGHT_FAX = 0.924
OCR_ALONE_RIGHT = 0.2  # an OCR reading of one box alone that shows a digit, as evidence (0.1: none)
LINE_EDIT_COST = 1.0  # log-likelihood lost per edit between an OCR line reading and a candidate
ACCEPT_POSTERIOR = 0.99  # a value is taken (or proposed as a plain confirmation) at or above this
# ... on a fax (below images.FAX_BELOW_DPI): a loop filled in reads as another digit surely (an 8 as
# a 9: a held-out bench date taken wrong at 0.99), and DEV's most likely wrong fax date had 0.987
ACCEPT_POSTERIOR_FAX = 0.995
ALTERNATIVE_POSTERIOR = 0.02  # another value at least this likely is named in the reason
# Prior of a date on a returned form: within LATE_AFTER_ISSUE_DAYS of the issue (DOMAIN: served,
# signed, received within weeks) each day 1; later up to today each day LATE_DAY_PRIOR; the total
# OUTSIDE_PRIOR spread over the dates within OUTSIDE_YEARS around the window (a year written wrong,
# a date in the future misread); NOT_A_DATE_PRIOR for something that is no date at all.
LATE_DAY_PRIOR = 0.2
OUTSIDE_PRIOR = 0.05
OUTSIDE_YEARS = 3
NOT_A_DATE_PRIOR = 0.01
# GB 11643: the weights of an ID number's first 17 digits and the check character per remainder.
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"


@dataclass(frozen=True)
class BoxDecode:
    """A boxed field decoded: ``digits`` (one per written box) of the most likely value, ``text`` it
    gives for ``interpret_hand`` (None when the boxes hold no value of the field's form),
    ``posterior`` of that value, ``alternatives``: the next values [(text, posterior)], ``doubtful``:
    [(box, other digits)] (box 1-based among all the field's boxes) where the alternatives differ."""

    digits: str
    text: str | None
    posterior: float
    alternatives: tuple[tuple[str, float], ...] = ()
    doubtful: tuple[tuple[int, tuple[str, ...]], ...] = ()
    accept: float = ACCEPT_POSTERIOR  # the posterior it is taken at (on a fax ACCEPT_POSTERIOR_FAX)

    @property
    def sure(self) -> bool:
        return self.text is not None and self.posterior >= self.accept


def reader_right(g: Any, fax: bool, *, on_edge: bool = False) -> float:
    """How often the digit readers' reading ``g`` (a ``DigitGuess``) is right, as on DEV: sure (never
    on an edge or with ink dropped), or by the network's probability of it (``READER_P_EDGES``; at
    most ``READER_FEW_VOTES_RIGHT`` without the references' votes); on a fax or not."""
    on_edge = on_edge or g.broken
    if g.sure and not on_edge:
        return READER_SURE_RIGHT_FAX if fax else READER_SURE_RIGHT
    right = (READER_RIGHT_BY_P_FAX if fax else READER_RIGHT_BY_P)[reader_bin(g)]
    if g.votes < digit_model.SURE_VOTES:
        right = min(right, READER_FEW_VOTES_RIGHT_FAX if fax else READER_FEW_VOTES_RIGHT)
    return min(right, READER_ON_EDGE_RIGHT) if on_edge else right


def reader_bin(g: Any) -> int:
    """The bin of ``READER_P_EDGES`` the network's probability of its reading ``g`` falls in."""
    return int(np.searchsorted(READER_P_EDGES, float(g.probs[g.digit]), side="right"))


def accept_posterior(dpi: float) -> float:
    """The posterior a boxed value is taken at on a scan of ``dpi``."""
    return ACCEPT_POSTERIOR_FAX if is_fax(dpi) else ACCEPT_POSTERIOR


def box_likelihoods(guesses: Sequence[Any], alone: Sequence[str | None],
                    on_edge: Sequence[int] = (), *, fax: bool = False) -> list[np.ndarray]:
    """Per written box, how likely it shows each digit 0-9 given the digit readers (``guesses``:
    ``DigitGuess`` or None) and the OCR reading of the box alone (``alone``: a digit or None),
    normalised. The readers' network and nearest references share their features: they count
    once, as the readers' reading right as often as it was on DEV (``reader_right``; on a fax,
    ``fax``, as on DEV's faxes: a loop closed up or a stroke run into another makes a reading there
    wrong more often).
    ``on_edge``: positions (0-based among the written boxes) whose ink runs into a printed edge:
    their reading counts as not sure however sure the readers are (a stroke may be lost)."""
    out = []
    for k, g in enumerate(guesses):
        if g is None:
            p = np.full(10, 0.1)
        else:
            right = reader_right(g, fax, on_edge=k in on_edge)
            # the other digits as the nearest references and the network share them
            rest = (g.counts.astype(np.float64) + 0.5) / (g.counts.sum() + 5.0) + g.probs.astype(np.float64)
            rest[g.digit] = 0.0
            p = rest / rest.sum() * (1 - right)
            p[g.digit] = right
        a = alone[k] if k < len(alone) else None
        if a is not None and a.isdigit():
            ocr = np.full(10, (1 - OCR_ALONE_RIGHT) / 9)
            ocr[int(a)] = OCR_ALONE_RIGHT
            p = p * ocr
        out.append(p / p.sum())
    return out


def _edits(a: str, b: str) -> int:
    """Levenshtein distance (insertions, deletions, substitutions)."""
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]




def decode_boxes(f: Field, inked: Sequence[bool], guesses: Sequence[Any], alone: Sequence[str | None],
                 lines: Sequence[str], ctx: ReadContext, *, dpi: float = 0.0,
                 on_edge: Sequence[int] = ()) -> BoxDecode | None:
    """``f``'s boxes decoded (see the section's comment): ``guesses`` and ``alone`` one per written
    box, ``lines``: each OCR engine's digits read off the composed line, ``dpi`` the scan's
    resolution (how likely a written digit is lost: ``lost_digit_odds``). None when the written
    boxes fit no value of the field's form. ``on_edge``: written boxes (1-based among all the
    field's boxes) whose ink runs into a printed edge (``BoxWriting.on_edge``)."""
    written = [i + 1 for i, on in enumerate(inked) if on]
    like = box_likelihoods(guesses, alone, [written.index(b) for b in on_edge if b in written], fax=is_fax(dpi))
    accept = accept_posterior(dpi)
    if f.kind == Kind.DATE and f.box_groups() == (4, 2, 2) and len(inked) == 8:
        return _lost_digit(_decode_date(inked, like, lines, ctx, accept), inked, dpi)
    boxes_at = [i for i, on in enumerate(inked) if on]
    n = len(like)
    if f.kind == Kind.ID_NUMBER and len(inked) == 18 and n == 18:
        return _decode_id(like, alone, lines, accept)
    logs = [np.log(np.maximum(p, 1e-12)) for p in like]
    for line in lines:  # a line with one digit per written box: each digit a box's evidence
        if len(line) == n and line.isdigit():
            for lp, c in zip(logs, line, strict=True):
                lp -= LINE_EDIT_COST
                lp[int(c)] += LINE_EDIT_COST
    # the forms the number can take, as the digits allowed in its first boxes: in 11 boxes a phone
    # number is a mobile number (1[3-9] and 9 digits) or a landline with its area code (0[1-9]...)
    forms: list[tuple[set[int], ...]] = [()]
    if f.kind == Kind.PHONE and n == 11 and len(inked) == 11:
        forms = [({1}, set(range(3, 10))), ({0}, set(range(1, 10)))]
    scored = []
    for form in forms:
        masked = [lp.copy() for lp in logs]
        for k, allowed in enumerate(form):
            masked[k][[d for d in range(10) if d not in allowed]] = -np.inf
        mass = sum(float(np.logaddexp.reduce(lp)) for lp in masked)
        scored.append((sum(float(lp.max()) for lp in masked), mass, masked))
    total = float(np.logaddexp.reduce([m for _b, m, _l in scored]))
    top, _mass, masked = max(scored, key=lambda t: t[0])
    post = [np.exp(lp - lp.max()) / np.exp(lp - lp.max()).sum() for lp in masked]
    best = "".join(str(int(p.argmax())) for p in post)
    posterior = float(np.exp(top - total))
    alts, doubtful = [], []
    for k, p in enumerate(post):
        order = np.argsort(-p)
        others = tuple(str(int(d)) for d in order[1:3] if p[d] / p.max() * posterior >= ALTERNATIVE_POSTERIOR)
        if others:
            doubtful.append((boxes_at[k] + 1, others))
            alts += [(best[:k] + d + best[k + 1:], float(p[int(d)] / p.max() * posterior)) for d in others]
    for b, _m, other in scored:  # the best number of another form
        if b < top and np.exp(b - total) >= ALTERNATIVE_POSTERIOR:
            alts.append(("".join(str(int(lp.argmax())) for lp in other), float(np.exp(b - total))))
    if not doubtful and posterior < accept:
        doubtful = list(_weakest(best, post, boxes_at))
    text, _why = boxed_text(f, inked, best)
    alts.sort(key=lambda t: -t[1])
    return BoxDecode(best, text, posterior, tuple(alts[:3]), tuple(doubtful), accept)


@functools.lru_cache(maxsize=32)
def _date_candidates(inked: tuple[bool, ...], lo, hi) -> tuple[tuple, np.ndarray]:
    """The dates from ``lo`` to ``hi`` the ``inked`` boxes can hold and their digits (one row each)."""
    import datetime as dt

    days, rows = [], []
    day = lo
    while day <= hi:
        digits = _date_boxes(day, inked)
        if digits is not None:
            days.append(day)
            rows.append([int(c) for c in digits])
        day += dt.timedelta(days=1)
    return tuple(days), np.array(rows, dtype=np.int64).reshape(len(rows), sum(inked))


def _edits_many(line: str, cands: np.ndarray) -> np.ndarray:
    """Levenshtein distance from ``line`` to each row of digits of ``cands`` (vectorised)."""
    n = cands.shape[1]
    prev = np.tile(np.arange(n + 1), (len(cands), 1))
    for i, c in enumerate(line, 1):
        cur = np.empty_like(prev)
        cur[:, 0] = i
        same = cands == (int(c) if c.isdigit() else -1)
        for j in range(1, n + 1):
            cur[:, j] = np.minimum(np.minimum(prev[:, j] + 1, cur[:, j - 1] + 1), prev[:, j - 1] + ~same[:, j - 1])
        prev = cur
    return prev[:, n]


def _decode_date(inked: Sequence[bool], like: Sequence[np.ndarray], lines: Sequence[str],
                 ctx: ReadContext, accept: float = ACCEPT_POSTERIOR) -> BoxDecode | None:
    import datetime as dt
    import math

    from parsers.scan.handwriting import LATE_AFTER_ISSUE_DAYS

    end = ctx.today or dt.date.today()
    start = min(ctx.issued_on or end - dt.timedelta(days=366), end)
    start = max(start, end - dt.timedelta(days=DATE_WINDOW_DAYS))
    lo = dt.date(max(1, start.year - OUTSIDE_YEARS), 1, 1)
    hi = dt.date(end.year + OUTSIDE_YEARS, 12, 31)
    days, cands = _date_candidates(tuple(bool(x) for x in inked), lo, hi)
    if not days:
        return None
    logs = np.log(np.maximum(np.array(like), 1e-12))
    edits = sum((_edits_many(line, cands) for line in lines), np.zeros(len(days), np.int64))
    score = logs[np.arange(cands.shape[1])[None, :], cands].sum(axis=1) - LINE_EDIT_COST * edits
    offset = np.array([(d - start).days for d in days])
    inside = (offset >= 0) & (np.array([d <= end for d in days]))
    late = inside & (offset >= LATE_AFTER_ISSUE_DAYS)
    # priors: each plausible early day 1 (late ones LATE_DAY_PRIOR); OUTSIDE_PRIOR of their mass
    # spread over the other dates; NOT_A_DATE_PRIOR of it for no date at all. Boxes that fit no
    # plausible date (a box lost) still give the dates they fit, for a person to see why
    mass_in = float((inside & ~late).sum() + LATE_DAY_PRIOR * late.sum()) or 1.0
    outside = ~inside
    score = score + np.where(late, math.log(LATE_DAY_PRIOR), 0.0)
    score = score + np.where(outside, math.log(OUTSIDE_PRIOR * mass_in / max(int(outside.sum()), 1)), 0.0)
    # not a date: any digits at all (each box's likelihoods sum to 1 over 10 digits), the lines
    # counted as agreeing as well as with the best date (generous to it)
    junk = math.log(NOT_A_DATE_PRIOR * mass_in) + len(like) * math.log(0.1) - LINE_EDIT_COST * float(edits.min())
    total = float(np.logaddexp(np.logaddexp.reduce(score), junk))
    order = np.argsort(-score)
    post = np.exp(score[order] - total)
    best_day, best = days[order[0]], "".join(str(int(c)) for c in cands[order[0]])
    posterior = float(post[0])
    alts = tuple((v.format_date(days[i]), float(q)) for i, q in zip(order[1:4], post[1:4], strict=True)
                 if q >= ALTERNATIVE_POSTERIOR)
    written = [i for i, on in enumerate(inked) if on]
    doubt: dict[int, list[str]] = {}
    for i, q in zip(order[1:], post[1:], strict=False):
        if q < ALTERNATIVE_POSTERIOR:
            break
        for k, (a, b) in enumerate(zip(best, (str(int(c)) for c in cands[i]), strict=True)):
            if a != b and b not in doubt.setdefault(written[k] + 1, []):
                doubt[written[k] + 1].append(b)
    doubtful = tuple((k, tuple(v)) for k, v in sorted(doubt.items()) if v)
    if not doubtful and posterior < accept:
        doubtful = _weakest(best, like, written)
    text = f"{best_day.year}年{best_day.month:02d}月{best_day.day:02d}日"
    return BoxDecode(best, text, posterior, alts, doubtful, accept)


# A month or day below 10 may be written as one digit in the second box of its pair, the first left
# empty; but an empty first box may also be a digit the scan lost (a pale pen, a fax: the crops of
# the bench's 120-dpi faxes lose about 3% of written boxes, at 200 dpi and more next to none). How
# likely a written box comes out empty (LOST_BOX_RISK by resolution) against how often a month or
# day below 10 is written alone (SINGLE_DIGIT_SHARE; people mostly write 05): each value the lost
# digit could make (10-12 for a month, 10-31 for a day) weighs LOST_BOX_RISK / SINGLE_DIGIT_SHARE
# against the value read, so on a fax a day written alone is never taken without a person, and on a
# clean scan only a very sure one is.
LOST_BOX_RISK = ((FAX_BELOW_DPI, 0.03), (250.0, 0.003), (float("inf"), 0.001))  # (below dpi, risk); dpi 0: the middle
SINGLE_DIGIT_SHARE = 0.3


def lost_digit_odds(dpi: float) -> float:
    """The weight of each value a lost first digit could make, against the value read."""
    risk = LOST_BOX_RISK[1][1] if dpi <= 0 else next(r for below, r in LOST_BOX_RISK if dpi < below)
    return risk / SINGLE_DIGIT_SHARE


def _lost_digit(dec: BoxDecode | None, inked: Sequence[bool], dpi: float) -> BoxDecode | None:
    """``dec`` (a date in 8 boxes) with its posterior shared with the dates a lost first digit of its
    month or day would make; when that leaves it unsure, each such box is named with the digits it
    may have held and those dates are among the alternatives."""
    import calendar
    import dataclasses
    import datetime as dt

    if dec is None or dec.text is None or len(dec.digits) != sum(inked):
        return dec
    year, month, day = int(dec.text[:4]), int(dec.text[5:7]), int(dec.text[8:10])
    lost: list[tuple[int, str, dt.date]] = []
    for box, value, top in ((5, month, 12), (7, day, calendar.monthrange(year, month)[1])):
        if inked[box - 1] or not inked[box] or value >= 10:
            continue
        for t in range(1, 4):
            if 10 * t + value <= top:
                try:
                    when = dt.date(year, 10 * t + value, day) if box == 5 else dt.date(year, month, 10 * t + value)
                except ValueError:  # 31 October with its month's 1 lost: no 31 November
                    continue
                lost.append((box, str(t), when))
    if not lost:
        return dec
    odds = lost_digit_odds(dpi)
    share = 1.0 + len(lost) * odds
    posterior = dec.posterior / share
    if posterior >= dec.accept:
        return dataclasses.replace(dec, posterior=posterior)
    doubt = dict(dec.doubtful)
    for box, t, _when in lost:
        doubt[box] = tuple(dict.fromkeys((*doubt.get(box, ()), t)))
    alts = [(text, p / share) for text, p in dec.alternatives]
    alts += [(v.format_date(when), dec.posterior * odds / share) for _b, _t, when in lost]
    alts = sorted((a for a in alts if a[1] >= ALTERNATIVE_POSTERIOR), key=lambda a: -a[1])[:3]
    return dataclasses.replace(dec, posterior=posterior, alternatives=tuple(alts),
                               doubtful=tuple(sorted(doubt.items())))


# A box whose digit in the best value has less than this probability on its own is named when no
# single other value stands out (the doubt spread over many).
WEAK_BOX = 0.95


def _weakest(best: str, like: Sequence[np.ndarray], written: Sequence[int]) -> tuple[tuple[int, tuple[str, ...]], ...]:
    """The boxes (1-based among all) the best value's doubt comes from: those whose digit has less
    than ``WEAK_BOX`` probability alone, or else the least sure one."""
    p = [float(lk[int(c)]) for lk, c in zip(like, best, strict=True)]
    weak = [k for k, q in enumerate(p) if q < WEAK_BOX] or [int(np.argmin(p))]
    return tuple((written[k] + 1, ()) for k in weak)


def _decode_id(like: Sequence[np.ndarray], alone: Sequence[str | None], lines: Sequence[str],
               accept: float = ACCEPT_POSTERIOR) -> BoxDecode:
    """An ID number over the 18-character strings whose check character fits (GB 11643): the most
    likely one by dynamic programming over the weighted sum's remainder, its share of all of them."""
    logs = [np.log(np.maximum(p, 1e-12)) for p in like]
    for line in lines:
        if len(line) == 18:
            for lp, c in zip(logs[:17], line[:17], strict=True):
                if c.isdigit():
                    lp -= LINE_EDIT_COST
                    lp[int(c)] += LINE_EDIT_COST
    # the last box may hold X: the digit readers know no X, an OCR reading of it does
    last = {str(d): float(logs[17][d]) for d in range(10)}
    x_seen = (len(alone) > 17 and alone[17] == "X") or any(len(line) == 18 and line[17] == "X" for line in lines)
    last["X"] = float(np.log(0.9 if x_seen else 0.1 / 11))
    # forward (sum) and Viterbi (max) over the remainder of the weighted sum
    fwd = np.full(11, -np.inf)
    fwd[0] = 0.0
    vit = fwd.copy()
    back: list[np.ndarray] = []
    for lp, w in zip(logs[:17], _ID_WEIGHTS, strict=True):
        nf, nv = np.full(11, -np.inf), np.full(11, -np.inf)
        bp = np.zeros((11, 2), np.int64)
        for s in range(11):
            if fwd[s] == -np.inf:
                continue
            for d in range(10):
                t = (s + d * w) % 11
                nf[t] = np.logaddexp(nf[t], fwd[s] + lp[d])
                if vit[s] + lp[d] > nv[t]:
                    nv[t], bp[t] = vit[s] + lp[d], (s, d)
        fwd, vit = nf, nv
        back.append(bp)
    ends = [(vit[s] + last[_ID_CHECK[s]], s) for s in range(11)]
    total = float(np.logaddexp.reduce([fwd[s] + last[_ID_CHECK[s]] for s in range(11)]))
    best_score, s = max(ends)
    chars = [_ID_CHECK[s]]
    for bp in reversed(back):
        s, d = bp[s]
        chars.append(str(d))
    best = "".join(reversed(chars))
    posterior = float(np.exp(best_score - total))
    # boxes where the check character moved the reading off the box's own best, or that are unsure
    doubtful = tuple((k + 1, ()) for k, p in enumerate(like)
                     if float(p.max()) < ACCEPT_POSTERIOR or (best[k].isdigit() and int(p.argmax()) != int(best[k])))
    if not doubtful and posterior < accept and best.isdigit():
        doubtful = _weakest(best, like, range(18))
    return BoxDecode(best, best, posterior, (), doubtful, accept)


def decode_reason(f: Field, d: BoxDecode) -> str:
    """Why a decoded value is not sure: the doubtful boxes, what else they may hold and the other
    values (dates as people write them; never an ID number in full)."""
    if d.text is None:
        return "格子里的数字拼不成有效的" + ("日期" if f.kind == Kind.DATE else "号码") + "，请核对原件"
    boxes = "、".join(str(k) for k, _o in d.doubtful)
    head = f"第{boxes}个数字不确定" if boxes else "逐格识别把握不足"
    if f.kind == Kind.DATE:
        y, m, dd = d.text.replace("年", " ").replace("月", " ").replace("日", "").split()
        shown = f"{int(y)}年{int(m)}月{int(dd)}日"
        others = "、".join(t for t, _p in d.alternatives)
        tail = f"（读作{shown}" + (f"，也可能是{others}" if others else "") + f"，把握{d.posterior:.0%}）"
    elif f.kind == Kind.ID_NUMBER:
        tail = f"（把握{d.posterior:.0%}）"
    else:
        alts = "；".join(f"第{k}格也可能是{'或'.join(o)}" for k, o in d.doubtful if o)
        tail = f"（读作{d.digits}" + (f"，{alts}" if alts else "") + f"，把握{d.posterior:.0%}）"
    return head + tail + "，请核对原件"


# A confirmation item whose digits the digit readers do not all vouch for gets at most this
# confidence (below the threshold: the item is a doubt to resolve, not a value to confirm).
UNCORROBORATED_CONFIDENCE = 0.6


def read_boxed(path: str, f: Field, got: OcrText, bw: BoxWriting, singles: Sequence[OcrText],
                fallback: OcrEngine | None, ctx: ReadContext, common: dict) -> FieldReading:
    """A number written one digit per character box. With the digit readers (``digits.py``) the
    field is decoded against what it can hold (``decode_boxes``: the readers primary, the OCR
    line and each box read alone by OCR (``singles``) weaker evidence) and taken only when that
    value's posterior is at least ``ACCEPT_POSTERIOR``; otherwise it is proposed for review with the
    doubtful boxes and the alternatives named.

    Without the readers, the digits read off the composed line must fill the written boxes
    exactly, then validation as for any handwriting (``interpret_hand``); a value whose digits do
    not all agree with the boxes read alone goes to review however confident the line was (a phone
    number has no checksum, and 4 read as 1 in a date can still be a plausible date)."""
    allow_x = f.kind == Kind.ID_NUMBER
    if digit_model.available() and bw.digits and len(bw.digits) == sum(bw.inked):
        return _read_decoded(path, f, got, bw, singles, fallback, ctx, common)

    def attempt(t: OcrText) -> tuple[Any, float, str, str, str]:
        text, why = boxed_text(f, bw.inked, digits_only(t.text.translate(_BOX_LINE_FIX), allow_x=allow_x))
        if text is None:
            return None, min(float(t.confidence), 0.3), "invalid", why, t.text
        value, conf, status, reason = interpret_hand(f, OcrText(text, t.confidence), ctx)
        return value, conf, status, reason, text

    value, conf, status, reason, text = attempt(got)
    if (status != "read" or conf < ctx.threshold) and fallback is not None and bw.line is not None:
        try:
            other = recognize(fallback, bw.line)
        except OcrFailed as e:
            log.warning("fallback OCR failed on %s: %s", path, e.message)
        else:
            second = attempt(other)
            if second[2] == "read" and (status != "read" or second[1] > conf):
                value, conf, status, reason, text = second
    if status == "read" and singles:
        line = digits_only(text, allow_x=allow_x)
        # one digit per box (a date's month "09" padded from a 9 written alone: its 0 is no box's)
        written = [c for c, on in zip(line.ljust(len(bw.inked)), bw.inked, strict=False) if on]
        alone = [single_digit(t.text) for t in singles]
        # A box read alone as another digit contradicts the line; one read as no digit at all
        # (a lone 0 comes back as "()" or "Q" more often than not) neither confirms nor contradicts.
        differ = [i + 1 for i, (a, b) in enumerate(zip(written, alone, strict=False)) if b is not None and a != b]
        if differ or len(written) != len(alone):
            conf = min(conf, 0.6)
            reason = "逐格识别与整行识别不一致（第" + "、".join(map(str, differ)) + "个数字），请核对"
    if bw.doubtful:  # the reason that matters most: not even the count of digits is known
        conf = min(conf, 0.6)
        reason = doubt_reason(bw)
    confirm = status == "read" and (f.confirm or f.kind in CONFIRM_KINDS)
    if confirm and not reason:
        # A value a person is only asked to confirm must have every written box's digit vouched
        # for by the digit readers too (a reviewer takes a plain confirmation as checked): here
        # there are none.
        conf = min(conf, UNCORROBORATED_CONFIDENCE)
        reason = "逐格识别未能核对每个格子的数字，请核对原件"
    return _boxed_reading(path, f, status, value, text, conf, reason, confirm, ctx, common)


def edge_doubt(bw: BoxWriting, guesses: Sequence[Any]) -> tuple[int, ...]:
    """The written boxes (1-based) whose reading is never sure alone: ``bw.on_edge`` (a fax), and
    those whose digit, read as it is, runs into an edge along which a lost stroke would make another
    digit (``BOX_EDGE_LOOKALIKES``)."""
    written = [k + 1 for k, on in enumerate(bw.inked) if on]
    read = {b: g.digit for b, g in zip(written, guesses, strict=False) if g is not None}
    looks = {b for b, edge in bw.edges if read.get(b) in BOX_EDGE_LOOKALIKES[edge]}
    return tuple(sorted(set(bw.on_edge) | looks))


def _read_decoded(path: str, f: Field, got: OcrText, bw: BoxWriting, singles: Sequence[OcrText],
                  fallback: OcrEngine | None, ctx: ReadContext, common: dict) -> FieldReading:
    """``read_boxed`` with the digit readers: the posterior decoding (``decode_boxes``); the second
    OCR engine's line is asked for only when the value is not sure without it."""
    allow_x = f.kind == Kind.ID_NUMBER
    guesses = digit_model.classify_many(bw.digits)
    alone = [single_digit(t.text) for t in singles]
    lines = [digits_only(got.text.translate(_BOX_LINE_FIX), allow_x=allow_x)]
    on_edge = edge_doubt(bw, guesses)
    dec = decode_boxes(f, bw.inked, guesses, alone, lines, ctx, dpi=bw.dpi, on_edge=on_edge)
    if (dec is None or not dec.sure) and fallback is not None and bw.line is not None:
        try:
            other = recognize(fallback, bw.line)
        except OcrFailed as e:
            log.warning("fallback OCR failed on %s: %s", path, e.message)
        else:
            lines.append(digits_only(other.text.translate(_BOX_LINE_FIX), allow_x=allow_x))
            dec = decode_boxes(f, bw.inked, guesses, alone, lines, ctx, dpi=bw.dpi, on_edge=on_edge)
    if dec is None or dec.text is None:
        _text, why = boxed_text(f, bw.inked, lines[0])
        value, conf, status, text = None, 0.3, "invalid", ""
        reason = why or decode_reason(f, dec or BoxDecode("", None, 0.0))
    else:
        text = dec.text
        value, conf, status, reason = interpret_hand(f, OcrText(text, dec.posterior), ctx)
        if status == "read":
            conf = dec.posterior
        if not dec.sure:
            conf = min(conf, UNCORROBORATED_CONFIDENCE)
            reason = "；".join(r for r in (reason, decode_reason(f, dec)) if r)
    if bw.doubtful:  # the reason that matters most: not even the count of digits is known
        conf = min(conf, UNCORROBORATED_CONFIDENCE)
        reason = doubt_reason(bw)
    confirm = status == "read" and not bw.doubtful and (f.confirm or f.kind in CONFIRM_KINDS)
    return _boxed_reading(path, f, status, value, text, conf, reason, confirm, ctx, common)


def _boxed_reading(path: str, f: Field, status: str, value: Any, text: str, conf: float, reason: str,
                   confirm: bool, ctx: ReadContext, common: dict) -> FieldReading:
    """A boxed field's reading from what ``read_boxed`` found: low below the threshold, the
    confirmation reason when nothing else is said, an ID number masked in its text."""
    low = status == "read" and conf < ctx.threshold
    if low and not reason:
        reason = f"识别把握不足（{conf:.2f}）"
    if confirm and not reason:
        reason = confirm_reason(f)
    if f.kind == Kind.ID_NUMBER:
        text = v.mask_id(text) if text else text
    return FieldReading(path, f.kind.value, "hand", "low" if low else status, jsonable(value), text, conf,
                        status != "read" or low or confirm, reason, confirm=confirm, **common)


# ---- tick boxes from the issued PDF -------------------------------------------------------------------

def tick_boxes_from_pdf(pdf: bytes, geometry: Mapping) -> dict[int, dict[str, list[BBox]]]:
    """Where the printed tick boxes (☐/☑) of every field sit, from the issued PDF's characters:
    {page_no: {path: [bbox_pt, ...]}} in reading order (the order of the field's choices)."""
    with PDFIUM_LOCK:  # pdfium is not thread-safe (forms/pdfium_lock.py)
        return _tick_boxes_from_pdf(pdf, geometry)


def _tick_boxes_from_pdf(pdf: bytes, geometry: Mapping) -> dict[int, dict[str, list[BBox]]]:
    import pypdfium2 as pdfium

    from forms.errors import UnreadableDocument

    try:
        doc = pdfium.PdfDocument(bytes(pdf))
    except pdfium.PdfiumError as e:
        raise UnreadableDocument(f"签发的 PDF 无法读取：{e}") from e
    out: dict[int, dict[str, list[BBox]]] = {}
    try:
        pages = geometry.get("pages") or []
        for i in range(min(len(doc), len(pages))):
            page = doc[i]
            height = float(page.get_size()[1])
            tp = page.get_textpage()
            try:
                chars = []
                for k in range(tp.count_chars()):
                    ch = tp.get_text_range(k, 1)
                    if ch and ch in BOX_CHARS:
                        left, bottom, right, top = tp.get_charbox(k)
                        chars.append((left, height - top, right, height - bottom))
            finally:
                tp.close()
            fields = pages[i].get("fields") or {}
            found: dict[str, list[BBox]] = {}
            for b in chars:
                cx, cy = (b[0] + b[2]) / 2, (b[1] + b[3]) / 2
                for path, rec in fields.items():
                    x0, y0, x1, y1 = rec["bbox"]
                    if x0 <= cx <= x1 and y0 <= cy <= y1:
                        found.setdefault(path, []).append(tuple(round(float(x), 2) for x in b))
                        break
            for path in found:
                found[path].sort(key=lambda b: (round(b[1] / 6), b[0]))
            out[i + 1] = found
    finally:
        doc.close()
    return out
