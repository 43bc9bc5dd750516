"""Reading one identified page: align it to its template page and read every field on it
(printed values checked against the issue, tick boxes, marks, handwriting); pages of one
document merged into one reading per field."""

from __future__ import annotations

import difflib
import io
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from forms.spec import Field, Filled, Kind, format_value, is_blank
from parsers import marks
from parsers.align import AlignmentFailed, TemplatePage, align
from parsers.base import BBox, FieldReading, issued_value, jsonable, resolve_field
from parsers.images import PageImage, rotate_quarter
from parsers.ocr import OcrEngine, OcrFailed, OcrText
from parsers.scan.boxes import BoxWriting, box_writing, doubt_reason, read_boxed
from parsers.scan.handwriting import is_unwritten, read_hand
from parsers.scan.identify import PageIdentity
from parsers.scan.ink import INK_AGREE, INK_OUTLIER, INK_SEARCH_PT, INK_SURE, InkComparison, compare_ink
from parsers.scan.readings import (
    MARK_KINDS,
    MAX_PRINTED_CHECK,
    TICK_KINDS,
    OcrBatch,
    ReadContext,
    inset,
    norm_text,
    recognize,
)
from parsers.scan.ticks import tick_evidence

log = logging.getLogger(__name__)

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
    # the resolution the page was scanned at (the aligned image is resampled): as its file says,
    # or as its size against the form's
    scanned_dpi = float(page.dpi or 0.0) or max(page.pixels.shape[:2]) / max(template.width_pt, template.height_pt) * 72
    readings: dict[str, FieldReading] = {}
    crops: dict[str, np.ndarray] = {}
    batch = OcrBatch(engine)
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
        zone = inset(bbox, 0.5 if is_text else 1.8)
        crop = aligned.crop(zone, pad_pt=0.8 if is_text else 0.0)
        crops[path] = aligned.crop(bbox, pad_pt=6.0)
        px = aligned.box_px(bbox)
        issued = issued_value(ctx.issued, path)
        common = {"page_no": identity.page_no, "bbox_pt": bbox, "bbox_px": px, "issued": jsonable(issued)}
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
            if len(norm_text(expected)) > MAX_PRINTED_CHECK or not norm_text(expected):
                readings[path] = FieldReading(path, f.kind.value, "printed", "unchecked", jsonable(issued), "",
                                              1.0, False, "长段印刷文字不在扫描件上复核", **common)
                continue
            ink = None
            if ctx.reference is not None:
                pad = 0.8 if is_text else 0.0
                margin = int(round(INK_SEARCH_PT * dpi / 72.0))
                scan_crop = aligned.crop(zone, pad_pt=pad + INK_SEARCH_PT)
                ref_crop = ctx.reference.crop(identity.page_no, zone, pad_pt=pad)
                ink = compare_ink(scan_crop, ref_crop, margin_px=margin)
                ink_scores.append(ink.score)
                sealed = ink.score >= INK_SURE and colour and _under_seal(aligned, zone, dpi)
                if sealed:
                    # a seal stamped over the value: compared again without the seal's red
                    ink = compare_ink(marks.without_red(scan_crop), ref_crop, margin_px=margin)
                if sealed and ink.score < INK_SURE:
                    readings[path] = FieldReading(
                        path, f.kind.value, "printed", "match", jsonable(issued), "",
                        round(max(0.9, 1.0 - ink.score / 4), 4), False,
                        f"印章压在印刷文字上；去掉印章的红色后与签发的 PDF 逐笔比对一致（差异{ink.score:.2f}）",
                        **common)
                    continue
                if ink.score < INK_SURE:
                    readings[path] = FieldReading(
                        path, f.kind.value, "printed", "match", jsonable(issued), "",
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
            bw = box_writing(aligned, cells, bbox, dpi=dpi, reference=ctx.reference, page_no=identity.page_no,
                             source_dpi=scanned_dpi)
            if bw.line is None and not bw.doubtful:
                readings[path] = FieldReading(path, f.kind.value, "hand", "blank", None, "", 0.97, False,
                                              "格子里没有笔迹", **common)
                continue
            if bw.line is None:  # ink in a box, too little to be sure it is a digit or nothing
                readings[path] = FieldReading(path, f.kind.value, "hand", "low", None, "", 0.3, True,
                                              doubt_reason(bw), **common)
                continue
            batch.add(path, bw.line)
            for k, digit in enumerate(bw.digits):
                batch.add(f"{path}#{k}", digit)
            pending.append((path, f, "boxes", issued, bbox, bw.line, bw))
            continue
        if is_unwritten(crop, dpi):
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
                  "issued": jsonable(issued)}
        got = texts.get(path, OcrText("", 0.0))
        if origin == "printed":
            ink = aux if isinstance(aux, InkComparison) else None
            strong = ink is not None and strong_from is not None and ink.score >= strong_from
            readings[path] = _check_printed(path, f, issued, got, crop, fallback, common, ink=ink, strong=strong)
        elif isinstance(aux, BoxWriting):
            singles = [texts.get(f"{path}#{k}", OcrText("", 0.0)) for k in range(len(aux.digits))]
            readings[path] = read_boxed(path, f, got, aux, singles, fallback, ctx, common)
        else:
            readings[path] = read_hand(path, f, got, crop, fallback, ctx, common)
    return PageReading(identity, geo.get("part"), readings, crops, aligned.method, aligned.residual_px,
                       time.perf_counter() - start)


def _under_seal(aligned, zone: BBox, dpi: float) -> bool:
    """Is there a seal-sized red impression over ``zone`` (judged on the zone and 20 mm round it)?"""
    pad = 20 * 72 / 25.4
    return marks.seal_present(aligned.crop(zone, pad_pt=pad), dpi=dpi, colour=True).state != marks.ABSENT \
        and marks.red_extent_mm(aligned.crop(zone, pad_pt=pad), dpi) >= 15.0


def _check_printed(path: str, f: Field, issued: Any, got: OcrText, crop: np.ndarray,
                   fallback: OcrEngine | None, common: dict, *, ink: InkComparison | None = None,
                   strong: bool = False) -> FieldReading:
    """A printed value read by OCR, checked against the issued one. ``ink``: the comparison with the
    issued PDF that sent it here (None without a reference); ``strong``: that difference stands out
    from the page's scanning noise, so the field goes to review whatever OCR reads."""
    expected = norm_text(format_value(f, issued))

    def score(t: OcrText) -> float:
        return difflib.SequenceMatcher(None, norm_text(t.text), expected).ratio()

    best, ratio = got, score(got)
    if (ratio < 1.0 or got.confidence < 0.8) and fallback is not None:
        try:
            other = recognize(fallback, crop)
        except OcrFailed as e:
            log.warning("fallback OCR failed on %s: %s", path, e.message)
        else:
            if score(other) > ratio:
                best, ratio = other, score(other)
    value = jsonable(issued)
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
    if ctx.reference is not None:
        # Writing is what the issued page does not show: a tick reaching far outside its box, or a
        # ring round the box and label, is seen; "empty" only with no writing in or near the box.
        found = tick_evidence(aligned, boxes, dpi=aligned.dpi, reference=ctx.reference, page_no=common["page_no"])
        states = [marks.Mark(e.state, e.inside, 0.97 if e.state != marks.AMBIGUOUS else 0.3,
                             "" if e.state != marks.AMBIGUOUS else
                             ("框外有笔迹（圈选、勾出框外或写在旁边）" if e.near > e.inside else "框内笔迹很少"))
                  for e in found]
    else:
        states = [marks.tick_state(aligned.crop(b, pad_pt=1.2)) for b in boxes]
    ticked = [code for code, m in zip(options, states, strict=True) if m.state == marks.TICKED]
    conf = min(m.confidence for m in states)
    origin_printed = not is_blank(issued) and f.filled != Filled.HAND
    if ctx.reference is not None and origin_printed and not ticked \
            and not any(m.state == marks.AMBIGUOUS for m in states):
        # Against the issued page the ticks printed at issue (☑) are print, not writing: no writing
        # in or near any box is the page as it was issued, not a box left empty.
        return FieldReading(path, f.kind.value, "tick", "match", jsonable(issued), "", conf, False,
                            "勾选与签发时印刷的一致", **common)
    text = ",".join(f"{code}:{m.state}" for code, m in zip(options, states, strict=True))
    if any(m.state == marks.AMBIGUOUS for m in states):
        why = next((m.reason for m in states if m.state == marks.AMBIGUOUS and m.reason), "")
        return FieldReading(path, f.kind.value, "tick", "ambiguous", None, text, conf, True,
                            f"勾选不清（{why or '笔迹浅或只勾了一部分'}），须人工判断", **common)
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
    if origin_printed and value != issued:
        return FieldReading(path, f.kind.value, "tick", "mismatch", jsonable(issued), text, conf, True,
                            "勾选与签发时印刷的不一致：可能被改动", **common)
    confirm = f.confirm and value not in (None, [])
    low = conf < ctx.threshold
    review = confirm or low
    reason = "送达方式须人工确认" if confirm else ("勾选把握不足" if low else "")
    return FieldReading(path, f.kind.value, "tick", "read" if not low else "low", value, text, conf, review,
                        reason, confirm=confirm, **common)


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
    """PNG of a crop (for the review queue). zlib level 1: on a scan crop about the size ``optimize``
    gives (which tried every filter: ~16 ms a crop, a tenth of reading a page with a few to review),
    in ~2 ms."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()
