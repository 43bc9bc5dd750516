"""The timers the case engine knows (DOMAIN §3.3, §3.6): which start events exist, and how a timer
of each name ends. Pure data, no database.

A region profile configures *when* a timer runs (``timers.<name>``: unit, length, ``from`` = start
event); this module says *what* a timer of that name is:

- ``record``: a duty met by a contact or persuasion record dated inside its window (the same-day
  guardian contact, the 卫辉 home-visit verification "及时"). Leaving the duty's state does not
  meet it; if no record came in time it is breached.
- ``attempts``: the persuasion window: met by ≥ N school attempts inside it (``school.min_attempts``).
- ``state``: a duty met by taking the transition that leaves its state (the school's 报告单 leaves
  SUSPECTED, the township's notice leaves REPORTED).
- ``period``: no duty, the time just elapses (辍学认定, observation, relapse watch).
- ``plan``: a timer of a 整班移交 plan, computed by ``cases.handover``, not a case timer.

``profiles.load_profile`` refuses a timer name or a start event not listed here, so a profile
cannot configure a timer that nothing starts or nothing ends.
"""

from __future__ import annotations

from dataclasses import dataclass

# Start events: the profile's ``timers.<name>.from``. Each is produced by the transitions listed in
# ``workflow.TRANSITIONS`` (``starts``) or by an event recorder of ``casework`` (receipt, service,
# persuasion record); ``workflow.EVENT_DATES`` computes its date from the case facts.
START_EVENTS: dict[str, str] = {
    "absence_recorded": "登记无故缺勤（立案）",
    "entered_verify": "无故缺勤达到家访核实标准",
    "entered_suspected": "认定疑似辍学",
    "suspect_threshold_crossed": "无故缺勤超过疑似辍学标准之日",
    "persuasion_window_end": "劝返期届满",
    "home_visits_failed": "家访达到规定次数仍未返校",
    "report_receipt": "乡(镇)签收辍学情况报告单",
    "service": "返校通知书送达（送达回证）",
    "returned": "学生返校",
}
# Start events of 整班移交 plans (cases.handover), not of a case.
PLAN_START_EVENTS: dict[str, str] = {
    "registration_period_end": "接收学校报到期结束",
    "autumn_term_start": "秋季学期开学",
}

DUTIES = ("record", "attempts", "state", "period", "plan")


@dataclass(frozen=True)
class TimerRule:
    """How a timer ends. ``states``: the states the duty belongs to (``record``: records made while
    the case is in them or after count; ``state``/``attempts``: leaving them ends the duty).
    ``cancelled_by``: entering one of these states makes the timer moot (the child came back)."""

    duty: str
    states: frozenset[str] = frozenset()
    cancelled_by: frozenset[str] = frozenset()
    label: str = ""

    @property
    def alerting(self) -> bool:
        """Duties raise T−1 and breach alerts; periods and plan timers do not."""
        return self.duty in ("record", "attempts", "state")


def _rule(duty: str, states=(), cancelled_by=(), label: str = "") -> TimerRule:
    return TimerRule(duty, frozenset(states), frozenset(cancelled_by), label)


TIMER_RULES: dict[str, TimerRule] = {
    "contact_guardian": _rule("record", {"ABSENT"}, label="当日联系监护人"),
    "verify_visit": _rule("record", {"VERIFY"}, label="家访或联系监护人核实"),
    "persuasion_window": _rule("attempts", {"SUSPECTED"}, {"RETURNED"}, label="疑似辍学劝返期"),
    "school_report": _rule("state", {"SUSPECTED"}, {"RETURNED"}, label="学校书面报告"),
    "township_notice": _rule("state", {"REPORTED"}, label="乡(镇)下达返校通知书"),
    "return_deadline": _rule("state", {"REPORTED", "NOTICED"}, label="限期返校"),
    "dropout_confirm": _rule("period", cancelled_by={"RETURNED", "ATTENDING"}, label="辍学认定"),
    "observation": _rule("period", cancelled_by={"ABSENT", "ATTENDING"}, label="复学观察期"),
    "relapse_window": _rule("period", label="反弹监测期"),
    "handover_notify": _rule("plan", label="整班移交未报到通报"),
    "handover_county_check": _rule("plan", label="整班移交县级核查"),
}

__all__ = ["START_EVENTS", "PLAN_START_EVENTS", "DUTIES", "TimerRule", "TIMER_RULES"]
