"""The review queue (DOMAIN §5.6 3): what a person must decide about a returned document, of any
kind — low confidence, failed validation, an ambiguous mark, a changed printed value (possible
tampering), a mandatory confirmation, a conflict with the case record. A decision records who
and when; the last decision of a document applies it to its case."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cases.returns.apply import finish_document, raw_value
from cases.returns.models import REVIEW_KINDS, REVIEW_STATUSES, ReviewItem
from cases.store import audit
from cases.store.models import Document, Org, to_json, utcnow
from forms.errors import Conflict, NotFound, ValidationFailed
from forms.registry import get_spec
from forms.spec import clean_value
from parsers.base import resolve_field


def decide(session: Session, item_id: int, *, action: str, value: Any = None, user: str) -> ReviewItem:
    """Accept or correct (or reject) a review item; records who and when, then applies the
    document when it was the last open item. A decided item cannot be decided again."""
    item = session.get(ReviewItem, item_id)
    if item is None:
        raise NotFound(f"复核项 {item_id} 不存在")
    if item.status != "open":
        raise Conflict(f"复核项 {item_id} 已由 {item.decided_by} 处理（{item.status}）")
    if action not in ("accept", "correct", "reject"):
        raise ValidationFailed("复核动作无效", fields={"action": "可选：accept、correct、reject"})
    if action == "correct":
        value = _check_correction(item, value)
    item.status = {"accept": "accepted", "correct": "corrected", "reject": "rejected"}[action]
    item.decided_by, item.decided_at = user, utcnow()
    item.decision = {"action": action, "value": value if action == "correct" else (item.proposed or {}).get("value")}
    audit.record(session, who=user, org=item.org_id, action=f"review.{action}", target=f"review:{item.id}",
                 before={"proposed": item.proposed}, after=item.decision)
    session.flush()
    finish_document(session, item.upload_id, item.document_id, user=user)
    return item


def _check_correction(item: ReviewItem, value: Any) -> Any:
    """A person's value, cleaned through the field's spec (JSON-safe); a discrepancy takes any."""
    if item.kind == "discrepancy" or value is None:
        return value
    form = Session.object_session(item).get(Document, item.document_id).form
    try:
        f = resolve_field(get_spec(form), item.field_path)[0]
        cleaned = clean_value(f, raw_value(f, value), required=False, errors={}, path=item.field_path,
                              stage="returned")
    except ValueError as e:
        raise ValidationFailed("更正的值无效", fields={"value": str(e)}) from e
    return to_json({"v": cleaned})["v"]


def review_query(org: Org | None, *, status: str = "open", upload_id: int | None = None,
                 document_id: str | None = None, case_id: int | None = None, kind: str | None = None,
                 reason: str | None = None, field: str | None = None):
    """The query of review items in ``org``'s subtree (all when None), oldest first, narrowed by
    status (``all`` for every status), upload, document, case, kind, a part of the reason text and
    a part of the field path. Unknown status or kind: a 422 naming the allowed values."""
    stmt = select(ReviewItem).order_by(ReviewItem.id)
    if status != "all":
        if status not in REVIEW_STATUSES:
            raise ValidationFailed("复核状态无效", fields={"status": "可选：all、" + "、".join(REVIEW_STATUSES)})
        stmt = stmt.where(ReviewItem.status == status)
    if kind is not None:
        if kind not in REVIEW_KINDS:
            raise ValidationFailed("复核类型无效", fields={"kind": "可选：" + "、".join(REVIEW_KINDS)})
        stmt = stmt.where(ReviewItem.kind == kind)
    if org is not None:
        stmt = stmt.where(ReviewItem.in_scope(org))
    if upload_id is not None:
        stmt = stmt.where(ReviewItem.upload_id == upload_id)
    if document_id:
        stmt = stmt.where(ReviewItem.document_id == document_id)
    if case_id is not None:
        stmt = stmt.where(ReviewItem.case_id == case_id)
    if reason:
        stmt = stmt.where(ReviewItem.reason.contains(reason))
    if field:
        stmt = stmt.where(ReviewItem.field_path.contains(field))
    return stmt


def list_review(session: Session, org: Org | None, *, status: str = "open", limit: int = 100,
                offset: int = 0, **filters) -> list[ReviewItem]:
    """Review items in ``org``'s subtree (all when None), oldest first (filters: ``review_query``)."""
    return list(session.scalars(review_query(org, status=status, **filters).limit(limit).offset(offset)))
