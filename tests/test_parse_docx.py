"""parsers/docx_parser.py + parsers/compare.py: a rendered DOCX reads back to its input for every
form and variant, also after LibreOffice re-saved it; edits are classified; documents without
identity are recognised by title and number; files that are not ours get a clear 422."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import docx
import pytest
from docx.oxml.ns import qn

from forms import tools
from forms.errors import TamperedDocument, UnreadableDocument, UnsupportedInput
from parsers.base import CONFIDENCE_INVALID, CONFIDENCE_OK
from parsers.compare import CHANGED, CLEARED, FILLED_IN, UNCHANGED, compare, flagged
from parsers.docx_parser import DocxParser, custom_properties
from parsers.registry import choose, parse_file
from parsers.scan.parser import ScanParser
from tests._render_helpers import (
    SECRET,
    Rendered,
    assert_round_trip,
    make_identity,
    render_docx,
    rendered_samples,
    resaved_samples,
    sample,
    sample_by_label,
    sample_labels,
)

LABELS = sample_labels()
needs_soffice = pytest.mark.skipif(not tools.probe("soffice").installed, reason="LibreOffice not installed")


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


def _set_value(data: bytes, label: str, text: str, *, occurrence: int = 0) -> bytes:
    """Type ``text`` into the value cell that follows the cell printed as ``label``."""
    d = docx.Document(io.BytesIO(data))
    seen = 0
    for table in d.tables:
        for row in table.rows:
            cells = []
            for c in row.cells:
                if not cells or cells[-1]._tc is not c._tc:
                    cells.append(c)
            for a, b in zip(cells, cells[1:], strict=False):
                if a.text.strip() == label:
                    if seen == occurrence:
                        b.paragraphs[0].text = text
                        for p in b.paragraphs[1:]:
                            p._p.getparent().remove(p._p)
                        out = io.BytesIO()
                        d.save(out)
                        return out.getvalue()
                    seen += 1
    raise AssertionError(f"label {label} not found")


def _replace_member(data: bytes, member: str, content: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as zin, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, content if info.filename == member else zin.read(info.filename))
    return out.getvalue()


NO_PROPERTIES = (b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<Properties xmlns="http://schemas.'
                 b'openxmlformats.org/officeDocument/2006/custom-properties"/>')


@pytest.mark.parametrize("label", LABELS)
def test_docx_round_trip(label, tmp_path):
    s = sample_by_label(label)
    parsed = parse_file(_write(tmp_path, "returned.docx", s.docx), secret=SECRET)
    assert parsed.input_kind == "docx"
    assert parsed.identity == s.identity
    assert parsed.doc_number == s.cleaned.get(s.spec.number_field)
    assert_round_trip(s, parsed)
    reading = next(iter(parsed.fields.values()))
    assert reading.source["kind"] == "docx" and "part" in reading.source
    assert all(r.confidence >= 0.9 for r in parsed.fields.values())


@needs_soffice
@pytest.mark.parametrize("label", LABELS)
def test_libreoffice_resaved_docx_round_trip(label, tmp_path):
    s = sample_by_label(label)
    data = resaved_samples()[label]
    assert data != s.docx
    # LibreOffice keeps the custom properties and the part bookmarks
    assert custom_properties(_write(tmp_path, "props.docx", data))["BaoxueDocId"] == s.identity.doc_id
    parsed = parse_file(_write(tmp_path, "resaved.docx", data), secret=SECRET)
    assert parsed.identity == s.identity
    assert not any("书签" in w for w in parsed.warnings)
    assert_round_trip(s, parsed)


def test_filled_in_changed_and_cleared_fields_are_classified(tmp_path):
    spec, variant, cleaned = sample("dropout_report", hand=False)  # receipts blank when issued
    s = Rendered("issued", spec, variant, cleaned, make_identity(spec, variant),
                 render_docx(spec, variant, cleaned))
    assert cleaned["township_receiver"] is None
    data = _set_value(s.docx, "乡(镇)签收人", "李四")
    data = _set_value(data, "乡(镇)签收日期", "2025年9月26日")
    data = _set_value(data, "学生姓名", "王小明")  # a printed value altered
    data = _set_value(data, "民族", "")  # a printed value removed
    parsed = parse_file(_write(tmp_path, "edited.docx", data), secret=SECRET)
    changes = compare(s.spec, s.variant, s.cleaned, parsed)
    assert changes["township_receiver"].status == FILLED_IN and not changes["township_receiver"].flagged
    assert changes["township_received_on"].returned.isoformat() == "2025-09-26"
    assert changes["student_name"].status == CHANGED and changes["student_name"].flagged
    assert changes["student_name"].returned == "王小明"
    assert changes["student_ethnicity"].status == CLEARED and changes["student_ethnicity"].flagged
    assert changes["school_name"].status == UNCHANGED
    assert set(flagged(changes)) == {"student_name", "student_ethnicity"}
    # a HAND field already filled when issued and changed on paper is a change, not a flag
    hand = parse_file(_write(tmp_path, "hand.docx", _set_value(sample_by_label("dropout_report").docx,
                                                                "乡(镇)签收人", "赵六")), secret=SECRET)
    full = sample_by_label("dropout_report")
    c = compare(full.spec, full.variant, full.cleaned, hand)["township_receiver"]
    assert c.status == CHANGED and not c.flagged
    assert parsed.fields["township_receiver"].source["kind"] == "docx"


def test_invalid_value_is_kept_as_text_with_an_error(tmp_path):
    s = sample_by_label("dropout_report")
    data = _set_value(s.docx, "联系电话", "1391234")
    data = _set_value(data, "未到校起始日期", "九月某日")
    parsed = parse_file(_write(tmp_path, "bad.docx", data), secret=SECRET)
    assert parsed.values["guardian_phone"] == "1391234"
    assert "guardian_phone" in parsed.errors
    assert parsed.fields["guardian_phone"].confidence == CONFIDENCE_INVALID
    assert parsed.values["absent_since"] == "九月某日" and "absent_since" in parsed.errors
    assert parsed.fields["student_name"].confidence == CONFIDENCE_OK
    changes = compare(s.spec, s.variant, s.cleaned, parsed)
    assert changes["guardian_phone"].status == CHANGED and changes["guardian_phone"].flagged


def test_table_rows_are_compared_per_cell(tmp_path):
    s = sample_by_label("dropout_report")
    d = docx.Document(io.BytesIO(s.docx))
    table = next(t for t in d.tables if t.rows[0].cells[0].text == "序号")
    n = len(s.cleaned["attempts"])
    table.rows[1].cells[2].paragraphs[0].text = "另一位老师"
    added = table.add_row()  # a visit written on paper after printing
    for cell, text in zip(added.cells, [str(n + 1), "2025年9月25日", "校长", "家访", "同意返校"], strict=True):
        cell.paragraphs[0].text = text
    buf = io.BytesIO()
    d.save(buf)
    parsed = parse_file(_write(tmp_path, "rows.docx", buf.getvalue()), secret=SECRET)
    changes = compare(s.spec, s.variant, s.cleaned, parsed)
    assert changes["attempts[0].persons"].status == CHANGED and changes["attempts[0].persons"].flagged
    assert changes[f"attempts[{n}].persons"].status == FILLED_IN
    assert not changes[f"attempts[{n}].persons"].flagged
    assert parsed.values["attempts"][n] == {"date": __import__("datetime").date(2025, 9, 25),
                                            "persons": "校长", "method": "visit", "result": "agreed"}
    assert changes["attempts[1].date"].status == UNCHANGED


def test_masked_id_on_the_notice_reads_back_masked(tmp_path):
    s = sample_by_label("guardian_notice-xianqi")
    parsed = parse_file(_write(tmp_path, "n.docx", s.docx), secret=SECRET)
    idn = s.cleaned["student_id_number"]
    assert parsed.values["student_id_number"] == idn[:6] + "*" * 8 + idn[-4:]
    assert "student_id_number" not in parsed.errors
    assert compare(s.spec, s.variant, s.cleaned, parsed)["student_id_number"].status == UNCHANGED


def test_fields_printed_on_several_parts_must_agree(tmp_path):
    s = sample_by_label("guardian_notice-xianqi")
    data = _set_value(s.docx, "学生姓名", "李雷", occurrence=1)  # the 正本's copy only
    parsed = parse_file(_write(tmp_path, "n.docx", data), secret=SECRET)
    assert "student_name" in parsed.errors and "不一致" in parsed.errors["student_name"]


def test_docx_without_properties_is_recognised_by_title_and_number(tmp_path):
    for label in ("dropout_report", "guardian_notice-zeling", "responsibility-R-ST"):
        s = sample_by_label(label)
        bare = _replace_member(s.docx, "docProps/custom.xml", NO_PROPERTIES)
        parsed = parse_file(_write(tmp_path, f"{label}.docx", bare), secret=SECRET)
        assert parsed.identity is None
        assert parsed.form == s.spec.code
        assert parsed.variant == (s.variant.code if s.variant else None)
        assert parsed.doc_number == s.cleaned[s.spec.number_field]
        assert any("文号" in w for w in parsed.warnings)
        assert_round_trip(s, parsed)


def test_parts_split_by_markers_or_sections_when_bookmarks_are_gone(tmp_path):
    s = sample_by_label("guardian_notice-dunfan")
    d = docx.Document(io.BytesIO(s.docx))
    for tag in ("w:bookmarkStart", "w:bookmarkEnd"):
        for el in list(d.element.body.iter(qn(tag))):
            el.getparent().remove(el)
    buf = io.BytesIO()
    d.save(buf)
    parsed = parse_file(_write(tmp_path, "nobm.docx", buf.getvalue()), secret=SECRET)
    assert any("联名" in w for w in parsed.warnings)
    assert_round_trip(s, parsed)


def test_a_docx_that_is_not_our_form_gets_a_422(tmp_path):
    d = docx.Document()
    d.add_paragraph("会议纪要")
    t = d.add_table(rows=2, cols=2)
    t.cell(0, 0).text = "姓名"
    t.cell(0, 1).text = "张三"
    buf = io.BytesIO()
    d.save(buf)
    with pytest.raises(UnsupportedInput) as e:
        parse_file(_write(tmp_path, "minutes.docx", buf.getvalue()), secret=SECRET)
    assert e.value.http_status == 422
    assert "不是本系统的文书" in e.value.message and "minutes.docx" in e.value.message


def test_a_property_naming_an_unknown_form_is_refused(tmp_path):
    s = sample_by_label("dropout_report")
    with zipfile.ZipFile(io.BytesIO(s.docx)) as z:
        custom = z.read("docProps/custom.xml").replace(b">dropout_report<", b">no_such_form<")
    data = _replace_member(s.docx, "docProps/custom.xml", custom)
    with pytest.raises(UnsupportedInput, match="no_such_form"):
        parse_file(_write(tmp_path, "unknown.docx", data), secret=SECRET)


def test_a_forged_qr_property_is_tampering(tmp_path):
    from forms.identity import encode

    s = sample_by_label("dropout_report")
    payload = encode(s.identity.for_page(1, 1), "another-secret")
    with zipfile.ZipFile(io.BytesIO(s.docx)) as z:
        custom = z.read("docProps/custom.xml").replace(
            b"</Properties>",
            b'<property fmtid="{D5CDD505-2E9C-101B-9397-08002B2CF9AE}" pid="9" name="BaoxueQR">'
            b"<vt:lpwstr>" + payload.encode() + b"</vt:lpwstr></property></Properties>")
    with pytest.raises(TamperedDocument):
        parse_file(_write(tmp_path, "forged.docx", _replace_member(s.docx, "docProps/custom.xml", custom)),
                   secret=SECRET)


def test_broken_and_foreign_files(tmp_path):
    s = rendered_samples()[0]
    with pytest.raises(UnreadableDocument):
        DocxParser().parse(_write(tmp_path, "cut.docx", s.docx[: len(s.docx) // 2]), secret=SECRET)
    cases = {
        "old.doc": (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 600, ".docx"),
        "scan.png": (b"\x89PNG\r\n\x1a\n" + b"\0" * 100, "扫描"),
        "notes.txt": ("随便写的文字".encode(), "不是可识别的文件类型"),
        "book.xlsx": (_xlsx(), "不是 Word 文档"),
    }
    for name, (data, why) in cases.items():
        path = _write(tmp_path, name, data)
        # An image is the scan parser's (read against its issued document, not here); the rest no one's.
        assert choose(path) is (ScanParser if name.endswith(".png") else None)
        with pytest.raises(UnsupportedInput) as e:
            parse_file(path, secret=SECRET)
        assert why in e.value.message and name in e.value.message and e.value.http_status == 422


def _xlsx() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("xl/workbook.xml", "<workbook/>")
    return out.getvalue()


def test_a_signature_image_in_a_docx_counts_as_signed(tmp_path):
    from PIL import Image

    s = sample_by_label("dropout_report")
    d = docx.Document(io.BytesIO(s.docx))
    png = io.BytesIO()
    Image.new("RGB", (60, 20), "black").save(png, "PNG")
    for table in d.tables:
        for row in table.rows:
            cells = list(dict.fromkeys(row.cells))
            for a, b in zip(cells, cells[1:], strict=False):
                if a.text == "校长签名":
                    png.seek(0)
                    b.paragraphs[0].add_run().add_picture(png, width=docx.shared.Mm(15))
    buf = io.BytesIO()
    d.save(buf)
    parsed = parse_file(_write(tmp_path, "signed.docx", buf.getvalue()), secret=SECRET)
    assert parsed.values["principal_signature"] is True
    assert parsed.values["teacher_signature"] is None
    assert compare(s.spec, s.variant, s.cleaned, parsed)["principal_signature"].status == FILLED_IN
