"""Case store: organisation tree and scope, types on SQLite and PostgreSQL, constraints,
JSON snapshots, audit log, and the Alembic migration matching the models."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import func, inspect, select
from sqlalchemy.exc import IntegrityError

from cases.store import audit
from cases.store.db import make_engine, session_scope, upgrade_to_head
from cases.store.models import (
    Base,
    Case,
    Document,
    Org,
    Pupil,
    ancestors,
    descendants,
    from_json,
    in_scope,
    nearest,
    to_json,
)
from forms import validators
from forms.specs.dropout_report import SPEC as REPORT


def _tree(session):
    county = Org(kind="county", name="青禾县", code="419901", doc_prefix="青政")
    session.add(county)
    session.flush()
    east = Org(kind="township", name="东河镇", parent_id=county.id)
    west = Org(kind="township", name="西岭乡", parent_id=county.id)
    session.add_all([east, west])
    session.flush()
    village = Org(kind="village", name="柳湾村", parent_id=east.id)
    school_e = Org(kind="school", name="东河镇中心小学", parent_id=east.id, code="2141990001")
    school_w = Org(kind="school", name="西岭乡中心小学", parent_id=west.id)
    session.add_all([village, school_e, school_w])
    session.flush()
    return county, east, west, village, school_e, school_w


def _pupil(org, n, **kw):
    number = validators.synthetic_id_number("419901", dt.date(2014, 3, n), 11)
    return Pupil(org_id=org.id, name="王小明", sex="男", birth_date=dt.date(2014, 3, n), id_number=number, **kw)


def test_org_paths_descendants_ancestors(session):
    county, east, west, village, school_e, school_w = _tree(session)
    assert county.path == f"/{county.id}/"
    assert village.path == f"/{county.id}/{east.id}/{village.id}/"
    session.expire_all()  # the path was written by the insert hook, so it is in the database too
    assert session.get(Org, village.id).path == f"/{county.id}/{east.id}/{village.id}/"
    assert [o.name for o in descendants(session, east)] == ["柳湾村", "东河镇中心小学"]
    assert {o.name for o in descendants(session, county, kind="school")} == {"东河镇中心小学", "西岭乡中心小学"}
    assert [o.name for o in ancestors(session, village)] == ["青禾县", "东河镇"]
    assert [o.id for o in ancestors(session, village, include_self=True)] == [county.id, east.id, village.id]
    assert nearest(session, school_e, "township").id == east.id
    assert nearest(session, school_e, "province") is None


def test_in_scope_filters_by_jurisdiction(session):
    county, east, west, village, school_e, school_w = _tree(session)
    session.add_all([_pupil(school_e, 1), _pupil(school_e, 2), _pupil(school_w, 3)])
    session.flush()

    def names(org):
        return sorted(p.birth_date.day for p in session.scalars(select(Pupil).where(Pupil.in_scope(org))))

    assert names(county) == [1, 2, 3]
    assert names(east) == [1, 2]
    assert names(west) == [3]
    assert names(village) == []
    # The same condition through the module helper, on any org column.
    n = session.scalar(select(func.count()).select_from(Pupil).where(in_scope(Pupil.org_id, school_w)))
    assert n == 1
    # A sibling whose id shares a prefix must not leak into the scope ("/1/" vs "/10/").
    others = [Org(kind="village", name=f"村{i}", parent_id=county.id) for i in range(12)]
    session.add_all(others)
    session.flush()
    session.add(_pupil(others[-1], 4))
    session.flush()
    assert names(east) == [1, 2]


def test_datetimes_are_utc_aware_after_reload(session):
    county = Org(kind="county", name="青禾县")
    session.add(county)
    session.flush()
    local = dt.datetime(2026, 3, 2, 9, 30, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    county.created_at = local
    session.commit()
    session.expire_all()
    got = session.get(Org, county.id).created_at
    assert got.tzinfo is not None and got.utcoffset() == dt.timedelta(0)
    assert got == local and got.hour == 1
    with pytest.raises(Exception, match="naive datetime"):
        county.created_at = dt.datetime(2026, 3, 2, 9, 30)
        session.flush()


def test_case_state_check_constraint_and_unique_id_number(session):
    county, east, west, village, school_e, school_w = _tree(session)
    pupil = _pupil(school_e, 5)
    session.add(pupil)
    session.flush()
    session.add(Case(number="2026-419901-00001", pupil_id=pupil.id, org_id=school_e.id, state="SUSPECTED",
                     opened_on=dt.date(2026, 3, 2)))
    session.commit()
    assert session.scalar(select(Case.state)) == "SUSPECTED"
    session.add(Case(number="2026-419901-00002", pupil_id=pupil.id, org_id=school_e.id, state="LOST",
                     opened_on=dt.date(2026, 3, 2), episode=2))
    with pytest.raises(IntegrityError):
        session.commit()
    session.rollback()
    # Several pupils without an ID number are fine; the same number twice is not.
    session.add_all([Pupil(org_id=school_e.id, name="李四", sex="女"),
                     Pupil(org_id=school_e.id, name="李五", sex="女")])
    session.commit()
    session.add(_pupil(school_w, 5))
    with pytest.raises(IntegrityError):
        session.commit()


def _report_values() -> dict:
    return {
        "student_name": "王小明",
        "student_birth_date": dt.date(2012, 5, 4),
        "send_to": ["township", "education"],
        "absent_days": 7,
        "attempts": [{"date": dt.date(2026, 3, 3), "persons": "班主任张老师", "method": "visit",
                      "result": "refused"},
                     {"date": dt.date(2026, 3, 5), "persons": "村干部", "method": "phone", "result": "not_met"}],
        "report_date": dt.date(2026, 3, 9),
        "principal_signature": None,
    }


def test_document_snapshot_round_trips(session):
    county, *_ = _tree(session)
    values = _report_values()
    data = to_json(values)
    assert data["student_birth_date"] == "2012-05-04"
    assert data["attempts"][1]["date"] == "2026-03-05"
    json.dumps(data)  # plain JSON
    doc = Document(id="ABCDEFGH1234", org_id=county.id, form=REPORT.code, family=REPORT.code,
                   template_version=REPORT.version, year=2026, data=data)
    session.add(doc)
    session.commit()
    session.expire_all()
    back = session.get(Document, "ABCDEFGH1234").cleaned(REPORT)
    assert back == values
    assert from_json(REPORT, {"dropped_field": "x"}) == {"dropped_field": "x"}


def test_audit_log_is_append_only(session):
    county, *_ = _tree(session)
    entry = audit.record(session, who="clerk1", org=county, action="pupil.unmask", target="pupil:1",
                         before={"on": dt.date(2026, 1, 2)}, after={"id_number": "4199**********0011"})
    session.commit()
    assert entry.before == {"on": "2026-01-02"} and entry.at.tzinfo is not None
    entry.action = "changed"
    with pytest.raises(PermissionError, match="append-only"):
        session.flush()
    session.rollback()
    session.delete(entry)
    with pytest.raises(PermissionError):
        session.flush()


def test_session_scope_commits_and_rolls_back(session_factory):
    with session_scope(session_factory) as s:
        s.add(Org(kind="county", name="甲县"))
    with pytest.raises(IntegrityError), session_scope(session_factory) as s:
        s.add(Org(kind="county", name="乙县"))
        s.flush()
        s.add(Org(kind="", name="bad"))  # violates the kind check
    with session_scope(session_factory) as s:
        assert s.scalars(select(Org.name)).all() == ["甲县"]


def test_migration_creates_the_model_schema(db_url):
    """alembic upgrade head on an empty database gives exactly the tables of the models."""
    upgrade_to_head(db_url)
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            tables = set(inspect(conn).get_table_names())
            assert tables == set(Base.metadata.tables) | {"alembic_version"}
            for name, table in Base.metadata.tables.items():
                cols = {c["name"] for c in inspect(conn).get_columns(name)}
                assert cols == set(table.columns.keys()), name
            diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}),
                                    Base.metadata)
            assert diff == []
    finally:
        engine.dispose()
    upgrade_to_head(db_url)  # idempotent: already at head
