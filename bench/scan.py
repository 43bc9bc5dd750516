"""Scan pipeline benchmark (issue 3, item 9): accuracy and speed on a labelled set built here.

Builds its own labelled set with the real renderer (``tests/samples/scans/make_scans.py`` helpers:
docxtpl + LibreOffice + QR stamp + geometry, pdftoppm, AR PL UKai handwriting, ticks, scribbled
signatures, red seals over text), degrades every page (flatbed 300 dpi with ±3° skew, 200 dpi,
150 dpi black-and-white fax, JPEG q=50, phone photo, upside-down, and a mixed stack of several
documents in one shuffled TIFF) and prints, per degradation and field kind: identification rate,
field exact-match, tick accuracy, signature/seal presence accuracy, share sent to review, wrong
values NOT sent to review, s/page median, peak memory; and full-page RapidOCR / Tesseract times on
the same pages as baselines.

    .venv/bin/python -m bench.scan [--quick] [--no-baseline]
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import random
import resource
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cases.store.models import from_json  # noqa: E402
from forms import spec as spec_mod  # noqa: E402
from forms.registry import get_spec  # noqa: E402
from parsers import align as align_mod  # noqa: E402
from parsers import scan  # noqa: E402
from parsers.images import PageImage, load_pages  # noqa: E402
from parsers.ocr import get_engine  # noqa: E402
from parsers.scan import readings  # noqa: E402
from tests.samples.scans import make_scans as mk  # noqa: E402

SECRET = mk.SECRET
PLACES = ["城关镇东关村三组18号", "后河镇南村五组3号", "太公镇北街21号", "安都乡西头村7号"]
REASONS = ["监护人拒绝签收", "家中无人，邻居拒收", "拒绝在回证上签字"]
WITNESSES = [("刘德明", "东关村委会"), ("陈卫东", "南村村委会"), ("马桂英", "北街社区")]


def _date_text(d: dt.date, style: int) -> str:
    return [f"{d.year}年{d.month}月{d.day}日", f"{d.year}.{d.month}.{d.day}", f"{d:%Y%m%d}"][style % 3]


def build_documents(quick: bool, no_reference: bool = False) -> list[dict]:
    """Issue the documents and write on their pages: [{doc, pdf, geo, ctx, pages: [(no, px200, truth)]}]."""
    rng = random.Random(7)
    docs = []
    specs = [("guardian_notice", "xianqi", "BENCHNOTICE1"), ("guardian_notice", "zeling", "BENCHNOTICE2")]
    if not quick:
        specs += [("responsibility", "R-CT", "BENCHRESP001"), ("dropout_report", None, "BENCHREPORT1"),
                  ("referral_letter", "xiecha", "BENCHREFER01"), ("handover", None, "BENCHHANDOV1")]
    for form, variant, doc_id in specs:
        overrides = mk.NOTICE_DATA_OVERRIDES if form == "guardian_notice" else {}
        pdf, geo, issued_json = mk.issue(form, variant, doc_id=doc_id, overrides=overrides)
        spec = get_spec(form)
        issued = from_json(spec, issued_json)
        ticks = scan.tick_boxes_from_pdf(pdf, geo)
        issued_on = issued.get("issue_date") or dt.date(2025, 9, 26)
        ctx = scan.ReadContext(spec, spec.variant(variant), geo, issued, ticks,
                               people=tuple(v for k, v in issued.items() if k.endswith("_name") and isinstance(v, str)),
                               issued_on=issued_on, today=dt.date.today(),
                               reference=None if no_reference else scan.ReferencePages(pdf))
        pages, fill_at, arrived, in_boxes = [], {}, [0, 0], []
        for no, pg in enumerate(geo["pages"], 1):
            paths = set(pg["fields"])
            hand, tick, sigs, seals = {}, {}, [], []
            if "service_method" in paths:
                served = issued_on + dt.timedelta(days=rng.randint(1, 6))
                left = rng.random() < 0.4
                hand["service_place"] = rng.choice(PLACES)
                hand["service_time"] = f"{served.year}年{served.month}月{served.day}日{rng.randint(8, 17)}时"
                tick["service_method"] = [1 if left else 0]
                sigs += ["server_signature_1"]
                if left:
                    w = rng.choice(WITNESSES)
                    hand.update(refusal_reason=rng.choice(REASONS), witness_name=w[0], witness_unit=w[1])
                    sigs.append("witness_signature")
                else:
                    hand["recipient_signed_on"] = _date_text(served, rng.randint(0, 2))
                    sigs.append("recipient_signature")
            for p in paths:
                f = spec.field(p) if "[" not in p else None
                if f is None or p in sigs:
                    continue
                if f.kind.value == "seal" and rng.random() < 0.8:
                    seals.append(p)
                elif f.kind.value == "signature" and "service_method" not in paths and rng.random() < 0.7:
                    sigs.append(p)
            if form != "guardian_notice":
                _write_receipts(spec, issued, sorted(paths, key=_row_order), issued_on, rng, hand, tick, arrived)
            if "stub_service_date" in paths:
                hand["stub_service_date"] = _date_text(issued_on + dt.timedelta(days=2), rng.randint(0, 2))
                tick["stub_service_method"] = [0]
            # Dates and phone numbers with printed character boxes are written one digit per box.
            boxed = {p: _box_digits(spec.field(p), hand[p], rng) for p in hand
                     if "[" not in p and spec.field(p).hand_boxes
                     and len(ticks.get(no, {}).get(p, [])) == spec.field(p).boxes}
            free = {p: t for p, t in hand.items() if p not in boxed}
            in_boxes += [spec.field(p).kind.value for p in boxed]

            def write(dpi, no=no, pg=pg, free=free, boxed=boxed, tick=tick, sigs=sigs, seals=seals, pdf=pdf,
                      ticks=ticks):
                return mk.fill(mk.rasterise(pdf, no, dpi), pg, dpi, hand=free, boxed=boxed, ticks=tick,
                               tick_boxes=ticks.get(no, {}), signatures=sigs, seals=seals, seed=no)

            px = write(200)
            fill_at[no] = write
            truth = _truth(spec, pg, issued, hand, tick, sigs, seals, ctx)
            pages.append((no, px, truth))
        docs.append({"doc_id": doc_id, "pdf": pdf, "geo": geo, "ctx": ctx, "pages": pages, "fill_at": fill_at,
                     "in_boxes": in_boxes})
    return docs


def _box_digits(f, text: str, rng: random.Random) -> str:
    """What a person writes in ``f``'s character boxes for ``text``: a date as YYYYMMDD, a month or
    day below 10 sometimes as one digit in the second box; a phone number as it is."""
    if f.kind.value != "date":
        return text
    d = scan.parse_hand_date(text)
    month = f"{d.month:02d}" if d.month >= 10 or rng.random() < 0.6 else f" {d.month}"
    day = f"{d.day:02d}" if d.day >= 10 or rng.random() < 0.6 else f" {d.day}"
    return f"{d.year}{month}{day}"


def _row_order(path: str) -> tuple:
    m = readings.PATH_RE.match(path)  # table[i].column
    return (m.group(1), int(m.group(2)), m.group(3)) if m else (path, -1, "")


HANDLERS = ["王建军", "李春梅", "赵国强", "孙丽娟"]
REMARKS = ["随父母外出", "转外省就读", "在家未到"]


def _write_receipts(spec, issued, paths, issued_on: dt.date, rng: random.Random, hand: dict, tick: dict,
                    arrived: list[int]) -> None:
    """What the receiving side writes on a returned form: dates, names, phone numbers, counts in
    the blank HAND fields, and the 报到 ticks of a 交接表 (with a remark for most absentees); the
    table's totals count the ticks of all its pages (``arrived``: [ticked, rows] so far)."""
    for p in paths:
        try:
            f = scan.resolve_field(spec, p)[0]
        except KeyError:
            continue
        if f.filled != spec_mod.Filled.HAND or not spec_mod.is_blank(scan.issued_value(issued, p)):
            continue
        k = f.kind.value
        if f.name == "registered":
            arrived[1] += 1
            if rng.random() < 0.85:
                tick[p] = [0]
                arrived[0] += 1
            elif rng.random() < 0.7:
                hand[p.replace(".registered", ".receiver_remarks")] = rng.choice(REMARKS)
        elif k == "date" and rng.random() < 0.85:
            hand[p] = _date_text(issued_on + dt.timedelta(days=rng.randint(1, 20)), rng.randint(0, 2))
        elif k == "name" and rng.random() < 0.85:
            hand[p] = rng.choice(HANDLERS)
        elif k == "phone" and rng.random() < 0.85:
            hand[p] = f"13{rng.randint(0, 9)}{rng.randint(0, 99_999_999):08d}"
    if "arrived_count" in paths:
        hand["arrived_count"], hand["not_arrived_count"] = str(arrived[0]), str(arrived[1] - arrived[0])


def _truth(spec, pg, issued, hand, tick, sigs, seals, ctx) -> dict:
    """path -> (kind group, expected value) for every field on the page."""
    out = {}
    for path in pg["fields"]:
        try:
            f = scan.resolve_field(spec, path)[0]
        except KeyError:
            continue
        k = f.kind.value
        if k == "table":
            continue
        iv = scan.issued_value(issued, path)
        if k in ("signature", "seal"):
            out[path] = ("seal" if k == "seal" else "signature", path in seals or path in sigs)
        elif k in ("choice", "multi", "bool") and not (f.compact and k != "bool"):
            if path in tick and k == "bool":
                out[path] = ("tick", [True, False][tick[path][0]])
            elif path in tick:
                opts = [c.code for c in f.choices]
                out[path] = ("tick", opts[tick[path][0]])
            else:
                blank = [] if k == "multi" else None
                out[path] = ("tick", readings.jsonable(iv) if iv not in (None, [], "") else blank)
        elif iv not in (None, "", []):
            out[path] = ("printed", readings.jsonable(iv))
        elif path in hand:
            txt = hand[path]
            if k in ("date", "datetime"):
                v = scan.parse_hand_date(txt, with_time=k == "datetime")
                out[path] = ("hand_date", v.isoformat())
            elif k in ("phone", "int"):
                out[path] = ("hand_digits", txt if k == "phone" else int(txt))
            else:
                out[path] = ("hand_text", txt)
        else:
            out[path] = ("blank", None)
    return out


# ---- degradations -------------------------------------------------------------------------------------

def degrade(px200: np.ndarray, name: str, rng: random.Random, raster300=None) -> tuple[bytes, str]:
    if name == "flatbed300":
        p = mk.rotate(raster300(), rng.uniform(-3, 3))
        return mk.encode(p, "JPEG", 300, quality=85), "jpg"
    if name == "dpi200":
        return mk.encode(mk.rotate(px200, rng.uniform(-1, 1)), "PNG", 200), "png"
    if name == "fax150":
        p = mk.black_and_white(mk.rescale(mk.rotate(px200, rng.uniform(-1.5, 1.5)), 0.75))
        return mk.encode(p, "PNG", 150, bilevel=True), "png"
    if name == "jpeg50":
        return mk.encode(px200, "JPEG", 200, quality=50), "jpg"
    if name == "phone":
        return mk.encode(mk.photo(px200, seed=rng.randint(0, 999)), "JPEG", None, quality=70), "jpg"
    if name == "upside_down":
        return mk.encode(mk.rotate(px200, 180 + rng.uniform(-1, 1)), "PNG", 200), "png"
    raise ValueError(name)


DEGRADATIONS = ("flatbed300", "dpi200", "fax150", "jpeg50", "phone", "upside_down")


class Tally:
    def __init__(self):
        self.n = defaultdict(int)
        self.ok = defaultdict(int)
        self.review = defaultdict(int)
        self.silent_wrong = defaultdict(int)
        self.chars = [0, 0]
        self.ident = [0, 0]
        self.seconds: list[float] = []

    def add(self, group: str, ok: bool, review: bool) -> None:
        self.n[group] += 1
        self.ok[group] += ok
        self.review[group] += review
        self.silent_wrong[group] += (not ok) and not review


def _char_acc(read: str, want: str) -> tuple[int, int]:
    import difflib

    a, b = readings.norm_text(read), readings.norm_text(want)
    m = sum(x.size for x in difflib.SequenceMatcher(None, a, b).get_matching_blocks())
    return m, max(len(b), 1)


def run_page(page: PageImage, truth: dict, ctx, engine, fallback, tally: Tally, want_doc: str) -> None:
    t0 = time.perf_counter()
    ident = scan.identify_page(page, secret=SECRET, engine=engine)
    tally.ident[1] += 1
    if ident.status != "identified" or ident.doc_id != want_doc:
        tally.seconds.append(time.perf_counter() - t0)
        for group, _v in truth.values():
            tally.add(group, False, True)  # an unidentified page goes to a person
        return
    tally.ident[0] += 1
    try:
        got = scan.read_page(page, ident, ctx, engine=engine, fallback=fallback)
    except align_mod.AlignmentFailed:
        tally.seconds.append(time.perf_counter() - t0)
        for group, _v in truth.values():
            tally.add(group, False, True)
        return
    tally.seconds.append(time.perf_counter() - t0)
    for path, (group, want) in truth.items():
        r = got.readings.get(path)
        if r is None:
            tally.add(group, False, True)
            continue
        value = r.value
        if group == "printed":
            ok = r.status in ("match", "unchecked")
            if r.status != "unchecked" and r.text:  # OCR'd (ink-matched values are not read)
                m, n = _char_acc(r.text, spec_mod.format_value(scan.resolve_field(ctx.spec, path)[0],
                                                           scan.issued_value(ctx.issued, path)))
                tally.chars[0] += m
                tally.chars[1] += n
        elif group == "blank":
            ok = value in (None, "", [])
        else:
            ok = value == want
        tally.add(group, ok, r.needs_review)
        if not ok and SHOW_MISSES:
            print(f"  miss {page.label} {path} [{group}] want={want!r} got={value!r} status={r.status} "
                  f"review={r.needs_review} text={r.text!r} {r.reason}", flush=True)


SHOW_MISSES = False  # --misses: print every field read wrong (and whether it went to review)

TAMPER = {"student_name": "杰", "guardian_name": "民", "guardian_phone": "9", "doc_number": "3"}


def _forgeries(d, no: int, fields: dict) -> list[tuple[str, str, str]]:
    """(kind, path, char) forgeries for one page: the fixed one-character changes of ``TAMPER`` and,
    for every short printed value whose last character has a look-alike (国→固, 学→字 …), that."""
    out = []
    for path, char in TAMPER.items():
        if path in fields and not spec_mod.is_blank(scan.issued_value(d["ctx"].issued, path)):
            out.append(("one character", path, char))
    spec = d["ctx"].spec
    table_cells = 0
    for path in fields:
        try:
            f = scan.resolve_field(spec, path)[0]
        except KeyError:
            continue
        iv = scan.issued_value(d["ctx"].issued, path)
        if spec_mod.is_blank(iv) or f.kind in (*readings.MARK_KINDS, *readings.TICK_KINDS) or f.kind.value == "table":
            continue
        text = readings.norm_text(spec_mod.format_value(f, iv))
        if text and len(text) <= readings.MAX_PRINTED_CHECK and text[-1] in mk.LOOKALIKES:
            if "[" in path:
                if table_cells >= 3:  # a 交接表 page has dozens: three per page are enough
                    continue
                table_cells += 1
            out.append(("look-alike", path, mk.LOOKALIKES[text[-1]]))
    return out


def run_tampered(docs, degs, engine, fallback, rng: random.Random) -> dict[tuple[str, str], tuple[int, int]]:
    """One printed value changed by one character on the filled page before degrading: how many
    come back as a mismatch sent to review (all must), per degradation and kind of forgery."""
    out: dict[tuple[str, str], list[int]] = {}
    for deg in degs:
        for d in docs:
            for no, px, _truth in d["pages"]:
                fields = d["geo"]["pages"][no - 1]["fields"]
                for kind, path, char in _forgeries(d, no, fields):
                    forged = mk.tamper_last_char(px, fields[path]["bbox"], 200.0, char)

                    def raster300(forged=forged):
                        return mk.rescale(forged, 1.5)

                    data, _ext = degrade(forged, deg, rng, raster300)
                    page = load_pages(data, filename=f"{d['doc_id']}-{no}-{deg}-forged")[0]
                    ident = scan.identify_page(page, secret=SECRET, engine=engine)
                    tally = out.setdefault((deg, kind), [0, 0])
                    tally[1] += 1
                    if ident.status != "identified":
                        tally[0] += 1  # the whole page goes to a person
                        continue
                    try:
                        got = scan.read_page(page, ident, d["ctx"], engine=engine, fallback=fallback)
                    except align_mod.AlignmentFailed:
                        tally[0] += 1
                        continue
                    r = got.readings.get(path)
                    tally[0] += bool(r is not None and r.needs_review and r.status != "match")
    return {k: (v[0], v[1]) for k, v in out.items()}


def run_boxes(docs, degs, engine, fallback, rng: random.Random, n_pages: int) -> dict[str, list[int]]:
    """More handwriting in character boxes than the labelled set holds: ``n_pages`` pages per
    degradation, each with every boxed field of one of the pages that print them filled with a
    fresh date (plausible for the document) or phone number. Per degradation: [fields, exact, sent to
    review, wrong NOT sent to review, review other than the confirmation every 送达 date and phone
    number gets]."""
    targets = []
    for d in docs:
        spec = d["ctx"].spec
        ticks = d["ctx"].tick_boxes
        for no, pg in enumerate(d["geo"]["pages"], 1):
            paths = [p for p in pg["fields"] if "[" not in p and spec.field(p).hand_boxes
                     and len(ticks.get(no, {}).get(p, [])) == spec.field(p).boxes]
            if paths:
                targets.append((d, no, paths))
    rasters: dict[tuple[str, int, int], np.ndarray] = {}

    def raster(d, no, dpi):
        key = (d["doc_id"], no, dpi)
        if key not in rasters:
            rasters[key] = mk.rasterise(d["pdf"], no, dpi)
        return rasters[key]

    out: dict[str, list[int]] = {}
    for deg in degs:
        if deg == "upside_down":
            continue
        tally = out.setdefault(deg, [0, 0, 0, 0, 0])
        for i in range(n_pages):
            d, no, paths = targets[i % len(targets)]
            ctx, pg = d["ctx"], d["geo"]["pages"][no - 1]
            want, boxed = {}, {}
            for p in paths:
                f = ctx.spec.field(p)
                if f.kind.value == "date":
                    day = ctx.issued_on + dt.timedelta(days=rng.randint(1, 60))
                    want[p], boxed[p] = day.isoformat(), _box_digits(f, f"{day:%Y%m%d}", rng)
                else:
                    want[p] = boxed[p] = f"1{rng.choice('3578')}{rng.randint(0, 999_999_999):09d}"

            def fill(dpi, d=d, no=no, pg=pg, boxed=boxed, i=i, cells=ctx.tick_boxes.get(no, {})):
                return mk.fill(raster(d, no, dpi), pg, dpi, boxed=boxed, tick_boxes=cells, seed=1000 + i)

            data, _ext = degrade(fill(200), deg, rng, lambda fill=fill: fill(300))
            page = load_pages(data, filename=f"{d['doc_id']}-{no}-{deg}-boxes{i}")[0]
            ident = scan.identify_page(page, secret=SECRET, engine=engine)
            got = scan.read_page(page, ident, ctx, engine=engine, fallback=fallback).readings \
                if ident.status == "identified" else {}
            for p in paths:
                r = got.get(p)
                ok = r is not None and r.value == want[p]
                review = r is None or r.needs_review
                tally[0] += 1
                tally[1] += ok
                tally[2] += review
                tally[3] += (not ok) and not review
                tally[4] += r is None or (r.needs_review and not r.confirm)
                if not ok and SHOW_MISSES:
                    print(f"  miss boxes {page.label} {p} want={want[p]!r} got={None if r is None else r.value!r} "
                          f"review={review} {'' if r is None else r.reason}", flush=True)
    return out


def baselines(pages: list[np.ndarray]) -> dict[str, float]:
    out = {}
    for name in ("rapidocr", "tesseract"):
        eng = get_engine(name)
        times = []
        for px in pages:
            t = time.perf_counter()
            eng.recognize_page(px)
            times.append(time.perf_counter() - t)
        out[name] = statistics.median(times)
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="two notices, fewer degradations")
    ap.add_argument("--no-baseline", action="store_true", help="skip full-page OCR baselines")
    ap.add_argument("--no-reference", action="store_true",
                    help="OCR every printed value (no ink comparison with the issued PDF): the old path")
    ap.add_argument("--only", default="", help="comma-separated degradations to run (default: all)")
    ap.add_argument("--misses", action="store_true", help="print every field read wrong")
    ap.add_argument("--boxes", type=int, default=24, metavar="N",
                    help="pages per degradation of extra handwriting in character boxes (0: none)")
    ap.add_argument("--boxes-only", action="store_true", help="only the character-box run")
    args = ap.parse_args(argv)
    global SHOW_MISSES
    SHOW_MISSES = args.misses
    t_build = time.perf_counter()
    docs = build_documents(args.quick, args.no_reference)
    print(f"labelled set: {len(docs)} documents, {sum(len(d['pages']) for d in docs)} pages "
          f"(built in {time.perf_counter() - t_build:.0f} s)")
    boxed = [k for d in docs for k in d["in_boxes"]]
    print(f"written one digit per printed character box: {boxed.count('date')} handwritten dates, "
          f"{boxed.count('phone')} phone numbers (the rest of the handwriting is written freely in its cell)")
    engine, fallback = get_engine("rapidocr"), get_engine("tesseract")
    degs = DEGRADATIONS if not args.quick else ("dpi200", "fax150", "phone", "upside_down")
    if args.only:
        unknown = set(args.only.split(",")) - set(DEGRADATIONS)
        if unknown:
            ap.error(f"unknown degradation(s) {sorted(unknown)}; choose from {', '.join(DEGRADATIONS)}")
        degs = tuple(args.only.split(","))
    boxes = run_boxes(docs, degs, engine, fallback, random.Random(17), args.boxes) if args.boxes else {}
    if args.boxes_only:
        _print_boxes(boxes)
        return
    rng = random.Random(11)
    results: dict[str, Tally] = {}
    base_pages = []
    for deg in degs:
        tally = results[deg] = Tally()
        for d in docs:
            for no, px, truth in d["pages"]:
                def raster300(d=d, no=no):
                    return d["fill_at"][no](300)  # written on a 300-dpi rendering, not the 200-dpi page upscaled

                data, _ext = degrade(px, deg, rng, raster300)
                page = load_pages(data, filename=f"{d['doc_id']}-{no}-{deg}")[0]
                if deg == "dpi200" and len(base_pages) < 4:
                    base_pages.append(page.pixels)
                run_page(page, truth, d["ctx"], engine, fallback, tally, d["doc_id"])
    # A mixed stack: every page of every document, shuffled, some upside-down, in one TIFF.
    stack, truths = [], []
    for d in docs:
        for _no, px, truth in d["pages"]:
            p = mk.rotate(px, 180) if rng.random() < 0.3 else px
            stack.append(Image.fromarray(p))
            truths.append((truth, d))
    order = list(range(len(stack)))
    rng.shuffle(order)
    buf = io.BytesIO()
    imgs = [stack[i] for i in order]
    imgs[0].save(buf, format="TIFF", save_all=True, append_images=imgs[1:], compression="tiff_deflate", dpi=(200, 200))
    tally = results["mixed_stack"] = Tally()
    for page, i in zip(load_pages(buf.getvalue(), filename="stack.tiff"), order, strict=True):
        truth, d = truths[i]
        run_page(page, truth, d["ctx"], engine, fallback, tally, d["doc_id"])

    tampered = run_tampered(docs, degs, engine, fallback, random.Random(13))
    groups = ("printed", "hand_date", "hand_digits", "hand_text", "tick", "signature", "seal", "blank")
    print(f"\n{'degradation':<13}{'ident':>7}{'s/page':>8}  " + "".join(f"{g:>15}" for g in groups)
          + f"{'review%':>9}{'silent wrong':>13}{'printed chars':>14}")
    for deg, t in results.items():
        cells = []
        for g in groups:
            cells.append(f"{t.ok[g]:>5}/{t.n[g]:<4}{100 * t.ok[g] / t.n[g]:>5.1f}%" if t.n[g] else f"{'-':>15}")
        total = sum(t.n.values())
        rev = 100 * sum(t.review.values()) / max(total, 1)
        silent = sum(t.silent_wrong.values())
        chars = f"{100 * t.chars[0] / t.chars[1]:.2f}%" if t.chars[1] else "-"
        print(f"{deg:<13}{100 * t.ident[0] / max(t.ident[1], 1):>6.1f}%{statistics.median(t.seconds):>8.2f}  "
              + "".join(f"{c:>15}" for c in cells) + f"{rev:>8.1f}%{silent:>13}{chars:>14}")
    print("\nfield exact-match cells: correct/total accuracy; 'silent wrong' = wrong values NOT sent to review;\n"
          "'printed' = printed values verified as issued without a person (ink comparison, or OCR where the ink\n"
          "differs), the rest go to review (the value kept is always the issued one); 'printed chars' = character\n"
          "accuracy of OCR on the printed values that were recognised")
    for (deg, kind), (caught, n) in tampered.items():
        print(f"forged printed value, {kind} ({deg}): {caught}/{n} sent to review as a mismatch")
    _print_boxes(boxes)
    print(f"peak memory (max RSS): {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    if not args.no_baseline and base_pages:
        b = baselines(base_pages)
        ours = statistics.median(results["dpi200"].seconds)
        print(f"baselines on {len(base_pages)} of the same 200 dpi pages (median s/page): full-page RapidOCR "
              f"{b['rapidocr']:.2f}, full-page Tesseract {b['tesseract']:.2f}; pipeline {ours:.2f} "
              f"({b['rapidocr'] / ours:.1f}x faster than full-page RapidOCR)")


def _print_boxes(boxes: dict[str, list[int]]) -> None:
    for deg, (n, ok, review, silent, other) in boxes.items():
        print(f"handwriting in character boxes ({deg}): {ok}/{n} exact ({100 * ok / max(n, 1):.1f}%), "
              f"{silent} wrong NOT sent to review, {other} sent to review for more than the confirmation "
              f"every 送达 date and phone number gets ({review} in review in all)")


if __name__ == "__main__":
    main()
