"""Make the small labelled scan set in this folder (see README.md), and the helpers the scan
tests and ``bench/scan.py`` share to build pages.

Real forms, real renderer: ``forms.render.render_docx`` with the generated templates, the warm
LibreOffice converter (``forms.pdf``), the QR stamper (``forms.stamp``) and the geometry recorder
(``forms.geometry.record_geometry``). Pages are rasterised with pdftoppm (``forms.tools.run``),
then "returned": handwriting in the AR PL UKai font (fonts-arphic-ukai), ticks drawn over the
printed boxes, scribbled signatures, red seals overlapping text, and scanner/phone damage.
All people and numbers are synthetic (``tests.samples_data``).

Run from the repository root: ``.venv/bin/python -m tests.samples.scans.make_scans``.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import math
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

HERE = Path(__file__).resolve().parent
SECRET = "test-qr-secret"
HAND_FONT = "/usr/share/fonts/truetype/arphic/ukai.ttc"
DOC_ID = "SCANTEST0001"
NOTICE_DATA_OVERRIDES = {"issue_date": dt.date(2025, 9, 26)}


# ---- issuing -------------------------------------------------------------------------------------

def issue(form: str, variant: str | None, doc_id: str = DOC_ID, overrides: Mapping | None = None,
          secret: str = SECRET) -> tuple[bytes, dict, dict]:
    """(stamped PDF, geometry, issued snapshot as JSON) of a sample document, real renderer."""
    from cases.store.models import to_json
    from forms import geometry, pdf, render, stamp
    from forms import identity as ident
    from forms.registry import get_spec
    from tests._render_helpers import TEMPLATES
    from tests.samples_data import sample_input

    spec = get_spec(form)
    var = spec.variant(variant)
    data = sample_input(form, variant, hand=False)
    data.update(overrides or {})
    cleaned = spec.validate(data, var)
    identity = ident.Identity(doc_id, spec.code, var.code if var else None, spec.version)
    issued_on = cleaned.get("issue_date") or dt.date(2025, 9, 26)
    docx = render.render_docx(spec, var, cleaned, identity, templates_dir=TEMPLATES, extra={"doc": {
        "number": cleaned.get(spec.number_field) or "", "id": doc_id,
        "date": f"{issued_on.year}年{issued_on.month}月{issued_on.day}日"}})
    raw = pdf.get_converter(1, 120).convert(docx)
    stamped, _pages = stamp.stamp_pdf(raw, identity, secret)
    return stamped, geometry.record_geometry(stamped, spec, var), to_json(cleaned)


def rasterise(pdf: bytes, page_no: int, dpi: int = 200) -> np.ndarray:
    """One PDF page as RGB pixels (pdftoppm)."""
    from forms import tools

    with tempfile.TemporaryDirectory(prefix="bx-scan-") as tmp:
        src = Path(tmp) / "in.pdf"
        src.write_bytes(pdf)
        tools.run(["pdftoppm", "-r", str(dpi), "-f", str(page_no), "-l", str(page_no), "-png", str(src),
                   str(Path(tmp) / "p")], timeout=60)
        out = next(Path(tmp).glob("p-*.png"))
        with Image.open(out) as img:
            return np.asarray(img.convert("RGB")).copy()


# ---- filling in by "hand" -----------------------------------------------------------------------

def _font(px: float) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(HAND_FONT, max(8, int(px)))


def fill(pixels: np.ndarray, page_geo: Mapping, dpi: float, *, hand: Mapping[str, str] = (),
         ticks: Mapping[str, Sequence[int]] = (), tick_boxes: Mapping[str, Sequence] = (),
         signatures: Sequence[str] = (), seals: Sequence[str] = (), fingerprints: Sequence[str] = (),
         faint_ticks: Mapping[str, Sequence[int]] = (), boxed: Mapping[str, str] = (),
         seed: int = 0) -> np.ndarray:
    """Write on a rasterised page: ``hand`` texts in UKai into field boxes, ticks into the k-th
    printed box of a field, ``boxed`` digits one per printed character box (a space leaves a box
    empty; each digit 3.2-4.4 mm tall, a little off centre), scribbles into signature
    zones, red seals and fingerprints."""
    rng = np.random.default_rng(seed)
    s = dpi / 72.0
    img = Image.fromarray(pixels.copy())
    d = ImageDraw.Draw(img)
    fields = page_geo["fields"]
    ink = (25, 30, 70)  # blue-black ballpoint
    for path, text in dict(hand).items():
        x0, y0, x1, y1 = fields[path]["bbox"]
        size = min((y1 - y0) * 0.62, 15) * s
        d.text(((x0 + 4) * s, (y0 + y1) / 2 * s - size * 0.55), text, font=_font(size), fill=ink)
    for path, which in dict(ticks).items():
        for k in which:
            _tick(d, tick_boxes[path][k], s, ink, width=max(2, int(0.9 * s)))
    for path, digits in dict(boxed).items():
        cells = tick_boxes[path]
        assert len(digits) == len(cells), (path, digits, len(cells))
        for ch, (x0, y0, x1, y1) in zip(digits, cells, strict=True):
            if ch == " ":
                continue
            # ordinary handwriting: digits 3.2-4.4 mm tall (UKai's stand about 0.7 em high)
            size = rng.uniform(4.6, 6.3) * 72 / 25.4 * s
            cx = (x0 + x1) / 2 * s + rng.normal(0, 0.08) * (x1 - x0) * s
            cy = (y0 + y1) / 2 * s + rng.normal(0, 0.08) * (y1 - y0) * s
            d.text((cx, cy), ch, font=_font(size), fill=ink, anchor="mm")
    for path, which in dict(faint_ticks).items():
        for k in which:
            bx = tick_boxes[path][k]
            cx, cy = (bx[0] + bx[2]) / 2 * s, (bx[1] + bx[3]) / 2 * s
            d.line([(cx - 0.8 * s, cy), (cx + 0.8 * s, cy + 0.4 * s)], fill=(150, 150, 160), width=1)
    for path in signatures:
        _scribble(d, fields[path]["bbox"], s, rng, ink)
    for path in fingerprints:
        x0, y0, x1, y1 = fields[path]["bbox"]
        cx, cy = (x0 + x1) / 2 * s + 30 * s, (y0 + y1) / 2 * s
        d.ellipse([cx - 16 * s * 0.45, cy - 22 * s * 0.45, cx + 16 * s * 0.45, cy + 22 * s * 0.45],
                  fill=(200, 40, 50))
    for path in seals:
        x0, y0, x1, y1 = fields[path]["bbox"]
        _seal(img, ((x0 + x1) / 2 + 40, (y0 + y1) / 2), 42, s)
    return np.asarray(img)


def _tick(d: ImageDraw.ImageDraw, box, s: float, ink, width: int) -> None:
    x0, y0, x1, y1 = (v * s for v in box)
    w, h = x1 - x0, y1 - y0
    d.line([(x0 + 0.15 * w, y0 + 0.5 * h), (x0 + 0.42 * w, y0 + 0.85 * h), (x0 + 1.1 * w, y0 - 0.2 * h)],
           fill=ink, width=width, joint="curve")


def _scribble(d: ImageDraw.ImageDraw, bbox, s: float, rng, ink) -> None:
    x0, y0, x1, y1 = bbox
    cx, cy = x0 + (x1 - x0) * 0.3, (y0 + y1) / 2
    pts = []
    for t in np.linspace(0, 1, 40):
        pts.append(((cx + t * min(90, (x1 - x0) * 0.6) + rng.normal(0, 1.5)) * s,
                    (cy + 7 * math.sin(t * 13 + rng.normal(0, 0.3)) + rng.normal(0, 1)) * s))
    d.line(pts, fill=ink, width=max(2, int(0.8 * s)), joint="curve")


def _seal(img: Image.Image, centre_pt, radius_pt: float, s: float) -> None:
    layer = Image.new("RGBA", img.size, (0, 0, 0, 0))
    d = ImageDraw.Draw(layer)
    cx, cy, r = centre_pt[0] * s, centre_pt[1] * s, radius_pt * s
    red = (210, 30, 40, 200)
    d.ellipse([cx - r, cy - r, cx + r, cy + r], outline=red, width=max(4, int(3.2 * s)))
    star = [(cx + 0.3 * r * math.cos(a), cy + 0.3 * r * math.sin(a)) for a in
            [(-90 + 144 * k) * math.pi / 180 for k in range(5)]]
    d.polygon(star, fill=red)
    d.text((cx - 0.62 * r, cy + 0.3 * r), "人民政府", font=_font(0.32 * r), fill=red)
    img.paste(Image.alpha_composite(img.convert("RGBA"), layer).convert("RGB"))


# ---- damage -------------------------------------------------------------------------------------------

SERIF = "/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc"


# Look-alike characters a forger might print over a value's last character (stroke-level changes
# that a plain ink comparison scores close to scanning noise).
LOOKALIKES = {"国": "固", "然": "燃", "班": "斑", "学": "字", "镇": "慎", "梅": "海", "庆": "床", "明": "朋",
              "华": "毕", "兰": "当", "市": "币", "中": "申", "日": "曰", "王": "玉", "人": "入", "己": "已",
              "未": "末", "土": "士", "大": "太"}


def tamper_last_char(pixels: np.ndarray, bbox_pt, dpi: float, char: str) -> np.ndarray:
    """Paint over the last printed character inside ``bbox_pt`` and print ``char`` in its place
    (same height, Noto Serif CJK): a forger changing one character of a printed value."""
    f = dpi / 72.0
    x0, y0, x1, y1 = (int(round(c * f)) for c in bbox_pt)
    ink = pixels[y0:y1, x0:x1].mean(axis=2) < 128
    ink[:, :4] = ink[:, -4:] = False
    ink[:4, :] = ink[-4:, :] = False
    rows, cols = np.nonzero(ink.any(axis=1))[0], np.nonzero(ink.any(axis=0))[0]
    top, bottom, right = rows[0], rows[-1] + 1, cols[-1] + 1
    size = bottom - top
    left = right - size
    img = Image.fromarray(pixels.copy())
    draw = ImageDraw.Draw(img)
    draw.rectangle([x0 + left - 1, y0 + top - 1, x0 + right + 1, y0 + bottom + 1], fill=(255, 255, 255))
    font = ImageFont.truetype(SERIF, int(size * 1.12))
    bx = font.getbbox(char)
    draw.text((x0 + left - bx[0], y0 + top - bx[1]), char, font=font, fill=(0, 0, 0))
    return np.asarray(img)


def rotate(pixels: np.ndarray, degrees: float) -> np.ndarray:
    h, w = pixels.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    return cv2.warpAffine(pixels, m, (w, h), borderValue=(255, 255, 255))


def noise(pixels: np.ndarray, sd: float = 6.0, seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(pixels.astype(np.int16) + rng.normal(0, sd, pixels.shape[:2])[..., None], 0, 255).astype(np.uint8)


def black_and_white(pixels: np.ndarray) -> np.ndarray:
    g = cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY)
    bw = np.where(g < 150, 0, 255).astype(np.uint8)
    return cv2.cvtColor(bw, cv2.COLOR_GRAY2RGB)


def rescale(pixels: np.ndarray, factor: float) -> np.ndarray:
    return cv2.resize(pixels, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)


def photo(pixels: np.ndarray, strength: float = 0.05, seed: int = 1) -> np.ndarray:
    """Phone photo: perspective on a dark desk, a soft shadow gradient and a little blur."""
    rng = np.random.default_rng(seed)
    h, w = pixels.shape[:2]
    pad = int(0.08 * max(h, w))
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    jitter = rng.uniform(-strength, strength, (4, 2)) * [w, h]
    dst = np.float32(src + pad + jitter)
    m = cv2.getPerspectiveTransform(src, dst)
    out = cv2.warpPerspective(pixels, m, (w + 2 * pad, h + 2 * pad), borderValue=(70, 60, 50))
    grad = np.linspace(0.78, 1.0, out.shape[1])[None, :, None]
    out = np.clip(out * grad, 0, 255).astype(np.uint8)
    return cv2.GaussianBlur(out, (0, 0), 0.8)


def encode(pixels: np.ndarray, fmt: str = "PNG", dpi: float | None = None, quality: int = 50,
           bilevel: bool = False) -> bytes:
    img = Image.fromarray(pixels)
    if bilevel:
        img = img.convert("1")
    buf = io.BytesIO()
    kw = {"dpi": (dpi, dpi)} if dpi else {}
    if fmt == "JPEG":
        kw.update(quality=quality)
    elif fmt == "PNG":
        kw.update(optimize=True)
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


# ---- the committed set --------------------------------------------------------------------------------

# Pages of a 限期返校通知书 as laid out now (存根 1, 正本 2-5 with the 落款 on 5, 送达回证 6). The
# committed scans keep the issued PDFs they were made from; these apply when the set is remade.
RECEIPT_PAGE = 6
STUB_PAGE = 1
SEAL_PAGE = 5


def receipt_direct() -> tuple[dict, dict, dict]:
    """(hand texts, ticks, marks) of a 回证 served directly on the guardian, signed and dated."""
    hand = {"service_place": "城关镇东关村三组18号", "service_time": "2025年9月29日10时30分",
            "recipient_signed_on": "2025.9.29"}
    ticks = {"service_method": [0]}
    marks = {"signatures": ["recipient_signature", "server_signature_1"]}
    return hand, ticks, marks


def receipt_left() -> tuple[dict, dict, dict]:
    """A 留置送达: refusal reason, witness and officer signatures; no recipient signature."""
    hand = {"service_place": "城关镇东关村三组18号", "service_time": "2025年9月30日9时",
            "refusal_reason": "监护人拒绝签收", "witness_name": "刘德明", "witness_unit": "东关村委会"}
    ticks = {"service_method": [1]}
    marks = {"signatures": ["witness_signature", "server_signature_1", "server_signature_2"]}
    return hand, ticks, marks


def main() -> None:  # pragma: no cover - run by hand to regenerate the set
    from parsers.scan import tick_boxes_from_pdf

    pdf, geo, issued = issue("guardian_notice", "xianqi", overrides=NOTICE_DATA_OVERRIDES)
    (HERE / "issued.pdf").write_bytes(pdf)
    (HERE / "geometry.json").write_text(json.dumps(geo, ensure_ascii=False, indent=1), encoding="utf-8")
    (HERE / "issued.json").write_text(json.dumps(issued, ensure_ascii=False, indent=1), encoding="utf-8")
    ticks_all = tick_boxes_from_pdf(pdf, geo)
    pages = geo["pages"]

    def page(no: int, dpi: int, **kw) -> np.ndarray:
        return fill(rasterise(pdf, no, dpi), pages[no - 1], dpi, tick_boxes=ticks_all[no], **kw)

    hand, ticks, mk = receipt_direct()
    p = rotate(page(RECEIPT_PAGE, 200, hand=hand, ticks=ticks, **mk), 2.0)
    (HERE / "receipt_direct_flatbed200.jpg").write_bytes(encode(p, "JPEG", 200, quality=85))
    hand, ticks, mk = receipt_left()
    p = page(RECEIPT_PAGE, 200, hand=hand, ticks=ticks, **mk)
    p = black_and_white(rescale(rotate(p, 180.0 - 1.0), 0.75))
    (HERE / "receipt_left_fax150_upside_down.png").write_bytes(encode(p, "PNG", 150, bilevel=True))
    p = page(STUB_PAGE, 200, signatures=["handler_signature"], ticks={"stub_service_method": [0]},
             hand={"stub_service_date": "2025.9.29"})
    (HERE / "stub_photo.jpg").write_bytes(encode(photo(p), "JPEG", None, quality=60))
    p = page(SEAL_PAGE, 200, seals=["issuer_seal"])
    (HERE / "original_sealed_jpeg50.jpg").write_bytes(encode(rotate(p, -1.5), "JPEG", 200, quality=50))
    blank = np.full((1169, 827, 3), 250, np.uint8)
    blank[np.random.default_rng(5).integers(0, 1169, 40), np.random.default_rng(6).integers(0, 827, 40)] = 90
    (HERE / "blank_page.png").write_bytes(encode(blank, "PNG", 100))
    # A page of a document from another system: a QR code that is not ours.
    import segno

    other = np.full((1169, 827, 3), 255, np.uint8)
    buf = io.BytesIO()
    segno.make("https://example.invalid/other-form/42", error="m").save(buf, kind="png", scale=6)
    qr = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    other[60:60 + qr.shape[0], 600:600 + qr.shape[1]] = qr
    cv2.putText(other, "Other office form 42", (80, 400), cv2.FONT_HERSHEY_SIMPLEX, 1.2, (0, 0, 0), 2)
    (HERE / "foreign_page.png").write_bytes(encode(other, "PNG", 100))


if __name__ == "__main__":  # pragma: no cover
    main()
