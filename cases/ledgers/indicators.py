"""Indicators (DOMAIN §6.4): rates with numerator and denominator, and pass/fail against the
region's targets.

The seeds give targets but no formulas; every formula here is tagged [EXT] or [CP] and says what
the store can and cannot supply. The store knows the pupils on the roll (with grade and birth
date) and the cases; it has no population register and no enrolment history, so:

- ``primary_enrolment_rate`` 小学入学率 [EXT-13 净入学率, CP denominator]: pupils of primary age
  (6–11 周岁 on 31 August of the year) who are in school ÷ all pupils of that age on the roll.
- ``junior_gross_enrolment_rate`` 初中毛入学率 [EXT-13, CP denominator]: junior pupils (grades 7–9,
  any age) in school ÷ pupils aged 12–14 on the roll.
- ``nine_year_retention_rate`` 九年义务教育巩固率 [CP]: grade-9 pupils in school ÷ grade-9 pupils on
  the roll (the cohort's grade-1 intake is not in the store; the roll keeps dropouts).
- ``primary_dropout_rate`` / ``junior_dropout_rate`` 辍学率 [EXT-12, case-based product rule]:
  pupils of the 学段 whose case has ``dropout_confirmed_on`` inside the school year ÷ pupils of
  the 学段 on the roll.
- ``g01_retention_rate`` 建档立卡巩固率 [CP]: G01 pupils in school ÷ G01 pupils on the roll.
- ``disabled_enrolment_rate`` 残疾儿童少年入学率 [CP]: G03 pupils in school (送教上门 counts) ÷ G03
  pupils on the roll (the true denominator is 残联 data).
- ``g01_dropouts`` 建档立卡辍学人数 (动态清零): G01 pupils out of school at the reference date.

"In school" means no case in an out-of-school state (``cases.ledgers.ledger.OUT_OF_SCHOOL``) at the
reference date (rebuilt from the case events). Comparison is exact (fractions) and follows §0.3:
"以上" ≥, "以下" ≤ (Q10: 0.6% passes a ≤ 0.6% target).

Targets come from the ``indicator_targets`` table when rows exist for the region, else from the
seed table below; a region is a GB/T 2260 code prefix of the node or an ancestor (longest match),
or the region-profile name.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session

from cases.ledgers.ledger import (
    OUT_OF_SCHOOL,
    Scope,
    add_years,
    g01_condition,
    group_condition,
    kind_for,
    make_scope,
    scope_cases,
    state_as_of,
    subtree,
)
from cases.ledgers.models import IndicatorTarget
from cases.store.models import Case, Org, Pupil, SchoolClass
from forms.errors import ValidationFailed


@dataclass(frozen=True)
class IndicatorDef:
    code: str
    name: str
    formula: str
    source: str  # [EXT-n] / [CP]
    unit: str = "%"  # "%" or "人"


INDICATORS: tuple[IndicatorDef, ...] = (
    IndicatorDef("primary_enrolment_rate", "小学入学率",
                 "小学学龄(6–11周岁)在校生数 ÷ 在册小学学龄儿童数 × 100%", "[EXT-13][CP]"),
    IndicatorDef("junior_gross_enrolment_rate", "初中毛入学率",
                 "初中在校生数(不分年龄) ÷ 在册初中学龄(12–14周岁)儿童数 × 100%", "[EXT-13][CP]"),
    IndicatorDef("nine_year_retention_rate", "九年义务教育巩固率",
                 "九年级在校生数 ÷ 在册九年级学生数(含辍学) × 100%", "[CP]"),
    IndicatorDef("primary_dropout_rate", "小学辍学率",
                 "学年内认定辍学的小学生数 ÷ 在册小学生数 × 100%", "[EXT-12][CP]"),
    IndicatorDef("junior_dropout_rate", "初中辍学率",
                 "学年内认定辍学的初中生数 ÷ 在册初中生数 × 100%", "[EXT-12][CP]"),
    IndicatorDef("g01_retention_rate", "建档立卡贫困家庭子女义务教育巩固率",
                 "建档立卡/脱贫/监测家庭在校学生数 ÷ 在册该类学生数 × 100%", "[CP]"),
    IndicatorDef("disabled_enrolment_rate", "残疾儿童少年义务教育入学率",
                 "在校(含送教上门)残疾学生数 ÷ 在册残疾学生数 × 100%", "[CP]"),
    IndicatorDef("g01_dropouts", "建档立卡家庭子女辍学人数", "参考日不在校的建档立卡/脱贫/监测家庭学生数",
                 "[S0][S3][S4]", unit="人"),
)
BY_CODE = {d.code: d for d in INDICATORS}


@dataclass(frozen=True)
class Target:
    indicator: str
    op: str  # ge | le | eq
    value: Decimal
    source: str


# Seed targets (§6.4), keyed by region: GB/T 2260 prefix (52 = 贵州省, 532822 = 勐海县, 341323 = 灵璧县).
SEED_TARGETS: dict[str, tuple[Target, ...]] = {
    "532822": (Target("primary_enrolment_rate", "ge", Decimal("99.5"), "[S4]"),
               Target("junior_gross_enrolment_rate", "ge", Decimal("99"), "[S4]"),
               Target("primary_dropout_rate", "le", Decimal("0.6"), "[S4]"),
               Target("junior_dropout_rate", "le", Decimal("1.8"), "[S4]"),
               Target("g01_dropouts", "eq", Decimal("0"), "[S4]")),
    "52": (Target("nine_year_retention_rate", "ge", Decimal("95"), "[S3]"),
           Target("disabled_enrolment_rate", "ge", Decimal("95"), "[S3]"),
           Target("g01_retention_rate", "ge", Decimal("100"), "[S3]"),
           Target("g01_dropouts", "eq", Decimal("0"), "[S3]")),
    "341323": (Target("nine_year_retention_rate", "ge", Decimal("97"), "[S0]"),
               Target("g01_dropouts", "eq", Decimal("0"), "[S0]")),
}
OPS = {"ge": "≥", "le": "≤", "eq": "="}


@dataclass(frozen=True)
class IndicatorResult:
    """One indicator for one node and year: value, numerator/denominator, target and verdict."""

    code: str
    name: str
    formula: str
    source: str
    unit: str
    numerator: int
    denominator: int | None
    value: Fraction | None  # percent for rates, the count for "人"
    target: Target | None
    passed: bool | None

    def as_json(self) -> dict:
        return {"code": self.code, "name": self.name, "formula": self.formula, "source": self.source,
                "unit": self.unit, "numerator": self.numerator, "denominator": self.denominator,
                "value": round(float(self.value), 3) if self.value is not None else None,
                "target": None if self.target is None else
                {"op": OPS[self.target.op], "value": float(self.target.value), "source": self.target.source},
                "passed": self.passed}


def compare(value: Fraction | None, target: Target | None) -> bool | None:
    """Exact comparison per §0.3 (inclusive ≥/≤); None when either side is missing."""
    if value is None or target is None:
        return None
    t = Fraction(target.value)
    return {"ge": value >= t, "le": value <= t, "eq": value == t}[target.op]


def region_keys(session: Session, org: Org) -> list[str]:
    """Region keys of a node, most specific first: codes of the node and its ancestors, profiles."""
    chain = list(session.execute(select(Org.id, Org.code, Org.region_profile).where(Org.id.in_(org.ancestor_ids))))
    order = {oid: i for i, oid in enumerate(org.ancestor_ids)}
    chain.sort(key=lambda r: -order[r.id])
    keys = [r.region_profile for r in chain if r.region_profile]
    for r in chain:
        if r.code:
            keys.extend(r.code[:n] for n in (12, 9, 6, 4, 2) if len(r.code) >= n)
    return list(dict.fromkeys(keys))


def targets_for(session: Session, org: Org, year: int) -> dict[str, Target]:
    """The targets applying to ``org``: stored rows first, then seeds; the most specific key wins."""
    out: dict[str, Target] = {}
    for key in reversed(region_keys(session, org)):  # general first, specific overrides
        for t in SEED_TARGETS.get(key, ()):
            out[t.indicator] = t
        rows = session.scalars(select(IndicatorTarget).where(IndicatorTarget.region == key)).all()
        for r in rows:
            if (r.year_from or year) <= year <= (r.year_to or year):
                out[r.indicator] = Target(r.indicator, r.op, Decimal(str(r.value)), r.source or "")
    return out


def _in_school_flag(scope: Scope):
    st = state_as_of(scope.cut, scope.recorded_until, cases=scope_cases(scope))
    out = (select(Case.pupil_id).join(st, st.c.case_id == Case.id)
           .where(st.c.state.in_(sorted(OUT_OF_SCHOOL))).distinct().subquery())
    return out, case((out.c.pupil_id.is_(None), 1), else_=0)


def compute(session: Session, org_id: int, year: int, *, reference: dt.date | None = None) -> list[IndicatorResult]:
    """Every indicator of §6.4 for node ``org_id`` and school year ``year`` (Sep ``year`` – Aug
    ``year + 1``); the reference date is 31 August ``year + 1`` or today, whichever is earlier."""
    if not 2000 <= year <= 2100:
        raise ValidationFailed("学年应为四位年份", fields={"year": "例如 2025（2025—2026学年）"})
    org = session.get(Org, int(org_id))
    kind = kind_for(session, org_id)
    ref = reference or min(dt.date(year + 1, 8, 31), dt.date.today())
    scope = make_scope(session, kind, org.id, ref)
    out_sub, in_school = _in_school_flag(scope)
    age_ref = dt.date(ref.year if ref.month > 8 else ref.year - 1, 8, 31)

    def age_between(lo: int, hi: int):
        return and_(Pupil.birth_date <= add_years(age_ref, -lo),
                    Pupil.birth_date > add_years(age_ref, -(hi + 1)))

    grade = SchoolClass.grade
    g01 = g01_condition()
    g03 = group_condition("G03")
    year_start, year_end = dt.date(year, 9, 1), dt.date(year + 1, 8, 31)
    confirmed = (select(Case.pupil_id).where(Case.dropout_confirmed_on >= year_start,
                                             Case.dropout_confirmed_on <= min(year_end, ref)).distinct().subquery())
    conf = case((confirmed.c.pupil_id.is_not(None), 1), else_=0)

    def s(cond, flag=None):
        return func.sum(case((cond, flag if flag is not None else 1), else_=0))

    org_col = Pupil.hukou_org_id if scope.kind == "village" else Pupil.org_id
    q = (select(
        s(age_between(6, 11), in_school), s(age_between(6, 11)),
        s(grade >= 7, in_school), s(age_between(12, 14)),
        s(grade == 9, in_school), s(grade == 9),
        s(grade <= 6, conf), s(grade <= 6), s(grade >= 7, conf), s(grade >= 7),
        s(g01, in_school), s(g01), s(g03, in_school), s(g03),
        s(and_(g01, out_sub.c.pupil_id.is_not(None))))
        .select_from(Pupil).join(SchoolClass, SchoolClass.id == Pupil.class_id)
        .outerjoin(out_sub, out_sub.c.pupil_id == Pupil.id).outerjoin(confirmed, confirmed.c.pupil_id == Pupil.id)
        .where(org_col.in_(subtree(scope))))
    vals = [int(x or 0) for x in session.execute(q).one()]
    pairs = {"primary_enrolment_rate": vals[0:2], "junior_gross_enrolment_rate": vals[2:4],
             "nine_year_retention_rate": vals[4:6], "primary_dropout_rate": vals[6:8],
             "junior_dropout_rate": vals[8:10], "g01_retention_rate": vals[10:12],
             "disabled_enrolment_rate": vals[12:14]}
    targets = targets_for(session, org, year)
    results = []
    for d in INDICATORS:
        if d.unit == "人":
            num, den, value = vals[14], None, Fraction(vals[14])
        else:
            num, den = pairs[d.code]
            value = Fraction(num * 100, den) if den else None
        t = targets.get(d.code)
        results.append(IndicatorResult(d.code, d.name, d.formula, d.source, d.unit, num, den, value, t,
                                       compare(value, t)))
    return results


__all__ = ["BY_CODE", "INDICATORS", "IndicatorResult", "SEED_TARGETS", "Target", "compare", "compute",
           "region_keys", "targets_for"]
