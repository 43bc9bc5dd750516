"""Handwritten numbers in printed character boxes (DOMAIN §5.6.2), read back from scans: a 送达回证
rendered for real (LibreOffice) prints 签收日期 as □□□□年□□月□□日; digits are written one per box
on its raster, and the pipeline finds which boxes hold writing, reads the digits off the boxes
with the printed ink taken away, checks each digit read alone against the line, and validates."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from functools import lru_cache

import numpy as np
import pytest

from cases.store.models import from_json
from forms.registry import get_spec
from parsers import scan
from parsers.images import load_pages
from parsers.ocr import FakeOcrEngine, OcrText
from parsers.scan import boxes
from tests.samples.scans import make_scans as mk

RECEIPT = mk.RECEIPT_PAGE  # 送达回证 page of a 限期返校通知书
STUB = 1


@lru_cache(maxsize=1)
def _issued():
    pdf, geo, issued_json = mk.issue("guardian_notice", "xianqi", doc_id="BOXREAD00001",
                                     overrides=mk.NOTICE_DATA_OVERRIDES)
    spec = get_spec("guardian_notice")
    ticks = scan.tick_boxes_from_pdf(pdf, geo)
    ctx = scan.ReadContext(spec, spec.variant("xianqi"), geo, from_json(spec, issued_json), ticks,
                           issued_on=dt.date(2025, 9, 26), today=dt.date(2026, 1, 1),
                           reference=scan.ReferencePages(pdf))
    return pdf, geo, ticks, ctx


def _written(page_no: int, boxed: dict[str, str], *, skew: float = 0.8):
    pdf, geo, ticks, _ctx = _issued()
    px = mk.fill(mk.rasterise(pdf, page_no, 200), geo["pages"][page_no - 1], 200, boxed=boxed,
                 tick_boxes=ticks.get(page_no, {}), seed=page_no)
    data = mk.encode(mk.rotate(px, skew), "PNG", 200)
    return load_pages(data, filename=f"boxes-{page_no}.png")[0]


def _read(page, engine, fallback=None):
    _pdf, _geo, _ticks, ctx = _issued()
    identity = scan.identify_page(page, secret=mk.SECRET)
    assert identity.status == "identified"
    return scan.read_page(page, identity, ctx, engine=engine, fallback=fallback)


def _by_line(line: str, singles: dict[int, str] | None = None, conf: float = 0.97):
    """A fake recogniser: the composed line (the widest crop) reads ``line``; the k-th digit read
    alone reads ``singles[k]`` or that digit of ``line``; any other crop reads nothing."""
    seen = {"k": 0}

    def answer(crop: np.ndarray) -> OcrText:
        if crop.shape[1] > 3 * crop.shape[0]:
            seen["k"] = 0
            return OcrText(line, conf)
        k = seen["k"]
        seen["k"] += 1
        digits = [c for c in line if c.isdigit()]
        return OcrText((singles or {}).get(k, digits[k] if k < len(digits) else ""), conf)

    return FakeOcrEngine(func=answer)


def test_the_printed_boxes_are_located_for_every_boxed_field():
    _pdf, geo, ticks, _ctx = _issued()
    for page_no, path in ((RECEIPT, "recipient_signed_on"), (STUB, "stub_service_date")):
        cells = ticks[page_no][path]
        assert len(cells) == 8
        widths = [c[2] - c[0] for c in cells]
        assert all(abs(w - widths[0]) < 0.5 for w in widths) and 12 <= widths[0] <= 15  # 14 pt, one em
        assert [c[0] for c in cells] == sorted(c[0] for c in cells)


def test_which_boxes_hold_writing():
    pdf, geo, ticks, ctx = _issued()
    page = _written(STUB, {"stub_service_date": "2025 928"})
    identity = scan.identify_page(page, secret=mk.SECRET)
    from parsers.align import TemplatePage, align

    aligned = align(page, TemplatePage.from_mapping(geo["pages"][STUB - 1]), qr=identity.qr)
    bbox = tuple(geo["pages"][STUB - 1]["fields"]["stub_service_date"]["bbox"])
    bw = scan.box_writing(aligned, ticks[STUB]["stub_service_date"], bbox, dpi=aligned.dpi,
                          reference=ctx.reference, page_no=STUB)
    assert bw.inked == (True, True, True, True, False, True, True, True)
    assert len(bw.digits) == 7 and bw.line is not None
    # the composed line holds the writing only: no box edges, so no long straight strokes
    ink = bw.line[:, :, 0] < 128
    assert ink.any() and ink.any(axis=1).sum() < 0.9 * ink.shape[0]
    # without the issued PDF the outlines are drawn from the box positions: same answer
    bare = scan.box_writing(aligned, ticks[STUB]["stub_service_date"], bbox, dpi=aligned.dpi)
    assert bare.inked == bw.inked


def test_unwritten_boxes_are_blank_not_review():
    page = _written(STUB, {})
    r = _read(page, _by_line("")).readings["stub_service_date"]
    assert (r.status, r.value, r.needs_review) == ("blank", None, False)


def test_boxed_date_read_and_validated_with_a_fake_recogniser(monkeypatch):
    """The line's reading and its validation alone (the digit readers, which take UKai's 3 for
    an 8, are tested below)."""
    from parsers.scan import digits as dm

    monkeypatch.setattr(dm, "available", lambda: False)
    page = _written(RECEIPT, {"recipient_signed_on": "20251003"})
    r = _read(page, _by_line("2025 1003")).readings["recipient_signed_on"]
    assert (r.origin, r.value, r.text) == ("hand", "2025-10-03", "2025年10月03日")
    # read and confirmed by a person as every service date is (DOMAIN §5.6 3(b)), but with no
    # digit reader to vouch for each box it is not a plain confirmation: the value stays proposed
    assert r.confirm and r.needs_review and r.confidence <= 0.6
    assert r.reason == "逐格识别未能核对每个格子的数字，请核对原件"
    # a digit read alone as another digit: the value is a person's to confirm
    r = _read(page, _by_line("20251003", singles={5: "6"})).readings["recipient_signed_on"]
    assert r.value == "2025-10-03" and r.needs_review and "第6个数字" in r.reason
    # one digit fewer than written boxes: never guessed
    r = _read(page, _by_line("2025103")).readings["recipient_signed_on"]
    assert (r.status, r.value, r.needs_review) == ("invalid", None, True)
    assert "8个格子有笔迹" in r.reason
    # a plausible-looking date before the notice was issued fails validation
    r = _read(page, _by_line("20250903")).readings["recipient_signed_on"]
    assert r.status == "invalid" and r.needs_review and r.reason == "2025年9月3日早于发文日期2025年9月26日"


def test_boxed_text_rules():
    f = get_spec("guardian_notice").field("recipient_signed_on")
    full = (True,) * 8
    assert scan.boxed_text(f, full, "20251003") == ("2025年10月03日", "")
    one_digit_month = (True, True, True, True, False, True, True, True)
    assert scan.boxed_text(f, one_digit_month, "2025928") == ("2025年09月28日", "")
    gap_in_year = (True, True, False, True, True, True, True, True)
    assert scan.boxed_text(f, gap_in_year, "2251003") == (None, "有1个格子没有写")
    assert scan.boxed_text(f, full, "2025100")[0] is None
    phone = get_spec("referral_letter").field("reply_phone")
    assert scan.boxed_text(phone, (True,) * 11, "13912345678") == ("13912345678", "")
    assert scan.boxed_text(phone, (True,) * 10 + (False,), "1391234567")[1] == "有1个格子没有写"
    alone = ("()", "Q", "7", "?", "12", "", "0.")
    assert [scan.single_digit(t) for t in alone] == ["0", "0", "7", "2", None, None, "0"]


@pytest.mark.slow
@pytest.mark.parametrize("written,want", [("20251003", "2025-10-03"), ("2025 928", "2025-09-28")])
def test_boxed_date_read_by_the_real_engines(written, want):
    from parsers.ocr import get_engine

    page = _written(RECEIPT, {"recipient_signed_on": written})
    r = _read(page, get_engine("rapidocr"), get_engine("tesseract")).readings["recipient_signed_on"]
    # read right, or sent to a person: never a wrong value taken as read
    assert r.value == want or r.needs_review
    assert r.value == want


def test_a_boxed_phone_number_is_read_but_always_confirmed(monkeypatch):
    """No check digit: a misread digit would pass every check, so a person confirms the number
    (the digit readers agreeing in every box: a plain confirmation)."""
    from parsers.scan import digits as dm

    monkeypatch.setattr(dm, "available", lambda: True)
    monkeypatch.setattr(dm, "classify_many", lambda crops: _guesses("13912345678")[:len(crops)])
    _pdf, _geo, _ticks, ctx = _issued()
    f = get_spec("referral_letter").field("reply_phone")
    blank = np.full((40, 30, 3), 255, np.uint8)
    bw = scan.BoxWriting((True,) * 11, np.full((40, 300, 3), 255, np.uint8), (blank,) * 11)
    common = {"page_no": 3}
    singles = [OcrText(c, 0.99) for c in "13912345678"]
    r = boxes.read_boxed("reply_phone", f, OcrText("13912345678", 0.98), bw, singles, None, ctx, common)
    assert (r.status, r.value, r.confirm, r.needs_review) == ("read", "13912345678", True, True)
    assert "没有校验位" in r.reason
    # a box left empty in a phone number is never filled in by guessing
    bw = scan.BoxWriting((True,) * 10 + (False,), bw.line, (blank,) * 10)
    r = boxes.read_boxed("reply_phone", f, OcrText("1391234567", 0.98), bw, singles[:10], None, ctx, common)
    assert (r.status, r.value, r.needs_review) == ("invalid", None, True) and r.reason == "有1个格子没有写"


def test_a_boxed_id_number_is_checked_by_its_check_digit(monkeypatch):
    """18 boxes (DOMAIN §5.6.2): the last may hold X; the check digit decides between the digits
    a box may hold, and a reading it rejects is never taken."""
    from forms.spec import Field, Filled, Kind
    from forms.validators import synthetic_id_number
    from parsers.scan import digits as dm

    _pdf, _geo, _ticks, ctx = _issued()
    f = Field("proxy_id_number", "代收人身份证号", Kind.ID_NUMBER, filled=Filled.HAND, boxes=18)
    assert f.box_pattern() == "□" * 18 and f.box_groups() == (18,)
    good = synthetic_id_number("410781", dt.date(2011, 3, 14), 3)
    blank = np.full((40, 30, 3), 255, np.uint8)
    bw = scan.BoxWriting((True,) * 18, np.full((40, 500, 3), 255, np.uint8), (blank,) * 18)
    monkeypatch.setattr(dm, "available", lambda: True)
    monkeypatch.setattr(dm, "classify_many", lambda crops: _guesses(good))
    singles = [OcrText(c, 0.99) for c in good]
    r = boxes.read_boxed(f.name, f, OcrText(good, 0.95), bw, singles, None, ctx, {})
    assert (r.status, r.value, r.needs_review) == ("read", good, False) and r.confidence >= 0.98
    assert r.text == good[:6] + "*" * 8 + good[-4:]  # never a full ID number in a reading's text
    # box 11 torn between its digit and another: only one of them makes the check digit fit
    other = str((int(good[10]) + 3) % 10)
    torn = _guesses(good[:10] + other + good[11:], b10=(0.55, 5, int(good[10])))
    d = boxes.decode_boxes(f, (True,) * 18, torn, [None] * 18, [], ctx)
    assert d.digits == good and d.posterior > 0.9
    # every box sure, the check digit wrong: some box is misread, nobody knows which: never taken
    wrong = good[:10] + str((int(good[10]) + 1) % 10) + good[11:]
    monkeypatch.setattr(dm, "classify_many", lambda crops: _guesses(wrong))
    r = boxes.read_boxed(f.name, f, OcrText(wrong, 0.99), bw, [OcrText(c, 0.99) for c in wrong], None, ctx, {})
    assert r.needs_review and r.value != wrong and r.confidence <= 0.6
    assert wrong not in r.reason and good not in r.reason and wrong not in r.text


# ---- the digit readers (parsers/scan/digits.py): a third reading, independent of the OCR engines ----------

def _guess(digit: int, p: float = 0.99, votes: int = 9, second: int | None = None):
    """A digit reader's answer: ``digit`` with probability ``p`` and ``votes`` of the nearest
    references, the rest going to ``second`` (or spread evenly)."""
    from parsers.scan import digits as dm

    probs = np.full(10, (1 - p) / 9)
    counts = np.zeros(10, np.int64)
    counts[digit] = votes
    if second is not None:
        probs = np.full(10, 1e-4)
        probs[second] = 1 - p
        counts[second] = dm.K - votes
    probs[digit] = p
    return dm.DigitGuess(digit, votes, probs / probs.sum(), counts)


def _guesses(text: str, **unsure):
    """One guess per character of ``text``; ``unsure``: {"b<k>": (p, votes, second)} for box k."""
    return [_guess(int(c), *unsure.get(f"b{k}", ())) for k, c in enumerate(text)]


def test_a_date_is_decoded_against_the_dates_it_can_be():
    """The digit readers' per-box probabilities decoded against every date the field can hold:
    the posterior of the best date decides, and a refusal names the boxes and the alternatives."""
    _pdf, _geo, _ticks, ctx = _issued()  # issued 2025-09-26, read on 2026-01-01
    f = get_spec("guardian_notice").field("recipient_signed_on")
    full = (True,) * 8
    none = [None] * 8

    def decode(guesses, alone=none, lines=(), inked=full):
        return boxes.decode_boxes(f, inked, guesses, alone, list(lines), ctx)

    # every digit sure: the date, sure
    d = decode(_guesses("20251003"))
    assert (d.text, d.sure) == ("2025年10月03日", True) and d.posterior > 0.99
    # the readers torn between 3 and 8 for the last digit (both plausible days): never taken ...
    split = _guesses("20251003", b7=(0.55, 5, 8))
    d = decode(split)
    assert (d.digits, d.sure) == ("20251003", False) and 0.5 < d.posterior < 0.9
    assert d.doubtful == ((8, ("8",)),) and d.alternatives[0][0] == "2025年10月8日"
    assert boxes.decode_reason(f, d) == (
        f"第8个数字不确定（读作2025年10月3日，也可能是2025年10月8日，把握{d.posterior:.0%}），请核对原件")
    # ... and the OCR engines, weaker evidence, do not settle it on their own; they move it (the
    # network at 0.8 for 3: 0.79 -> 0.98), and where the readers lean further to 3 (0.9) both
    # engines' lines and the box read alone settle it. A line with a digit too few is evidence too,
    # not a veto
    assert not decode(split, none[:7] + ["3"], ["20251003", "20251003"]).sure
    lean = _guesses("20251003", b7=(0.8, 7, 8))
    assert not decode(lean).sure and not decode(lean, none[:7] + ["3"], ["20251003", "20251003"]).sure
    assert decode(lean, none[:7] + ["3"], ["20251003", "20251003"]).posterior > decode(lean).posterior + 0.15
    further = _guesses("20251003", b7=(0.9, 7, 8))
    assert not decode(further).sure and not decode(further, lines=["20251003", "20251003"]).sure
    assert decode(further, none[:7] + ["3"], ["20251003", "20251003"]).sure
    assert decode(split, lines=["2025103"]).posterior > d.posterior
    # two boxes only fairly sure (the network 0.8, 8 of 9 references: not ``sure``), no other date
    # standing out: still not taken, and the reason names those boxes
    d = decode(_guesses("20251003", b5=(0.8, 8), b7=(0.8, 8)), lines=["20251003"])
    assert not d.sure and d.alternatives == () and [k for k, _o in d.doubtful] == [6, 8]
    assert boxes.decode_reason(f, d).startswith("第6、8个数字不确定（读作2025年10月3日，把握")
    # a year digit torn between 5 and 6: only 2025 is plausible for this document, settled by the window
    d = decode(_guesses("20251003", b3=(0.6, 5, 6)))
    assert (d.text, d.sure) == ("2025年10月03日", True)
    # a sure 2024 is not bent into the window: the best is 2024 (before the issue: invalid, to a
    # person); a 4 the readers are less sure of (0.8) the window makes 2025, never taken, 2024 named
    d = decode(_guesses("20241003"))
    assert d.digits == "20241003" and not d.sure
    d = decode(_guesses("20241003", b3=(0.8, 8)))
    assert d.digits == "20251003" and not d.sure and d.alternatives[0][0] == "2024年10月3日"
    # the line finds the wrong count of digits: the readers still decide
    assert decode(_guesses("20251003"), lines=["2025103", "251003"]).sure
    # a month written as one digit in the second box of its pair
    one = (True, True, True, True, False, True, True, True)
    assert decode(_guesses("2025928"), none[:7], inked=one).text == "2025年09月28日"
    # a month's first box lost: only a date before the issue fits (2025年1月13日): decoded for a
    # person to see, and invalid as a date before the issue, never a value taken
    d = decode(_guesses("2025113"), none[:7], inked=(True,) * 4 + (False,) + (True,) * 3)
    assert d.text == "2025年01月13日"
    assert boxes.interpret_hand(f, OcrText(d.text, d.posterior), ctx)[2:] == (
        "invalid", "2025年1月13日早于发文日期2025年9月26日")
    # nothing a date can be in these boxes (the year's boxes not all written)
    assert decode(_guesses("225928"), none[:6], inked=(True, False) + (True,) * 6) is None


def test_a_day_written_alone_may_be_a_lost_digit():
    """A day below 10 written alone in the second box of its pair, the first box empty: on a clean
    scan a sure reading is still taken; on a fax, where a pale digit can vanish, the empty box may
    have held 1 or 2 (the 25th read as the 5th): never taken, the box and those dates named."""
    _pdf, _geo, _ticks, ctx = _issued()  # issued 2025-09-26, read on 2026-01-01
    f = get_spec("guardian_notice").field("recipient_signed_on")
    alone = (True,) * 6 + (False, True)

    def decode(dpi):  # both engines read the line as the readers do
        return boxes.decode_boxes(f, alone, _guesses("2025105"), [None] * 7, ["2025105"] * 2, ctx, dpi=dpi)

    clean = decode(300)
    assert clean.text == "2025年10月05日" and clean.sure and clean.doubtful == ()
    fax = decode(120)
    assert fax.text == "2025年10月05日" and not fax.sure
    assert 0.8 < fax.posterior < 0.9 and dict(fax.doubtful)[7] == ("1", "2")  # no 35th
    assert [t for t, _p in fax.alternatives] == ["2025年10月15日", "2025年10月25日"]
    assert boxes.decode_reason(f, fax).startswith("第7个数字不确定（读作2025年10月5日，也可能是2025年10月")
    # every box written: no digit can have been lost
    both = boxes.decode_boxes(f, (True,) * 8, _guesses("20251005"), [None] * 8, ["20251005"] * 2, ctx, dpi=120)
    assert both.sure and both.doubtful == ()
    # a phone number (no window, no check digit): the first boxes restricted to 1[3-9] ...
    phone = get_spec("referral_letter").field("reply_phone")
    d = boxes.decode_boxes(phone, (True,) * 11, _guesses("13912345678"), [None] * 11, ["13912345678"], ctx)
    assert (d.text, d.sure) == ("13912345678", True)
    d = boxes.decode_boxes(phone, (True,) * 11, _guesses("12912345678", b1=(0.6, 5, 3)), [None] * 11, [], ctx)
    assert d.digits == "13912345678"
    # ... or a landline with its area code (0373 4412345)
    d = boxes.decode_boxes(phone, (True,) * 11, _guesses("03734412345"), [None] * 11, ["03734412345"], ctx)
    assert (d.text, d.sure) == ("03734412345", True)
    d = boxes.decode_boxes(phone, (True,) * 11, _guesses("73734412345", b0=(0.6, 5, 0)), [None] * 11, [], ctx)
    assert d.digits == "03734412345" and not d.sure
    # ... every digit must be sure: one box torn is refused, named with its alternative
    d = boxes.decode_boxes(phone, (True,) * 11, _guesses("13912345678", b4=(0.7, 6, 7)), [None] * 11, [], ctx)
    assert not d.sure and d.doubtful[0][0] == 5 and d.doubtful[0][1][0] == "7"
    assert boxes.decode_reason(phone, d).startswith("第5个数字不确定（读作13912345678，第5格也可能是7")


def test_digit_readers_built_and_run(tmp_path, monkeypatch):
    """The real build (augmentation, features, nearest references, network training) on digits
    drawn here, read back from a box crop at another size and ink: each digit right."""
    from PIL import Image, ImageDraw, ImageFont

    from parsers.scan import digits as dm

    font = ImageFont.truetype("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", 22)
    rng = np.random.default_rng(3)
    images, labels = [], []
    for d in range(10):
        for _ in range(12):
            im = Image.new("L", (28, 28), 0)
            ImageDraw.Draw(im).text((7 + rng.integers(-2, 3), 1 + rng.integers(-2, 3)), str(d), font=font, fill=255)
            images.append(np.asarray(im, np.float32) / 255.0)
            labels.append(d)
    ref = dm.build(np.asarray(images), np.asarray(labels), copies=1)
    path = tmp_path / "digits.npz"
    np.savez_compressed(path, **ref)
    monkeypatch.setenv("BAOXUE_DIGITS", str(path))
    dm._reference.cache_clear()
    try:
        big = ImageFont.truetype("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", 40)
        got, crops = [], []
        for d in range(10):
            crop = Image.new("RGB", (44, 54), "white")
            ImageDraw.Draw(crop).text((10, 3), str(d), font=big, fill=(20, 30, 90))
            g = dm.classify(np.asarray(crop))
            got.append(g.digit)
            crops.append(np.asarray(crop))
        assert got == list(range(10))
        assert [g.digit for g in dm.classify_many(crops)] == list(range(10))
        assert dm.classify(np.full((40, 30, 3), 255, np.uint8)) is None  # no ink, no digit
    finally:
        dm._reference.cache_clear()


def test_a_box_with_ink_too_small_for_a_digit_is_doubtful():
    """A box counted empty that still holds a written stroke (a 1 mostly lost along the box's edge)
    makes the whole value a person's to check: a 16 read as 6 is a valid day."""
    import cv2

    _pdf, _geo, ticks, ctx = _issued()
    page = _written(RECEIPT, {"recipient_signed_on": "20251016"}, skew=0.0)
    # the 1 of the day cut to a short stub (as an edge can leave it)
    cells = ticks[RECEIPT]["recipient_signed_on"]
    s = 200 / 72
    x0, y0, x1, y1 = (int(round(v * s)) for v in cells[6])
    px = page.pixels.copy()
    inner = px[y0 + 4:y1 - 3, x0 + 4:x1 - 3]
    inner[...] = 255
    cy, cx = inner.shape[0] // 2, inner.shape[1] // 2
    cv2.line(inner, (cx - 6, cy), (cx + 6, cy + 1), (30, 30, 30), 4)
    stub = load_pages(mk.encode(px, "PNG", 200), filename="boxes-stub.png")[0]
    r = scan.read_page(stub, scan.identify_page(stub, secret=mk.SECRET), ctx,
                       engine=FakeOcrEngine(func=lambda crop: "")).readings["recipient_signed_on"]
    assert r.needs_review and not r.confirm
    assert r.reason == "第7个格子有笔迹，但认不出是否写了数字，请核对"


def _boxes_strip(draw, *, dark_boxes: bool = False):
    """The stub's boxed date on a clean 200-dpi raster with ``draw(img, boxes_px)`` applied, read
    by ``box_writing`` against the issued page. ``dark_boxes``: the drop-out boxes printed dark (a
    darkened copy: the scan shows them, and they are taken away as printed edges)."""
    from parsers.align import TemplatePage, align

    pdf, geo, ticks, ctx = _issued()
    cells = ticks[STUB]["stub_service_date"]
    s = 200 / 72.0
    px = np.array(mk.rasterise(pdf, STUB, 200), copy=True)
    if dark_boxes:
        pale = px.mean(axis=2) if px.ndim == 3 else px
        px[(pale > 150) & (pale < 240)] = 30
    draw(px, [tuple(int(round(v * s)) for v in c) for c in cells])
    page = load_pages(mk.encode(px, "PNG", 200), filename="edge.png")[0]
    identity = scan.identify_page(page, secret=mk.SECRET)
    aligned = align(page, TemplatePage.from_mapping(geo["pages"][STUB - 1]), qr=identity.qr)
    bbox = tuple(geo["pages"][STUB - 1]["fields"]["stub_service_date"]["bbox"])
    return scan.box_writing(aligned, cells, bbox, dpi=aligned.dpi, reference=ctx.reference, page_no=STUB)


def test_a_thin_digit_crossing_a_box_edge_stays_whole():
    """A 1 and a 0 written with a thin pen (one pixel at 200 dpi), the 1 starting above the box's
    top edge: each box's crop holds its digit in one piece as tall as written — taking the print
    away and the cleaning after it once broke such strokes into dots or lost them."""
    import cv2

    drawn = {}

    def write(img, boxes_px):
        x0, y0, x1, y1 = boxes_px[2]
        cx = (x0 + x1) // 2
        cv2.line(img, (cx + 3, y0 - 4), (cx - 2, y1 - 6), (70, 70, 70), 1)
        drawn[2] = y1 - 6 - (y0 - 4) + 1
        x0, y0, x1, y1 = boxes_px[6]
        top, bottom = y0 + 6, y1 - 6
        cv2.ellipse(img, ((x0 + x1) // 2, (top + bottom) // 2), (int(0.25 * (x1 - x0)), (bottom - top) // 2),
                    0, 0, 360, (70, 70, 70), 1, cv2.LINE_8)
        drawn[6] = bottom - top + 1

    bw = _boxes_strip(write)
    assert bw.inked == (False, False, True, False, False, False, True, False)
    for crop, k in zip(bw.digits, (2, 6), strict=True):
        ink = (crop[:, :, 0] < 200).astype(np.uint8)
        n, _labels, stats, _ = cv2.connectedComponentsWithStats(ink, connectivity=8)
        assert n - 1 == 1, f"box {k + 1}: the digit fell into {n - 1} pieces"
        assert stats[1, cv2.CC_STAT_HEIGHT] >= drawn[k] - 3


def test_an_open_stroke_below_the_edge_is_not_closed():
    """Two thin upright strokes (the arms of an open 4) ending just under the top edge: the crop
    keeps them apart — the print's band is given back only where a stroke crosses it."""
    import cv2

    def arms(img, boxes_px):
        x0, y0, x1, y1 = boxes_px[5]
        for x in (x0 + (x1 - x0) // 3, x0 + 2 * (x1 - x0) // 3):
            cv2.line(img, (x, y0 + 4), (x, y1 - 8), (60, 60, 60), 1)

    bw = _boxes_strip(arms)
    assert bw.inked[5] and sum(bw.inked) == 1
    ink = (bw.digits[0][:, :, 0] < 200).astype(np.uint8)
    n, _labels, _stats, _ = cv2.connectedComponentsWithStats(ink, connectivity=8)
    assert n - 1 == 2, f"the two arms became {n - 1} pieces"


def test_a_0_written_along_a_box_edge_keeps_its_side():
    """A 0 whose right side runs down the box's right edge (the pen over the print, thicker than
    the edge): the crop gives that side back, a closed ring, not a C — and a 2 whose foot lies on
    the bottom edge keeps its foot."""
    import cv2

    def write(img, boxes_px):
        x0, y0, x1, y1 = boxes_px[2]
        w = x1 - x0
        cv2.ellipse(img, (x1 - w // 4, (y0 + y1) // 2), (w // 4, (y1 - y0) // 2 - 6), 0, 0, 360, (40, 40, 40), 3)
        x0, y0, x1, y1 = boxes_px[5]
        cv2.line(img, (x0 + 8, y0 + 10), (x1 - 10, y0 + 12), (40, 40, 40), 3)
        cv2.line(img, (x1 - 10, y0 + 12), (x0 + 6, y1), (40, 40, 40), 3)
        cv2.line(img, (x0 + 6, y1), (x1 - 6, y1), (40, 40, 40), 3)  # the foot, on the bottom edge

    bw = _boxes_strip(write)
    assert bw.inked == (False, False, True, False, False, True, False, False)
    ring = (bw.digits[0][:, :, 0] < 200).astype(np.uint8)
    _contours, hierarchy = cv2.findContours(ring, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    assert hierarchy is not None and (hierarchy[0][:, 3] >= 0).any(), "the 0 came back open"
    foot = (bw.digits[1][:, :, 0] < 200).astype(np.uint8)
    rows = np.nonzero(foot.any(axis=1))[0]
    written = foot.any(axis=0).sum()  # the crop's digit, between its white margins
    assert foot[rows.max() - 3:rows.max() + 1].any(axis=0).sum() >= 0.6 * written, "the 2 lost its foot"


def test_two_digits_that_touch_are_read_in_their_own_boxes():
    """A 2's foot run on into the 5 in the next box: one piece of ink over two boxes, cut apart
    between them — both boxes are written, and neither crop holds the other's digit."""
    import cv2

    def write(img, boxes_px):
        (a0, a_top, a1, a_bot), (b0, b_top, _b1, b_bot) = boxes_px[2], boxes_px[3]
        cv2.line(img, (a0 + 10, a_top + 10), (a1 - 12, a_bot - 8), (40, 40, 40), 3)
        cv2.line(img, (a1 - 12, a_bot - 8), (b0 + 14, b_bot - 8), (40, 40, 40), 3)  # across the gap
        cv2.line(img, (b0 + 14, b_bot - 8), (b0 + 14, b_top + 10), (40, 40, 40), 3)

    bw = _boxes_strip(write)
    assert bw.inked == (False, False, True, True, False, False, False, False)
    widths = [int((d[:, :, 0] < 200).any(axis=0).sum()) for d in bw.digits]
    box_w = int(round(14.4 * 200 / 72))
    assert all(w <= 1.3 * box_w for w in widths), widths


def test_edges_printed_thick_and_off_are_taken_away_whole():
    """A scan whose printed lines come out thicker and a pixel off the issued page (a fax, a dark
    copy): empty boxes stay empty and not doubtful, and a written 1 comes with no sliver of edge."""
    import cv2

    def write(img, boxes_px):
        x0, y0, x1, y1 = boxes_px[1]
        cx = (x0 + x1) // 2
        cv2.line(img, (cx, y0 + 8), (cx - 2, y1 - 8), (40, 40, 40), 3)
        grown = cv2.erode(img, np.ones((3, 3), np.uint8))  # every dark line a pixel thicker each side
        img[:, 1:] = grown[:, :-1]

    bw = _boxes_strip(write)
    assert bw.inked == (False, True, False, False, False, False, False, False)
    assert bw.doubtful == ()
    ink = (bw.digits[0][:, :, 0] < 200).astype(np.uint8)
    n, _labels, stats, _ = cv2.connectedComponentsWithStats(ink, connectivity=8)
    assert n - 1 == 1 and stats[1, cv2.CC_STAT_WIDTH] <= 12


def test_dots_left_of_a_digit_make_its_box_doubtful():
    """A box where a fax left only dots of a pale digit is not read as empty: it is doubtful."""
    import cv2

    def write(img, boxes_px):
        x0, y0, x1, y1 = boxes_px[4]
        for dx, dy in ((-4, -3), (3, 0), (-2, 3)):
            cv2.circle(img, ((x0 + x1) // 2 + dx, (y0 + y1) // 2 + dy), 1, (40, 40, 40), -1)

    bw = _boxes_strip(write)
    assert not any(bw.inked) and bw.doubtful == (5,)


def test_the_digit_readers_fill_in_where_the_line_fails(monkeypatch):
    """The line recogniser misses a digit (7 of 8): the digit readers, sure box by box, give the
    date, still confirmed by a person as every 送达 date is; a line and a box read alone by OCR
    that both say another digit where the readers are torn: review, both dates named."""
    from parsers.scan import digits as dm

    _pdf, _geo, _ticks, ctx = _issued()
    f = get_spec("guardian_notice").field("recipient_signed_on")
    blank = np.full((40, 30, 3), 255, np.uint8)
    bw = scan.BoxWriting((True,) * 8, np.full((40, 300, 3), 255, np.uint8), (blank,) * 8)
    monkeypatch.setattr(dm, "available", lambda: True)
    monkeypatch.setattr(dm, "classify_many", lambda crops: _guesses("20251003"))
    nothing = [OcrText("", 0.0)] * 8
    r = boxes.read_boxed("recipient_signed_on", f, OcrText("2025103", 0.9), bw, nothing, None, ctx, {"page_no": 3})
    assert (r.status, r.value, r.text) == ("read", "2025-10-03", "2025年10月03日")
    assert r.confirm and r.needs_review
    assert r.reason == "送达日期须人工确认" and r.confidence >= 0.98
    monkeypatch.setattr(dm, "classify_many", lambda crops: _guesses("20251003", b7=(0.6, 6, 8)))
    alone8 = nothing[:7] + [OcrText("8", 0.9)]
    r = boxes.read_boxed("recipient_signed_on", f, OcrText("20251008", 0.97), bw, alone8, None, ctx, {"page_no": 3})
    assert r.value in ("2025-10-03", "2025-10-08") and r.needs_review and r.confidence <= 0.6
    assert r.status == "low" and r.confirm
    assert re.search(r"第8个数字不确定（读作2025年10月[38]日，也可能是2025年10月[38]日", r.reason), r.reason


def test_a_late_decoded_date_keeps_its_reason(monkeypatch):
    """A sure decoding a year after the issue (the window allows it, the prior less so): proposed
    with the reason that it is late, never a plain confirmation."""
    from parsers.scan import digits as dm

    _pdf, _geo, _ticks, ctx = _issued()
    ctx = dataclasses.replace(ctx, today=dt.date(2027, 1, 1))
    f = get_spec("guardian_notice").field("recipient_signed_on")
    blank = np.full((40, 30, 3), 255, np.uint8)
    bw = scan.BoxWriting((True,) * 8, np.full((40, 300, 3), 255, np.uint8), (blank,) * 8)
    monkeypatch.setattr(dm, "available", lambda: True)
    monkeypatch.setattr(dm, "classify_many", lambda crops: _guesses("20261011"))
    r = boxes.read_boxed("recipient_signed_on", f, OcrText("20261011", 0.9), bw, [OcrText("", 0.0)] * 8, None, ctx,
                         {})
    assert (r.value, r.status, r.needs_review) == ("2026-10-11", "low", True)
    assert "晚380天" in r.reason


def test_a_digit_running_into_an_edge_on_a_fax_is_never_sure_alone():
    """On a fax that shows the boxes an edge and a stroke along it print as one line: a digit
    whose ink runs into an edge may have lost a stroke (a 2 read as a sure 0), so its sure reading
    counts at most as READER_ON_EDGE_RIGHT, and a date resting on it is not taken even with an OCR
    line agreeing (the line is made of the same crops); the same reading in a box clear of the
    edges is, on the readers alone (drop-out boxes: DEV's fax readings sure 1,191 of 1,191 right)."""
    _pdf, _geo, _ticks, ctx = _issued()  # issued 2025-09-26, read on 2026-01-01
    f = get_spec("guardian_notice").field("recipient_signed_on")
    guesses = _guesses("20251005", b6=(0.985, 9))  # sure: the references all agree with the network
    assert guesses[6].sure
    alone = boxes.decode_boxes(f, (True,) * 8, guesses, [None] * 8, [], ctx, dpi=120)
    clear = boxes.decode_boxes(f, (True,) * 8, guesses, [None] * 8, ["20251005"], ctx, dpi=120)
    assert alone.sure and clear.sure and clear.text == "2025年10月05日" and clear.posterior >= alone.posterior
    edge = boxes.decode_boxes(f, (True,) * 8, guesses, [None] * 8, ["20251005"], ctx, dpi=120, on_edge=(7,))
    assert edge.text == "2025年10月05日" and not edge.sure and 7 in dict(edge.doubtful)
    like = boxes.box_likelihoods(guesses, [None] * 8, [6], fax=True)
    assert like[6][0] == pytest.approx(min(boxes.READER_RIGHT_BY_P_FAX[7], boxes.READER_ON_EDGE_RIGHT))
    assert like[5][0] == pytest.approx(boxes.READER_SURE_RIGHT_FAX)


def test_a_seven_on_the_bottom_edge_may_be_a_two_whose_foot_was_lost():
    """A 2 whose foot lies on the bottom edge loses the foot with the edge and reads as a sure 7: at
    any resolution, a box whose ink runs into the bottom edge and reads 7 (or 1) is never sure alone
    (``edge_doubt``); read as 2 it may be; a 1 that runs into the top edge may be a 7 whose cap was
    lost, one clear of the edges is sure."""
    import cv2

    def write(img, boxes_px):
        x0, y0, x1, y1 = boxes_px[2]
        w, h = x1 - x0, y1 - y0
        cv2.ellipse(img, ((x0 + x1) // 2, y0 + h // 3), (w // 3, h // 5), 0, 180, 360, (40, 40, 40), 2)
        cv2.line(img, ((x0 + x1) // 2 + w // 3, y0 + h // 3), (x0 + 3, y1 - 1), (40, 40, 40), 2)
        cv2.line(img, (x0 + 3, y1 - 1), (x1 - 3, y1 - 1), (40, 40, 40), 2)  # the foot, on the edge
        x0, y0, x1, y1 = boxes_px[6]
        cv2.line(img, ((x0 + x1) // 2, y0 - 4), ((x0 + x1) // 2 - 1, y1 - 8), (40, 40, 40), 2)
        x0, y0, x1, y1 = boxes_px[7]
        cv2.line(img, ((x0 + x1) // 2, y0 + 8), ((x0 + x1) // 2 - 1, y1 - 8), (40, 40, 40), 2)

    bw = _boxes_strip(write, dark_boxes=True)
    assert [k + 1 for k, on in enumerate(bw.inked) if on] == [3, 7, 8]
    assert bw.on_edge == () and (3, "bottom") in bw.edges and (7, "top") in bw.edges
    assert not any(b == 8 for b, _e in bw.edges)
    assert boxes.edge_doubt(bw, [_guess(7), _guess(1), _guess(1)]) == (3, 7)
    assert boxes.edge_doubt(bw, [_guess(2), _guess(4), _guess(1)]) == ()
    # printed as issued, the boxes drop out of the scan: nothing is taken away along an edge, the
    # 2 keeps its foot (its crop reaches as low as written), the others are as tall as before
    def tall(b):
        return [int((d[:, :, 0] < 128).any(axis=1).sum()) for d in b.digits]

    cut = tall(bw)
    bw = _boxes_strip(write)
    assert [k + 1 for k, on in enumerate(bw.inked) if on] == [3, 7, 8] and bw.edges == ()
    whole = tall(bw)
    assert whole[0] >= cut[0] + 3 and whole[1] >= cut[1] and abs(whole[2] - cut[2]) <= 1


def test_drop_out_boxes_are_printed_pale_and_a_given_value_in_ink():
    """The character boxes print in the drop-out grey (BOX_RGB) when blank; a value given for the
    field prints in the ink's colour, in the same size."""
    from forms.build_templates import BOX_RGB
    from forms.spec import CHAR_BOX

    pdf, _geo, ticks, _ctx = _issued()
    img = np.asarray(mk.rasterise(pdf, STUB, 200))
    img = img.mean(axis=2) if img.ndim == 3 else img
    s = 200 / 72.0
    x0, y0, x1, y1 = (int(round(v * s)) for v in ticks[STUB]["stub_service_date"][0])
    darkest = int(img[y0 - 2:y1 + 3, x0 - 2:x1 + 3].min())
    assert abs(darkest - BOX_RGB[0]) <= 25 and darkest > 160  # pale, never as dark as ink
    spec = get_spec("guardian_notice")
    f = spec.field("stub_service_date")
    ctx = spec.context({"stub_service_date": None}, spec.variant("xianqi"))
    assert ctx["f"][f.name] == f.box_pattern() and ctx["boxes"][f.name] is True
    ctx = spec.context({"stub_service_date": dt.date(2025, 10, 3)}, spec.variant("xianqi"))
    assert CHAR_BOX not in ctx["f"][f.name] and f.name not in ctx["boxes"]
    assert re.search(r"2025", ctx["f"][f.name])
