"""Aligning a page image to the geometry of the template page it was printed from.

The template geometry is known from rendering (``forms/geometry.py``): page size, table
outline(s) and the QR box, in PDF points with a top-left origin. ``align`` estimates a
homography from PDF points to pixels of the upright image:

1. turn the page upright by the quarter turn the QR code reports;
2. a coarse estimate from the QR corners (similarity transform), else from the dpi, else by
   assuming the page fills the image;
3. refine on the table outline(s): find the outer contour of each table near where the coarse
   estimate puts it, fit a straight line to each side (robust to a seal overlapping the border)
   and intersect the lines. Four or more corners give a homography, which handles the
   perspective of phone photos;
4. if no table is found, the page outline against a darker background (phone photos);
5. last resort: the QR corners alone (a few pixels worse; see BASELINES.md).

``Aligned.crop(bbox_pt)`` then cuts a field out of the upright image, deskewed and rectified, at
a fixed resolution (200 dpi by default).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from forms.errors import UnreadableDocument
from parsers.images import PageImage, ink_mask, rotate_quarter
from parsers.qr import QrHit

log = logging.getLogger(__name__)

BBox = tuple[float, float, float, float]  # x0, top, x1, bottom (PDF points, top-left origin)
DEFAULT_CROP_DPI = 200.0


class AlignmentFailed(UnreadableDocument):
    """The page cannot be matched to its template (no table, page edge or QR code found)."""

    code = "alignment_failed"


@dataclass(frozen=True)
class TemplatePage:
    """What alignment needs to know about a template page (PDF points, top-left origin)."""

    width_pt: float
    height_pt: float
    tables: tuple[BBox, ...] = ()
    qr: BBox | None = None

    @classmethod
    def from_mapping(cls, geometry: Mapping) -> TemplatePage:
        """Build from a page entry of the geometry recorder. Accepts ``size``/``page_size``
        ([w, h]) or ``width``/``height``; ``tables``/``table_outlines``/``table`` (one or more
        [x0, top, x1, bottom]); ``qr``/``qr_box``/``qr_bbox``."""
        size = geometry.get("size") or geometry.get("page_size")
        if size is not None:
            w, h = float(size[0]), float(size[1])
        else:
            w, h = float(geometry["width"]), float(geometry["height"])
        tables = geometry.get("tables") or geometry.get("table_outlines") or geometry.get("table") or ()
        if tables and not isinstance(tables[0], (list, tuple)):
            tables = [tables]
        qr = geometry.get("qr") or geometry.get("qr_box") or geometry.get("qr_bbox")
        return cls(w, h, tuple(_bbox(t) for t in tables), _bbox(qr) if qr else None)


def _bbox(b: Sequence[float] | Mapping) -> BBox:
    if isinstance(b, Mapping):
        b = b.get("bbox") or (b["x0"], b["top"], b["x1"], b["bottom"])
    x0, y0, x1, y1 = (float(v) for v in b)
    return (x0, y0, x1, y1)


def _corners(b: BBox) -> np.ndarray:
    x0, y0, x1, y1 = b
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64)


def _apply(h: np.ndarray, pts: np.ndarray) -> np.ndarray:
    pts = np.asarray(pts, dtype=np.float64).reshape(-1, 2)
    hom = np.hstack([pts, np.ones((len(pts), 1))]) @ h.T
    return hom[:, :2] / hom[:, 2:3]


def _rot_points(pts: np.ndarray, k: int, w: int, h: int) -> np.ndarray:
    """Map points through ``k`` counter-clockwise quarter turns (as ``np.rot90``)."""
    pts = np.asarray(pts, dtype=np.float64).reshape(-1, 2).copy()
    for _ in range(k % 4):
        pts = np.stack([pts[:, 1], (w - 1) - pts[:, 0]], axis=1)
        w, h = h, w
    return pts


@dataclass(frozen=True, eq=False)
class Aligned:
    """A page matched to its template.

    ``image``: the upright page (RGB). ``homography``: 3x3, PDF points -> pixels of ``image``.
    ``rotation``: the quarter turn (degrees clockwise) that was undone. ``method``: what the
    transform rests on ("table", "page", "qr", "dpi"). ``residual_px``: RMS misfit of the
    matched corners (0 when exactly determined). ``dpi``: resolution of ``crop`` output.
    """

    image: np.ndarray
    homography: np.ndarray
    rotation: int
    method: str
    residual_px: float
    source_size: tuple[int, int]
    dpi: float = DEFAULT_CROP_DPI

    @property
    def scan_dpi(self) -> float:
        """Resolution of the scan at the image centre, estimated from the transform (a photo
        taken at an angle has a different scale at each end of the page)."""
        h, w = self.image.shape[:2]
        x, y = _apply(np.linalg.inv(self.homography), [[w / 2, h / 2]])[0]
        c = _apply(self.homography, [[x, y], [x + 72, y], [x, y + 72]])
        u, v = c[1] - c[0], c[2] - c[0]
        return float(math.sqrt(abs(u[0] * v[1] - u[1] * v[0])))

    def to_pixels(self, points_pt) -> np.ndarray:
        """PDF points -> pixel coordinates in the upright ``image`` (N x 2 array)."""
        return _apply(self.homography, points_pt)

    def to_source(self, points_pt) -> np.ndarray:
        """PDF points -> pixel coordinates in the image as uploaded (before turning upright)."""
        up = self.to_pixels(points_pt)
        w, h = self.source_size
        k = (self.rotation // 90) % 4
        uw, uh = (w, h) if k % 2 == 0 else (h, w)
        return _rot_points(up, (4 - k) % 4, uw, uh)

    def box_px(self, bbox_pt: Sequence[float]) -> tuple[int, int, int, int]:
        """Axis-aligned pixel bounds (x0, y0, x1, y1) of a PDF-point box in ``image``."""
        pts = self.to_pixels(_corners(_bbox(bbox_pt)))
        h, w = self.image.shape[:2]
        x0, y0 = np.floor(pts.min(axis=0)).astype(int)
        x1, y1 = np.ceil(pts.max(axis=0)).astype(int)
        return (max(0, int(x0)), max(0, int(y0)), min(w, int(x1)), min(h, int(y1)))

    def crop(self, bbox_pt: Sequence[float], pad_pt: float = 2.0, dpi: float | None = None) -> np.ndarray:
        """The field at ``bbox_pt`` (grown by ``pad_pt`` on each side), rectified: a straight
        RGB image at ``dpi`` (default ``self.dpi``) whatever the skew or perspective. Parts
        outside the photo come out white."""
        dpi = float(dpi or self.dpi)
        x0, y0, x1, y1 = _bbox(bbox_pt)
        x0, y0, x1, y1 = x0 - pad_pt, y0 - pad_pt, x1 + pad_pt, y1 + pad_pt
        f = 72.0 / dpi
        out_w = max(1, int(round((x1 - x0) / f)))
        out_h = max(1, int(round((y1 - y0) / f)))
        # Output pixel centres -> points -> source pixels; warp with the inverse map directly.
        a = np.array([[f, 0, x0 + f / 2], [0, f, y0 + f / 2], [0, 0, 1]], dtype=np.float64)
        m = self.homography @ a
        m = m / m[2, 2]
        fill = (255,) * (self.image.shape[2] if self.image.ndim == 3 else 1)
        flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
        return cv2.warpPerspective(self.image, m, (out_w, out_h), flags=flags,
                                   borderMode=cv2.BORDER_CONSTANT, borderValue=fill)


def align(page: PageImage | np.ndarray, template: TemplatePage | Mapping, *, qr: QrHit | None = None,
          dpi: float | None = None, crop_dpi: float = DEFAULT_CROP_DPI) -> Aligned:
    """Match a page image to its template page.

    ``qr``: the page's QR hit from ``qr.find_codes`` (gives the quarter turn and a coarse
    position); ``dpi``: scan resolution if known (taken from ``page`` when it is a PageImage).
    Raises ``AlignmentFailed`` when nothing to align on is found."""
    if not isinstance(template, TemplatePage):
        template = TemplatePage.from_mapping(template)
    pixels = page.pixels if isinstance(page, PageImage) else page
    if dpi is None and isinstance(page, PageImage):
        dpi = page.dpi
    src_h, src_w = pixels.shape[:2]
    rotation = qr.rotation if qr is not None else 0
    k = (rotation // 90) % 4
    upright = rotate_quarter(pixels, rotation)
    h, w = upright.shape[:2]

    coarse, coarse_method = None, None
    qr_px = None
    if qr is not None:
        qr_px = _rot_points(np.array(qr.corners), k, src_w, src_h)
        if template.qr is not None:
            m, _ = cv2.estimateAffinePartial2D(_corners(template.qr), qr_px, method=cv2.LMEDS)
            if m is not None:
                coarse, coarse_method = np.vstack([m, [0, 0, 1]]), "qr"
    if coarse is None:
        s = (dpi / 72.0) if dpi else (w / template.width_pt)
        coarse, coarse_method = np.diag([s, s, 1.0]), "dpi"

    def finish(hmat: np.ndarray, method: str, residual: float) -> Aligned:
        log.debug("aligned by %s (residual %.2f px)", method, residual)
        return Aligned(upright, hmat, rotation, method, residual, (src_w, src_h), crop_dpi)

    red = upright[:, :, 0] if upright.ndim == 3 else upright
    if template.tables:
        # The red channel hides red seals and fingerprints that often overlap the table border.
        mask = ink_mask(red, contrast=0.7).astype(np.uint8) * 255
        mask = cv2.dilate(mask, np.ones((3, 3), np.uint8))
        # RETR_LIST: on a photo the sheet is a hole in the dark desk, so the table is not "external".
        contours, _ = cv2.findContours(mask, cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
        src_pts, dst_pts = [], []
        for table in template.tables:
            quad = _match_quad(contours, _apply(coarse, _corners(table)))
            if quad is not None:
                src_pts.append(_corners(table))
                dst_pts.append(quad)
        if src_pts:
            hmat, residual = _homography(np.vstack(src_pts), np.vstack(dst_pts))
            if hmat is not None and _plausible(hmat, template, qr_px, coarse):
                return finish(hmat, "table", residual)
            log.debug("table alignment rejected as implausible")

    page_quad = _page_outline(upright)
    if page_quad is not None:
        hmat, residual = _homography(_corners((0, 0, template.width_pt, template.height_pt)), page_quad)
        if hmat is not None and _plausible(hmat, template, qr_px, coarse):
            return finish(hmat, "page", residual)

    if coarse_method == "qr":
        return finish(coarse, "qr", 0.0)
    if dpi and not template.tables and template.qr is None:
        return finish(coarse, "dpi", 0.0)
    raise AlignmentFailed("无法把这一页与表单对齐：找不到表格外框、纸张边缘或二维码；"
                          "请把整页放平、对好焦距重新扫描或拍照")


def _homography(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray | None, float]:
    hmat, _ = cv2.findHomography(src, dst, 0)
    if hmat is None:
        return None, float("inf")
    err = np.linalg.norm(_apply(hmat, src) - dst, axis=1)
    return hmat, float(np.sqrt(np.mean(err ** 2)))


def _plausible(hmat: np.ndarray, template: TemplatePage, qr_px: np.ndarray | None,
               coarse: np.ndarray) -> bool:
    """Reject a fit that folds the page, or disagrees with the QR code where the code was read."""
    page = _apply(hmat, _corners((0, 0, template.width_pt, template.height_pt))).astype(np.float32)
    if not cv2.isContourConvex(page.reshape(-1, 1, 2)):
        return False
    if qr_px is not None and template.qr is not None:
        predicted = _apply(hmat, _corners(template.qr))
        side = np.linalg.norm(qr_px[1] - qr_px[0])
        if np.max(np.linalg.norm(predicted - qr_px, axis=1)) > max(12.0, 0.6 * side):
            return False
    return True


def _order(pts: np.ndarray) -> np.ndarray:
    """Order four points as top-left, top-right, bottom-right, bottom-left."""
    pts = pts.reshape(4, 2).astype(np.float64)
    s = pts.sum(axis=1)
    d = pts[:, 0] - pts[:, 1]
    return np.array([pts[np.argmin(s)], pts[np.argmax(d)], pts[np.argmax(s)], pts[np.argmin(d)]])


def _match_quad(contours, predicted: np.ndarray) -> np.ndarray | None:
    """Among the contours, the quadrilateral whose corners lie nearest the predicted ones,
    with each side refined by a robust line fit."""
    diag = float(np.linalg.norm(predicted[2] - predicted[0]))
    area = float(cv2.contourArea(predicted.astype(np.float32)))
    best, best_err = None, 0.15 * diag
    for c in contours:
        carea = cv2.contourArea(c)
        if carea < 0.5 * area or carea > 1.8 * area:
            continue
        hull = cv2.convexHull(c)
        approx = cv2.approxPolyDP(hull, 0.02 * cv2.arcLength(hull, True), True)
        if len(approx) == 4:
            quad = _order(approx)
        else:
            quad = _order(cv2.boxPoints(cv2.minAreaRect(c)))
        err = float(np.max(np.linalg.norm(quad - predicted, axis=1)))
        if err < best_err:
            best, best_err = (c, quad), err
    if best is None:
        return None
    return _refine_quad(best[0].reshape(-1, 2).astype(np.float64), best[1])


def _refine_quad(points: np.ndarray, quad: np.ndarray) -> np.ndarray:
    """Fit a line to the contour points along each side of ``quad`` and intersect them.
    Points far from a side (a seal or a scribble touching the border) are left out."""
    lines = []
    for i in range(4):
        a, b = quad[i], quad[(i + 1) % 4]
        ab = b - a
        length = float(np.linalg.norm(ab))
        if length < 1:
            return quad
        u = ab / length
        rel = points - a
        along = rel @ u
        across = np.abs(rel[:, 0] * u[1] - rel[:, 1] * u[0])
        # Keep the middle of the side (corners are rounded by dilation) and points on the line.
        tol = max(3.0, 0.01 * length)
        sel = (along > 0.1 * length) & (along < 0.9 * length) & (across < tol)
        if sel.sum() < 10:
            return quad
        vx, vy, x0, y0 = cv2.fitLine(points[sel].astype(np.float32), cv2.DIST_HUBER, 0, 0.01, 0.01).ravel()
        lines.append((np.array([x0, y0], dtype=np.float64), np.array([vx, vy], dtype=np.float64)))
    out = []
    for i in range(4):
        (p1, d1), (p2, d2) = lines[(i - 1) % 4], lines[i]
        m = np.array([d1, -d2]).T
        if abs(np.linalg.det(m)) < 1e-6:
            return quad
        t = np.linalg.solve(m, p2 - p1)
        out.append(p1 + t[0] * d1)
    refined = np.array(out)
    if np.max(np.linalg.norm(refined - quad, axis=1)) > 0.05 * np.linalg.norm(quad[2] - quad[0]):
        return quad
    return refined


def _page_outline(upright: np.ndarray) -> np.ndarray | None:
    """Corners of a bright sheet on a darker background (phone photos), or None for flatbed scans
    where the sheet fills the image."""
    gray = upright if upright.ndim == 2 else cv2.cvtColor(upright, cv2.COLOR_RGB2GRAY)
    h, w = gray.shape
    scale = min(1.0, 1000 / max(h, w))
    small = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else gray
    small = cv2.GaussianBlur(small, (5, 5), 0)
    _, bw = cv2.threshold(small, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
    bw = cv2.morphologyEx(bw, cv2.MORPH_CLOSE, np.ones((9, 9), np.uint8))
    contours, _ = cv2.findContours(bw, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return None
    c = max(contours, key=cv2.contourArea)
    sh, sw = small.shape
    if cv2.contourArea(c) < 0.25 * sh * sw:
        return None
    hull = cv2.convexHull(c)
    approx = cv2.approxPolyDP(hull, 0.02 * cv2.arcLength(hull, True), True)
    if len(approx) != 4:
        return None
    quad = _order(approx) / scale
    margin = 3 / scale
    if (quad[:, 0].min() <= margin and quad[:, 1].min() <= margin and quad[:, 0].max() >= w - 1 - margin
            and quad[:, 1].max() >= h - 1 - margin):
        return None  # the "outline" is the image border: nothing learned
    return quad
