"""Dossier benchmark: prints figures measured in one run (no asserts).

A case of the demo county walked through the engine to NOTICED (tests/dossier_case.py) gets 20
issued documents in all (报告单, notices; real LibreOffice rendering) and 40 scanned returned pages
(each of 20 documents returned as two scans: page 1 a 200 dpi JPEG, page 2 a 200 dpi PNG). Then:

* seconds per dossier (median of ``--runs``) as served by ``GET /cases/<id>/dossier.pdf`` (target
  ≤ 3 s), and once more with the PDF/A validator run on the written bytes;
* the process's memory peak (ru_maxrss) and the Python allocation peak of one build (tracemalloc);
* pages, originals and the file size.

Usage::

    .venv/bin/python -m bench.dossier            # --runs 5
    .venv/bin/python -m bench.dossier --quick    # 4 documents, 8 scans, 2 runs
    .venv/bin/python -m bench.dossier --profile /tmp/dossier.prof   # and a cProfile of one build
"""

from __future__ import annotations

import argparse
import io
import resource
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--profile", metavar="FILE", help="also write a cProfile of one build to FILE")
    args = parser.parse_args(argv)
    docs_wanted, runs = (4, 2) if args.quick else (20, args.runs)

    from PIL import Image

    from app import create_app
    from cases.demo import load_demo
    from cases.documents import issuing
    from cases.dossier.build import build_dossier
    from cases.store.models import Document
    from tests.dossier_case import NOTICE_DATA, attach_return, issue, noticed_case, scan_of

    tmp = Path(tempfile.mkdtemp(prefix="bench-dossier-"))
    app = create_app({"TESTING": True, "HUEY_IMMEDIATE": True, "REDIS_URL": None,
                      "DATABASE_URL": f"sqlite:///{tmp / 'bench.db'}", "OUTPUT_DIR": tmp / "output",
                      "CREATE_SCHEMA": True, "QR_HMAC_SECRET": "bench-secret-bench-secret-bench-secret",
                      "SECRET_KEY": "bench", "PDF_WORKERS": 1})
    services = app.extensions["baoxue"]
    s = services.session_factory()
    load_demo(s)
    s.commit()
    t0 = time.perf_counter()
    case = noticed_case(s, services, with_scan=False)
    variants = ("xianqi", "quanfan", "dunfan")
    while s.query(Document).filter(Document.case_id == case.id).count() < docs_wanted:
        n = s.query(Document).filter(Document.case_id == case.id).count()
        issue(s, services, case, "guardian_notice", variants[n % 3], NOTICE_DATA)
    docs = s.query(Document).filter(Document.case_id == case.id).all()
    scans = 0
    for doc in docs:
        pdf = issuing.document_file(services, doc, "pdf")
        png1 = scan_of(pdf, 1, dpi=200)
        jpg = io.BytesIO()
        Image.open(io.BytesIO(png1)).convert("RGB").save(jpg, "JPEG", quality=75)
        attach_return(s, services, doc, jpg.getvalue(), f"{doc.id}-1.jpg")
        attach_return(s, services, doc, scan_of(pdf, min(2, doc.pages or 1), dpi=200), f"{doc.id}-2.png")
        scans += 2
    s.commit()
    setup = time.perf_counter() - t0

    times = []
    for _ in range(runs):
        t = time.perf_counter()
        d = build_dossier(s, services, case)
        times.append(time.perf_counter() - t)
    tracemalloc.start()
    t = time.perf_counter()
    build_dossier(s, services, case)
    traced = time.perf_counter() - t
    _cur, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    t = time.perf_counter()
    checked = build_dossier(s, services, case, validate=True)
    validated = time.perf_counter() - t
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if args.profile:
        import cProfile

        cProfile.runctx("build_dossier(s, services, case)", globals(), locals(), args.profile)
    print(f"case {case.number}: {len(docs)} issued documents, {scans} scanned pages "
          f"(setup incl. LibreOffice rendering {setup:.1f} s)")
    print(f"dossier: {d.manifest['pages']} pages, {len(d.manifest['files'])} originals, "
          f"{len(d.pdf) / 1e6:.1f} MB, PDF/A-{d.manifest['pdfa']}")
    print(f"seconds per dossier: median {statistics.median(times):.2f} s, min {min(times):.2f} s, "
          f"max {max(times):.2f} s over {runs} runs (target <= 3 s)")
    print(f"with the PDF/A validator on the written file: {validated:.2f} s "
          f"({len(checked.pdf) / 1e6:.1f} MB)")
    print(f"memory: process peak RSS {rss:.0f} MiB; Python allocations peak in one build {peak / 2**20:.0f} MiB "
          f"(that build {traced:.2f} s under tracemalloc)")
    s.close()
    app.extensions["baoxue_engine"].dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
