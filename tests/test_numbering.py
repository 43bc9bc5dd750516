"""Document numbers: GB/T 9704 format, gapless annual sequences per issuer and family, voiding,
and 20 concurrent reservations on SQLite and (with DATABASE_URL) PostgreSQL."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from sqlalchemy import select

from cases.store.db import make_engine, make_session_factory
from cases.store.models import AuditLog, Document, NumberSequence, Org
from cases.store.numbering import (
    family_key,
    format_number,
    next_case_number,
    number_document,
    reserve_number,
    void_number,
)
from forms.errors import Conflict, ValidationFailed


def _issuer(session, prefix="卫教", code="410781"):
    org = Org(kind="education_bureau", name="卫辉市教育局", doc_prefix=prefix, code=code)
    session.add(org)
    session.commit()
    return org


def test_format_number_follows_gbt_9704():
    assert format_number("卫教", "辍报", 2026, 12) == "卫教辍报〔2026〕12号"
    assert format_number("城关镇政", "限返", 2026, 1) == "城关镇政限返〔2026〕1号"
    assert "第" not in format_number("卫教", "辍报", 2026, 7)
    with pytest.raises(ValueError):
        format_number("卫教", "辍报", 2026, 0)
    assert family_key("guardian_notice", "限返") == "guardian_notice:限返"
    assert family_key("dropout_report") == "dropout_report"


def test_sequences_are_per_issuer_family_and_year(session):
    a = _issuer(session)
    b = _issuer(session, prefix="城关镇政", code="410781100")
    got = [reserve_number(session, org=a, family="dropout_report", year=2026) for _ in range(3)]
    assert got == [1, 2, 3]
    assert reserve_number(session, org=a, family="guardian_notice:限返", year=2026) == 1
    assert reserve_number(session, org=a, family="dropout_report", year=2027) == 1
    assert reserve_number(session, org=b, family="dropout_report", year=2026) == 1
    assert reserve_number(session, org=a.id, family="dropout_report", year=2026) == 4
    session.commit()
    row = session.get(NumberSequence, (a.id, "dropout_report", 2026))
    assert row.last_value == 4


def test_rolled_back_reservation_is_released(session):
    org = _issuer(session)
    assert reserve_number(session, org=org, family="f", year=2026) == 1
    session.commit()
    assert reserve_number(session, org=org, family="f", year=2026) == 2
    session.rollback()  # the render failed before anything was issued: gapless, 2 is given back
    assert reserve_number(session, org=org, family="f", year=2026) == 2
    session.commit()


def test_concurrent_reservations_are_distinct_and_consecutive(session, db_url):
    org = _issuer(session)
    org_id = org.id
    n = 20
    # Every thread holds its own connection from the read until its commit: size the pool for it.
    engine = make_engine(db_url, pool_size=n, max_overflow=0)
    session_factory = make_session_factory(engine)
    barrier = threading.Barrier(n)
    results: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def worker():
        s = session_factory()
        try:
            s.scalar(select(Org.name).where(Org.id == org_id))  # a read before the write, as in a request
            barrier.wait(timeout=30)
            value = reserve_number(s, org=org_id, family="dropout_report", year=2026)
            s.commit()
            with lock:
                results.append(value)
        except BaseException as e:  # collected and re-raised in the main thread
            errors.append(e)
            s.rollback()
        finally:
            s.close()

    threads = [threading.Thread(target=worker) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    engine.dispose()
    assert not errors, errors
    assert sorted(results) == list(range(1, n + 1))
    assert reserve_number(session, org=org_id, family="dropout_report", year=2026) == n + 1


def _doc(org, doc_id, year=2026):
    return Document(id=doc_id, org_id=org.id, form="dropout_report", family="dropout_report",
                    template_version="1", year=year, data={})


def test_number_document_and_void_never_reuses(session):
    org = _issuer(session)
    d1, d2 = _doc(org, "AAAAAAAAAAA1"), _doc(org, "AAAAAAAAAAA2")
    session.add_all([d1, d2])
    assert number_document(session, d1, issuer=org, abbr="辍报") == "卫教辍报〔2026〕1号"
    session.flush()
    void_number(session, d1, reason="打印错误，已销毁", who="clerk1")
    assert number_document(session, d2, issuer=org, abbr="辍报") == "卫教辍报〔2026〕2号"
    session.commit()
    assert (d1.status, d1.void_reason, d1.number_text) == ("void", "打印错误，已销毁", "卫教辍报〔2026〕1号")
    log = session.scalars(select(AuditLog).where(AuditLog.action == "document.void")).one()
    assert log.target == "document:AAAAAAAAAAA1" and log.after["number_text"] == "卫教辍报〔2026〕1号"
    with pytest.raises(Conflict):
        number_document(session, d2, issuer=org, abbr="辍报")
    with pytest.raises(Conflict):
        void_number(session, d1, reason="again", who="clerk1")
    with pytest.raises(ValidationFailed):
        void_number(session, d2, reason="  ", who="clerk1")
    no_prefix = Org(kind="school", name="无代字小学")
    session.add(no_prefix)
    session.flush()
    with pytest.raises(ValidationFailed, match="发文机关代字"):
        number_document(session, _doc(no_prefix, "AAAAAAAAAAA3"), issuer=no_prefix, abbr="辍报")


def test_next_case_number(session):
    county = Org(kind="county", name="青禾县", code="419901")
    session.add(county)
    session.flush()
    assert next_case_number(session, county=county, year=2026) == "2026-419901-00001"
    assert next_case_number(session, county=county, year=2026) == "2026-419901-00002"


def test_every_form_and_variant_of_one_issuer_gets_distinct_numbers(services, app_session):
    """One township issues every form and variant twice in a year: every printed number (the
    document's own and every own-series number such as the 回证编号) is distinct."""
    from cases.documents.issuing import issue_document
    from forms.registry import all_specs
    from tests.samples_data import sample_input

    issuer = Org(kind="township", name="东河镇", doc_prefix="东河镇政", code="410781101")
    app_session.add(issuer)
    app_session.commit()
    printed: list[str] = []
    for spec in all_specs().values():
        for variant in spec.variants or (None,):
            for _ in range(2):
                data = sample_input(spec.code, variant.code if variant else None)
                for f in spec.fields:  # numbers come from the issuer's series, not the input
                    if f.name == spec.number_field or f.series:
                        data.pop(f.name, None)
                doc = issue_document(app_session, services, form=spec.code, issuer_id=issuer.id,
                                     variant=variant.code if variant else None, data=data,
                                     want_pdf=False, issued_on=dt.date(2025, 11, 3))
                printed.append(doc.number_text)
                printed += [doc.data[f.name] for f in spec.fields if f.series]
    receipts = [n for n in printed if "送回" in n]
    assert len(receipts) == 2 * len(all_specs()["guardian_notice"].variants)
    assert receipts[:2] == ["东河镇政送回〔2025〕1号", "东河镇政送回〔2025〕2号"]
    assert len(printed) == len(set(printed)), sorted(n for n in printed if printed.count(n) > 1)


def test_numbering_abbreviations_are_distinct_across_forms():
    """Each form family and own series prints its own abbreviation, so equal counters of two
    families never print the same number."""
    from forms.registry import all_specs

    seen: dict[str, str] = {}
    for spec in all_specs().values():
        abbrs = {spec.abbr(v) for v in spec.variants or (None,)} | {f.series for f in spec.fields if f.series}
        for abbr in abbrs:
            assert abbr, f"{spec.code} has a family without an abbreviation"
            assert seen.setdefault(abbr, spec.code) == spec.code, f"{abbr} used by {seen[abbr]} and {spec.code}"
