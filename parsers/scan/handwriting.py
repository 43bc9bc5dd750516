"""Handwriting in a field: whether anything is written, reading it and validating what was read
(dates, ID numbers, phone numbers, names matched against the case's people)."""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from forms import validators as v
from forms.spec import Field, Kind
from parsers import marks
from parsers.base import FieldReading, jsonable
from parsers.images import ink_mask, to_gray
from parsers.ocr import OcrEngine, OcrFailed, OcrText
from parsers.scan.readings import CONFIRM_KINDS, ReadContext, norm_text, recognize

log = logging.getLogger(__name__)

# A handwritten mark at least this tall (mm) in a blank field is writing, however little ink it is.
HAND_MIN_MM = 2.0

def is_unwritten(crop: np.ndarray, dpi: float) -> bool:
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
    if float(marks.remove_lines(inner).mean()) >= 0.004:
        return False
    # Only uprights that run (nearly) across the zone are borders: with the default, the upright
    # stroke of a lone digit in a low zone would go too.
    strokes = marks.remove_lines(inner, tall=max(15, int(0.8 * inner.shape[0])))
    # A thin stroke on a fax falls apart into specks: join pieces across small gaps (~0.6 mm)
    # before measuring how tall the marks are (a lone "6" must not read as blank).
    j = max(3, int(round(0.6 * dpi / 25.4)) | 1)
    strokes = strokes.astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(cv2.dilate(strokes, np.ones((j, j), np.uint8)))
    ink_per = np.bincount(labels[strokes > 0], minlength=n)
    tall = HAND_MIN_MM * dpi / 25.4
    return not any(stats[i, cv2.CC_STAT_HEIGHT] - (j - 1) >= tall and ink_per[i] >= 0.6 * tall
                   for i in range(1, n))


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


# Characters a recogniser puts where it saw ink it could not read (a lost 一 came back as "_"):
# a value holding one is not a confident reading whatever the engine's score.
PLACEHOLDERS = re.compile(r"[_＿|/\\?？*□■○●◇◆△▲…]")
# Kinds whose handwriting is Chinese text: Latin letters in them are misreadings too.
CJK_KINDS = (Kind.TEXT, Kind.NAME)
# The written line's width against what the value read would take (CJK characters about square,
# digits and Latin about half as wide): outside this band a character was dropped or invented.
WIDTH_BAND = (0.62, 1.6)


def read_hand(path: str, f: Field, got: OcrText, crop: np.ndarray, fallback: OcrEngine | None,
              ctx: ReadContext, common: dict) -> FieldReading:
    """A value written freely in its cell. Accepted without a person only on independent evidence
    that agrees (``corroborate``): the second recogniser reading the same value, or validation that
    cannot pass by chance (the ID number's check digit, a name that is exactly one of the case's
    people), with no placeholder character in it and as many characters as the ink holds."""
    value, conf, status, reason = interpret_hand(f, got, ctx)
    other, second = None, None
    if fallback is not None:
        try:
            other = recognize(fallback, crop)
        except OcrFailed as e:
            log.warning("second OCR failed on %s: %s", path, e.message)
        else:
            second = interpret_hand(f, other, ctx)
            if second[2] == "read" and status != "read":
                # the first engine's reading failed validation: the second one's is the proposal,
                # and nothing agrees with it
                value, conf, status, reason = second
                got, other, second = other, got, (value, conf, status, reason)
                second = interpret_hand(f, other, ctx)
    confirm = (f.confirm or f.kind in CONFIRM_KINDS) and value is not None
    doubt = corroborate(f, value, got, other, second, crop, ctx) if status == "read" else ""
    if doubt:
        conf = min(conf, 0.6)
        status, reason = "low", doubt
    review = status != "read" or conf < ctx.threshold or confirm
    if confirm and not reason:
        reason = confirm_reason(f)
    elif status == "read" and conf < ctx.threshold and not reason:
        reason = f"识别把握不足（{conf:.2f}）"
    return FieldReading(path, f.kind.value, "hand", status if status != "read" or conf >= ctx.threshold else "low",
                        jsonable(value), got.text, conf, review, reason, confirm=confirm, **common)


def _shown(f: Field, text: str) -> str:
    return v.mask_id(text) if f.kind == Kind.ID_NUMBER else text


def corroborate(f: Field, value: Any, got: OcrText, other: OcrText | None, second, crop: np.ndarray,
                ctx: ReadContext) -> str:
    """Why a validated handwritten reading cannot be accepted without a person ("" when it can)."""
    text = got.text.strip()
    if PLACEHOLDERS.search(text) or (f.kind in CJK_KINDS and re.search(r"[A-Za-z]", text)):
        return f"识别结果“{_shown(f, text)}”含有占位或异常字符，可能漏读了字，请核对"
    if f.kind not in (Kind.ID_NUMBER, Kind.INT, Kind.PHONE) and not _width_agrees(text, crop):
        return f"识别出{len(norm_text(text))}个字，与格内笔迹的长度不符，可能漏读或多读了字，请核对"
    # validation that a misreading cannot pass by chance
    if f.kind == Kind.ID_NUMBER:
        return ""
    if f.kind == Kind.NAME and value in ctx.people and norm_text(text) == value:
        return ""
    if second is None:
        # Also for a field a person confirms anyway: a reading nothing else vouches for is not
        # proposed as a plain "confirm" item (the reviewer would take it as checked).
        return "只有一个识别引擎读出结果，无法交叉核对，请核对"
    if second[2] != "read" or jsonable(second[0]) != jsonable(value):
        return (f"两个识别引擎读法不一致（“{_shown(f, text)}”/“{_shown(f, other.text.strip() if other else '')}”），"
                "请核对")
    return ""


def _width_agrees(text: str, crop: np.ndarray) -> bool:
    """Does the written ink's extent fit the number of characters read? Characters are about as
    wide as the line is high (digits and Latin letters about half that)."""
    import cv2

    t = norm_text(text)
    if not t:
        return False
    ink = ink_mask(to_gray(crop), contrast=0.7)
    # only borders that run (nearly) across the cell go: an upright stroke of a 1 or 丨 stays
    ink = marks.remove_lines(ink, tall=max(15, int(0.8 * ink.shape[0])))
    ink = cv2.morphologyEx(ink.astype(np.uint8), cv2.MORPH_OPEN, np.ones((2, 2), np.uint8))
    ys, xs = np.nonzero(ink)
    if len(xs) < 10:
        return True  # nothing to measure against
    rows = ink.any(axis=1)
    # the line's height: the tallest run of inked rows (a second line of writing is not counted)
    runs, cur = [], 0
    for r in rows:
        cur = cur + 1 if r else 0
        runs.append(cur)
    height = max(runs)
    if height < 6:
        return True
    want = sum(0.55 if c.isascii() else 1.0 for c in t) * height
    lines = max(1, int(round((ys.max() - ys.min() + 1) / (1.25 * height))))
    width = (xs.max() - xs.min() + 1) * lines
    lo, hi = WIDTH_BAND
    return lo <= width / max(want, 1.0) <= hi


# A handwritten date on a returned form falls soon after the document was issued (served, signed,
# received, registered within weeks). One this many days later or more is read as doubtful: a digit
# misread in the year (2025 -> 2026) or month still makes a valid date before today.
LATE_AFTER_ISSUE_DAYS = 180


def confirm_reason(f: Field) -> str:
    if f.confirm:
        return "送达时间须人工确认" if f.kind == Kind.DATETIME else "送达日期须人工确认"
    return "手写电话号码没有校验位，须人工核对"


def interpret_hand(f: Field, got: OcrText, ctx: ReadContext) -> tuple[Any, float, str, str]:
    """(value, confidence, status, reason): validation moves the OCR confidence. ``status``: "read",
    "invalid" (failed validation), or "low" (valid but doubtful: a date long after the issue)."""
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
            # dates in the reasons as people write them (2025年9月26日)
            shown, issued = v.format_date(day), v.format_date(ctx.issued_on)
            if ctx.issued_on and day < ctx.issued_on:
                return when, min(conf, 0.4), "invalid", f"{shown}早于发文日期{issued}"
            if day > (ctx.today or dt.date.today()):
                return when, min(conf, 0.4), "invalid", f"{shown}是未来的日期"
            late = (day - ctx.issued_on).days if ctx.issued_on else 0
            if late >= LATE_AFTER_ISSUE_DAYS:
                return when, min(conf, 0.6), "low", (f"读作{shown}，比发文日期{issued}晚{late}天，远晚于通常的"
                                                     "填写时间：年份或月份可能读错，请核对")
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
