"""forms/build_templates.py: the generated docxtpl sources (templates/forms/*.docx) are up to date,
deterministic, and carry what the renderer and the parsers rely on: style-level CJK fonts, one
section per part with the 公文 page setup and a free QR corner, part bookmarks and markers, one run
per Jinja tag, the docxtpl row loop with a repeating header row."""

from __future__ import annotations

import io
import re
import zipfile

import docx
import pytest
from docx.enum.section import WD_ORIENT
from docx.oxml.ns import qn
from docx.shared import Mm
from docxtpl import DocxTemplate
from jinja2 import Environment

from forms import build_templates as bt
from forms import layout as L
from forms.registry import all_specs
from tests._render_helpers import TEMPLATES, every_layout
from tests.samples_data import all_samples

JOBS = bt.template_jobs()
JOB_IDS = [j.name for j in JOBS]
TAG_RE = re.compile(r"\{\{.*?\}\}|\{%.*?%\}")


def _doc(job) -> docx.document.Document:
    return docx.Document(str(TEMPLATES / job.name))


def test_one_template_per_distinct_layout():
    names = {spec.template_name(v) for spec in all_specs().values() for v in (spec.variants or (None,))}
    assert names == {j.name for j in JOBS}
    assert {"dropout_report.docx", "guardian_notice.docx", "guardian_notice-countersigned.docx",
            "handover.docx", "responsibility.docx"} <= names
    for spec, variant in every_layout():
        assert (TEMPLATES / spec.template_name(variant)).is_file()


@pytest.mark.parametrize("job", JOBS, ids=JOB_IDS)
def test_committed_templates_are_up_to_date_and_deterministic(job):
    first = bt.build_template(job)
    assert bt.build_template(job) == first, "the builder must be deterministic"
    assert (TEMPLATES / job.name).read_bytes() == first, (
        f"{job.name} is stale: run `python -m forms.build_templates` and commit the result")
    with zipfile.ZipFile(io.BytesIO(first)) as z:
        assert {i.date_time for i in z.infolist()} == {bt.ZIP_DATE}


@pytest.mark.parametrize("job", JOBS, ids=JOB_IDS)
def test_styles_carry_the_cjk_fonts(job):
    d = _doc(job)
    fonts = {}
    for name in ("BxTitle", "BxSubtitle", "BxBody", "BxSmall", "BxCell", "BxLabel", "BxFooter"):
        rfonts = d.styles[name].element.rPr.find(qn("w:rFonts"))
        fonts[name] = {rfonts.get(qn(a)) for a in ("w:ascii", "w:hAnsi", "w:eastAsia")}
        assert rfonts.get(qn("w:asciiTheme")) is None and rfonts.get(qn("w:eastAsiaTheme")) is None
    # GB/T 9704: title 2号 in the 小标宋 stand-in (bold), body 3号 仿宋, headings 黑体; tables 宋体
    assert fonts["BxTitle"] == {bt.FONT_TITLE} and d.styles["BxTitle"].font.bold
    assert all(fonts[n] == {bt.FONT_BODY} for n in ("BxBody", "BxSubtitle", "BxSmall"))
    assert all(fonts[n] == {bt.FONT_TABLE} for n in ("BxCell", "BxLabel", "BxFooter"))
    assert d.styles["BxTitle"].font.size.pt == 22
    assert d.styles["BxBody"].font.size.pt == 16
    assert abs(d.styles["BxBody"].paragraph_format.line_spacing.pt - 225 / 22 / 25.4 * 72) < 0.05
    assert 10.5 <= d.styles["BxCell"].font.size.pt <= 12
    # the renderer swaps fonts by replacing these exact names in styles.xml
    with zipfile.ZipFile(TEMPLATES / job.name) as z:
        styles = z.read("word/styles.xml").decode()
    assert all(f'"{name}"' in styles for name in (bt.FONT_BODY, bt.FONT_TITLE, bt.FONT_TABLE))


@pytest.mark.parametrize("job", JOBS, ids=JOB_IDS)
def test_one_section_per_part_with_page_setup_and_free_qr_corner(job):
    d = _doc(job)
    assert len(d.sections) == len(job.parts)
    qr_bottom = L.QR_TOP_MM + L.QR_SIZE_MM
    for section, part in zip(d.sections, job.parts, strict=True):
        if part.landscape:
            assert section.orientation == WD_ORIENT.LANDSCAPE
            assert abs(section.page_width - Mm(297)) < Mm(0.5) and abs(section.page_height - Mm(210)) < Mm(0.5)
        else:
            assert abs(section.page_width - Mm(210)) < Mm(0.5) and abs(section.page_height - Mm(297)) < Mm(0.5)
            assert abs(section.top_margin - Mm(L.MARGINS_MM["top"])) < Mm(0.2)
            assert abs(section.bottom_margin - Mm(L.MARGINS_MM["bottom"])) < Mm(0.2)
        assert section.top_margin > Mm(qr_bottom + 2), "content must start below the QR corner"
        assert section.start_type is not None
    # every part after the first starts on a new page
    for section in d.sections[1:]:
        assert section.start_type == docx.enum.section.WD_SECTION.NEW_PAGE
    footer = "".join(t.text or "" for t in d.sections[0].footer._element.iter(qn("w:t")))
    assert footer.startswith("第") and "页 共" in footer
    instr = " ".join(t.text for t in d.sections[0].footer._element.iter(qn("w:instrText")))
    assert "PAGE" in instr and "NUMPAGES" in instr


@pytest.mark.parametrize("job", JOBS, ids=JOB_IDS)
def test_parts_are_marked(job):
    d = _doc(job)
    body = d.element.body
    marks = [b.get(qn("w:name")) for b in body.iter(qn("w:bookmarkStart"))]
    assert marks == [bt.BOOKMARK_PREFIX + p.key for p in job.parts]
    texts = [p.text for p in d.paragraphs]
    if len(job.parts) > 1:
        for part in job.parts:
            assert bt.PART_MARK_FORMAT.format(name=part.name) in texts


def _runs_with_tags(d) -> list[str]:
    out = []
    for el in d.element.body.iter(qn("w:r")):
        text = "".join(t.text or "" for t in el.iter(qn("w:t")))
        out.append(text)
    return out


@pytest.mark.parametrize("job", JOBS, ids=JOB_IDS)
def test_every_field_has_its_tag_in_one_run(job):
    d = _doc(job)
    runs = _runs_with_tags(d)
    joined = "".join(runs)
    # tags are never split across runs (docxtpl would still cope, but the renderer's fast path and
    # people editing templates should not have to)
    for r in runs:
        assert r.count("{{") == r.count("}}") and r.count("{%") == r.count("%}"), r
    for part in job.parts:
        for block, name in L.iter_values(part):
            if isinstance(block, L.Rows):
                loops = [r for r in runs if r.startswith("{%tr for r in rows." + name)]
                # a list whose last rows go with the signatures loops twice: [:-k] and [-k:]
                assert loops == (["{%tr for r in rows." + name + " %}"] if not block.keep_tail else
                                 [f"{{%tr for r in rows.{name}[:-{block.keep_tail}] %}}",
                                  f"{{%tr for r in rows.{name}[-{block.keep_tail}:] %}}"])
                f = job.spec.field(name)
                for c in (block.columns or [c.name for c in f.columns]):
                    assert bt.tag(f"r.{c}") in runs
            elif isinstance(block, L.Grid):
                assert bt.tag(f"f.{name}") in runs
            elif isinstance(block, L.Signoff):
                assert L.Value  # a seal zone: nothing printed, the geometry places it
            else:
                assert bt.tag(f"f.{name} or '____'") in runs
        for block in part.blocks:
            if isinstance(block, L.Items):
                assert "{%p for r in rows." + block.field + " %}" in joined


@pytest.mark.parametrize("job", JOBS, ids=JOB_IDS)
def test_rows_tables_repeat_their_header(job):
    d = _doc(job)
    rows_blocks = [b for p in job.parts for b in p.blocks if isinstance(b, L.Rows)]
    loops = [t for t in d.tables if "{%tr for" in "".join(c.text for c in t.rows[1].cells)]
    # a list with ``keep_tail`` is two tables: its rows but the last k (kept with nothing, so the
    # list starts under the part's header and splits freely), then the last k kept with the block
    # after (the signatures), each table with the header row
    blocks = [b for b in rows_blocks for _ in range(2 if b.keep_tail else 1)]
    assert len(loops) == len(blocks)

    def kept(table):
        return [p.pPr is not None and p.pPr.find(qn("w:keepNext")) is not None
                for r in table.rows[:3] for p in r._tr.iter(qn("w:p"))]

    for k, (table, block) in enumerate(zip(loops, blocks, strict=True)):
        if block.keep_tail:
            first = k + 1 < len(blocks) and blocks[k + 1] is block
            assert set(kept(table)) == ({False} if first else {True})
        header = table.rows[0]
        assert header._tr.trPr.find(qn("w:tblHeader")) is not None
        f = job.spec.field(block.field)
        labels = [f.column(c).label for c in (block.columns or [c.name for c in f.columns])]
        want = ([block.number_column] if block.number_column else []) + labels
        assert [c.text for c in header.cells] == want
        assert table.rows[3].cells[0].text == "{%tr endfor %}"


def test_grid_spans_widths_and_signature_heights():
    job = next(j for j in JOBS if j.name == "dropout_report.docx")
    d = _doc(job)
    grids = [b for b in job.parts[0].blocks if isinstance(b, L.Grid)]
    tables = [t for t in d.tables if "{%tr" not in "".join(c.text for r in t.rows for c in r.cells)]
    assert len(tables) == len(grids)
    for table, grid in zip(tables, grids, strict=True):
        cols = table._tbl.tblGrid.findall(qn("w:gridCol"))
        assert [round(int(c.get(qn("w:w"))) / 1440 * 25.4) for c in cols] == [round(w) for w in grid.widths]
        for row, cells in zip(table.rows, grid.rows, strict=True):
            distinct = []
            for c in row.cells:
                if not distinct or distinct[-1]._tc is not c._tc:
                    distinct.append(c)
            assert len(distinct) == len(cells)
            tall = [c.height_mm for c in cells if isinstance(c, L.Value) and c.height_mm]
            if tall:
                assert abs(row.height - Mm(max(tall))) < Mm(0.2)
            assert row._tr.trPr.find(qn("w:cantSplit")) is not None


def test_fixed_shape_values_are_scaled_to_fit_narrow_cells():
    from forms.spec import Field, Kind

    assert bt.fit_scale(Field("d", "日期", Kind.DATE), 40) is None
    assert 75 <= bt.fit_scale(Field("d", "日期", Kind.DATE), 24) < 100
    assert bt.fit_scale(Field("i", "身份证号", Kind.ID_NUMBER), 30) == bt.MIN_SCALE
    assert bt.fit_scale(Field("t", "文本"), 5) is None


@pytest.mark.parametrize("form,variant,label,data", list(all_samples()), ids=[s[2] for s in all_samples()])
def test_plain_docxtpl_renders_every_sample(form, variant, label, data):
    spec = all_specs()[form]
    v = spec.variant(variant) if spec.variants else None
    cleaned = spec.validate(data, v)
    tpl = DocxTemplate(TEMPLATES / spec.template_name(v))
    ctx = spec.context(cleaned, v, {"doc": {"number": "X"}})
    tpl.render(ctx, Environment(autoescape=True))
    buf = io.BytesIO()
    tpl.save(buf)
    text = "\n".join(
        [p.text for p in docx.Document(io.BytesIO(buf.getvalue())).paragraphs]
        + [c.text for t in docx.Document(io.BytesIO(buf.getvalue())).tables for r in t.rows for c in r.cells])
    assert "{{" not in text and "{%" not in text
    assert spec.doc_title(v) in text
    for name, value in ctx["f"].items():
        if value and len(value) < 40 and any(name == n for p in spec.parts(v) for _b, n in L.iter_values(p)):
            assert value in text, name


def test_unknown_layout_elements_are_refused():
    from forms.spec import Field, FormSpec

    spec = FormSpec("x", "X", "1", (Field("a", "甲"),),
                    (L.Part("main", "X", blocks=(L.Para("{a}{b}"),)),))
    with pytest.raises(bt.LayoutError, match="not a field"):
        bt.build_template(bt.template_jobs([spec])[0])
    spec = FormSpec("x", "X", "1", (Field("a", "甲"),),
                    (L.Part("main", "X", blocks=(L.Grid(rows=((L.Label("甲"), L.Value("a")),),
                                                        widths=(20, 20, 20)),)),))
    with pytest.raises(bt.LayoutError, match="spans"):
        bt.build_template(bt.template_jobs([spec])[0])
    spec = FormSpec("x", "X", "1", (Field("a", "甲"),),
                    (L.Part("main", "X", blocks=(L.Para("{a}", style="fancy"),)),))
    with pytest.raises(bt.LayoutError, match="style"):
        bt.build_template(bt.template_jobs([spec])[0])


def test_character_boxes_print_large_in_a_cell_wide_enough():
    """Blank HAND dates/phones print as □ boxes at BOX_PT (a digit written in each); a layout whose
    cell cannot hold them on one line is refused with the field named."""
    job = next(j for j in JOBS if j.name == "guardian_notice.docx")
    d = _doc(job)
    sizes = {}
    for t in d.tables:
        for row in t.rows:
            for cell in row.cells:
                for p in cell.paragraphs:
                    for r in p.runs:
                        if r.text.startswith("{{ f.") and r.font.size is not None:
                            sizes[r.text] = r.font.size.pt
    assert sizes == {bt.tag("f.stub_service_date"): bt.BOX_PT, bt.tag("f.recipient_signed_on"): bt.BOX_PT}

    from forms.spec import Field, Filled, Kind

    narrow = Field("x_on", "日期", Kind.DATE, filled=Filled.HAND, boxes=8)
    with pytest.raises(bt.LayoutError, match="x_on"):
        bt._check_box_room("demo", narrow, 30)
    bt._check_box_room("demo", narrow, 82)
