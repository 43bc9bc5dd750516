"""Render benchmark: prints figures measured in one run (no asserts).

1. DOCX/s for a batch through the compiled-template fast path vs naive per-call docxtpl
   (``DocxTemplate(path).render(ctx).save()`` each time) and the ratio (target ≥ 5×);
2. PDF s/page through the warm LibreOffice converter vs one cold soffice per document (target
   ≤ 0.2 s/page);
3. total time for N 责任书 (form ``responsibility``, else the 报告单) as DOCX + PDF + QR stamp
   (target: 500 in ≤ 2 minutes on 2 cores).

Synthetic data only (``forms.validators.synthetic_id_number``). Usage::

    .venv/bin/python -m bench.render            # full run: --n 500
    .venv/bin/python -m bench.render --quick    # a smoke run of a few seconds
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from docxtpl import DocxTemplate  # noqa: E402
from jinja2 import Environment  # noqa: E402
from pypdf import PdfReader  # noqa: E402

from forms import pdf as pdf_mod  # noqa: E402
from forms import render, stamp  # noqa: E402
from forms import validators as v  # noqa: E402
from forms.errors import ValidationFailed  # noqa: E402
from forms.identity import Identity, new_doc_id  # noqa: E402
from forms.registry import all_specs  # noqa: E402
from forms.spec import Filled, FormSpec, Kind, Variant, clean_value  # noqa: E402

SECRET = "bench-secret"
SURNAMES = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗"
GIVEN = ["伟", "芳", "娜", "敏", "静", "磊", "洋", "艳", "勇", "军", "杰", "娟", "涛", "明", "超", "霞"]


def _sample_value(f, i: int):
    k = f.kind
    if k == Kind.NAME:
        return SURNAMES[i % len(SURNAMES)] + GIVEN[i % len(GIVEN)]
    if k == Kind.DATE:
        return dt.date(2024, 9, 2) + dt.timedelta(days=i % 5)
    if k == Kind.DATETIME:
        return dt.datetime(2024, 9, 3, 10, 30)
    if k == Kind.INT:
        return 3
    if k == Kind.ID_NUMBER:
        return v.synthetic_id_number("410781", dt.date(2011, 3, 15), 2 * (i % 400) + 1)
    if k == Kind.XUEJI_NO:
        return "G" + v.synthetic_id_number("410781", dt.date(2011, 3, 15), 2 * (i % 400) + 1)
    if k == Kind.PHONE:
        return f"139{i % 10**8:08d}"
    if k == Kind.CHOICE:
        return f.choices[0].code
    if k == Kind.MULTI:
        return [f.choices[0].code]
    if k == Kind.BOOL:
        return True
    if k in (Kind.SIGNATURE, Kind.SEAL):
        return None
    text = f"{f.label}{i}"
    return text[: f.max_length] if f.max_length else text


def synthetic_input(spec: FormSpec, variant: Variant | None, i: int) -> dict:
    """Valid input where the spec's checks allow it; otherwise typed values good enough to render
    (the benchmark measures rendering, not validation)."""
    helpers = None
    try:
        from tests import _render_helpers as helpers  # shared sample data, when present
    except ImportError:
        pass
    base = None
    if helpers is not None:
        try:
            base = helpers.sample_for(spec, variant)
        except (AttributeError, KeyError, ValueError):
            base = None
    if base is None:
        base = {}
        for f in spec.fields:
            if f.filled == Filled.HAND:
                continue
            if f.kind == Kind.TABLE:
                rows = range(f.min_rows or 1)
                base[f.name] = [{c.name: _sample_value(c, r) for c in f.columns} for r in rows]
            else:
                base[f.name] = _sample_value(f, 0)
    data = dict(base)
    # Vary the person per document: names and ID numbers (same sex digit, valid checksum).
    for f in spec.fields:
        value = data.get(f.name)
        if f.kind == Kind.NAME and isinstance(value, str) and value:
            data[f.name] = SURNAMES[i % len(SURNAMES)] + GIVEN[(i // 3) % len(GIVEN)]
        elif f.kind == Kind.ID_NUMBER and isinstance(value, str) and len(value) == 18:
            first17 = value[:14] + f"{(int(value[14:17]) + 2 * i) % 1000:03d}"
            new = first17 + v.id_check_char(first17)
            for g in spec.fields:
                if g.kind == Kind.XUEJI_NO and data.get(g.name) == "G" + value:
                    data[g.name] = "G" + new
            data[f.name] = new
    # Values that generic samples get wrong for some specs' cross-field checks.
    known = {"school_year": "2024—2025学年", "validity_from": "2024-09-01", "validity_to": "2025-08-31",
             "sign_date": "2024-09-01"}
    data.update({k: val for k, val in known.items() if k in {f.name for f in spec.fields}})
    for candidate in (data, base):
        try:
            return spec.validate(candidate, variant)
        except ValidationFailed:
            continue
    # Still rejected by a cross-field check: clean field by field (typed values render the same).
    errors: dict[str, str] = {}
    out = {}
    for f in spec.fields:
        try:
            out[f.name] = clean_value(f, data.get(f.name), required=False, errors=errors, path=f.name)
        except ValueError:
            out[f.name] = None
    return out


def pick_form(code: str | None) -> tuple[FormSpec, Variant | None]:
    specs = all_specs()
    code = code or ("responsibility" if "responsibility" in specs else "dropout_report")
    spec = specs[code]
    return spec, (spec.variants[0] if spec.variants else None)


def templates_for(spec: FormSpec, variant: Variant | None, scratch: Path) -> Path:
    """templates/forms when the template exists there, else a freshly built copy in ``scratch``."""
    if render.template_path(spec, variant).exists():
        return render.TEMPLATES_DIR
    from forms.build_templates import build_all

    build_all(scratch, specs=[spec])
    return scratch


def _pages(pdf: bytes) -> int:
    return len(PdfReader(io.BytesIO(pdf)).pages)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=500, help="documents in the batch and end-to-end runs")
    ap.add_argument("--naive", type=int, default=100, help="documents rendered by naive docxtpl")
    ap.add_argument("--pdf", type=int, default=40, help="documents converted for the warm PDF figure")
    ap.add_argument("--cold", type=int, default=3, help="cold soffice samples")
    ap.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1), help="warm soffice listeners")
    ap.add_argument("--form", default=None, help="form code (default: responsibility, else dropout_report)")
    ap.add_argument("--quick", action="store_true", help="small counts for a smoke run")
    ap.add_argument("--no-service", action="store_true", help="skip the API batch (service) figure")
    args = ap.parse_args(argv)
    if args.quick:
        args.n, args.naive, args.pdf, args.cold = 40, 20, 8, 1

    spec, variant = pick_form(args.form)
    scratch = Path(tempfile.mkdtemp(prefix="baoxue-bench-"))
    tdir = templates_for(spec, variant, scratch)
    path = render.template_path(spec, variant, tdir)
    print(f"form {spec.code} variant {variant.code if variant else '-'}  template {path.name}  "
          f"cores {os.cpu_count()}")
    inputs = [synthetic_input(spec, variant, i) for i in range(args.n)]
    extra = [{"doc": {"number": f"卫{spec.abbr(variant) or '文'}〔2024〕{i + 1}号", "date": "2024年9月10日"}}
             for i in range(args.n)]
    idents = [Identity(new_doc_id(), spec.code, variant.code if variant else None, spec.version)
              for _ in range(args.n)]
    items = [render.RenderItem(spec, variant, inputs[i], idents[i], extra[i]) for i in range(args.n)]

    # 1. DOCX ------------------------------------------------------------------------------
    t0 = time.perf_counter()
    render.template_cache().get(path)  # compile once (counted separately)
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    docs = render.render_many(items, templates_dir=tdir)
    fast_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    render.render_many(items, templates_dir=tdir, processes=2)
    fast2_s = time.perf_counter() - t0
    ctxs = [spec.context(inputs[i], variant, extra=extra[i]) for i in range(args.naive)]
    t0 = time.perf_counter()
    for ctx in ctxs:
        tpl = DocxTemplate(path)
        tpl.render(ctx, Environment(autoescape=True))
        tpl.save(io.BytesIO())
    naive_s = time.perf_counter() - t0
    fast_per, naive_per = fast_s / args.n, naive_s / args.naive
    print(f"DOCX fast path   : {args.n} docs in {fast_s:.2f} s = {1 / fast_per:.0f} docs/s "
          f"({fast_per * 1000:.1f} ms/doc; template compiled once in {compile_s * 1000:.0f} ms)")
    print(f"DOCX fast, 2 proc: {args.n} docs in {fast2_s:.2f} s = {args.n / fast2_s:.0f} docs/s "
          "(incl. pool start)")
    print(f"DOCX naive docxtpl: {args.naive} docs in {naive_s:.2f} s = {1 / naive_per:.1f} docs/s "
          f"({naive_per * 1000:.1f} ms/doc)")
    print(f"DOCX speed-up    : {naive_per / fast_per:.1f}x single process (target >= 5x)")

    # 2. PDF -------------------------------------------------------------------------------
    sample = docs[: args.pdf]
    for workers in sorted({1, args.workers}):
        with pdf_mod.PdfConverter(workers=workers) as conv:
            t0 = time.perf_counter()
            conv.start()
            start_s = time.perf_counter() - t0
            conv.convert_many(sample[:workers])  # first document per listener loads filters
            t0 = time.perf_counter()
            pdfs = conv.convert_many(sample)
            warm_s = time.perf_counter() - t0
        pages = sum(_pages(p) for p in pdfs)
        warm_page = warm_s / pages
        print(f"PDF warm x{workers}     : {len(sample)} docs / {pages} pages in {warm_s:.2f} s = "
              f"{warm_page:.3f} s/page, {warm_s / len(sample):.3f} s/doc "
              f"(listeners started in {start_s:.1f} s)")
    cold = []
    for d in docs[: args.cold]:
        t0 = time.perf_counter()
        out = pdf_mod.cold_convert(d)
        cold.append((time.perf_counter() - t0) / _pages(out))
    cold_page = statistics.median(cold)
    print(f"PDF cold soffice : {len(cold)} samples, median {cold_page:.2f} s/page")
    print(f"PDF speed-up     : {cold_page / warm_page:.1f}x warm x{args.workers} vs cold "
          "(target <= 0.2 s/page)")

    # 3. End to end ------------------------------------------------------------------------
    with pdf_mod.PdfConverter(workers=args.workers) as conv:
        t0 = time.perf_counter()
        conv.start()
        docs = render.render_many(items, templates_dir=tdir)
        title = spec.doc_title(variant)

        def one(i: int) -> int:
            pdf = conv.convert(docs[i])
            _, n = stamp.stamp_pdf(pdf, idents[i], SECRET, title=title)
            return n

        with ThreadPoolExecutor(args.workers) as ex:
            pages = sum(ex.map(one, range(args.n)))
        total = time.perf_counter() - t0
    print(f"End to end       : {args.n} x {spec.code} DOCX+PDF+QR ({pages} pages) in {total:.1f} s "
          f"= {total / args.n:.3f} s/doc, incl. listener start (target 500 in <= 120 s)")
    if not args.no_service:
        service_batch(args.n, args.workers, scratch)
    return 0


def service_batch(n: int, workers: int, scratch: Path) -> None:
    """The user-facing path: one API call -> a job that numbers, renders DOCX+PDF, stamps the QR,
    records field geometry, stores files content-addressed and writes the rows, then a ZIP."""
    from app import create_app
    from cases.store.models import Org

    app = create_app({"TESTING": True, "HUEY_IMMEDIATE": True, "REDIS_URL": None, "CREATE_SCHEMA": True,
                      "DATABASE_URL": f"sqlite:///{scratch / 'bench.db'}", "OUTPUT_DIR": scratch / "out",
                      "PDF_WORKERS": workers})
    session = app.extensions["baoxue"].session_factory()
    county = Org(kind="county", name="演示县", code="419901", doc_prefix="演政")
    session.add(county)
    session.flush()
    session.add_all([Org(kind="village", name=f"第{i + 1}村", parent_id=county.id) for i in range(n)])
    session.commit()
    body = {"variant": "R-CT", "parent_org_id": county.id, "issuer_id": county.id, "format": "pdf",
            "data": {"school_year": "2026—2027学年", "validity_from": "2026-09-01", "validity_to": "2027-08-31",
                     "basis": "《中华人民共和国义务教育法》", "party_a_person": "张建设", "party_a_post": "县长",
                     "party_b_person": "李卫东", "party_b_post": "主任", "sign_date": "2026-09-01"}}
    client = app.test_client()
    t0 = time.perf_counter()
    r = client.post("/api/v1/batches/responsibility", json=body)
    job = client.get(f"/api/v1/jobs/{r.get_json()['id']}").get_json()
    total = time.perf_counter() - t0
    print(f"Service batch    : {job['done']}/{job['total']} x responsibility R-CT through the API job "
          f"(numbering, DOCX, PDF, QR, geometry, storage, ZIP; {workers} listeners) in {total:.1f} s "
          f"= {total / max(n, 1):.3f} s/doc (status {job['status']}; target 500 in <= 120 s)")


if __name__ == "__main__":
    raise SystemExit(main())
