"""Which document and page a scanned page is (QR code, else the printed caption or number), and
the cheap checks an upload passes before it is stored."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from forms import identity as ident
from forms.errors import TamperedDocument, UnsupportedInput
from parsers.images import FAX_BELOW_DPI, PageImage, rotate_quarter
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


def identify_page(page: PageImage, *, secret: ident.QrKeys | str, engine: OcrEngine | None = None) -> PageIdentity:
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
                            found.pages, "qr", rotation=hit.rotation, reason=found.key_note, qr=hit)
    if any(r.startswith("二维码校验失败") for r in reasons):
        # A forged code must not be bypassed by reading the printed number instead.
        return PageIdentity(page.index, "unidentified", reason="；".join(reasons))
    if engine is not None:
        found_ocr = _identify_by_ocr(page, engine)
        if found_ocr is not None:
            return found_ocr
    reason = "；".join(reasons) or "没有找到可读的二维码，也未能识别印刷的文号"
    return PageIdentity(page.index, "unidentified", reason=reason)


_FOOTER_RE = re.compile(r"第\s*(\d{1,3})\s*页\s*[,，]?\s*共\s*(\d{1,3})\s*页")


def _ocr_strip(page: PageImage, strip: np.ndarray, engine: OcrEngine) -> str | None:
    """Detector + recogniser on a strip of the page; low-resolution pages (a 120-dpi fax) are
    enlarged to about 200 dpi first, large ones reduced to 1400 px. None when OCR failed."""
    import cv2

    scale = min(1.0, 1400 / max(strip.shape[:2]))
    if page.dpi and page.dpi < FAX_BELOW_DPI:
        scale = min(200.0 / page.dpi, 1.8)
    if scale != 1.0:
        strip = cv2.resize(strip, None, fx=scale, fy=scale,
                           interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
    try:
        return " ".join(b.text for b in engine.recognize_page(strip))
    except OcrFailed as e:
        log.warning("identification OCR failed on %s: %s", page.label, e.message)
        return None


def _identify_by_ocr(page: PageImage, engine: OcrEngine) -> PageIdentity | None:
    """Detector + recogniser on the top third of the page (both ways up): the id caption printed
    under the QR square, else the document number; the page caption at the foot ("第 2 页 共 5
    页") gives the page of a page identified by its number, and is checked against the caption's."""
    for rotation in (0, 180):
        upright = rotate_quarter(page.pixels, rotation)
        text = _ocr_strip(page, upright[: max(1, upright.shape[0] // 3)], engine)
        if text is None:
            return None
        compact = re.sub(r"\s+", "", text)
        m = _DOC_ID_RE.search(text.upper()) or _DOC_ID_RE.search(compact.upper())
        number = _NUMBER_RE.search(compact)
        if not m and not number:
            continue
        foot = _ocr_strip(page, upright[int(upright.shape[0] * 0.88):], engine) or ""
        f = _FOOTER_RE.search(re.sub(r"\s+", "", foot))
        page_no, pages = (int(f.group(1)), int(f.group(2))) if f and 0 < int(f.group(1)) <= int(f.group(2)) \
            else (0, 0)
        if m:
            caption = (int(m.group(2)), int(m.group(3)))
            if page_no and caption != (page_no, pages):
                return PageIdentity(page.index, "unidentified", reason=(
                    f"二维码不可读；印刷的文书标识读作第{caption[0]}/{caption[1]}页，页脚却是第{page_no}页共{pages}页，"
                    "请人工指定"))
            return PageIdentity(page.index, "identified", m.group(1), page_no=caption[0], pages=caption[1],
                                method="ocr_doc_id", rotation=rotation, reason="二维码不可读，按印刷的文书标识识别")
        text_no = number.group(1).replace("[", "〔").replace("]", "〕").replace("(", "〔").replace(")", "〕")
        text_no = text_no.replace("（", "〔").replace("）", "〕")
        return PageIdentity(page.index, "identified", method="ocr_number", doc_number=text_no, page_no=page_no,
                            pages=pages, rotation=rotation,
                            reason="二维码不可读，按印刷的文号" + ("和页脚页码识别" if page_no else "识别"))
    return None
