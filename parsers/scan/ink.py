"""Printed values compared ink for ink with the issued PDF rendered at the crop resolution."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from forms.errors import UnreadableDocument
from parsers.align import DEFAULT_CROP_DPI
from parsers.images import CorruptImage, ink_mask, render_pdf, to_gray

log = logging.getLogger(__name__)

# ---- printed values compared ink for ink with the issued PDF ------------------------------------------

# How far (points) the scan crop may sit off the rendered reference after alignment: the shift is
# searched within this margin.
INK_SEARCH_PT = 2.5
# Tolerance (pixels at the crop resolution) for stroke position and thickness differences.
INK_TOLERANCE_PX = 1
# Each character-sized window may sit up to this many pixels off the field's best shift (residual
# skew, scale and resampling differ along a long value).
INK_LOCAL_PX = 2
# Scores (see ``compare_ink``), measured with bench/scan.py's look-alike forgeries (国→固, 学→字,
# 华→毕, 梅→海, 日→曰 …) on 2 notices × 5 degradations: genuine print on flatbed / 200 dpi / JPEG
# scores 0.00-0.05 (95th percentile), a few fields up to 0.48; phone photos and faxes much more
# (fax up to 2.4: binarised strokes thicken); a look-alike scores 0.23 and up, any other changed
# character 0.7 and up. So: below INK_SURE the print is taken as issued without OCR; anything else
# is recognised and must read exactly as issued, or it goes to review. INK_AGREE only words the
# reason ("same print, small differences" vs "differs").
INK_SURE = 0.15
INK_AGREE = 0.65
# A field whose score is at least INK_AGREE and this many times the page's median score differs
# beyond the page's scanning noise: it goes to review even when OCR reads the issued text (OCR
# reads 斑 as 班, 曰 as 日). On clean scans that is any score from 0.65; on faxes and photos, whose
# genuine print scores higher, correspondingly more.
INK_OUTLIER = 4.0


class ReferencePages:
    """The issued PDF's pages rendered (grey) at the crop resolution, rendered once per page and
    kept: printed values on a scan are compared with the same crop of the issued page.

    Thread-safe: pdfium runs under ``PDFIUM_LOCK`` and the cache under its own lock."""

    def __init__(self, pdf: bytes, *, dpi: float = DEFAULT_CROP_DPI):
        self._pdf = bytes(pdf)
        self.dpi = float(dpi)
        self._pages: dict[int, np.ndarray] = {}
        self._lock = threading.Lock()

    def page(self, page_no: int) -> np.ndarray:
        """Page ``page_no`` (1-based) as a grey uint8 image at ``dpi``."""
        with self._lock:
            got = self._pages.get(page_no)
            if got is None:
                got = self._pages[page_no] = self._render(page_no)
            return got

    def _render(self, page_no: int) -> np.ndarray:
        try:
            return render_pdf(self._pdf, dpi=self.dpi, pages=[page_no], grey=True, name="签发的 PDF")[0]
        except CorruptImage as e:
            raise UnreadableDocument(e.message) from e

    def crop(self, page_no: int, bbox_pt: Sequence[float], pad_pt: float = 0.0) -> np.ndarray:
        """The box (grown by ``pad_pt``) cut from the rendered page, sampled like ``Aligned.crop``."""
        page = self.page(page_no)
        f = 72.0 / self.dpi
        x0, y0, x1, y1 = (float(x) for x in bbox_pt)
        x0, y0, x1, y1 = x0 - pad_pt, y0 - pad_pt, x1 + pad_pt, y1 + pad_pt
        w, h = max(1, int(round((x1 - x0) / f))), max(1, int(round((y1 - y0) / f)))
        c0, r0 = int(round(x0 / f)), int(round(y0 / f))
        out = np.full((h, w), 255, np.uint8)
        rs, cs = max(0, r0), max(0, c0)
        re_, ce = min(page.shape[0], r0 + h), min(page.shape[1], c0 + w)
        if re_ > rs and ce > cs:
            out[rs - r0:re_ - r0, cs - c0:ce - c0] = page[rs:re_, cs:ce]
        return out


def _without_rules(ink: np.ndarray) -> np.ndarray:
    """Drop cell borders and underlines (long straight strokes) from a 0/1 ink mask: they are
    not the value, and a border a pixel off would swamp the comparison."""
    import cv2

    h, w = ink.shape
    horiz = cv2.morphologyEx(ink, cv2.MORPH_OPEN, np.ones((1, max(50, w // 4)), np.uint8))
    vert = cv2.morphologyEx(ink, cv2.MORPH_OPEN, np.ones((max(40, int(0.75 * h)), 1), np.uint8))
    lines = cv2.dilate(horiz | vert, np.ones((3, 3), np.uint8))
    return ink & (1 - lines)


def _line_height(ink: np.ndarray) -> int:
    """Height (pixels) of the tallest run of inked rows: one line of print, one character high,
    also when a long value wraps onto two lines."""
    rows = ink.any(axis=1).astype(np.int8)
    edges = np.diff(np.concatenate(([0], rows, [0])))
    starts, ends = np.nonzero(edges == 1)[0], np.nonzero(edges == -1)[0]
    return int((ends - starts).max()) if len(starts) else int(ink.shape[0])


def ink_shift(scan_ink: np.ndarray, ref_ink: np.ndarray) -> tuple[int, int]:
    """Where (dx, dy) the reference ink lines up best inside the larger scan ink: normalised
    cross-correlation of the two blurred 0/1 masks."""
    import cv2

    blur_s = cv2.GaussianBlur(scan_ink.astype(np.float32), (0, 0), 1.5)
    blur_r = cv2.GaussianBlur(ref_ink.astype(np.float32), (0, 0), 1.5)
    if float(blur_s.max()) <= 0 or float(blur_r.max()) <= 0:
        return ((scan_ink.shape[1] - ref_ink.shape[1]) // 2, (scan_ink.shape[0] - ref_ink.shape[0]) // 2)
    ncc = cv2.matchTemplate(blur_s, blur_r, cv2.TM_CCORR_NORMED)
    _lo, _hi, _lo_at, (dx, dy) = cv2.minMaxLoc(ncc)
    return int(dx), int(dy)


@dataclass(frozen=True)
class InkComparison:
    """``agree``: the scan shows the reference print (nothing changed, nothing added).
    ``score``: missing plus extra ink in the worst character-sized window, relative to one
    character's ink and weighted by distance (0 = identical).
    ``shift``: the (dx, dy) pixels at which the two lined up best."""

    agree: bool
    score: float
    shift: tuple[int, int]
    reason: str = ""


def compare_ink(scan_crop: np.ndarray, reference: np.ndarray, *, margin_px: int,
                tolerance_px: int = INK_TOLERANCE_PX, limit: float = INK_AGREE,
                local_px: int = INK_LOCAL_PX) -> InkComparison:
    """Compare the ink of a scan crop with the reference crop of the issued page.

    ``scan_crop`` is ``margin_px`` larger than ``reference`` on every side; the best shift within
    that margin is found by normalised cross-correlation of the blurred ink. Then, at that shift,
    every reference ink pixel is charged its distance to the nearest scan ink ("missing") and
    every scan ink pixel inside the field its distance to the nearest reference ink ("extra"),
    beyond ``tolerance_px`` and capped; the charges are summed over windows one character square
    (each window at its own best shift within ``local_px`` of the field's), relative to one
    character's ink, and the largest sum anywhere is the score: a character changed, added or
    removed concentrates in one window, scanning noise spreads thinly."""
    import cv2

    ref_ink = _without_rules((reference < 160).astype(np.uint8))
    n_ref = int(ref_ink.sum())
    if n_ref < 12:
        return InkComparison(False, 1.0, (0, 0), "签发页上此处几乎没有印刷字")
    scan_ink = _without_rules(ink_mask(to_gray(scan_crop), contrast=0.7).astype(np.uint8))
    rh, rw = ref_ink.shape
    if scan_ink.shape[0] < rh or scan_ink.shape[1] < rw:
        return InkComparison(False, 1.0, (0, 0), "扫描裁切小于签发页裁切")
    if not scan_ink.any():
        return InkComparison(False, 1.0, (0, 0), "扫描件此处没有字迹")
    dx, dy = ink_shift(scan_ink, ref_ink)
    # Distance of each ink pixel to the other image's nearest ink, less the tolerance, capped: a
    # stroke a pixel or two off (skew, blur, fax thickening) costs little, a stroke that is not
    # there at all costs its full length times the cap.
    d_scan_all = cv2.distanceTransform((1 - scan_ink).astype(np.uint8), cv2.DIST_L2, 3)
    d_ref = cv2.distanceTransform((1 - ref_ink).astype(np.uint8), cv2.DIST_L2, 3)
    cap = 3.0 * tolerance_px
    miss_cost = (np.clip(d_scan_all - tolerance_px, 0, cap) / tolerance_px).astype(np.float32)
    extra_cost = (np.clip(d_ref - tolerance_px, 0, cap) / tolerance_px).astype(np.float32)
    ref_f = ref_ink.astype(np.float32)
    scan_f = scan_ink.astype(np.float32)
    char = max(8, min(rh, _line_height(ref_ink)))
    box = (char, char)
    per_char = cv2.boxFilter(ref_f, -1, box, normalize=False, borderType=cv2.BORDER_CONSTANT)
    unit = max(float(per_char.max()) * 0.6, 1.0)  # one character's ink, roughly

    def charges(x: int, y: int) -> tuple[np.ndarray, np.ndarray]:
        """Missing and extra charge per pixel with the scan window at (x, y)."""
        return ref_f * miss_cost[y:y + rh, x:x + rw], scan_f[y:y + rh, x:x + rw] * extra_cost

    # The window is the whole field (cell or blank): anything added inside it counts; print of the
    # neighbouring cells that the wider search crop reaches does not. Every character-sized window
    # takes its own best shift within ``local_px`` of the field's. A changed character both lacks
    # strokes of the original and adds its own, in one window (box filtering is linear: one pass
    # over the sum).
    best = None
    sh, sw = scan_ink.shape
    for ddy in range(-local_px, local_px + 1):
        for ddx in range(-local_px, local_px + 1):
            x, y = dx + ddx, dy + ddy
            if x < 0 or y < 0 or x + rw > sw or y + rh > sh:
                continue
            missing, extra = charges(x, y)
            both = cv2.boxFilter(missing + extra, -1, box, normalize=False, borderType=cv2.BORDER_CONSTANT)
            best = both if best is None else np.minimum(best, both, out=best)
    at = np.unravel_index(int(np.argmax(best)), best.shape)
    score = float(best[at]) / unit
    shift = (int(dx) - margin_px, int(dy) - margin_px)
    if score < limit:
        return InkComparison(True, score, shift)
    missing, extra = charges(dx, dy)
    r0, c0 = max(0, at[0] - char // 2), max(0, at[1] - char // 2)
    near = (slice(r0, at[0] + char // 2 + 1), slice(c0, at[1] + char // 2 + 1))
    what = "缺少笔画" if float(missing[near].sum()) >= float(extra[near].sum()) else "多出笔迹"
    return InkComparison(False, score, shift, f"与签发的 PDF 逐笔比对不一致（{what}，差异{score:.2f}）")
