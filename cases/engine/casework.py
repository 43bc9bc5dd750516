"""The case engine in the database (DOMAIN §3, §3.6, §8.2, §8.3): the pure workflow
(``cases.engine.workflow``) applied to stored cases.

- ``apply_action`` builds ``CaseFacts`` from the case's events (attempts, service, receipts, facts),
  attendance records and evidence, calls ``workflow.apply``, moves the case, writes the
  ``transition`` event, starts and closes ``Deadline`` rows and logs to the audit trail.
- ``open_case`` opens a new episode through T1 (numbering, relapse tag).
- ``record_service`` / ``record_receipt`` / ``record_attempt`` / ``record_facts`` add the events the
  guards read.
- ``sweep`` evaluates every running deadline: T−1 alerts, breaches (alert + 问题清单 entry, once) and
  the 辍学认定 flag.
- Closure: ``attach_evidence``, ``verify_evidence``, ``close_case`` (refused with what is missing).

Facts that no event records (a court ruling, the student's refusal, the return date...) are given
as ``facts`` in an action's ``data`` or with ``record_facts``; they hold for the current episode
(since the latest T1/T23). Dates of events are China dates (UTC+8).

Command line: ``python -m cases.engine.casework sweep [--today YYYY-MM-DD]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cases.engine import (
    installed,  # noqa: F401  (installed region profiles reach every job)
    workflow,
)
from cases.engine.calendars import HolidayTable, HolidayTables
from cases.engine.closure import EVIDENCE_KINDS, OUTCOMES, EvidenceItem, check_closure
from cases.engine.deadlines import add_working_days, alerts, due_date
from cases.engine.models import Alert, AttendanceRecord, Deadline, Evidence, HolidayTableRow, Problem, Referral
from cases.engine.profiles import DEFAULT_PROFILE, NOTICE_VARIANTS, ORGS, RegionProfile, load_profile
from cases.engine.timers import TIMER_RULES
from cases.store import audit
from cases.store.models import Case, CaseEvent, Document, Org, Pupil, ancestors, in_scope, nearest, utcnow
from cases.store.numbering import next_case_number
from forms import codes
from forms.errors import Conflict, InvalidTransition, NotFound, ValidationFailed
from forms.registry import get_spec
from forms.validators import format_date

log = logging.getLogger(__name__)

CHINA_TZ = dt.timezone(dt.timedelta(hours=8))

# Facts an action's data (``data["facts"]``) or ``record_facts`` may set, by type.
BOOL_FACTS = ("legitimate_reason_verified", "out_of_contact", "court_ruling", "student_refuses",
              "written_statement", "poverty_family", "guardian_refuses", "found", "disability_suspected",
              "over_age", "unregistered_at_term_start", "handover_not_arrived",
              "report_received_by_education")
DATE_FACTS = ("returned_on", "report_received_on", "notice_served_on")
INT_FACTS = ("unexcused_days",)
CHOICE_FACTS = {
    "reason": {c.code for c in codes.DROPOUT_REASONS},
    "deferral_route": {"C2", "C4"},
    "assessment_placement": {"home_taught", "deferred"},
    "notice_variant": set(NOTICE_VARIANTS),
}
FACT_KEYS = frozenset(BOOL_FACTS + DATE_FACTS + INT_FACTS + tuple(CHOICE_FACTS))

EPISODE_STARTS = ("T1", "T23")
# Persuasion-record methods that are home visits (贵州: the report is due after N failed ones).
HOME_VISIT_METHODS = ("visit", "group")
STAGES = ("school", "township", "joint")
# Working days given to fix a breach entered on the 问题清单 [CP].
PROBLEM_FIX_WORKING_DAYS = 3


class ClosureRefused(Conflict):
    """销号 refused: the outcome's evidence set is incomplete or unverified."""

    code = "closure_refused"


# ---- small helpers --------------------------------------------------------------------------------

def china_date(value: dt.datetime | dt.date | None) -> dt.date:
    """The China calendar date of ``value`` (today when None)."""
    if value is None:
        return dt.datetime.now(CHINA_TZ).date()
    if isinstance(value, dt.datetime):
        return (value if value.tzinfo else value.replace(tzinfo=CHINA_TZ)).astimezone(CHINA_TZ).date()
    return value


def _at(value: dt.datetime | dt.date | None) -> dt.datetime:
    """An aware timestamp for an event: a bare date is noon China time (today: now)."""
    if value is None:
        return utcnow()
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=CHINA_TZ)
    if value == china_date(None):
        return utcnow()
    return dt.datetime.combine(value, dt.time(12, 0), CHINA_TZ)


def _date(value: Any, key: str) -> dt.date:
    if isinstance(value, dt.datetime):
        return china_date(value)
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError as e:
        raise ValidationFailed(f"{key} 应为日期（YYYY-MM-DD），实为 {value!r}", fields={key: "日期格式错误"}) from e


def profile_name_for(session: Session, org: Org) -> str:
    """The region profile configured on the nearest ancestor (the county), else the default."""
    for node in reversed(ancestors(session, org, include_self=True)):
        if node.region_profile:
            return node.region_profile
    return DEFAULT_PROFILE


def case_profile(case: Case) -> RegionProfile:
    """The region profile a case runs under (stored on the case when it was opened)."""
    return load_profile(case.profile or None)


def holiday_tables(session: Session) -> HolidayTables:
    """The statutory holiday tables: files in ``cases/holidays`` plus the admin-loaded rows
    (a loaded row wins for its year)."""
    tables = HolidayTables.load_dir()
    for row in session.scalars(select(HolidayTableRow)):
        tables = tables.with_table(HolidayTable.from_dict(row.data))
    return tables


def get_case(session: Session, case_id: int) -> Case:
    case = session.get(Case, case_id)
    if case is None:
        raise NotFound(f"案件 {case_id} 不存在")
    return case


def clean_facts(raw: Mapping[str, Any] | None) -> dict:
    """Validate fact values (``FACT_KEYS``); returns JSON-safe values. Errors name each key."""
    out: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for key, value in (raw or {}).items():
        path = f"facts.{key}"
        if key not in FACT_KEYS:
            errors[path] = "未知的案件事实，可选：" + "、".join(sorted(FACT_KEYS))
        elif key in BOOL_FACTS:
            if not isinstance(value, bool):
                errors[path] = "应为 true/false"
            else:
                out[key] = value
        elif key in DATE_FACTS:
            if value is None:
                out[key] = None
                continue
            try:
                out[key] = _date(value, path).isoformat()
            except ValidationFailed:
                errors[path] = "日期格式错误（YYYY-MM-DD）"
        elif key in INT_FACTS:
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                errors[path] = "应为非负整数"
            else:
                out[key] = value
        else:
            if value is not None and value not in CHOICE_FACTS[key]:
                errors[path] = "可选：" + "、".join(sorted(CHOICE_FACTS[key]))
            else:
                out[key] = value
    if errors:
        raise ValidationFailed(f"案件事实有{len(errors)}处错误", fields=errors)
    return out


# ---- facts from the database ----------------------------------------------------------------------

def _events(session: Session, case: Case) -> list[CaseEvent]:
    return list(session.scalars(select(CaseEvent).where(CaseEvent.case_id == case.id)
                                .order_by(CaseEvent.occurred_at, CaseEvent.id)))


def _episode_events(events: list[CaseEvent]) -> list[CaseEvent]:
    """Events since the latest episode start (T1/T23) of the case."""
    start = 0
    for i, e in enumerate(events):
        if e.kind == "transition" and e.transition in EPISODE_STARTS:
            start = i
    return events[start:]


def _failed(a: Mapping) -> bool:
    return a.get("result") != "agreed"


def attempts_of(session: Session, case: Case) -> list[dict]:
    """The ``attempt`` events of the case's current episode (data dicts, in time order), each
    with its running ``number`` and ``event_id``."""
    out = []
    for e in _episode_events(_events(session, case)):
        if e.kind == "attempt":
            out.append({**e.data, "number": len(out) + 1, "event_id": e.id})
    return out


def absence_runs(records: list[tuple[dt.date, str]], unit: str,
                 holidays: HolidayTables | None = None) -> list[tuple[dt.date, dt.date, int]]:
    """Runs of consecutive unexcused absence from one pupil's records ``(day, kind)``: a run is
    broken by a legitimate-reason entry or by a school day without a record (the pupil was at
    school). School days are statutory working days [CP: the school's own calendar is not stored].
    Each run is (first day, last day, count in ``unit``: recorded school days, or calendar days
    from first to last for ``calendar_day``)."""
    from cases.engine.calendars import day_info

    runs: list[list] = []
    current: list | None = None
    for day, kind in sorted(records):
        if kind != "unexcused":
            current = None
            continue
        if current is not None:
            gap = current[1] + dt.timedelta(days=1)
            broken = False
            while gap < day:
                if day_info(gap, holidays).is_workday:
                    broken = True
                    break
                gap += dt.timedelta(days=1)
            if broken:
                current = None
        if current is None:
            current = [day, day, 0]
            runs.append(current)
        current[1] = day
        current[2] += 1
    out = []
    for first, last, recorded in runs:
        count = (last - first).days + 1 if unit == "calendar_day" else recorded
        out.append((first, last, count))
    return out


def current_absence(session: Session, case: Case, today: dt.date, profile: RegionProfile,
                    holidays: HolidayTables | None = None) -> tuple[int, dt.date | None]:
    """The current absence run (records up to ``today``): its unexcused days in the profile's unit
    and the day it reached the suspect threshold (None if it has not). A run that ended before
    ``today`` by a legitimate-reason entry counts 0."""
    rows = session.execute(select(AttendanceRecord.day, AttendanceRecord.kind)
                           .where(AttendanceRecord.pupil_id == case.pupil_id,
                                  AttendanceRecord.day <= today)).all()
    records = [(d, k) for d, k in rows]
    if not records:
        return 0, None
    runs = absence_runs(records, profile.absence.unit, holidays)
    if not runs:
        return 0, None
    first, last, count = runs[-1]
    latest = max(d for d, _ in records)
    if latest > last:  # a legitimate-reason entry after the run ended it
        return 0, None
    need = profile.absence.suspect_after.minimum
    crossed = None
    if count >= need:
        if profile.absence.unit == "calendar_day":
            crossed = first + dt.timedelta(days=need - 1)
        else:  # the need-th recorded unexcused school day of the run
            crossed = sorted(d for d, k in records if k == "unexcused" and first <= d <= last)[need - 1]
    return count, crossed


def unexcused_days(session: Session, case: Case, today: dt.date, profile: RegionProfile,
                   holidays: HolidayTables | None = None) -> int:
    """Unexcused days of the current absence run (records up to ``today``), in the profile's unit.
    A run that ended before ``today`` by a day present or a legitimate-reason entry counts 0."""
    return current_absence(session, case, today, profile, holidays)[0]


def _previous_return_on(session: Session, case: Case) -> dt.date | None:
    """The latest return date of the pupil's earlier episodes (for the 反弹 tag)."""
    best: dt.date | None = None
    rows = session.scalars(select(CaseEvent).join(Case, Case.id == CaseEvent.case_id)
                           .where(Case.pupil_id == case.pupil_id, CaseEvent.case_id != case.id))
    for e in rows:
        day = None
        if e.kind == "transition" and e.to_state == "RETURNED":
            day = (e.data or {}).get("facts", {}).get("returned_on") or china_date(e.occurred_at).isoformat()
        elif e.kind == "facts" and (e.data or {}).get("returned_on"):
            day = e.data["returned_on"]
        if day:
            d = dt.date.fromisoformat(day)
            best = d if best is None or d > best else best
    return best


def evidence_items(session: Session, case: Case) -> tuple[EvidenceItem, ...]:
    rows = session.scalars(select(Evidence).where(Evidence.case_id == case.id).order_by(Evidence.id))
    return tuple(EvidenceItem(kind=r.kind, verified_by=r.verified_by,
                              verified_on=china_date(r.verified_at) if r.verified_at else None,
                              document_id=r.document_id, value=r.value, issuer=r.issuer,
                              partners=tuple(r.partners or ())) for r in rows)


def build_facts(session: Session, case: Case, today: dt.date, *, extra: Mapping[str, Any] | None = None,
                profile: RegionProfile | None = None, holidays: HolidayTables | None = None) -> workflow.CaseFacts:
    """``CaseFacts`` of ``case`` as of ``today`` from its stored events, attendance and evidence;
    ``extra`` (cleaned facts) overrides what is stored."""
    profile = profile or case_profile(case)
    holidays = holidays if holidays is not None else holiday_tables(session)
    episode = _episode_events(_events(session, case))
    stored: dict[str, Any] = {}
    entered_suspected: dt.date | None = None
    served: dt.date | None = None
    variant: str | None = None
    received: dt.date | None = None
    by_education = False
    attempts: list[dict] = []
    for e in episode:
        data = e.data or {}
        if e.kind == "transition":
            stored.update(data.get("facts") or {})
            if e.to_state == "SUSPECTED" and e.from_state != "SUSPECTED":
                entered_suspected = china_date(e.occurred_at)
        elif e.kind == "facts":
            stored.update({k: v for k, v in data.items() if k in FACT_KEYS})
        elif e.kind == "attempt":
            attempts.append(data)
        elif e.kind == "service" and data.get("complete"):
            served = dt.date.fromisoformat(data["served_on"])
            doc = session.get(Document, data.get("document_id")) if data.get("document_id") else None
            if doc is not None and any(x.action == "service" for x in get_spec(doc.form).effects):
                variant = doc.variant  # the variant of the notice served
        elif e.kind == "receipt":
            day = dt.date.fromisoformat(data["received_on"])
            if data.get("by", "township") == "township":
                received = day if received is None or day < received else received
            else:
                by_education = True
    stored.update(extra or {})

    window_due = None
    if entered_suspected is not None and profile.school.window_timer:
        window_due = due_date(profile.timer(profile.school.window_timer), entered_suspected,
                              holidays=holidays).date

    def in_window(a: Mapping) -> bool:
        day = dt.date.fromisoformat(a["date"])
        return (entered_suspected is not None and day >= entered_suspected
                and (window_due is None or day <= window_due))

    school = [a for a in attempts if a.get("stage", "school") == "school" and _failed(a)]
    visits = sorted(a["date"] for a in school if a.get("method") in HOME_VISIT_METHODS)
    need_visits = profile.school.home_visits_before_report or 0
    visits_reached = dt.date.fromisoformat(visits[need_visits - 1]) if need_visits and len(visits) >= need_visits \
        else None
    absent_days, crossed = current_absence(session, case, today, profile, holidays)
    township = [a for a in attempts if a.get("stage") == "township" and _failed(a)]
    joint = [a for a in attempts if a.get("stage") == "joint" and _failed(a)]
    lost = bool(attempts) and attempts[-1].get("result") == "lost"

    def d(key: str, default: dt.date | None) -> dt.date | None:
        value = stored.get(key, None)
        return dt.date.fromisoformat(value) if value else default

    facts = workflow.CaseFacts(
        today=today,
        unexcused_days=max(stored.get("unexcused_days") or 0, absent_days),
        unregistered_at_term_start=bool(stored.get("unregistered_at_term_start")),
        handover_not_arrived=bool(stored.get("handover_not_arrived")),
        legitimate_reason_verified=bool(stored.get("legitimate_reason_verified")),
        reason=stored.get("reason") or case.reason_code,
        entered_suspected_on=entered_suspected,
        suspect_threshold_crossed_on=crossed,
        school_attempts_in_window=sum(1 for a in school if in_window(a)),
        home_visits_failed=len(visits),
        home_visits_reached_on=visits_reached,
        out_of_contact=bool(stored.get("out_of_contact", lost)),
        report_received_on=d("report_received_on", received),
        report_received_by_education=bool(stored.get("report_received_by_education", by_education)),
        township_attempts_failed=len(township),
        notice_variant=stored.get("notice_variant") or variant,
        notice_served_on=d("notice_served_on", served),
        returned_on=d("returned_on", None),
        joint_attempts=len(joint),
        joint_attempts_with_partner=sum(1 for a in joint if a.get("partners")),
        court_ruling=bool(stored.get("court_ruling")),
        student_refuses=bool(stored.get("student_refuses")),
        written_statement=bool(stored.get("written_statement")),
        poverty_family=bool(stored.get("poverty_family")),
        guardian_refuses=bool(stored.get("guardian_refuses")),
        deferral_route=stored.get("deferral_route"),
        found=bool(stored.get("found")),
        disability_suspected=bool(stored.get("disability_suspected")),
        assessment_placement=stored.get("assessment_placement"),
        over_age=bool(stored.get("over_age")),
        previous_return_on=_previous_return_on(session, case),
        evidence=evidence_items(session, case),
        holidays=holidays,
    )
    return facts


# ---- deadlines ------------------------------------------------------------------------------------

def _responsible_org(session: Session, case: Case, actor: str) -> Org | None:
    if actor in ("township",) and case.township_org_id:
        return session.get(Org, case.township_org_id)
    if actor == "county_education":
        school = session.get(Org, case.org_id)
        county = nearest(session, school, "county") if school else None
        if county is not None:
            bureau = session.scalar(select(Org).where(Org.parent_id == county.id,
                                                      Org.kind == "education_bureau"))
            return bureau or county
    return session.get(Org, case.org_id)


def start_deadline(session: Session, case: Case, name: str, start: dt.date | None, *,
                   profile: RegionProfile | None = None, transition: str | None = None,
                   holidays: HolidayTables | None = None) -> Deadline | None:
    """Start the profile timer ``name`` for ``case`` from ``start`` (None: waiting for its start
    event). An open deadline of the same timer and start is kept, not duplicated; a waiting one
    gets its start. Returns the row (None if the profile has no such timer)."""
    profile = profile or case_profile(case)
    if name not in profile.timers:
        return None
    timer = profile.timers[name]
    existing = session.scalars(select(Deadline).where(
        Deadline.case_id == case.id, Deadline.timer == name,
        Deadline.status.in_(("open", "waiting")))).all()
    for d in existing:
        if d.start_on == start or d.start_on is None:
            if d.start_on is None and start is not None:
                _set_due(d, timer, start, holidays if holidays is not None else holiday_tables(session))
            return d
    row = Deadline(case_id=case.id, org_id=case.org_id, timer=name, label=timer.label, actor=timer.actor,
                   unit=timer.unit, length=timer.length, start_event=timer.start_event, transition=transition,
                   alerting=TIMER_RULES[name].alerting, status="waiting")
    if start is not None:
        _set_due(row, timer, start, holidays if holidays is not None else holiday_tables(session))
    session.add(row)
    session.flush()
    return row


def start_event_timers(session: Session, case: Case, event: str, day: dt.date, *,
                       profile: RegionProfile | None = None, source: str | None = None) -> list[Deadline]:
    """An event recorder (receipt, service) saw start event ``event`` on ``day``: start every
    profile timer that runs from it."""
    profile = profile or case_profile(case)
    holidays = holiday_tables(session)
    out = []
    for name, timer in profile.timers.items():
        if timer.start_event == event:
            row = start_deadline(session, case, name, day, profile=profile, transition=source, holidays=holidays)
            if row is not None:
                out.append(row)
    return out


def refresh_waiting(session: Session, case: Case, today: dt.date | None = None, *,
                    profile: RegionProfile | None = None) -> list[Deadline]:
    """Give waiting deadlines of ``case`` their start once the start event's date is known (the
    township's receipt, the second failed home visit...). Returns the deadlines that started."""
    waiting = [d for d in _open_deadlines(session, case) if d.status == "waiting"]
    if not waiting:
        return []
    profile = profile or case_profile(case)
    holidays = holiday_tables(session)
    facts = build_facts(session, case, today or china_date(None), profile=profile, holidays=holidays)
    started = []
    for d in waiting:
        timer = profile.timers.get(d.timer)
        if timer is None or timer.start_event not in workflow.EVENT_DATES:
            continue
        day = workflow.event_date(timer.start_event, facts, profile)
        if day is not None:
            _set_due(d, timer, day, holidays)
            started.append(d)
    session.flush()
    return started


def _set_due(row: Deadline, timer, start: dt.date, holidays: HolidayTables) -> None:
    due = due_date(timer, start, holidays=holidays)
    row.start_on, row.due_on = start, due.date
    row.provisional, row.warning = due.provisional, due.warning
    row.status = "open"


def _open_deadlines(session: Session, case: Case) -> list[Deadline]:
    return list(session.scalars(select(Deadline).where(Deadline.case_id == case.id,
                                                       Deadline.status.in_(("open", "waiting")))
                                .order_by(Deadline.id)))


def _breach(session: Session, d: Deadline, today: dt.date, message: str | None = None) -> None:
    """Mark ``d`` breached; one breach alert and one 问题清单 entry (idempotent)."""
    case = session.get(Case, d.case_id)
    if message is None:
        message = (f"{d.label}已于{format_date(d.due_on)}到期，已逾期{(today - d.due_on).days}日"
                   + (f"（{d.warning}）" if d.warning else ""))
    if d.status != "breached":
        d.status, d.breached_at = "breached", utcnow()
    if session.scalar(select(Alert.id).where(Alert.deadline_id == d.id, Alert.kind == "breach")) is None:
        session.add(Alert(case_id=d.case_id, org_id=d.org_id, deadline_id=d.id, kind="breach", timer=d.timer,
                          actor=d.actor, due_on=d.due_on, message=f"案件{case.number}：{message}"))
    if session.scalar(select(Problem.id).where(Problem.deadline_id == d.id)) is None:
        unit = _responsible_org(session, case, d.actor)
        fix = add_working_days(today, PROBLEM_FIX_WORKING_DAYS, holidays=holiday_tables(session)).date
        session.add(Problem(case_id=case.id, org_id=unit.id if unit else case.org_id, deadline_id=d.id,
                            source="timer_breach", category=d.timer,
                            description=f"案件{case.number}：{message}",
                            responsible_unit=unit.name if unit else None,
                            measures=f"立即补办“{d.label}”并说明逾期原因", due_on=fix, created_by="system"))
    session.flush()


def _persuasion_ok(session: Session, case: Case, profile: RegionProfile, today: dt.date) -> bool:
    facts = build_facts(session, case, today, profile=profile)
    return facts.school_attempts_in_window >= profile.school.min_attempts


def _close_timers(session: Session, case: Case, from_state: str, to_state: str, today: dt.date,
                  profile: RegionProfile) -> None:
    """Timers a state change ends (``timers.TIMER_RULES``): a ``state`` or ``attempts`` duty of the
    left state is met (or breached if late); a ``record`` duty still without its record is breached
    once past due (before that it stays open: the record may still come); periods and duties a
    return makes moot are cancelled; everything ends at closure. Back to ATTENDING (T2: the absence
    had a legitimate reason) judges a duty still open on time as met."""
    for d in _open_deadlines(session, case):
        rule = TIMER_RULES[d.timer]
        if to_state == "CLOSED" or to_state in rule.cancelled_by or d.status == "waiting" and (
                to_state == "ATTENDING" or from_state in rule.states and to_state not in rule.states):
            d.status, d.closed_at = "cancelled", utcnow()
            continue
        if to_state == "ATTENDING" and rule.duty in ("period", "plan"):
            d.status, d.closed_at = "cancelled", utcnow()
            continue
        if from_state not in rule.states or to_state in rule.states:
            continue
        if today <= d.due_on and (rule.duty != "record" or to_state == "ATTENDING"):
            d.status, d.closed_at = "met", utcnow()
        elif rule.duty == "record" and today <= d.due_on:
            continue  # the visit or contact may still be recorded in time
        elif rule.duty == "attempts" and _persuasion_ok(session, case, profile, d.due_on):
            d.status, d.closed_at = "met", utcnow()
        else:
            _breach(session, d, today)
            d.closed_at = utcnow()


def _meet_record_duties(session: Session, case: Case, day: dt.date) -> None:
    """A contact or persuasion record dated ``day`` meets every open ``record`` duty whose window
    (start … due) contains it."""
    for d in _open_deadlines(session, case):
        if TIMER_RULES[d.timer].duty == "record" and d.status == "open" and d.start_on is not None \
                and d.start_on <= day <= d.due_on:
            d.status, d.closed_at = "met", utcnow()


# ---- transitions ----------------------------------------------------------------------------------

def apply_action(session: Session, case: Case, code: str, *, actor: str, data: dict | None = None,
                 occurred_at: dt.datetime | dt.date | None = None) -> workflow.Transition:
    """Take transition ``code`` on ``case``: facts from the DB (``data["facts"]`` adds or overrides
    facts, stored with the event), ``workflow.apply`` (raises ``InvalidTransition``, HTTP 409,
    naming the current state and the allowed actions), new state, ``transition`` event, deadlines
    started and closed, audit entry. Flushes; the caller commits."""
    data = dict(data or {})
    facts_in = clean_facts(data.pop("facts", None))
    profile = case_profile(case)
    holidays = holiday_tables(session)
    today = china_date(occurred_at)
    facts = build_facts(session, case, today, extra=facts_in, profile=profile, holidays=holidays)
    result = workflow.apply(case.state, code, facts, profile)

    before = {"state": case.state, "relapse": case.relapse}
    case.state = result.to_state
    if "relapse" in result.tags:
        case.relapse = True
    if result.to_state == "CLOSED":
        case.closure_reason = result.outcome
    if facts_in.get("reason"):
        case.reason_code = facts_in["reason"]
    if result.from_state != result.to_state:
        _close_timers(session, case, result.from_state, result.to_state, today, profile)
    for started in result.timers:
        start_deadline(session, case, started.name, started.start, profile=profile, transition=result.code,
                       holidays=holidays)
    event_data = {**data, "facts": facts_in, "tags": list(result.tags), "warnings": list(result.warnings),
                  "documents": list(result.documents), "unexcused_days": facts.unexcused_days}
    if result.outcome:
        event_data["outcome"] = result.outcome
    if result.notice_variant:
        event_data["notice_variant"] = result.notice_variant
    session.add(CaseEvent(case_id=case.id, org_id=case.org_id, kind="transition", from_state=result.from_state,
                          to_state=result.to_state, transition=result.code, actor=actor[:80],
                          occurred_at=_at(occurred_at), data=event_data))
    audit.record(session, who=actor, org=case.org_id, action=f"case.{result.code}", target=f"case:{case.id}",
                 before=before, after={"state": case.state, "relapse": case.relapse,
                                       "warnings": list(result.warnings)})
    session.flush()
    log.info("case %s: %s %s -> %s", case.number, result.code, result.from_state, result.to_state)
    return result


def actions(session: Session, case: Case, *, today: dt.date | None = None) -> dict:
    """Allowed and blocked actions of ``case`` (each blocked one with its reason in Chinese)."""
    profile = case_profile(case)
    facts = build_facts(session, case, today or china_date(None), profile=profile)
    allowed, blocked = [], []
    for action, why in workflow.candidate_actions(case.state, facts, profile):
        (allowed if why is None else blocked).append({**action.to_dict(), **({"reason": why} if why else {})})
    return {"state": case.state, "state_label": workflow.STATES[case.state], "profile": profile.name,
            "allowed": allowed, "blocked": blocked}


def open_case(session: Session, pupil: Pupil, *, reason_code: str | None = None, opened_on: dt.date,
              actor: str, source: str = "manual") -> Case:
    """Open a new episode for ``pupil`` in state ABSENT through T1. ``source``: ``attendance``
    (the attendance records count), ``term_start`` (not registered at term start), ``handover``
    (did not arrive under 整班移交) or ``manual`` (the teacher's own record: at least 1 day). A new
    episode soon after a previous return is tagged 反弹 (``case.relapse``)."""
    if source not in ("attendance", "term_start", "handover", "manual"):
        raise ValidationFailed("未知的立案来源：应为考勤记录、开学未报到、整班移交未报到或人工登记之一",
                               fields={"source": "attendance/term_start/handover/manual"})
    if reason_code is not None and reason_code not in CHOICE_FACTS["reason"]:
        raise ValidationFailed(f"辍学原因代码无效：{reason_code!r}", fields={"reason_code": "代码无效"})
    open_ep = session.scalar(select(Case).where(Case.pupil_id == pupil.id,
                                                Case.state.in_(sorted(workflow.OPEN_STATES))))
    if open_ep is not None:
        raise Conflict(f"该学生已有未结案件 {open_ep.number}（{workflow.STATES[open_ep.state]}）",
                       fields={"pupil_id": f"案件 {open_ep.number} 未结"}, case_id=open_ep.id)
    school = session.get(Org, pupil.org_id)
    county = nearest(session, school, "county") or (ancestors(session, school, include_self=True) or [school])[0]
    township = nearest(session, school, "township")
    episode = (session.scalar(select(func.max(Case.episode)).where(Case.pupil_id == pupil.id)) or 0) + 1
    case = Case(number=next_case_number(session, county=county, year=opened_on.year), pupil_id=pupil.id,
                org_id=school.id, township_org_id=township.id if township else None, state="ATTENDING",
                reason_code=reason_code, opened_on=opened_on, episode=episode,
                profile=profile_name_for(session, school))
    session.add(case)
    session.flush()
    facts: dict[str, Any] = {}
    if source == "term_start":
        facts["unregistered_at_term_start"] = True
    elif source == "handover":
        facts["handover_not_arrived"] = True
    elif source == "manual":
        profile = case_profile(case)
        if unexcused_days(session, case, opened_on, profile, holiday_tables(session)) < 1:
            facts["unexcused_days"] = 1
    apply_action(session, case, "T1", actor=actor, data={"source": source, "facts": facts},
                 occurred_at=opened_on)
    return case


# ---- events the guards read -----------------------------------------------------------------------

def record_facts(session: Session, case: Case, facts: Mapping[str, Any], *, actor: str,
                 occurred_at: dt.datetime | dt.date | None = None) -> dict:
    """Record facts of the current episode (``FACT_KEYS``) as a ``facts`` event; returns them
    cleaned. Waiting deadlines whose start these facts make known start."""
    cleaned = clean_facts(facts)
    if cleaned:
        session.add(CaseEvent(case_id=case.id, org_id=case.org_id, kind="facts", actor=actor[:80],
                              occurred_at=_at(occurred_at), data=cleaned))
        audit.record(session, who=actor, org=case.org_id, action="case.facts", target=f"case:{case.id}",
                     after=cleaned)
        session.flush()
        refresh_waiting(session, case, china_date(occurred_at))
    return cleaned


def record_receipt(session: Session, case: Case, *, document_id: str | None, received_on: dt.date,
                   by: str = "township", actor: str) -> None:
    """The township (or education department) signed for the 报告单 on ``received_on``: writes the
    ``receipt`` event {"document_id", "received_on", "by"} and starts the timers that run from the
    township's receipt (卫辉: the 2-day notice timer)."""
    if by not in ("township", "education"):
        raise ValidationFailed("签收单位应为乡(镇)人民政府或教育部门", fields={"by": "township/education"})
    session.add(CaseEvent(case_id=case.id, org_id=case.org_id, kind="receipt", actor=actor[:80],
                          occurred_at=_at(received_on),
                          data={"document_id": document_id, "received_on": received_on.isoformat(), "by": by}))
    session.flush()
    if by == "township":
        start_event_timers(session, case, "report_receipt", received_on, source="receipt")
    session.flush()


def record_service(session: Session, case: Case, *, document_id: str, served_on: dt.date, method: str,
                   complete: bool, actor: str) -> None:
    """A notice was served (送达回证): writes the ``service`` event. When the 回证 is complete,
    starts the timers that run from service (the return deadline; provisional dates keep their
    warning) and moves a REPORTED case to NOTICED if the workflow allows (T8 / T10-GZ); otherwise
    the state is kept and the reason is logged."""
    if method not in {c.code for c in codes.SERVICE_METHODS}:
        raise ValidationFailed(f"送达方式代码无效：{method!r}",
                               fields={"method": "可选：" + "、".join(c.code for c in codes.SERVICE_METHODS)})
    if session.get(Document, document_id) is None:
        raise NotFound(f"文书 {document_id} 不存在", fields={"document_id": "不存在"})
    served_on = _date(served_on, "served_on")
    session.add(CaseEvent(case_id=case.id, org_id=case.org_id, kind="service", actor=actor[:80],
                          occurred_at=_at(served_on),
                          data={"document_id": document_id, "served_on": served_on.isoformat(),
                                "method": method, "complete": bool(complete)}))
    audit.record(session, who=actor, org=case.org_id, action="case.service", target=f"case:{case.id}",
                 after={"document_id": document_id, "served_on": served_on, "complete": bool(complete)})
    session.flush()
    if not complete:
        return
    profile = case_profile(case)
    start_event_timers(session, case, "service", served_on, profile=profile, source="service")
    if case.state == "REPORTED":
        code = "T10-GZ" if profile.has_step("township_persuasion") else "T8"
        try:
            apply_action(session, case, code, actor=actor, data={"document_id": document_id},
                         occurred_at=served_on)
        except InvalidTransition as e:
            log.info("case %s: service recorded, state kept: %s", case.number, e.details.get("reason"))


def _default_stage(state: str) -> str:
    if state == "REPORTED":
        return "township"
    if state in ("NOTICED", "JOINT", "LEGAL", "LOCATING", "APPROVAL", "DEFERRED"):
        return "joint"
    return "school"


def clean_attempt(case: Case, raw: Mapping[str, Any], *, today: dt.date | None = None) -> dict:
    """Validate a persuasion record (DOMAIN §5.5, the ``attempt`` event contract). Errors name
    every failing field; an attempt before the case was opened or in the future is refused."""
    errors: dict[str, str] = {}
    out: dict[str, Any] = {}
    today = today or china_date(None)
    try:
        day = _date(raw.get("date"), "date") if raw.get("date") else None
    except ValidationFailed:
        day, errors["date"] = None, "日期格式错误（YYYY-MM-DD）"
    if day is None and "date" not in errors:
        errors["date"] = "必填"
    elif day is not None:
        if day > today:
            errors["date"] = "劝返日期不能晚于今天"
        elif day < case.opened_on:
            errors["date"] = f"劝返日期早于立案日期{format_date(case.opened_on)}"
        out["date"] = day.isoformat()
    for key, need in (("persons", True), ("place", False), ("met", False), ("statements", False),
                      ("next_step", False), ("time", False)):
        value = str(raw.get(key) or "").strip()
        if need and not value:
            errors[key] = "必填"
        elif len(value) > 500:
            errors[key] = "不超过500字"
        out[key] = value
    for key, choices in (("method", codes.ATTEMPT_METHODS), ("result", codes.ATTEMPT_RESULTS)):
        allowed = {c.code for c in choices}
        if raw.get(key) not in allowed:
            errors[key] = "可选：" + "、".join(f"{c.code}({c.label})" for c in choices)
        out[key] = raw.get(key)
    partners = raw.get("partners") or []
    known = {c.code for c in codes.PARTNER_DEPARTMENTS}
    if not isinstance(partners, list) or any(p not in known for p in partners):
        errors["partners"] = "成员单位代码无效，可选：" + "、".join(sorted(known))
    out["partners"] = list(partners) if isinstance(partners, list) else []
    stage = raw.get("stage") or _default_stage(case.state)
    if stage not in STAGES:
        errors["stage"] = "可选：school/township/joint"
    out["stage"] = stage
    if errors:
        raise ValidationFailed(f"劝返记录有{len(errors)}处错误", fields=errors)
    return out


def record_attempt(session: Session, case: Case, raw: Mapping[str, Any], *, actor: str) -> dict:
    """Validate and record one persuasion attempt (``attempt`` event). Meets the ``record`` duties
    (same-day contact, home-visit verification) whose window contains its date and starts waiting
    timers it completes (贵州: the report timer at the second failed home visit). Returns the
    stored data with its number."""
    if case.state in ("CLOSED", "ATTENDING"):
        raise Conflict(f"案件处于“{workflow.STATES[case.state]}”，不能再登记劝返记录", current_state=case.state)
    data = clean_attempt(case, raw)
    day = dt.date.fromisoformat(data["date"])
    event = CaseEvent(case_id=case.id, org_id=case.org_id, kind="attempt", actor=actor[:80],
                      occurred_at=_at(day), data=data)
    session.add(event)
    session.flush()
    _meet_record_duties(session, case, day)
    refresh_waiting(session, case, max(day, china_date(None)))
    audit.record(session, who=actor, org=case.org_id, action="case.attempt", target=f"case:{case.id}",
                 after={k: data[k] for k in ("date", "method", "result", "stage")})
    session.flush()
    number = len(attempts_of(session, case))
    return {**data, "number": number, "event_id": event.id}


def attempts_check(session: Session, case: Case, *, today: dt.date | None = None) -> dict:
    """The school persuasion check (DOMAIN §3.3 T5): ≥ N failed attempts within the window
    (卫辉: 3 within 10 working days of entering SUSPECTED). ``status``: ``not_started`` (not yet
    suspected or the profile has no window), ``running``, ``met`` or ``missed``."""
    today = today or china_date(None)
    profile = case_profile(case)
    facts = build_facts(session, case, today, profile=profile)
    due = workflow.persuasion_window_due(facts, profile)
    need = profile.school.min_attempts
    have = facts.school_attempts_in_window
    if due is None:
        status = "not_started"
    elif have >= need:
        status = "met"
    else:
        status = "missed" if today > due.date else "running"
    return {"required": need, "in_window": have, "window_start": facts.entered_suspected_on,
            "window_due": due.date if due else None, "provisional": bool(due and due.provisional),
            "warning": due.warning if due else None, "status": status,
            "home_visits_failed": facts.home_visits_failed,
            "township_attempts_failed": facts.township_attempts_failed,
            "joint_attempts": facts.joint_attempts, "joint_attempts_with_partner": facts.joint_attempts_with_partner,
            "partners_for_reason": list(workflow.partners_for(facts.reason).partners)}


# ---- closure ---------------------------------------------------------------------------------------

def attach_evidence(session: Session, case: Case, *, kind: str, actor: str, document_id: str | None = None,
                    upload_id: int | None = None, value: str | None = None, issuer: str | None = None,
                    partners: list[str] | None = None, note: str | None = None) -> Evidence:
    """Attach an evidence item (not yet verified) and write the ``evidence`` event."""
    errors = {}
    if kind not in EVIDENCE_KINDS:
        errors["kind"] = "可选：" + "、".join(EVIDENCE_KINDS)
    if issuer is not None and issuer not in ORGS:
        errors["issuer"] = "可选：" + "、".join(ORGS)
    known = {c.code for c in codes.PARTNER_DEPARTMENTS}
    if partners and any(p not in known for p in partners):
        errors["partners"] = "成员单位代码无效"
    if document_id is not None and session.get(Document, document_id) is None:
        errors["document_id"] = "文书不存在"
    if errors:
        raise ValidationFailed(f"证明材料有{len(errors)}处错误", fields=errors)
    ev = Evidence(case_id=case.id, org_id=case.org_id, kind=kind, document_id=document_id, upload_id=upload_id,
                  value=value, issuer=issuer, partners=list(partners or []), note=note, attached_by=actor[:80])
    session.add(ev)
    session.flush()
    session.add(CaseEvent(case_id=case.id, org_id=case.org_id, kind="evidence", actor=actor[:80],
                          occurred_at=utcnow(), data={"evidence_id": ev.id, "kind": kind, "verified_by": None,
                                                      "action": "attached"}))
    audit.record(session, who=actor, org=case.org_id, action="evidence.attach", target=f"evidence:{ev.id}",
                 after={"case_id": case.id, "kind": kind, "document_id": document_id})
    session.flush()
    return ev


def verify_evidence(session: Session, evidence: Evidence, *, by: str) -> Evidence:
    """A named person has checked the evidence item (machine reading alone never verifies)."""
    person = (by or "").strip()
    if not person or person == "anonymous":
        raise ValidationFailed("核实人必须是具名人员", fields={"verified_by": "必填"})
    evidence.verified_by, evidence.verified_at = person[:80], utcnow()
    session.add(CaseEvent(case_id=evidence.case_id, org_id=evidence.org_id, kind="evidence", actor=person[:80],
                          occurred_at=utcnow(), data={"evidence_id": evidence.id, "kind": evidence.kind,
                                                      "verified_by": person, "action": "verified"}))
    audit.record(session, who=person, org=evidence.org_id, action="evidence.verify",
                 target=f"evidence:{evidence.id}", after={"verified_by": person})
    session.flush()
    return evidence


def close_case(session: Session, case: Case, outcome: str, *, actor: str, data: dict | None = None,
               occurred_at: dt.datetime | dt.date | None = None) -> workflow.Transition:
    """销号 with ``outcome`` (C1–C7): refused (``ClosureRefused``, 409) listing every missing or
    unverified item of the evidence set; refused (``InvalidTransition``) when no closing transition
    of that outcome leads from the current state or its guard blocks."""
    if outcome not in OUTCOMES:
        raise ValidationFailed("未知的销号类型：应为" + "、".join(f"“{v}”" for v in OUTCOMES.values()) + "之一",
                              fields={"outcome": "、".join(OUTCOMES)})
    profile = case_profile(case)
    codes_ = [t.code for t in workflow.TRANSITIONS if t.outcome == outcome and case.state in t.sources
              and t.applies_to(profile)]
    if not codes_:
        from_states = sorted({s for t in workflow.TRANSITIONS if t.outcome == outcome for s in t.sources})
        facts = build_facts(session, case, china_date(occurred_at), profile=profile)
        allowed = workflow.allowed_actions(case.state, facts, profile)
        raise InvalidTransition(
            f"当前状态为“{workflow.STATES[case.state]}”，不能以“{OUTCOMES[outcome]}”销号；"
            f"该销号类型只能在以下状态办理：{'、'.join(workflow.STATES[s] for s in from_states)}",
            current_state=case.state, current_state_label=workflow.STATES[case.state], action=outcome,
            allowed_actions=[a.to_dict() for a in allowed])
    check = check_closure(outcome, evidence_items(session, case), profile)
    if not check.ok:
        raise ClosureRefused(f"不能销号（{OUTCOMES[outcome]}），证明材料不全：" + "；".join(check.missing),
                             fields={f"evidence[{i}]": m for i, m in enumerate(check.missing)},
                             missing=check.missing, outcome=outcome)
    return apply_action(session, case, codes_[0], actor=actor, data=data, occurred_at=occurred_at)


# ---- referrals --------------------------------------------------------------------------------------

def create_referral(session: Session, case: Case, *, to_department: str, reason: str, sent_on: dt.date,
                    actor: str, request: str | None = None, to_org_id: int | None = None,
                    to_unit_name: str | None = None, document_id: str | None = None,
                    from_org_id: int | None = None) -> Referral:
    """Record a 部门函件 to a partner department (DOMAIN §3.4). Partners that do not fit the case's
    reason are allowed (the township decides) but named in the audit entry."""
    known = {c.code for c in codes.PARTNER_DEPARTMENTS}
    errors = {}
    if to_department not in known:
        errors["to_department"] = "可选：" + "、".join(sorted(known))
    if not (reason or "").strip():
        errors["reason"] = "必填"
    if errors:
        raise ValidationFailed(f"部门函件有{len(errors)}处错误", fields=errors)
    org_id = from_org_id or case.township_org_id or case.org_id
    ref = Referral(case_id=case.id, org_id=org_id, to_department=to_department, to_org_id=to_org_id,
                   to_unit_name=to_unit_name, reason=reason.strip(), request=request, sent_on=sent_on,
                   document_id=document_id, created_by=actor[:80])
    session.add(ref)
    session.flush()
    fits = to_department in workflow.partners_for(case.reason_code).partners
    session.add(CaseEvent(case_id=case.id, org_id=case.org_id, kind="referral", actor=actor[:80],
                          occurred_at=_at(sent_on), data={"referral_id": ref.id, "to_department": to_department,
                                                          "fits_reason": fits}))
    audit.record(session, who=actor, org=org_id, action="referral.create", target=f"referral:{ref.id}",
                 after={"case_id": case.id, "to_department": to_department, "fits_reason": fits})
    session.flush()
    return ref


# ---- the sweep ---------------------------------------------------------------------------------------

def sweep(session: Session, today: dt.date | None = None) -> dict:
    """Evaluate every running deadline as of ``today``: T−1 alerts (once), breaches (alert + 问题清单
    entry, once), elapsed periods, and the 辍学认定 flag (``dropout_confirmed_on``). Idempotent;
    flushes, the caller commits. Returns counts."""
    today = today or china_date(None)
    holidays = holiday_tables(session)
    counts = {"due_soon": 0, "breached": 0, "elapsed": 0, "met": 0, "dropout_confirmed": 0}
    rows = session.scalars(select(Deadline).where(Deadline.status == "open", Deadline.due_on.is_not(None))
                           .order_by(Deadline.id)).all()
    for d in rows:
        case = session.get(Case, d.case_id)
        profile = case_profile(case)
        if not d.alerting:
            if today > d.due_on:
                d.status, d.closed_at = "elapsed", utcnow()
                counts["elapsed"] += 1
            continue
        timer = profile.timers.get(d.timer)
        if timer is None:
            continue
        if d.timer == "persuasion_window" and today > d.due_on \
                and _persuasion_ok(session, case, profile, d.due_on):
            d.status, d.closed_at = "met", utcnow()
            counts["met"] += 1
            continue
        for a in alerts(timer, d.due_on, today, holidays=holidays):
            if a.kind == "breach":
                _breach(session, d, today)
                counts["breached"] += 1
            elif d.alerted_t1_at is None:
                d.alerted_t1_at = utcnow()
                session.add(Alert(case_id=case.id, org_id=d.org_id, deadline_id=d.id, kind="due_soon",
                                  timer=d.timer, actor=d.actor, due_on=d.due_on,
                                  message=f"案件{case.number}：{a.message}"))
                counts["due_soon"] += 1
    # 辍学认定: more than a month in SUSPECTED or later without a return (the state is unchanged).
    open_cases = session.scalars(select(Case).where(Case.state.in_(sorted(workflow.OPEN_STATES)),
                                                    Case.dropout_confirmed_on.is_(None))).all()
    for case in open_cases:
        profile = case_profile(case)
        facts = build_facts(session, case, today, profile=profile, holidays=holidays)
        when = workflow.dropout_confirmed_on(facts.entered_suspected_on, profile, today=today,
                                             returned_on=facts.returned_on)
        if when is not None:
            case.dropout_confirmed_on = when
            audit.record(session, who="system", org=case.org_id, action="case.dropout_confirmed",
                         target=f"case:{case.id}", after={"dropout_confirmed_on": when})
            counts["dropout_confirmed"] += 1
    session.flush()
    return counts


def overdue(session: Session, org: Org, today: dt.date | None = None) -> list[dict]:
    """Duty deadlines past due (open or breached, not yet met) of cases in ``org``'s subtree."""
    today = today or china_date(None)
    q = (select(Deadline, Case, Pupil).join(Case, Case.id == Deadline.case_id).join(Pupil, Pupil.id == Case.pupil_id)
         .where(Deadline.status.in_(("open", "breached")), Deadline.alerting.is_(True),
                Deadline.due_on < today, in_scope(Case.org_id, org))
         .order_by(Deadline.due_on, Deadline.id))
    return [{"deadline_id": d.id, "case_id": c.id, "case_number": c.number, "pupil_name": p.name,
             "state": c.state, "timer": d.timer, "label": d.label, "actor": d.actor, "due_on": d.due_on,
             "days_overdue": (today - d.due_on).days, "provisional": d.provisional, "warning": d.warning,
             "status": d.status} for d, c, p in session.execute(q)]


def deadline_json(d: Deadline) -> dict:
    return {"id": d.id, "case_id": d.case_id, "timer": d.timer, "label": d.label, "actor": d.actor,
            "unit": d.unit, "length": d.length, "start_on": d.start_on, "due_on": d.due_on,
            "provisional": d.provisional, "warning": d.warning, "status": d.status,
            "alerted_t1_at": d.alerted_t1_at.isoformat() if d.alerted_t1_at else None,
            "breached_at": d.breached_at.isoformat() if d.breached_at else None}


def load_holiday_table(session: Session, data: Mapping, *, actor: str) -> HolidayTable:
    """Validate and store a year's holiday table (errors name the key); replaces that year's row."""
    table = HolidayTable.from_dict(data)
    row = session.get(HolidayTableRow, table.year)
    before = row.data if row is not None else None
    if row is None:
        row = HolidayTableRow(year=table.year, data=table.to_dict())
        session.add(row)
    row.data, row.source, row.loaded_by = table.to_dict(), table.source, actor[:80]
    audit.record(session, who=actor, org=None, action="holidays.load", target=f"holidays:{table.year}",
                 before=before, after={"year": table.year, "holidays": len(table.holidays),
                                       "workdays": len(table.workdays)})
    session.flush()
    return table


# ---- command line -------------------------------------------------------------------------------------

def main(argv: list[str] | None = None, *, config) -> int:
    """``python -m cases.engine.casework sweep [--today YYYY-MM-DD]`` on ``config.DATABASE_URL``
    (the settings are passed in by the ``__main__`` block)."""
    from cases.store import jobs
    from cases.store.db import make_engine, make_session_factory, session_scope

    parser = argparse.ArgumentParser(prog="python -m cases.engine.casework")
    parser.add_argument("command", choices=["sweep"])
    parser.add_argument("--today", type=dt.date.fromisoformat, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    engine = make_engine(config.DATABASE_URL)
    factory = make_session_factory(engine)
    jobs.init_jobs(config, session_factory=factory)
    with session_scope(factory) as session:
        counts = sweep(session, args.today)
    # Background jobs whose worker died are queued again (or failed) by the sweep as well.
    counts["jobs"] = {k: len(v) for k, v in jobs.reap().items()}
    log.info("sweep done: %s", counts)
    sys.stdout.write(f"{counts}\n")
    return 0


if __name__ == "__main__":
    from config import Config

    sys.exit(main(config=Config))
