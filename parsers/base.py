"""Reading returned forms: result types, the parser Protocol, and what every parser shares.

Shape after Paperless-ngx (``src/paperless/parsers/__init__.py``, ``parsers/registry.py``): each
input kind has one parser class with ``score(path, mime) -> int | None`` (None: not mine; highest
wins) and ``parse(path, *, secret) -> ParsedForm``; ``parsers.registry.parse_file`` picks one.
Parsers never read global settings (the QR secret is an argument) and never touch the database.

A parser (1) identifies the document — QR payloads (verified with the HMAC secret), else the
identity in DOCX custom properties / PDF metadata, else the form's printed title and labels plus
the printed document number (then ``identity`` is None and the caller looks the number up);
(2) locates every field through the spec's layout (``forms.geometry.locate_part``) and
(3) reads each value through the spec (``read_value`` -> ``clean_value``; a value that fails is
kept as raw text with an error, never dropped).

**Digital or scanned?** — the one rule (``pdf_kind``): a PDF is *digital* when every page has a
text layer (at least ``MIN_PAGE_CHARS`` characters) and no page is covered by an image (a scan
with an OCR text layer is still a scan); otherwise it is *scanned* and belongs to the scan
pipeline. A digital PDF that carries none of our labels is simply not one of our forms.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from forms import layout as L
from forms.errors import UnsupportedInput
from forms.geometry import Located, PartLocation, norm, unwrap
from forms.identity import Identity, QrKeys
from forms.pdfium_lock import with_pdfium_lock
from forms.registry import all_specs
from forms.spec import Field, Filled, FormSpec, Kind, Variant, clean_value, is_blank, read_value

log = logging.getLogger(__name__)

DOCX_MIME = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
PDF_MIME = "application/pdf"
CONFIDENCE_OK = 1.0
CONFIDENCE_INVALID = 0.4
CONFIDENCE_MASKED = 0.9  # a masked ID read exactly, but only comparable, not checkable
MIN_PAGE_CHARS = 20
IMAGE_COVER = 0.6  # an image covering this share of a page makes it a scanned page
NOT_OURS = "不是本系统的文书"


BBox = tuple[float, float, float, float]


def jsonable(value: Any) -> Any:
    """Dates as ISO strings, recursively (values as stored, shown and compared across kinds)."""
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


# A cell of a table field: ``attempts[0].date``.
CELL_PATH_RE = re.compile(r"^([a-z_][a-z0-9_]*)\[(\d+)\]\.([a-z_][a-z0-9_]*)$")


def resolve_field(spec: FormSpec, path: str) -> tuple[Field, str, int | None, str | None]:
    """(field, top-level name, row, column) for ``name`` or ``table[i].column``; KeyError when the
    spec has no such field."""
    m = CELL_PATH_RE.match(path)
    if m:
        table = spec.field(m.group(1))
        return table.column(m.group(3)), m.group(1), int(m.group(2)), m.group(3)
    return spec.field(path), path, None, None


def issued_value(issued: Mapping[str, Any], path: str) -> Any:
    """The issued snapshot's value at ``path`` (None for a blank printed row)."""
    m = CELL_PATH_RE.match(path)
    if not m:
        return issued.get(path)
    rows = issued.get(m.group(1)) or []
    i = int(m.group(2))
    return rows[i].get(m.group(3)) if i < len(rows) and isinstance(rows[i], Mapping) else None


@dataclass(frozen=True)
class FieldReading:
    """One field as read from a returned file, whatever its kind (DOCX, digital PDF, scan, photo).

    ``kind``: the field's kind (``Kind`` value). ``origin``: how the value came onto the returned
    copy: "printed" (issued by us; compared with the issued value), "hand" (filled in by hand or
    typed), "tick" (a tick box) or "mark" (signature, seal, fingerprint: presence only).
    ``status``: match | mismatch | unchecked | read | blank | invalid | ambiguous | low.
    ``value``: the proposed value, JSON-safe once assessed (dates as ISO strings, marks as
    booleans); a printed value that differs from the issued one keeps the issued value (``text``
    shows what the file says: a printed value is never replaced by what was read).
    ``needs_review``: a person must decide (low confidence, invalid, ambiguous, changed print, or
    ``confirm``: confirmed by a person even when confident, DOMAIN §5.6 3(b)).
    Where it was read: ``page_no`` and ``bbox_pt`` (PDF points; ``bbox_px`` on a scan image) and
    ``source`` for what a page box does not say (a DOCX cell: part, table, row, column).
    """

    path: str
    kind: str
    origin: str
    status: str
    value: Any
    text: str
    confidence: float
    needs_review: bool
    reason: str = ""
    page_no: int = 0
    bbox_pt: BBox = (0.0, 0.0, 0.0, 0.0)
    bbox_px: tuple[int, int, int, int] = (0, 0, 0, 0)
    issued: Any = None
    confirm: bool = False
    source: Mapping[str, Any] = field(default_factory=dict)

    @property
    def region(self) -> dict:
        """Where the value was read, as one mapping (kind of file, page, boxes, DOCX cell)."""
        out = dict(self.source)
        if self.page_no:
            out.update(page=self.page_no, bbox_pt=[round(x, 2) for x in self.bbox_pt])
        if any(self.bbox_px):
            out["bbox_px"] = list(self.bbox_px)
        return out

    def to_json(self) -> dict:
        return {"path": self.path, "kind": self.kind, "origin": self.origin, "status": self.status,
                "value": jsonable(self.value), "text": self.text, "confidence": round(float(self.confidence), 4),
                "needs_review": self.needs_review, "reason": self.reason, "page": self.page_no,
                "bbox_pt": [round(x, 2) for x in self.bbox_pt], "bbox_px": list(self.bbox_px),
                "issued": jsonable(self.issued), "confirm": self.confirm, "source": jsonable(dict(self.source))}


@dataclass(frozen=True)
class ParsedForm:
    """What a returned DOCX or digital PDF says, before it is compared with what was issued.
    ``values`` holds the cleaned value of every field printed on the form (as
    ``spec.validate(..., stage="returned")`` gives them; raw text for a value that failed, see
    ``errors``); a field the layout does not print is absent. Masked ID numbers stay masked.
    ``method``: how the document was identified: "qr" (verified code), "metadata" (unverified
    document properties) or "title" (printed title and labels; ``identity`` None, the caller
    looks ``doc_number`` up)."""

    identity: Identity | None
    doc_number: str | None
    form: str | None
    variant: str | None
    fields: dict[str, FieldReading]
    values: dict
    errors: dict[str, str]
    warnings: list[str]
    input_kind: str  # docx | pdf
    method: str = ""
    conflicts: dict[str, FieldReading] = field(default_factory=dict)


@dataclass(frozen=True)
class Issued:
    """What the caller knows of an issued document, looked up for a parser (parsers never touch
    the database): its spec, the cleaned issued snapshot and, for reading paper, the printed page
    geometry, the issued PDF (on demand) and the names of the case's people."""

    doc_id: str
    number: str | None
    spec: FormSpec
    variant: Variant | None
    values: Mapping[str, Any]
    pages: int = 0
    geometry: Mapping | None = None
    pdf: Callable[[], bytes] | None = None
    people: tuple[str, ...] = ()
    issued_on: dt.date | None = None


class Lookup(Protocol):
    """The caller's document lookup: by identity (``doc_id``, with ``form``/``variant`` to check
    against) or by printed number. Raises ``forms.errors.UnknownDocument`` saying why not."""

    def __call__(self, *, doc_id: str | None = None, form: str | None = None, variant: str | None = None,
                 doc_number: str | None = None) -> Issued: ...


@dataclass(frozen=True)
class ReadOptions:
    """Settings of a reading, passed in by the caller: OCR engines (None: the scan parser's
    defaults), the confidence below which a person reviews, and the last plausible date."""

    engine: Any = None
    fallback: Any = None
    use_default_fallback: bool = True
    threshold: float = 0.9
    today: dt.date | None = None


@dataclass
class PageRead:
    """One unit of a returned file as read: a page of a scan, or a whole DOCX or digital PDF.

    ``status``: read (identified and its fields read), unidentified (``reason`` says why; a person
    assigns it), blank, or failed (identified but unreadable: ``reason``). ``index``: the page's
    position in the file (0 for a file read whole); ``page_no``: the page of the document (None for
    a file read whole). ``crops``: PNG of the region each value needing review was read from."""

    index: int
    status: str
    input_kind: str  # docx | pdf | scan
    doc_id: str | None = None
    page_no: int | None = None
    method: str = ""
    rotation: int = 0
    reason: str = ""
    fields: dict[str, FieldReading] = field(default_factory=dict)
    crops: dict[str, bytes] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    align_method: str | None = None
    seconds: float | None = None
    total: int = 0  # units in the file (pages of a scan; 1 for a file read whole)


@runtime_checkable
class Parser(Protocol):
    """One input kind behind the registry: DOCX, digital PDF, scans and photos.

    ``score`` says how well the parser fits a file (higher wins; None: not this parser's kind);
    ``background``: reading is slow (OCR) and runs as a background job; ``read`` yields every
    unit of the file (pages whose index is in ``skip`` are left out: already recorded)."""

    name: str
    background: bool

    @classmethod
    def score(cls, path: Path, mime: str | None) -> int | None:
        """How well this parser fits the file (higher wins); None: not this parser's kind."""
        ...

    def read(self, path: Path, *, secret: QrKeys | str, lookup: Lookup, options: ReadOptions,
             skip: Collection[int] = ()) -> Iterator[PageRead]:
        """Identify and read every unit of the file; raise a BaoxueError when the file cannot be read."""
        ...


# ---- file kinds --------------------------------------------------------------------------------------

def sniff(path: Path) -> str | None:
    """'pdf', 'zip' (DOCX and other OOXML), 'ole' (old .doc), 'png', 'jpeg', 'tiff' or None."""
    with open(path, "rb") as fh:
        head = fh.read(8)
    if head.startswith(b"%PDF"):
        return "pdf"
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    if head.startswith(b"\xd0\xcf\x11\xe0"):
        return "ole"
    if head.startswith(b"\x89PNG"):
        return "png"
    if head.startswith(b"\xff\xd8"):
        return "jpeg"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    return None


@with_pdfium_lock
def pdf_kind(path: Path | str) -> str:
    """The one "digital or scanned?" rule (module docstring): 'digital' or 'scanned'.

    pdfium (pypdfium2, which pdfplumber ships with) counts characters and image boxes in a few
    milliseconds per page."""
    import pypdfium2 as pdfium
    import pypdfium2.raw as pdfium_c

    from forms.errors import UnreadableDocument

    try:
        doc = pdfium.PdfDocument(str(path))
    except pdfium.PdfiumError as e:
        raise UnreadableDocument(f"PDF 文件“{Path(path).name}”已损坏或无法读取：{e}",
                                 file=Path(path).name) from e
    try:
        if len(doc) == 0:
            return "scanned"
        for i in range(len(doc)):
            page = doc[i]
            w, h = page.get_size()
            area = float(w * h) or 1.0
            text = page.get_textpage().get_text_range()
            if sum(1 for ch in text if not ch.isspace()) < MIN_PAGE_CHARS:
                return "scanned"
            for obj in page.get_objects(filter=[pdfium_c.FPDF_PAGEOBJ_IMAGE]):
                x0, y0, x1, y1 = obj.get_bounds()
                if (x1 - x0) * (y1 - y0) >= IMAGE_COVER * area:
                    return "scanned"
    finally:
        doc.close()
    return "digital"


# ---- identifying the form from its printed text ----------------------------------------------------

def _expand_title(text: str, spec: FormSpec, variant: Variant | None) -> str | None:
    """A Title's printed text with non-field placeholders resolved; None if it needs field values."""
    def one(m: re.Match) -> str:
        name = m.group(1)
        if name == "form.title":
            return spec.doc_title(variant)
        if name.startswith("variant.") and variant is not None:
            key = name.split(".", 1)[1]
            val = variant.title if key == "title" else variant.code if key == "code" else variant.data.get(key)
            if isinstance(val, str):
                return val
        raise KeyError(name)

    try:
        return L.PLACEHOLDER_RE.sub(one, text)
    except KeyError:
        return None


def candidates() -> list[tuple[FormSpec, Variant | None]]:
    return [(s, v) for s in all_specs().values() for v in (s.variants or (None,))]


def detect_form(text: str) -> tuple[FormSpec, Variant | None, float] | None:
    """Best (spec, variant) for a document's text by printed titles, prose and labels, or None.

    Score: 2 per printed title found, 1 per variant-specific prose paragraph found (a subtitle, the
    facts...; this tells variants sharing a title apart), plus the share of the layout's labels
    present. A form needs a title or half its labels."""
    flat = norm(text)
    best = None
    for spec, variant in candidates():
        parts = spec.parts(variant)
        titles = {spec.doc_title(variant)}
        prose = set()
        for part in parts:
            for b in part.blocks:
                if isinstance(b, (L.Title, L.Para)):
                    names = L.placeholders(b.text)
                    if any("." not in n for n in names):
                        continue
                    t = _expand_title(b.text, spec, variant)
                    if not t:
                        continue
                    if isinstance(b, L.Title):
                        titles.add(t)
                    elif any(n.startswith("variant.") for n in names):
                        prose.add(t)
        title_hits = sum(1 for t in titles if norm(t) and norm(t) in flat)
        prose_hits = sum(1 for t in prose if norm(t) and norm(t) in flat)
        labels = {norm(t) for part in parts for t in L.labels_of(part)}
        labels |= {norm(spec.field(b.field).column(c).label)
                   for part in parts for b in part.blocks if isinstance(b, L.Rows)
                   for c in (b.columns or [x.name for x in spec.field(b.field).columns])}
        labels.discard("")
        share = sum(1 for lab in labels if lab in flat) / len(labels) if labels else 0.0
        if title_hits == 0 and share < 0.5:
            continue
        score = 2.0 * title_hits + prose_hits + share
        if best is None or score > best[2]:
            best = (spec, variant, score)
    return best


def spec_and_variant(form: str, variant_code: str | None) -> tuple[FormSpec, Variant | None]:
    """The spec named by an identity; UnsupportedInput when this service has no such form."""
    from forms.errors import NotFound, ValidationFailed
    from forms.registry import get_spec

    try:
        spec = get_spec(form)
    except NotFound as e:
        raise UnsupportedInput(f"文书标识指向未知的表单“{form}”", form=form) from e
    try:
        variant = spec.variant(variant_code or None) if spec.variants else None
    except ValidationFailed as e:
        raise UnsupportedInput(f"文书标识指向《{spec.title}》的未知变体“{variant_code}”", form=form) from e
    return spec, variant


# ---- reading values through the spec ---------------------------------------------------------------

_MASK_RE = re.compile(r"^\d{6}\*+\d{3}[\dX]$")


def _origin(f: Field) -> str:
    if f.kind in (Kind.SIGNATURE, Kind.SEAL):
        return "mark"
    return "hand" if f.filled == Filled.HAND else "printed"


def _reading(spec_field: Field, loc: Located, *, pdf: bool, errors: dict[str, str]) -> FieldReading:
    text = loc.text or ""
    if pdf:
        text = unwrap(text)
    source = dict(loc.source)
    source.setdefault("part", loc.part)
    where: dict[str, Any] = {"source": source}
    if loc.bbox is not None:
        source["bbox"] = [round(float(v), 2) for v in loc.bbox]
        where.update(bbox_pt=tuple(float(v) for v in loc.bbox), page_no=int(source.get("page") or 0))
    k = spec_field.kind

    def reading(value: Any, confidence: float, status: str, reason: str = "") -> FieldReading:
        return FieldReading(loc.path, k.value, _origin(spec_field), status, value, text, confidence,
                            status == "invalid", reason, **where)

    if k in (Kind.SIGNATURE, Kind.SEAL):
        present = True if (not is_blank(text) or loc.marked) else None
        return reading(present, CONFIDENCE_OK, "read" if present else "blank")
    raw = read_value(spec_field, text)
    if k == Kind.ID_NUMBER and isinstance(raw, str) and "*" in raw:
        value = raw.upper()
        if _MASK_RE.match(value):
            return reading(value, CONFIDENCE_MASKED, "read")
        errors[loc.path] = "打码的身份证号格式不对（应为前6位+后4位）"
        return reading(value, CONFIDENCE_INVALID, "invalid", errors[loc.path])
    scratch: dict[str, str] = {}
    try:
        value = clean_value(spec_field, raw, required=False, errors=scratch, path=loc.path, stage="returned")
    except ValueError as e:
        errors[loc.path] = str(e)
        return reading(text.strip(), CONFIDENCE_INVALID, "invalid", str(e))
    if scratch:
        errors.update(scratch)
        return reading(text.strip(), CONFIDENCE_INVALID, "invalid", "；".join(scratch.values()))
    return reading(value, CONFIDENCE_OK, "blank" if is_blank(value) else "read")


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, list) and isinstance(b, list):
        return sorted(map(str, a)) == sorted(map(str, b))
    return a == b


@dataclass
class ReadResult:
    fields: dict[str, FieldReading] = field(default_factory=dict)
    values: dict = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    # a field printed on several parts that reads differently on one of them: that other reading
    conflicts: dict[str, FieldReading] = field(default_factory=dict)


def read_fields(spec: FormSpec, variant: Variant | None, parts: Mapping[str, PartLocation], *,
                pdf: bool = False) -> ReadResult:
    """Read every field the layout prints from the located cells/paragraphs of each part.

    A field printed in several parts (stub and original) is read from each: the first non-blank
    reading wins; readings that disagree give an error on the field."""
    out = ReadResult()
    layout = {p.key: p for p in spec.parts(variant)}
    seen_tables: dict[str, list[dict]] = {}
    for key, part in layout.items():
        loc = parts.get(key)
        if loc is None:
            out.warnings.append(f"文件中没有“{part.name}”联")
            continue
        blocks = {}
        for b, n in L.iter_values(part):
            blocks.setdefault(n, b)
        for name, block in blocks.items():
            f = spec.field(name)
            if f.kind == Kind.TABLE:
                columns = printed_columns(spec, block) if isinstance(block, L.Rows) else f.columns
                rows = _read_table(spec, f, columns, loc, pdf=pdf, out=out)
                if rows is None:
                    continue
                if name in seen_tables and seen_tables[name] != rows:
                    out.errors.setdefault(name, f"各联的“{f.label}”不一致")
                    continue
                seen_tables[name] = rows
                out.values.setdefault(name, rows)
                continue
            item = loc.located.get(name)
            if item is None:
                out.warnings.append(f"“{part.name}”联中未找到“{f.label}”")
                continue
            errs: dict[str, str] = {}
            reading = _reading(f, item, pdf=pdf, errors=errs)
            prev = out.fields.get(name)
            if prev is None or (is_blank(prev.value) and not is_blank(reading.value)):
                out.fields[name] = reading
                out.values[name] = reading.value
                out.errors.pop(name, None)
                out.errors.update(errs)
            elif not is_blank(reading.value) and not _same(prev.value, reading.value):
                out.errors[name] = (f"各联的“{f.label}”不一致：“{prev.text.strip()}”与"
                                    f"“{reading.text.strip()}”")
                out.conflicts.setdefault(name, reading)
    for name, value in list(out.values.items()):
        f = spec.field(name)
        if f.kind == Kind.MULTI and value is None:
            out.values[name] = []
    _cross_checks(spec, variant, out)
    return out


def printed_columns(spec: FormSpec, block: L.Rows) -> tuple[Field, ...]:
    """The columns a ``Rows`` block prints (all of the table's columns by default)."""
    f = spec.field(block.field)
    return tuple(f.column(c) for c in block.columns) if block.columns else f.columns


def _read_table(spec: FormSpec, f: Field, columns: tuple[Field, ...], loc: PartLocation, *, pdf: bool,
                out: ReadResult) -> list[dict] | None:
    """The printed rows of a TABLE field: only the printed columns, blank rows skipped."""
    n = loc.tables.get(f.name, 0)
    if f.name in loc.missing:
        out.warnings.append(f"未找到表格“{f.label}”")
        return None
    rows: list[dict] = []
    for i in range(n):
        row_raw: dict[str, Any] = {}
        row_errors: dict[str, str] = {}
        for c in columns:
            path = f"{f.name}[{i}].{c.name}"
            item = loc.located.get(path)
            if item is None:
                continue
            reading = _reading(c, item, pdf=pdf, errors=row_errors)
            out.fields[path] = reading
            row_raw[c.name] = reading.value
        if not row_errors and all(is_blank(v) for v in row_raw.values()):
            continue  # a blank printed row (as clean_value skips it)
        for c in columns:
            row_raw.setdefault(c.name, [] if c.kind == Kind.MULTI else None)
        out.errors.update(row_errors)
        rows.append(row_raw)
    return rows


def printed_paths(spec: FormSpec, variant: Variant | None) -> tuple[set[str], dict[str, set[str]]]:
    """Fields the layout prints, and for TABLE fields the printed columns."""
    fields: set[str] = set()
    cols: dict[str, set[str]] = {}
    for part in spec.parts(variant):
        for block, name in L.iter_values(part):
            fields.add(name)
            if isinstance(block, L.Rows):
                cols.setdefault(name, set()).update(c.name for c in printed_columns(spec, block))
    return fields, cols


_PATH_RE = re.compile(r"^([a-z_][a-z0-9_]*)(?:\[(\d+)\](?:\.([a-z_][a-z0-9_]*))?)?$")


def _is_printed(path: str, fields: set[str], cols: dict[str, set[str]]) -> bool:
    m = _PATH_RE.match(path)
    if not m:
        return True
    name, _i, col = m.groups()
    if name not in fields:
        return False
    return col is None or name not in cols or col in cols[name]


def _cross_checks(spec: FormSpec, variant: Variant | None, out: ReadResult) -> None:
    """The spec's cross-field checks on the values that cleaned (errors added, values kept)."""
    data = {}
    for f in spec.fields:
        if f.name not in out.values or f.name in out.errors:
            continue
        v = out.values[f.name]
        if f.kind == Kind.ID_NUMBER and isinstance(v, str) and "*" in v:
            continue
        if f.kind == Kind.TABLE:
            bad = {p.split("]")[0] for p in out.errors if p.startswith(f.name + "[")}
            v = [r for i, r in enumerate(v) if f"{f.name}[{i}" not in bad] if bad else v
        data[f.name] = v
    fields, cols = printed_paths(spec, variant)
    for check in spec.checks:
        try:
            found = check(data, variant, {})
        except (TypeError, ValueError, KeyError, AttributeError) as e:  # a check needing absent values
            log.debug("check skipped on returned form: %s", e)
            continue
        for path, msg in found.items():
            # a finding about something the form does not print was not read back: not an error here
            if _is_printed(path, fields, cols):
                out.errors.setdefault(path, msg)


def doc_number_of(spec: FormSpec, result: ReadResult, extra_text: str | None = None) -> str | None:
    """The printed document number: the spec's number field, else a 〔yyyy〕n号 pattern."""
    value = result.values.get(spec.number_field)
    if isinstance(value, str) and value.strip():
        return value.strip()
    if extra_text:
        m = re.search(r"[\u4e00-\u9fff]{1,12}[〔\[［(（]\s*\d{4}\s*[〕\]］)）]\s*第?\s*\d+\s*号", extra_text)
        if m:
            return re.sub(r"\s+", "", m.group(0))
    return None


def parsed_form(*, identity: Identity | None, spec: FormSpec, variant: Variant | None, result: ReadResult,
                input_kind: str, warnings: list[str], doc_number: str | None, method: str) -> ParsedForm:
    """The ``ParsedForm`` of a digital parser's reading."""
    return ParsedForm(identity=identity, doc_number=doc_number, form=spec.code,
                      variant=variant.code if variant else None, fields=result.fields,
                      values=result.values, errors=result.errors, warnings=[*warnings, *result.warnings],
                      input_kind=input_kind, method=method, conflicts=result.conflicts)


def not_ours(path: Path, why: str = "") -> UnsupportedInput:
    detail = f"：{why}" if why else "：没有文书标识，也没有本系统表单的标题或栏目"
    return UnsupportedInput(f"文件“{path.name}”{NOT_OURS}{detail}", file=path.name)
