"""Comparing a returned form with what was issued.

``compare(spec, variant, issued, parsed)`` gives one ``FieldChange`` per field path printed on the
form (table cells as ``attempts[0].date``):

* ``unchanged`` — same value (or blank both times);
* ``filled_in`` — blank when issued, a value now (the normal case for HAND fields);
* ``changed`` — a different value; on a printed field (INPUT/SYSTEM) it is ``flagged``: someone
  altered what the service printed, possibly tampering, and a person must look;
* ``cleared`` — a value when issued, blank now (also flagged on a printed field).

``issued`` is the cleaned snapshot stored at render time (``spec.validate`` output; ISO strings
for dates are accepted too). Masked ID numbers are compared with the issued number masked the
same way. Fields the layout does not print, or that the parser could not find, are not compared.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from forms import layout as L
from forms.spec import Field, Filled, FormSpec, Kind, Variant, clean_value, is_blank
from forms.validators import mask_id
from parsers.base import ParsedForm, printed_columns

UNCHANGED = "unchanged"
FILLED_IN = "filled_in"
CHANGED = "changed"
CLEARED = "cleared"


@dataclass(frozen=True)
class FieldChange:
    status: str  # unchanged | filled_in | changed | cleared
    issued: Any
    returned: Any
    flagged: bool = False  # a printed (INPUT/SYSTEM) value was changed or cleared
    message: str = ""


def _normalise(f: Field, value: Any) -> Any:
    """A comparable form of a value (cleaned when possible, else as given)."""
    if f.kind in (Kind.SIGNATURE, Kind.SEAL):
        return True if value else None
    if is_blank(value):
        return None
    if f.kind == Kind.ID_NUMBER and isinstance(value, str) and "*" in value:
        return value.upper()
    try:
        value = clean_value(f, value, required=False, errors={}, path=f.name, stage="returned")
    except (ValueError, TypeError):
        return value
    if f.kind == Kind.MULTI:
        return sorted(value or []) or None
    return value


def canonical_text(text: str) -> str:
    """Text compared the way it can be read back: line breaks and runs of whitespace are one space,
    and no space next to a wide (CJK) character (a PDF line wrap leaves none)."""
    t = re.sub(r"\s+", " ", str(text)).strip()
    return re.sub(r" ?([\u2e80-\uffef]) ?", r"\1", t)


def _equal(f: Field, issued: Any, returned: Any) -> bool:
    if f.kind == Kind.ID_NUMBER and isinstance(returned, str) and "*" in returned and isinstance(issued, str):
        return mask_id(issued).upper() == returned.upper()
    if f.kind == Kind.TEXT and isinstance(issued, str) and isinstance(returned, str):
        return canonical_text(issued) == canonical_text(returned)
    return issued == returned


def _change(f: Field, issued_raw: Any, returned_raw: Any, *, printed: bool) -> FieldChange:
    issued = _normalise(f, issued_raw)
    returned = _normalise(f, returned_raw)
    if issued is None and returned is None:
        return FieldChange(UNCHANGED, issued, returned)
    if issued is None:
        return FieldChange(FILLED_IN, issued, returned,
                           flagged=printed and f.filled == Filled.SYSTEM,
                           message="系统填写的栏目在退回件中被填写" if printed and f.filled == Filled.SYSTEM else "")
    if returned is None:
        return FieldChange(CLEARED, issued, returned, flagged=printed,
                           message=f"印制的“{f.label}”在退回件中被删除" if printed else "")
    if _equal(f, issued, returned):
        return FieldChange(UNCHANGED, issued, returned)
    return FieldChange(CHANGED, issued, returned, flagged=printed,
                       message=f"印制的“{f.label}”被改动，可能被篡改，需人工核对" if printed else "")


def printed_fields(spec: FormSpec, variant: Variant | None) -> dict[str, tuple[Field, ...] | None]:
    """Fields the variant's layout prints, in print order, with the printed columns of tables."""
    out: dict[str, tuple[Field, ...] | None] = {}
    for part in spec.parts(variant):
        for block, name in L.iter_values(part):
            if isinstance(block, L.Rows):
                out.setdefault(name, printed_columns(spec, block))
            else:
                out.setdefault(name, None)
    return out


def compare(spec: FormSpec, variant: Variant | None, issued: Mapping[str, Any],
            parsed: ParsedForm) -> dict[str, FieldChange]:
    """Per field path: how the returned value relates to the issued one (module docstring)."""
    out: dict[str, FieldChange] = {}
    for name, columns in printed_fields(spec, variant).items():
        f = spec.field(name)
        printed = f.filled in (Filled.INPUT, Filled.SYSTEM)
        if f.kind == Kind.TABLE:
            if name not in parsed.values:
                continue
            old_rows = list(issued.get(name) or [])
            new_rows = list(parsed.values.get(name) or [])
            for i in range(max(len(old_rows), len(new_rows))):
                old = old_rows[i] if i < len(old_rows) else {}
                new = new_rows[i] if i < len(new_rows) else {}
                for c in columns or f.columns:
                    path = f"{name}[{i}].{c.name}"
                    # a row added on paper is filled in; a printed row's cells are printed values
                    out[path] = _change(c, (old or {}).get(c.name), (new or {}).get(c.name),
                                        printed=printed and i < len(old_rows))
            continue
        if name not in parsed.values:
            continue
        out[name] = _change(f, issued.get(name), parsed.values.get(name), printed=printed)
    return out


def flagged(changes: Mapping[str, FieldChange]) -> dict[str, FieldChange]:
    """The changes a person must look at."""
    return {p: c for p, c in changes.items() if c.flagged}
