"""forms/geometry.py: the geometry recorded at render time puts every field's value box where the
form prints it (found with pdfplumber's table finder on the drawn cell borders), with label boxes,
table outlines and the QR box, per page and part, JSON-serialisable for the scan pipeline."""

from __future__ import annotations

import json

import pdfplumber
import pytest

from forms import layout as L
from forms import tools
from forms.geometry import PT_PER_MM, qr_box, record_geometry
from parsers.compare import printed_fields
from tests._render_helpers import pdf_samples, sample_by_label

pytestmark = pytest.mark.skipif(not tools.probe("soffice").installed, reason="LibreOffice not installed")


def _inside(inner, outer, tol=1.0) -> bool:
    return (inner[0] >= outer[0] - tol and inner[1] >= outer[1] - tol and inner[2] <= outer[2] + tol
            and inner[3] <= outer[3] + tol)


def _all_fields(geo) -> dict[str, tuple[int, dict]]:
    out = {}
    for page in geo["pages"]:
        for path, rec in page["fields"].items():
            out.setdefault(path, (page["page"], rec))
    return out


@pytest.fixture(scope="module")
def report():
    s = sample_by_label("dropout_report")
    pdf = pdf_samples()["dropout_report"]
    return s, pdf, record_geometry(pdf, s.spec, s.variant)


def test_record_is_json_and_describes_every_page(report):
    s, pdf, geo = report
    assert json.loads(json.dumps(geo)) == geo
    assert geo["form"] == "dropout_report" and geo["variant"] is None
    assert geo["template"] == "dropout_report.docx"
    with pdfplumber.open(__import__("io").BytesIO(pdf)) as doc:
        assert len(geo["pages"]) == len(doc.pages)
        for page, entry in zip(doc.pages, geo["pages"], strict=True):
            assert entry["size"] == [round(float(page.width), 2), round(float(page.height), 2)]
            assert entry["part"] == "main"
            assert entry["tables"] and _inside(entry["outline"], [0, 0, *entry["size"]])
            for t in entry["tables"]:
                assert _inside(t, entry["outline"])
            assert entry["qr"] == qr_box(float(page.width))
            # the QR square sits in the top-right corner and no table reaches it
            x0, top, x1, bottom = entry["qr"]
            assert abs(entry["size"][0] - x1 - L.QR_RIGHT_MM * PT_PER_MM) < 0.1
            assert abs(top - L.QR_TOP_MM * PT_PER_MM) < 0.1 and abs(x1 - x0 - L.QR_SIZE_MM * PT_PER_MM) < 0.1
            assert all(t[1] > bottom for t in entry["tables"])


def test_every_field_of_the_report_has_a_plausible_box(report):
    s, _pdf, geo = report
    found = _all_fields(geo)
    part = s.spec.parts(None)[0]
    grid_fields = [c.field for b in part.blocks if isinstance(b, L.Grid) for r in b.rows for c in r
                   if isinstance(c, L.Value)]
    for name in grid_fields:
        assert name in found, f"{name} has no box"
        page_no, rec = found[name]
        page = geo["pages"][page_no - 1]
        box = rec["bbox"]
        assert rec["kind"] == "cell"
        assert box[2] - box[0] > 15 and box[3] - box[1] > 10, (name, box)  # at least a cell's size
        assert any(_inside(box, t) for t in page["tables"]), name
        label = page["labels"][name]
        assert label[2] <= box[0] + 1 and label[1] < box[3] and box[1] < label[3], (name, label, box)
    # the first two grids (header and student) are on page 1
    first = [c.field for b in part.blocks[:4] if isinstance(b, L.Grid) for r in b.rows for c in r
             if isinstance(c, L.Value)]
    assert all(found[n][0] == 1 for n in first)
    # cell widths follow the layout: a one-column value cell is 30 mm, the school name spans 3 columns
    width = lambda n: (found[n][1]["bbox"][2] - found[n][1]["bbox"][0]) / PT_PER_MM  # noqa: E731
    assert abs(width("student_name") - 30) < 1.5
    assert abs(width("school_name") - (30 + 22 + 30)) < 1.5
    # signature and seal zones are value cells of at least their minimum height
    seal = found["school_seal"][1]["bbox"]
    assert (seal[3] - seal[1]) / PT_PER_MM >= 28 - 0.5
    sig = found["principal_signature"][1]["bbox"]
    assert (sig[3] - sig[1]) / PT_PER_MM >= 12 - 0.5


def test_table_rows_have_one_box_per_cell(report):
    s, _pdf, geo = report
    found = _all_fields(geo)
    n = len(s.cleaned["attempts"])
    cols = [c.name for c in s.spec.field("attempts").columns]
    tops = []
    for i in range(n):
        boxes = [found[f"attempts[{i}].{c}"][1]["bbox"] for c in cols]
        assert all(abs(b[1] - boxes[0][1]) < 1 for b in boxes)  # same row
        assert [b[0] for b in boxes] == sorted(b[0] for b in boxes)  # columns left to right
        tops.append((found[f"attempts[{i}].date"][0], boxes[0][1]))
    assert tops == sorted(tops)  # rows in order, possibly continued on the next page
    for page_no in {p for p, _top in tops}:
        assert set(geo["pages"][page_no - 1]["labels"]) >= {f"attempts[].{c}" for c in cols}


def test_notice_geometry_follows_the_parts_and_the_prose():
    s = sample_by_label("guardian_notice-zeling")
    geo = record_geometry(pdf_samples()[s.label], s.spec, s.variant)
    parts = [p["part"] for p in geo["pages"]]
    assert parts[0] == "stub" and parts[-1] == "receipt" and "original" in parts
    original = [p for p in geo["pages"] if p["part"] == "original"]
    first = original[0]
    # prose placeholders: boxes of the printed text on the 正本's first page
    for name in ("guardian_name", "student_name", "absent_since", "persuasion_count", "doc_number"):
        rec = first["fields"][name]
        assert rec["kind"] in ("text", "cell")
    assert first["fields"]["guardian_name"]["kind"] == "text"
    gx0, gtop, gx1, gbottom = first["fields"]["guardian_name"]["bbox"]
    assert gtop < min(t[1] for t in first["tables"])  # the addressee line is above the first table
    # the countersignature zone exists only on the 责令 notice, and it is a cell on the 正本
    seal_pages = [p for p in original if "countersign_seal" in p["fields"]]
    assert seal_pages and seal_pages[0]["fields"]["countersign_seal"]["kind"] == "cell"
    # every printed field of every part has a box somewhere
    found = _all_fields(geo)
    for name, columns in printed_fields(s.spec, s.variant).items():
        if columns is None:
            assert name in found, name
        else:
            assert any(p.startswith(name + "[") for p in found), name


def test_long_tables_continue_over_pages_with_their_header():
    s = sample_by_label("handover-45")
    geo = record_geometry(pdf_samples()[s.label], s.spec, s.variant)
    assert len(geo["pages"]) > 2
    assert all(p["size"][0] > p["size"][1] for p in geo["pages"])  # landscape
    found = _all_fields(geo)
    rows = len(s.cleaned["pupils"])
    assert f"pupils[{rows - 1}].name" in found and f"pupils[{rows}].name" not in found
    pages_with_rows = sorted({found[f"pupils[{i}].name"][0] for i in range(rows)})
    assert len(pages_with_rows) >= 2
    for page_no in pages_with_rows:
        assert "pupils[].name" in geo["pages"][page_no - 1]["labels"]  # the repeated header row


def test_alignment_reads_the_record():
    from parsers.align import TemplatePage

    s = sample_by_label("responsibility-R-HO")
    geo = record_geometry(pdf_samples()[s.label], s.spec, s.variant)
    for page in geo["pages"]:
        tp = TemplatePage.from_mapping(page)
        assert (tp.width_pt, tp.height_pt) == tuple(page["size"])
        assert tp.qr == tuple(page["qr"]) and len(tp.tables) == len(page["tables"])
