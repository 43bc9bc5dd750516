"""Indicators (DOMAIN §6.4): exact inclusive comparison (Q10), numerator/denominator on a
hand-counted roll, region targets (seed and stored), 建档立卡 zero."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from fractions import Fraction

from cases.ledgers import indicators
from cases.ledgers.indicators import Target, compare
from cases.ledgers.models import IndicatorTarget
from cases.store.models import Case, CaseEvent, Org, Pupil, SchoolClass
from tests.test_ledgers import at, build_small


def test_inclusive_and_exact_comparison():
    le = Target("primary_dropout_rate", "le", Decimal("0.6"), "[S4]")
    assert compare(Fraction(3 * 100, 500), le) is True  # exactly 0.6 % passes "0.6%以下"
    assert compare(Fraction(301 * 100, 50000), le) is False  # 0.602 %
    ge = Target("primary_enrolment_rate", "ge", Decimal("99.5"), "[S4]")
    assert compare(Fraction(995, 10), ge) is True and compare(Fraction(99499, 1000), ge) is False
    eq = Target("g01_dropouts", "eq", Decimal("0"), "[S3]")
    assert compare(Fraction(0), eq) is True and compare(Fraction(1), eq) is False
    assert compare(None, ge) is None and compare(Fraction(1), None) is None


def _school(session, county, grade: int, n: int, *, confirmed: int, year: int = 2025) -> Org:
    """A school with ``n`` pupils of one grade, ``confirmed`` of them confirmed dropouts in the year."""
    school = Org(kind="school", name=f"{grade}年级学校", parent_id=county.id, code=f"21{grade:08d}")
    session.add(school)
    session.flush()
    klass = SchoolClass(org_id=school.id, grade=grade, name="一班", school_year=year)
    session.add(klass)
    session.flush()
    birth = dt.date(year - 5 - grade, 10, 1)  # grade g: 5 + g 周岁 on 31 August of year + 1
    pupils = [Pupil(org_id=school.id, class_id=klass.id, name=f"学生{i}", sex="男", birth_date=birth)
              for i in range(n)]
    session.add_all(pupils)
    session.flush()
    for i, p in enumerate(pupils[:confirmed]):
        c = Case(number=f"X{grade}-{i}", pupil_id=p.id, org_id=school.id, state="SUSPECTED", reason_code="R01",
                 opened_on=dt.date(year, 10, 1), dropout_confirmed_on=dt.date(year, 11, 5))
        session.add(c)
        session.flush()
        session.add(CaseEvent(case_id=c.id, org_id=school.id, kind="transition", to_state="SUSPECTED",
                              transition="T4", occurred_at=at(f"{year}-10-01")))
    return school


def test_dropout_rate_at_the_boundary_passes_for_menghai(session):
    prov = Org(kind="province", name="云南省", code="530000")
    session.add(prov)
    session.flush()
    county = Org(kind="county", name="勐海县", parent_id=prov.id, code="532822")
    session.add(county)
    session.flush()
    _school(session, county, 3, 500, confirmed=3)  # 3 / 500 = 0.6 %
    _school(session, county, 8, 100, confirmed=2)  # 2 / 100 = 2.0 % > 1.8 %
    session.commit()
    res = {r.code: r for r in indicators.compute(session, county.id, 2025, reference=dt.date(2026, 6, 30))}
    p = res["primary_dropout_rate"]
    assert (p.numerator, p.denominator, p.value) == (3, 500, Fraction(3, 5))
    assert p.target.op == "le" and p.target.value == Decimal("0.6") and p.passed is True
    j = res["junior_dropout_rate"]
    assert (j.numerator, j.denominator) == (2, 100) and j.passed is False
    # in school = no case in an out-of-school state on the reference date
    e = res["primary_enrolment_rate"]
    assert (e.numerator, e.denominator, e.value) == (497, 500, Fraction("99.4"))
    assert e.target.value == Decimal("99.5") and e.passed is False
    assert res["g01_dropouts"].numerator == 0 and res["g01_dropouts"].passed is True
    assert res["nine_year_retention_rate"].target is None  # no 勐海 target for it
    # a stored target for the region overrides the seed
    session.add(IndicatorTarget(region="532822", indicator="primary_dropout_rate", op="le", value=0.5,
                                source="local"))
    session.commit()
    p = {r.code: r for r in indicators.compute(session, county.id, 2025, reference=dt.date(2026, 6, 30))}[
        "primary_dropout_rate"]
    assert p.target.value == Decimal("0.5") and p.passed is False
    # outside the school year the confirmations do not count
    p = {r.code: r for r in indicators.compute(session, county.id, 2024, reference=dt.date(2025, 6, 30))}[
        "primary_dropout_rate"]
    assert p.numerator == 0 and p.passed is True


def test_small_fixture_indicators_and_guizhou_targets(session):
    small = build_small(session, county_code="520102")  # a 贵州 code: the province's targets apply
    res = {r.code: r for r in indicators.compute(session, small.county.id, 2025, reference=dt.date(2025, 12, 31))}
    # G01 pupils on the roll: p2 (jdlk), p4 (G01), p5 (tph); out of school on 12-31: p4 (LOCATING), p5
    g = res["g01_retention_rate"]
    assert (g.numerator, g.denominator) == (1, 3) and g.target.value == Decimal("100") and g.passed is False
    z = res["g01_dropouts"]
    assert z.numerator == 2 and z.target.op == "eq" and z.passed is False
    r = res["nine_year_retention_rate"]  # grade 9: nobody on the roll
    assert r.denominator == 0 and r.value is None and r.passed is None
    d = res["disabled_enrolment_rate"]  # G03: p4, out of school
    assert (d.numerator, d.denominator, d.passed) == (0, 1, False)
    assert res["primary_dropout_rate"].target is None  # 贵州 has no dropout-rate target
    keys = indicators.region_keys(session, small.s1)
    assert keys.index("520102") < keys.index("52")
