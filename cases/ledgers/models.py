"""Tables of the ledgers area (DOMAIN §6): filed ledger snapshots and indicator targets.

A ``LedgerSnapshot`` is a filed as-of report: the rows and totals as computed at filing time, the
SHA-256 of the canonical JSON rows, and the filing time (which is also the record-time cut used to
rebuild it: ``CaseEvent.recorded_at <= filed_at``). Filed snapshots are frozen: the model refuses
updates and deletes. A later correction is a new snapshot row with ``corrects_id`` set (更正), never
an edit of the original.

``IndicatorTarget`` holds region targets (§6.4) keyed by a region code prefix (GB/T 2260: "52" =
贵州, "532822" = 勐海) or a region-profile name; ``cases.ledgers.indicators`` falls back to its seed table
when no row is stored.

The indexes at the bottom serve the ledger aggregates (GROUP BY on indexed columns) on the core
tables; they are additive and live here so that ``cases/store/models.py`` stays untouched.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    event,
)
from sqlalchemy.orm import Mapped, mapped_column

from cases.store.models import Base, Case, CaseEvent, Document, OrgScoped, Pupil, utcnow

LEDGER_KINDS = ("school", "village", "township", "county", "prefecture", "g01")
SNAPSHOT_STATUSES = ("filed", "correction")


class LedgerSnapshot(OrgScoped, Base):
    """A filed as-of ledger (frozen). ``org_id`` is the node the ledger covers."""

    __tablename__ = "ledger_snapshots"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    as_of: Mapped[dt.date] = mapped_column(Date)
    filed_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    filed_by: Mapped[str] = mapped_column(String(80))
    status: Mapped[str] = mapped_column(String(12), default="filed")
    content_sha256: Mapped[str] = mapped_column(String(64))
    row_count: Mapped[int] = mapped_column(Integer)
    rows: Mapped[list] = mapped_column(JSON, default=list)
    totals: Mapped[dict] = mapped_column(JSON, default=dict)
    # 更正: the snapshot this one corrects, the reason, and what changed against it.
    corrects_id: Mapped[int | None] = mapped_column(ForeignKey("ledger_snapshots.id"), index=True)
    reason: Mapped[str | None] = mapped_column(Text)
    changes: Mapped[dict | None] = mapped_column(JSON)

    __table_args__ = (
        CheckConstraint("kind IN ('school', 'village', 'township', 'county', 'prefecture', 'g01')",
                        name="kind"),
        CheckConstraint("status IN ('filed', 'correction')", name="status"),
        Index("ix_ledger_snapshots_org_kind_as_of", "org_id", "kind", "as_of"),
    )


@event.listens_for(LedgerSnapshot, "before_update")
@event.listens_for(LedgerSnapshot, "before_delete")
def _snapshot_is_frozen(mapper, connection, target: LedgerSnapshot) -> None:
    raise PermissionError("a filed ledger snapshot is frozen: file a 更正 (correction) instead of editing it")


REMINDER_STAGES = ("due_soon", "due_today", "overdue")


class ReportReminder(OrgScoped, Base):
    """A reminder of the reporting calendar (``cases.ledgers.reporting``): the report of ledger
    ``kind`` of unit ``org_id`` as of ``as_of`` is due on ``due_on`` and not filed. One per report
    and stage (T−1 ``due_soon``, ``due_today``, ``overdue``): the reminder run is idempotent."""

    __tablename__ = "report_reminders"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    as_of: Mapped[dt.date] = mapped_column(Date)
    due_on: Mapped[dt.date] = mapped_column(Date)
    stage: Mapped[str] = mapped_column(String(12))
    message: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("org_id", "kind", "as_of", "stage"),
                      CheckConstraint("stage IN ('due_soon', 'due_today', 'overdue')", name="stage"))


class IndicatorTarget(Base):
    """A target for one indicator in one region (DOMAIN §6.4). ``op``: ge / le / eq."""

    __tablename__ = "indicator_targets"

    id: Mapped[int] = mapped_column(primary_key=True)
    region: Mapped[str] = mapped_column(String(64), index=True)  # code prefix or profile name
    indicator: Mapped[str] = mapped_column(String(40))
    op: Mapped[str] = mapped_column(String(2))
    value: Mapped[float] = mapped_column(Numeric(8, 3))
    source: Mapped[str | None] = mapped_column(String(40))
    year_from: Mapped[int | None] = mapped_column(Integer)
    year_to: Mapped[int | None] = mapped_column(Integer)

    __table_args__ = (CheckConstraint("op IN ('ge', 'le', 'eq')", name="op"),)


# Indexes on core tables used by the ledger queries (additive; see module doc).
Index("ix_ledger_pupils_org_class", Pupil.org_id, Pupil.class_id)
Index("ix_ledger_pupils_hukou_class", Pupil.hukou_org_id, Pupil.class_id)
Index("ix_ledger_cases_org_state", Case.org_id, Case.state)
Index("ix_ledger_events_case_state", CaseEvent.case_id, CaseEvent.to_state, CaseEvent.occurred_at)
Index("ix_ledger_events_kind_case", CaseEvent.kind, CaseEvent.case_id, CaseEvent.occurred_at)
Index("ix_ledger_documents_case_form", Document.case_id, Document.form)
