"""Attendance import (DOMAIN §3.3 T1–T4, T2, T23): daily absence entries as CSV or XLSX, one row per
pupil per day, which open and advance cases automatically.

File format (UTF-8 CSV, with or without BOM, or the first sheet of an XLSX; first row = headers):

    日期        YYYY-MM-DD (also YYYY/MM/DD or an Excel date cell)
    学籍号       the pupil's 全国学籍号 — or a column 身份证号 (one of the two is required; a column
                 named 学籍号或身份证号 / 学籍号/身份证号 accepts either)
    姓名        must match the pupil found by the number (guards against a wrong number)
    类型        无故缺勤 | 病假 | 事假 | 其他正当理由
    备注        free text (optional)

Only absences are listed: a school day without a row is a day at school. Unexcused days are
counted in the profile's absence unit (卫辉: school days, 贵州: calendar days) over consecutive
records (``cases.engine.casework.absence_runs``); thresholds then open the case (T1) and advance it (T3
home-visit check, T4 疑似辍学). A legitimate-reason row closes an ABSENT episode (T2). A new
absence after a return reopens through T23 (same case) or a new episode tagged 反弹.

Bad rows are reported with their row number (as shown in a spreadsheet: the header is row 1) and
the reason; good rows are kept even when others are bad. Re-importing a day for a pupil replaces
that day's entry.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from cases.engine import casework, workflow
from cases.engine.models import AttendanceRecord
from cases.store.models import Case, Org, Pupil
from cases.store.tables import headers_of, read_table
from forms import validators as v
from forms.errors import InvalidTransition, ValidationFailed
from forms.validators import format_date

log = logging.getLogger(__name__)

KIND_LABELS = {"无故缺勤": "unexcused", "病假": "sick", "事假": "personal", "其他正当理由": "other_legit"}
ID_HEADERS = ("学籍号或身份证号", "学籍号/身份证号", "学籍号", "身份证号")
MAX_ROWS = 50_000


@dataclass
class ImportResult:
    """What an import did: rows read and kept, bad rows (row number + reason), case changes."""

    rows: int = 0
    accepted: int = 0
    bad_rows: list[dict] = field(default_factory=list)
    cases_opened: list[dict] = field(default_factory=list)
    cases_advanced: list[dict] = field(default_factory=list)
    episodes_closed: list[dict] = field(default_factory=list)
    notes: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"rows": self.rows, "accepted": self.accepted, "bad_rows": self.bad_rows,
                "cases_opened": self.cases_opened, "cases_advanced": self.cases_advanced,
                "episodes_closed": self.episodes_closed, "notes": self.notes}


def read_rows(filename: str, data: bytes) -> list[tuple[int, dict[str, str]]]:
    """(row number, {header: text}) for every non-empty data row of a CSV or XLSX file, after
    checking that the attendance columns are there."""
    rows = read_table(filename, data, what="考勤文件", max_rows=MAX_ROWS)
    headers = set(rows[0][1]) if rows else set(headers_of(filename, data))
    missing = [h for h in ("日期", "姓名", "类型") if h not in headers]
    if not any(h in headers for h in ID_HEADERS):
        missing.append("学籍号 或 身份证号")
    if missing:
        raise ValidationFailed("考勤文件缺少列：" + "、".join(missing) + "（第1行应为表头）",
                               fields={"columns": "缺少" + "、".join(missing)})
    return rows


def _parse_date(text: str) -> dt.date | None:
    text = text.strip().split(" ")[0].replace("/", "-").replace(".", "-")
    try:
        y, m, d = (int(p) for p in text.split("-"))
        return dt.date(y, m, d)
    except ValueError:
        return None


def _find_pupil(session: Session, org: Org, number: str) -> Pupil | None:
    number = number.strip().upper()
    candidates = {number}
    if number.startswith("G"):
        candidates.add(number[1:])
    else:
        candidates.add("G" + number)
    return session.scalar(select(Pupil).where(Pupil.in_scope(org), or_(Pupil.xueji_no.in_(candidates),
                                                                       Pupil.id_number.in_(candidates))))


def import_attendance(session: Session, *, org: Org, filename: str, data: bytes, actor: str,
                      today: dt.date | None = None) -> ImportResult:
    """Import an attendance file for pupils in ``org``'s subtree, then open and advance cases.
    Flushes; the caller commits (good rows and case changes together)."""
    today = today or casework.china_date(None)
    result = ImportResult()
    rows = read_rows(filename, data)
    result.rows = len(rows)
    seen: dict[tuple[int, dt.date], int] = {}
    touched: dict[int, list[tuple[dt.date, str]]] = {}
    for row_no, row in rows:
        problems = []
        day = _parse_date(row.get("日期", ""))
        if day is None:
            problems.append(f"日期“{row.get('日期', '')}”无法识别（应为YYYY-MM-DD）")
        elif day > today:
            problems.append(f"日期{format_date(day)}晚于今天")
        number = next((row[h] for h in ID_HEADERS if row.get(h)), "")
        kind = KIND_LABELS.get(row.get("类型", "").strip())
        if kind is None:
            problems.append(f"类型“{row.get('类型', '')}”无效，应为" + "、".join(KIND_LABELS))
        pupil = None
        if not number:
            problems.append("缺少学籍号或身份证号")
        else:
            pupil = _find_pupil(session, org, number)
            if pupil is None:
                problems.append(f"本单位管辖范围内没有学籍号/身份证号为 {v.mask_id(number)} 的学生")
            elif row.get("姓名", "").strip() != pupil.name:
                problems.append(f"姓名“{row.get('姓名', '')}”与学籍号/身份证号对应的学生不符")
        if pupil is not None and day is not None and (pupil.id, day) in seen:
            problems.append(f"与第{seen[(pupil.id, day)]}行重复（同一学生同一日期）")
        if problems:
            result.bad_rows.append({"row": row_no, "reason": "；".join(problems)})
            continue
        seen[(pupil.id, day)] = row_no
        rec = session.scalar(select(AttendanceRecord).where(AttendanceRecord.pupil_id == pupil.id,
                                                            AttendanceRecord.day == day))
        if rec is None:
            rec = AttendanceRecord(pupil_id=pupil.id, org_id=pupil.org_id, day=day)
            session.add(rec)
        rec.kind, rec.note = kind, (row.get("备注") or None)
        rec.source, rec.recorded_by = (filename or "")[:255], actor[:80]
        touched.setdefault(pupil.id, []).append((day, kind))
        result.accepted += 1
    session.flush()
    for pupil_id, entries in touched.items():
        _advance(session, session.get(Pupil, pupil_id), sorted(entries), actor, result)
    session.flush()
    log.info("attendance import %s: %d rows, %d accepted, %d bad", filename, result.rows, result.accepted,
             len(result.bad_rows))
    return result


def _current_case(session: Session, pupil: Pupil) -> Case | None:
    return session.scalar(select(Case).where(Case.pupil_id == pupil.id,
                                             Case.state.in_(sorted(workflow.OPEN_STATES)))
                          .order_by(Case.id.desc()))


def _advance(session: Session, pupil: Pupil, entries: Iterable[tuple[dt.date, str]], actor: str,
             result: ImportResult) -> None:
    """Walk one pupil's new entries in date order and take the automatic transitions."""
    for day, kind in entries:
        case = _current_case(session, pupil)
        if kind != "unexcused":
            if case is None:
                continue
            if case.state == "ABSENT":
                casework.apply_action(session, case, "T2", actor=actor, occurred_at=day,
                                    data={"source": "attendance", "facts": {"legitimate_reason_verified": True}})
                result.episodes_closed.append({"case_id": case.id, "case_number": case.number, "date": day})
            else:
                result.notes.append({"case_id": case.id, "case_number": case.number, "date": day,
                                     "note": f"已登记正当理由，但案件处于“{workflow.STATES[case.state]}”，"
                                             "需人工核实后办理"})
            continue
        if case is None:
            profile = casework.load_profile(casework.profile_name_for(session, session.get(Org, pupil.org_id)))
            rows = session.execute(select(AttendanceRecord.day, AttendanceRecord.kind)
                                   .where(AttendanceRecord.pupil_id == pupil.id,
                                          AttendanceRecord.day <= day)).all()
            runs = casework.absence_runs([(d, k) for d, k in rows], profile.absence.unit,
                                       casework.holiday_tables(session))
            first = runs[-1][0] if runs and runs[-1][1] == day else day
            case = casework.open_case(session, pupil, opened_on=first, actor=actor, source="attendance")
            result.cases_opened.append({"case_id": case.id, "case_number": case.number, "opened_on": first,
                                        "relapse": case.relapse})
        profile = casework.case_profile(case)
        facts = casework.build_facts(session, case, day, profile=profile)
        taken = []
        for code in workflow.evaluate_absence(case.state, facts.unexcused_days, profile, facts):
            try:
                casework.apply_action(session, case, code, actor=actor, occurred_at=day,
                                    data={"source": "attendance"})
            except InvalidTransition as e:
                result.notes.append({"case_id": case.id, "case_number": case.number, "date": day,
                                     "note": e.message})
                break
            taken.append(code)
        if taken:
            result.cases_advanced.append({"case_id": case.id, "case_number": case.number, "date": day,
                                          "transitions": taken, "state": case.state,
                                          "unexcused_days": facts.unexcused_days, "relapse": case.relapse})


__all__ = ["import_attendance", "read_rows", "ImportResult", "KIND_LABELS"]
