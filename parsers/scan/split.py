"""Several pages in one image (issue 15): two sheets photographed side by side, a copier's
2-up, pages of different scales and turns. Every page is found and cut out on its own before it
is identified and read, so none is silently dropped.

``split_pages(page)`` returns the image itself when it holds one page (the usual case, decided
from the size the page's QR code implies, about 3 ms), else one upright ``PageImage`` per page:

1. every QR code in the image (full search): the code's corners give the page's scale, turn and
   position (the code sits at a fixed place on every page, ``forms.layout``), the page is turned
   upright and cut out along its own paper (the bright region round the code; A4 when the paper
   cannot be told from the background);
2. sheets of paper whose code could not be read (a fold, glare): large bright quadrilaterals that
   hold no found page are cut out too, upright as photographed, so the page is reported
   unidentified with its reason instead of vanishing.
"""

from __future__ import annotations

import logging

import cv2
import numpy as np

from forms.layout import QR_RIGHT_MM, QR_SIZE_MM, QR_TOP_MM
from parsers.images import PageImage, to_gray
from parsers.qr import QrHit, find_codes

log = logging.getLogger(__name__)

A4_MM = (210.0, 297.0)
# An image this many times the area of the page its code implies may hold more pages.
MORE_PAGES_AREA = 1.45
# Room kept round a cut-out page (mm): alignment searches a little beyond the page's edge.
PAD_MM = 6.0


def split_pages(page: PageImage) -> list[PageImage]:
    """The pages in ``page`` (itself when it holds one), each upright where its code was read.
    Indexes are not set here: the caller numbers the parts of an upload (``split_all``)."""
    h, w = page.pixels.shape[:2]
    hits = find_codes(page)
    if hits:
        mm = hits[0].side / QR_SIZE_MM  # pixels per mm
        if w * h < MORE_PAGES_AREA * (A4_MM[0] * mm) * (A4_MM[1] * mm):
            return [page]
        hits = find_codes(page, exhaustive=True)
    elif max(w, h) < 1.3 * min(w, h):
        return [page]  # portrait-ish, no code: one page whose code cannot be read
    paper = _paper_mask(page.pixels)
    parts: list[PageImage] = []
    taken = np.zeros((h, w), bool)
    for hit in _distinct(hits):
        cut = _cut_by_code(page, hit, paper)
        if cut is None:
            continue
        pixels, quad = cut
        if taken[int(np.clip(quad[:, 1].mean(), 0, h - 1)), int(np.clip(quad[:, 0].mean(), 0, w - 1))]:
            continue
        cv2.fillConvexPoly(taken.view(np.uint8), quad.astype(np.int32), 1)
        dpi = hit.side / QR_SIZE_MM * 25.4
        parts.append(PageImage(pixels, dpi, page.source, page.index))
    for quad in _sheets(paper):
        c = quad.mean(axis=0)
        if taken[int(np.clip(c[1], 0, h - 1)), int(np.clip(c[0], 0, w - 1))]:
            continue
        cv2.fillConvexPoly(taken.view(np.uint8), quad.astype(np.int32), 1)
        parts.append(PageImage(_cut_quad(page.pixels, quad), None, page.source, page.index))
    if len(parts) <= 1:
        return [page]  # one page after all (a photo with a wide margin of desk): read as taken
    log.info("%s: %d pages in one image", page.label, len(parts))
    return parts


def split_all(pages: list[PageImage]) -> list[PageImage]:
    """Every page of an upload, several-pages images split, numbered 0.. in order."""
    out = []
    for p in pages:
        for part in split_pages(p):
            out.append(PageImage(part.pixels, part.dpi, part.source, len(out)))
    return out


def _distinct(hits: list[QrHit]) -> list[QrHit]:
    seen, out = set(), []
    for h in hits:
        if h.payload not in seen:
            seen.add(h.payload)
            out.append(h)
    return out


def _paper_mask(pixels: np.ndarray) -> np.ndarray:
    """Bright, weakly coloured pixels: paper, not desk or background (Otsu on a blurred grey)."""
    g = cv2.GaussianBlur(to_gray(pixels), (0, 0), 3)
    t, _ = cv2.threshold(g, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    if t > 200:  # no dark background at all (a flatbed): paper everywhere
        return np.ones(g.shape, bool)
    mask = (g > t).astype(np.uint8)
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np.ones((15, 15), np.uint8))
    return mask.astype(bool)


def _code_transform(hit: QrHit) -> np.ndarray:
    """2x3 similarity from page millimetres (portrait, top-left origin) to image pixels."""
    x1 = A4_MM[0] - QR_RIGHT_MM
    x0, y0, y1 = x1 - QR_SIZE_MM, QR_TOP_MM, QR_TOP_MM + QR_SIZE_MM
    src = np.float32([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
    dst = np.float32(hit.corners)
    m, _ = cv2.estimateAffinePartial2D(src, dst)
    return m


def _cut_by_code(page: PageImage, hit: QrHit, paper: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """The page round ``hit`` turned upright at the image's own scale: (pixels, its corners in the
    image). The page's extent is its paper round the code when the paper stands out from the
    background, else A4 (a landscape page's code still sits top right, so the paper decides)."""
    m = _code_transform(hit)
    if m is None:
        return None
    scale = float(np.hypot(m[0, 0], m[1, 0]))  # pixels per mm
    # a generous window: up to a landscape A4 left of and below the code
    win = (A4_MM[0] - 297.0 - PAD_MM, -PAD_MM, A4_MM[0] + PAD_MM, 297.0 + PAD_MM)
    out_w, out_h = int((win[2] - win[0]) * scale), int((win[3] - win[1]) * scale)
    # output pixel -> page mm -> image pixel
    to_mm = np.array([[1 / scale, 0, win[0]], [0, 1 / scale, win[1]], [0, 0, 1]])
    full = np.vstack([m, [0, 0, 1]]) @ to_mm
    warp = full[:2]
    pix = cv2.warpAffine(page.pixels, warp, (out_w, out_h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                         borderValue=(255, 255, 255))
    sheet = cv2.warpAffine(paper.astype(np.uint8), warp, (out_w, out_h), flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP,
                           borderValue=0)
    # the paper region holding the code
    qx, qy = int((A4_MM[0] - QR_RIGHT_MM - QR_SIZE_MM / 2 - win[0]) * scale), int((QR_TOP_MM - win[1]) * scale)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(sheet)
    box = None
    lab = labels[min(out_h - 1, qy), min(out_w - 1, qx)] if n > 1 else 0
    if lab:
        x, y, bw, bh = stats[lab, :4]
        if bw <= 1.08 * 297 * scale and bh <= 1.08 * 297 * scale and bw >= 0.5 * 210 * scale:
            box = (x, y, x + bw, y + bh)
            # the sheet's outline, filled: print, the code and writing on it are dark, not holes
            pts = cv2.findNonZero((labels == lab).astype(np.uint8))
            keep = np.zeros(sheet.shape, np.uint8)
            cv2.fillConvexPoly(keep, cv2.convexHull(pts), 1)
            pix[keep == 0] = 255
    if box is None:  # paper not told apart from the background: a portrait A4 by the code
        box = (int((0 - win[0]) * scale), 0, int((A4_MM[0] - win[0]) * scale), int((A4_MM[1] - win[1]) * scale))
    pad = int(PAD_MM * scale / 2)
    x0, y0 = max(0, box[0] - pad), max(0, box[1] - pad)
    x1, y1 = min(out_w, box[2] + pad), min(out_h, box[3] + pad)
    corners = np.float32([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
    quad = cv2.transform(corners[None], warp)[0]
    return np.ascontiguousarray(pix[y0:y1, x0:x1]), quad


def _sheets(paper: np.ndarray) -> list[np.ndarray]:
    """Quadrilaterals (4x2, image pixels) of large sheets of paper on a darker background."""
    if paper.all():
        return []
    h, w = paper.shape
    contours, _ = cv2.findContours(paper.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    out = []
    for c in contours:
        if cv2.contourArea(c) < 0.12 * h * w:
            continue
        rect = cv2.minAreaRect(c)
        out.append(cv2.boxPoints(rect).astype(np.float32))
    return out


def _cut_quad(pixels: np.ndarray, quad: np.ndarray) -> np.ndarray:
    """The sheet inside ``quad`` turned square to the image axes (portrait when taller)."""
    rect = cv2.minAreaRect(quad)
    (cx, cy), (rw, rh), angle = rect
    if rw > rh:
        rw, rh, angle = rh, rw, angle - 90
    m = cv2.getRotationMatrix2D((cx, cy), angle, 1.0)
    m[0, 2] += rw / 2 - cx
    m[1, 2] += rh / 2 - cy
    return cv2.warpAffine(pixels, m, (int(rw), int(rh)), borderValue=(255, 255, 255))
