"""Finding the identity QR code on a page image.

zxing-cpp restricted to QR codes is fast (1-3 ms) on the corner region where the code is printed
and slow (hundreds of ms) on a whole page with every retry, so the search goes from cheap to
expensive and stops at the first success:

1. the four corner regions, the expected one first (our code is top-right; a page scanned
   upside-down has it bottom-left, a page turned a quarter has it top-left or bottom-right);
2. the full page;
3. the full page again after scaling, Otsu and adaptive binarisation, a median filter against
   noise, and a 45 degree turn.

Each hit reports the rotation of the page implied by the code: the code is printed upright, so
the direction of its top edge is the direction of the page's top edge.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import cv2
import numpy as np
import zxingcpp

from parsers.images import PageImage, to_gray

log = logging.getLogger(__name__)

Point = tuple[float, float]


@dataclass(frozen=True)
class QrHit:
    """A decoded QR code.

    ``corners``: the code's top-left, top-right, bottom-right, bottom-left corners (in the code's
    own reading orientation) in pixels of the image that was searched. ``rotation``: how far the
    page content is turned clockwise in that image (0, 90, 180, 270); pass it to
    ``images.rotate_quarter`` to make the page upright. ``angle``: the exact clockwise angle of the
    code's top edge in degrees (skew included). ``stage``: which search step found it.
    """

    payload: str
    corners: tuple[Point, Point, Point, Point]
    rotation: int
    angle: float
    stage: str = ""

    @property
    def center(self) -> Point:
        xs = [p[0] for p in self.corners]
        ys = [p[1] for p in self.corners]
        return (sum(xs) / 4.0, sum(ys) / 4.0)

    @property
    def side(self) -> float:
        """Mean side length of the code in pixels."""
        c = self.corners
        return sum(math.dist(c[i], c[(i + 1) % 4]) for i in range(4)) / 4.0


def _angle(corners) -> float:
    (x0, y0), (x1, y1) = corners[0], corners[1]
    return math.degrees(math.atan2(y1 - y0, x1 - x0))


def _rotation(angle: float) -> int:
    return int(round(angle / 90.0)) % 4 * 90


def _decode(gray: np.ndarray, *, binarizer=zxingcpp.Binarizer.LocalAverage,
            downscale: bool = True) -> list:
    return zxingcpp.read_barcodes(gray, formats=zxingcpp.BarcodeFormat.QRCode, try_rotate=True,
                                  try_downscale=downscale, try_invert=False, binarizer=binarizer)


def _hits(results, *, dx: float = 0.0, dy: float = 0.0, scale: float = 1.0,
          back: Callable[[np.ndarray], np.ndarray] | None = None, stage: str) -> list[QrHit]:
    hits = []
    for r in results:
        if not r.valid or not r.text:
            continue
        p = r.position
        pts = np.array([[p.top_left.x, p.top_left.y], [p.top_right.x, p.top_right.y],
                        [p.bottom_right.x, p.bottom_right.y], [p.bottom_left.x, p.bottom_left.y]],
                       dtype=np.float64)
        pts = pts / scale + (dx, dy)
        if back is not None:
            pts = back(pts)
        corners = tuple((float(x), float(y)) for x, y in pts)
        angle = _angle(corners)
        hits.append(QrHit(r.text, corners, _rotation(angle), angle, stage))
    return hits


def _corner_regions(w: int, h: int) -> Iterator[tuple[str, int, int, int, int]]:
    """Corner windows (name, x0, y0, x1, y1), most likely first. Windows are generous (about a
    quarter of the page each way plus slack) so 15 degree skew and phone framing still fit."""
    fw, fh = 0.5, 0.4
    if w > h:  # a portrait page turned a quarter: the code's corner window is wide, not tall
        fw, fh = 0.4, 0.5
    cw, ch = int(w * fw), int(h * fh)
    yield "top-right", w - cw, 0, w, ch
    yield "bottom-left", 0, h - ch, cw, h
    yield "top-left", 0, 0, cw, ch
    yield "bottom-right", w - cw, h - ch, w, h


def find_codes(image: PageImage | np.ndarray, *, exhaustive: bool = False) -> list[QrHit]:
    """Find and decode the QR code(s) on a page; [] if none can be read.

    The search stops at the first step that yields a code, unless ``exhaustive`` (used to find
    every code on a sheet holding several pages' codes)."""
    pixels = image.pixels if isinstance(image, PageImage) else image
    gray = to_gray(pixels)
    h, w = gray.shape
    start = time.perf_counter()
    found: dict[str, QrHit] = {}

    def done(new: list[QrHit]) -> bool:
        for hit in new:
            found.setdefault(hit.payload, hit)
        return bool(found) and not exhaustive

    for name, x0, y0, x1, y1 in _corner_regions(w, h):
        if done(_hits(_decode(gray[y0:y1, x0:x1]), dx=x0, dy=y0, stage=f"corner:{name}")):
            return _finish(found, start)
    for stage, fn in _retries(gray):
        if done(fn()):
            log.debug("QR found by retry %s", stage)
            return _finish(found, start)
    return _finish(found, start)


def _retries(gray: np.ndarray) -> Iterator[tuple[str, Callable[[], list[QrHit]]]]:
    h, w = gray.shape
    yield "full", lambda: _hits(_decode(gray), stage="full")

    def scaled(f: float) -> list[QrHit]:
        small = cv2.resize(gray, None, fx=f, fy=f, interpolation=cv2.INTER_AREA if f < 1 else cv2.INTER_CUBIC)
        return _hits(_decode(small, downscale=False), scale=f, stage=f"scale:{f}")

    def otsu() -> list[QrHit]:
        blur = cv2.GaussianBlur(gray, (3, 3), 0)
        _, bw = cv2.threshold(blur, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
        return _hits(_decode(bw, binarizer=zxingcpp.Binarizer.BoolCast), stage="otsu")

    def adaptive() -> list[QrHit]:
        block = max(31, (min(h, w) // 20) | 1)
        bw = cv2.adaptiveThreshold(gray, 255, cv2.ADAPTIVE_THRESH_GAUSSIAN_C, cv2.THRESH_BINARY, block, 10)
        return _hits(_decode(bw, binarizer=zxingcpp.Binarizer.BoolCast), stage="adaptive")

    def denoised() -> list[QrHit]:
        return _hits(_decode(cv2.medianBlur(gray, 5)), stage="median")

    def sharpened() -> list[QrHit]:
        soft = cv2.GaussianBlur(gray, (0, 0), 3)
        sharp = cv2.addWeighted(gray, 2.0, soft, -1.0, 0)
        return _hits(_decode(sharp), stage="sharpen")

    def turned() -> list[QrHit]:
        # A 45 degree turn gives the finder-pattern detector a second chance on badly
        # perspective-warped codes; map the corners back into the input image.
        centre = (w / 2.0, h / 2.0)
        m = cv2.getRotationMatrix2D(centre, 45, 1.0)
        size = int(math.hypot(w, h))
        m[0, 2] += size / 2 - centre[0]
        m[1, 2] += size / 2 - centre[1]
        rot = cv2.warpAffine(gray, m, (size, size), borderValue=255)
        inv = cv2.invertAffineTransform(m)

        def back(pts: np.ndarray) -> np.ndarray:
            return pts @ inv[:, :2].T + inv[:, 2]

        return _hits(_decode(rot), back=back, stage="turn45")

    yield "scale:0.5", lambda: scaled(0.5)
    yield "otsu", otsu
    yield "adaptive", adaptive
    yield "median", denoised
    yield "sharpen", sharpened
    if max(h, w) < 2500:
        yield "scale:2", lambda: scaled(2.0)
    yield "turn45", turned


def _finish(found: dict[str, QrHit], start: float) -> list[QrHit]:
    log.debug("QR search: %d code(s) in %.1f ms", len(found), (time.perf_counter() - start) * 1000)
    return list(found.values())
