"""The CJK faces print Simplified Chinese glyph forms, not Japanese ones.

The Noto CJK collection shares one glyph outline table across its languages (so the embedded
subset is named ``NotoSerifCJKjp-…`` whatever face was chosen); what matters is which glyphs get
printed. Characters whose SC and JP forms differ in this collection (直 骨 真 令 写 强) are
rendered in a table cell through the production path, cut out of the page and compared with the same character drawn
from the collection's SC face and from its JP face: each must look like the SC one."""

from __future__ import annotations

import numpy as np
import pytest

from forms import tools
from forms.registry import get_spec
from tests._render_helpers import render_pdf
from tests.samples_data import sample_input

pytestmark = pytest.mark.skipif(not tools.probe("soffice").installed, reason="LibreOffice not installed")

NOTO_SERIF = "/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc"
FACES = {"SC": 2, "JP": 0}  # indexes in the collection (fc-list)
CHARS = "直骨真令写强"
SIDE = 48


def _norm(img: np.ndarray) -> np.ndarray:
    """Ink of a glyph image cropped to its ink box, resized to SIDE x SIDE, as 0/1."""
    from PIL import Image

    ink = img < 128
    ys, xs = np.nonzero(ink)
    crop = ink[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    return np.asarray(Image.fromarray((crop * 255).astype(np.uint8)).resize((SIDE, SIDE))) > 127


def _reference(ch: str, face: str) -> np.ndarray:
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.truetype(NOTO_SERIF, 200, index=FACES[face])
    img = Image.new("L", (260, 260), 255)
    ImageDraw.Draw(img).text((20, 10), ch, font=font, fill=0)
    return _norm(np.asarray(img))


def _printed_glyphs(pdf: bytes, chars: str) -> dict[str, np.ndarray]:
    """The first printed occurrence of each char in a table cell (the 宋体 table face), at 600 dpi."""
    import pypdfium2 as pdfium

    from forms.geometry import _page_objects
    from forms.pdfium_lock import PDFIUM_LOCK

    out: dict[str, np.ndarray] = {}
    with PDFIUM_LOCK:
        doc = pdfium.PdfDocument(pdf)
        try:
            for i in range(len(doc)):
                page = doc[i]
                chars_on_page, _segments, _marks = _page_objects(page)
                scale = 600 / 72
                img = None
                for c in chars_on_page:
                    if c["text"] in chars and c["text"] not in out and c["size"] < 12:
                        if img is None:
                            img = np.asarray(page.render(scale=scale, grayscale=True).to_pil().convert("L"))
                        x0, y0 = int(c["x0"] * scale) - 2, int(c["top"] * scale) - 2
                        x1, y1 = int(c["x1"] * scale) + 2, int(c["bottom"] * scale) + 2
                        out[c["text"]] = _norm(img[y0:y1, x0:x1])
        finally:
            doc.close()
    return out


def test_table_text_prints_simplified_chinese_forms():
    spec = get_spec("dropout_report")
    data = sample_input("dropout_report")
    data["school_opinion"] = "直接家访，骨干教师真诚劝说，令家长写下承诺，强化监护"
    pdf = render_pdf(spec, None, spec.validate(data))
    got = _printed_glyphs(pdf, CHARS)
    assert set(got) == set(CHARS)
    for ch, glyph in got.items():
        sc = (glyph == _reference(ch, "SC")).mean()
        jp = (glyph == _reference(ch, "JP")).mean()
        assert sc > jp, f"{ch}: not the Simplified Chinese form ({sc:.3f} SC vs {jp:.3f} JP)"
