"""Tables of the case engine (DOMAIN §3, §3.6, §5.5, §8.2): deadline instances, alerts, the 问题清单,
closure evidence, department referrals (部门函件), attendance records and admin-loaded holiday tables.

Persuasion attempts are ``CaseEvent`` rows of kind ``attempt`` (the shared event contract), not a
table of their own. Every row that belongs to a place carries ``org_id`` (``OrgScoped``).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from cases.store.models import Base, Case, OrgScoped, Pupil, in_list, utcnow

DEADLINE_STATUSES = ("waiting", "open", "met", "breached", "cancelled", "elapsed")
ALERT_KINDS = ("due_soon", "breach")
PROBLEM_SOURCES = ("timer_breach", "manual", "inspection")
PROBLEM_STATUSES = ("open", "resolved")
# Attendance entry types: the CSV/XLSX column 类型 maps its Chinese label to these codes.
ATTENDANCE_KINDS = ("unexcused", "sick", "personal", "other_legit")


class Deadline(OrgScoped, Base):
    """One running timer of a case (DOMAIN §3.6): ``timer`` is the profile timer name. ``due_on`` is
    NULL while the start event is unknown (status ``waiting``, e.g. the township's receipt of the
    报告单). ``provisional`` + ``warning`` when a year's holiday arrangement was unknown. Timers that
    are periods rather than duties (辍学认定, observation, relapse watch) have ``alerting`` False:
    they end ``elapsed`` and raise no alert."""

    __tablename__ = "engine_deadlines"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    timer: Mapped[str] = mapped_column(String(40))
    label: Mapped[str] = mapped_column(String(120), default="")
    actor: Mapped[str] = mapped_column(String(40), default="")
    unit: Mapped[str] = mapped_column(String(16))
    length: Mapped[int] = mapped_column(Integer)
    start_event: Mapped[str] = mapped_column(String(40))
    start_on: Mapped[dt.date | None] = mapped_column(Date)
    due_on: Mapped[dt.date | None] = mapped_column(Date, index=True)
    provisional: Mapped[bool] = mapped_column(Boolean, default=False)
    warning: Mapped[str | None] = mapped_column(Text)
    alerting: Mapped[bool] = mapped_column(Boolean, default=True)
    status: Mapped[str] = mapped_column(String(12), default="open", index=True)
    transition: Mapped[str | None] = mapped_column(String(8))  # the transition that started it
    alerted_t1_at: Mapped[dt.datetime | None] = mapped_column()
    breached_at: Mapped[dt.datetime | None] = mapped_column()
    closed_at: Mapped[dt.datetime | None] = mapped_column()
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    case: Mapped[Case] = relationship()

    __table_args__ = (CheckConstraint(f"status IN ({in_list(DEADLINE_STATUSES)})", name="status"),)


class Alert(OrgScoped, Base):
    """An alert to the responsible actor: ``due_soon`` (T−1) or ``breach``. One per deadline and
    kind (the sweep is idempotent)."""

    __tablename__ = "engine_alerts"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    deadline_id: Mapped[int] = mapped_column(ForeignKey("engine_deadlines.id"), index=True)
    kind: Mapped[str] = mapped_column(String(12))
    timer: Mapped[str] = mapped_column(String(40))
    actor: Mapped[str] = mapped_column(String(40), default="")
    due_on: Mapped[dt.date] = mapped_column(Date)
    message: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    read_at: Mapped[dt.datetime | None] = mapped_column()

    __table_args__ = (UniqueConstraint("deadline_id", "kind"),
                      CheckConstraint(f"kind IN ({in_list(ALERT_KINDS)})", name="kind"))


class Problem(OrgScoped, Base):
    """An entry of the 问题清单 (DOMAIN §8.2): what went wrong, who answers for it, the measures
    and their deadline. Created once per breached deadline, or by hand."""

    __tablename__ = "engine_problems"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"), index=True)
    deadline_id: Mapped[int | None] = mapped_column(ForeignKey("engine_deadlines.id"), unique=True)
    source: Mapped[str] = mapped_column(String(16), default="manual")
    category: Mapped[str | None] = mapped_column(String(40))
    description: Mapped[str] = mapped_column(Text)
    responsible_person: Mapped[str | None] = mapped_column(String(80))
    responsible_unit: Mapped[str | None] = mapped_column(String(100))
    measures: Mapped[str | None] = mapped_column(Text)
    due_on: Mapped[dt.date | None] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(12), default="open", index=True)
    created_by: Mapped[str | None] = mapped_column(String(80))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    resolved_at: Mapped[dt.datetime | None] = mapped_column()

    __table_args__ = (CheckConstraint(f"source IN ({in_list(PROBLEM_SOURCES)})", name="source"),
                      CheckConstraint(f"status IN ({in_list(PROBLEM_STATUSES)})", name="status"))


class Evidence(OrgScoped, Base):
    """A closure evidence item (DOMAIN §3.5): attached by someone, verified by a named person.
    ``kind`` is a ``cases.closure.EVIDENCE_KINDS`` code; ``value`` the placement code where the
    kind needs one; ``issuer`` an ``ORGS`` code; ``partners`` department codes."""

    __tablename__ = "engine_evidence"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    kind: Mapped[str] = mapped_column(String(40))
    document_id: Mapped[str | None] = mapped_column(ForeignKey("documents.id"))
    upload_id: Mapped[int | None] = mapped_column(ForeignKey("uploads.id"))
    value: Mapped[str | None] = mapped_column(String(40))
    issuer: Mapped[str | None] = mapped_column(String(40))
    partners: Mapped[list] = mapped_column(JSON, default=list)
    note: Mapped[str | None] = mapped_column(Text)
    attached_by: Mapped[str | None] = mapped_column(String(80))
    attached_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    verified_by: Mapped[str | None] = mapped_column(String(80))
    verified_at: Mapped[dt.datetime | None] = mapped_column()

    case: Mapped[Case] = relationship()


class Referral(OrgScoped, Base):
    """A 部门函件 / 协查函 (DOMAIN §3.1, §5.5): ``org_id`` is the sending unit; ``to_department`` a
    ``PARTNER_DEPARTMENTS`` code (``to_org_id`` when the receiving unit is in the tree)."""

    __tablename__ = "engine_referrals"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    to_department: Mapped[str] = mapped_column(String(20))
    to_org_id: Mapped[int | None] = mapped_column(ForeignKey("orgs.id"))
    to_unit_name: Mapped[str | None] = mapped_column(String(100))
    reason: Mapped[str] = mapped_column(Text)
    request: Mapped[str | None] = mapped_column(Text)
    sent_on: Mapped[dt.date] = mapped_column(Date)
    document_id: Mapped[str | None] = mapped_column(ForeignKey("documents.id"))
    acknowledged_on: Mapped[dt.date | None] = mapped_column(Date)
    reply: Mapped[str | None] = mapped_column(Text)
    replied_on: Mapped[dt.date | None] = mapped_column(Date)
    created_by: Mapped[str | None] = mapped_column(String(80))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class AttendanceRecord(OrgScoped, Base):
    """One pupil's absence entry for one day (``org_id``: the school). Only absences are recorded:
    a school day without a record is a day present."""

    __tablename__ = "engine_attendance"

    id: Mapped[int] = mapped_column(primary_key=True)
    pupil_id: Mapped[int] = mapped_column(ForeignKey("pupils.id"), index=True)
    day: Mapped[dt.date] = mapped_column(Date, index=True)
    kind: Mapped[str] = mapped_column(String(12))
    note: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str | None] = mapped_column(String(255))  # file name of the import
    recorded_by: Mapped[str | None] = mapped_column(String(80))
    recorded_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    pupil: Mapped[Pupil] = relationship()

    __table_args__ = (UniqueConstraint("pupil_id", "day"),
                      CheckConstraint(f"kind IN ({in_list(ATTENDANCE_KINDS)})", name="kind"))


class HolidayTableRow(Base):
    """An admin-loaded statutory holiday arrangement (``cases.calendars.HolidayTable.to_dict``)."""

    __tablename__ = "engine_holiday_tables"

    year: Mapped[int] = mapped_column(Integer, primary_key=True)
    data: Mapped[dict] = mapped_column(JSON)
    source: Mapped[str | None] = mapped_column(Text)
    loaded_by: Mapped[str | None] = mapped_column(String(80))
    loaded_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class InstalledProfile(Base):
    """A region profile installed by an administrator (the JSON of ``cases.engine.profiles``), used
    instead of the shipped file of the same name. ``org_id`` is the jurisdiction it was installed
    for (None: the whole installation): only an administrator of that node or above may replace it,
    and only counties below it may use it."""

    __tablename__ = "engine_region_profiles"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    org_id: Mapped[int | None] = mapped_column(ForeignKey("orgs.id"), index=True)
    title: Mapped[str] = mapped_column(String(200))
    data: Mapped[dict] = mapped_column(JSON)
    sha256: Mapped[str] = mapped_column(String(64))
    installed_by: Mapped[str] = mapped_column(String(80))
    installed_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


__all__ = ["Deadline", "Alert", "Problem", "Evidence", "Referral", "AttendanceRecord", "HolidayTableRow",
           "InstalledProfile",
           "DEADLINE_STATUSES", "ALERT_KINDS", "ATTENDANCE_KINDS"]
