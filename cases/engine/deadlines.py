"""Deadline arithmetic (DOMAIN §3.6): working days, calendar days, school days, calendar months,
timers from the region profile, and the T−1 / breach alerts.

Counting convention (民法典 第二百零一条: the start day is not counted): day 1 of an N-day period
is the first counted day *after* the start event. So 5 working days after service on Fri
2024-09-27 end on 2024-10-10 (Sun 9-29 is a 调休 working day, 10-1..10-7 is the holiday, Sat 10-12
would be the next make-up day).

A result that touched a year whose holiday arrangement is unknown is ``provisional`` and carries a
Chinese ``warning`` that must be shown with the date. It is never silently wrong.
"""

from __future__ import annotations

import calendar
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from cases.engine.calendars import (
    DayInfo,
    HolidayTable,
    HolidayTables,
    SchoolCalendar,
    chinese_calendar_years,
    day_info,
    provisional_warning,
)
from forms.errors import ValidationFailed
from forms.validators import format_date

__all__ = [
    "UNITS", "DeadlineResult", "DayCount", "Timer", "Alert", "HolidayTable", "HolidayTables",
    "SchoolCalendar", "chinese_calendar_years", "add_working_days", "add_calendar_days",
    "add_school_days", "count_school_days", "count_working_days", "add_months", "exceeds_months",
    "first_day_exceeding_months", "due_date", "day_before", "alerts",
]

UNIT_LABELS = {
    "working_day": "个工作日",
    "calendar_day": "日",
    "school_day": "个教学日",
    "month": "个月",
}
UNITS = frozenset(UNIT_LABELS)

# Longest search for N counted days; a calendar with no counted day at all would loop forever.
_MAX_SCAN_DAYS = 3 * 366


@dataclass(frozen=True)
class DeadlineResult:
    """A computed date. ``provisional`` when a year's holiday arrangement was unknown; then
    ``warning`` (Chinese, for users) says so and ``unknown_years`` lists the years."""

    date: dt.date
    provisional: bool = False
    warning: str | None = None
    unknown_years: tuple[int, ...] = ()

    def iso(self) -> str:
        return self.date.isoformat()


@dataclass(frozen=True)
class DayCount:
    """A number of counted days, provisional if some day's classification was unknown."""

    days: int
    provisional: bool = False
    warning: str | None = None
    unknown_years: tuple[int, ...] = ()


def _result(day: dt.date, unknown: set[int]) -> DeadlineResult:
    years = tuple(sorted(unknown))
    return DeadlineResult(day, bool(years), provisional_warning(years), years)


def _step_counted(start: dt.date, n: int, classify: Callable[[dt.date], DayInfo]) -> DeadlineResult:
    """Walk from ``start`` (not counted) to the n-th counted day; backwards if n < 0."""
    if isinstance(start, dt.datetime):
        start = start.date()
    if n == 0:
        return DeadlineResult(start)
    step = dt.timedelta(days=1 if n > 0 else -1)
    remaining, day, unknown, scanned = abs(n), start, set(), 0
    while remaining:
        day += step
        scanned += 1
        if scanned > _MAX_SCAN_DAYS + abs(n) * 7:
            raise ValidationFailed(f"从 {start} 起 {scanned} 日内找不到第 {abs(n)} 个计数日，请检查日历设置",
                                   fields={"calendar": "no counted days"})
        info = classify(day)
        if not info.known:
            unknown.add(day.year)
        if info.is_workday:
            remaining -= 1
    return _result(day, unknown)


def add_working_days(start: dt.date, n: int, *, holidays: HolidayTables | None = None) -> DeadlineResult:
    """The n-th statutory working day after ``start`` (day 1 = first working day after start;
    n < 0 counts backwards, n = 0 returns ``start``). Statutory holidays and 调休 make-up days come
    from chinese-calendar, or from ``holidays`` for years it does not know (a loaded table wins).
    Years known to neither are computed on weekends only and the result is provisional."""
    return _step_counted(start, n, lambda d: day_info(d, holidays))


def add_calendar_days(start: dt.date, n: int) -> DeadlineResult:
    """``start`` plus n calendar days (never provisional)."""
    if isinstance(start, dt.datetime):
        start = start.date()
    return DeadlineResult(start + dt.timedelta(days=n))


def add_school_days(start: dt.date, n: int, calendar: SchoolCalendar) -> DeadlineResult:
    """The n-th school day after ``start`` according to ``calendar``."""
    return _step_counted(start, n, calendar.day_info)


def _count(first: dt.date, last: dt.date, classify: Callable[[dt.date], DayInfo]) -> DayCount:
    if last < first:
        return DayCount(0)
    days, unknown, day = 0, set(), first
    while day <= last:
        info = classify(day)
        if not info.known:
            unknown.add(day.year)
        days += info.is_workday
        day += dt.timedelta(days=1)
    years = tuple(sorted(unknown))
    return DayCount(days, bool(years), provisional_warning(years), years)


def count_school_days(first_absent: dt.date, today: dt.date, calendar: SchoolCalendar) -> DayCount:
    """School days from ``first_absent`` through ``today``, both included (0 if today is earlier):
    the number of unexcused days of an unbroken absence."""
    return _count(first_absent, today, calendar.day_info)


def count_working_days(first: dt.date, last: dt.date, *, holidays: HolidayTables | None = None) -> DayCount:
    """Statutory working days from ``first`` through ``last``, both included."""
    return _count(first, last, lambda d: day_info(d, holidays))


def add_months(start: dt.date, months: int) -> dt.date:
    """The corresponding day ``months`` later; if that month has no such day, its last day
    (民法典 第二百零二条). Jan 31 + 1 month = Feb 28 (Feb 29 in a leap year)."""
    index = start.month - 1 + months
    year, month = start.year + index // 12, index % 12 + 1
    return dt.date(year, month, min(start.day, calendar.monthrange(year, month)[1]))


def first_day_exceeding_months(start: dt.date, months: int = 1) -> dt.date:
    """First day on which more than ``months`` months have passed since ``start``.

    The period starts the day after ``start`` and ends on the corresponding day ``months`` later
    (or month end, see ``add_months``); "超出1个月" is reached the day after that end. Examples:
    Mar 15 -> Apr 16; Jan 31 -> Mar 1 (2025) and Mar 1 (2024: period ends Feb 29)."""
    return add_months(start, months) + dt.timedelta(days=1)


def exceeds_months(start: dt.date, today: dt.date, months: int = 1) -> bool:
    """True when strictly more than ``months`` calendar months have passed from ``start`` to ``today``."""
    return today >= first_day_exceeding_months(start, months)


@dataclass(frozen=True)
class Timer:
    """A deadline defined by the region profile: ``length`` counted ``unit``s after the
    ``start_event``. ``exclusive`` marks "超过 N" thresholds (the event is reached the day after
    the period ends); deadlines ("N日内") are inclusive: ``due`` is the last permitted day."""

    name: str
    unit: str
    length: int
    start_event: str
    label: str = ""
    actor: str = ""
    exclusive: bool = False

    def __post_init__(self):
        if self.unit not in UNITS:
            raise ValidationFailed(f"计时器 {self.name} 的单位 {self.unit!r} 无效，应为 {sorted(UNITS)}",
                                   fields={f"timers.{self.name}.unit": "unknown unit"})
        if self.length < 0:
            raise ValidationFailed(f"计时器 {self.name} 的长度不能为负数",
                                   fields={f"timers.{self.name}.length": "<0"})

    def describe(self) -> str:
        """e.g. '5个工作日' / '超过1个月'."""
        text = f"{self.length}{UNIT_LABELS[self.unit]}"
        return f"超过{text}" if self.exclusive else text


def due_date(timer: Timer, start: dt.date, *, holidays: HolidayTables | None = None,
             school_calendar: SchoolCalendar | None = None) -> DeadlineResult:
    """When ``timer`` started on ``start`` falls due: the last permitted day of an inclusive
    deadline, or for an ``exclusive`` threshold the first day it is exceeded."""
    # An exclusive threshold ("超过N") is reached on the (N+1)-th counted day; for months the
    # day after the period's last day.
    length = timer.length + (1 if timer.exclusive and timer.unit != "month" else 0)
    if timer.unit == "working_day":
        return add_working_days(start, length, holidays=holidays)
    if timer.unit == "calendar_day":
        return add_calendar_days(start, length)
    if timer.unit == "month":
        end = add_months(start, timer.length)
        return DeadlineResult(end + dt.timedelta(days=1) if timer.exclusive else end)
    if school_calendar is None:
        raise ValidationFailed(f"期限“{timer.label or timer.name}”以教学日计算，需要提供学校校历",
                               fields={"school_calendar": "required"})
    return add_school_days(start, length, school_calendar)


def day_before(timer: Timer, due: dt.date, *, holidays: HolidayTables | None = None,
               school_calendar: SchoolCalendar | None = None) -> DeadlineResult:
    """T−1: the counted day before ``due`` in the timer's unit (the previous working day for
    working-day timers, the previous school day for school-day timers, else the previous day)."""
    if timer.unit == "working_day":
        return add_working_days(due, -1, holidays=holidays)
    if timer.unit == "school_day" and school_calendar is not None:
        return add_school_days(due, -1, school_calendar)
    return add_calendar_days(due, -1)


@dataclass(frozen=True)
class Alert:
    """An alert for the responsible actor. ``kind`` is ``due_soon`` (T−1) or ``breach``; a breach
    goes on the 问题清单 (``problem_list``)."""

    kind: str
    timer: str
    actor: str
    due: dt.date
    on: dt.date
    message: str
    problem_list: bool = False
    provisional: bool = False
    warning: str | None = None


def alerts(timer: Timer, due: DeadlineResult | dt.date, today: dt.date, *,
           holidays: HolidayTables | None = None,
           school_calendar: SchoolCalendar | None = None) -> list[Alert]:
    """Alerts for ``timer`` due on ``due`` as seen on ``today``: ``due_soon`` from T−1 through the
    due day (a daily job that missed T−1, e.g. over a weekend, still warns), ``breach`` after it.
    Callers de-duplicate by (case, timer, kind)."""
    if not isinstance(due, DeadlineResult):
        due = DeadlineResult(due)
    label = timer.label or timer.name
    note = f"（{due.warning}）" if due.warning else ""
    if today > due.date:
        return [Alert("breach", timer.name, timer.actor, due.date, today,
                      f"{label}已于{format_date(due.date)}到期，已逾期{(today - due.date).days}日{note}",
                      problem_list=True, provisional=due.provisional, warning=due.warning)]
    before = day_before(timer, due.date, holidays=holidays, school_calendar=school_calendar)
    if before.date <= today <= due.date:
        return [Alert("due_soon", timer.name, timer.actor, due.date, before.date,
                      f"{label}将于{format_date(due.date)}到期{note}",
                      provisional=due.provisional or before.provisional,
                      warning=due.warning or before.warning)]
    return []
