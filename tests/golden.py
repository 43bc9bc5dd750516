"""Golden page images of every form × variant × data size, and the contact sheet to review them.

Each document of ``tests.samples_sizes`` is rendered through the production path (compiled
template, warm LibreOffice, QR stamper; fixed document ids, so the pages are reproducible) and each
page rasterised at ``DPI`` (grey). ``compare`` tells a page from its approved image within a
tolerance (fonts hinted a pixel differently still pass; a moved block or a new line does not).

Regenerate after an intended layout change, look at the contact sheet, then commit::

    python -m tests.golden            # writes output/golden/contact.html (current vs approved)
    python -m tests.golden --approve  # also replaces tests/golden/*.png with the current pages
"""

from __future__ import annotations

import argparse
import html
import io
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
GOLDEN_DIR = ROOT / "tests" / "golden"
SHEET_DIR = ROOT / "output" / "golden"
DPI = 24
# A page matches its golden image when the mean grey difference is at most MEAN_TOL and at most
# AREA_TOL of the pixels differ by more than a quarter of the grey range.
MEAN_TOL = 2.0
AREA_TOL = 0.004


@dataclass(frozen=True)
class Printed:
    label: str
    size: str
    spec: object
    variant: object
    cleaned: dict
    doc_id: str
    pdf: bytes

    @property
    def key(self) -> str:
        return f"{self.label}-{self.size}"


def render_all() -> list[Printed]:
    """Every sized sample as a stamped PDF (one LibreOffice batch)."""
    from forms.registry import get_spec
    from tests._render_helpers import make_identity, render_docx, stamp, to_pdf
    from tests.samples_sizes import sized_samples

    items = []
    for i, (label, size, form, vcode, data) in enumerate(sized_samples()):
        spec = get_spec(form)
        variant = spec.variant(vcode) if spec.variants else None
        cleaned = spec.validate(data, variant)
        identity = make_identity(spec, variant, f"GOLD{i:08d}")
        items.append((label, size, spec, variant, cleaned, identity, render_docx(spec, variant, cleaned, identity)))
    pdfs = to_pdf([it[-1] for it in items])
    return [Printed(label, size, spec, variant, cleaned, identity.doc_id, stamp(pdf, identity))
            for (label, size, spec, variant, cleaned, identity, _docx), pdf in zip(items, pdfs, strict=True)]


def pages_png(pdf: bytes, dpi: int = DPI) -> list[bytes]:
    """Each page as a grey PNG."""
    import pypdfium2 as pdfium

    from forms.pdfium_lock import PDFIUM_LOCK

    out = []
    with PDFIUM_LOCK:
        doc = pdfium.PdfDocument(pdf)
        try:
            for i in range(len(doc)):
                img = doc[i].render(scale=dpi / 72, grayscale=True).to_pil().convert("L")
                buf = io.BytesIO()
                img.save(buf, format="PNG", optimize=True)
                out.append(buf.getvalue())
        finally:
            doc.close()
    return out


def golden_name(key: str, page: int) -> str:
    return f"{key}-p{page:02d}.png"


def compare(png_a: bytes, png_b: bytes) -> tuple[bool, str]:
    """Whether two page images match within the tolerance, and the measured difference."""
    from PIL import Image

    a = np.asarray(Image.open(io.BytesIO(png_a)).convert("L"), dtype=np.int16)
    b = np.asarray(Image.open(io.BytesIO(png_b)).convert("L"), dtype=np.int16)
    if a.shape != b.shape:
        return False, f"size {a.shape} vs {b.shape}"
    diff = np.abs(a - b)
    mean, area = float(diff.mean()), float((diff > 64).mean())
    return mean <= MEAN_TOL and area <= AREA_TOL, f"mean {mean:.2f}, changed area {area:.4f}"


def contact_sheet(printed: list[Printed], out_dir: Path = SHEET_DIR) -> Path:
    """An HTML page of every page (current rendering, and the approved one where it differs)."""
    if out_dir.exists():
        shutil.rmtree(out_dir)
    (out_dir / "current").mkdir(parents=True)
    (out_dir / "approved").mkdir()
    rows = []
    for p in printed:
        cells = []
        for no, png in enumerate(pages_png(p.pdf), 1):
            name = golden_name(p.key, no)
            (out_dir / "current" / name).write_bytes(png)
            gold = GOLDEN_DIR / name
            note, cls = "new (no approved image)", "new"
            if gold.exists():
                same, how = compare(png, gold.read_bytes())
                shutil.copy(gold, out_dir / "approved" / name)
                note, cls = ("matches approved" if same else f"differs: {how}"), ("same" if same else "diff")
            approved = f'<img src="approved/{name}" title="approved">' if cls == "diff" else ""
            cells.append(f'<figure class="{cls}"><img src="current/{name}" title="current">{approved}'
                         f"<figcaption>p{no} · {html.escape(note)}</figcaption></figure>")
        title = f"{p.spec.doc_title(p.variant)} — {p.label} — {p.size}"
        rows.append(f"<section><h2>{html.escape(title)}</h2>{''.join(cells)}</section>")
    doc = ("<!doctype html><meta charset=utf-8><title>版面审阅 contact sheet</title><style>"
           "body{font-family:sans-serif;margin:1em}section{margin-bottom:1.5em}"
           "figure{display:inline-block;margin:4px;padding:3px;border:2px solid #ccc;vertical-align:top}"
           "figure.diff{border-color:#c00}figure.new{border-color:#e90}img{width:280px;margin:1px;"
           "border:1px solid #999}figcaption{font-size:12px}</style>"
           "<h1>Printed forms: every form × variant × data size, every page</h1>"
           "<p>Red: differs from the approved image (approved shown beside it); orange: no approved image."
           " Approve with <code>python -m tests.golden --approve</code> after looking.</p>" + "".join(rows))
    path = out_dir / "contact.html"
    path.write_text(doc, encoding="utf-8")
    return path


def approve(printed: list[Printed]) -> int:
    """Replace the golden images with the current pages; returns how many were written."""
    GOLDEN_DIR.mkdir(parents=True, exist_ok=True)
    for old in GOLDEN_DIR.glob("*.png"):
        old.unlink()
    n = 0
    for p in printed:
        for no, png in enumerate(pages_png(p.pdf), 1):
            (GOLDEN_DIR / golden_name(p.key, no)).write_bytes(png)
            n += 1
    return n


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="render every form page, write the contact sheet, approve goldens")
    ap.add_argument("--approve", action="store_true", help="replace tests/golden/*.png with the current pages")
    args = ap.parse_args(argv)
    printed = render_all()
    sheet = contact_sheet(printed)
    sys.stdout.write(f"contact sheet: {sheet}\n")
    if args.approve:
        sys.stdout.write(f"approved {approve(printed)} page images in {GOLDEN_DIR}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
