"""The tamper-evident audit trail (DOMAIN §8.4): append-only, hash-chained, anchored daily.

Every entry carries its place in the chain (``seq``: 1, 2, 3... without gaps), the hash of the
entry before it (``prev_hash``) and its own hash: SHA-256 over the previous hash and a canonical
JSON of its content (``entry_hash``). Changing, deleting or inserting a row breaks the chain at
that point, and ``verify`` names the first broken entry.

Appending is serialised so that concurrent transactions cannot fork the chain: ``record`` only
queues the entry on the session; right before the session commits, the chain head row
(``audit_chain_head``) is locked (``SELECT ... FOR UPDATE`` on PostgreSQL; on SQLite a write to
it takes the database write lock), the queued entries are numbered and hashed, and the head
moves on. The lock is held only for those last moments of the transaction, and entries of a
transaction that rolls back are never written.

Anchors: at the first append of a new day (China time) the head of the previous day is written
to ``audit_anchors`` and, if the session is configured with ``audit_anchor_file`` in its
``info``, appended to that file — a copy an auditor keeps outside the database. Someone who can
rewrite the database could recompute the whole chain; they cannot change the copies of the
anchors held elsewhere, and ``verify`` compares them. On PostgreSQL a trigger also refuses
UPDATE, DELETE and TRUNCATE on the audit tables (``install_triggers``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import DDL, Date, Integer, String, event, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from cases.store.models import AuditLog, Base, Org, to_json, utcnow

log = logging.getLogger(__name__)

GENESIS = "0" * 64
CHINA_TZ = dt.timezone(dt.timedelta(hours=8))
_PENDING = "baoxue_audit_pending"
_NEW_ANCHORS = "baoxue_audit_new_anchors"
# session.info keys set by the caller: the authenticated user, and where anchors are copied to.
ACTOR = "baoxue_actor"
ANCHOR_FILE = "audit_anchor_file"


class AuditChainHead(Base):
    """One row (id 1): the last entry's position and hash. Locked while entries are appended."""

    __tablename__ = "audit_chain_head"

    id: Mapped[int] = mapped_column(primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, default=0)
    hash: Mapped[str] = mapped_column(String(64), default=GENESIS)
    day: Mapped[dt.date | None] = mapped_column(Date)  # China date of the last append


class AuditAnchor(Base):
    """The chain head at the end of a day (or whenever an operator anchors it)."""

    __tablename__ = "audit_anchors"

    id: Mapped[int] = mapped_column(primary_key=True)
    day: Mapped[dt.date] = mapped_column(Date, index=True)
    seq: Mapped[int] = mapped_column(Integer)
    hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


# ---- the hash ---------------------------------------------------------------------------------------

def entry_content(seq: int, at: dt.datetime, user_id: int | None, who: str, org_id: int | None,
                  action: str, target: str, before: Any, after: Any) -> dict:
    """The hashed content of one entry (every column except the hashes and the row id)."""
    return {"seq": seq, "at": at.astimezone(dt.UTC).isoformat(timespec="microseconds"), "user_id": user_id,
            "who": who, "org_id": org_id, "action": action, "target": target, "before": before, "after": after}


def entry_hash(content: Mapping[str, Any], prev_hash: str) -> str:
    """SHA-256 (hex) over the previous entry's hash and the canonical JSON of ``content``."""
    data = json.dumps(content, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256((prev_hash + data).encode()).hexdigest()


def _row_content(e: AuditLog) -> dict:
    return entry_content(e.seq, e.at, e.user_id, e.who, e.org_id, e.action, e.target, e.before, e.after)


# ---- appending --------------------------------------------------------------------------------------

def record(session: Session, *, who: str, org: Org | int | None, action: str, target: str,
           before: Mapping[str, Any] | None = None, after: Mapping[str, Any] | None = None) -> AuditLog:
    """Queue one audit entry; it is chained and written when ``session`` commits (with the change it
    logs), and dropped if the session rolls back.

    ``who`` names the actor for work no person is logged in for (the daily sweep, a CLI command,
    the demo loader). When the session carries an authenticated user (``session.info[ACTOR]``, set
    by the web layer for each request), that user is recorded instead: an entry always names the
    person who really acted. Values are stored as JSON; pass masked ID numbers unless the entry
    is an unmasking (then record the reason)."""
    org_id = org.id if isinstance(org, Org) else org
    user_id = None
    actor = session.info.get(ACTOR)
    if actor is not None:
        user_id, who = actor
    entry = AuditLog(who=(who or "system")[:80], user_id=user_id, org_id=org_id, action=action[:40],
                     target=target[:120], before=to_json(before) if before is not None else None,
                     after=to_json(after) if after is not None else None, at=utcnow())
    session.info.setdefault(_PENDING, []).append(entry)
    return entry


def record_export(session: Session, *, who: str = "system", org: Org | int | None, what: str,
                  records: int, fmt: str, scope: Mapping[str, Any] | None = None,
                  unmasked_reason: str | None = None) -> AuditLog:
    """Log one export (XLSX, ZIP, PDF bundle...): who, which scope, how many records, in which
    format, and — when full ID numbers were included — the reason given. Every export route calls
    this before it answers; the entry is written with the request's commit."""
    after = {"what": what, "records": int(records), "format": fmt, "scope": dict(scope or {})}
    if unmasked_reason is not None:
        after["unmasked"] = True
        after["reason"] = unmasked_reason
    return record(session, who=who, org=org, action=f"{what}.export"[:40], target=f"export:{what}", after=after)


def record_unmask(session: Session, *, who: str = "system", org: Org | int | None, target: str, reason: str,
                  records: int = 1) -> AuditLog:
    """Log that full ID numbers were shown, with the reason the person gave."""
    return record(session, who=who, org=org, action="unmask", target=target,
                  after={"reason": reason, "records": int(records)})


def china_date(now: dt.datetime | None = None) -> dt.date:
    return (now or utcnow()).astimezone(CHINA_TZ).date()


def _lock_head(session: Session) -> AuditChainHead:
    if session.get_bind().dialect.name == "postgresql":
        stmt = select(AuditChainHead).where(AuditChainHead.id == 1).with_for_update()
    else:
        # SQLite: a write takes the database's write lock for the rest of the transaction, so the
        # head read next cannot change under us.
        session.execute(update(AuditChainHead).where(AuditChainHead.id == 1).values(seq=AuditChainHead.seq))
        stmt = select(AuditChainHead).where(AuditChainHead.id == 1)
    head = session.scalars(stmt.execution_options(populate_existing=True)).one_or_none()
    if head is None:  # a schema made without the genesis row (it is created with the table)
        head = AuditChainHead(id=1, seq=0, hash=GENESIS)
        session.add(head)
        session.flush()
    return head


@event.listens_for(Session, "before_commit")
def _append_pending(session: Session) -> None:
    pending = session.info.pop(_PENDING, None)
    if not pending:
        return
    head = _lock_head(session)
    today = china_date()
    if head.day is not None and head.day < today and head.seq > 0:
        anchor = AuditAnchor(day=head.day, seq=head.seq, hash=head.hash)
        session.add(anchor)
        session.info.setdefault(_NEW_ANCHORS, []).append((head.day, head.seq, head.hash))
    for entry in pending:
        entry.seq = head.seq + 1
        entry.prev_hash = head.hash
        entry.hash = entry_hash(_row_content(entry), head.hash)
        session.add(entry)
        head.seq, head.hash = entry.seq, entry.hash
    head.day = today


@event.listens_for(Session, "after_commit")
def _copy_anchors(session: Session) -> None:
    anchors = session.info.pop(_NEW_ANCHORS, None)
    path = session.info.get(ANCHOR_FILE)
    if anchors and path:
        try:
            write_anchor_lines(Path(path), anchors)
        except OSError as e:  # the database anchor is written; the copy can be redone (audit anchor)
            log.error("could not copy audit anchors to %s: %s", path, e)


@event.listens_for(Session, "after_rollback")
def _drop_pending(session: Session) -> None:
    session.info.pop(_PENDING, None)
    session.info.pop(_NEW_ANCHORS, None)


def write_anchor_lines(path: Path, anchors) -> None:
    """Append ``day<TAB>seq<TAB>hash`` lines to the anchor file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as f:
        for day, seq, digest in anchors:
            f.write(f"{day.isoformat()}\t{seq}\t{digest}\n")


def anchor_now(session: Session, *, anchor_file: Path | None = None) -> AuditAnchor | None:
    """Anchor the current head now (``flask audit anchor``, e.g. from cron) and copy every anchor
    of the table that the file does not hold yet. The caller commits. None for an empty log."""
    head = _lock_head(session)
    anchor = None
    if head.seq > 0:
        anchor = AuditAnchor(day=china_date(), seq=head.seq, hash=head.hash)
        session.add(anchor)
        session.flush()
    if anchor_file is not None:
        have = {(a.day, a.seq, a.hash) for a in read_anchor_file(anchor_file)}
        rows = session.scalars(select(AuditAnchor).order_by(AuditAnchor.seq, AuditAnchor.id))
        missing = [(a.day, a.seq, a.hash) for a in rows if (a.day, a.seq, a.hash) not in have]
        if missing:
            write_anchor_lines(anchor_file, missing)
    return anchor


# ---- PostgreSQL: refuse UPDATE / DELETE / TRUNCATE ----------------------------------------------------

TRIGGER_FUNCTION = """
CREATE OR REPLACE FUNCTION baoxue_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'table % is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$ LANGUAGE plpgsql
"""
APPEND_ONLY_TABLES = ("audit_log", "audit_anchors")


def trigger_statements(table: str) -> list[str]:
    """DDL making ``table`` append-only on PostgreSQL (used by the migration and create_schema)."""
    return [TRIGGER_FUNCTION,
            f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}",
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION baoxue_append_only()",
            f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}",
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION baoxue_append_only()"]


def _install_on_create(table_name: str) -> None:
    table = Base.metadata.tables[table_name]
    for stmt in trigger_statements(table_name):
        # DDL() formats its text with %: the RAISE placeholders must be doubled
        event.listen(table, "after_create", DDL(stmt.replace("%", "%%")).execute_if(dialect="postgresql"))


for _name in APPEND_ONLY_TABLES:
    _install_on_create(_name)
event.listen(AuditChainHead.__table__, "after_create",
             DDL(f"INSERT INTO audit_chain_head (id, seq, hash) VALUES (1, 0, '{GENESIS}')"))


# ---- verification -----------------------------------------------------------------------------------

@dataclass
class Verification:
    """Outcome of ``verify``: ``ok``, how many entries and anchors were checked, and the first
    problem found (``broken_seq``/``broken_id`` name the entry, ``problem`` says what is wrong)."""

    ok: bool = True
    entries: int = 0
    anchors: int = 0
    broken_seq: int | None = None
    broken_id: int | None = None
    problem: str | None = None
    notes: list[str] = field(default_factory=list)

    def fail(self, problem: str, *, seq: int | None = None, row_id: int | None = None) -> Verification:
        self.ok, self.problem, self.broken_seq, self.broken_id = False, problem, seq, row_id
        return self

    def as_json(self) -> dict:
        return {"ok": self.ok, "entries": self.entries, "anchors": self.anchors, "broken_seq": self.broken_seq,
                "broken_id": self.broken_id, "problem": self.problem, "notes": self.notes}


def read_anchor_file(path: Path) -> list[AuditAnchor]:
    """The anchors kept in ``path`` (missing file: none)."""
    if not path.exists():
        return []
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            day, seq, digest = line.split("\t")
            out.append(AuditAnchor(day=dt.date.fromisoformat(day), seq=int(seq), hash=digest.strip()))
        except ValueError:
            raise ValueError(f"{path} 第{n}行不是“日期<TAB>序号<TAB>哈希”") from None
    return out


def _rows(session: Session) -> Iterator[AuditLog]:
    stmt = select(AuditLog).order_by(AuditLog.seq, AuditLog.id).execution_options(yield_per=2000)
    yield from session.scalars(stmt)


def verify(session: Session, *, anchor_file: Path | None = None) -> Verification:
    """Walk the chain from the first entry and stop at the first entry that was changed, deleted,
    inserted or re-ordered; then check the chain head and every anchor (table and file)."""
    out = Verification()
    anchors = list(session.scalars(select(AuditAnchor).order_by(AuditAnchor.seq)))
    kept = read_anchor_file(anchor_file) if anchor_file is not None else []
    if anchor_file is not None and not kept:
        out.notes.append(f"锚点文件 {anchor_file} 不存在或为空")
    wanted = {a.seq for a in anchors} | {a.seq for a in kept}
    hashes: dict[int, str] = {}
    prev, expected = GENESIS, 1
    for row in _rows(session):
        where = f"第{row.seq}条（id {row.id}，{row.action} {row.target}）"
        if row.seq is None:
            return out.fail(f"id {row.id} 的条目没有链上序号：绕过日志写入", row_id=row.id)
        if row.seq < expected:
            return out.fail(f"{where}与第{row.seq}条重复：有条目被插入", seq=row.seq, row_id=row.id)
        if row.seq > expected:
            missing = f"第{expected}条" if row.seq == expected + 1 else f"第{expected}至{row.seq - 1}条"
            return out.fail(f"{missing}缺失：条目被删除", seq=expected, row_id=row.id)
        if row.prev_hash != prev:
            return out.fail(f"{where}与上一条不相接：上一条被改动或替换，或本条被插入", seq=row.seq, row_id=row.id)
        if entry_hash(_row_content(row), prev) != row.hash:
            return out.fail(f"{where}的内容与其哈希不符：条目被改动", seq=row.seq, row_id=row.id)
        if row.seq in wanted:
            hashes[row.seq] = row.hash
        prev, expected = row.hash, expected + 1
        out.entries += 1
    last = expected - 1
    head = session.get(AuditChainHead, 1)
    if head is not None and head.seq > last:
        missing = f"第{head.seq}条" if head.seq == last + 1 else f"第{last + 1}至{head.seq}条"
        return out.fail(f"最后的{missing}缺失：条目被删除", seq=last + 1)
    if head is not None and head.seq < last:
        return out.fail(f"第{head.seq + 1}条起的条目不是通过日志写入的：条目被插入", seq=head.seq + 1)
    if head is not None and head.seq == last and head.hash != prev:
        return out.fail(f"链头与第{last}条不符：条目被改动", seq=last)
    for source, items in (("数据库锚点", anchors), ("锚点文件", kept)):
        for a in items:
            if a.seq > last:
                return out.fail(f"{source} {a.day} 记录到第{a.seq}条，日志只有{last}条：条目被删除", seq=last + 1)
            if hashes.get(a.seq) != a.hash:
                return out.fail(f"{source} {a.day} 与第{a.seq}条的哈希不符：日志被改写", seq=a.seq)
            out.anchors += 1
    return out
