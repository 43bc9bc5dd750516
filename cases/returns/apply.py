"""A returned document applied to its case, the same for every kind of return (DOMAIN §5.6).

A document's values are the best reading of each field among the units of the upload that hold
it, with every decided review item applied (accepted: the proposed value; corrected: the
person's value; rejected: no value; a printed value is never replaced). Once no review item of
the document is open, the returned copy is recorded (``DocumentReturn``: complete per §5.6 item
4 or what is missing) and applied: a complete 送达回证 records the service (the return deadline
starts); a returned 交接表 records each row's 报到 tick — whatever the form's spec declares in
``FormSpec.effects``, each kind of effect implemented once here. A value that conflicts with the record
never overwrites it: it becomes a ``discrepancy`` review item.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cases.engine.casework import record_receipt, record_service
from cases.handover.plans import record_row_tick
from cases.returns.models import DocumentReturn, ReturnPage, ReviewItem
from cases.store import audit
from cases.store.models import Case, CaseEvent, Document, utcnow
from forms.errors import NotFound, ValidationFailed
from forms.registry import get_spec
from forms.spec import EFFECT_ACTIONS, Kind, clean_value

log = logging.getLogger(__name__)

READ_STATUSES = ("read", "assigned")


def best_readings(session: Session, upload_id: int, doc_id: str) -> dict[str, tuple[ReturnPage, dict]]:
    """Per field path, the unit of this upload it was best read on and that reading (JSON): a
    field printed on several pages keeps the reading that needs no person, most confident first."""
    best: dict[str, tuple[ReturnPage, dict]] = {}
    pages = session.scalars(select(ReturnPage).where(ReturnPage.upload_id == upload_id,
                                                   ReturnPage.document_id == doc_id,
                                                   ReturnPage.status.in_(READ_STATUSES))
                            .order_by(ReturnPage.page_index)).all()
    for p in pages:
        for path, r in (p.readings or {}).items():
            cur = best.get(path)
            if cur is None or (cur[1]["needs_review"], -cur[1]["confidence"]) > (r["needs_review"], -r["confidence"]):
                best[path] = (p, r)
    return best


def document_values(session: Session, upload_id: int, doc_id: str) -> dict[str, Any]:
    """Field path -> value read from this upload, with every decided review item applied
    (accepted: the proposed value; corrected: the person's value; rejected: no value)."""
    values = {path: r["value"] for path, (_p, r) in best_readings(session, upload_id, doc_id).items()}
    items = session.scalars(select(ReviewItem).where(ReviewItem.upload_id == upload_id,
                                                     ReviewItem.document_id == doc_id,
                                                     ReviewItem.status != "open")
                            .order_by(ReviewItem.decided_at, ReviewItem.id)).all()
    for it in items:
        if it.kind == "tamper":
            continue  # a printed value is never replaced by what was read
        if it.status == "accepted":
            values[it.field_path] = (it.proposed or {}).get("value")
        elif it.status == "corrected":
            values[it.field_path] = (it.decision or {}).get("value")
        elif it.status == "rejected":
            values[it.field_path] = None
    return values


def raw_value(f, value: Any) -> Any:
    """Stored readings keep datetimes as ISO strings; the spec's parser wants written forms."""
    if f.kind == Kind.DATETIME and isinstance(value, str):
        try:
            return dt.datetime.fromisoformat(value)
        except ValueError:
            return value
    return value


def _cleaned(spec, values: Mapping[str, Any]) -> dict[str, Any]:
    """Spec-cleaned values of the top-level fields read (invalid ones left out)."""
    out = {}
    for path, value in values.items():
        if "[" in path:
            continue
        try:
            f = spec.field(path)
            out[path] = clean_value(f, raw_value(f, value), required=False, errors={}, path=path, stage="returned")
        except (KeyError, ValueError):
            continue
    return out


def completeness(spec, values: Mapping[str, Any]) -> tuple[bool, list[str]]:
    """DOMAIN §5.6 item 4: whether a returned form counts as evidence, and what is missing: the
    rule of the spec's effect for the part returned (``Effect.complete``, e.g. the 回证's), else
    every signature and seal zone that was on the returned pages present."""
    cleaned = _cleaned(spec, values)
    effect = spec.effect_for(values)
    if effect is not None:
        return effect.complete(cleaned)
    missing = [p for p in values if "[" not in p and spec.field(p).kind in (Kind.SIGNATURE, Kind.SEAL)
               and not cleaned.get(p)]
    return (not missing, sorted(missing))


def open_items(session: Session, upload_id: int | None, doc_id: str) -> int:
    """How many review items of the document in this upload (None: in any upload) wait for a person."""
    stmt = select(func.count()).select_from(ReviewItem).where(ReviewItem.document_id == doc_id,
                                                               ReviewItem.status == "open")
    if upload_id is not None:
        stmt = stmt.where(ReviewItem.upload_id == upload_id)
    return int(session.scalar(stmt) or 0)


def expected_pages(spec, doc: Document) -> list[int] | None:
    """The pages of the issued document that come back: those its geometry record (kept at
    render time) places in the parts the spec returns (``FormSpec.returned_parts``; all when
    empty). None: not known (no page record)."""
    pages = (doc.geometry or {}).get("pages") or []
    wanted = set(spec.returned_parts)
    out = sorted({int(p["page"]) for p in pages if p.get("page") and (not wanted or p.get("part") in wanted)})
    return out or None


def received_pages(session: Session, doc_id: str, expected: list[int] | None) -> list[int] | None:
    """The pages of the document received so far, over every upload: a DOCX or digital PDF read
    whole (no page number) brings them all. None: not known."""
    nos = set(session.scalars(select(ReturnPage.page_no).where(ReturnPage.document_id == doc_id,
                                                              ReturnPage.status.in_(READ_STATUSES))))
    if None in nos:
        return list(expected) if expected is not None else None
    return sorted(nos)


def merged_values(session: Session, upload_id: int, doc_id: str) -> dict[str, Any]:
    """The document's values over every upload that returned part of it, oldest first, this
    upload's last (a page returned later completes the values of a page returned earlier)."""
    uploads = sorted(set(session.scalars(select(ReturnPage.upload_id).where(
        ReturnPage.document_id == doc_id, ReturnPage.status.in_(READ_STATUSES)))) - {upload_id})
    values: dict[str, Any] = {}
    for up in (*uploads, upload_id):
        values.update(document_values(session, up, doc_id))
    return values


def finish_document(session: Session, upload_id: int, doc_id: str, *, user: str) -> DocumentReturn:
    """Record (once) the returned copy of ``doc_id`` in this upload and apply it when no review
    item is open. Idempotent."""
    doc = session.get(Document, doc_id)
    ret = session.scalar(select(DocumentReturn).where(DocumentReturn.document_id == doc_id,
                                                      DocumentReturn.upload_id == upload_id))
    if ret is None:
        kind = session.scalar(select(ReturnPage.input_kind).where(ReturnPage.upload_id == upload_id,
                                                                  ReturnPage.document_id == doc_id).limit(1))
        ret = DocumentReturn(document_id=doc_id, upload_id=upload_id, form=doc.form, org_id=doc.org_id,
                             input_kind=kind, status="review")
        session.add(ret)
        session.flush()
    if ret.status != "applied":
        _try_apply(session, doc, ret, user=user)
    session.commit()
    return ret


def _try_apply(session: Session, doc: Document, ret: DocumentReturn, *, user: str) -> None:
    """Complete only when every page the form returns has come back (in this upload or an earlier
    one) and nothing of the document is open in review in any upload; a partial return applies
    nothing (``partial``); the upload bringing the last page completes it and applies it."""
    spec = get_spec(doc.form)
    values = merged_values(session, ret.upload_id, doc.id)
    ret.values = values
    complete, ret.missing = completeness(spec, values)
    ret.pages_expected = expected_pages(spec, doc)
    ret.pages_received = received_pages(session, doc.id, ret.pages_expected)
    lacking = missing_pages(ret)
    ret.complete = complete and not lacking
    if open_items(session, None, doc.id):
        ret.status = "review"
        return
    if lacking:
        ret.status = "partial"
        audit.record(session, who=user, org=doc.org_id, action="document.returned", target=f"document:{doc.id}",
                     after={"upload": ret.upload_id, "complete": False, "pages_received": ret.pages_received,
                            "pages_missing": lacking})
        return
    for effect in spec.effects:
        if effect.applies(values) and not ACTIONS[effect.action](session, doc, ret, spec, effect, values, user=user):
            return  # waits for a person
    ret.status = "applied" if ret.complete else "incomplete"
    ret.applied_at = utcnow()
    audit.record(session, who=user, org=doc.org_id, action="document.returned", target=f"document:{doc.id}",
                 after={"upload": ret.upload_id, "complete": ret.complete, "missing": ret.missing})
    if doc.case_id:
        session.add(CaseEvent(case_id=doc.case_id, org_id=doc.org_id, kind="document_returned", actor=user,
                              occurred_at=utcnow(), data={"document": doc.id, "upload": ret.upload_id,
                                                          "complete": ret.complete, "missing": ret.missing,
                                                          "source": ret.input_kind}))


def missing_pages(ret: DocumentReturn) -> list[int]:
    """The pages the form returns that have not come back yet (none when not known)."""
    if ret.pages_expected is None or ret.pages_received is None:
        return []
    got = set(ret.pages_received)
    return [p for p in ret.pages_expected if p not in got]


def _args(spec, effect, values: Mapping[str, Any]) -> dict[str, Any]:
    """The effect's parameters -> spec-cleaned values read (top-level fields; None when not read)."""
    cleaned = _cleaned(spec, {path: values.get(path) for path in effect.args.values() if "[" not in path})
    return {key: cleaned.get(path) for key, path in effect.args.items()}


def _day(value: Any) -> dt.date | None:
    return value.date() if isinstance(value, dt.datetime) else value


def _page(session: Session, ret: DocumentReturn, doc: Document) -> ReturnPage:
    return session.scalar(select(ReturnPage).where(ReturnPage.upload_id == ret.upload_id,
                                                   ReturnPage.document_id == doc.id).limit(1))


def _discrepancy(session: Session, doc: Document, ret: DocumentReturn, *, path: str, proposed: dict,
                 recorded: dict, reason: str) -> bool:
    """A value read that differs from the record never overwrites it: unless a person already
    accepted (or corrected) the difference for this copy, a ``discrepancy`` review item is opened
    (once) and the document waits. Returns True when the person accepted it."""
    accepted = session.scalar(select(ReviewItem).where(
        ReviewItem.upload_id == ret.upload_id, ReviewItem.document_id == doc.id, ReviewItem.field_path == path,
        ReviewItem.kind == "discrepancy", ReviewItem.status.in_(("accepted", "corrected"))))
    if accepted is not None:
        return True
    page = _page(session, ret, doc)
    exists = session.scalar(select(ReviewItem).where(
        ReviewItem.page_id == page.id, ReviewItem.field_path == path, ReviewItem.kind == "discrepancy"))
    if exists is None:
        session.add(ReviewItem(
            page_id=page.id, upload_id=ret.upload_id, document_id=doc.id, case_id=doc.case_id,
            org_id=doc.org_id, field_path=path, kind="discrepancy", proposed={"value": proposed},
            recorded={"value": recorded}, confidence=0.0, reason=reason))
    ret.status = "review"
    return False


def _case_events(session: Session, case_id: int, kind: str) -> list[CaseEvent]:
    return list(session.scalars(select(CaseEvent).where(CaseEvent.case_id == case_id, CaseEvent.kind == kind)
                                .order_by(CaseEvent.id)))


def apply_service(session: Session, doc: Document, ret: DocumentReturn, spec, effect, values: Mapping, *,
                  user: str) -> bool:
    """A complete 回证 records the service (return deadline starts). A service already on record
    with another date or method is never overwritten: a discrepancy item goes to review instead.
    Returns False when the document waits for a person."""
    if not ret.complete or not doc.case_id:
        return True
    args = _args(spec, effect, values)
    served_on, method = _day(args["served"]), args["method"]
    case = session.get(Case, doc.case_id)
    previous = [e for e in _case_events(session, case.id, "service")
                if (e.data or {}).get("document_id") == doc.id]
    if previous:
        old = previous[-1].data
        if old.get("served_on") == served_on.isoformat() and old.get("method") == method:
            return True  # the same service, already on record
        if not _discrepancy(session, doc, ret, path=effect.args["served"],
                            proposed={"served_on": served_on.isoformat(), "method": method},
                            recorded={"served_on": old.get("served_on"), "method": old.get("method")},
                            reason="扫描件的送达日期/方式与案卷记录不一致：不自动覆盖，请核对"):
            return False
    record_service(session, case, document_id=doc.id, served_on=served_on, method=method, complete=True,
                   actor=user)
    return True


def apply_receipts(session: Session, doc: Document, ret: DocumentReturn, spec, effect, values: Mapping, *,
                   user: str) -> bool:
    """A complete returned report records the day each receiving unit signed for it (the
    township's starts the timers that run from its receipt). A receipt already on record for the
    document with another day is never overwritten: a discrepancy item goes to review instead."""
    if not ret.complete or not doc.case_id:
        return True
    case = session.get(Case, doc.case_id)
    args = _args(spec, effect, values)
    recorded = _case_events(session, case.id, "receipt")
    for by in EFFECT_ACTIONS["receipts"]:
        day = _day(args.get(by))
        if day is None:
            continue
        same = [e.data for e in recorded if (e.data or {}).get("by", "township") == by
                and (e.data or {}).get("document_id") in (doc.id, None)]
        if any(d.get("received_on") == day.isoformat() for d in same):
            continue  # already on record
        if same and not _discrepancy(session, doc, ret, path=effect.args[by],
                                     proposed={"received_on": day.isoformat(), "by": by},
                                     recorded={"received_on": same[-1].get("received_on"), "by": by},
                                     reason="退回件的签收日期与案卷记录不一致：不自动覆盖，请核对"):
            return False
        record_receipt(session, case, document_id=doc.id, received_on=day, by=by, actor=user)
    return True


def _row_values(effect, values: Mapping[str, Any]) -> dict[int, dict[str, Any]]:
    """Per row index (from 0), the effect's parameters read in that row (``table[].column`` args)."""
    rows: dict[int, dict[str, Any]] = {}
    for key, arg in effect.args.items():
        table, _, column = arg.partition("[].")
        for path, value in values.items():
            m = re.fullmatch(rf"{re.escape(table)}\[(\d+)\]\.{re.escape(column)}", path)
            if m:
                rows.setdefault(int(m.group(1)), {})[key] = value
    return rows


def apply_registrations(session: Session, doc: Document, ret: DocumentReturn, spec, effect, values: Mapping,
                        *, user: str) -> bool:
    """Each row's 报到 tick (and date / whereabouts) goes to the handover engine."""
    for i, row in sorted(_row_values(effect, values).items()):
        if row.get("registered") is None and not row.get("whereabouts"):
            continue
        on = row.get("registered_on")
        try:
            record_row_tick(session, handover_document_id=doc.id, row=i + 1, registered=row.get("registered"),
                            registered_on=dt.date.fromisoformat(on) if isinstance(on, str) else on,
                            whereabouts=row.get("whereabouts"), actor=user)
        except (NotFound, ValidationFailed) as e:
            log.warning("handover %s row %d not recorded: %s", doc.id, i + 1, e.message)
    return True


# ``forms.spec.EFFECT_ACTIONS`` -> how this service applies it (returns False: waits for a person)
ACTIONS = {"service": apply_service, "receipts": apply_receipts, "registrations": apply_registrations}
assert set(ACTIONS) == set(EFFECT_ACTIONS), "every effect a spec can declare is applied here"
