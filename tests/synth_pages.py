"""Synthetic scanned form pages for the scan-reading tests (no real scans: all data is made up).

``make_page`` draws a white A4 page at a given dpi with a bordered table of label/value cells,
three tick boxes (some ticked), a signature zone (optionally scribbled), a red seal circle with
text (optional) and a real QR code made with segno from ``forms.identity.encode``. It returns
the RGB pixels, the template geometry in PDF points (top-left origin, as ``forms/geometry.py``
records it) and the 3x3 transform from points to pixels. ``degrade`` applies scanner and phone
damage and keeps that transform exact, so alignment error can be measured against the truth.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field

import cv2
import numpy as np
import segno
from PIL import Image, ImageDraw, ImageFont

from forms import identity
from forms.layout import QR_RIGHT_MM, QR_SIZE_MM, QR_TOP_MM

SECRET = "test-qr-secret"
FONT_PATH = "/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc"
FONT_INDEX_SC = 2  # Noto Serif CJK SC inside the collection
A4_PT = (595.28, 841.89)
MM = 72 / 25.4

TABLE = (80.0, 150.0, 515.0, 640.0)
LABEL_X1 = 190.0
ROWS = [  # (field, label, top, bottom)
    ("student_name", "学生姓名", 150.0, 190.0),
    ("id_number", "身份证号", 190.0, 230.0),
    ("school", "就读学校", 230.0, 270.0),
    ("reason", "辍学原因", 270.0, 320.0),
    ("principal_signature", "校长签名", 320.0, 420.0),
    ("school_seal", "学校盖章", 420.0, 640.0),
]
TICKS = {"reason_family": (205.0, 288.0, 219.0, 302.0), "reason_study": (305.0, 288.0, 319.0, 302.0),
         "reason_other": (405.0, 288.0, 419.0, 302.0)}
TICK_LABELS = {"reason_family": "家庭", "reason_study": "厌学", "reason_other": "其他"}


def qr_box_pt() -> tuple[float, float, float, float]:
    x1 = A4_PT[0] - QR_RIGHT_MM * MM
    return (x1 - QR_SIZE_MM * MM, QR_TOP_MM * MM, x1, (QR_TOP_MM + QR_SIZE_MM) * MM)


def payload(page: int = 1, pages: int = 1, doc_id: str = "7K3M9Q2XW4PD") -> str:
    ident = identity.Identity(doc_id, "dropout_report", None, "1", page, pages)
    return identity.encode(ident, SECRET)


@dataclass
class Page:
    pixels: np.ndarray
    geometry: dict
    transform: np.ndarray  # 3x3, PDF points -> pixels of ``pixels``
    dpi: float
    payload: str
    truth: dict = field(default_factory=dict)

    def to_px(self, pts) -> np.ndarray:
        pts = np.asarray(pts, dtype=np.float64).reshape(-1, 2)
        hom = np.hstack([pts, np.ones((len(pts), 1))]) @ self.transform.T
        return hom[:, :2] / hom[:, 2:3]


def _font(size_px: float) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(FONT_PATH, max(6, int(size_px)), index=FONT_INDEX_SC)


def make_page(dpi: float = 200, *, ticked=("reason_family",), signed: bool = True, sealed: bool = True,
              page_no: int = 1, pages: int = 1, seed: int = 0) -> Page:
    """Draw one filled form page at ``dpi``."""
    rng = np.random.default_rng(seed)
    s = dpi / 72.0
    w, h = round(A4_PT[0] * s), round(A4_PT[1] * s)
    img = Image.new("RGB", (w, h), "white")
    d = ImageDraw.Draw(img)
    lw = max(1, round(0.8 * s))

    def box(b, width=lw, outline="black"):
        d.rectangle([b[0] * s, b[1] * s, b[2] * s, b[3] * s], outline=outline, width=width)

    d.text((w / 2, 105 * s), "辍学情况报告单", fill="black", font=_font(20 * s), anchor="mm")
    box(TABLE)
    fields = {}
    labels = {}
    for name, label, top, bottom in ROWS:
        if top > TABLE[1]:
            d.line([TABLE[0] * s, top * s, TABLE[2] * s, top * s], fill="black", width=lw)
        labels[name] = (TABLE[0], top, LABEL_X1, bottom)
        fields[name] = (LABEL_X1, top, TABLE[2], bottom)
        d.text(((TABLE[0] + 8) * s, (top + bottom) / 2 * s), label, fill="black", font=_font(11 * s),
               anchor="lm")
    d.line([LABEL_X1 * s, TABLE[1] * s, LABEL_X1 * s, TABLE[3] * s], fill="black", width=lw)
    values = {"student_name": "张小明", "id_number": "110101201001010011", "school": "卫辉市第一初级中学"}
    for name, text in values.items():
        b = fields[name]
        d.text(((b[0] + 8) * s, (b[1] + b[3]) / 2 * s), text, fill=(20, 20, 60), font=_font(12 * s),
               anchor="lm")
    for name, b in TICKS.items():
        box(b)
        d.text(((b[2] + 4) * s, (b[1] + b[3]) / 2 * s), TICK_LABELS[name], fill="black", font=_font(10 * s),
               anchor="lm")
        if name in ticked:
            x0, y0, x1, y1 = (v * s for v in b)
            bw, bh = x1 - x0, y1 - y0
            pts = [(x0 + 0.2 * bw, y0 + 0.55 * bh), (x0 + 0.42 * bw, y0 + 0.8 * bh),
                   (x0 + 0.85 * bw, y0 + 0.18 * bh)]
            d.line(pts, fill="black", width=max(2, round(1.6 * s)), joint="curve")
    sig = fields["principal_signature"]
    d.text(((sig[2] - 60) * s, (sig[3] - 12) * s), "年 月 日", fill="black", font=_font(9 * s), anchor="lm")
    if signed:
        _scribble(d, rng, (sig[0] + 40, sig[1] + 20, sig[0] + 200, sig[3] - 25), s)
    seal_center = (TABLE[2] - 90, 560.0)
    if sealed:
        _seal(img, seal_center, 60.0, s)
    qr = qr_box_pt()
    code = payload(page_no, pages)
    q = segno.make_qr(code, error="m")
    buf = io.BytesIO()
    q.save(buf, kind="png", scale=10, border=0)
    qimg = Image.open(buf).convert("RGB")
    side = round((qr[2] - qr[0]) * s)
    img.paste(qimg.resize((side, side), Image.NEAREST), (round(qr[0] * s), round(qr[1] * s)))
    geometry = {"size": list(A4_PT), "tables": [list(TABLE)], "qr": list(qr), "fields": fields,
                "labels": labels, "ticks": TICKS}
    truth = {"ticked": set(ticked), "signed": signed, "sealed": sealed, "values": values}
    return Page(np.asarray(img).copy(), geometry, np.diag([s, s, 1.0]), dpi, code, truth)


def _scribble(d: ImageDraw.ImageDraw, rng, b, s):
    x0, y0, x1, y1 = b
    pts = []
    n = 40
    for i in range(n):
        t = i / (n - 1)
        x = x0 + t * (x1 - x0)
        y = (y0 + y1) / 2 + math.sin(t * 14 + rng.uniform(0, 0.6)) * (y1 - y0) * 0.35 * rng.uniform(0.6, 1)
        pts.append((x * s, y * s))
    d.line(pts, fill=(10, 10, 80), width=max(2, round(1.5 * s)), joint="curve")


def _seal(img: Image.Image, center, radius_pt, s):
    """A red official-seal imitation: ring, star and text, drawn on a transparent layer."""
    layer = Image.new("RGBA", img.size, (0, 0, 0, 0))
    d = ImageDraw.Draw(layer)
    cx, cy, r = center[0] * s, center[1] * s, radius_pt * s
    red = (220, 30, 40, 210)
    d.ellipse([cx - r, cy - r, cx + r, cy + r], outline=red, width=max(2, round(2.5 * s)))
    star = []
    for i in range(10):
        a = -math.pi / 2 + i * math.pi / 5
        rr = r * (0.28 if i % 2 == 0 else 0.11)
        star.append((cx + rr * math.cos(a), cy + rr * math.sin(a)))
    d.polygon(star, fill=red)
    font = _font(11 * s)
    for i, ch in enumerate("卫辉市第一初级中学"):
        a = math.radians(-160 + i * 140 / 8)
        pos = (cx + 0.72 * r * math.cos(a), cy + 0.72 * r * math.sin(a))
        d.text(pos, ch, fill=red, font=font, anchor="mm")
    img.paste(Image.alpha_composite(img.convert("RGBA"), layer).convert("RGB"))


# -- degradations: each returns a new Page with an exact transform ---------------------------------------


def _with(page: Page, pixels: np.ndarray, m: np.ndarray | None = None) -> Page:
    t = page.transform if m is None else m @ page.transform
    return Page(pixels, page.geometry, t, page.dpi, page.payload, page.truth)


def rotate(page: Page, degrees: float) -> Page:
    """Skew like a crooked sheet on a flatbed (counter-clockwise positive, canvas grows)."""
    h, w = page.pixels.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    cos, sin = abs(m[0, 0]), abs(m[0, 1])
    nw, nh = int(h * sin + w * cos), int(h * cos + w * sin)
    m[0, 2] += nw / 2 - w / 2
    m[1, 2] += nh / 2 - h / 2
    out = cv2.warpAffine(page.pixels, m, (nw, nh), flags=cv2.INTER_LINEAR, borderValue=(255, 255, 255))
    return _with(page, out, np.vstack([m, [0, 0, 1]]))


def quarter(page: Page, k: int) -> Page:
    """Turn the sheet by ``k`` counter-clockwise quarter turns (np.rot90)."""
    h, w = page.pixels.shape[:2]
    out = np.ascontiguousarray(np.rot90(page.pixels, k))
    m = np.eye(3)
    cw, ch = w, h
    for _ in range(k % 4):
        step = np.array([[0, 1, 0], [-1, 0, cw - 1], [0, 0, 1]], dtype=np.float64)
        m = step @ m
        cw, ch = ch, cw
    return _with(page, out, m)


def perspective(page: Page, strength: float = 0.06, seed: int = 1, background=(70, 60, 50)) -> Page:
    """A phone photo: the sheet seen at an angle on a dark desk, with uneven light."""
    rng = np.random.default_rng(seed)
    h, w = page.pixels.shape[:2]
    pad = int(0.12 * max(w, h))
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    jitter = rng.uniform(-strength, strength, (4, 2)) * [w, h]
    dst = (src + pad + jitter).astype(np.float32)
    m = cv2.getPerspectiveTransform(src, dst)
    size = (w + 2 * pad, h + 2 * pad)
    out = cv2.warpPerspective(page.pixels, m, size, flags=cv2.INTER_LINEAR, borderValue=background)
    # Light falling off towards one corner.
    yy, xx = np.mgrid[0:size[1], 0:size[0]].astype(np.float32)
    shade = 1.0 - 0.35 * (xx / size[0] * 0.6 + yy / size[1] * 0.4)
    out = np.clip(out.astype(np.float32) * shade[..., None], 0, 255).astype(np.uint8)
    return _with(page, out, m)


def blur(page: Page, sigma: float = 1.2) -> Page:
    return _with(page, cv2.GaussianBlur(page.pixels, (0, 0), sigma))


def noise(page: Page, sd: float = 12.0, seed: int = 2) -> Page:
    rng = np.random.default_rng(seed)
    out = np.clip(page.pixels.astype(np.int16) + rng.normal(0, sd, page.pixels.shape), 0, 255)
    return _with(page, out.astype(np.uint8))


def jpeg(page: Page, quality: int = 50) -> Page:
    ok, enc = cv2.imencode(".jpg", page.pixels[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return _with(page, cv2.imdecode(enc, cv2.IMREAD_COLOR)[:, :, ::-1].copy())


def black_and_white(page: Page) -> Page:
    """A bilevel office scan: everything darker than mid-grey becomes black (seals included)."""
    gray = cv2.cvtColor(page.pixels, cv2.COLOR_RGB2GRAY)
    bw = np.where(gray < 160, 0, 255).astype(np.uint8)
    return _with(page, cv2.cvtColor(bw, cv2.COLOR_GRAY2RGB))


def png_bytes(pixels: np.ndarray, dpi: float | None = None) -> bytes:
    buf = io.BytesIO()
    kw = {"dpi": (dpi, dpi)} if dpi else {}
    Image.fromarray(pixels).save(buf, format="PNG", compress_level=1, **kw)
    return buf.getvalue()
