"""parsers.ocr: one interface, engine-neutral results, the fake and null engines, and the two real
engines on a few rendered Chinese lines (exact match)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from forms import tools
from forms.errors import UnsupportedInput
from parsers import ocr
from parsers.ocr import FakeOcrEngine, NullOcrEngine, OcrBox, OcrEngine, OcrText, get_engine, split_lines

FONT = "/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc"
LINES = ["卫辉市第一初级中学", "张小明", "110101201001010011", "家庭经济困难"]


def render(text: str, size: int = 40, pad: int = 20) -> np.ndarray:
    font = ImageFont.truetype(FONT, size, index=2)  # Noto Serif CJK SC
    img = Image.new("RGB", (int(font.getlength(text)) + 2 * pad, int(size * 1.6)), "white")
    ImageDraw.Draw(img).text((pad, img.height // 2), text, font=font, fill="black", anchor="lm")
    return np.asarray(img)


def test_result_types_are_frozen_and_engine_neutral():
    t = OcrText("张小明", 0.9)
    with pytest.raises(dataclasses.FrozenInstanceError):
        t.text = "x"  # type: ignore[misc]
    b = OcrBox("张", 0.5, (1.0, 2.0, 3.0, 4.0))
    assert b.poly == () and b.bbox[2] == 3.0


def test_fake_engine_scripts_answers_and_records_calls():
    fake = FakeOcrEngine(["张小明", OcrText("李四", 0.4)])
    assert isinstance(fake, OcrEngine)
    crop = render("x")
    assert fake.recognize_line(crop) == OcrText("张小明", 0.99)
    assert fake.recognize_lines([crop]) == [OcrText("李四", 0.4)]
    assert len(fake.calls) == 2 and fake.calls[0] is crop
    with pytest.raises(AssertionError):
        fake.recognize_line(crop)
    by_width = FakeOcrEngine(func=lambda c: "wide" if c.shape[1] > 100 else "narrow")
    assert by_width.recognize_line(render("一二三四")).text == "wide"
    page = [OcrBox("标题", 0.9, (0, 0, 10, 10))]
    assert FakeOcrEngine(page=page).recognize_page(crop) == page


def test_null_engine_and_registry():
    null = get_engine("none")
    assert isinstance(null, NullOcrEngine) and isinstance(null, OcrEngine)
    assert null.recognize_line(render("x")) == OcrText("", 0.0) and null.recognize_page(render("x")) == []
    assert get_engine("NONE") is null  # one instance per process
    with pytest.raises(UnsupportedInput) as err:
        get_engine("abbyy")
    assert "rapidocr" in err.value.message and "tesseract" in err.value.message
    assert ocr.available_engines() == ["none", "rapidocr", "tesseract"]


def test_split_lines_and_tighten():
    one, two = render("张小明"), render("卫辉市")
    stacked = np.vstack([one, np.full((15, one.shape[1], 3), 255, np.uint8), two[:, :one.shape[1]]])
    parts = split_lines(stacked)
    assert len(parts) == 2 and all(p.shape[0] < one.shape[0] + 8 for p in parts)
    assert len(split_lines(one)) == 1
    tight = ocr.tighten(render("张小明", pad=60))
    assert tight.shape[1] < render("张小明", pad=60).shape[1] - 80


@pytest.mark.slow
def test_rapidocr_reads_rendered_lines_exactly():
    engine = get_engine("rapidocr")
    assert engine is get_engine() and engine.name == "rapidocr"
    results = engine.recognize_lines([render(t) for t in LINES])
    assert [r.text for r in results] == LINES
    assert all(r.confidence > 0.8 for r in results)
    assert engine.recognize_line(render("厌学", size=28)).text == "厌学"


def test_rapidocr_batches_lines_of_mixed_widths_as_read_alone():
    """Lines of very different widths in one call (a long address among names and single digits) are
    read as each alone: no line is padded out to the longest and read differently."""
    engine = get_engine("rapidocr")
    texts = ["城关镇东关村三组18号后河镇南村五组3号太公镇北街21号", "城关镇东关村三组18号后河镇南村五组3号",
             "张小明", "刘德明", "7", "2"]
    lines = [render(t, size=s) for t, s in zip(texts, (28, 40, 60, 60, 40, 40), strict=True)]
    together = engine.recognize_lines(lines)
    alone = [engine.recognize_line(ln) for ln in lines]
    assert [r.text for r in together] == texts == [r.text for r in alone]
    # padded to the longest line (the old single batch), 刘德明 scored 0.0024 off its reading alone
    assert all(abs(a.confidence - b.confidence) < 0.001 for a, b in zip(together, alone, strict=True))


@pytest.mark.slow
def test_rapidocr_full_page_boxes():
    img = Image.new("RGB", (900, 400), "white")
    d = ImageDraw.Draw(img)
    font = ImageFont.truetype(FONT, 40, index=2)
    d.text((40, 60), "情况报告单", font=font, fill="black")
    d.text((40, 220), "卫辉市第一初级中学", font=font, fill="black")
    boxes = get_engine("rapidocr").recognize_page(np.asarray(img))
    assert [b.text for b in boxes] == ["情况报告单", "卫辉市第一初级中学"]
    assert boxes[0].bbox[1] < 120 < boxes[1].bbox[1] and len(boxes[1].poly) == 4


@pytest.mark.slow
@pytest.mark.skipif(not tools.probe("tesseract").installed, reason="tesseract not installed")
def test_tesseract_reads_rendered_lines_exactly():
    engine = get_engine("tesseract")
    assert engine.name == "tesseract"
    results = engine.recognize_lines([render(t) for t in LINES[:3]])
    assert [r.text for r in results] == LINES[:3]
    assert all(0 < r.confidence <= 1 for r in results)


def test_tesseract_missing_language_is_a_clear_error():
    if not tools.probe("tesseract").installed:
        pytest.skip("tesseract not installed")
    from forms.errors import MissingTool
    with pytest.raises(MissingTool) as err:
        ocr.TesseractEngine(lang="xxx_nonexistent")
    assert "xxx_nonexistent" in err.value.message
