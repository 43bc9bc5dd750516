"""Demo data: counts, valid synthetic identities, consistency, determinism, idempotence, CLI."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select

from cases import demo
from cases.engine.models import Deadline
from cases.store.db import create_schema, make_engine, make_session_factory, session_scope
from cases.store.models import Case, CaseEvent, Guardian, Org, Pupil, SchoolClass
from forms import validators

TODAY = dt.date(2026, 3, 16)


def test_demo_counts_and_identities(session):
    s = demo.load_demo(session, seed=1, today=TODAY)
    session.commit()
    assert s.created
    assert (s.townships, s.schools, s.classes, s.pupils, s.cases) == (3, 6, 30, 300, 8)
    assert 9 <= s.villages <= 12 and s.guardians >= 600
    townships = session.scalars(select(Org).where(Org.kind == "township")).all()
    for t in townships:
        villages = [o for o in t.children if o.kind == "village"]
        assert 3 <= len(villages) <= 4
        assert t.doc_prefix and t.code and len(t.code) == 12
    schools = session.scalars(select(Org).where(Org.kind == "school")).all()
    assert all(len(o.code) == 10 and o.code.isdigit() for o in schools)
    top_grades = {o.name: max(c.grade for c in session.scalars(select(SchoolClass).where(SchoolClass.org_id == o.id)))
                  for o in schools}
    assert sorted(top_grades.values()) == [6, 6, 6, 6, 9, 9]  # 4 primary, 2 junior
    bureau = session.scalar(select(Org).where(Org.kind == "education_bureau"))
    assert bureau.doc_prefix == "青教"

    for p in session.scalars(select(Pupil)):
        assert validators.check_id_number(p.id_number, today=TODAY) == p.id_number
        assert validators.id_sex(p.id_number) == p.sex
        assert validators.id_birth_date(p.id_number) == p.birth_date
        assert p.xueji_no == "G" + p.id_number and validators.check_xueji_no(p.xueji_no)
        grade = p.school_class.grade
        # 6 years old by 31 August of the year the pupil entered grade 1 (school year 2025 here).
        entered = 2025 - (grade - 1)
        assert dt.date(entered - 6, 9, 1) <= p.birth_date <= dt.date(entered - 5, 8, 31)
        assert p.org_id == p.school_class.org_id
        assert session.get(Org, p.hukou_org_id).kind == "village"
    for g in session.scalars(select(Guardian)):
        assert validators.check_phone(g.phone) == g.phone
        if g.id_number:
            assert validators.check_id_number(g.id_number, today=TODAY)
            assert validators.id_sex(g.id_number) == ("男" if g.relation == "父" else "女")


def test_demo_cases_walk_the_workflow(session):
    demo.load_demo(session, seed=1, today=TODAY)
    session.commit()
    cases = session.scalars(select(Case).order_by(Case.id)).all()
    assert [c.state for c in cases] == ["ABSENT", "VERIFY", "SUSPECTED", "REPORTED", "NOTICED", "JOINT",
                                        "REPORTED", "NOTICED"]
    assert [c.number for c in cases] == [f"2026-419901-{i:05d}" for i in range(1, 9)]
    for c in cases:
        events = session.scalars(select(CaseEvent).where(CaseEvent.case_id == c.id, CaseEvent.kind == "transition")
                                 .order_by(CaseEvent.id)).all()
        assert events[0].from_state == "ATTENDING" and events[-1].to_state == c.state
        for a, b in zip(events, events[1:], strict=False):
            assert a.to_state == b.from_state and a.occurred_at < b.occurred_at
        assert all(e.occurred_at.tzinfo is not None for e in events)
        assert session.get(Org, c.township_org_id).kind == "township"
        assert c.opened_on < TODAY and events[-1].occurred_at.date() < TODAY
    # walked by the engine: its timers started and its guards met (3 refused school attempts before T7)
    started = {c.state: {d.timer for d in session.scalars(select(Deadline).where(Deadline.case_id == c.id))}
               for c in cases[:6]}
    assert started["ABSENT"] == {"contact_guardian"}
    assert {"persuasion_window", "school_report"} <= started["SUSPECTED"]
    assert "township_notice" in started["REPORTED"] and "return_deadline" in started["NOTICED"]
    joint = cases[5]
    attempts = session.scalars(select(CaseEvent).where(CaseEvent.case_id == joint.id,
                                                       CaseEvent.kind == "attempt")).all()
    # the same-day contact (T1), the verifying home visit (T3), three attempts in the window (T5)
    assert [(a.data["method"], a.data["result"]) for a in attempts] == [("phone", "refused"), ("visit", "refused"),
        ("visit", "refused"), ("phone", "refused"), ("visit", "refused")]
    met = {d.timer: d.status for d in session.scalars(select(Deadline).where(Deadline.case_id == joint.id))}
    assert met["contact_guardian"] == "met" and met["verify_visit"] == "met" and met["persuasion_window"] == "met"


def _snapshot(url, seed):
    engine = make_engine(url)
    create_schema(engine)
    try:
        with session_scope(make_session_factory(engine)) as s:
            demo.load_demo(s, seed=seed, today=TODAY)
            s.flush()
            return [(p.name, p.id_number) for p in s.scalars(select(Pupil).order_by(Pupil.id))]
    finally:
        engine.dispose()


def test_demo_is_deterministic_by_seed(tmp_path):
    a = _snapshot(f"sqlite:///{tmp_path / 'a.db'}", 1)
    b = _snapshot(f"sqlite:///{tmp_path / 'b.db'}", 1)
    c = _snapshot(f"sqlite:///{tmp_path / 'c.db'}", 2)
    assert a == b and a != c and len(a) == 300


def test_demo_second_load_adds_nothing(session):
    first = demo.load_demo(session, seed=1, today=TODAY)
    session.commit()
    second = demo.load_demo(session, seed=1, today=TODAY)
    assert not second.created and second.pupils == first.pupils == 300
    assert session.scalar(select(func.count()).select_from(Pupil)) == 300


def test_demo_command_migrates_and_loads(db_url, capsys):
    from config import Config  # the settings the command's __main__ passes in

    assert demo.main(["--database-url", db_url], config=Config) == 0
    assert "300 pupils" in capsys.readouterr().out
    assert demo.main(["--database-url", db_url], config=Config) == 0
    assert "already present" in capsys.readouterr().out
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            assert conn.scalar(select(func.count()).select_from(Pupil)) == 300
    finally:
        engine.dispose()


def test_demo_work_queue_stands_relative_to_load_day(session):
    """On the load day the open deadlines tell a county's week (dates searched back from it):
    overdue duties, one due today, some within 3 working days, each where the plan put it."""
    from cases.engine.casework import holiday_tables

    demo.load_demo(session, seed=1, today=TODAY)
    session.commit()
    holidays = holiday_tables(session)
    cases = session.scalars(select(Case).order_by(Case.id)).all()
    stands = {}
    for c, (_state, _reason, _path, (timer, standing), school) in zip(cases, demo.CASE_PLAN, strict=True):
        assert session.get(Org, c.org_id).name == school
        if timer is None:
            continue
        [d] = session.scalars(select(Deadline).where(Deadline.case_id == c.id, Deadline.timer == timer)).all()
        assert d.status == "open" and d.alerting and d.due_on is not None
        assert demo._standing(d.due_on, TODAY, holidays) == standing, (c.state, timer, d.due_on)
        stands[c.number] = (timer, d.due_on)
    assert stands == {
        "2026-419901-00001": ("contact_guardian", dt.date(2026, 3, 15)),
        "2026-419901-00002": ("verify_visit", TODAY),
        "2026-419901-00003": ("persuasion_window", dt.date(2026, 3, 19)),
        "2026-419901-00004": ("township_notice", dt.date(2026, 3, 15)),
        "2026-419901-00005": ("return_deadline", dt.date(2026, 3, 19)),
        "2026-419901-00007": ("township_notice", TODAY),
        "2026-419901-00008": ("return_deadline", dt.date(2026, 3, 13)),
    }


def test_demo_sets_indicator_targets_for_every_indicator(session):
    from cases.ledgers import indicators

    summary = demo.load_demo(session, seed=1, today=TODAY)
    session.commit()
    results = {r.code: r for r in indicators.compute(session, summary.county_id, 2025)}
    assert set(results) == {d.code for d in indicators.INDICATORS}
    shown = {code: (r.target.op, float(r.target.value)) for code, r in results.items()}
    assert shown == {"primary_enrolment_rate": ("ge", 99.5), "junior_gross_enrolment_rate": ("ge", 99.0),
                     "nine_year_retention_rate": ("ge", 97.0), "primary_dropout_rate": ("le", 0.6),
                     "junior_dropout_rate": ("le", 1.8), "g01_retention_rate": ("ge", 100.0),
                     "disabled_enrolment_rate": ("ge", 95.0), "g01_dropouts": ("eq", 0.0)}
    # every figure with a denominator is judged against its target (达标 or not), none 未设目标
    assert all(r.passed is not None for r in results.values() if r.value is not None)


def test_demo_with_services_issues_each_noticed_cases_notice(app, app_session, services):
    """Loaded with the app's services (as ``python -m cases.demo`` does), every NOTICED case has its
    返校通知书: numbered, DOCX and PDF stored, issued on the day the case says it was served."""
    from cases.documents.issuing import document_file
    from cases.store.models import Document

    demo.load_demo(app_session, seed=1, today=TODAY, services=services)
    app_session.commit()
    noticed = app_session.scalars(select(Case).where(Case.state == "NOTICED").order_by(Case.id)).all()
    assert len(noticed) == 2
    for case in noticed:
        docs = app_session.scalars(select(Document).where(Document.case_id == case.id)).all()
        assert [(d.form, d.variant, d.status) for d in docs] == [("guardian_notice", "xianqi", "issued")]
        doc = docs[0]
        township = app_session.get(Org, case.township_org_id)
        assert doc.org_id == township.id and doc.number_text.startswith(township.doc_prefix)
        assert doc.pages >= 2 and document_file(services, doc, "pdf")[:5] == b"%PDF-"
        assert document_file(services, doc, "docx")[:2] == b"PK"
        t8 = app_session.scalars(select(CaseEvent).where(CaseEvent.case_id == case.id, CaseEvent.kind == "transition")
                                 .order_by(CaseEvent.id.desc())).first()
        assert doc.data["issue_date"] == t8.occurred_at.astimezone(demo.CHINA_TZ).date().isoformat()
        assert doc.data["student_name"] == case.pupil.name
    # 东河镇's 回证 came back typed into the Word file: complete, its values waiting for a person
    from cases.returns.models import DocumentReturn, ReviewItem

    back, out = (app_session.scalars(select(Document).where(Document.case_id == c.id)).one() for c in noticed)
    assert back.number_text.startswith("东河镇政") and out.number_text.startswith("西岭乡政")
    ret = app_session.scalars(select(DocumentReturn).where(DocumentReturn.document_id == back.id)).one()
    assert (ret.status, ret.complete, ret.missing) == ("review", True, [])
    items = app_session.scalars(select(ReviewItem).where(ReviewItem.document_id == back.id)
                                .order_by(ReviewItem.id)).all()
    served = back.data["issue_date"]
    assert [(i.field_path, i.kind, i.status, i.proposed["value"]) for i in items] == [
        ("service_time", "confirm", "open", f"{served}T10:00:00"), ("service_method", "confirm", "open", "direct"),
        ("recipient_signature", "confirm", "open", True), ("recipient_signed_on", "confirm", "open", served),
        ("server_signature_1", "confirm", "open", True)]
    assert app_session.scalars(select(DocumentReturn).where(DocumentReturn.document_id == out.id)).all() == []
