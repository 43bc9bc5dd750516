"""Region profiles (DOMAIN §0.3, Appendix A): every threshold, deadline, step order and form
variant of the case workflow, as data.

Profiles ship as JSON in ``cases/profiles/<name>.json`` and are chosen per county (the county's
setting names a profile; ``DEFAULT_PROFILE`` otherwise). ``load_profile`` validates the whole file
and names the failing key in its error, so a region can edit its file without reading code.

An administrator can install a profile (``cases.engine.installed``: a database row per name). The
rows of the database are handed to this module by ``set_installed`` (this module reads no
database), and an installed profile is used instead of the shipped file of the same name.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Any

from cases.engine.deadlines import UNITS, Timer
from cases.engine.timers import PLAN_START_EVENTS, START_EVENTS, TIMER_RULES
from forms.codes import DROPOUT_REASONS, SPECIAL_GROUPS
from forms.errors import NotFound, ValidationFailed
from forms.registry import spec_for

log = logging.getLogger(__name__)

PROFILE_DIR = Path(__file__).resolve().parent.parent / "profiles"  # cases/profiles/*.json
DEFAULT_PROFILE = "henan-weihui-2022"

# The variants of the notice form (role "notice"): code -> title, read from its spec.
NOTICE_VARIANTS = MappingProxyType({x.code: x.title for x in spec_for("notice").variants})

STEPS = {
    "school_persuasion": "学校专人劝返（劝返期内多次劝返）",
    "school_home_visits": "学校家访（两次以上）",
    "report": "学校书面报告乡(镇)和教育部门",
    "township_persuasion": "乡(镇)组织劝返",
    "township_notice": "乡(镇)下达返校通知书",
    "joint_persuasion": "联合劝返",
    "further_persuasion": "继续劝返（联合劝返）",
    "legal": "司法介入",
}

ORGS = {
    "school": "学校",
    "township": "乡(镇)人民政府",
    "county_education": "县级教育部门",
    "rural_revitalization_office": "巩固脱贫攻坚成果(乡村振兴)领导小组办公室",
    "canlian": "残联",
    "gongan": "公安",
    "sifa": "司法部门",
}

ACTORS = {
    "class_teacher": "班主任",
    "school": "学校",
    "junior_school": "接收初中学校",
    "township": "乡(镇)人民政府",
    "county_education": "县级教育部门",
}

REQUIRED_TIMERS = ("school_report", "return_deadline", "dropout_confirm", "observation", "relapse_window")


@dataclass(frozen=True)
class Threshold:
    """A day-count threshold: reached at ``days`` (inclusive, "3日") or above it (exclusive, "超过7日")."""

    days: int
    exclusive: bool = False

    def reached(self, count: int) -> bool:
        return count > self.days if self.exclusive else count >= self.days

    @property
    def minimum(self) -> int:
        """The smallest count that reaches the threshold."""
        return self.days + 1 if self.exclusive else self.days


@dataclass(frozen=True)
class AbsenceRules:
    unit: str  # school_day | calendar_day: the unit the unexcused-day count is kept in
    verify_after: Threshold | None  # None: home-visit verification is a manual step
    suspect_after: Threshold


@dataclass(frozen=True)
class SchoolRules:
    min_attempts: int
    window_timer: str | None
    home_visits_before_report: int | None
    report_to: tuple[str, ...]


@dataclass(frozen=True)
class TownshipRules:
    attempts_before_notice: int
    notice_variant: str


@dataclass(frozen=True)
class JointRules:
    min_attempts: int
    partner_each_attempt: bool  # Q18: every joint attempt lists ≥ 1 partner department
    immediate_reasons: tuple[str, ...]  # reasons that put the case in JOINT as soon as notified


@dataclass(frozen=True)
class LegalRules:
    notice_variant: str
    document: str


@dataclass(frozen=True)
class RefusalGate:
    """C2 gate (Q4): ≥ N joint persuasions AND/OR a court ruling."""

    joint_attempts_min: int
    court_ruling_required: bool
    combine: str  # "AND" | "OR"


@dataclass(frozen=True)
class ClosureRules:
    refusal_gate: RefusalGate
    approvers_deferral: tuple[str, ...]


@dataclass(frozen=True)
class AgeScope:
    min_age: int
    max_age: int
    exempt_unregistered_ages: tuple[int, ...]
    include_over16_if: tuple[str, ...]
    entry_reference: str  # MM-DD of the entry-age reference date

    def entry_reference_date(self, year: int) -> dt.date:
        month, day = (int(p) for p in self.entry_reference.split("-"))
        return dt.date(year, month, day)


# The as-of rules a report may name (DOMAIN §6.3, [S3]): the 15th of the due month, the last day of
# the month before it.
REPORT_AS_OF = ("day_15", "previous_month_end")


@dataclass(frozen=True)
class PrefectureReport:
    """One half-monthly report: due on ``due_day`` of a month, as of ``as_of`` (``REPORT_AS_OF``)."""

    due_day: int
    as_of: str


@dataclass(frozen=True)
class Reporting:
    school_screening: str
    education_screening: str
    township_report: str | None
    prefecture_report: tuple[PrefectureReport, ...]
    quarterly_stats_form: str | None
    xueji_review_weeks: int
    # The township's half-monthly report: due days and as-of rules (empty: no township report).
    township_schedule: tuple[PrefectureReport, ...] = ()


@dataclass(frozen=True)
class Handover:
    enabled: bool
    count_before_month: int
    handover_month: int
    organiser: str
    notify_within_days: int
    county_check_within_days: int


@dataclass(frozen=True)
class RegionProfile:
    """One region's workflow configuration. Build with ``load_profile``."""

    name: str
    title: str
    source: str
    absence: AbsenceRules
    step_order: tuple[str, ...]
    school: SchoolRules
    township: TownshipRules
    joint: JointRules
    legal: LegalRules
    closure: ClosureRules
    dropout_confirm_manual_earlier: bool
    timers: Mapping[str, Timer]
    age_scope: AgeScope
    reporting: Reporting
    ledgers: tuple[str, ...]
    handover: Handover

    def timer(self, name: str) -> Timer:
        """The named timer; ``NotFound`` if this profile does not define it."""
        try:
            return self.timers[name]
        except KeyError as e:
            raise NotFound(f"地区配置 {self.name} 未定义计时器 {name}") from e

    def has_step(self, step: str) -> bool:
        return step in self.step_order

    def before(self, first: str, second: str) -> bool:
        """True when both steps are configured and ``first`` comes before ``second``."""
        return (first in self.step_order and second in self.step_order
                and self.step_order.index(first) < self.step_order.index(second))

    @property
    def notice_variant(self) -> str:
        return self.township.notice_variant

    @property
    def return_deadline(self) -> Timer:
        """The "N working days from service" timer printed on the township notice."""
        return self.timer("return_deadline")


class _Reader:
    """Typed access to the profile JSON; every error names the dotted key."""

    def __init__(self, profile: str):
        self.profile = profile

    def fail(self, key: str, why: str):
        raise ValidationFailed(f"地区配置 {self.profile}：键 '{key}' {why}", fields={key: why})

    def get(self, data: Mapping, key: str, path: str, kind: type | tuple, *, optional: bool = False) -> Any:
        full = f"{path}.{key}" if path else key
        if not isinstance(data, Mapping):
            self.fail(path or "<root>", "应为对象")
        if key not in data:
            if optional:
                return None
            self.fail(full, "缺失")
        value = data[key]
        if value is None and optional:
            return None
        if isinstance(value, bool) and kind in (int, (int,)):
            self.fail(full, f"应为整数，实为 {value!r}")
        if not isinstance(value, kind):
            names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
            self.fail(full, f"类型应为 {names}，实为 {type(value).__name__}")
        return value

    def choice(self, data: Mapping, key: str, path: str, allowed, *, optional: bool = False) -> Any:
        value = self.get(data, key, path, str, optional=optional)
        if value is not None and value not in allowed:
            self.fail(f"{path}.{key}" if path else key, f"取值 {value!r} 无效，应为 {sorted(allowed)} 之一")
        return value

    def nonneg(self, data: Mapping, key: str, path: str, *, optional: bool = False) -> int | None:
        value = self.get(data, key, path, int, optional=optional)
        if value is not None and value < 0:
            self.fail(f"{path}.{key}", f"不能为负数（{value}）")
        return value

    def str_list(self, data: Mapping, key: str, path: str, allowed=None) -> tuple:
        items = self.get(data, key, path, list)
        for i, item in enumerate(items):
            if allowed is not None and item not in allowed:
                self.fail(f"{path}.{key}[{i}]" if path else f"{key}[{i}]",
                          f"取值 {item!r} 无效，应为 {sorted(allowed)} 之一")
        return tuple(items)


def _threshold(r: _Reader, data: Mapping, key: str) -> Threshold | None:
    raw = r.get(data, key, "absence", dict, optional=True)
    if raw is None:
        return None
    days = r.nonneg(raw, "days", f"absence.{key}")
    if days == 0:
        r.fail(f"absence.{key}.days", "应大于0")
    return Threshold(days, bool(r.get(raw, "exclusive", f"absence.{key}", bool, optional=True)))


def _timer(r: _Reader, name: str, raw: Mapping) -> Timer:
    path = f"timers.{name}"
    if not isinstance(raw, Mapping):
        r.fail(path, "应为对象")
    return Timer(
        name=name,
        unit=r.choice(raw, "unit", path, UNITS),
        length=r.nonneg(raw, "length", path),
        start_event=r.get(raw, "from", path, str),
        label=r.get(raw, "label", path, str, optional=True) or name,
        actor=r.get(raw, "actor", path, str, optional=True) or "",
        exclusive=bool(r.get(raw, "exclusive", path, bool, optional=True)),
    )


def _check_timer(r: _Reader, key: str, timer: Timer) -> None:
    """The engine must know the timer (what ends it) and its start event (what starts it)."""
    rule = TIMER_RULES.get(key)
    if rule is None:
        r.fail(f"timers.{key}", "未知的计时器（系统不知道何时结束它），可选："
               + "、".join(f"{k}（{v.label}）" for k, v in TIMER_RULES.items()))
    events = PLAN_START_EVENTS if rule.duty == "plan" else START_EVENTS
    if timer.start_event not in events:
        r.fail(f"timers.{key}.from", f"未知的起算事件 {timer.start_event!r}，可选："
               + "、".join(f"{k}（{v}）" for k, v in events.items()))


def _check_step_order(r: _Reader, steps: tuple[str, ...]) -> None:
    if len(set(steps)) != len(steps):
        r.fail("step_order", "含重复步骤")
    for needed in ("report", "township_notice", "legal"):
        if needed not in steps:
            r.fail("step_order", f"缺少步骤 {needed!r}")
    school = [s for s in steps if s.startswith("school_")]
    if len(school) != 1:
        r.fail("step_order", "应恰好含一个学校阶段步骤（school_persuasion 或 school_home_visits）")
    joint = [s for s in steps if s in ("joint_persuasion", "further_persuasion")]
    if len(joint) != 1:
        r.fail("step_order", "应恰好含一个联合劝返步骤（joint_persuasion 或 further_persuasion）")
    order = [school[0], "report", *(["township_persuasion"] if "township_persuasion" in steps else []),
             "township_notice", joint[0], "legal"]
    if [s for s in steps if s in order] != order:
        r.fail("step_order", f"顺序应为 {order}")


def profile_from_dict(data: Mapping, *, name: str | None = None) -> RegionProfile:
    """Validate ``data`` (the JSON form) and build a ``RegionProfile``."""
    r = _Reader(name or (data.get("name") if isinstance(data, Mapping) else None) or "?")
    pname = r.get(data, "name", "", str)
    if name is not None and pname != name:
        r.fail("name", f"应与文件名一致（{name}），实为 {pname!r}")
    r.profile = pname

    absence_raw = r.get(data, "absence", "", dict)
    suspect = _threshold(r, absence_raw, "suspect_after")
    if suspect is None:
        r.fail("absence.suspect_after", "缺失")
    verify = _threshold(r, absence_raw, "verify_after")
    if verify is not None and verify.minimum >= suspect.minimum:
        r.fail("absence.verify_after", "家访核实阈值应小于疑似辍学阈值")
    unit = r.choice(absence_raw, "unit", "absence", {"school_day", "calendar_day"})
    absence = AbsenceRules(unit, verify, suspect)

    steps = r.str_list(data, "step_order", "", STEPS)
    _check_step_order(r, steps)

    timers_raw = r.get(data, "timers", "", dict)
    timers = {key: _timer(r, key, raw) for key, raw in timers_raw.items()}
    for needed in REQUIRED_TIMERS:
        if needed not in timers:
            r.fail(f"timers.{needed}", "缺失")
    if timers["return_deadline"].length == 0:
        r.fail("timers.return_deadline.length", "应大于0")
    for key, timer in timers.items():
        _check_timer(r, key, timer)

    school_raw = r.get(data, "school", "", dict)
    school = SchoolRules(
        min_attempts=r.nonneg(school_raw, "min_attempts", "school"),
        window_timer=r.get(school_raw, "window_timer", "school", str, optional=True),
        home_visits_before_report=r.nonneg(school_raw, "home_visits_before_report", "school", optional=True),
        report_to=r.str_list(school_raw, "report_to", "school", ORGS),
    )
    if school.window_timer is not None and school.window_timer not in timers:
        r.fail("school.window_timer", f"引用了未定义的计时器 {school.window_timer!r}")
    if school.window_timer is not None and TIMER_RULES[school.window_timer].duty != "attempts":
        r.fail("school.window_timer", f"计时器 {school.window_timer!r} 不是劝返期（应为 persuasion_window）")
    if "school_persuasion" in steps and school.window_timer is None:
        r.fail("school.window_timer", "步骤 school_persuasion 需要劝返期计时器")
    if "school_home_visits" in steps and not school.home_visits_before_report:
        r.fail("school.home_visits_before_report", "步骤 school_home_visits 需要家访次数（≥1）")
    starts = {t.start_event: key for key, t in timers.items()}
    if "persuasion_window_end" in starts and school.window_timer is None:
        r.fail(f"timers.{starts['persuasion_window_end']}.from", "起算事件 persuasion_window_end 需要劝返期计时器")
    if "home_visits_failed" in starts and not school.home_visits_before_report:
        r.fail(f"timers.{starts['home_visits_failed']}.from",
               "起算事件 home_visits_failed 需要 school.home_visits_before_report（≥1）")

    town_raw = r.get(data, "township", "", dict)
    township = TownshipRules(r.nonneg(town_raw, "attempts_before_notice", "township"),
                             r.choice(town_raw, "notice_variant", "township", NOTICE_VARIANTS))
    if ("township_persuasion" in steps) != (township.attempts_before_notice > 0):
        r.fail("township.attempts_before_notice",
               "有 township_persuasion 步骤时应大于0，没有时应为0")

    joint_raw = r.get(data, "joint", "", dict)
    reason_codes = {c.code for c in DROPOUT_REASONS}
    joint = JointRules(r.nonneg(joint_raw, "min_attempts", "joint"),
                       r.get(joint_raw, "partner_each_attempt", "joint", bool),
                       r.str_list(joint_raw, "immediate_reasons", "joint", reason_codes))

    legal_raw = r.get(data, "legal", "", dict)
    legal = LegalRules(r.choice(legal_raw, "notice_variant", "legal", NOTICE_VARIANTS),
                       r.get(legal_raw, "document", "legal", str))

    closure_raw = r.get(data, "closure", "", dict)
    gate_raw = r.get(closure_raw, "refusal_gate", "closure", dict)
    gate = RefusalGate(r.nonneg(gate_raw, "joint_attempts_min", "closure.refusal_gate"),
                       r.get(gate_raw, "court_ruling_required", "closure.refusal_gate", bool),
                       r.choice(gate_raw, "combine", "closure.refusal_gate", {"AND", "OR"}))
    approvers = r.str_list(closure_raw, "approvers_deferral", "closure", ORGS)
    if not approvers:
        r.fail("closure.approvers_deferral", "不能为空")
    closure = ClosureRules(gate, approvers)

    confirm_raw = r.get(data, "dropout_confirm", "", dict)
    confirm_timer = r.get(confirm_raw, "timer", "dropout_confirm", str)
    if confirm_timer != "dropout_confirm":
        r.fail("dropout_confirm.timer", "应为 'dropout_confirm'")
    if timers["dropout_confirm"].unit != "month" or not timers["dropout_confirm"].exclusive:
        r.fail("timers.dropout_confirm", "辍学认定应以月计并为“超出”（exclusive: true）")

    age_raw = r.get(data, "age_scope", "", dict)
    age = AgeScope(r.nonneg(age_raw, "min_age", "age_scope"), r.nonneg(age_raw, "max_age", "age_scope"),
                   tuple(r.get(age_raw, "exempt_unregistered_ages", "age_scope", list)),
                   r.str_list(age_raw, "include_over16_if", "age_scope",
                              {c.code for c in SPECIAL_GROUPS} | {"on_xueji_platform", "not_completed"}),
                   r.get(age_raw, "entry_reference", "age_scope", str))
    if age.min_age >= age.max_age:
        r.fail("age_scope.max_age", "应大于 min_age")
    try:
        age.entry_reference_date(2000)
    except ValueError as e:
        r.fail("age_scope.entry_reference", f"应为 MM-DD（{e}）")

    rep_raw = r.get(data, "reporting", "", dict)
    periods = {"monthly", "quarterly", "half_monthly", "weekly"}

    def schedule(key: str, optional: bool = False) -> tuple[PrefectureReport, ...]:
        out = []
        items = r.get(rep_raw, key, "reporting", list, optional=True) if optional else \
            r.get(rep_raw, key, "reporting", list)
        for i, item in enumerate(items or []):
            path = f"reporting.{key}[{i}]"
            due = r.nonneg(item, "due_day", path)
            if not 1 <= due <= 28:
                r.fail(f"{path}.due_day", "应在1–28之间")
            as_of = r.choice(item, "as_of", path, set(REPORT_AS_OF))
            if as_of == "day_15" and due <= 15:
                r.fail(f"{path}.due_day", "截至15日的报表应在16日以后报送")
            out.append(PrefectureReport(due, as_of))
        return tuple(out)

    prefecture = schedule("prefecture_report")
    township_schedule = schedule("township_report_schedule", optional=True)
    reporting = Reporting(r.choice(rep_raw, "school_screening", "reporting", periods),
                          r.choice(rep_raw, "education_screening", "reporting", periods),
                          r.choice(rep_raw, "township_report", "reporting", periods, optional=True),
                          tuple(prefecture),
                          r.get(rep_raw, "quarterly_stats_form", "reporting", str, optional=True),
                          r.nonneg(rep_raw, "xueji_review_weeks", "reporting"),
                          township_schedule)
    if reporting.township_report == "half_monthly" and len(township_schedule) != 2:
        r.fail("reporting.township_report_schedule", "乡镇半月报需要两个报送日（截至15日、截至上月末）")

    hand_raw = r.get(data, "handover", "", dict)
    handover = Handover(r.get(hand_raw, "enabled", "handover", bool),
                        r.nonneg(hand_raw, "count_before_month", "handover"),
                        r.nonneg(hand_raw, "handover_month", "handover"),
                        r.get(hand_raw, "organiser", "handover", str),
                        r.nonneg(hand_raw, "notify_within_days", "handover"),
                        r.nonneg(hand_raw, "county_check_within_days", "handover"))
    for key in ("count_before_month", "handover_month"):
        if not 1 <= getattr(handover, key) <= 12:
            r.fail(f"handover.{key}", "应为1–12月")

    return RegionProfile(
        name=pname,
        title=r.get(data, "title", "", str),
        source=r.get(data, "source", "", str, optional=True) or "",
        absence=absence,
        step_order=steps,
        school=school,
        township=township,
        joint=joint,
        legal=legal,
        closure=closure,
        dropout_confirm_manual_earlier=bool(r.get(confirm_raw, "manual_earlier", "dropout_confirm", bool,
                                                  optional=True)),
        timers=MappingProxyType(timers),
        age_scope=age,
        reporting=reporting,
        ledgers=tuple(r.get(data, "ledgers", "", list)),
        handover=handover,
    )


def list_profiles(directory: Path = PROFILE_DIR) -> list[str]:
    """Names of the profiles shipped in ``directory``, sorted."""
    return sorted(p.stem for p in Path(directory).glob("*.json"))


# Installed profiles (name -> (sha256 of the stored JSON, the JSON)), as last handed over by
# ``set_installed``; and the profiles built from them, by (name, sha256).
_installed: dict[str, tuple[str, Mapping]] = {}
_built: dict[tuple[str, str], RegionProfile] = {}


def set_installed(rows: Mapping[str, tuple[str, Mapping]]) -> None:
    """Make ``rows`` (name -> (sha256, profile JSON)) the installed profiles of this process.
    Each is validated when first loaded, like a shipped file."""
    _installed.clear()
    _installed.update(rows)
    for key in [k for k in _built if _installed.get(k[0], ("",))[0] != k[1]]:
        del _built[key]


def installed_profiles() -> dict[str, str]:
    """The installed profiles of this process: name -> sha256 of their JSON."""
    return {name: sha for name, (sha, _data) in _installed.items()}


def available_profiles() -> list[str]:
    """Every profile a county may use: shipped and installed, sorted."""
    return sorted(set(list_profiles()) | set(_installed))


@lru_cache(maxsize=32)
def _load_cached(name: str, directory: str) -> RegionProfile:
    path = Path(directory) / f"{name}.json"
    if not path.is_file():
        raise NotFound(f"没有名为 {name!r} 的地区配置；可用：{', '.join(list_profiles(Path(directory)))}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValidationFailed(f"地区配置 {name}：JSON 格式错误（第{e.lineno}行）：{e.msg}",
                               fields={"<file>": str(e)}) from e
    return profile_from_dict(data, name=name)


def load_profile(name: str | None = None, *, directory: Path = PROFILE_DIR) -> RegionProfile:
    """Load and validate a region profile (``DEFAULT_PROFILE`` when ``name`` is None or empty)."""
    name = name or DEFAULT_PROFILE
    if "/" in name or "\\" in name or name.startswith("."):
        raise NotFound(f"地区配置名称无效：{name!r}")
    if name in _installed and Path(directory).resolve() == PROFILE_DIR:
        sha, data = _installed[name]
        built = _built.get((name, sha))
        if built is None:
            built = _built[(name, sha)] = profile_from_dict(data, name=name)
        return built
    return _load_cached(name, str(Path(directory).resolve()))


def profile_for_county(county_profile: str | None) -> RegionProfile:
    """The profile a county is configured with, or the default when the county has none."""
    return load_profile(county_profile or None)
