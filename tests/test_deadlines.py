"""Deadline arithmetic: exact dates across 国庆 2024, 春节 2025/2026 with 调休 days, the
provisional path for 2027, holiday tables, school days, months, timers and alerts."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from cases.engine.calendars import HolidayTable, HolidayTables, SchoolCalendar, chinese_calendar_years, day_info
from cases.engine.deadlines import (
    Timer,
    add_calendar_days,
    add_months,
    add_school_days,
    add_working_days,
    alerts,
    count_school_days,
    count_working_days,
    day_before,
    due_date,
    exceeds_months,
    first_day_exceeding_months,
)
from forms.errors import ValidationFailed

D = dt.date
WARN_2027 = "2027年法定节假日安排尚未导入，按周末推算，日期为暂定"


def _table_2027() -> HolidayTable:
    # Illustrative 2027 arrangement for tests only (not the State Council notice): National Day
    # Oct 1–7 off, make-up working days Sun Sep 26 and Sat Oct 9.
    return HolidayTable(2027, frozenset(D(2027, 10, d) for d in range(1, 8)),
                        frozenset({D(2027, 9, 26), D(2027, 10, 9)}), source="测试用")


# --- working days: known years -----------------------------------------------------------------

@pytest.mark.parametrize("start, n, expected", [
    # 国庆 2024: Sun 9-29 is a make-up working day, 10-1..10-7 off, Sat 10-12 a make-up day.
    (D(2024, 9, 27), 5, D(2024, 10, 10)),
    (D(2024, 9, 27), 1, D(2024, 9, 29)),
    (D(2024, 9, 28), 2, D(2024, 9, 30)),
    (D(2024, 9, 30), 1, D(2024, 10, 8)),
    (D(2024, 10, 11), 1, D(2024, 10, 12)),
    (D(2024, 10, 11), 2, D(2024, 10, 14)),
    # 春节 2025: Sun 1-26 make-up, 1-28..2-4 off, Sat 2-8 make-up.
    (D(2025, 1, 24), 1, D(2025, 1, 26)),
    (D(2025, 1, 24), 2, D(2025, 1, 27)),
    (D(2025, 1, 24), 3, D(2025, 2, 5)),
    (D(2025, 1, 27), 5, D(2025, 2, 10)),
    (D(2025, 1, 27), 4, D(2025, 2, 8)),
    # 春节 2026: Sat 2-14 make-up, 2-15..2-23 off, Sat 2-28 make-up.
    (D(2026, 2, 13), 1, D(2026, 2, 14)),
    (D(2026, 2, 13), 5, D(2026, 2, 27)),
    (D(2026, 2, 13), 6, D(2026, 2, 28)),
    # 中秋 + 国庆 2026: 9-25..9-27 off, Sun 9-20 and Sat 10-10 make-up, 10-1..10-7 off.
    (D(2026, 9, 19), 1, D(2026, 9, 20)),
    (D(2026, 9, 24), 3, D(2026, 9, 30)),
    (D(2026, 9, 30), 3, D(2026, 10, 10)),
    (D(2024, 9, 27), 0, D(2024, 9, 27)),
])
def test_add_working_days_across_holidays(start, n, expected):
    result = add_working_days(start, n)
    assert result.date == expected
    assert result.provisional is False
    assert result.warning is None


def test_working_days_backwards_and_counting():
    assert add_working_days(D(2024, 10, 8), -1).date == D(2024, 9, 30)
    assert add_working_days(D(2024, 9, 30), -1).date == D(2024, 9, 29)
    assert add_working_days(D(2025, 2, 5), -2).date == D(2025, 1, 26)
    # 9-27 Fri, 9-29 Sun (调休), 9-30, 10-8, 10-9, 10-10
    assert count_working_days(D(2024, 9, 27), D(2024, 10, 10)).days == 6
    assert count_working_days(D(2024, 10, 1), D(2024, 10, 7)).days == 0


def test_datetime_start_is_accepted():
    assert add_working_days(dt.datetime(2024, 9, 27, 16, 30), 5).date == D(2024, 10, 10)


# --- provisional path ----------------------------------------------------------------------------

def test_2027_without_table_is_provisional_weekends_only():
    first, last = chinese_calendar_years()
    assert last == 2026 and first == 2004
    result = add_working_days(D(2027, 9, 27), 5)
    # Weekends only: 9-28, 9-29, 9-30, 10-1 (Fri, really a holiday), 10-4.
    assert result.date == D(2027, 10, 4)
    assert result.provisional is True
    assert result.warning == WARN_2027
    assert result.unknown_years == (2027,)


def test_deadline_reaching_into_2027_is_provisional():
    result = add_working_days(D(2026, 12, 30), 3)
    assert result.date == D(2027, 1, 4)  # 12-31, 1-1 (guessed working), 1-4
    assert result.provisional and result.warning == WARN_2027
    inside = add_working_days(D(2026, 12, 28), 3)
    assert inside.date == D(2026, 12, 31) and not inside.provisional


def test_2027_with_loaded_table_is_exact():
    tables = HolidayTables.of(_table_2027())
    result = add_working_days(D(2027, 9, 27), 5, holidays=tables)
    assert result.date == D(2027, 10, 9)  # 9-28, 9-29, 9-30, 10-8, Sat 10-9 (make-up)
    assert result.provisional is False and result.warning is None
    assert add_working_days(D(2027, 9, 24), 1, holidays=tables).date == D(2027, 9, 26)


def test_years_before_chinese_calendar_are_provisional():
    result = add_working_days(D(2003, 9, 30), 1)
    assert result.provisional and "2003年" in result.warning


def test_loaded_table_overrides_known_year():
    # An administrator's table wins, e.g. to correct a year: make 2024-10-08 a holiday.
    table = HolidayTable(2024, frozenset({D(2024, 10, 8)}))
    assert add_working_days(D(2024, 9, 30), 1, holidays=HolidayTables.of(table)).date == D(2024, 10, 1)
    assert day_info(D(2024, 10, 8)).is_workday is True


# --- holiday tables -------------------------------------------------------------------------------

def test_holiday_table_round_trip(tmp_path):
    table = _table_2027()
    path = table.save(tmp_path / "holidays")
    assert path.name == "2027.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["year"] == 2027 and data["workdays"] == ["2027-09-26", "2027-10-09"]
    assert data["holidays"][0] == "2027-10-01" and len(data["holidays"]) == 7
    assert HolidayTable.load(path) == table
    loaded = HolidayTables.load_dir(tmp_path / "holidays")
    assert loaded.years() == (2027,)
    assert HolidayTables.load_dir(tmp_path / "absent").years() == ()


@pytest.mark.parametrize("holidays, workdays, key", [
    ({D(2026, 10, 1)}, set(), "dates"),                               # date outside the year
    ({D(2027, 10, 1), D(2027, 10, 9)}, {D(2027, 10, 9)}, "overlap"),  # both off and working
    ({D(2027, 10, 1)}, {D(2027, 10, 8)}, "workdays"),                 # make-up day on a Friday
    (set(), set(), "holidays"),
])
def test_holiday_table_validation(holidays, workdays, key):
    with pytest.raises(ValidationFailed) as err:
        HolidayTable(2027, frozenset(holidays), frozenset(workdays)).validate()
    assert key in err.value.fields
    assert "2027年节假日安排表无效" in err.value.message


def test_holiday_table_file_errors(tmp_path):
    bad = tmp_path / "2027.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(ValidationFailed, match="无法读取"):
        HolidayTable.load(bad)
    bad.write_text(json.dumps({"year": 2027, "holidays": ["2027-13-01"]}), encoding="utf-8")
    with pytest.raises(ValidationFailed, match="2027-13-01"):
        HolidayTable.load(bad)
    bad.write_text(json.dumps({"holidays": []}), encoding="utf-8")
    with pytest.raises(ValidationFailed, match="year"):
        HolidayTable.load(bad)
    wrong_name = tmp_path / "2028.json"
    wrong_name.write_text(json.dumps(_table_2027().to_dict()), encoding="utf-8")
    with pytest.raises(ValidationFailed, match="不一致"):
        HolidayTable.load(wrong_name)


# --- calendar days, school days, months ------------------------------------------------------------

def test_add_calendar_days():
    assert add_calendar_days(D(2024, 9, 30), 2).date == D(2024, 10, 2)
    assert add_calendar_days(D(2027, 12, 31), 3).provisional is False


def _calendar(**kw) -> SchoolCalendar:
    terms = ((D(2024, 9, 1), D(2025, 1, 17)), (D(2025, 2, 17), D(2025, 7, 4)))
    return SchoolCalendar(terms=terms, **kw)


def test_school_days_follow_statutory_rules_and_terms():
    cal = _calendar()
    assert add_school_days(D(2024, 9, 27), 5, cal).date == D(2024, 10, 10)
    closed = _calendar(closures=frozenset({D(2024, 10, 8)}))
    assert add_school_days(D(2024, 9, 27), 5, closed).date == D(2024, 10, 11)
    # Winter break between terms is skipped.
    assert add_school_days(D(2025, 1, 16), 3, cal).date == D(2025, 2, 18)
    # Unbroken absence from Thu 9-26 to Wed 10-9: 9-26, 9-27, 9-29 (调休), 9-30, 10-8, 10-9.
    count = count_school_days(D(2024, 9, 26), D(2024, 10, 9), cal)
    assert count.days == 6 and not count.provisional
    assert count_school_days(D(2024, 10, 9), D(2024, 10, 1), cal).days == 0


def test_school_days_without_statutory_rules():
    cal = _calendar(statutory_rules=False, holidays=frozenset({D(2024, 10, d) for d in range(1, 8)}),
                    extra_days=frozenset({D(2024, 10, 12)}))
    # 9-29 Sun is no school day here; Sat 10-12 is an extra school day.
    assert add_school_days(D(2024, 9, 27), 1, cal).date == D(2024, 9, 30)
    assert add_school_days(D(2024, 10, 11), 1, cal).date == D(2024, 10, 12)


def test_school_days_in_unknown_year_are_provisional():
    cal = SchoolCalendar(terms=((D(2027, 9, 1), D(2028, 1, 20)),))
    result = add_school_days(D(2027, 9, 30), 1, cal)
    assert result.date == D(2027, 10, 1) and result.provisional and result.warning == WARN_2027
    assert count_school_days(D(2027, 9, 27), D(2027, 10, 1), cal).provisional


def test_bad_term_is_rejected():
    with pytest.raises(ValidationFailed):
        SchoolCalendar(terms=((D(2025, 2, 1), D(2025, 1, 1)),))


@pytest.mark.parametrize("start, months, expected", [
    (D(2025, 1, 31), 1, D(2025, 2, 28)),
    (D(2024, 1, 31), 1, D(2024, 2, 29)),
    (D(2025, 3, 31), 1, D(2025, 4, 30)),
    (D(2024, 12, 15), 1, D(2025, 1, 15)),
    (D(2025, 8, 31), 6, D(2026, 2, 28)),
])
def test_add_months_clamps_to_month_end(start, months, expected):
    assert add_months(start, months) == expected


def test_more_than_one_month():
    assert first_day_exceeding_months(D(2025, 3, 15)) == D(2025, 4, 16)
    assert first_day_exceeding_months(D(2025, 1, 31)) == D(2025, 3, 1)
    assert first_day_exceeding_months(D(2024, 1, 31)) == D(2024, 3, 1)
    assert first_day_exceeding_months(D(2025, 2, 28)) == D(2025, 3, 29)
    assert not exceeds_months(D(2025, 3, 15), D(2025, 4, 15))
    assert exceeds_months(D(2025, 3, 15), D(2025, 4, 16))
    assert not exceeds_months(D(2025, 1, 31), D(2025, 2, 28))


# --- timers and alerts ---------------------------------------------------------------------------

RETURN = Timer("return_deadline", "working_day", 5, "service", "限期返校期限", "school")


def test_timer_due_dates():
    assert due_date(RETURN, D(2024, 9, 27)).date == D(2024, 10, 10)
    week = Timer("suspect", "calendar_day", 7, "first_absent", exclusive=True)
    assert due_date(week, D(2024, 9, 1)).date == D(2024, 9, 9)
    month = Timer("confirm", "month", 1, "entered_suspected", exclusive=True)
    assert due_date(month, D(2025, 1, 31)).date == D(2025, 3, 1)
    assert due_date(Timer("obs", "month", 1, "returned"), D(2025, 1, 31)).date == D(2025, 2, 28)
    school = Timer("verify", "school_day", 3, "first_absent")
    with pytest.raises(ValidationFailed, match="校历"):
        due_date(school, D(2024, 9, 27))
    assert due_date(school, D(2024, 9, 27), school_calendar=_calendar()).date == D(2024, 10, 8)
    assert RETURN.describe() == "5个工作日" and month.describe() == "超过1个月"
    with pytest.raises(ValidationFailed, match="单位"):
        Timer("x", "week", 1, "start")


def test_alerts_t_minus_one_and_breach():
    due = due_date(RETURN, D(2024, 9, 27))  # 2024-10-10, Thu
    assert alerts(RETURN, due, D(2024, 10, 8)) == []
    [soon] = alerts(RETURN, due, D(2024, 10, 9))
    assert (soon.kind, soon.on, soon.due) == ("due_soon", D(2024, 10, 9), D(2024, 10, 10))
    assert soon.problem_list is False
    assert soon.actor == "school" and "2024年10月10日" in soon.message
    assert alerts(RETURN, due, D(2024, 10, 10))[0].kind == "due_soon"
    [breach] = alerts(RETURN, due, D(2024, 10, 12))
    assert breach.kind == "breach" and breach.problem_list and "逾期2日" in breach.message


def test_alert_t_minus_one_is_a_working_day_before_holiday():
    # Due Tue 2024-10-08: the working day before is Mon 9-30, so the warning runs over the holiday.
    assert day_before(RETURN, D(2024, 10, 8)).date == D(2024, 9, 30)
    assert alerts(RETURN, D(2024, 10, 8), D(2024, 9, 29)) == []
    assert alerts(RETURN, D(2024, 10, 8), D(2024, 10, 3))[0].on == D(2024, 9, 30)
    calendar_timer = Timer("notice", "calendar_day", 2, "report_receipt")
    assert day_before(calendar_timer, D(2024, 10, 8)).date == D(2024, 10, 7)


def test_provisional_due_date_alert_carries_warning():
    due = due_date(RETURN, D(2027, 9, 27))
    [soon] = alerts(RETURN, due, D(2027, 10, 1))
    assert soon.provisional and soon.warning == WARN_2027 and WARN_2027 in soon.message
