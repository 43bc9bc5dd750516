"""Training of the boxed-digit network (parsers/scan/digits.py ``cnn_forward``) in numpy: two
convolutions (5 x 5 x 16, 3 x 3 x 32, each ReLU and 2 x 2 max-pooling), a dense layer of 128 (ReLU,
dropout) and a softmax over 0-9, trained with Adam on digits written afresh every epoch (``sample``:
``digits.augment``, then written into a box crop at a random size, pen, blur and scan, and read back
through ``box_ink`` and ``normalise`` as a box's crop is)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from parsers.scan import digits  # noqa: E402
from parsers.scan.digits import SIZE, _conv_windows, cnn_forward  # noqa: E402


def write_crop(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``img`` (28 x 28, ink bright) written into a box's crop (grey, dark ink on white) as a scan
    may show it: 14-44 px tall, ink of another darkness, sometimes blurred (a phone), sometimes
    black and white (a fax), sometimes with paper noise."""
    import cv2

    ys, xs = np.nonzero(img > 0.15)
    if len(ys) == 0:
        return np.full((SIZE, SIZE), 255, np.uint8)
    c = img[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    height = int(rng.integers(14, 45))
    f = height / c.shape[0]
    width = max(2, round(c.shape[1] * f * rng.uniform(0.85, 1.15)))
    interp = cv2.INTER_CUBIC if rng.random() < 0.6 else cv2.INTER_LINEAR
    lo = rng.uniform(0.1, 0.35)
    a = np.clip((cv2.resize(c, (width, height), interpolation=interp) - lo) / rng.uniform(0.35, 0.6), 0, 1)
    r = rng.random()
    if r < 0.3:
        a = cv2.GaussianBlur(a, (0, 0), rng.uniform(0.5, 1.4)) * rng.uniform(0.65, 1.0)
    grey = 255 - a * rng.uniform(150, 235)
    if rng.random() < 0.2:
        grey = grey + rng.normal(0, rng.uniform(2, 12), grey.shape)
    if r > 0.75:
        grey = np.where(grey < rng.uniform(120, 190), 0, 255)
    pad = int(rng.integers(2, 9))
    return np.clip(np.pad(grey, pad, constant_values=255), 0, 255).astype(np.uint8)


def sample(img: np.ndarray, rng: np.random.Generator) -> np.ndarray | None:
    """One training view of ``img``: augmented (most of the time), written as a crop and framed."""
    v = digits.augment(img, rng) if rng.random() < 0.85 else img.astype(np.float32)
    return digits.normalise(digits.box_ink(write_crop(v, rng)))


def views(images: np.ndarray, labels: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for img, y in zip(images, labels, strict=True):
        n = sample(img, rng)
        if n is not None:
            xs.append(n)
            ys.append(int(y))
    return np.asarray(xs, np.float32), np.asarray(ys, np.int64)


def init(rng: np.random.Generator, hidden: int = 128) -> dict[str, np.ndarray]:
    he = lambda fan_in, shape: rng.normal(0, np.sqrt(2 / fan_in), shape).astype(np.float32)  # noqa: E731
    return {"c1w": he(25, (25, 16)), "c1b": np.zeros(16, np.float32),
            "c2w": he(144, (144, 32)), "c2b": np.zeros(32, np.float32),
            "d1w": he(800, (800, hidden)), "d1b": np.zeros(hidden, np.float32),
            "d2w": rng.normal(0, np.sqrt(1 / hidden), (hidden, 10)).astype(np.float32),
            "d2b": np.zeros(10, np.float32)}


def _pool(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    b, h, w, c = x.shape
    r = x.reshape(b, h // 2, 2, w // 2, 2, c)
    flat = r.transpose(0, 1, 3, 5, 2, 4).reshape(b, h // 2, w // 2, c, 4)
    arg = flat.argmax(-1)
    m = np.take_along_axis(flat, arg[..., None], -1)[..., 0]
    # the gradient goes to one maximum (the first) of each window, as the forward pass takes one
    mask = (np.arange(4) == arg[..., None]).reshape(b, h // 2, w // 2, c, 2, 2).transpose(0, 1, 4, 2, 5, 3)
    return m, mask


def step(p: dict[str, np.ndarray], x: np.ndarray, y: np.ndarray, rng: np.random.Generator,
         drop: float = 0.3) -> tuple[float, dict[str, np.ndarray]]:
    """The loss on a batch and its gradient."""
    b = len(x)
    c1in = _conv_windows(x[..., None], 5)  # B*576, 25
    z1 = c1in @ p["c1w"] + p["c1b"]
    a1 = np.maximum(z1, 0).reshape(b, 24, 24, 16)
    p1, m1 = _pool(a1)  # B, 12, 12, 16
    c2in = _conv_windows(p1, 3)  # B*100, 144
    z2 = c2in @ p["c2w"] + p["c2b"]
    a2 = np.maximum(z2, 0).reshape(b, 10, 10, 32)
    p2, m2 = _pool(a2)  # B, 5, 5, 32
    f = p2.reshape(b, 800)
    z3 = f @ p["d1w"] + p["d1b"]
    a3 = np.maximum(z3, 0)
    keep = (rng.random(a3.shape) >= drop).astype(np.float32) / (1 - drop)
    a3d = a3 * keep
    o = a3d @ p["d2w"] + p["d2b"]
    o -= o.max(1, keepdims=True)
    e = np.exp(o)
    pr = e / e.sum(1, keepdims=True)
    loss = float(-np.log(pr[np.arange(b), y] + 1e-12).mean())
    g = pr.copy()
    g[np.arange(b), y] -= 1
    g /= b
    grads = {"d2w": a3d.T @ g, "d2b": g.sum(0)}
    ga3 = (g @ p["d2w"].T) * keep
    ga3[z3 <= 0] = 0
    grads["d1w"] = f.T @ ga3
    grads["d1b"] = ga3.sum(0)
    gf = (ga3 @ p["d1w"].T).reshape(b, 5, 1, 5, 1, 32)
    ga2 = (m2 * gf).reshape(b, 10, 10, 32)
    ga2[a2 <= 0] = 0
    gz2 = ga2.reshape(b * 100, 32)
    grads["c2w"] = c2in.T @ gz2
    grads["c2b"] = gz2.sum(0)
    gcols = (gz2 @ p["c2w"].T).reshape(b, 10, 10, 3, 3, 16)
    gp1 = np.zeros((b, 12, 12, 16), gcols.dtype)
    for dy in range(3):
        for dx in range(3):
            gp1[:, dy:dy + 10, dx:dx + 10] += gcols[:, :, :, dy, dx]
    ga1 = (m1 * gp1.reshape(b, 12, 1, 12, 1, 16)).reshape(b, 24, 24, 16)
    ga1[a1 <= 0] = 0
    gz1 = ga1.reshape(b * 576, 16)
    grads["c1w"] = c1in.T @ gz1
    grads["c1b"] = gz1.sum(0)
    return loss, grads


def train(images: np.ndarray, labels: np.ndarray, *, epochs: int = 30, seed: int = 0, batch: int = 64,
          lr: float = 2e-3, decay: float = 5e-5, log=print) -> dict[str, np.ndarray]:
    """A network trained on fresh views of ``images`` every epoch (Adam, the rate falling by a
    cosine to a twentieth)."""
    rng = np.random.default_rng(seed)
    p = init(rng)
    m = {k: np.zeros_like(v) for k, v in p.items()}
    s = {k: np.zeros_like(v) for k, v in p.items()}
    t = 0
    b1, b2 = 0.9, 0.999
    for ep in range(epochs):
        t0 = time.process_time()
        x, y = views(images, labels, rng)
        t1 = time.process_time()
        rate = lr * (0.05 + 0.95 * 0.5 * (1 + np.cos(np.pi * ep / epochs)))
        order = rng.permutation(len(x))
        total, n = 0.0, 0
        for i in range(0, len(order), batch):
            idx = order[i:i + batch]
            loss, g = step(p, x[idx], y[idx], rng)
            total += loss * len(idx)
            n += len(idx)
            t += 1
            for k in p:
                gk = g[k] + decay * p[k] if k.endswith("w") else g[k]
                m[k] = b1 * m[k] + (1 - b1) * gk
                s[k] = b2 * s[k] + (1 - b2) * gk * gk
                p[k] -= rate * (m[k] / (1 - b1 ** t)) / (np.sqrt(s[k] / (1 - b2 ** t)) + 1e-8)
        log(f"[cnn] seed {seed} epoch {ep + 1}/{epochs}: loss {total / n:.4f}, rate {rate:.5f}, "
            f"views {t1 - t0:.1f} s, steps {time.process_time() - t1:.1f} s CPU")
    return p


def accuracy(p: dict[str, np.ndarray], x: np.ndarray, y: np.ndarray) -> float:
    return float((cnn_forward(p, x).argmax(1) == y).mean())


# Printed faces on this machine (setup's Debian packages) whose digits the network also learns:
# a hand that writes like print (a round 6) is still a hand. DejaVu Sans itself is left out (the
# build test writes with it).
FONT_GLOBS = ("/usr/share/fonts/truetype/dejavu/DejaVu*.ttf", "/usr/share/fonts/truetype/arphic/*.ttc",
              "/usr/share/fonts/opentype/noto/Noto*CJK-*.ttc", "/usr/local/share/fonts/fandol/*.otf")


def font_digits(copies: int = 3, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """0-9 in each printed face found (``FONT_GLOBS``), each ``copies`` times at another size and
    place, as MNIST shows a digit (28 x 28, ink bright, about 20 px tall)."""
    import glob

    from PIL import Image, ImageDraw, ImageFont

    rng = np.random.default_rng(seed)
    paths = sorted(p for g in FONT_GLOBS for p in glob.glob(g) if not p.endswith("/DejaVuSans.ttf"))
    images, labels = [], []
    for path in paths:
        for _ in range(copies):
            font = ImageFont.truetype(path, int(rng.integers(18, 26)))
            for d in range(10):
                im = Image.new("L", (40, 40), 0)
                ImageDraw.Draw(im).text((20, 20), str(d), font=font, fill=255, anchor="mm")
                a = np.asarray(im, np.float32) / 255.0
                n = digits.normalise(a)
                if n is not None:
                    images.append(n)
                    labels.append(d)
    return np.asarray(images, np.float32), np.asarray(labels, np.int64)
