"""Region profiles: both reference profiles load with the Appendix A values; invalid files fail
with errors that name the key."""

from __future__ import annotations

import copy
import dataclasses
import json

import pytest

from cases.engine.profiles import (
    DEFAULT_PROFILE,
    PROFILE_DIR,
    list_profiles,
    load_profile,
    profile_for_county,
    profile_from_dict,
)
from forms.errors import NotFound, ValidationFailed


def _raw(name: str) -> dict:
    return json.loads((PROFILE_DIR / f"{name}.json").read_text(encoding="utf-8"))


def test_list_and_default():
    assert list_profiles() == ["guizhou-2019", "henan-weihui-2022"]
    assert DEFAULT_PROFILE == "henan-weihui-2022"
    assert load_profile().name == "henan-weihui-2022"
    assert profile_for_county(None).name == "henan-weihui-2022"
    assert profile_for_county("guizhou-2019").name == "guizhou-2019"


def test_weihui_values():
    p = load_profile("henan-weihui-2022")
    assert p.absence.unit == "school_day"
    assert (p.absence.verify_after.days, p.absence.verify_after.exclusive) == (3, False)
    assert (p.absence.suspect_after.days, p.absence.suspect_after.exclusive) == (5, False)
    window = p.timer("persuasion_window")
    assert (window.unit, window.length, window.start_event) == ("working_day", 10, "entered_suspected")
    assert p.school.min_attempts == 3 and p.school.window_timer == "persuasion_window"
    assert p.step_order == ("school_persuasion", "report", "township_notice", "joint_persuasion", "legal")
    assert p.township.notice_variant == "xianqi" and p.township.attempts_before_notice == 0
    notice = p.timer("township_notice")
    assert (notice.unit, notice.length, notice.start_event) == ("calendar_day", 2, "report_receipt")
    ret = p.return_deadline
    assert (ret.unit, ret.length, ret.start_event) == ("working_day", 5, "service")
    report = p.timer("school_report")
    assert (report.unit, report.length) == ("calendar_day", 3)
    assert p.joint.min_attempts == 3 and p.joint.partner_each_attempt
    assert p.legal.notice_variant == "zeling" and p.legal.document == "责令学生复学通知书"
    gate = p.closure.refusal_gate
    assert (gate.joint_attempts_min, gate.court_ruling_required, gate.combine) == (3, True, "AND")
    assert p.closure.approvers_deferral == ("county_education", "rural_revitalization_office")
    confirm = p.timer("dropout_confirm")
    assert (confirm.unit, confirm.length, confirm.exclusive) == ("month", 1, True)
    assert (p.timer("observation").unit, p.timer("observation").length) == ("month", 1)
    assert p.reporting.quarterly_stats_form == "学期汇总控辍保学排查整改工作情况统计表"
    assert p.reporting.school_screening == "monthly"
    assert p.handover.enabled is False


def test_guizhou_values():
    p = load_profile("guizhou-2019")
    assert p.absence.unit == "calendar_day" and p.absence.verify_after is None
    assert (p.absence.suspect_after.days, p.absence.suspect_after.exclusive) == (7, True)
    assert p.absence.suspect_after.reached(8) and not p.absence.suspect_after.reached(7)
    assert p.step_order == ("school_home_visits", "report", "township_persuasion", "township_notice",
                            "further_persuasion", "legal")
    assert p.before("township_persuasion", "township_notice")
    assert p.school.home_visits_before_report == 2 and p.school.window_timer is None
    assert p.school.report_to == ("county_education", "township")
    assert p.timer("school_report").start_event == "home_visits_failed"
    assert p.township.attempts_before_notice == 2 and p.township.notice_variant == "dunfan"
    assert p.timer("dropout_confirm").start_event == "suspect_threshold_crossed"
    assert p.age_scope.min_age == 6 and p.age_scope.max_age == 16
    assert p.age_scope.exempt_unregistered_ages == (6, 7)
    assert p.age_scope.include_over16_if == ("G01", "on_xueji_platform", "not_completed")
    assert p.age_scope.entry_reference_date(2025).isoformat() == "2025-08-31"
    assert p.ledgers == ("village", "township", "county", "prefecture", "g01_dedicated")
    assert p.reporting.township_report == "half_monthly"
    assert [(r.due_day, r.as_of) for r in p.reporting.prefecture_report] == [
        (18, "day_15"), (3, "previous_month_end")]
    h = p.handover
    assert (h.enabled, h.count_before_month, h.handover_month, h.notify_within_days,
            h.county_check_within_days) == (True, 6, 7, 3, 15)
    assert p.timer("handover_county_check").length == 15
    with pytest.raises(NotFound):
        p.timer("persuasion_window")


def test_profiles_are_immutable():
    p = load_profile()
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.name = "x"
    with pytest.raises(TypeError):
        p.timers["new"] = p.timers["observation"]


def test_unknown_profile():
    with pytest.raises(NotFound, match="henan-weihui-2022"):
        load_profile("nowhere-2030")
    with pytest.raises(NotFound):
        load_profile("../profiles/henan-weihui-2022")


def _mutated(name, path, value=..., delete=False) -> dict:
    data = copy.deepcopy(_raw(name))
    node = data
    for key in path[:-1]:
        node = node[key]
    if delete:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return data


@pytest.mark.parametrize("path, value, delete, key", [
    (("absence",), None, True, "absence"),
    (("absence", "unit"), "week", False, "absence.unit"),
    (("absence", "suspect_after", "days"), "5", False, "absence.suspect_after.days"),
    (("absence", "verify_after", "days"), 6, False, "absence.verify_after"),
    (("township", "notice_variant"), "letter", False, "township.notice_variant"),
    (("legal", "notice_variant"), None, True, "legal.notice_variant"),
    (("timers", "return_deadline"), None, True, "timers.return_deadline"),
    (("timers", "return_deadline", "unit"), "fortnight", False, "timers.return_deadline.unit"),
    (("timers", "return_deadline", "length"), -1, False, "timers.return_deadline.length"),
    (("timers", "dropout_confirm", "exclusive"), False, False, "timers.dropout_confirm"),
    (("closure", "refusal_gate", "combine"), "XOR", False, "closure.refusal_gate.combine"),
    (("closure", "approvers_deferral"), ["mayor"], False, "closure.approvers_deferral[0]"),
    (("step_order",), ["report", "school_persuasion", "township_notice", "joint_persuasion", "legal"],
     False, "step_order"),
    (("step_order",), ["school_persuasion", "report", "township_notice", "joint_persuasion"], False,
     "step_order"),
    (("step_order",), ["school_persuasion", "report", "township_persuasion", "township_notice",
                       "joint_persuasion", "legal"], False, "township.attempts_before_notice"),
    (("school", "window_timer"), "nope", False, "school.window_timer"),
    (("school", "window_timer"), "school_report", False, "school.window_timer"),
    # A timer nothing ends, or one from a start event nothing produces, is refused.
    (("timers", "home_visit_photos"), {"unit": "calendar_day", "length": 1, "from": "absence_recorded"}, False,
     "timers.home_visit_photos"),
    (("timers", "school_report", "from"), "window_closed", False, "timers.school_report.from"),
    (("timers", "observation", "from"), "autumn_term_start", False, "timers.observation.from"),
    (("joint", "immediate_reasons"), ["R77"], False, "joint.immediate_reasons[0]"),
    (("handover", "handover_month"), 13, False, "handover.handover_month"),
    (("age_scope", "entry_reference"), "31-08", False, "age_scope.entry_reference"),
])
def test_invalid_profile_names_the_key(path, value, delete, key):
    data = _mutated("henan-weihui-2022", path, value, delete)
    with pytest.raises(ValidationFailed) as err:
        profile_from_dict(data)
    assert key in err.value.fields, err.value.fields
    assert f"'{key}'" in err.value.message and "henan-weihui-2022" in err.value.message


def test_guizhou_needs_home_visit_count():
    data = _mutated("guizhou-2019", ("school", "home_visits_before_report"), None)
    with pytest.raises(ValidationFailed) as err:
        profile_from_dict(data)
    assert "school.home_visits_before_report" in err.value.fields


def test_load_from_directory_checks_name_and_json(tmp_path):
    data = _raw("guizhou-2019")
    (tmp_path / "guizhou-2019.json").write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    assert load_profile("guizhou-2019", directory=tmp_path).township.notice_variant == "dunfan"
    (tmp_path / "renamed.json").write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    with pytest.raises(ValidationFailed) as err:
        load_profile("renamed", directory=tmp_path)
    assert "name" in err.value.fields
    (tmp_path / "broken.json").write_text("{", encoding="utf-8")
    with pytest.raises(ValidationFailed, match="JSON"):
        load_profile("broken", directory=tmp_path)
    assert list_profiles(tmp_path) == ["broken", "guizhou-2019", "renamed"]


def test_or_gate_profile_builds():
    data = _mutated("henan-weihui-2022", ("closure", "refusal_gate", "combine"), "OR")
    assert profile_from_dict(data).closure.refusal_gate.combine == "OR"
