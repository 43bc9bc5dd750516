"""Where everything sits on the pages of an issued document, for integrators building their own
capture (issue 15 item 7): ``GET /api/v1/documents/<id>/geometry``.

The record kept at render time (``Document.geometry``, ``forms.geometry.record_geometry``) gives
per page its part, size, QR square, table outlines and the box of every field's value and label.
This adds what a capture client needs to read the paper itself, from the spec and the issued PDF:
each field's Chinese label, kind and who fills it, its limits, the printed character boxes of a
handwritten number (one digit per box, grouped 4-2-2 for a date) and the printed tick boxes of a
choice with the choice each box stands for. All boxes ``[x0, top, x1, bottom]`` in PDF points,
origin top-left.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from forms.registry import get_spec
from forms.spec import CHAR_BOX, Field, FormSpec, Kind
from parsers.base import resolve_field
from parsers.scan.boxes import tick_boxes_from_pdf

UNITS = "pt"  # PDF points (1/72 inch), origin top-left


def _field_of(spec: FormSpec, path: str) -> Field | None:
    try:
        return resolve_field(spec, path)[0]
    except KeyError:
        return None


def _boxes(f: Field | None, found: Sequence[Sequence[float]]) -> dict[str, Any]:
    """The printed boxes of one field, named by what they are for."""
    boxes = [[round(float(x), 2) for x in b] for b in found]
    if not boxes or f is None:
        return {}
    if f.hand_boxes and len(boxes) == f.boxes:
        return {"char_boxes": boxes, "box_groups": list(f.box_groups()), "box_pattern": f.box_pattern()}
    if f.kind in (Kind.CHOICE, Kind.MULTI) and f.choices:
        if len(boxes) == len(f.choices):
            return {"tick_boxes": [{"bbox": b, "choice": c.code, "label": c.label}
                                   for b, c in zip(boxes, f.choices, strict=True)]}
        return {"tick_boxes": [{"bbox": b, "choice": None, "label": None} for b in boxes]}
    if f.kind == Kind.BOOL:
        return {"tick_boxes": [{"bbox": b, "choice": True, "label": f.label} for b in boxes]}
    return {"printed_boxes": boxes}


def field_geometry(spec: FormSpec, path: str, rec: Mapping[str, Any], label_bbox, found) -> dict:
    f = _field_of(spec, path)
    out: dict[str, Any] = {"bbox": rec.get("bbox"), "placement": rec.get("kind"),
                           "label_bbox": label_bbox}
    if rec.get("lines"):
        out["lines"] = rec["lines"]
    if f is not None:
        out.update(label=f.label, kind=f.kind.value, filled=f.filled.value, required=f.required,
                   confirm=f.confirm, **f.limits())
    out.update(_boxes(f, found))
    return out


def document_geometry(doc, pdf: bytes | None) -> dict:
    """Geometry of an issued document (``cases.store.models.Document``) with its printed boxes;
    ``pdf`` is the issued PDF (None: boxes not available, the rest still is)."""
    spec = get_spec(doc.form)
    record = doc.geometry or {}
    printed = tick_boxes_from_pdf(pdf, record) if pdf else {}
    parts = {p.key: p.name for p in spec.parts(spec.variant(doc.variant))}
    pages = []
    for page in record.get("pages") or []:
        number = page.get("page")
        labels = page.get("labels") or {}
        found = printed.get(number) or {}
        fields = {}
        for path, rec in (page.get("fields") or {}).items():
            row_key = path
            if "[" in path:  # attempts[0].date -> attempts[].date
                head, _, tail = path.partition("[")
                row_key = f"{head}[]{tail.partition(']')[2]}"
            fields[path] = field_geometry(spec, path, rec, labels.get(path) or labels.get(row_key),
                                          found.get(path) or ())
        pages.append({"page": number, "part": page.get("part"), "part_name": parts.get(page.get("part")),
                      "size": page.get("size"), "qr": page.get("qr"), "outline": page.get("outline"),
                      "tables": page.get("tables") or [], "fields": fields})
    return {"document_id": doc.id, "form": doc.form, "variant": doc.variant, "number": doc.number_text,
            "template": record.get("template"), "template_version": doc.template_version, "units": UNITS,
            "origin": "top-left", "char_box": CHAR_BOX, "boxes_from_pdf": bool(pdf), "pages": pages}
