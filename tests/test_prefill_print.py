"""What the system knows is printed, by name (issue 13): the notices carry 历次劝返日期 and the other
guardian, the 回证 its 受送达人 and 送达地点, parties sign with their full names (青禾县人民政府),
the 交接表 names the township's 中心校 and its 户籍地 column stays short, 档案 is never pre-ticked."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from cases.documents.prefill import data_from_case, issuer_title
from cases.handover.documents import handover_data
from cases.store.models import Case, CaseEvent, Org, Pupil, SchoolClass, utcnow
from forms.registry import get_spec


def test_notice_prefill_names_dates_guardians_and_service(demo, app_session):
    case = app_session.scalars(select(Case).order_by(Case.id)).first()
    for day in (dt.date(2026, 9, 11), dt.date(2026, 9, 15), dt.date(2026, 10, 2)):
        app_session.add(CaseEvent(case_id=case.id, org_id=case.pupil.org_id, kind="attempt", actor="班主任",
                                  occurred_at=utcnow(), data={"date": day.isoformat(), "persons": "班主任",
                                                              "method": "visit", "result": "refused"}))
    app_session.commit()
    app_session.refresh(case)
    spec = get_spec("guardian_notice")
    data = data_from_case(app_session, case, spec, spec.variant("xianqi"))
    assert data["persuasion_dates"].startswith("2026年9月11日、9月15日、10月2日")
    guardians = case.pupil.guardians
    assert data["guardian2_name"] == guardians[1].name
    assert data["recipient_name"] == guardians[0].name
    assert data["service_place"] == (guardians[0].address or case.pupil.address)


def test_parties_and_issuers_sign_with_full_names(demo, app_session):
    county = app_session.scalars(select(Org).where(Org.kind == "county")).one()
    town = app_session.scalars(select(Org).where(Org.name == "西岭乡")).one()
    village = app_session.scalars(select(Org).where(Org.kind == "village")).first()
    assert issuer_title(county) == "青禾县人民政府"
    assert issuer_title(town) == "西岭乡人民政府"
    assert issuer_title(village) == f"{village.name}村民委员会"
    bureau = app_session.scalars(select(Org).where(Org.kind == "education_bureau")).one()
    assert issuer_title(bureau) == "青禾县教育局"


def test_handover_names_the_central_school_and_leaves_files_unticked(demo, app_session):
    klass = app_session.scalars(select(SchoolClass).where(SchoolClass.grade == 6)).first()
    school = app_session.get(Org, klass.org_id)
    receiving = app_session.scalars(select(Org).where(Org.kind == "school", Org.name.like("%初级中学"))).first()
    data = handover_data(app_session, klass, receiving)
    assert data["central_school"].endswith("中心小学") and data["central_school"] != data["township_name"]
    assert data["central_school"].startswith(data["township_name"])
    pupil = app_session.scalars(select(Pupil).where(Pupil.class_id == klass.id).order_by(Pupil.id)).first()
    row = data["pupils"][0]
    assert "file_handed" not in row
    assert len(row["hukou_place"]) <= get_spec("handover").field("pupils").column("hukou_place").max_length
    assert row["hukou_place"].startswith(data["township_name"]) and row["hukou_place"] in pupil.hukou_text
    assert school.name == data["from_school"]
