"""Training of the boxed-digit network (parsers/scan/digits.py ``cnn_logits``) with JAX: the same
layers as the numpy inference (a 5 x 5 and a 3 x 3 convolution, each ReLU and 2 x 2 max-pooled, a
dense layer with dropout, a softmax over 0-9), trained with Adam on digits written afresh every
epoch (``sample``: ``digits.augment``, then written into a box crop at a random size, pen, blur and
scan, and read back through ``box_ink`` and ``normalise`` as a box's crop is).

JAX is a training-time tool only (``requirements-train.txt``); the service runs the trained weights
in numpy. The weights come back in the inference layout: a convolution's kernel (dy, dx, c_in) x
c_out, as ``digits._conv_windows`` lays out its patches."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from parsers.scan import digits  # noqa: E402
from parsers.scan.digits import SIZE  # noqa: E402
from parsers.scan.ink import ReferencePages  # noqa: E402


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


C1, C2, HIDDEN = 32, 64, 192


def init(rng: np.random.Generator, c1: int = C1, c2: int = C2, hidden: int = HIDDEN) -> dict[str, np.ndarray]:
    he = lambda fan_in, shape: rng.normal(0, np.sqrt(2 / fan_in), shape).astype(np.float32)  # noqa: E731
    return {"c1w": he(25, (25, c1)), "c1b": np.zeros(c1, np.float32),
            "c2w": he(9 * c1, (9 * c1, c2)), "c2b": np.zeros(c2, np.float32),
            "d1w": he(25 * c2, (25 * c2, hidden)), "d1b": np.zeros(hidden, np.float32),
            "d2w": rng.normal(0, np.sqrt(1 / hidden), (hidden, 10)).astype(np.float32),
            "d2b": np.zeros(10, np.float32)}


def _functions(drop: float, decay: float):
    import jax
    import jax.numpy as jnp
    from jax import lax

    def conv(x, w, k):
        cin = x.shape[-1]
        kernel = w.reshape(k, k, cin, w.shape[1])  # (dy, dx, c_in) x c_out -> HWIO
        return lax.conv_general_dilated(x, kernel, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"))

    def pool(x):
        return lax.reduce_window(x, -jnp.inf, lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")

    def logits(p, x, key=None):
        a = pool(jax.nn.relu(conv(x[..., None], p["c1w"], 5) + p["c1b"]))
        a = pool(jax.nn.relu(conv(a, p["c2w"], 3) + p["c2b"]))
        a = jax.nn.relu(a.reshape(a.shape[0], -1) @ p["d1w"] + p["d1b"])
        if key is not None:
            a = a * jax.random.bernoulli(key, 1 - drop, a.shape) / (1 - drop)
        return a @ p["d2w"] + p["d2b"]

    def loss(p, x, y, key):
        o = logits(p, x, key)
        nll = -jnp.mean(jax.nn.log_softmax(o)[jnp.arange(x.shape[0]), y])
        return nll + 0.5 * decay * sum(jnp.sum(p[k] ** 2) for k in p if k.endswith("w"))

    @jax.jit
    def step(p, m, s, t, x, y, key, rate):
        value, g = jax.value_and_grad(loss)(p, x, y, key)
        b1, b2 = 0.9, 0.999
        m = {k: b1 * m[k] + (1 - b1) * g[k] for k in p}
        s = {k: b2 * s[k] + (1 - b2) * g[k] ** 2 for k in p}
        p = {k: p[k] - rate * (m[k] / (1 - b1 ** t)) / (jnp.sqrt(s[k] / (1 - b2 ** t)) + 1e-8) for k in p}
        return p, m, s, value

    return step


def train(images: np.ndarray, labels: np.ndarray, *, epochs: int = 20, seed: int = 0, batch: int = 128,
          lr: float = 2e-3, decay: float = 5e-5, drop: float = 0.3, boxed: tuple[np.ndarray, np.ndarray] | None = None,
          boxed_per_epoch: int = 30000, log=print) -> dict[str, np.ndarray]:
    """A network trained on fresh views of ``images`` every epoch (Adam, the rate falling by a
    cosine to a twentieth), with ``boxed_per_epoch`` digits drawn each epoch from ``boxed``: framed
    digits as the scan reader cut them out of printed boxes (``boxed_crops``)."""
    import jax
    import jax.numpy as jnp

    step = _functions(drop, decay)
    rng = np.random.default_rng(seed)
    key = jax.random.PRNGKey(seed)
    p = {k: jnp.asarray(v) for k, v in init(rng).items()}
    m = {k: jnp.zeros_like(v) for k, v in p.items()}
    s = {k: jnp.zeros_like(v) for k, v in p.items()}
    t = 0
    for ep in range(epochs):
        t0 = time.perf_counter()
        x, y = views(images, labels, rng)
        if boxed is not None:
            pick = rng.choice(len(boxed[1]), size=min(boxed_per_epoch, len(boxed[1])), replace=False)
            x, y = np.concatenate([x, boxed[0][pick].astype(np.float32)]), np.concatenate([y, boxed[1][pick]])
        t1 = time.perf_counter()
        rate = lr * (0.05 + 0.95 * 0.5 * (1 + np.cos(np.pi * ep / epochs)))
        order = rng.permutation(len(x))
        total, n = 0.0, 0
        for i in range(0, len(order) - batch + 1, batch):
            idx = order[i:i + batch]
            t += 1
            key, sub = jax.random.split(key)
            p, m, s, value = step(p, m, s, float(t), jnp.asarray(x[idx]), jnp.asarray(y[idx]), sub, float(rate))
            total += float(value) * len(idx)
            n += len(idx)
        log(f"[cnn] seed {seed} epoch {ep + 1}/{epochs}: loss {total / n:.4f}, rate {rate:.5f}, "
            f"views {t1 - t0:.1f} s, steps {time.perf_counter() - t1:.1f} s", flush=True)
    return {k: np.asarray(v, np.float32) for k, v in p.items()}


# ---- digits as the scan reader cuts them out of printed boxes ---------------------------------------

# The printed boxes as the templates set them (forms/build_templates.py BOX_PT: a box about 5 mm
# each way, 18 pt apart), their sides and line weights varied a little.
BOX_PITCH_PT = 18.0


class StripReference(ReferencePages):
    """The issued strip of ``box_strip`` (the boxes as printed, no writing) as the reader's
    reference page: one grey page at 200 dpi."""

    def __init__(self, page: np.ndarray):
        super().__init__(b"", dpi=200.0)
        self._pages[0] = page


def _draw_boxes(img: np.ndarray, cells, scale: float, shade: float, line_pt: float) -> np.ndarray:
    """The box outlines ``cells`` (PDF points) drawn on ``img`` (``scale`` px per point) in ``shade``."""
    import cv2

    for c in cells:
        corners = [int(round(x * scale)) for x in c]
        cv2.rectangle(img, tuple(corners[:2]), tuple(corners[2:]), shade, max(1, int(round(line_pt * scale))))
    return img


def box_strip(imgs, rng: np.random.Generator, *, grey: float | None = None):
    """A row of printed boxes with the digits ``imgs`` (28 x 28, ink bright; None: the box left
    empty) written in them as people do (most of the box's height, some larger, off the centre,
    running into or over an edge), scanned at 300, 200, 150 or 120 dpi (pen, paper, blur, noise,
    JPEG; a fax black and white) and brought to the reader's 200 dpi: (aligned, cells, zone, scan dpi,
    reference) for ``parsers.scan.boxes.box_writing``. The boxes print black, or with ``grey`` in that
    drop-out grey (``forms.build_templates.BOX_RGB``; the scan may show them a little darker or
    paler), and then ``reference`` is the strip as issued (``StripReference``; else None)."""
    import cv2

    from parsers.align import Aligned

    n = len(imgs)
    side, line_pt = rng.uniform(13.0, 16.0), rng.uniform(0.5, 1.0)
    x0, y0 = 20.0, 12.0
    cells = [(x0 + i * BOX_PITCH_PT, y0, x0 + i * BOX_PITCH_PT + side, y0 + side) for i in range(n)]
    zone = (x0 - 10, y0 - 8, x0 + n * BOX_PITCH_PT + 10, y0 + side + 8)
    src = float(rng.choice([300, 200, 200, 150, 120]))
    s = src / 72.0
    w_px, h_px = int((zone[2] + 12) * s), int((zone[3] + 12) * s)
    paper = np.full((h_px, w_px), rng.uniform(235, 255), np.float32)
    shade = 20.0 if grey is None else float(np.clip(grey * rng.uniform(0.85, 1.08), 0, 250))
    _draw_boxes(paper, cells, s, shade, line_pt)
    pen = np.zeros((h_px, w_px), np.float32)
    for c, img in zip(cells, imgs, strict=True):
        if img is None:
            continue
        v = digits.another_pen(img.astype(np.float32), rng, broad=False)
        ys, xs = np.nonzero(v > 0.1)
        if len(ys) == 0:
            continue
        v = v[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
        bh = (c[3] - c[1]) * s
        h = max(4, int(bh * rng.uniform(0.55, 1.1)))
        w = max(2, int(v.shape[1] * h / v.shape[0] * rng.uniform(0.85, 1.15)))
        d = cv2.resize(v, (w, h), interpolation=cv2.INTER_LINEAR)
        px = int((c[0] + c[2]) / 2 * s + rng.normal(0, 0.1) * bh - w / 2)
        py = int((c[1] + c[3]) / 2 * s + rng.normal(0, 0.1) * bh - h / 2)
        a0, b0, a1, b1 = max(0, px), max(0, py), min(w_px, px + w), min(h_px, py + h)
        pen[b0:b1, a0:a1] = np.maximum(pen[b0:b1, a0:a1], d[b0 - py:b1 - py, a0 - px:a1 - px])
    darkness = rng.uniform(120, 230)
    ink = np.clip(pen, 0, 1)
    rgb = np.dstack([paper * (1 - ink * darkness / 255.0)] * 3)
    if rng.random() < 0.5:  # a blue pen
        rgb = np.clip(rgb + ink[..., None] * np.array([0.0, 0.15, 0.5]) * darkness, 0, 255)
    if src <= 150:
        if rng.random() < 0.8:
            rgb = np.dstack([np.where(rgb.mean(axis=2) < rng.uniform(110, 190), 0.0, 255.0)] * 3)
    else:
        if rng.random() < 0.4:
            rgb = cv2.GaussianBlur(rgb, (0, 0), rng.uniform(0.4, 1.2))
        if rng.random() < 0.4:
            rgb = rgb + rng.normal(0, rng.uniform(2, 8), rgb.shape)
    rgb = np.clip(rgb, 0, 255).astype(np.uint8)
    if src > 150 and rng.random() < 0.3:
        _ok, enc = cv2.imencode(".jpg", rgb, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(40, 85))])
        rgb = cv2.imdecode(enc, cv2.IMREAD_UNCHANGED)
    f = 200.0 / src
    out = cv2.resize(rgb, (int(w_px * f), int(h_px * f)), interpolation=cv2.INTER_LINEAR if f > 1 else cv2.INTER_AREA)
    scale = np.array([[200 / 72.0, 0, 0], [0, 200 / 72.0, 0], [0, 0, 1]])
    reference = None
    if grey is not None:  # the strip as issued, at the reader's 200 dpi
        r = 200.0 / 72.0
        page = np.full((int((zone[3] + 12) * r), int((zone[2] + 12) * r)), 255, np.uint8)
        reference = StripReference(_draw_boxes(page, cells, r, int(grey), line_pt))
    return Aligned(out, scale, 0, "dpi", 0.0, (out.shape[1], out.shape[0]), 200.0), cells, zone, src, reference


# The share of training strips printed black (forms issued before the drop-out boxes, BOX_RGB): the
# rest print in the drop-out grey, as the templates do now.
BLACK_BOX_SHARE = 0.2


def boxed_crops(images: np.ndarray, labels: np.ndarray, strips: int, rng: np.random.Generator,
                per: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Framed digits (``normalise(box_ink(crop))``) and their labels as the scan reader
    (``box_writing``) cuts them out of ``strips`` rows of ``per`` boxes (``box_strip``: drop-out
    grey, ``BLACK_BOX_SHARE`` of them black), a tenth of the boxes left empty; a box the reader finds
    empty gives nothing."""
    from forms.build_templates import BOX_RGB
    from parsers.scan.boxes import box_writing

    xs, ys = [], []
    for _ in range(strips):
        idx = rng.integers(len(images), size=per)
        empty = rng.random(per) < 0.1
        grey = None if rng.random() < BLACK_BOX_SHARE else float(BOX_RGB[0])
        aligned, cells, zone, src, ref = box_strip([None if e else images[i] for i, e in zip(idx, empty, strict=True)],
                                                   rng, grey=grey)
        bw = box_writing(aligned, cells, zone, dpi=200.0, reference=ref, page_no=0, source_dpi=src)
        crops = iter(bw.digits)
        for k, (i, e) in enumerate(zip(idx, empty, strict=True)):
            if not bw.inked[k]:
                continue
            framed = digits.normalise(digits.box_ink(next(crops)))
            if not e and framed is not None:
                xs.append(framed)
                ys.append(int(labels[i]))
    return np.asarray(xs, np.float16).reshape(-1, SIZE, SIZE), np.asarray(ys, np.int64)


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
