"""Result types of the scan reading and what its steps share: ``FieldReading`` (one field read
from a scan), ``ReadContext`` (what reading a document's pages needs), field paths, and batched
line recognition."""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from forms.spec import Field, FormSpec, Kind, Variant
from parsers.ocr import OcrEngine, OcrText, split_lines

if TYPE_CHECKING:
    from parsers.scan.ink import ReferencePages

log = logging.getLogger(__name__)

BBox = tuple[float, float, float, float]
DEFAULT_THRESHOLD = 0.9
# A person always confirms what is read of a field marked ``Field.confirm`` in its spec (DOMAIN
# §5.6 3(b): the service date and method). Signatures, seals and fingerprints are confirmed by
# kind, handwritten phone numbers too (no check digit: a 4 written open reads as a 1 to both
# engines on a fax, and nothing in the number says so).
CONFIRM_KINDS = frozenset({Kind.PHONE})
# Printed values longer than this are statute texts and clause paragraphs: not re-read on scans.
MAX_PRINTED_CHECK = 60
PATH_RE = re.compile(r"^([a-z_][a-z0-9_]*)\[(\d+)\]\.([a-z_][a-z0-9_]*)$")
MARK_KINDS = (Kind.SIGNATURE, Kind.SEAL)
TICK_KINDS = (Kind.CHOICE, Kind.MULTI, Kind.BOOL)


# ---- reading -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldReading:
    """One field as read from a scan.

    ``origin``: "printed" (compared with the issued value), "hand" (OCR'd), "tick" or "mark".
    ``status``: match | mismatch | unchecked | read | blank | invalid | ambiguous | low.
    ``value``: JSON-safe proposed value (dates as ISO strings, marks as booleans).
    ``bbox_px``: the crop's box in the upright page image; ``bbox_pt`` in PDF points."""

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
    confirm: bool = False  # a person must confirm it even when confident (DOMAIN §5.6 3(b))

    def to_json(self) -> dict:
        return {"path": self.path, "kind": self.kind, "origin": self.origin, "status": self.status,
                "value": self.value, "text": self.text, "confidence": round(float(self.confidence), 4),
                "needs_review": self.needs_review, "reason": self.reason, "page": self.page_no,
                "bbox_pt": [round(x, 2) for x in self.bbox_pt], "bbox_px": list(self.bbox_px),
                "issued": self.issued, "confirm": self.confirm}


@dataclass(frozen=True)
class ReadContext:
    """What reading a document's pages needs, given by the caller (who looked the document up).

    ``geometry``: ``Document.geometry``; ``issued``: the cleaned issued snapshot;
    ``tick_boxes``: {page_no: {path: [bbox_pt, ...]}} from ``tick_boxes_from_pdf``;
    ``people``: names of the case's people (pupil, guardians) for name matching;
    ``issued_on``: first plausible date of handwritten dates; ``today``: last one."""

    spec: FormSpec
    variant: Variant | None
    geometry: Mapping
    issued: Mapping[str, Any]
    tick_boxes: Mapping[int, Mapping[str, Sequence[BBox]]] = field(default_factory=dict)
    people: tuple[str, ...] = ()
    issued_on: dt.date | None = None
    today: dt.date | None = None
    threshold: float = DEFAULT_THRESHOLD
    confirm_marks: bool = True
    # The issued PDF rendered at the crop resolution: printed values are compared with it ink for
    # ink and only OCR'd when they differ. None: every printed value is OCR'd.
    reference: ReferencePages | None = None


def resolve_field(spec: FormSpec, path: str) -> tuple[Field, str, int | None, str | None]:
    """(field, top-level name, row, column) for ``name`` or ``table[i].column``."""
    m = PATH_RE.match(path)
    if m:
        table = spec.field(m.group(1))
        return table.column(m.group(3)), m.group(1), int(m.group(2)), m.group(3)
    return spec.field(path), path, None, None


def issued_value(issued: Mapping[str, Any], path: str) -> Any:
    """The issued snapshot's value at ``path`` (None for a blank printed row)."""
    m = PATH_RE.match(path)
    if not m:
        return issued.get(path)
    rows = issued.get(m.group(1)) or []
    i = int(m.group(2))
    return rows[i].get(m.group(3)) if i < len(rows) and isinstance(rows[i], Mapping) else None


def jsonable(value: Any) -> Any:
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return [jsonable(x) for x in value]
    return value


def inset(b: Sequence[float], d: float) -> BBox:
    x0, y0, x1, y1 = (float(x) for x in b)
    if x1 - x0 <= 2 * d + 2 or y1 - y0 <= 2 * d + 2:
        return (x0, y0, x1, y1)
    return (x0 + d, y0 + d, x1 - d, y1 - d)


def norm_text(text: str) -> str:
    import unicodedata

    t = unicodedata.normalize("NFKC", str(text or ""))
    return re.sub(r"[\s_＿:：()（）〔〕\[\]]", "", t)


class OcrBatch:
    """Collect line crops for one engine call per page (RapidOCR batches recognition)."""

    def __init__(self, engine: OcrEngine):
        self.engine = engine
        self.lines: list[np.ndarray] = []
        self.groups: dict[str, list[int]] = {}

    def add(self, key: str, crop: np.ndarray) -> None:
        idx = []
        for line in split_lines(crop):
            idx.append(len(self.lines))
            self.lines.append(line)
        self.groups[key] = idx

    def run(self) -> dict[str, OcrText]:
        if not self.lines:
            return {}
        results = self.engine.recognize_lines(self.lines)
        out = {}
        for key, idx in self.groups.items():
            parts = [results[i] for i in idx]
            text = "".join(p.text for p in parts)
            conf = min((p.confidence for p in parts), default=0.0)
            out[key] = OcrText(text, conf)
        return out


def recognize(engine: OcrEngine, crop: np.ndarray) -> OcrText:
    parts = engine.recognize_lines(split_lines(crop))
    return OcrText("".join(p.text for p in parts), min((p.confidence for p in parts), default=0.0))
