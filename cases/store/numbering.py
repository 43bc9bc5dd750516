"""Document numbers (发文字号, DOMAIN §5.0.1): per issuing unit, per form family, per year;
gapless and never reused, also under concurrent requests.

The counter lives in ``number_sequences``. ``reserve_number`` first inserts the row if it is
missing (``ON CONFLICT DO NOTHING``, safe when two requests race), then increments it with one
``UPDATE ... RETURNING``. The UPDATE takes the row's write lock (PostgreSQL) or the database write
lock (SQLite) until the caller's transaction ends, so concurrent reservations queue up and each
sees the previous value; a rolled-back transaction gives its number back, which keeps the
sequence gapless. A number that reached paper is voided (作废), never reused.

A number reserved by a request whose rendering then failed never reached paper: ``release_number``
gives it back — the counter steps back when it is still the last number taken, otherwise the
number waits in ``released_numbers`` and the next reservation of the series takes it first — so a
failed request consumes no number and the series stays gapless.
"""

from __future__ import annotations

import logging

from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from cases.store import audit
from cases.store.models import Document, NumberSequence, Org, ReleasedNumber
from forms.errors import Conflict, ValidationFailed

log = logging.getLogger(__name__)

CASE_FAMILY = "case"


def _org_id(org: Org | int) -> int:
    if isinstance(org, Org):
        if org.id is None:
            raise ValueError(f"organisation {org.name!r} is not flushed yet")
        return org.id
    return int(org)


def reserve_number(session: Session, *, org: Org | int, family: str, year: int) -> int:
    """Reserve the next number of ``family`` for issuer ``org`` in ``year`` (1, 2, 3...).

    The number belongs to the caller's transaction: commit to keep it, roll back to release it.
    """
    if not family:
        raise ValueError("numbering family must not be empty")
    org_id = _org_id(org)
    dialect = session.get_bind().dialect.name
    values = {"org_id": org_id, "family": family, "year": int(year), "last_value": 0}
    if dialect == "postgresql":
        ins = pg_insert(NumberSequence).values(**values).on_conflict_do_nothing()
    elif dialect == "sqlite":
        ins = sqlite_insert(NumberSequence).values(**values).on_conflict_do_nothing()
    else:  # pragma: no cover - only SQLite and PostgreSQL are supported
        raise NotImplementedError(f"document numbering is not implemented for {dialect}")
    session.execute(ins)
    # A number given back by a failed request is taken first (lowest first). Two requests racing
    # for it: the DELETE of the second finds the row gone and takes a new number instead.
    first = (select(ReleasedNumber.seq)
             .where(ReleasedNumber.org_id == org_id, ReleasedNumber.family == family,
                    ReleasedNumber.year == int(year))
             .order_by(ReleasedNumber.seq).limit(1).scalar_subquery())
    reused = session.execute(
        delete(ReleasedNumber)
        .where(ReleasedNumber.org_id == org_id, ReleasedNumber.family == family,
               ReleasedNumber.year == int(year), ReleasedNumber.seq == first)
        .returning(ReleasedNumber.seq)
        .execution_options(synchronize_session=False)
    ).scalar()
    if reused is not None:
        log.info("reusing released number %s of org %s family %s year %s", reused, org_id, family, year)
        return reused
    seq = session.execute(
        update(NumberSequence)
        .where(NumberSequence.org_id == org_id, NumberSequence.family == family,
               NumberSequence.year == int(year))
        .values(last_value=NumberSequence.last_value + 1)
        .returning(NumberSequence.last_value)
        .execution_options(synchronize_session=False)
    ).scalar_one()
    log.debug("reserved number %s for org %s family %s year %s", seq, org_id, family, year)
    return seq


def release_number(session: Session, *, org: Org | int, family: str, year: int, seq: int) -> None:
    """Give back ``seq`` (reserved by a request that failed before anything reached paper; the
    caller's document row holding it must be gone or renumbered in the same transaction)."""
    org_id = _org_id(org)
    stepped = session.execute(
        update(NumberSequence)
        .where(NumberSequence.org_id == org_id, NumberSequence.family == family,
               NumberSequence.year == int(year), NumberSequence.last_value == int(seq))
        .values(last_value=NumberSequence.last_value - 1)
        .execution_options(synchronize_session=False)
    ).rowcount
    if not stepped:
        session.add(ReleasedNumber(org_id=org_id, family=family, year=int(year), seq=int(seq)))
    log.info("released number %s of org %s family %s year %s", seq, org_id, family, year)


def format_number(prefix: str, abbr: str, year: int, seq: int) -> str:
    """GB/T 9704 发文字号: ``format_number("卫教", "辍报", 2026, 12) == "卫教辍报〔2026〕12号"``
    (brackets 〔〕, no 第, no leading zeros)."""
    if seq < 1:
        raise ValueError("document sequence numbers start at 1")
    return f"{prefix or ''}{abbr or ''}〔{int(year)}〕{int(seq)}号"


def family_key(form: str, abbr: str = "") -> str:
    """The numbering family of a form (and variant abbreviation): documents of one family share
    one sequence per issuer and year; e.g. ``guardian_notice:限返``."""
    return f"{form}:{abbr}" if abbr else form


def number_document(session: Session, doc: Document, *, issuer: Org, abbr: str) -> str:
    """Give ``doc`` its issuer's next number: sets ``seq`` and ``number_text`` and returns the text.

    The issuer needs a 发文机关代字 (``doc_prefix``); a document is numbered only once.
    """
    if doc.seq is not None:
        raise Conflict(f"文书已有文号“{doc.number_text}”，不能重新编号", document=doc.id)
    if not issuer.doc_prefix:
        raise ValidationFailed(f"“{issuer.name}”没有设置发文机关代字，无法生成文号",
                               fields={"doc_prefix": "请在机构设置中填写发文机关代字"})
    doc.org_id = issuer.id
    doc.seq = reserve_number(session, org=issuer, family=doc.family, year=doc.year)
    doc.number_text = format_number(issuer.doc_prefix, abbr, doc.year, doc.seq)
    return doc.number_text


def number_series_fields(session: Session, spec, doc: Document, *, issuer: Org,
                         taken: list[tuple[str, int]] | None = None) -> dict[str, str]:
    """Numbers of the spec's own-series fields (``Field.series``, e.g. the 送达回证's 回证编号):
    each series has its own counter per issuer and year, shared by all variants of the form, so a
    回证 number is never printed twice. Call after ``number_document`` (same issuer and year).
    Each (family, seq) reserved is appended to ``taken`` (to release them if rendering fails)."""
    out = {}
    for f in spec.fields:
        if f.series:
            family = family_key(spec.code, f.series)
            seq = reserve_number(session, org=issuer, family=family, year=doc.year)
            if taken is not None:
                taken.append((family, seq))
            out[f.name] = format_number(issuer.doc_prefix, f.series, doc.year, seq)
    return out


def void_number(session: Session, doc: Document, *, reason: str, who: str) -> Document:
    """Mark ``doc`` 作废 with ``reason``. The number stays taken: it is never issued again."""
    reason = (reason or "").strip()
    if not reason:
        raise ValidationFailed("作废文书必须说明原因", fields={"void_reason": "必填"})
    if doc.status == "void":
        raise Conflict(f"文书“{doc.number_text or doc.id}”已作废", document=doc.id)
    before = {"status": doc.status}
    doc.status = "void"
    doc.void_reason = reason
    audit.record(session, who=who, org=doc.org_id, action="document.void", target=f"document:{doc.id}",
                 before=before, after={"status": "void", "void_reason": reason,
                                       "number_text": doc.number_text})
    return doc


def next_case_number(session: Session, *, county: Org, year: int) -> str:
    """Public case number ``"<year>-<county code>-<5 digits>"``, e.g. ``2026-419901-00012``."""
    seq = reserve_number(session, org=county, family=CASE_FAMILY, year=year)
    return f"{int(year)}-{county.code or county.id}-{seq:05d}"
