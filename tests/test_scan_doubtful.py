"""How a doubtful handwritten date or time is put to a person (issue 15): with its reason, never as
the plain "confirm" item a 送达 date always gets — a reviewer takes a plain confirmation for a
checked reading. Found by the full scan bench: a boxed date whose year digit was misread
(2025-10-11 read 2026-10-11, still before today) accepted without review."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from cases.returns.intake import review_kind
from cases.store.models import from_json
from forms.registry import get_spec
from parsers import scan
from parsers.ocr import FakeOcrEngine, OcrText
from parsers.scan import boxes, handwriting

SAMPLES = Path(__file__).parent / "samples" / "scans"
ISSUED_ON = dt.date(2025, 9, 26)


@lru_cache(maxsize=1)
def _ctx() -> scan.ReadContext:
    spec = get_spec("guardian_notice")
    geo = json.loads((SAMPLES / "geometry.json").read_text(encoding="utf-8"))
    issued = from_json(spec, json.loads((SAMPLES / "issued.json").read_text(encoding="utf-8")))
    # today more than a year after the issue: a year misread by one digit is still a past date
    return scan.ReadContext(spec, spec.variant("xianqi"), geo, issued, {}, people=("王建国", "刘秀兰", "王浩然"),
                            issued_on=ISSUED_ON, today=dt.date(2026, 12, 7))


def _ink(text: str) -> np.ndarray:
    """A cell with a stroke of ink per character of ``text`` in a row, as wide as the character
    (a digit half as wide as a Chinese one): as long as the value read."""
    widths = [22 if c.isascii() else 44 for c in text]
    crop = np.full((60, 20 + sum(widths) + 6 * len(text), 3), 255, np.uint8)
    x = 10
    for w in widths:
        cv2.ellipse(crop, (x + w // 2, 30), (w // 2, 19), 0, 0, 360, (0, 0, 0), 3)
        x += w + 6
    return crop


def _free(path: str, first: str, second: str | None):
    f = get_spec("guardian_notice").field(path)
    fallback = FakeOcrEngine(func=lambda c: OcrText(second, 0.95)) if second is not None else None
    return handwriting.read_hand(path, f, OcrText(first, 0.99), _ink(first), fallback, _ctx(), {"page_no": 5})


def test_a_date_long_after_the_issue_is_doubtful_whatever_the_engines_say():
    f = get_spec("guardian_notice").field("recipient_signed_on")
    near = handwriting.interpret_hand(f, OcrText("2025年10月11日", 0.99), _ctx())
    assert near[1:] == (1.0, "read", "")
    value, conf, status, reason = handwriting.interpret_hand(f, OcrText("2026年10月11日", 0.99), _ctx())
    assert (value, status) == (dt.date(2026, 10, 11), "low") and conf <= 0.6
    assert "晚380天" in reason and "发文日期2025年9月26日" in reason and "读作2026年10月11日" in reason
    # the last day before it counts as plausible, that day itself does not
    edge = ISSUED_ON + dt.timedelta(days=handwriting.LATE_AFTER_ISSUE_DAYS)
    def status(day: dt.date) -> str:
        return handwriting.interpret_hand(f, OcrText(f"{day:%Y年%m月%d日}", 0.99), _ctx())[2]

    assert (status(edge - dt.timedelta(days=1)), status(edge)) == ("read", "low")

    # free handwriting (送达时间): both engines read the same wrong year — still a person's, with the
    # reason, and not as a plain confirmation
    r = _free("service_time", "2026年10月1日10时", "2026年10月1日10时")
    assert (r.value, r.status, r.needs_review) == ("2026-10-01T10:00:00", "low", True)
    assert "年份或月份可能读错" in r.reason and review_kind(r) == "low_confidence"
    ok = _free("service_time", "2025年10月1日10时", "2025年10月1日10时")
    assert (ok.value, ok.status, ok.confirm, ok.reason) == ("2025-10-01T10:00:00", "read", True, "送达时间须人工确认")
    assert review_kind(ok) == "confirm"


def test_a_confirmed_field_read_by_one_engine_only_says_so():
    """The second engine failed (a tesseract time-out): the 送达时间 is what one engine alone read.
    Before, it went out as a plain "confirm" item."""
    r = _free("service_time", "2025年10月1日16时", None)
    assert (r.value, r.status, r.needs_review) == ("2025-10-01T16:00:00", "low", True)
    assert "只有一个识别引擎" in r.reason and review_kind(r) == "low_confidence"
    differ = _free("service_time", "2025年10月1日16时", "2025年10月1日10时")
    assert differ.status == "low" and "不一致" in differ.reason and review_kind(differ) == "low_confidence"


def test_a_boxed_date_the_digit_readers_decode_late_is_proposed_with_its_reason(monkeypatch):
    """The line reading of the boxes failed; the digit readers decode a valid date a year after the
    issue (the year's last digit misread). It is proposed for review with the reason, not accepted
    and not dropped."""
    f = get_spec("guardian_notice").field("recipient_signed_on")
    inked = (True,) * 8
    digit = np.zeros((20, 20, 3), np.uint8)
    bw = boxes.BoxWriting(inked, np.full((30, 200, 3), 255, np.uint8), (digit,) * 8)
    monkeypatch.setattr(boxes.digit_model, "available", lambda: True)
    def sure(text):  # the digit readers sure of each digit of ``text``, one per box
        out = []
        for c in text:
            probs = np.full(10, 0.001)
            probs[int(c)] = 0.991
            out.append(boxes.digit_model.DigitGuess(int(c), boxes.digit_model.K, probs,
                                                    np.eye(10, dtype=np.int64)[int(c)] * boxes.digit_model.K))
        return out

    monkeypatch.setattr(boxes.digit_model, "classify_many", lambda crops: sure("20261011"))
    ctx = dataclasses.replace(_ctx())
    r = boxes.read_boxed("recipient_signed_on", f, OcrText("0101", 0.5), bw, [OcrText("", 0.0)] * 8, None, ctx,
                         {"page_no": 5})
    assert (r.value, r.status, r.needs_review, r.confirm) == ("2026-10-11", "low", True, False)
    assert "晚380天" in r.reason and review_kind(r) == "low_confidence"
    # the same decoding of a date soon after the issue is taken (and confirmed as a 送达 date)
    monkeypatch.setattr(boxes.digit_model, "classify_many", lambda crops: sure("20251011"))
    ok = boxes.read_boxed("recipient_signed_on", f, OcrText("0101", 0.5), bw, [OcrText("", 0.0)] * 8, None, ctx,
                          {"page_no": 5})
    assert (ok.value, ok.status, ok.confirm) == ("2025-10-11", "read", True) and review_kind(ok) == "confirm"
