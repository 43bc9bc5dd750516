"""forms/pdf.py: warm LibreOffice conversion, embedded CJK fonts, supervision of the listener."""

from __future__ import annotations

import io
import os
import signal
from pathlib import Path

import pdfplumber
import pytest

from forms import pdf, render, tools
from forms.errors import MissingTool
from forms.specs.dropout_report import SPEC
from tests.test_render import DOC, identity, make_template, report_data

pytestmark = pytest.mark.skipif(not tools.probe("soffice").installed, reason="LibreOffice not installed")


@pytest.fixture(scope="module")
def docs(tmp_path_factory) -> list[bytes]:
    tdir = tmp_path_factory.mktemp("tpl")
    make_template(tdir / SPEC.template_name(None))
    names = ["李明", "王芳", "赵磊", "陈静"]
    return [render.render_docx(SPEC, None, SPEC.validate(report_data(i, guardian_name="张建国",
                                                                       student_name=name)),
                               identity(f"DOC{i:09d}"), templates_dir=tdir, extra=DOC)
            for i, name in enumerate(names, start=1)]


def _text(data: bytes) -> str:
    with pdfplumber.open(io.BytesIO(data)) as p:
        return "\n".join(page.extract_text() or "" for page in p.pages)


def test_warm_conversion_embeds_cjk_fonts(docs, tmp_path: Path):
    conv = pdf.get_converter()
    assert pdf.get_converter() is conv  # process-wide singleton
    data = pdf.convert_docx_to_pdf(docs[0])
    assert data.startswith(b"%PDF-")
    text = _text(data)
    assert "义务教育阶段学生辍学情况报告单" in text and "李明" in text and "2024年9月4日" in text
    out = tmp_path / "a.pdf"
    out.write_bytes(data)
    fonts = tools.run(["pdffonts", str(out)]).stdout.decode().splitlines()[2:]
    names = [line.split()[0].split("+", 1)[-1] for line in fonts]
    assert any(n.startswith("FandolFang") for n in names), names  # the body face, not a fallback
    assert all(line.split()[-5] == "yes" for line in fonts)  # "emb" column: every font embedded
    with pdfplumber.open(io.BytesIO(data)) as p:
        assert p.metadata["Title"] == "义务教育阶段学生辍学情况报告单"


def test_pool_converts_batch_in_order(docs):
    with pdf.PdfConverter(workers=2) as conv:
        out = conv.convert_many(docs)
        assert conv.stats["conversions"] == len(docs)
        assert conv.stats["running"] == 2
        root = conv.root
    for name, data in zip(["李明", "王芳", "赵磊", "陈静"], out, strict=True):
        assert name in _text(data)
    assert not root.exists()  # scratch dir and profiles removed at shutdown


def test_dead_listener_is_restarted(docs):
    with pdf.PdfConverter(workers=1) as conv:
        conv.convert(docs[0])
        (pid,) = conv.pids()
        os.killpg(pid, signal.SIGKILL)  # a crash of our own soffice (its process group, by id)
        assert "王芳" in _text(conv.convert(docs[1]))
        assert conv.stats["restarts"] == 1
        assert conv.pids() != [pid]


@pytest.mark.slow
def test_hung_listener_is_killed_and_document_retried(docs):
    with pdf.PdfConverter(workers=1, timeout=3) as conv:
        conv.start()
        (pid,) = conv.pids()
        os.killpg(pid, signal.SIGSTOP)  # a hang: the UNO call blocks until the watchdog kills it
        try:
            assert "赵磊" in _text(conv.convert(docs[2]))
        finally:
            try:
                os.killpg(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
        assert conv.stats["restarts"] == 1 and conv.pids() != [pid]


def test_missing_soffice_raises_missing_tool(docs, monkeypatch):
    monkeypatch.setattr(tools, "probe", lambda name: tools.ToolInfo(name, None, None))
    with pdf.PdfConverter(workers=1) as conv, pytest.raises(MissingTool, match="soffice"):
        conv.convert(docs[0])


@pytest.mark.slow
def test_cold_convert_baseline(docs):
    assert "陈静" in _text(pdf.cold_convert(docs[3]))


def test_end_to_end_render_convert_stamp_decode(docs, tmp_path: Path):
    import zxingcpp
    from PIL import Image

    from forms import identity as idm
    from forms import stamp

    ident = identity("DOC000000002")
    data, pages = stamp.stamp_pdf(pdf.convert_docx_to_pdf(docs[1]), ident, "s3cret")
    assert pages == 1
    src = tmp_path / "s.pdf"
    src.write_bytes(data)
    tools.run(["pdftoppm", "-r", "200", "-png", "-singlefile", str(src), str(tmp_path / "p")])
    (code,) = zxingcpp.read_barcodes(Image.open(tmp_path / "p.png"), formats=zxingcpp.BarcodeFormat.QRCode)
    assert idm.decode(code.text, "s3cret") == ident.for_page(1, 1)
    assert "王芳" in _text(data)  # the page's own text survives the overlay
