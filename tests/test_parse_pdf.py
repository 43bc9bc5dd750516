"""parsers/pdf_parser.py: rendered PDFs (warm LibreOffice + QR stamper) read back to their input
for every form and variant; the identity comes from the verified QR payloads, the printed QR, the
metadata or, failing all, the printed title and number; forged codes are refused; scans and
foreign PDFs get a clear 422."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image
from pypdf import PdfReader, PdfWriter

from forms import identity as ident
from forms import tools
from forms.errors import TamperedDocument, UnsupportedInput
from parsers.base import pdf_kind
from parsers.pdf_parser import PdfParser, qr_from_pages
from parsers.registry import choose, parse_file
from parsers.scan.parser import ScanParser
from tests._render_helpers import SECRET, assert_round_trip, pdf_samples, sample_by_label, sample_labels, to_pdf

pytestmark = pytest.mark.skipif(not tools.probe("soffice").installed, reason="LibreOffice not installed")
LABELS = sample_labels()


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


def _with_info(pdf: bytes, *, drop=(), update=None) -> bytes:
    reader = PdfReader(io.BytesIO(pdf))
    writer = PdfWriter(clone_from=reader)
    meta = {k: v for k, v in (reader.metadata or {}).items() if not any(k.startswith(d) for d in drop)}
    meta.update(update or {})
    writer._info = None  # noqa: SLF001 - start from an empty info dict
    writer.add_metadata(meta)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


@pytest.mark.parametrize("label", LABELS)
def test_pdf_round_trip(label, tmp_path):
    s = sample_by_label(label)
    path = _write(tmp_path, "returned.pdf", pdf_samples()[label])
    assert pdf_kind(path) == "digital"
    assert choose(path, "application/pdf") is PdfParser
    parsed = parse_file(path, secret=SECRET)
    assert parsed.input_kind == "pdf"
    assert parsed.identity == s.identity
    assert parsed.doc_number == s.cleaned.get(s.spec.number_field)
    assert_round_trip(s, parsed)
    for reading in parsed.fields.values():
        src = reading.source
        assert src["kind"] == "pdf" and src["page"] >= 1 and len(src["bbox"]) == 4


def test_qr_payloads_are_verified(tmp_path):
    s = sample_by_label("dropout_report")
    pdf = pdf_samples()["dropout_report"]
    forged = ident.encode(s.identity.for_page(1, 2), "not-the-secret")
    with pytest.raises(TamperedDocument):
        parse_file(_write(tmp_path, "forged.pdf", _with_info(pdf, update={"/BaoxueQR1": forged})), secret=SECRET)
    other = ident.encode(ident.Identity("OTHERDOC0001", s.spec.code, None, s.spec.version, 2, 2), SECRET)
    with pytest.raises(TamperedDocument, match="不同的文书"):
        parse_file(_write(tmp_path, "mixed.pdf", _with_info(pdf, update={"/BaoxueQR2": other})), secret=SECRET)
    with pytest.raises(TamperedDocument, match="元数据"):
        parse_file(_write(tmp_path, "meta.pdf", _with_info(pdf, update={"/BaoxueDocId": "OTHERDOC0001"})),
                   secret=SECRET)
    with pytest.raises(TamperedDocument):  # the right document, read with the wrong secret
        parse_file(_write(tmp_path, "ok.pdf", pdf), secret="another-secret")


def test_identity_from_the_printed_qr_when_the_metadata_is_gone(tmp_path):
    s = sample_by_label("guardian_notice-quanfan")
    bare = _with_info(pdf_samples()[s.label], drop=("/Baoxue",))
    assert len(qr_from_pages(bare)) == len(PdfReader(io.BytesIO(bare)).pages)
    parsed = parse_file(_write(tmp_path, "bare.pdf", bare), secret=SECRET)
    assert parsed.identity == s.identity
    assert any("二维码" in w for w in parsed.warnings)
    assert_round_trip(s, parsed)


def test_unstamped_pdf_is_recognised_by_title_and_number(tmp_path):
    for label in ("dropout_report", "responsibility-R-VG"):
        s = sample_by_label(label)
        plain = to_pdf([s.docx])[0]  # straight from LibreOffice: no QR, no Baoxue metadata
        parsed = parse_file(_write(tmp_path, f"{label}.pdf", plain), secret=SECRET)
        assert parsed.identity is None
        assert (parsed.form, parsed.variant) == (s.spec.code, s.variant.code if s.variant else None)
        assert parsed.doc_number == s.cleaned[s.spec.number_field]
        assert_round_trip(s, parsed)


def test_metadata_without_qr_is_used_with_a_warning(tmp_path):
    s = sample_by_label("handover-6")
    plain = to_pdf([s.docx])[0]
    meta = {f"/{k}": v for k, v in s.identity.properties().items()}
    parsed = parse_file(_write(tmp_path, "meta.pdf", _with_info(plain, update=meta)), secret=SECRET)
    assert parsed.identity == s.identity
    assert any("未经校验" in w for w in parsed.warnings)


def test_scanned_pdf_goes_to_the_scan_pipeline(tmp_path):
    img = Image.new("RGB", (1654, 2339), "white")  # an A4 page at 200 dpi, no text layer
    buf = io.BytesIO()
    img.save(buf, "PDF", resolution=200)
    path = _write(tmp_path, "scan.pdf", buf.getvalue())
    assert pdf_kind(path) == "scanned"
    # The registry gives it to the scan parser, which reads it against its issued document.
    assert choose(path) is ScanParser and ScanParser.background
    with pytest.raises(UnsupportedInput) as e:
        parse_file(path, secret=SECRET)
    assert "扫描" in e.value.message and e.value.http_status == 422
    with pytest.raises(UnsupportedInput, match="扫描"):
        PdfParser().parse(path, secret=SECRET)


def test_a_pdf_that_is_not_our_form_gets_a_422(tmp_path):
    import docx

    d = docx.Document()
    for i in range(5):
        d.add_paragraph(f"第{i + 1}条 本办法自发布之日起施行。会议纪要与工作安排。")
    buf = io.BytesIO()
    d.save(buf)
    path = _write(tmp_path, "notice.pdf", to_pdf([buf.getvalue()])[0])
    assert pdf_kind(path) == "digital"
    with pytest.raises(UnsupportedInput) as e:
        parse_file(path, secret=SECRET)
    assert "不是本系统的文书" in e.value.message and e.value.http_status == 422


def test_notice_stub_and_receipt_fit_one_page_each():
    for label in ("guardian_notice-xianqi", "guardian_notice-zeling"):
        s = sample_by_label(label)
        from forms.geometry import assign_parts, pdf_pages

        pages = pdf_pages(pdf_samples()[label])
        parts, _warn = assign_parts(pages, s.spec.parts(s.variant))
        assert parts[0] == "stub" and parts.count("stub") == 1
        assert parts[-1] == "receipt" and parts.count("receipt") == 1
        assert set(parts) == {"stub", "original", "receipt"}


def _overlay(pdf: bytes, page_no: int, ops: str) -> bytes:
    """Paint extra content on a page (as a PDF editor would), with Helvetica as /HvX."""
    from pypdf.generic import ArrayObject, DecodedStreamObject, DictionaryObject, NameObject

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf)))
    page = writer.pages[page_no - 1]
    stream = DecodedStreamObject()
    stream.set_data(ops.encode("ascii"))
    contents = page["/Contents"].get_object()
    refs = list(contents) if isinstance(contents, ArrayObject) else [page["/Contents"]]
    page[NameObject("/Contents")] = ArrayObject([*refs, writer._add_object(stream)])  # noqa: SLF001
    fonts = page["/Resources"].get_object().setdefault(NameObject("/Font"), DictionaryObject())
    fonts.get_object()[NameObject("/HvX")] = DictionaryObject({
        NameObject("/Type"): NameObject("/Font"), NameObject("/Subtype"): NameObject("/Type1"),
        NameObject("/BaseFont"): NameObject("/Helvetica")})
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_values_typed_and_signatures_drawn_on_a_pdf_are_read(tmp_path):
    from forms.geometry import record_geometry
    from parsers.compare import FILLED_IN, UNCHANGED, compare
    from tests._render_helpers import make_identity, render_pdf, sample

    spec, variant, cleaned = sample("dropout_report", hand=False)
    identity = make_identity(spec, variant, "HANDFILL0001")
    pdf = render_pdf(spec, variant, cleaned, identity)
    geo = record_geometry(pdf, spec, variant)
    where = {path: (p["page"], rec["bbox"], p["size"][1]) for p in geo["pages"] for path, rec in p["fields"].items()}
    page_no, (x0, top, x1, bottom), height = where["township_received_on"]
    edited = _overlay(pdf, page_no, f"BT /HvX 9 Tf {x0 + 4:.1f} {height - bottom + 6:.1f} Td (2025-09-26) Tj ET")
    page_no, (x0, top, x1, bottom), height = where["principal_signature"]
    y0, y1 = height - bottom + 4, height - top - 4
    edited = _overlay(edited, page_no, f"0.8 w {x0 + 5:.1f} {y0:.1f} m {x0 + 20:.1f} {y1:.1f} "
                                       f"{x0 + 40:.1f} {y0:.1f} {x1 - 5:.1f} {y1:.1f} c S")
    parsed = parse_file(_write(tmp_path, "filled.pdf", edited), secret=SECRET)
    assert parsed.identity == identity
    assert parsed.values["township_received_on"].isoformat() == "2025-09-26"
    assert parsed.values["principal_signature"] is True
    assert parsed.values["teacher_signature"] is None
    changes = compare(spec, variant, cleaned, parsed)
    assert changes["township_received_on"].status == FILLED_IN
    assert changes["principal_signature"].status == FILLED_IN
    assert changes["student_name"].status == UNCHANGED
