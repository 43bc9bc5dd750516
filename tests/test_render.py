"""forms/render.py: the compiled-template fast path must match plain docxtpl, escape values, carry
the identity in DOCX custom properties and swap the configured fonts in."""

from __future__ import annotations

import datetime as dt
import io
import os
import zipfile
from pathlib import Path

import docx
import pytest
from docx.oxml.ns import qn
from docx.shared import Pt
from docxtpl import DocxTemplate
from jinja2 import Environment
from lxml import etree

from forms import render
from forms.errors import NotFound
from forms.identity import Identity
from forms.specs.dropout_report import SPEC
from forms.validators import synthetic_id_number

TITLE = "义务教育阶段学生辍学情况报告单"


def _set_east_asia(style, font: str) -> None:
    style.font.name = font
    rpr = style.element.get_or_add_rPr()
    rpr.get_or_add_rFonts().set(qn("w:eastAsia"), font)


def make_template(path: Path) -> Path:
    """A small docxtpl source shaped like the generated ones: style-level CJK fonts, a title from
    the context, label/value cells, a ``{%tr %}`` row loop, a header with a tag."""
    d = docx.Document()
    _set_east_asia(d.styles["Normal"], render.TEMPLATE_FONT_BODY)
    d.styles["Normal"].font.size = Pt(12)
    _set_east_asia(d.styles["Title"], render.TEMPLATE_FONT_TITLE)
    d.styles["Title"].font.bold = True  # the title face (FandolSong) is installed in bold only
    d.sections[0].header.paragraphs[0].text = "{{ form.title }} 报告单"
    d.add_paragraph("{{ form.title }}", style="Title")
    d.add_paragraph("编号：{{ f.doc_number }}　日期：{{ doc.date }}")
    t = d.add_table(rows=3, cols=4)
    t.style = "Table Grid"
    for r, (a, b, c, e) in enumerate([
        ("学生姓名", "{{ f.student_name }}", "性别", "{{ f.student_sex }}"),
        ("身份证号", "{{ f.student_id_number }}", "年级", "{{ f.grade }}"),
        ("学校意见", "{{ f.school_opinion }}", "原因", "{{ f.reason }}"),
    ]):
        for col, text in enumerate((a, b, c, e)):
            t.cell(r, col).text = text
    rows = d.add_table(rows=4, cols=4)
    rows.style = "Table Grid"
    for col, text in enumerate(("序号", "日期", "参与人员", "结果")):
        rows.cell(0, col).text = text
    rows.cell(1, 0).text = "{%tr for r in rows.attempts %}"
    for col, text in enumerate(("{{ r._no }}", "{{ r.date }}", "{{ r.persons }}", "{{ r.result }}")):
        rows.cell(2, col).text = text
    rows.cell(3, 0).text = "{%tr endfor %}"
    d.add_paragraph("{% if f.reason_note %}说明：{{ f.reason_note }}{% endif %}")
    d.save(path)
    return path


def report_data(seq: int = 1, **overrides) -> dict:
    """Valid synthetic input for the 报告单 (no real person)."""
    birth = dt.date(2011, 3, 1) + dt.timedelta(days=seq % 300)
    idn = synthetic_id_number("410781", birth, 2 * (seq % 400) + 1)  # odd sequence: male
    data = {
        "school_name": "卫辉市第一初级中学", "school_code": "3141001234", "township_name": "城郊乡",
        "send_to": ["township", "education"], "student_name": f"张{'伟明华'[seq % 3]}",
        "student_sex": "男", "student_ethnicity": "汉族", "student_birth_date": birth.isoformat(),
        "student_id_number": idn, "student_xueji_no": "G" + idn, "grade": "8", "class_name": "二班",
        "hukou_place": "城郊乡/王庄村/三组", "home_address": "城郊乡王庄村三组12号",
        "poverty_category": "none", "special_groups": ["G02"], "aid_policies": ["lmyb"],
        "guardian_name": "张建国", "guardian_relation": "父", "guardian_phone": "13912345678",
        "absent_since": "2024-09-02", "absent_days": 8, "whereabouts": "home",
        "reason": "R01", "school_opinion": "建议乡政府联合劝返",
        "attempts": [
            {"date": "2024-09-04", "persons": "班主任王老师", "method": "visit", "result": "refused"},
            {"date": "2024-09-06", "persons": "班主任、校长", "method": "visit", "result": "not_met"},
            {"date": "2024-09-09", "persons": "包保干部", "method": "phone", "result": "refused"},
        ],
        "filler_name": "王芳", "report_date": "2024-09-10",
    }
    data.update(overrides)
    return data


def identity(doc_id: str = "ABCDEFGH1234") -> Identity:
    return Identity(doc_id, SPEC.code, None, SPEC.version)


@pytest.fixture
def tdir(tmp_path: Path) -> Path:
    make_template(tmp_path / SPEC.template_name(None))
    return tmp_path


DOC = {"doc": {"number": "卫辍报〔2024〕3号", "date": "2024年9月10日"}}


def _ctx(cleaned: dict) -> dict:
    return SPEC.context(cleaned, None, extra=DOC)


def _texts(data: bytes) -> tuple[list[str], list[list[list[str]]], list[str]]:
    d = docx.Document(io.BytesIO(data))
    paras = [p.text for p in d.paragraphs]
    tables = [[[c.text for c in r.cells] for r in t.rows] for t in d.tables]
    header = [p.text for p in d.sections[0].header.paragraphs]
    return paras, tables, header


def _docxtpl(path: Path, ctx: dict) -> bytes:
    tpl = DocxTemplate(path)
    tpl.render(ctx, Environment(autoescape=True))
    buf = io.BytesIO()
    tpl.save(buf)
    return buf.getvalue()


def test_fast_path_matches_docxtpl(tdir: Path):
    cleaned = SPEC.validate(report_data(7, reason="R99", reason_note="家长外出务工"))
    ctx = _ctx(cleaned)
    fast = render.render_docx(SPEC, None, cleaned, identity(), templates_dir=tdir,
                              extra={"doc": ctx["doc"]})
    plain = _docxtpl(tdir / SPEC.template_name(None), ctx)
    assert _texts(fast) == _texts(plain)
    paras, tables, header = _texts(fast)
    assert paras[0] == TITLE and header == [f"{TITLE} 报告单"]
    assert paras[-1] == "说明：家长外出务工"
    assert tables[0][0] == ["学生姓名", cleaned["student_name"], "性别", "☑男 ☐女"]
    assert [r[0] for r in tables[1]] == ["序号", "1", "2", "3"]
    assert [r[1] for r in tables[1][1:]] == ["2024年9月4日", "2024年9月6日", "2024年9月9日"]
    assert [r[3] for r in tables[1][1:]] == [r["result"] for r in ctx["rows"]["attempts"]]
    assert "拒绝" in tables[1][1][3]


def test_row_loop_prints_min_rows_and_more(tdir: Path):
    attempts = [{"date": f"2024-09-0{i}", "persons": f"人员{i}", "method": "visit", "result": "refused"}
                for i in range(3, 9)]
    cleaned = SPEC.validate(report_data(2, attempts=attempts))
    _, tables, _ = _texts(render.render_docx(SPEC, None, cleaned, identity(), templates_dir=tdir, extra=DOC))
    assert [r[2] for r in tables[1][1:]] == [f"人员{i}" for i in range(3, 9)]


def test_values_are_escaped(tdir: Path):
    opinion = 'A&B <联合> "劝返" \'x\' & 5 > 3'
    cleaned = SPEC.validate(report_data(3, school_opinion=opinion))
    fast = render.render_docx(SPEC, None, cleaned, identity(), templates_dir=tdir, extra=DOC)
    _, tables, _ = _texts(fast)
    assert tables[0][2][1] == opinion
    assert _texts(fast) == _texts(_docxtpl(tdir / SPEC.template_name(None), _ctx(cleaned)))


def test_multiline_value_becomes_line_break(tdir: Path):
    cleaned = SPEC.validate(report_data(4, school_opinion="第一行\n第二行"))
    fast = render.render_docx(SPEC, None, cleaned, identity(), templates_dir=tdir, extra=DOC)
    assert _texts(fast)[1][0][2][1] == "第一行\n第二行"
    with zipfile.ZipFile(io.BytesIO(fast)) as z:
        assert "<w:br/>" in z.read("word/document.xml").decode()


def test_custom_properties_and_title(tdir: Path):
    ident = Identity("XYZ123456789", SPEC.code, None, SPEC.version)
    cleaned = SPEC.validate(report_data(5))
    data = render.render_docx(SPEC, None, cleaned, ident, templates_dir=tdir, extra=DOC)
    d = docx.Document(io.BytesIO(data))
    assert d.core_properties.title == TITLE
    blob = d.part.package.part_related_by(render._CUSTOM_REL).blob  # the package relationship
    custom = {p.get("name"): p[0].text or "" for p in etree.fromstring(blob)}
    assert custom == {"BaoxueDocId": "XYZ123456789", "BaoxueForm": "dropout_report",
                      "BaoxueVariant": "", "BaoxueTemplateVersion": SPEC.version}


def test_custom_properties_xml_escapes():
    xml = render.custom_properties_xml({"a&b": "<x>"}).decode()
    assert 'name="a&amp;b"' in xml and "<vt:lpwstr>&lt;x&gt;</vt:lpwstr>" in xml


def test_fonts_swapped(tdir: Path):
    cleaned = SPEC.validate(report_data(6))
    data = render.render_docx(SPEC, None, cleaned, identity(), templates_dir=tdir, extra=DOC,
                              fonts=("AR PL UMing CN", "Noto Serif CJK SC"))
    d = docx.Document(io.BytesIO(data))
    body = d.styles["Normal"].element.rPr.rFonts
    title = d.styles["Title"].element.rPr.rFonts
    assert body.get(qn("w:eastAsia")) == "AR PL UMing CN" and body.get(qn("w:ascii")) == "AR PL UMing CN"
    assert title.get(qn("w:eastAsia")) == "Noto Serif CJK SC"  # swapping both ways is safe
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        styles = z.read("word/styles.xml")
    assert b"FandolFang" not in styles and b"FandolSong" not in styles


def test_render_many_in_order_and_processes(tdir: Path):
    items = [(SPEC, None, SPEC.validate(report_data(i)), identity(f"DOC{i:09d}"), DOC)
             for i in range(1, 7)]
    one = render.render_many(items, templates_dir=tdir)
    two = render.render_many(items, templates_dir=tdir, processes=2)
    assert len(one) == 6
    for i, (a, b) in enumerate(zip(one, two, strict=True), start=1):
        assert _texts(a) == _texts(b)
        assert docx.Document(io.BytesIO(a)).tables[0].cell(1, 1).text == items[i - 1][2]["student_id_number"]


def test_cache_recompiles_when_template_changes(tdir: Path):
    cache = render.TemplateCache()
    path = tdir / SPEC.template_name(None)
    first = cache.get(path)
    assert cache.get(path) is first
    d = docx.Document(path)
    d.add_paragraph("新增段落")
    d.save(path)
    later = path.stat().st_mtime_ns + 10**9
    os.utime(path, ns=(later, later))
    assert cache.get(path) is not first


def test_missing_template_is_not_found(tmp_path: Path):
    with pytest.raises(NotFound, match="模板文件不存在"):
        render.render_docx(SPEC, None, SPEC.validate(report_data(1)), identity(), templates_dir=tmp_path)


def test_zip_documents():
    data = render.zip_documents({"a.pdf": b"%PDF-1", "b.docx": b"PK"})
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        assert z.read("a.pdf") == b"%PDF-1" and z.namelist() == ["a.pdf", "b.docx"]


def test_parallel_renders_give_valid_archives():
    """Renders on several threads share one compiled template; every archive must stay valid
    (a shared ZipInfo used to be mutated by concurrent writers)."""
    import io
    import zipfile
    from concurrent.futures import ThreadPoolExecutor

    from forms import render as render_mod
    from forms.identity import Identity, new_doc_id
    from forms.registry import get_spec
    from tests.samples_data import sample_input

    spec = get_spec("responsibility")
    var = spec.variant("R-CT")
    base = sample_input("responsibility", "R-CT")

    def one(i):
        # documents of different sizes: the parts after document.xml start at different offsets
        cleaned = spec.validate({**base, "party_b_name": "第" + "一" * (i % 30) + "乡人民政府"}, var)
        data = render_mod.render_docx(spec, var, cleaned, Identity(new_doc_id(), spec.code, "R-CT", spec.version))
        archive = zipfile.ZipFile(io.BytesIO(data))
        assert archive.testzip() is None
        return archive.read("word/document.xml").count(b"<w:tbl>")

    with ThreadPoolExecutor(4) as ex:
        counts = list(ex.map(one, range(60)))
    assert len(set(counts)) == 1 and counts[0] > 0
