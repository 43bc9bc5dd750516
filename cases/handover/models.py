"""Tables of 整班移交 (whole-class handover, DOMAIN §4): the plan, its class entries, one row per
handed-over pupil (the 交接表 row and its reconciliation block), and grade-7 registrations.

Scoping (``org_id``): a plan belongs to its county, an entry and its rows to the handing-over
(sending) primary school, a registration to the receiving junior school.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Boolean, CheckConstraint, Date, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from cases.store.models import Base, OrgScoped, Pupil, SchoolClass, in_list, utcnow

PLAN_STATUSES = ("open", "closed")
# How a registration was matched to a 交接表 row (DOMAIN §4.3), and the row tick from a returned form.
MATCH_METHODS = ("id_number", "xueji_no", "name_birth", "table_tick", "manual")
REGISTRATION_STATUSES = ("matched", "pending", "unexpected", "rejected")
REGISTRATION_SOURCES = ("api", "table_tick", "import", "manual")


class HandoverPlan(OrgScoped, Base):
    """整班移交方案 of one county for one year: every grade-6 class assigned to a junior school.

    ``window_end`` is the last day of the receiving schools' registration period (Q13);
    ``term_start`` the autumn term start the county's 15-day check counts from."""

    __tablename__ = "handover_plans"

    id: Mapped[int] = mapped_column(primary_key=True)
    year: Mapped[int] = mapped_column(Integer)  # the summer of the handover (grade-7 entry year)
    term_start: Mapped[dt.date | None] = mapped_column(Date)
    window_end: Mapped[dt.date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(12), default="open")
    closed_on: Mapped[dt.date | None] = mapped_column(Date)
    title: Mapped[str | None] = mapped_column(String(120))
    created_by: Mapped[str | None] = mapped_column(String(80))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    entries: Mapped[list[HandoverEntry]] = relationship(back_populates="plan", order_by="HandoverEntry.id")

    __table_args__ = (CheckConstraint(f"status IN ({in_list(PLAN_STATUSES)})", name="status"),)


class HandoverEntry(OrgScoped, Base):
    """One class of the plan: sending class -> receiving junior school, and its 交接表 document."""

    __tablename__ = "handover_entries"

    id: Mapped[int] = mapped_column(primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("handover_plans.id"), index=True)
    class_id: Mapped[int] = mapped_column(ForeignKey("school_classes.id"), index=True)
    receiving_school_id: Mapped[int] = mapped_column(ForeignKey("orgs.id"), index=True)
    document_id: Mapped[str | None] = mapped_column(ForeignKey("documents.id"), index=True)

    plan: Mapped[HandoverPlan] = relationship(back_populates="entries")
    school_class: Mapped[SchoolClass] = relationship()
    rows: Mapped[list[HandoverRow]] = relationship(back_populates="entry", order_by="HandoverRow.row_index")

    __table_args__ = (UniqueConstraint("plan_id", "class_id"),)


class HandoverRow(OrgScoped, Base):
    """One pupil of a 交接表 (``row_index`` = the printed 序号, from 1) and its reconciliation:
    registered or not, whereabouts (with proof), the date the sending school was notified and
    the case opened for a non-arrival."""

    __tablename__ = "handover_rows"

    id: Mapped[int] = mapped_column(primary_key=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("handover_entries.id"), index=True)
    pupil_id: Mapped[int] = mapped_column(ForeignKey("pupils.id"), index=True)
    row_index: Mapped[int] = mapped_column(Integer)
    registered: Mapped[bool | None] = mapped_column(Boolean)
    registered_on: Mapped[dt.date | None] = mapped_column(Date)
    whereabouts: Mapped[str | None] = mapped_column(String(20))  # forms.codes.HANDOVER_WHEREABOUTS
    whereabouts_proof: Mapped[str | None] = mapped_column(Text)  # e.g. 学籍转接证明 reference
    notified_on: Mapped[dt.date | None] = mapped_column(Date)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"), index=True)
    match_method: Mapped[str | None] = mapped_column(String(16))

    entry: Mapped[HandoverEntry] = relationship(back_populates="rows")
    pupil: Mapped[Pupil] = relationship()

    __table_args__ = (UniqueConstraint("entry_id", "row_index"), UniqueConstraint("entry_id", "pupil_id"),
                      CheckConstraint(f"match_method IS NULL OR match_method IN ({in_list(MATCH_METHODS)})",
                                      name="match_method"))


class Registration(OrgScoped, Base):
    """A grade-7 registration (报到注册) at the receiving school (``org_id``), as reported: by ID
    number, 学籍号 or name + birth date. ``status``: matched to a row, pending manual confirmation
    (name + birth match), unexpected (not on any roster for the school: transfer-in) or rejected."""

    __tablename__ = "handover_registrations"

    id: Mapped[int] = mapped_column(primary_key=True)
    pupil_id: Mapped[int | None] = mapped_column(ForeignKey("pupils.id"), index=True)
    id_number: Mapped[str | None] = mapped_column(String(18), index=True)
    xueji_no: Mapped[str | None] = mapped_column(String(19), index=True)
    name: Mapped[str | None] = mapped_column(String(40))
    birth_date: Mapped[dt.date | None] = mapped_column(Date)
    registered_on: Mapped[dt.date] = mapped_column(Date)
    source: Mapped[str] = mapped_column(String(16), default="api")
    status: Mapped[str] = mapped_column(String(12))
    row_id: Mapped[int | None] = mapped_column(ForeignKey("handover_rows.id"), index=True)
    candidate_row_id: Mapped[int | None] = mapped_column(ForeignKey("handover_rows.id"))
    actor: Mapped[str | None] = mapped_column(String(80))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    __table_args__ = (CheckConstraint(f"status IN ({in_list(REGISTRATION_STATUSES)})", name="status"),
                      CheckConstraint(f"source IN ({in_list(REGISTRATION_SOURCES)})", name="source"))
