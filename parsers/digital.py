"""DOCX and digital PDF returns read the way every return is read: the file's fields (``parse``)
compared with what was issued, each field then a ``FieldReading`` with the status and review
need a scan reading of it would have had.

* a printed value (filled in when issued) that was changed or cleared is a ``mismatch``: the
  issued value is kept and a person looks (possible tampering), as on a scan;
* a value that fails the spec's validation is ``invalid`` and goes to a person;
* a signature, seal or fingerprint zone that holds something is confirmed by a person (presence
  only), and so is every value of a field the spec marks ``confirm`` (DOMAIN §5.6 3(b): the 送达
  date and method);
* everything else is taken as read (``match`` for unchanged print, ``read`` for a filled-in value,
  ``blank``).
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from dataclasses import replace
from pathlib import Path

from forms.errors import UnsupportedInput
from forms.identity import QrKeys
from forms.spec import Kind, is_blank
from parsers.base import (
    FieldReading,
    Issued,
    Lookup,
    PageRead,
    ParsedForm,
    ReadOptions,
    issued_value,
    jsonable,
    resolve_field,
)
from parsers.compare import UNCHANGED, compare

MARK_KINDS = (Kind.SIGNATURE, Kind.SEAL)
MARK_REASON = "签名、印章、指印须人工确认（只确认有无）"


def confirm_reason(label: str) -> str:
    """Why a person confirms a value the spec marks ``confirm``."""
    return f"“{label}”须人工确认"


def assess(parsed: ParsedForm, issued: Issued) -> dict[str, FieldReading]:
    """Every reading of ``parsed`` with its status and review need against ``issued`` (module
    docstring). Values come back JSON-safe."""
    spec, variant = issued.spec, issued.variant
    changes = compare(spec, variant, issued.values, parsed)
    out: dict[str, FieldReading] = {}
    for path, r in parsed.fields.items():
        try:
            f = resolve_field(spec, path)[0]
        except KeyError:
            continue
        was = jsonable(issued_value(issued.values, path))
        r = replace(r, value=jsonable(r.value), issued=was)
        change = changes.get(path)
        error = parsed.errors.get(path)
        printed = r.origin == "printed" and not is_blank(was)
        if r.status == "invalid":
            out[path] = replace(r, needs_review=True)
        elif error and printed:
            # a printed value that no longer validates, or reads differently on another part (存根,
            # 正本, 回证): changed after it was printed; the person is shown the other reading
            other = parsed.conflicts.get(path)
            text = other.text if other is not None and other.text.strip() != str(was) else r.text
            out[path] = replace(r, status="mismatch", value=was, text=text, needs_review=True, reason=error)
        elif error:
            out[path] = replace(r, status="invalid", needs_review=True, reason=error)
        elif change is not None and change.flagged:
            out[path] = replace(r, origin="printed", status="mismatch", value=was, needs_review=True,
                                reason=change.message or "印制内容被改动，需人工核对")
        elif f.kind in MARK_KINDS:
            present = bool(r.value)
            out[path] = replace(r, value=present, status="read" if present else "blank", confirm=present,
                                needs_review=present, reason=MARK_REASON if present else "")
        elif change is not None and change.status == UNCHANGED and not is_blank(was):
            out[path] = replace(r, origin="printed", status="match")
        elif is_blank(r.value):
            out[path] = replace(r, status="blank")
        else:
            confirm = f.confirm
            out[path] = replace(r, status="read", confirm=confirm, needs_review=confirm,
                                reason=confirm_reason(f.label) if confirm else "")
    return out


def read_digital(parsed: ParsedForm, lookup: Lookup) -> PageRead:
    """The one unit of a DOCX or digital PDF: its document looked up (by the verified identity,
    else by the printed number) and its fields assessed against the issue."""
    if parsed.identity is not None:
        issued = lookup(doc_id=parsed.identity.doc_id, form=parsed.identity.form, variant=parsed.identity.variant)
    elif parsed.doc_number:
        issued = lookup(doc_number=parsed.doc_number, form=parsed.form)
    else:
        raise UnsupportedInput("无法识别文书：没有二维码、文书属性或文号")
    warnings = list(parsed.warnings)
    # A finding of the spec's cross-field checks on a path that was not read on its own.
    warnings += [f"{path}：{msg}" for path, msg in parsed.errors.items() if path not in parsed.fields]
    return PageRead(index=0, status="read", input_kind=parsed.input_kind, doc_id=issued.doc_id,
                    method=parsed.method, fields=assess(parsed, issued), warnings=warnings, total=1)


class DigitalParser:
    """What the DOCX and digital PDF parsers share: read fast, in the request (``background``
    False), the whole file as one unit."""

    background = False

    def parse(self, path: Path, *, secret: QrKeys | str) -> ParsedForm:  # pragma: no cover - each parser's own
        raise NotImplementedError

    def read(self, path: Path, *, secret: QrKeys | str, lookup: Lookup, options: ReadOptions,
             skip: Collection[int] = ()) -> Iterator[PageRead]:
        """The file as one unit (``parsers.base.Parser``); ``options`` are not needed to read text."""
        if 0 in skip:
            return
        yield read_digital(self.parse(Path(path), secret=secret), lookup)
