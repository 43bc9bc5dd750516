"""Which document and page a scanned page is (QR code, else the printed caption or number), and
the cheap checks an upload passes before it is stored."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

from forms import identity as ident
from forms.errors import TamperedDocument, UnsupportedInput
from parsers.images import PageImage, rotate_quarter
from parsers.images import is_blank as page_is_blank
from parsers.ocr import OcrEngine, OcrFailed
from parsers.qr import find_codes

log = logging.getLogger(__name__)

_DOC_ID_RE = re.compile(r"([0-9A-HJKMNP-TV-Z]{12})\s*(\d{1,3})\s*/\s*(\d{1,3})")
_NUMBER_RE = re.compile(r"([\u4e00-\u9fff]{2,30}[〔\[(（]\d{4}[〕\])）]\d{1,5}号)")

# ---- identification --------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class PageIdentity:
    """What a page is. ``status``: "identified", "blank" or "unidentified" (``reason`` says why).
    ``method``: "qr" (verified code), "ocr_doc_id" (printed id caption) or "ocr_number" (printed
    document number: ``doc_number`` is set, ``page_no`` may be 0 = unknown). ``rotation``:
    quarter turn of the content (degrees clockwise)."""

    index: int
    status: str
    doc_id: str | None = None
    form: str | None = None
    variant: str | None = None
    page_no: int = 0
    pages: int = 0
    method: str = ""
    doc_number: str | None = None
    rotation: int = 0
    reason: str = ""
    qr: Any = None  # parsers.qr.QrHit when read from the code

    def to_json(self) -> dict:
        return {"index": self.index, "status": self.status, "doc_id": self.doc_id, "form": self.form,
                "variant": self.variant, "page_no": self.page_no, "pages": self.pages, "method": self.method,
                "doc_number": self.doc_number, "rotation": self.rotation, "reason": self.reason}


def identify_page(page: PageImage, *, secret: str, engine: OcrEngine | None = None) -> PageIdentity:
    """Identify one page: verified QR code first, then OCR of the printed caption/number."""
    if page_is_blank(page):
        return PageIdentity(page.index, "blank", reason="空白页（没有内容）")
    hits = find_codes(page)
    reasons = []
    for hit in hits:
        try:
            found = ident.decode(hit.payload, secret)
        except TamperedDocument as e:
            reasons.append(f"二维码校验失败（{e.message}）")
            continue
        except UnsupportedInput:
            reasons.append("二维码不是本系统生成的文书标识（其他文件的页面）")
            continue
        return PageIdentity(page.index, "identified", found.doc_id, found.form, found.variant, found.page,
                            found.pages, "qr", rotation=hit.rotation, qr=hit)
    if any(r.startswith("二维码校验失败") for r in reasons):
        # A forged code must not be bypassed by reading the printed number instead.
        return PageIdentity(page.index, "unidentified", reason="；".join(reasons))
    if engine is not None:
        found_ocr = _identify_by_ocr(page, engine)
        if found_ocr is not None:
            return found_ocr
    reason = "；".join(reasons) or "没有找到可读的二维码，也未能识别印刷的文号"
    return PageIdentity(page.index, "unidentified", reason=reason)


def _identify_by_ocr(page: PageImage, engine: OcrEngine) -> PageIdentity | None:
    """Detector + recogniser on the top third of the page (both ways up): the id caption printed
    under the QR square, else the document number."""
    import cv2

    for rotation in (0, 180):
        upright = rotate_quarter(page.pixels, rotation)
        top = upright[: max(1, upright.shape[0] // 3)]
        scale = min(1.0, 1400 / max(top.shape[:2]))
        if scale < 1.0:
            top = cv2.resize(top, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        try:
            boxes = engine.recognize_page(top)
        except OcrFailed as e:
            log.warning("identification OCR failed on %s: %s", page.label, e.message)
            return None
        text = " ".join(b.text for b in boxes)
        compact = re.sub(r"\s+", "", text)
        m = _DOC_ID_RE.search(text.upper()) or _DOC_ID_RE.search(compact.upper())
        if m:
            return PageIdentity(page.index, "identified", m.group(1), page_no=int(m.group(2)),
                                pages=int(m.group(3)), method="ocr_doc_id", rotation=rotation,
                                reason="二维码不可读，按印刷的文书标识识别")
        m = _NUMBER_RE.search(compact)
        if m:
            number = m.group(1).replace("[", "〔").replace("]", "〕").replace("(", "〔").replace(")", "〕")
            number = number.replace("（", "〔").replace("）", "〕")
            return PageIdentity(page.index, "identified", method="ocr_number", doc_number=number,
                                rotation=rotation, reason="二维码不可读，按印刷的文号识别")
    return None
