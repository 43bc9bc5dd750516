"""The reporting calendar (DOMAIN §6.3, §0.4): which unit files which ledger, as of which date, by when.

From the region profile (``reporting``): the township's half-monthly report of its township ledger
(``township_report_schedule``: 贵州 the 17th as of the 15th, the 2nd as of the previous month-end
[CP]) and the prefecture's report of its ledger on the 18th as of the 15th and on the 3rd as of the
previous month-end ([S3]). A profile without them (卫辉) has no such duties.

- ``duties(session, org, start, end)``: every report due in ``[start, end]`` for the units in the
  subtree of ``org``, with what was filed for it (``filed`` / ``filed_late`` / ``due`` / ``overdue``).
- ``not_filed(session, org, today)``: the reports whose as-of date has passed and that are not filed
  (a 更正 does not count as the report; the original filing does).
- ``check_as_of(kind, as_of)``: snapshots are filed only as of a defined date — the 15th or the
  last day of a month, the two half-monthly cuts ([S3]); any other date is refused (422).
- ``remind(session, today)``: the reminders (T−1, due today, overdue), one row per report and
  stage (``ReportReminder``; running it again adds nothing).

A unit's profile is the one set on it or above it (the county), else — for a prefecture above
the counties — the one its counties run.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cases.engine.profiles import DEFAULT_PROFILE, PrefectureReport, RegionProfile, load_profile
from cases.ledgers.models import LedgerSnapshot, ReportReminder
from cases.store.models import Org, ancestors
from forms.errors import ValidationFailed

CHINA_TZ = dt.timezone(dt.timedelta(hours=8))
REMINDER_STAGES = {"due_soon": "明日截止", "due_today": "今日截止", "overdue": "逾期未报送"}
# (unit kind, ledger kind, whom it goes to) for each report line of the profile.
REPORT_LINES = {
    "township": ("township", "县政府和县教育部门", "乡镇半月报（乡级台账）"),
    "prefecture": ("prefecture", "省教育督导室和省教育厅", "市(州)半月报（市(州)级台账）"),
}


def month_end(year: int, month: int) -> dt.date:
    return dt.date(year + (month == 12), month % 12 + 1, 1) - dt.timedelta(days=1)


def defined_as_of(day: dt.date) -> bool:
    """A defined as-of date: the 15th or the last day of a month (the half-monthly cuts)."""
    return day.day == 15 or day == month_end(day.year, day.month)


def nearest_as_of(day: dt.date) -> tuple[dt.date, dt.date]:
    """The defined as-of dates just before and just after ``day``."""
    prev_end = dt.date(day.year, day.month, 1) - dt.timedelta(days=1)
    mid, end = dt.date(day.year, day.month, 15), month_end(day.year, day.month)
    before = mid if day > mid else prev_end
    after = mid if day < mid else end
    return before, after


def check_as_of(kind: str, as_of: dt.date | None, today: dt.date) -> dt.date:
    """The as-of date a snapshot may be filed for, or 422 naming ``as_of`` and the dates nearby."""
    if as_of is None:
        last = nearest_as_of(today)[0] if not defined_as_of(today) else today
        raise ValidationFailed("报送台账须写明统计时点（截至日期）",
                               fields={"as_of": f"必填：每月15日或月末，最近的是 {last.isoformat()}"})
    if not defined_as_of(as_of):
        before, after = nearest_as_of(as_of)
        raise ValidationFailed(f"{as_of.isoformat()}不是规定的统计时点：台账只能截至每月15日或月末报送",
                               fields={"as_of": f"应为15日或月末，如 {before.isoformat()} 或 {after.isoformat()}；"
                                                "已报送的台账如需修改请提交更正"})
    return as_of


def as_of_for(rule: PrefectureReport, due_on: dt.date) -> dt.date:
    if rule.as_of == "day_15":
        return dt.date(due_on.year, due_on.month, 15)
    return dt.date(due_on.year, due_on.month, 1) - dt.timedelta(days=1)


def _due_months(start: dt.date, end: dt.date):
    y, m = start.year, start.month
    while (y, m) <= (end.year, end.month):
        yield y, m
        y, m = (y + (m == 12), m % 12 + 1)


def schedule_of(profile: RegionProfile, unit_kind: str) -> tuple[PrefectureReport, ...]:
    if unit_kind == "township":
        return profile.reporting.township_schedule if profile.reporting.township_report else ()
    if unit_kind == "prefecture":
        return profile.reporting.prefecture_report
    return ()


def unit_profile(session: Session, org: Org) -> RegionProfile:
    """The profile a unit reports under (module doc)."""
    for node in reversed(ancestors(session, org, include_self=True)):
        if node.region_profile:
            return load_profile(node.region_profile)
    below = session.scalar(select(Org.region_profile).where(Org.path.startswith(org.path),
                                                             Org.region_profile.is_not(None)).order_by(Org.path))
    return load_profile(below or DEFAULT_PROFILE)


@dataclass(frozen=True)
class Duty:
    """One report a unit owes: the ledger of ``kind`` as of ``as_of``, due on ``due_on``."""

    org_id: int
    org_name: str
    org_path: str
    kind: str
    as_of: dt.date
    due_on: dt.date
    to: str
    title: str
    profile: str
    snapshot_id: int | None = None
    filed_at: dt.datetime | None = None

    def status(self, today: dt.date) -> str:
        if self.filed_at is not None:
            filed_on = _china_date(self.filed_at)
            return "filed" if filed_on <= self.due_on else "filed_late"
        if today > self.due_on:
            return "overdue"
        return "due" if today >= self.as_of else "upcoming"

    def as_json(self, today: dt.date) -> dict:
        return {"org_id": self.org_id, "org_name": self.org_name, "kind": self.kind, "title": self.title,
                "to": self.to, "as_of": self.as_of.isoformat(), "due_on": self.due_on.isoformat(),
                "profile": self.profile, "status": self.status(today), "snapshot_id": self.snapshot_id,
                "filed_at": self.filed_at.isoformat() if self.filed_at else None}


def _china_date(value: dt.datetime) -> dt.date:
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(CHINA_TZ).date()


def _units(session: Session, org: Org) -> list[Org]:
    """The reporting units (townships, prefectures) at, below and — for a prefecture — above ``org``."""
    kinds = tuple(REPORT_LINES)
    found = list(session.scalars(select(Org).where(Org.path.startswith(org.path), Org.kind.in_(kinds))
                                 .order_by(Org.path)))
    return found


def duties(session: Session, org: Org, start: dt.date, end: dt.date) -> list[Duty]:
    """Every report due between ``start`` and ``end`` (inclusive) for the units under ``org``."""
    out: list[Duty] = []
    for unit in _units(session, org):
        profile = unit_profile(session, unit)
        ledger_kind, to, title = REPORT_LINES[unit.kind]
        for rule in schedule_of(profile, unit.kind):
            for y, m in _due_months(start, end):
                due_on = dt.date(y, m, rule.due_day)
                if start <= due_on <= end:
                    out.append(Duty(unit.id, unit.name, unit.path, ledger_kind, as_of_for(rule, due_on), due_on,
                                    to, title, profile.name))
    return _with_filings(session, sorted(out, key=lambda d: (d.due_on, d.org_path, d.as_of)))


def _with_filings(session: Session, found: list[Duty]) -> list[Duty]:
    if not found:
        return found
    rows = session.execute(select(LedgerSnapshot.id, LedgerSnapshot.org_id, LedgerSnapshot.kind,
                                  LedgerSnapshot.as_of, LedgerSnapshot.filed_at)
                           .where(LedgerSnapshot.status == "filed",
                                  LedgerSnapshot.org_id.in_({d.org_id for d in found}),
                                  LedgerSnapshot.as_of.in_({d.as_of for d in found}))
                           .order_by(LedgerSnapshot.filed_at)).all()
    first: dict[tuple, tuple[int, dt.datetime]] = {}
    for sid, org_id, kind, as_of, filed_at in rows:
        first.setdefault((org_id, kind, as_of), (sid, filed_at))
    out = []
    for d in found:
        hit = first.get((d.org_id, d.kind, d.as_of))
        out.append(Duty(**{**d.__dict__, "snapshot_id": hit[0], "filed_at": hit[1]}) if hit else d)
    return out


def calendar(session: Session, org: Org, start: dt.date, end: dt.date, today: dt.date) -> list[dict]:
    if end < start:
        raise ValidationFailed("结束日期早于开始日期", fields={"to": "应不早于 from"})
    if (end - start).days > 400:
        raise ValidationFailed("报送日历一次最多查询400天", fields={"to": "区间过长"})
    return [d.as_json(today) for d in duties(session, org, start, end)]


def not_filed(session: Session, org: Org, today: dt.date, *, lookback_days: int = 92) -> list[dict]:
    """Reports of the units under ``org`` whose as-of date has passed and that nobody filed (due
    in the last ``lookback_days`` days or in the coming month), oldest due date first."""
    found = duties(session, org, today - dt.timedelta(days=lookback_days), today + dt.timedelta(days=31))
    return [d.as_json(today) for d in found if d.filed_at is None and d.as_of <= today]


def reminder_message(duty: Duty, stage: str) -> str:
    when = f"{duty.due_on.month}月{duty.due_on.day}日"
    cut = f"截至{duty.as_of.month}月{duty.as_of.day}日"
    if stage == "overdue":
        return f"{duty.org_name}{duty.title}（{cut}）应于{when}报送{duty.to}，至今未报送"
    return f"{duty.org_name}{duty.title}（{cut}）应于{when}报送{duty.to}（{REMINDER_STAGES[stage]}）"


def remind(session: Session, today: dt.date, *, org: Org | None = None) -> list[ReportReminder]:
    """Reminders for the reports not filed: the day before the due date (T−1), on it, and once
    when it has passed (overdue). One ``ReportReminder`` per report and stage; returns the new ones."""
    roots = [org] if org is not None else list(session.scalars(select(Org).where(Org.parent_id.is_(None))))
    made: list[ReportReminder] = []
    for root in roots:
        for d in duties(session, root, today - dt.timedelta(days=31), today + dt.timedelta(days=1)):
            if d.filed_at is not None:
                continue
            stage = ("due_soon" if d.due_on == today + dt.timedelta(days=1) else
                     "due_today" if d.due_on == today else "overdue" if d.due_on < today else None)
            if stage is None:
                continue
            exists = session.scalar(select(ReportReminder.id).where(
                ReportReminder.org_id == d.org_id, ReportReminder.kind == d.kind, ReportReminder.as_of == d.as_of,
                ReportReminder.stage == stage))
            if exists is not None:
                continue
            row = ReportReminder(org_id=d.org_id, kind=d.kind, as_of=d.as_of, due_on=d.due_on, stage=stage,
                                 message=reminder_message(d, stage))
            try:
                with session.begin_nested():
                    session.add(row)
                    session.flush()
            except IntegrityError:  # another run made it just now
                continue
            made.append(row)
    return made


def reminder_json(r: ReportReminder) -> dict:
    return {"id": r.id, "org_id": r.org_id, "kind": r.kind, "as_of": r.as_of.isoformat(),
            "due_on": r.due_on.isoformat(), "stage": r.stage, "message": r.message,
            "created_at": r.created_at.isoformat()}
