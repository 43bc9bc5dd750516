"""What the steps of the scan reading share: ``ReadContext`` (what reading a document's pages
needs), the kinds of fields read as ticks and marks, and batched line recognition. Readings are
``parsers.base.FieldReading``, the one type every parser returns."""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from forms.spec import FormSpec, Kind, Variant
from parsers.base import BBox
from parsers.ocr import OcrEngine, OcrText, split_lines

if TYPE_CHECKING:
    from parsers.scan.ink import ReferencePages

log = logging.getLogger(__name__)

DEFAULT_THRESHOLD = 0.9
# A person always confirms what is read of a field marked ``Field.confirm`` in its spec (DOMAIN
# §5.6 3(b): the service date and method). Signatures, seals and fingerprints are confirmed by
# kind, handwritten phone numbers too (no check digit: a 4 written open reads as a 1 to both
# engines on a fax, and nothing in the number says so).
CONFIRM_KINDS = frozenset({Kind.PHONE})
# Printed values longer than this are statute texts and clause paragraphs: not re-read on scans.
MAX_PRINTED_CHECK = 60
MARK_KINDS = (Kind.SIGNATURE, Kind.SEAL)
TICK_KINDS = (Kind.CHOICE, Kind.MULTI, Kind.BOOL)


# ---- reading -----------------------------------------------------------------------------------------


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
