"""The scan pipeline: returned paper (flatbed scans, copier PDFs, fax pages, phone photos) read
back into per-field readings with a confidence, the crop each came from and a reason.

Two steps, because parsers never touch the database (the caller looks documents up):

1. ``identify_page(page, secret=..., engine=...)`` -> ``PageIdentity``: the QR payload verified
   with ``forms.identity.decode`` (rotation from the code); without a readable code, OCR of the
   printed caption under the QR square (document id and page i/n) or of the printed document
   number; otherwise "unidentified" with the reason, for a person to assign. Blank pages are
   recognised and skipped.
2. ``read_page(page, identity, ctx, engine=...)`` -> ``PageReading``: the page is aligned to the
   template page recorded at render time (``Document.geometry``) and every field on it is read
   through its spec from its own crop only (never the full page):

   * printed values (INPUT/SYSTEM fields that were filled when issued) are compared with the issued
     snapshot; the value is always the issued one, a mismatch is flagged (possible tampering).
     Labels are never OCR'd: they are printed text we already know (RapidOCR's recognition-only
     path drops 辍). A low-confidence or mismatching RapidOCR answer is retried with the fallback
     engine (Tesseract) before flagging;
   * handwritten values are OCR'd and validated: ID number checksum, dates plausible (not before
     the document was issued, not in the future), names matched against the case's people
     (pypinyin for near-misses); validation moves the confidence. Dates and numbers printed as
     character boxes (DOMAIN §5.6.2, ``Field.hand_boxes``) are read box by box: the printed boxes
     are taken away with the issued PDF as reference (``box_writing``), the written digits are
     read as one line and each alone, and a value goes through only when every written box holds
     exactly one digit and both readings agree;
   * tick boxes (the printed ☐ of CHOICE/MULTI/BOOL fields, located in the issued PDF with
     ``tick_boxes_from_pdf``): ticked / empty / ambiguous, ambiguous goes to review;
   * signature, fingerprint and red-seal zones: presence only (DOMAIN §5.6 3(b): a present mark is
     confirmed by a person).

A reading below ``ctx.threshold``, failing validation, ambiguous or flagged has ``needs_review``.
``merge_readings`` folds the pages of one document into one value per field path.
"""

from __future__ import annotations

import datetime as dt
import difflib
import io
import logging
import re
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from forms import identity as ident
from forms import validators as v
from forms.errors import TamperedDocument, UnsupportedInput
from forms.pdfium_lock import PDFIUM_LOCK
from forms.spec import BOX_CHARS, Field, Filled, FormSpec, Kind, Variant, format_value, is_blank
from parsers import marks
from parsers.align import DEFAULT_CROP_DPI, AlignmentFailed, TemplatePage, align
from parsers.images import PageImage, ink_mask, rotate_quarter, to_gray
from parsers.images import is_blank as page_is_blank
from parsers.ocr import OcrEngine, OcrFailed, OcrText, split_lines
from parsers.qr import find_codes

log = logging.getLogger(__name__)

BBox = tuple[float, float, float, float]
DEFAULT_THRESHOLD = 0.9
# A person always confirms what is read of a field marked ``Field.confirm`` in its spec (DOMAIN
# §5.6 3(b): the service date and method). Signatures, seals and fingerprints are confirmed by
# kind, handwritten phone numbers too (no check digit: a 4 written open reads as a 1 to both
# engines on a fax, and nothing in the number says so).
CONFIRM_KINDS = frozenset({Kind.PHONE})
# Printed values longer than this are statute texts and clause paragraphs: not re-read on scans.
MAX_PRINTED_CHECK = 60
_PATH_RE = re.compile(r"^([a-z_][a-z0-9_]*)\[(\d+)\]\.([a-z_][a-z0-9_]*)$")
_DOC_ID_RE = re.compile(r"([0-9A-HJKMNP-TV-Z]{12})\s*(\d{1,3})\s*/\s*(\d{1,3})")
_NUMBER_RE = re.compile(r"([\u4e00-\u9fff]{2,30}[〔\[(（]\d{4}[〕\])）]\d{1,5}号)")
MARK_KINDS = (Kind.SIGNATURE, Kind.SEAL)
TICK_KINDS = (Kind.CHOICE, Kind.MULTI, Kind.BOOL)

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


# ---- reading -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldReading:
    """One field as read from a scan.

    ``origin``: "printed" (compared with the issued value), "hand" (OCR'd), "tick" or "mark".
    ``status``: match | mismatch | unchecked | read | blank | invalid | ambiguous | low.
    ``value``: JSON-safe proposed value (dates as ISO strings, marks as booleans).
    ``bbox_px``: the crop's box in the upright page image; ``bbox_pt`` in PDF points."""

    path: str
    kind: str
    origin: str
    status: str
    value: Any
    text: str
    confidence: float
    needs_review: bool
    reason: str = ""
    page_no: int = 0
    bbox_pt: BBox = (0.0, 0.0, 0.0, 0.0)
    bbox_px: tuple[int, int, int, int] = (0, 0, 0, 0)
    issued: Any = None
    confirm: bool = False  # a person must confirm it even when confident (DOMAIN §5.6 3(b))

    def to_json(self) -> dict:
        return {"path": self.path, "kind": self.kind, "origin": self.origin, "status": self.status,
                "value": self.value, "text": self.text, "confidence": round(float(self.confidence), 4),
                "needs_review": self.needs_review, "reason": self.reason, "page": self.page_no,
                "bbox_pt": [round(x, 2) for x in self.bbox_pt], "bbox_px": list(self.bbox_px),
                "issued": self.issued, "confirm": self.confirm}


@dataclass(frozen=True)
class ReadContext:
    """What reading a document's pages needs, given by the caller (who looked the document up).

    ``geometry``: ``Document.geometry``; ``issued``: the cleaned issued snapshot;
    ``tick_boxes``: {page_no: {path: [bbox_pt, ...]}} from ``tick_boxes_from_pdf``;
    ``people``: names of the case's people (pupil, guardians) for name matching;
    ``issued_on``: first plausible date of handwritten dates; ``today``: last one."""

    spec: FormSpec
    variant: Variant | None
    geometry: Mapping
    issued: Mapping[str, Any]
    tick_boxes: Mapping[int, Mapping[str, Sequence[BBox]]] = field(default_factory=dict)
    people: tuple[str, ...] = ()
    issued_on: dt.date | None = None
    today: dt.date | None = None
    threshold: float = DEFAULT_THRESHOLD
    confirm_marks: bool = True
    # The issued PDF rendered at the crop resolution: printed values are compared with it ink for
    # ink and only OCR'd when they differ. None: every printed value is OCR'd.
    reference: ReferencePages | None = None


@dataclass(eq=False)
class PageReading:
    """Every field read on one page, with the crops (RGB arrays) they came from."""

    identity: PageIdentity
    part: str | None
    readings: dict[str, FieldReading]
    crops: dict[str, np.ndarray]
    align_method: str
    residual_px: float
    seconds: float


def resolve_field(spec: FormSpec, path: str) -> tuple[Field, str, int | None, str | None]:
    """(field, top-level name, row, column) for ``name`` or ``table[i].column``."""
    m = _PATH_RE.match(path)
    if m:
        table = spec.field(m.group(1))
        return table.column(m.group(3)), m.group(1), int(m.group(2)), m.group(3)
    return spec.field(path), path, None, None


def issued_value(issued: Mapping[str, Any], path: str) -> Any:
    """The issued snapshot's value at ``path`` (None for a blank printed row)."""
    m = _PATH_RE.match(path)
    if not m:
        return issued.get(path)
    rows = issued.get(m.group(1)) or []
    i = int(m.group(2))
    return rows[i].get(m.group(3)) if i < len(rows) and isinstance(rows[i], Mapping) else None


def _jsonable(value: Any) -> Any:
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return [_jsonable(x) for x in value]
    return value


def _inset(b: Sequence[float], d: float) -> BBox:
    x0, y0, x1, y1 = (float(x) for x in b)
    if x1 - x0 <= 2 * d + 2 or y1 - y0 <= 2 * d + 2:
        return (x0, y0, x1, y1)
    return (x0 + d, y0 + d, x1 - d, y1 - d)


def _norm_text(text: str) -> str:
    import unicodedata

    t = unicodedata.normalize("NFKC", str(text or ""))
    return re.sub(r"[\s_＿:：()（）〔〕\[\]]", "", t)


def _is_unwritten(crop: np.ndarray, dpi: float) -> bool:
    """No handwriting in a blank field's zone: (next to) no ink once cell borders and underlines
    are gone, and no mark as tall as a written character. A single digit in a wide cell (未到人数
    “6”) is little ink but one tall stroke; dust and fax speckle are neither."""
    import cv2

    ink = ink_mask(to_gray(crop), contrast=0.7)
    h, w = ink.shape
    e = max(2, int(0.06 * min(h, w)))
    inner = ink[e:h - e, e:w - e]
    if inner.size == 0:
        return True
    if float(marks._remove_lines(inner).mean()) >= 0.004:
        return False
    # Only uprights that run (nearly) across the zone are borders: with the default, the upright
    # stroke of a lone digit in a low zone would go too.
    strokes = marks._remove_lines(inner, tall=max(15, int(0.8 * inner.shape[0])))
    n, _, stats, _ = cv2.connectedComponentsWithStats(strokes.astype(np.uint8))
    tall = HAND_MIN_MM * dpi / 25.4
    return not any(stats[i, cv2.CC_STAT_HEIGHT] >= tall and stats[i, cv2.CC_STAT_AREA] >= tall
                   for i in range(1, n))


class _OcrBatch:
    """Collect line crops for one engine call per page (RapidOCR batches recognition)."""

    def __init__(self, engine: OcrEngine):
        self.engine = engine
        self.lines: list[np.ndarray] = []
        self.groups: dict[str, list[int]] = {}

    def add(self, key: str, crop: np.ndarray) -> None:
        idx = []
        for line in split_lines(crop):
            idx.append(len(self.lines))
            self.lines.append(line)
        self.groups[key] = idx

    def run(self) -> dict[str, OcrText]:
        if not self.lines:
            return {}
        results = self.engine.recognize_lines(self.lines)
        out = {}
        for key, idx in self.groups.items():
            parts = [results[i] for i in idx]
            text = "".join(p.text for p in parts)
            conf = min((p.confidence for p in parts), default=0.0)
            out[key] = OcrText(text, conf)
        return out


def _recognize(engine: OcrEngine, crop: np.ndarray) -> OcrText:
    parts = engine.recognize_lines(split_lines(crop))
    return OcrText("".join(p.text for p in parts), min((p.confidence for p in parts), default=0.0))


# ---- printed values compared ink for ink with the issued PDF ------------------------------------------

# How far (points) the scan crop may sit off the rendered reference after alignment: the shift is
# searched within this margin.
INK_SEARCH_PT = 2.5
# Tolerance (pixels at the crop resolution) for stroke position and thickness differences.
INK_TOLERANCE_PX = 1
# Each character-sized window may sit up to this many pixels off the field's best shift (residual
# skew, scale and resampling differ along a long value).
INK_LOCAL_PX = 2
# Scores (see ``compare_ink``), measured with bench/scan.py's look-alike forgeries (国→固, 学→字,
# 华→毕, 梅→海, 日→曰 …) on 2 notices × 5 degradations: genuine print on flatbed / 200 dpi / JPEG
# scores 0.00-0.05 (95th percentile), a few fields up to 0.48; phone photos and faxes much more
# (fax up to 2.4: binarised strokes thicken); a look-alike scores 0.23 and up, any other changed
# character 0.7 and up. So: below INK_SURE the print is taken as issued without OCR; anything else
# is recognised and must read exactly as issued, or it goes to review. INK_AGREE only words the
# reason ("same print, small differences" vs "differs").
INK_SURE = 0.15
INK_AGREE = 0.65
# A field whose score is at least INK_AGREE and this many times the page's median score differs
# beyond the page's scanning noise: it goes to review even when OCR reads the issued text (OCR
# reads 斑 as 班, 曰 as 日). On clean scans that is any score from 0.65; on faxes and photos, whose
# genuine print scores higher, correspondingly more.
INK_OUTLIER = 4.0
# A handwritten mark at least this tall (mm) in a blank field is writing, however little ink it is.
HAND_MIN_MM = 2.0


class ReferencePages:
    """The issued PDF's pages rendered (grey) at the crop resolution, rendered once per page and
    kept: printed values on a scan are compared with the same crop of the issued page.

    Thread-safe: pdfium runs under ``PDFIUM_LOCK`` and the cache under its own lock."""

    def __init__(self, pdf: bytes, *, dpi: float = DEFAULT_CROP_DPI):
        self._pdf = bytes(pdf)
        self.dpi = float(dpi)
        self._pages: dict[int, np.ndarray] = {}
        self._lock = threading.Lock()

    def page(self, page_no: int) -> np.ndarray:
        """Page ``page_no`` (1-based) as a grey uint8 image at ``dpi``."""
        with self._lock:
            got = self._pages.get(page_no)
            if got is None:
                got = self._pages[page_no] = self._render(page_no)
            return got

    def _render(self, page_no: int) -> np.ndarray:
        import pypdfium2 as pdfium

        from forms.errors import UnreadableDocument

        with PDFIUM_LOCK:
            try:
                doc = pdfium.PdfDocument(self._pdf)
            except pdfium.PdfiumError as e:
                raise UnreadableDocument(f"签发的 PDF 无法读取：{e}") from e
            try:
                if not 1 <= page_no <= len(doc):
                    raise UnreadableDocument(f"签发的 PDF 没有第{page_no}页")
                page = doc[page_no - 1]
                bitmap = page.render(scale=self.dpi / 72.0, grayscale=True)
                pixels = np.array(bitmap.to_numpy(), copy=True)
                bitmap.close()
                page.close()
            finally:
                doc.close()
        return to_gray(pixels) if pixels.ndim == 3 else pixels

    def crop(self, page_no: int, bbox_pt: Sequence[float], pad_pt: float = 0.0) -> np.ndarray:
        """The box (grown by ``pad_pt``) cut from the rendered page, sampled like ``Aligned.crop``."""
        page = self.page(page_no)
        f = 72.0 / self.dpi
        x0, y0, x1, y1 = (float(x) for x in bbox_pt)
        x0, y0, x1, y1 = x0 - pad_pt, y0 - pad_pt, x1 + pad_pt, y1 + pad_pt
        w, h = max(1, int(round((x1 - x0) / f))), max(1, int(round((y1 - y0) / f)))
        c0, r0 = int(round(x0 / f)), int(round(y0 / f))
        out = np.full((h, w), 255, np.uint8)
        rs, cs = max(0, r0), max(0, c0)
        re_, ce = min(page.shape[0], r0 + h), min(page.shape[1], c0 + w)
        if re_ > rs and ce > cs:
            out[rs - r0:re_ - r0, cs - c0:ce - c0] = page[rs:re_, cs:ce]
        return out


def _without_rules(ink: np.ndarray) -> np.ndarray:
    """Drop cell borders and underlines (long straight strokes) from a 0/1 ink mask: they are
    not the value, and a border a pixel off would swamp the comparison."""
    import cv2

    h, w = ink.shape
    horiz = cv2.morphologyEx(ink, cv2.MORPH_OPEN, np.ones((1, max(50, w // 4)), np.uint8))
    vert = cv2.morphologyEx(ink, cv2.MORPH_OPEN, np.ones((max(40, int(0.75 * h)), 1), np.uint8))
    lines = cv2.dilate(horiz | vert, np.ones((3, 3), np.uint8))
    return ink & (1 - lines)


def _line_height(ink: np.ndarray) -> int:
    """Height (pixels) of the tallest run of inked rows: one line of print, one character high,
    also when a long value wraps onto two lines."""
    rows = ink.any(axis=1).astype(np.int8)
    edges = np.diff(np.concatenate(([0], rows, [0])))
    starts, ends = np.nonzero(edges == 1)[0], np.nonzero(edges == -1)[0]
    return int((ends - starts).max()) if len(starts) else int(ink.shape[0])


def _ink_shift(scan_ink: np.ndarray, ref_ink: np.ndarray) -> tuple[int, int]:
    """Where (dx, dy) the reference ink lines up best inside the larger scan ink: normalised
    cross-correlation of the two blurred 0/1 masks."""
    import cv2

    blur_s = cv2.GaussianBlur(scan_ink.astype(np.float32), (0, 0), 1.5)
    blur_r = cv2.GaussianBlur(ref_ink.astype(np.float32), (0, 0), 1.5)
    if float(blur_s.max()) <= 0 or float(blur_r.max()) <= 0:
        return ((scan_ink.shape[1] - ref_ink.shape[1]) // 2, (scan_ink.shape[0] - ref_ink.shape[0]) // 2)
    ncc = cv2.matchTemplate(blur_s, blur_r, cv2.TM_CCORR_NORMED)
    _lo, _hi, _lo_at, (dx, dy) = cv2.minMaxLoc(ncc)
    return int(dx), int(dy)


@dataclass(frozen=True)
class InkComparison:
    """``agree``: the scan shows the reference print (nothing changed, nothing added).
    ``score``: missing plus extra ink in the worst character-sized window, relative to one
    character's ink and weighted by distance (0 = identical).
    ``shift``: the (dx, dy) pixels at which the two lined up best."""

    agree: bool
    score: float
    shift: tuple[int, int]
    reason: str = ""


def compare_ink(scan_crop: np.ndarray, reference: np.ndarray, *, margin_px: int,
                tolerance_px: int = INK_TOLERANCE_PX, limit: float = INK_AGREE,
                local_px: int = INK_LOCAL_PX) -> InkComparison:
    """Compare the ink of a scan crop with the reference crop of the issued page.

    ``scan_crop`` is ``margin_px`` larger than ``reference`` on every side; the best shift within
    that margin is found by normalised cross-correlation of the blurred ink. Then, at that shift,
    every reference ink pixel is charged its distance to the nearest scan ink ("missing") and
    every scan ink pixel inside the field its distance to the nearest reference ink ("extra"),
    beyond ``tolerance_px`` and capped; the charges are summed over windows one character square
    (each window at its own best shift within ``local_px`` of the field's), relative to one
    character's ink, and the largest sum anywhere is the score: a character changed, added or
    removed concentrates in one window, scanning noise spreads thinly."""
    import cv2

    ref_ink = _without_rules((reference < 160).astype(np.uint8))
    n_ref = int(ref_ink.sum())
    if n_ref < 12:
        return InkComparison(False, 1.0, (0, 0), "签发页上此处几乎没有印刷字")
    scan_ink = _without_rules(ink_mask(to_gray(scan_crop), contrast=0.7).astype(np.uint8))
    rh, rw = ref_ink.shape
    if scan_ink.shape[0] < rh or scan_ink.shape[1] < rw:
        return InkComparison(False, 1.0, (0, 0), "扫描裁切小于签发页裁切")
    if not scan_ink.any():
        return InkComparison(False, 1.0, (0, 0), "扫描件此处没有字迹")
    dx, dy = _ink_shift(scan_ink, ref_ink)
    # Distance of each ink pixel to the other image's nearest ink, less the tolerance, capped: a
    # stroke a pixel or two off (skew, blur, fax thickening) costs little, a stroke that is not
    # there at all costs its full length times the cap.
    d_scan_all = cv2.distanceTransform((1 - scan_ink).astype(np.uint8), cv2.DIST_L2, 3)
    d_ref = cv2.distanceTransform((1 - ref_ink).astype(np.uint8), cv2.DIST_L2, 3)
    cap = 3.0 * tolerance_px
    miss_cost = (np.clip(d_scan_all - tolerance_px, 0, cap) / tolerance_px).astype(np.float32)
    extra_cost = (np.clip(d_ref - tolerance_px, 0, cap) / tolerance_px).astype(np.float32)
    ref_f = ref_ink.astype(np.float32)
    scan_f = scan_ink.astype(np.float32)
    char = max(8, min(rh, _line_height(ref_ink)))
    box = (char, char)
    per_char = cv2.boxFilter(ref_f, -1, box, normalize=False, borderType=cv2.BORDER_CONSTANT)
    unit = max(float(per_char.max()) * 0.6, 1.0)  # one character's ink, roughly

    def charges(x: int, y: int) -> tuple[np.ndarray, np.ndarray]:
        """Missing and extra charge per pixel with the scan window at (x, y)."""
        return ref_f * miss_cost[y:y + rh, x:x + rw], scan_f[y:y + rh, x:x + rw] * extra_cost

    # The window is the whole field (cell or blank): anything added inside it counts; print of the
    # neighbouring cells that the wider search crop reaches does not. Every character-sized window
    # takes its own best shift within ``local_px`` of the field's. A changed character both lacks
    # strokes of the original and adds its own, in one window (box filtering is linear: one pass
    # over the sum).
    best = None
    sh, sw = scan_ink.shape
    for ddy in range(-local_px, local_px + 1):
        for ddx in range(-local_px, local_px + 1):
            x, y = dx + ddx, dy + ddy
            if x < 0 or y < 0 or x + rw > sw or y + rh > sh:
                continue
            missing, extra = charges(x, y)
            both = cv2.boxFilter(missing + extra, -1, box, normalize=False, borderType=cv2.BORDER_CONSTANT)
            best = both if best is None else np.minimum(best, both, out=best)
    at = np.unravel_index(int(np.argmax(best)), best.shape)
    score = float(best[at]) / unit
    shift = (int(dx) - margin_px, int(dy) - margin_px)
    if score < limit:
        return InkComparison(True, score, shift)
    missing, extra = charges(dx, dy)
    r0, c0 = max(0, at[0] - char // 2), max(0, at[1] - char // 2)
    near = (slice(r0, at[0] + char // 2 + 1), slice(c0, at[1] + char // 2 + 1))
    what = "缺少笔画" if float(missing[near].sum()) >= float(extra[near].sum()) else "多出笔迹"
    return InkComparison(False, score, shift, f"与签发的 PDF 逐笔比对不一致（{what}，差异{score:.2f}）")


def read_page(page: PageImage, identity: PageIdentity, ctx: ReadContext, *, engine: OcrEngine,
              fallback: OcrEngine | None = None) -> PageReading:
    """Align ``page`` to its template page and read every field on it (see the module doc).
    Raises ``AlignmentFailed`` when the page cannot be lined up with its form."""
    start = time.perf_counter()
    pages = ctx.geometry.get("pages") or []
    if not 1 <= identity.page_no <= len(pages):
        raise AlignmentFailed(f"第{identity.page_no}页不在文书的{len(pages)}页之内")
    geo = pages[identity.page_no - 1]
    template = TemplatePage.from_mapping(geo)
    qr = identity.qr
    if qr is None and identity.rotation:
        pixels = rotate_quarter(page.pixels, identity.rotation)
        aligned = align(PageImage(pixels, page.dpi, page.source, page.index), template)
    else:
        aligned = align(page, template, qr=qr)
    colour = marks.is_colour(aligned.image)
    dpi = aligned.dpi
    readings: dict[str, FieldReading] = {}
    crops: dict[str, np.ndarray] = {}
    batch = _OcrBatch(engine)
    # (path, field, origin, issued, bbox, crop, how it got here: the InkComparison of a printed
    # value, the BoxWriting of boxed handwriting, else None)
    pending: list[tuple[str, Field, str, Any, BBox, np.ndarray, InkComparison | BoxWriting | None]] = []
    ink_scores: list[float] = []
    page_ticks = ctx.tick_boxes.get(identity.page_no) or ctx.tick_boxes.get(str(identity.page_no)) or {}

    for path, rec in (geo.get("fields") or {}).items():
        try:
            f, _name, _row, _col = resolve_field(ctx.spec, path)
        except KeyError:
            continue
        bbox = tuple(float(x) for x in rec["bbox"])
        is_text = rec.get("kind") == "text"
        zone = _inset(bbox, 0.5 if is_text else 1.8)
        crop = aligned.crop(zone, pad_pt=0.8 if is_text else 0.0)
        crops[path] = aligned.crop(bbox, pad_pt=6.0)
        px = aligned.box_px(bbox)
        issued = issued_value(ctx.issued, path)
        common = {"page_no": identity.page_no, "bbox_pt": bbox, "bbox_px": px, "issued": _jsonable(issued)}
        if f.kind == Kind.TABLE:
            continue
        if f.kind in MARK_KINDS:
            readings[path] = _read_mark(path, f, crop, dpi, colour, ctx, common)
            continue
        if f.kind in TICK_KINDS and not (f.compact and f.kind != Kind.BOOL):
            boxes = page_ticks.get(path) or []
            # A compact yes/no issued as "no" prints ✗, not a box: that is printed text, checked below.
            if boxes or is_blank(issued) or f.filled == Filled.HAND:
                readings[path] = _read_ticks(path, f, aligned, boxes, issued, ctx, common)
                continue
        # Anything filled in when issued (HAND fields may be prefilled) is printed text we know.
        if not is_blank(issued):
            expected = format_value(f, issued)
            if len(_norm_text(expected)) > MAX_PRINTED_CHECK or not _norm_text(expected):
                readings[path] = FieldReading(path, f.kind.value, "printed", "unchecked", _jsonable(issued), "",
                                              1.0, False, "长段印刷文字不在扫描件上复核", **common)
                continue
            ink = None
            if ctx.reference is not None:
                pad = 0.8 if is_text else 0.0
                margin = int(round(INK_SEARCH_PT * dpi / 72.0))
                ink = compare_ink(aligned.crop(zone, pad_pt=pad + INK_SEARCH_PT),
                                  ctx.reference.crop(identity.page_no, zone, pad_pt=pad), margin_px=margin)
                ink_scores.append(ink.score)
                if ink.score < INK_SURE:
                    readings[path] = FieldReading(
                        path, f.kind.value, "printed", "match", _jsonable(issued), "",
                        round(max(0.95, 1.0 - ink.score / 4), 4), False,
                        f"与签发的 PDF 逐笔比对一致（差异{ink.score:.2f}），未做文字识别", **common)
                    continue
                # Small differences may be scanning or a look-alike character (国→固): read it.
                log.debug("%s: ink score %.2f %s", path, ink.score, ink.reason)
            batch.add(path, crop)
            pending.append((path, f, "printed", issued, bbox, crop, ink))
            continue
        cells = page_ticks.get(path) or []
        if f.hand_boxes and len(cells) == f.boxes:
            bw = box_writing(aligned, cells, bbox, dpi=dpi, reference=ctx.reference, page_no=identity.page_no)
            if bw.line is None:
                readings[path] = FieldReading(path, f.kind.value, "hand", "blank", None, "", 0.97, False,
                                              "格子里没有笔迹", **common)
                continue
            batch.add(path, bw.line)
            for k, digit in enumerate(bw.digits):
                batch.add(f"{path}#{k}", digit)
            pending.append((path, f, "boxes", issued, bbox, bw.line, bw))
            continue
        if _is_unwritten(crop, dpi):
            readings[path] = FieldReading(path, f.kind.value, "hand", "blank", None, "", 0.97, False, **common)
            continue
        batch.add(path, crop)
        pending.append((path, f, "hand", issued, bbox, crop, None))

    texts = batch.run()
    # How much genuine print differs from the issued PDF on this page (scan quality): a field far
    # beyond it has changed ink even if OCR reads the issued text (斑 read as 班).
    strong_from = max(INK_AGREE, INK_OUTLIER * float(np.median(ink_scores))) if len(ink_scores) >= 3 else None
    for path, f, origin, issued, bbox, crop, aux in pending:
        common = {"page_no": identity.page_no, "bbox_pt": bbox, "bbox_px": aligned.box_px(bbox),
                  "issued": _jsonable(issued)}
        got = texts.get(path, OcrText("", 0.0))
        if origin == "printed":
            ink = aux if isinstance(aux, InkComparison) else None
            strong = ink is not None and strong_from is not None and ink.score >= strong_from
            readings[path] = _check_printed(path, f, issued, got, crop, fallback, common, ink=ink, strong=strong)
        elif isinstance(aux, BoxWriting):
            singles = [texts.get(f"{path}#{k}", OcrText("", 0.0)) for k in range(len(aux.digits))]
            readings[path] = _read_boxed(path, f, got, aux, singles, fallback, ctx, common)
        else:
            readings[path] = _read_hand(path, f, got, crop, fallback, ctx, common)
    return PageReading(identity, geo.get("part"), readings, crops, aligned.method, aligned.residual_px,
                       time.perf_counter() - start)


def _check_printed(path: str, f: Field, issued: Any, got: OcrText, crop: np.ndarray,
                   fallback: OcrEngine | None, common: dict, *, ink: InkComparison | None = None,
                   strong: bool = False) -> FieldReading:
    """A printed value read by OCR, checked against the issued one. ``ink``: the comparison with the
    issued PDF that sent it here (None without a reference); ``strong``: that difference stands out
    from the page's scanning noise, so the field goes to review whatever OCR reads."""
    expected = _norm_text(format_value(f, issued))

    def score(t: OcrText) -> float:
        return difflib.SequenceMatcher(None, _norm_text(t.text), expected).ratio()

    best, ratio = got, score(got)
    if (ratio < 1.0 or got.confidence < 0.8) and fallback is not None:
        try:
            other = _recognize(fallback, crop)
        except OcrFailed as e:
            log.warning("fallback OCR failed on %s: %s", path, e.message)
        else:
            if score(other) > ratio:
                best, ratio = other, score(other)
    value = _jsonable(issued)
    ink_note = ""
    if ink is not None:
        ink_note = (f"逐笔比对有细微差异（{ink.score:.2f}）" if ink.agree else ink.reason) + "，"
    if ratio >= 0.999 and strong:
        return FieldReading(path, f.kind.value, "printed", "mismatch", value, best.text, 0.5, True,
                            f"{ink_note}文字识别读作签发值，但笔迹差异远超本页扫描误差：可能是形近字改动，请核对原件",
                            **common)
    if ratio >= 0.999:
        return FieldReading(path, f.kind.value, "printed", "match", value, best.text,
                            max(0.95, best.confidence) if ink is None else min(0.95, max(0.9, best.confidence)),
                            False, f"{ink_note}文字识别与签发值一致" if ink is not None else "", **common)
    # One or two characters missed by OCR in a long value is the engine, not tampering; anything
    # more is shown to a person. The issued value is never replaced by what was read.
    # Not when the ink already differs from the issued PDF: then a one-character difference is
    # exactly what a forger leaves (a look-alike such as 国→固 differs only a little).
    if ratio >= 0.85 and len(expected) >= 8 and ink is None:
        return FieldReading(path, f.kind.value, "printed", "match", value, best.text, round(ratio, 3), False,
                            f"印刷文字识别与签发值基本一致（相似度{ratio:.2f}）", **common)
    return FieldReading(path, f.kind.value, "printed", "mismatch", value, best.text, round(ratio, 3), True,
                        f"{ink_note}印刷内容读作“{best.text}”，与签发时的“{format_value(f, issued)}”不一致：可能被改动",
                        **common)


def _read_mark(path: str, f: Field, crop: np.ndarray, dpi: float, colour: bool, ctx: ReadContext,
               common: dict) -> FieldReading:
    if f.kind == Kind.SEAL:
        m = marks.seal_present(crop, dpi=dpi, colour=colour)
    else:
        m = marks.signature_present(crop, dpi=dpi)
        if "捺印" in f.label and m.state != marks.PRESENT:
            fp = marks.fingerprint_present(crop, dpi=dpi, colour=colour)
            if fp.state == marks.PRESENT or (fp.state == marks.AMBIGUOUS and m.state == marks.ABSENT
                                              and colour):
                m = fp
    if m.state == marks.AMBIGUOUS:
        return FieldReading(path, f.kind.value, "mark", "ambiguous", None, m.state, m.confidence, True,
                            m.reason or "无法判断是否有签名/印章", **common)
    present = m.state == marks.PRESENT
    confirm = present and ctx.confirm_marks
    low = m.confidence < ctx.threshold
    reason = "签名、印章、指印须人工确认（只确认有无）" if confirm else ("把握不足" if low else "")
    return FieldReading(path, f.kind.value, "mark", "read" if not low else "low", present, m.state,
                        m.confidence, confirm or low, reason, confirm=confirm, **common)


def _read_ticks(path: str, f: Field, aligned, boxes: Sequence[BBox], issued: Any, ctx: ReadContext,
                common: dict) -> FieldReading:
    if f.kind == Kind.BOOL:
        options = ["Y"] if f.compact else ["Y", "N"]
    else:
        options = [c.code for c in f.choices]
    if len(boxes) != len(options):
        return FieldReading(path, f.kind.value, "tick", "ambiguous", None, "", 0.0, True,
                            f"找到{len(boxes)}个勾选框，应有{len(options)}个", **common)
    states = []
    for b in boxes:
        crop = aligned.crop(b, pad_pt=1.2)
        states.append(marks.tick_state(crop))
    ticked = [code for code, m in zip(options, states, strict=True) if m.state == marks.TICKED]
    conf = min(m.confidence for m in states)
    text = ",".join(f"{code}:{m.state}" for code, m in zip(options, states, strict=True))
    if any(m.state == marks.AMBIGUOUS for m in states):
        return FieldReading(path, f.kind.value, "tick", "ambiguous", None, text, conf, True,
                            "勾选不清（笔迹浅或只勾了一部分），须人工判断", **common)
    if f.kind == Kind.BOOL:
        value = (True if ticked == ["Y"] else False if ticked == ["N"] else None) if not f.compact \
            else (True if ticked else None)
        if len(ticked) > 1:
            return FieldReading(path, f.kind.value, "tick", "invalid", None, text, conf, True,
                                "“是”“否”都被勾选", **common)
    elif f.kind == Kind.CHOICE:
        if len(ticked) > 1:
            return FieldReading(path, f.kind.value, "tick", "invalid", ticked, text, conf, True,
                                "单选项勾选了多个", **common)
        value = ticked[0] if ticked else None
    else:
        value = ticked
    origin_printed = not is_blank(issued) and f.filled != Filled.HAND
    if origin_printed and value != issued:
        return FieldReading(path, f.kind.value, "tick", "mismatch", _jsonable(issued), text, conf, True,
                            "勾选与签发时印刷的不一致：可能被改动", **common)
    confirm = f.confirm and value not in (None, [])
    low = conf < ctx.threshold
    review = confirm or low
    reason = "送达方式须人工确认" if confirm else ("勾选把握不足" if low else "")
    return FieldReading(path, f.kind.value, "tick", "read" if not low else "low", value, text, conf, review,
                        reason, confirm=confirm, **common)


# ---- handwriting -----------------------------------------------------------------------------------

_DIGIT_FIX = str.maketrans({"O": "0", "o": "0", "D": "0", "I": "1", "l": "1", "|": "1", "i": "1",
                            "Z": "2", "z": "2", "S": "5", "s": "5", "B": "8", "q": "9", "g": "9"})


def digits_only(text: str, *, allow_x: bool = False) -> str:
    """Digits of a handwritten number, with the usual OCR letter/digit confusions fixed."""
    import unicodedata

    t = unicodedata.normalize("NFKC", text or "")
    if allow_x:
        t = re.sub(r"[xX×]$", "X", t.strip())
        body, last = (t[:-1], "X") if t.endswith("X") else (t, "")
        return re.sub(r"\D", "", body.translate(_DIGIT_FIX)) + last
    return re.sub(r"\D", "", t.translate(_DIGIT_FIX))


def parse_hand_date(text: str, *, with_time: bool = False) -> dt.date | dt.datetime | None:
    """A handwritten date (2025年9月12日, 2025.9.12, 20250912 in 8 boxes), optionally with a time
    (…10时30分). None when it cannot be a date."""
    import unicodedata

    t = unicodedata.normalize("NFKC", text or "").translate(_DIGIT_FIX)
    groups = re.findall(r"\d+", t)
    if len(groups) == 1 and len(groups[0]) in (8, 12):
        g = groups[0]
        groups = [g[:4], g[4:6], g[6:8]] + ([g[8:10], g[10:12]] if len(g) == 12 else [])
    if len(groups) < 3:
        return None
    try:
        y, mo, d = int(groups[0]), int(groups[1]), int(groups[2])
        if y < 100:
            y += 2000
        day = dt.date(y, mo, d)
        if with_time:
            hh = int(groups[3]) if len(groups) > 3 else 0
            mm = int(groups[4]) if len(groups) > 4 else 0
            return dt.datetime(day.year, day.month, day.day, hh, mm)
        return day
    except ValueError:
        return None


def _pinyin(name: str) -> str:
    from pypinyin import lazy_pinyin

    return "".join(lazy_pinyin(name))


def match_name(text: str, people: Sequence[str]) -> tuple[str | None, str]:
    """Match a read name against known people: ("exact"|"pinyin"|"near"|"" , name)."""
    name = re.sub(r"\s", "", text or "")
    if not name:
        return None, ""
    for p in people:
        if p and p == name:
            return p, "exact"
    py = _pinyin(name)
    for p in people:
        if p and len(p) == len(name) and _pinyin(p) == py:
            return p, "pinyin"
    for p in people:
        if p and len(p) == len(name) and sum(a != b for a, b in zip(p, name, strict=True)) == 1 and len(p) >= 2:
            return p, "near"
    return None, ""


def _read_hand(path: str, f: Field, got: OcrText, crop: np.ndarray, fallback: OcrEngine | None,
               ctx: ReadContext, common: dict) -> FieldReading:
    value, conf, status, reason = interpret_hand(f, got, ctx)
    if (status != "read" or conf < ctx.threshold) and fallback is not None:
        try:
            other = _recognize(fallback, crop)
        except OcrFailed as e:
            log.warning("fallback OCR failed on %s: %s", path, e.message)
        else:
            v2 = interpret_hand(f, other, ctx)
            if v2[2] == "read" and (status != "read" or v2[1] > conf):
                value, conf, status, reason = v2
                got = other
    confirm = (f.confirm or f.kind in CONFIRM_KINDS) and value is not None
    review = status != "read" or conf < ctx.threshold or confirm
    if confirm and not reason:
        reason = _confirm_reason(f)
    elif status == "read" and conf < ctx.threshold and not reason:
        reason = f"识别把握不足（{conf:.2f}）"
    return FieldReading(path, f.kind.value, "hand", status if status != "read" or conf >= ctx.threshold else "low",
                        _jsonable(value), got.text, conf, review, reason, confirm=confirm, **common)


def _confirm_reason(f: Field) -> str:
    if f.confirm:
        return "送达时间须人工确认" if f.kind == Kind.DATETIME else "送达日期须人工确认"
    return "手写电话号码没有校验位，须人工核对"


def interpret_hand(f: Field, got: OcrText, ctx: ReadContext) -> tuple[Any, float, str, str]:
    """(value, confidence, status, reason): validation moves the OCR confidence."""
    text, conf = got.text.strip(), float(got.confidence)
    if not text:
        return None, 0.3, "invalid", "有笔迹但未能识别"
    k = f.kind
    try:
        if k in (Kind.DATE, Kind.DATETIME):
            when = parse_hand_date(text, with_time=k == Kind.DATETIME)
            if when is None:
                return None, min(conf, 0.3), "invalid", f"“{text}”不是有效日期"
            day = when.date() if isinstance(when, dt.datetime) else when
            if ctx.issued_on and day < ctx.issued_on:
                return when, min(conf, 0.4), "invalid", f"{day}早于发文日期{ctx.issued_on}"
            if day > (ctx.today or dt.date.today()):
                return when, min(conf, 0.4), "invalid", f"{day}是未来的日期"
            return when, min(1.0, conf + 0.02), "read", ""
        if k == Kind.ID_NUMBER:
            value = v.check_id_number(digits_only(text, allow_x=True))
            return value, min(1.0, conf + 0.05), "read", ""  # the checksum agrees
        if k == Kind.PHONE:
            return v.check_phone(digits_only(text)), conf, "read", ""
        if k == Kind.INT:
            d = digits_only(text)
            if not d:
                raise ValueError("应为整数")
            return int(d), conf, "read", ""
        if k == Kind.NAME:
            name = v.check_name(text)
            known, how = match_name(name, ctx.people)
            if how == "exact":
                return known, max(conf, 0.97), "read", ""
            if how in ("pinyin", "near") and f.case_person:
                return known, min(conf, 0.8), "read", f"读作“{name}”，按案件人员匹配为“{known}”，请确认"
            # Witnesses, proxies and officers need not be case people: no match is no evidence, and
            # a clerk 王建军 is not the guardian 王建国 misread.
            return name, conf, "read", ""
        if k in (Kind.CHOICE, Kind.MULTI):
            from forms.spec import clean_value, read_value

            value = clean_value(f, read_value(f, text), required=False, errors={}, path=f.name)
            return value, conf, "read", ""
        if f.max_length and len(text) > f.max_length:
            return text, min(conf, 0.5), "invalid", f"超过{f.max_length}字"
        return text, conf, "read", ""
    except ValueError as e:
        shown = v.mask_id(text) if k == Kind.ID_NUMBER else text
        return None, min(conf, 0.3), "invalid", f"“{shown}”：{e}"


# ---- handwritten numbers in character boxes -----------------------------------------------------------

# A box holds writing when what is left of its ink, once the printed boxes and 年月日 are taken
# away, is at least this share of the box's height tall (a written "1" or "0"; not a speck or the
# sliver of a box edge a pixel off).
BOX_INK_MIN_HEIGHT = 0.3
# Printed ink is grown by this much (mm) before it is taken away: the scan sits up to a pixel or
# two off the rendered reference after the best shift.
BOX_PRINT_GROW_MM = 0.3


@dataclass(frozen=True, eq=False)
class BoxWriting:
    """What was written in a field's character boxes: ``inked`` per box; ``line``: the written
    digits side by side on white (the printed boxes gone), one line for the recogniser, or None
    when nothing is written; ``digits``: each written box's digit alone (a second reading)."""

    inked: tuple[bool, ...]
    line: np.ndarray | None
    digits: tuple[np.ndarray, ...] = ()


def box_writing(aligned, cells: Sequence[BBox], zone: BBox, *, dpi: float,
                reference: ReferencePages | None = None, page_no: int = 0) -> BoxWriting:
    """Find the handwriting in the printed character boxes ``cells`` (PDF points, in order) of a
    field whose cell is ``zone``.

    The strip around the boxes is cut from the aligned scan with a margin, lined up with the same
    strip of the issued page (page ``page_no`` of ``reference``; without one, the box outlines are
    drawn instead) and the printed ink, grown a little, is taken away. Each piece of
    what is left belongs to the box its centre is in; the pieces of the written boxes are put side
    by side into one line."""
    import cv2

    cells = [tuple(float(x) for x in c) for c in cells]
    box_h = float(np.median([c[3] - c[1] for c in cells]))
    pitch = float(np.median([c[2] - c[0] for c in cells]))
    region = (max(zone[0], min(c[0] for c in cells) - 0.3 * pitch), zone[1] + 1.0,
              min(zone[2], max(c[2] for c in cells) + 0.3 * pitch), zone[3] - 1.0)
    s = dpi / 72.0
    margin = int(round(INK_SEARCH_PT * s))
    scan_rgb = aligned.crop(region, pad_pt=INK_SEARCH_PT)
    scan_grey = to_gray(scan_rgb)
    scan_ink = ink_mask(scan_grey, contrast=0.7).astype(np.uint8)
    rh = int(round((region[3] - region[1]) * s))
    rw = int(round((region[2] - region[0]) * s))
    if reference is not None:
        ref_ink = (reference.crop(page_no, region) < 160).astype(np.uint8)
        rh, rw = ref_ink.shape
    else:
        ref_ink = np.zeros((rh, rw), np.uint8)
        t = max(1, int(round(0.7 * s)))
        for c in cells:
            p0 = (int(round((c[0] - region[0]) * s)), int(round((c[1] - region[1]) * s)))
            p1 = (int(round((c[2] - region[0]) * s)), int(round((c[3] - region[1]) * s)))
            cv2.rectangle(ref_ink, p0, p1, 1, t)
    dx, dy = _ink_shift(scan_ink, ref_ink) if ref_ink.any() else (margin, margin)
    window = (slice(dy, dy + rh), slice(dx, dx + rw))
    grow = max(1, int(round(BOX_PRINT_GROW_MM * dpi / 25.4)))
    printed = cv2.dilate(ref_ink, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1)))
    ink = scan_ink[window]
    left = ink & (1 - printed)
    left = cv2.morphologyEx(left, cv2.MORPH_OPEN, np.ones((2, 2), np.uint8))
    # A digit larger than its box crosses the box's edges, and taking the print away cut it there:
    # the scan's ink under the print is given back where written ink lies on both sides of it
    # across the edge (a closing along the stroke), never along the edge.
    span = int(round(0.7 * s)) + 2 * grow + 3
    across = cv2.morphologyEx(left, cv2.MORPH_CLOSE, np.ones((span, 1), np.uint8)) \
        | cv2.morphologyEx(left, cv2.MORPH_CLOSE, np.ones((1, span), np.uint8))
    boxes_px = [tuple(int(round((c[i] - region[i % 2]) * s)) for i in range(4)) for c in cells]
    left = left | (ink & printed & across) | _along_edges(ink, ref_ink, grow, boxes_px)
    grey = scan_grey[window]
    n, labels, stats, centroids = cv2.connectedComponentsWithStats(left, connectivity=8)
    centres = [((c[0] + c[2]) / 2 - region[0]) * s for c in cells]
    half = 0.75 * pitch * s
    tall = BOX_INK_MIN_HEIGHT * box_h * s
    owner: dict[int, list[int]] = {}
    for i in range(1, n):
        if stats[i, cv2.CC_STAT_AREA] < 3:
            continue
        cx = centroids[i][0]
        k = int(np.argmin([abs(cx - c) for c in centres]))
        if abs(cx - centres[k]) <= half:
            owner.setdefault(k, []).append(i)
    inked = []
    for k in range(len(cells)):
        comps = owner.get(k, [])
        if not comps:
            inked.append(False)
            continue
        top = min(stats[i, cv2.CC_STAT_TOP] for i in comps)
        bottom = max(stats[i, cv2.CC_STAT_TOP] + stats[i, cv2.CC_STAT_HEIGHT] for i in comps)
        inked.append(bottom - top >= tall)
    if not any(inked):
        return BoxWriting(tuple(inked), None)
    gap = max(4, int(round(0.3 * box_h * s)))
    white = np.full((grey.shape[0], gap), 255, np.uint8)
    pieces, digits = [], []
    for k, on in enumerate(inked):
        if not on:
            continue
        mask = np.isin(labels, owner[k]).astype(np.uint8)
        xs = np.nonzero(mask.any(axis=0))[0]
        x0, x1 = int(xs.min()), int(xs.max()) + 1
        keep = cv2.dilate(mask, np.ones((3, 3), np.uint8))[:, x0:x1].astype(bool)
        digit = np.where(keep, grey[:, x0:x1], 255).astype(np.uint8)
        pieces += [digit, white]
        digits.append(np.dstack([np.hstack([white, digit, white])] * 3))
    line = np.hstack([white, *pieces])
    return BoxWriting(tuple(inked), np.dstack([line] * 3), tuple(digits))


def _along_edges(ink: np.ndarray, ref_ink: np.ndarray, grow: int, boxes_px: Sequence[tuple[int, ...]]) -> np.ndarray:
    """Written ink that runs along a box's edge (the foot of a 2 on the bottom edge): where the
    scan's ink across the edge is thicker than the edge is almost everywhere else, the extra is
    writing. Edges are the straight runs of the reference's ink inside the boxes ``boxes_px``
    (x0, y0, x1, y1 in the reference's pixels), away from the corners."""
    import cv2

    out = np.zeros_like(ink)
    inside = np.zeros_like(ref_ink)
    for x0, y0, x1, y1 in boxes_px:
        inside[max(0, y0 - grow - 2):y1 + grow + 3, max(0, x0 - grow - 2):x1 + grow + 3] = 1
    ref = ref_ink & inside
    side = min(b[3] - b[1] for b in boxes_px)
    length = max(5, int(0.5 * side))
    lines = [cv2.morphologyEx(ref, cv2.MORPH_OPEN, np.ones((1, length), np.uint8)),
             cv2.morphologyEx(ref, cv2.MORPH_OPEN, np.ones((length, 1), np.uint8))]
    for axis in (0, 1):  # 0: horizontal edges (thickness counted down each column), 1: upright ones
        if not lines[axis].any():
            continue
        corners = cv2.dilate(lines[1 - axis], np.ones((2 * grow + 3, 2 * grow + 3), np.uint8))
        band = cv2.dilate(lines[axis], np.ones((2 * grow + 1, 1) if axis == 0 else (1, 2 * grow + 1), np.uint8))
        band &= 1 - corners
        n, labels, stats, _ = cv2.connectedComponentsWithStats(band, connectivity=4)
        for i in range(1, n):
            x, y, bw, bh = stats[i, :4]
            part = labels[y:y + bh, x:x + bw] == i
            got = ink[y:y + bh, x:x + bw] & part
            thick = got.sum(axis=0 if axis == 0 else 1)  # per position along the line
            usual = float(np.median(thick))
            extra = thick >= usual + max(2.0, 0.5 * usual)
            if extra.any():
                mark = got & (extra[None, :] if axis == 0 else extra[:, None])
                out[y:y + bh, x:x + bw] |= mark.astype(out.dtype)
    return out


# A handwritten digit recognised alone, as the line recogniser spells it (UKai-style 0 and 2).
_SINGLE_FIX = {"()": "0", "(0)": "0", "Q": "0", "D": "0", "!": "1", "?": "2"}
# In a line of boxed digits nothing but digits is written: the recogniser's ? is a 2, its Q a 0.
_BOX_LINE_FIX = str.maketrans({"?": "2", "Q": "0"})


def single_digit(text: str) -> str | None:
    """The digit a one-box reading shows, or None when it shows no single digit."""
    import unicodedata

    t = re.sub(r"[\s.,'`·]", "", unicodedata.normalize("NFKC", text or ""))
    t = _SINGLE_FIX.get(t, t)
    d = digits_only(t, allow_x=True)
    return d if len(d) == 1 else None


def boxed_text(f: Field, inked: Sequence[bool], digits: str) -> tuple[str | None, str]:
    """The value written in ``f``'s boxes from the digits read off its line, in box order: (text
    for ``interpret_hand``, "") or (None, why not). A date's month or day may be one digit in the
    second box of its pair; every other box must hold one digit."""
    n = sum(inked)
    if len(digits) != n:
        shown = v.mask_id(digits) if f.kind == Kind.ID_NUMBER else digits
        return None, f"{n}个格子有笔迹，却识别出{len(digits)}个数字（“{shown}”）"
    it = iter(digits)
    per_box = [next(it) if on else "" for on in inked]
    groups, pos, missing = [], 0, 0
    for size in f.box_groups():
        g = per_box[pos:pos + size]
        pos += size
        if f.kind == Kind.DATE and size == 2 and not g[0] and g[1]:
            g = ["0", g[1]]
        missing += sum(1 for c in g if not c)
        groups.append("".join(g))
    if missing:
        return None, f"有{missing}个格子没有写"
    if f.kind == Kind.DATE and len(groups) == 3:
        return f"{groups[0]}年{groups[1]}月{groups[2]}日", ""
    return "".join(groups), ""


def _read_boxed(path: str, f: Field, got: OcrText, bw: BoxWriting, singles: Sequence[OcrText],
                fallback: OcrEngine | None, ctx: ReadContext, common: dict) -> FieldReading:
    """A number written one digit per character box: the digits read off the composed line must
    fill the written boxes exactly, then validation as for any handwriting (``interpret_hand``).
    Each box's digit is also read alone (``singles``): a value whose digits do not all agree with
    those readings goes to review however confident the line was (a phone number has no checksum,
    and 4 read as 1 in a date can still be a plausible date)."""
    allow_x = f.kind == Kind.ID_NUMBER

    def attempt(t: OcrText) -> tuple[Any, float, str, str, str]:
        text, why = boxed_text(f, bw.inked, digits_only(t.text.translate(_BOX_LINE_FIX), allow_x=allow_x))
        if text is None:
            return None, min(float(t.confidence), 0.3), "invalid", why, t.text
        value, conf, status, reason = interpret_hand(f, OcrText(text, t.confidence), ctx)
        return value, conf, status, reason, text

    value, conf, status, reason, text = attempt(got)
    if (status != "read" or conf < ctx.threshold) and fallback is not None and bw.line is not None:
        try:
            other = _recognize(fallback, bw.line)
        except OcrFailed as e:
            log.warning("fallback OCR failed on %s: %s", path, e.message)
        else:
            second = attempt(other)
            if second[2] == "read" and (status != "read" or second[1] > conf):
                value, conf, status, reason, text = second
    if status == "read" and singles:
        line = digits_only(text, allow_x=allow_x)
        # one digit per box (a date's month "09" padded from a 9 written alone: its 0 is no box's)
        written = [c for c, on in zip(line.ljust(len(bw.inked)), bw.inked, strict=False) if on]
        alone = [single_digit(t.text) for t in singles]
        # A box read alone as another digit contradicts the line; one read as no digit at all
        # (a lone 0 comes back as "()" or "Q" more often than not) neither confirms nor contradicts.
        differ = [i + 1 for i, (a, b) in enumerate(zip(written, alone, strict=False)) if b is not None and a != b]
        if differ or len(written) != len(alone):
            conf = min(conf, 0.6)
            reason = "逐格识别与整行识别不一致（第" + "、".join(map(str, differ)) + "个数字），请核对"
    low = status == "read" and conf < ctx.threshold
    if low and not reason:
        reason = f"识别把握不足（{conf:.2f}）"
    confirm = status == "read" and (f.confirm or f.kind in CONFIRM_KINDS)
    if confirm and not reason:
        reason = _confirm_reason(f)
    if f.kind == Kind.ID_NUMBER:
        text = v.mask_id(text) if text else text
    return FieldReading(path, f.kind.value, "hand", "low" if low else status, _jsonable(value), text, conf,
                        status != "read" or low or confirm, reason, confirm=confirm, **common)


# ---- tick boxes from the issued PDF -------------------------------------------------------------------

def tick_boxes_from_pdf(pdf: bytes, geometry: Mapping) -> dict[int, dict[str, list[BBox]]]:
    """Where the printed tick boxes (☐/☑) of every field sit, from the issued PDF's characters:
    {page_no: {path: [bbox_pt, ...]}} in reading order (the order of the field's choices)."""
    with PDFIUM_LOCK:  # pdfium is not thread-safe (forms/pdfium_lock.py)
        return _tick_boxes_from_pdf(pdf, geometry)


def _tick_boxes_from_pdf(pdf: bytes, geometry: Mapping) -> dict[int, dict[str, list[BBox]]]:
    import pypdfium2 as pdfium

    from forms.errors import UnreadableDocument

    try:
        doc = pdfium.PdfDocument(bytes(pdf))
    except pdfium.PdfiumError as e:
        raise UnreadableDocument(f"签发的 PDF 无法读取：{e}") from e
    out: dict[int, dict[str, list[BBox]]] = {}
    try:
        pages = geometry.get("pages") or []
        for i in range(min(len(doc), len(pages))):
            page = doc[i]
            height = float(page.get_size()[1])
            tp = page.get_textpage()
            try:
                chars = []
                for k in range(tp.count_chars()):
                    ch = tp.get_text_range(k, 1)
                    if ch and ch in BOX_CHARS:
                        left, bottom, right, top = tp.get_charbox(k)
                        chars.append((left, height - top, right, height - bottom))
            finally:
                tp.close()
            fields = pages[i].get("fields") or {}
            found: dict[str, list[BBox]] = {}
            for b in chars:
                cx, cy = (b[0] + b[2]) / 2, (b[1] + b[3]) / 2
                for path, rec in fields.items():
                    x0, y0, x1, y1 = rec["bbox"]
                    if x0 <= cx <= x1 and y0 <= cy <= y1:
                        found.setdefault(path, []).append(tuple(round(float(x), 2) for x in b))
                        break
            for path in found:
                found[path].sort(key=lambda b: (round(b[1] / 6), b[0]))
            out[i + 1] = found
    finally:
        doc.close()
    return out


# ---- documents ------------------------------------------------------------------------------------

def merge_readings(readings: Sequence[PageReading]) -> dict[str, FieldReading]:
    """One reading per field path for a document: a field printed on several pages (the number on
    存根, 正本 and 回证) keeps the reading that needs no review with the highest confidence."""
    best: dict[str, FieldReading] = {}
    for pr in readings:
        for path, r in pr.readings.items():
            cur = best.get(path)
            if cur is None or (cur.needs_review, -cur.confidence) > (r.needs_review, -r.confidence):
                best[path] = r
    return best


def png_bytes(pixels: np.ndarray) -> bytes:
    """PNG of a crop (for the review queue)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def probe_upload(data: bytes, filename: str, *, max_pixels: int | None = None) -> str:
    """Cheap checks before an upload is accepted (nothing decoded): the kind ("png", "jpeg",
    "tiff", "pdf") from the first bytes, and image sizes from the headers. Raises the errors of
    ``parsers.images`` (unsupported format, damaged file, image too large)."""
    from PIL import Image, UnidentifiedImageError

    from parsers import images

    limit = max_pixels or images.DEFAULT_MAX_PIXELS
    if not data:
        raise images.EmptyDocument(f"{filename}: the file is empty (0 bytes)", filename=filename)
    kind = images._kind(data)
    if kind is None:
        raise images.UnsupportedImageFormat(
            f"{filename}: not a PNG, JPEG, TIFF or PDF file; scan or photograph the form and upload one of "
            "those", filename=filename)
    if kind == "pdf":
        from pypdf import PdfReader
        from pypdf.errors import PdfReadError

        try:
            n = len(PdfReader(io.BytesIO(data)).pages)
        except (PdfReadError, OSError, ValueError, KeyError, TypeError) as e:
            raise images.CorruptImage(f"{filename}: damaged PDF, cannot read it ({e})", filename=filename) from e
        if n == 0:
            raise images.EmptyDocument(f"{filename}: the PDF has no pages", filename=filename)
        return kind
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                w, h = img.size
                if w * h > limit:
                    raise images._too_large(filename, 1, w, h, limit)
                if kind == "png":
                    img.verify()  # chunk CRCs: a truncated or damaged PNG fails here
    except Image.DecompressionBombError as e:
        raise images.ImageTooLarge(f"{filename}: image is too large to decode safely ({e}); scan at 200-300 "
                                   "dpi instead", filename=filename) from e
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise images.CorruptImage(f"{filename}: damaged {kind.upper()} file, cannot read it ({e})",
                                  filename=filename) from e
    return kind
