"""Scans and photos behind the one parser protocol (``parsers.base.Parser``): PNG, JPEG, TIFF
(multi-page) and image-only PDFs, a stack of pages of several documents in any order and
rotation. Each page is identified, its document looked up through the caller's ``lookup`` and
read against that document's issued pages; slow (OCR), so it runs as a background job."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Collection, Iterator
from pathlib import Path

from forms.errors import BaoxueError, MissingTool, NotFound, UnknownDocument, UnreadableDocument
from forms.identity import QrKeys
from forms.spec import Kind
from parsers.align import AlignmentFailed
from parsers.base import Issued, Lookup, PageRead, ReadOptions, pdf_kind, sniff
from parsers.images import PageImage, load_pages
from parsers.scan.boxes import tick_boxes_from_pdf
from parsers.scan.identify import PageIdentity, identify_page
from parsers.scan.ink import ReferencePages
from parsers.scan.read import png_bytes, read_page
from parsers.scan.readings import ReadContext
from parsers.scan.split import split_all

log = logging.getLogger(__name__)

IMAGE_KINDS = ("png", "jpeg", "tiff")


def engines(options: ReadOptions):
    """(primary, fallback) OCR engines: the ones in ``options``, else RapidOCR with Tesseract as
    the fallback (none when Tesseract is not installed, or ``use_default_fallback`` is off)."""
    from parsers.ocr import get_engine

    engine = options.engine or get_engine("rapidocr")
    if options.fallback is not None or not options.use_default_fallback:
        return engine, options.fallback
    try:
        return engine, get_engine("tesseract")
    except MissingTool as e:
        log.warning("no fallback OCR engine: %s", e.message)
        return engine, None


class _IssuedPdfCache:
    """What an issued PDF gives every reading of its pages — the printed tick and character boxes and
    the reference rendering — kept for the last ``size`` PDFs, keyed by the PDF's and the geometry's
    digests (a document's pages come back in separate uploads, each its own job: extracting the
    boxes and rendering a reference page again for each cost ~0.1-0.2 s a page). Thread-safe."""

    def __init__(self, size: int = 8):
        self.size = size
        self._items: OrderedDict[tuple[str, str], tuple[dict, ReferencePages]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, pdf: bytes, geometry) -> tuple[dict, ReferencePages]:
        key = (hashlib.sha256(pdf).hexdigest(),
               hashlib.sha256(json.dumps(geometry, sort_keys=True, default=str).encode()).hexdigest())
        with self._lock:
            hit = self._items.get(key)
            if hit is not None:
                self._items.move_to_end(key)
                return hit
        got = (tick_boxes_from_pdf(pdf, geometry), ReferencePages(pdf))
        with self._lock:
            got = self._items.setdefault(key, got)
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return got

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


ISSUED_PDFS = _IssuedPdfCache()


def read_context(issued: Issued, options: ReadOptions) -> ReadContext:
    """What reading pages of ``issued`` needs: its printed geometry, the tick and character boxes
    and the reference rendering of its issued PDF (from ``ISSUED_PDFS``), the names a handwritten
    name may be."""
    if not issued.geometry or issued.pdf is None:
        raise NotFound(f"文书 {issued.number or issued.doc_id} 没有打印版面记录（未生成 PDF），无法读取扫描件")
    pdf = issued.pdf()
    tick_boxes, reference = ISSUED_PDFS.get(pdf, issued.geometry)
    spec = issued.spec
    people = list(issued.people)
    for name, value in issued.values.items():
        try:
            f = spec.field(name)
        except KeyError:
            continue
        if isinstance(value, str) and name.endswith("_name") and f.kind == Kind.NAME:
            people.append(value)
    return ReadContext(spec, issued.variant, issued.geometry, issued.values, tick_boxes,
                       people=tuple(dict.fromkeys(p for p in people if p)), issued_on=issued.issued_on,
                       today=options.today or dt.date.today(), threshold=options.threshold,
                       # rendered lazily, once per page, kept with the PDF for later uploads
                       reference=reference)


def warm_up(options: ReadOptions | None = None) -> dict[str, float]:
    """Load once what reading a scan loads on first use, and return the seconds each took: the OCR
    engines ``engines(options)`` gives (models and one recognition, which sizes ONNX Runtime's
    buffers), the pinyin tables handwritten names are matched with, the handwritten-digit
    references and the QR decoder. A worker calls it at start (``cases.returns.intake``)."""
    import time

    import cv2
    import numpy as np

    from parsers.qr import find_codes
    from parsers.scan import digits
    from parsers.scan.handwriting import match_name

    took: dict[str, float] = {}
    t0 = time.perf_counter()
    engine, fallback = engines(options or ReadOptions())
    took["engines"] = time.perf_counter() - t0
    line = np.full((40, 160, 3), 255, np.uint8)
    cv2.putText(line, "2026", (8, 32), cv2.FONT_HERSHEY_SIMPLEX, 1.1, (0, 0, 0), 2)
    for e in (engine, fallback):
        if e is not None:
            t0 = time.perf_counter()
            e.recognize_lines([line])
            took[f"ocr {e.name}"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    match_name("张三", ("李四",))  # imports pypinyin and loads its tables
    took["pinyin"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    digits.available()
    took["digits"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    find_codes(PageImage(np.full((200, 200, 3), 255, np.uint8), 200.0, "warm-up", 0))
    took["qr"] = time.perf_counter() - t0
    return {k: round(v, 3) for k, v in took.items()}


class ScanParser:
    """Scans and photos (module docstring)."""

    name = "scan"
    background = True

    @classmethod
    def score(cls, path: Path, mime: str | None) -> int | None:
        kind = sniff(Path(path))
        if kind in IMAGE_KINDS:
            return 100
        if kind == "pdf" and pdf_kind(path) == "scanned":
            return 100
        return None

    @staticmethod
    def warm_up(options: ReadOptions | None = None) -> dict[str, float]:
        """``warm_up`` (module function): what reading loads on first use, loaded now."""
        return warm_up(options)

    def read(self, path: Path, *, secret: QrKeys | str, lookup: Lookup, options: ReadOptions,
             skip: Collection[int] = ()) -> Iterator[PageRead]:
        """Every page not in ``skip``, identified and read (``parsers.base.Parser``). A file that
        cannot be loaded raises the loader's error (damaged, too large...)."""
        # several pages photographed in one image are cut apart: each is its own page
        pages = split_all(load_pages(Path(path)))
        engine, fallback = engines(options)
        contexts: dict[str, ReadContext] = {}
        for page in pages:
            if page.index in skip:
                continue
            try:
                identity = identify_page(page, secret=secret, engine=engine)
                unit = self._read(page, identity, lookup=lookup, options=options, engine=engine, fallback=fallback,
                                  contexts=contexts, total=len(pages))
            except BaoxueError as e:
                # A tool that failed on this page (tried again where it timed out): the page is
                # recorded as failed with the reason, the other pages are still read.
                log.warning("%s page %d failed: %s", Path(path).name, page.index, e.message)
                unit = PageRead(index=page.index, status="failed", input_kind="scan", total=len(pages),
                                reason=f"读取失败：{e.message}"[:2000])
            yield unit

    def read_assigned(self, path: Path, index: int, *, doc_id: str, page_no: int, lookup: Lookup,
                      options: ReadOptions) -> PageRead:
        """Page ``index`` of the file read as page ``page_no`` of document ``doc_id``, as a person
        said (the page could not be identified); upright as scanned unless its QR code says
        otherwise."""
        from parsers.qr import find_codes

        pages = split_all(load_pages(Path(path)))
        page = pages[index]
        issued = lookup(doc_id=doc_id)
        hits = find_codes(page)
        identity = PageIdentity(page.index, "identified", issued.doc_id, issued.spec.code,
                                issued.variant.code if issued.variant else None, int(page_no), issued.pages,
                                "manual", rotation=hits[0].rotation if hits else 0)
        engine, fallback = engines(options)
        return self._read(page, identity, lookup=lookup, options=options, engine=engine, fallback=fallback,
                          contexts={}, total=len(pages))

    def _read(self, page: PageImage, identity: PageIdentity, *, lookup: Lookup, options: ReadOptions, engine,
              fallback, contexts: dict, total: int) -> PageRead:
        def unit(status: str, **kw) -> PageRead:
            return PageRead(index=page.index, status=status, input_kind="scan", method=identity.method,
                            rotation=identity.rotation, total=total, **kw)

        if identity.status != "identified":
            return unit(identity.status, reason=identity.reason)
        try:
            if identity.doc_id:
                issued = lookup(doc_id=identity.doc_id, form=identity.form, variant=identity.variant)
            else:
                issued = lookup(doc_number=identity.doc_number)
        except UnknownDocument as e:
            if identity.method == "ocr_doc_id":
                # read off the print, not a verified code: a misread character is likelier than a stranger
                return unit("unidentified", reason=(
                    f"二维码不可读，印刷的文书标识读作 {identity.doc_id}，系统中没有这份文书（可能有字符读错），"
                    "请人工指定"))
            return unit("unidentified", reason=e.message)
        if identity.pages and issued.pages and identity.pages != issued.pages:
            return unit("unidentified", reason=(
                f"页脚读作共{identity.pages}页，文书 {issued.number or issued.doc_id} 共{issued.pages}页：识别有误，"
                "请人工指定"))
        if not identity.page_no:
            return unit("unidentified", doc_id=issued.doc_id,
                        reason=f"识别出文号“{issued.number or issued.doc_id}”，但不知道是第几页，请人工指定")
        try:
            ctx = contexts.get(issued.doc_id)
            if ctx is None:
                ctx = contexts[issued.doc_id] = read_context(issued, options)
            reading = read_page(page, identity, ctx, engine=engine, fallback=fallback)
        except (AlignmentFailed, NotFound, UnreadableDocument) as e:
            # this page cannot be read against its document; the others can
            return unit("failed", doc_id=issued.doc_id, page_no=identity.page_no, reason=e.message)
        crops = {p: png_bytes(reading.crops[p]) for p, r in reading.readings.items()
                 if r.needs_review and p in reading.crops}
        return unit("read", doc_id=issued.doc_id, page_no=identity.page_no, reason=identity.reason,
                    fields=dict(reading.readings), crops=crops, align_method=reading.align_method,
                    seconds=round(reading.seconds, 3))
