"""The scan pipeline (parsers/scan.py) on the committed labelled set (tests/samples/scans, made by
make_scans.py with the real renderer; expected readings in golden.json): identification, ticks,
marks, printed-value checks, handwriting validation, with a FakeOcrEngine, and with the real
engines (RapidOCR + Tesseract fallback) in slow tests."""

from __future__ import annotations

import datetime as dt
import io
import json
from functools import lru_cache
from pathlib import Path

import pytest
from PIL import Image

from cases.store.models import from_json
from forms.errors import BaoxueError
from forms.registry import get_spec
from parsers import align as align_mod
from parsers import images, scan
from parsers.base import jsonable
from parsers.images import load_pages
from parsers.ocr import FakeOcrEngine, OcrText
from parsers.scan import handwriting, ink, readings
from tests.samples.scans import make_scans

SAMPLES = Path(__file__).parent / "samples" / "scans"
SECRET = "test-qr-secret"
GOLDEN = json.loads((SAMPLES / "golden.json").read_text(encoding="utf-8"))
PAGES = [k for k in GOLDEN if not k.startswith("_")]
READ = [k for k in PAGES if GOLDEN[k]["identity"]["status"] == "identified"]


@lru_cache(maxsize=1)
def _ctx() -> scan.ReadContext:
    spec = get_spec("guardian_notice")
    geo = json.loads((SAMPLES / "geometry.json").read_text(encoding="utf-8"))
    issued = from_json(spec, json.loads((SAMPLES / "issued.json").read_text(encoding="utf-8")))
    ticks = scan.tick_boxes_from_pdf((SAMPLES / "issued.pdf").read_bytes(), geo)
    return scan.ReadContext(spec, spec.variant("xianqi"), geo, issued, ticks,
                            people=("王建国", "刘秀兰", "王浩然"), issued_on=dt.date(2025, 9, 26),
                            today=dt.date(2026, 1, 1))


def _page(name: str):
    return load_pages(SAMPLES / name)[0]


def _fake(text: str = "", conf: float = 0.99) -> FakeOcrEngine:
    return FakeOcrEngine(func=lambda crop: OcrText(text, conf if text else 0.0))


@pytest.mark.parametrize("name", PAGES)
def test_identify(name):
    want = GOLDEN[name]["identity"]
    got = scan.identify_page(_page(name), secret=SECRET).to_json()
    assert {k: got[k] for k in want} == want


def test_forged_code_is_unidentified_not_bypassed():
    page = _page("receipt_direct_flatbed200.jpg")
    got = scan.identify_page(page, secret="another-secret", engine=_fake("SCANTEST0001 5/5"))
    assert got.status == "unidentified" and "校验失败" in got.reason


def test_identify_by_printed_caption_when_no_code():
    page = _page("foreign_page.png")
    from parsers.ocr import OcrBox

    engine = FakeOcrEngine(page=[OcrBox("SCANTEST0001 5/5", 0.9, (0, 0, 10, 10))])
    got = scan.identify_page(page, secret=SECRET, engine=engine)
    # The foreign code is "not ours", so the printed caption decides (and the caller verifies it).
    assert (got.status, got.doc_id, got.page_no, got.method) == ("identified", "SCANTEST0001", 5, "ocr_doc_id")
    engine = FakeOcrEngine(page=[OcrBox("青禾县城关镇政限返〔2026〕3号", 0.9, (0, 0, 10, 10))])
    got = scan.identify_page(page, secret=SECRET, engine=engine)
    assert (got.method, got.doc_number, got.page_no) == ("ocr_number", "青禾县城关镇政限返〔2026〕3号", 0)


def test_tick_boxes_from_the_issued_pdf():
    ticks = _ctx().tick_boxes
    assert {p: len(b) for p, b in ticks[5].items()} == {"recipient_relation": 5, "service_method": 5}
    assert len(ticks[1]["student_sex"]) == 2
    xs = [b[0] for b in ticks[5]["service_method"]]
    assert xs == sorted(xs)


@pytest.mark.parametrize("name", READ)
def test_marks_and_ticks_with_fake_ocr(name):
    page = _page(name)
    ident = scan.identify_page(page, secret=SECRET)
    got = scan.read_page(page, ident, _ctx(), engine=_fake())
    for path, value in GOLDEN[name]["marks"].items():
        assert got.readings[path].value == value, path
    # An OCR engine reading nothing makes every printed value a possible tampering, never a new value.
    for path, value in GOLDEN[name]["printed"].items():
        r = got.readings[path]
        assert (r.status, r.value, r.needs_review) == ("mismatch", value, True), path
    for path, r in got.readings.items():
        assert r.bbox_px[2] > r.bbox_px[0] and path in got.crops


def test_handwriting_validation_moves_confidence():
    page = _page("receipt_direct_flatbed200.jpg")
    ident = scan.identify_page(page, secret=SECRET)
    # both engines read the same (one engine alone is not a plain confirmation: test_scan_doubtful)
    ok = scan.read_page(page, ident, _ctx(), engine=_fake("2025年9月29日10时30分", 0.95),
                        fallback=_fake("2025年9月29日10时30分", 0.9)).readings
    assert ok["service_time"].value == "2025-09-29T10:30:00" and ok["service_time"].confirm
    # the 签收日期 is the service date (DOMAIN §5.6 3(b)): read, and always confirmed by a person
    signed = ok["recipient_signed_on"]
    assert (signed.value, signed.status, signed.confirm, signed.needs_review) == ("2025-09-29", "read", True, True)
    assert signed.reason == "送达日期须人工确认"
    early = scan.read_page(page, ident, _ctx(), engine=_fake("2025年9月20日", 0.99)).readings
    r = early["recipient_signed_on"]
    assert (r.status, r.needs_review) == ("invalid", True) and "早于发文日期" in r.reason and r.confidence <= 0.4
    future = scan.read_page(page, ident, _ctx(), engine=_fake("2027年1月2日", 0.99)).readings
    assert "未来" in future["recipient_signed_on"].reason


def test_interpret_id_phone_names():
    ctx = _ctx()
    f_id = get_spec("guardian_notice").field("student_id_number")
    good = scan.interpret_hand(f_id, OcrText("41078120110314OO35", 0.9), ctx)
    assert good[0] == "410781201103140035" and good[2] == "read" and good[1] > 0.9
    bad = scan.interpret_hand(f_id, OcrText("410781201103140036", 0.99), ctx)
    assert bad[2] == "invalid" and bad[1] <= 0.3 and "410781" in bad[3] and "201103140036" not in bad[3]
    f_name = get_spec("guardian_notice").field("recipient_name")
    assert scan.interpret_hand(f_name, OcrText("王建国", 0.8), ctx)[:3] == ("王建国", 0.97, "read")
    homophone = scan.interpret_hand(f_name, OcrText("汪建国", 0.99), ctx)
    assert homophone[0] == "王建国" and homophone[1] < ctx.threshold and "汪建国" in homophone[3]
    # An official one character off a case person is that official, not the guardian misread.
    f_clerk = get_spec("dropout_report").field("township_receiver")
    clerk = scan.interpret_hand(f_clerk, OcrText("王建军", 0.95), ctx)
    assert clerk[:3] == ("王建军", 0.95, "read") and clerk[3] == ""
    assert scan.interpret_hand(f_name, OcrText("王建军", 0.95), ctx)[0] == "王建国"  # the recipient is a case person
    f_phone = get_spec("guardian_notice").field("guardian_phone")
    assert scan.interpret_hand(f_phone, OcrText("139 1234 5678", 0.95), ctx)[0] == "13912345678"


def test_parse_hand_date_forms():
    assert scan.parse_hand_date("20250929") == dt.date(2025, 9, 29)
    assert scan.parse_hand_date("2025.9.29") == dt.date(2025, 9, 29)
    assert scan.parse_hand_date("2025年9月31日") is None
    assert scan.parse_hand_date("2025年9月29日8时5分", with_time=True) == dt.datetime(2025, 9, 29, 8, 5)


def test_merge_prefers_confident_reading():
    ctx = _ctx()
    reads = []
    for name in ("stub_photo.jpg", "receipt_direct_flatbed200.jpg"):
        page = _page(name)
        reads.append(scan.read_page(page, scan.identify_page(page, secret=SECRET), ctx, engine=_fake()))
    merged = scan.merge_readings(reads)
    assert merged["student_sex"].value == "男" and merged["service_method"].value == "direct"
    assert merged["issuer_name"].page_no in (1, 5)


def test_corrupt_empty_and_huge_inputs_give_clear_errors():
    data = (SAMPLES / "blank_page.png").read_bytes()
    with pytest.raises(BaoxueError, match="PNG 文件已损坏"):
        images.probe_upload(data[:200], "broken.png")
    with pytest.raises(BaoxueError, match="是空的"):
        images.probe_upload(b"", "empty.png")
    with pytest.raises(BaoxueError, match="不是 PNG、JPEG、TIFF 或 PDF"):
        images.probe_upload(b"GIF89a....", "x.gif")
    buf = io.BytesIO()
    Image.new("1", (20000, 20000), 1).save(buf, format="PNG")
    with pytest.raises(BaoxueError) as e:
        images.probe_upload(buf.getvalue(), "huge.png")
    assert e.value.code == "image_too_large" and e.value.http_status == 422
    assert images.probe_upload((SAMPLES / "issued.pdf").read_bytes(), "scan.pdf") == "pdf"


def test_page_of_another_document_is_unidentified():
    got = scan.identify_page(_page("foreign_page.png"), secret=SECRET, engine=_fake())
    assert got.status == "unidentified" and "不是本系统" in got.reason


@pytest.mark.slow
@pytest.mark.parametrize("name", READ)
def test_golden_with_real_engines(name):
    from cases.returns.apply import completeness
    from parsers.ocr import get_engine

    page = _page(name)
    ident = scan.identify_page(page, secret=SECRET)
    got = scan.read_page(page, ident, _ctx(), engine=get_engine("rapidocr"), fallback=get_engine("tesseract"))
    want = GOLDEN[name]
    for group in ("marks", "hand", "printed"):
        for path, value in want[group].items():
            assert got.readings[path].value == value, (path, got.readings[path])
    for path in want["printed"]:
        assert got.readings[path].status == "match", got.readings[path]
    assert sorted(p for p, r in got.readings.items() if r.needs_review) == want["review"]
    if "complete" in want:
        values = {p: r.value for p, r in got.readings.items()}
        assert completeness(get_spec("guardian_notice"), values) == (want["complete"], [])


# ---- printed values compared ink for ink with the issued PDF ------------------------------------------


def _issued_page(page_no: int):
    import numpy as np

    from parsers.images import PageImage

    ref = scan.ReferencePages((SAMPLES / "issued.pdf").read_bytes())
    gray = ref.page(page_no)
    return ref, PageImage(np.repeat(gray[:, :, None], 3, axis=2), 200.0, "issued.pdf", 0)


def _with_reference(ref):
    import dataclasses

    return dataclasses.replace(_ctx(), reference=ref)


def test_printed_values_matching_the_issued_pdf_are_not_ocrd():
    ref, page = _issued_page(1)
    calls = []
    engine = FakeOcrEngine(func=lambda crop: calls.append(crop.shape) or OcrText("", 0.0))
    ident = scan.identify_page(page, secret=SECRET)
    got = scan.read_page(page, ident, _with_reference(ref), engine=engine)
    printed = {p: r for p, r in got.readings.items() if r.origin == "printed" and r.status != "unchecked"}
    assert {"student_name", "guardian_name", "guardian_phone", "doc_number"} <= set(printed)
    assert all(r.status == "match" and not r.needs_review and "逐笔比对一致" in r.reason for r in printed.values())
    assert printed["student_name"].value == "王浩然"
    # Only the handwritten fields were sent to the recogniser (all blank here: none at all).
    assert calls == []


@pytest.mark.parametrize(("path", "char", "read_as"), [("student_name", "杰", "王浩杰"),
                                                       ("guardian_phone", "9", "13912345679"),
                                                       ("guardian_name", "民", "王建民"),
                                                       ("student_name", "燃", "王浩燃"),
                                                       ("guardian_name", "固", "王建固"),  # look-alike
                                                       ("guardian_phone", "6", "13912345676")])
def test_one_changed_printed_character_is_caught(path, char, read_as):
    from parsers.images import PageImage

    ref, page = _issued_page(1)
    bbox = _ctx().geometry["pages"][0]["fields"][path]["bbox"]
    forged = PageImage(make_scans.tamper_last_char(page.pixels, bbox, 200.0, char), 200.0, "forged.png", 0)
    comparison = scan.compare_ink(
        align_mod.align(forged, align_mod.TemplatePage.from_mapping(_ctx().geometry["pages"][0]))
        .crop(readings.inset(bbox, 1.8), pad_pt=ink.INK_SEARCH_PT),
        ref.crop(1, readings.inset(bbox, 1.8)), margin_px=round(ink.INK_SEARCH_PT * 200 / 72))
    # Too different to be taken as issued without reading it (a look-alike only a little)
    assert comparison.score >= ink.INK_SURE
    # The forged field goes to OCR (which reads the forgery) and to review; the others still match.
    engine = FakeOcrEngine(func=lambda crop: OcrText(read_as, 0.99))
    got = scan.read_page(forged, scan.identify_page(forged, secret=SECRET), _with_reference(ref), engine=engine)
    r = got.readings[path]
    assert (r.status, r.needs_review, r.text) == ("mismatch", True, read_as)
    assert r.value == jsonable(scan.issued_value(_ctx().issued, path))  # never the forged value
    assert got.readings["doc_number"].status == "match" and got.readings["doc_number"].text == ""


def test_reference_pages_render_once_and_check_page_numbers():
    ref = scan.ReferencePages((SAMPLES / "issued.pdf").read_bytes())
    assert ref.page(1) is ref.page(1)
    assert ref.page(1).shape == (round(842 * 200 / 72), round(595 * 200 / 72)) or ref.page(1).ndim == 2
    with pytest.raises(BaoxueError, match="没有第99页"):
        ref.page(99)


def test_small_ink_difference_is_read_and_accepted_when_ocr_reads_the_issued_value():
    """A speck inside a printed field (dust, toner) is more than the ink check takes on trust: the
    field is recognised, and reading exactly the issued value it is accepted without review."""
    from parsers.images import PageImage

    ref, page = _issued_page(1)
    bbox = _ctx().geometry["pages"][0]["fields"]["student_name"]["bbox"]
    px = page.pixels.copy()
    x1, y0, y1 = (int(round(c * 200 / 72)) for c in (bbox[2], bbox[1], bbox[3]))
    cy = (y0 + y1) // 2
    px[cy - 2:cy + 2, x1 - 14:x1 - 10] = 0  # a 4×4 px speck near the cell's right end
    specked = PageImage(px, 200.0, "speck.png", 0)
    comparison = scan.compare_ink(
        align_mod.align(specked, align_mod.TemplatePage.from_mapping(_ctx().geometry["pages"][0]))
        .crop(readings.inset(bbox, 1.8), pad_pt=ink.INK_SEARCH_PT),
        ref.crop(1, readings.inset(bbox, 1.8)), margin_px=round(ink.INK_SEARCH_PT * 200 / 72))
    assert comparison.score >= ink.INK_SURE
    seen = []
    engine = FakeOcrEngine(func=lambda crop: seen.append(1) or OcrText("王浩然", 0.97))
    got = scan.read_page(specked, scan.identify_page(specked, secret=SECRET), _with_reference(ref), engine=engine)
    r = got.readings["student_name"]
    assert (r.status, r.needs_review, r.value, r.text) == ("match", False, "王浩然", "王浩然")
    assert "文字识别与签发值一致" in r.reason and 0.9 <= r.confidence <= 0.95
    assert len(seen) >= 1


def test_a_lone_handwritten_digit_is_writing_and_specks_are_not():
    """未到人数 “6” in a wide, low cell is little ink, but it is writing (never "blank"); dust
    and the cell's own borders are not."""
    import cv2
    import numpy as np

    cell = np.full((50, 660, 3), 255, np.uint8)
    cv2.rectangle(cell, (0, 0), (659, 49), (0, 0, 0), 2)
    assert handwriting.is_unwritten(cell, 200)
    dusty = cell.copy()
    for x in (80, 200, 330, 500):
        dusty[20:22, x:x + 2] = 0
    assert handwriting.is_unwritten(dusty, 200)
    digit = cell.copy()
    cv2.putText(digit, "6", (14, 38), cv2.FONT_HERSHEY_SIMPLEX, 0.9, (30, 30, 70), 2)
    assert not handwriting.is_unwritten(digit, 200)
    assert handwriting.is_unwritten(cell[:, :, 0], 200)  # grey crops too


def test_issued_pdf_boxes_and_reference_kept_for_later_uploads():
    """Each upload is its own job: the printed boxes and the reference rendering of an issued PDF are
    taken from the cache of issued PDFs, keyed by the PDF and its geometry."""
    import copy

    from parsers.base import Issued, ReadOptions
    from parsers.scan.parser import ISSUED_PDFS, read_context

    spec = get_spec("guardian_notice")
    pdf = (SAMPLES / "issued.pdf").read_bytes()
    geo = json.loads((SAMPLES / "geometry.json").read_text(encoding="utf-8"))
    values = from_json(spec, json.loads((SAMPLES / "issued.json").read_text(encoding="utf-8")))
    reads = []

    def issued(geometry):
        def read_pdf():
            reads.append(1)
            return pdf
        return Issued("DOC1", None, spec, spec.variant("xianqi"), values, 5, geometry, read_pdf)

    ISSUED_PDFS.clear()
    a = read_context(issued(geo), ReadOptions())
    b = read_context(issued(copy.deepcopy(geo)), ReadOptions())
    assert a.reference is b.reference and a.tick_boxes is b.tick_boxes and len(reads) == 2
    assert a.tick_boxes == scan.tick_boxes_from_pdf(pdf, geo)
    assert a.reference.page(1).shape == b.reference.page(1).shape
    moved = copy.deepcopy(geo)
    moved["pages"][0]["fields"]["doc_number"]["bbox"][0] += 1.0
    c = read_context(issued(moved), ReadOptions())
    assert c.reference is not a.reference
    for k in range(12):  # bounded: the oldest PDFs go
        other = copy.deepcopy(geo)
        other["bench_variant"] = k
        read_context(issued(other), ReadOptions())
    assert read_context(issued(geo), ReadOptions()).reference is not a.reference
