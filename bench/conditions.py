"""Paper and capture conditions the scan bench did not have before issue 15: tinted paper
(yellowish, grey, recycled with fibres and specks), colour dropped by the scanner (grey JPEG),
120-dpi fax, and two pages photographed side by side in one picture (each a little turned and at
its own scale). Each takes the filled 200-dpi page (RGB) and returns encoded bytes as uploaded.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from tests.samples.scans import make_scans as mk

PAPERS = {"yellow": (246, 232, 190), "grey": (212, 212, 208), "recycled": (226, 218, 200)}


def tint(pixels: np.ndarray, paper: str, rng: np.random.Generator) -> np.ndarray:
    """Print and writing on coloured paper: every colour multiplied by the paper's (ink is
    translucent on it), with uneven brightness; recycled paper adds grey fibres and specks."""
    colour = np.array(PAPERS[paper], np.float32) / 255.0
    h, w = pixels.shape[:2]
    out = pixels.astype(np.float32) * colour
    shade = cv2.resize(rng.uniform(0.95, 1.02, (4, 3)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    out *= shade[..., None]
    if paper == "recycled":
        n = int(h * w / 4000)
        ys, xs = rng.integers(0, h, n), rng.integers(0, w, n)
        for y, x in zip(ys, xs, strict=True):
            a = rng.uniform(0, math.pi)
            ln = rng.uniform(2, 9)
            cv2.line(out, (int(x), int(y)), (int(x + ln * math.cos(a)), int(y + ln * math.sin(a))),
                     tuple(float(c) * rng.uniform(0.72, 0.88) for c in PAPERS[paper]), 1)
        specks = rng.random((h, w)) < 0.0004
        out[specks] *= 0.45
    return np.clip(out + rng.normal(0, 2.5, (h, w, 1)), 0, 255).astype(np.uint8)


def colour_drop(pixels: np.ndarray) -> bytes:
    """A scanner set to grey: colour is gone (a red seal is mid-grey), saved as JPEG."""
    grey = cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY)
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(grey, "L").save(buf, format="JPEG", quality=80, dpi=(200, 200))
    return buf.getvalue()


def fax120(pixels: np.ndarray, rng: np.random.Generator) -> bytes:
    """A fine-mode fax at about 120 dpi: turned a little, reduced from 200 dpi, thresholded to
    black and white with a little noise (the fax's own threshold, not Otsu)."""
    p = mk.rotate(pixels, rng.uniform(-1.5, 1.5))
    p = cv2.resize(p, None, fx=0.6, fy=0.6, interpolation=cv2.INTER_AREA)
    g = cv2.cvtColor(p, cv2.COLOR_RGB2GRAY).astype(np.int16) + rng.normal(0, 8, p.shape[:2]).astype(np.int16)
    bw = np.where(g < 155, 0, 255).astype(np.uint8)
    return mk.encode(cv2.cvtColor(bw, cv2.COLOR_GRAY2RGB), "PNG", 120, bilevel=True)


def two_up(left: np.ndarray, right: np.ndarray, rng: np.random.Generator) -> bytes:
    """Two pages photographed together on a desk: side by side, each turned up to 3 degrees and
    at its own scale (0.85-1.0), mild perspective and light fall-off, one JPEG."""
    pages = []
    for p in (left, right):
        f = rng.uniform(0.85, 1.0) * 0.75  # about 150 dpi per page in the photo
        q = cv2.resize(p, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
        ang = rng.uniform(-3, 3)
        h, w = q.shape[:2]
        m = cv2.getRotationMatrix2D((w / 2, h / 2), ang, 1.0)
        cos, sin = abs(m[0, 0]), abs(m[0, 1])
        nw, nh = int(h * sin + w * cos), int(h * cos + w * sin)
        m[0, 2] += nw / 2 - w / 2
        m[1, 2] += nh / 2 - h / 2
        mask = cv2.warpAffine(np.full((h, w), 255, np.uint8), m, (nw, nh))
        q = cv2.warpAffine(q, m, (nw, nh), borderValue=(255, 255, 255))
        pages.append((q, mask))
    gap = int(rng.uniform(20, 60))
    pad = 50
    H = max(q.shape[0] for q, _ in pages) + 2 * pad
    W = sum(q.shape[1] for q, _ in pages) + gap + 2 * pad
    desk = np.zeros((H, W, 3), np.uint8)
    desk[:] = (92, 78, 64)
    x = pad
    for q, mask in pages:
        y = pad + int(rng.uniform(0, H - 2 * pad - q.shape[0] + 1))
        region = desk[y:y + q.shape[0], x:x + q.shape[1]]
        region[mask > 0] = q[mask > 0]
        x += q.shape[1] + gap
    src = np.float32([[0, 0], [W, 0], [W, H], [0, H]])
    dst = np.float32(src + rng.uniform(-0.02, 0.02, (4, 2)) * [W, H])
    out = cv2.warpPerspective(desk, cv2.getPerspectiveTransform(src, dst), (W, H), borderValue=(92, 78, 64))
    grad = np.linspace(0.82, 1.0, W)[None, :, None]
    out = np.clip(out * grad, 0, 255).astype(np.uint8)
    out = cv2.GaussianBlur(out, (0, 0), 0.6)
    return mk.encode(out, "JPEG", None, quality=80)
