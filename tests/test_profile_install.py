"""Installed region profiles (issue 11, administration): an administrator installs a profile
through the API (the page: tests/test_web_admin_audit.py); it is checked key by key, stored,
audit-logged, scoped to the administrator's node, and then used by the profile loader instead of
the shipped file of the same name — by the engine's deadlines too."""

from __future__ import annotations

import copy
import datetime as dt
import json

import pytest
from sqlalchemy import select

from cases.engine import casework, installed, profiles
from cases.engine.models import InstalledProfile
from cases.store.models import AuditLog, Org, Pupil
from tests.conftest import client_for


@pytest.fixture(autouse=True)
def _forget_installed():
    """The installed profiles are held per process: leave none behind for the next test."""
    yield
    profiles.set_installed({})


def _shipped(name: str = "henan-weihui-2022") -> dict:
    return json.loads((profiles.PROFILE_DIR / f"{name}.json").read_text(encoding="utf-8"))


@pytest.fixture
def county(app, demo, app_session):
    return app_session.scalar(select(Org).where(Org.kind == "county", Org.name == "青禾县"))


@pytest.fixture
def sibling(app_session, county):
    other = Org(kind="county", name="白河县", parent_id=county.parent_id, code="419902")
    app_session.add(other)
    app_session.commit()
    return other


def test_root_replaces_a_shipped_profile_and_the_engine_uses_it(app, client, county, app_session):
    data = _shipped()
    assert profiles.load_profile("henan-weihui-2022").return_deadline.length == 5
    data["timers"]["return_deadline"]["length"] = 8
    data["title"] = "河南卫辉（2027年修订）"
    r = client.post("/api/v1/admin/profiles", json={"profile": data})
    assert r.status_code == 201, r.get_json()
    body = r.get_json()
    assert body == {"name": "henan-weihui-2022", "title": "河南卫辉（2027年修订）", "org_id": None,
                    "replaced": False, "sha256": installed.digest(data), "counties": []}
    assert profiles.load_profile("henan-weihui-2022").return_deadline.length == 8
    assert profiles.load_profile("henan-weihui-2022").title == "河南卫辉（2027年修订）"
    # the engine's deadline for a notice served today is counted with the installed length
    pupil = app_session.scalars(select(Pupil).where(Pupil.org_id.in_(
        select(Org.id).where(Org.path.startswith(county.path)))).order_by(Pupil.id)).first()
    case = casework.open_case(app_session, pupil, reason_code="R01", opened_on=dt.date(2026, 11, 2), actor="test")
    assert casework.case_profile(case).return_deadline.length == 8
    row = app_session.get(InstalledProfile, "henan-weihui-2022")
    assert row.org_id is None and row.sha256 == body["sha256"] and row.installed_by == "root"
    entry = app_session.scalars(select(AuditLog).where(AuditLog.action == "profile.install")).one()
    assert entry.target == "profile:henan-weihui-2022" and entry.after["sha256"] == body["sha256"]
    app_session.rollback()
    # a second install replaces it (same scope), and the loader follows
    data["timers"]["return_deadline"]["length"] = 6
    r = client.post("/api/v1/admin/profiles", json={"profile": data})
    assert r.status_code == 201 and r.get_json()["replaced"] is True
    assert profiles.load_profile("henan-weihui-2022").return_deadline.length == 6


def test_another_process_sees_the_install_at_its_next_request(app, client, county):
    data = _shipped()
    data["timers"]["return_deadline"]["length"] = 9
    assert client.post("/api/v1/admin/profiles", json={"profile": data}).status_code == 201
    profiles.set_installed({})  # what a process that has not yet heard of it holds
    assert profiles.load_profile("henan-weihui-2022").return_deadline.length == 5
    assert client.get("/api/v1/orgs").status_code == 200
    assert profiles.load_profile("henan-weihui-2022").return_deadline.length == 9


def test_a_bad_profile_names_the_key_and_installs_nothing(app, client, app_session):
    data = _shipped()
    data["timers"]["return_deadline"]["length"] = -2
    r = client.post("/api/v1/admin/profiles", json={"profile": data})
    assert r.status_code == 422
    body = r.get_json()
    assert "timers.return_deadline.length" in body["fields"] and "不能为负数" in body["message"]
    r = client.post("/api/v1/admin/profiles", json={"profile": "henan"})
    assert r.status_code == 422 and r.get_json()["fields"] == {"profile": "JSON 对象"}
    bad_name = _shipped()
    bad_name["name"] = "Qinghe County"
    r = client.post("/api/v1/admin/profiles", json={"profile": bad_name})
    assert r.status_code == 422 and "name" in r.get_json()["fields"]
    assert app_session.scalars(select(InstalledProfile)).all() == []
    assert profiles.installed_profiles() == {}


def test_county_admin_installs_for_its_county_only(app, make_user, county, sibling, app_session):
    _uid, token = make_user("qh.admin", ["admin"], org_id=county.id)
    _uid, other_token = make_user("bh.admin", ["admin"], org_id=sibling.id)
    mine, theirs = client_for(app, token), client_for(app, other_token)
    data = _shipped()
    # a shipped name would change every county using it: refused below the installation, naming the field
    r = mine.post("/api/v1/admin/profiles", json={"profile": data, "org_id": county.id})
    assert r.status_code == 422 and r.get_json()["fields"] == {"name": "与系统自带的地区配置同名"}
    # the whole installation is not its to change
    assert mine.post("/api/v1/admin/profiles", json={"profile": data}).status_code == 403
    local = copy.deepcopy(data)
    local["name"], local["title"] = "qinghe-2027", "青禾县（2027）"
    local["township"]["notice_variant"] = "quanfan"
    # another county is out of reach
    assert mine.post("/api/v1/admin/profiles", json={"profile": local, "org_id": sibling.id}).status_code == 403
    assert mine.post("/api/v1/admin/profiles", json={"profile": local, "org_id": county.id,
                                                     "counties": [sibling.id]}).status_code == 403
    r = mine.post("/api/v1/admin/profiles", json={"profile": local, "org_id": county.id, "counties": [county.id]})
    assert r.status_code == 201, r.get_json()
    app_session.expire_all()
    assert app_session.get(Org, county.id).region_profile == "qinghe-2027"
    assert app_session.get(Org, sibling.id).region_profile is None
    school = app_session.scalar(select(Org).where(Org.name == "东河镇柳湾小学"))
    assert casework.profile_name_for(app_session, school) == "qinghe-2027"
    assert profiles.load_profile("qinghe-2027").notice_variant == "quanfan"
    assert installed.usable_by(app_session, county) == ["guizhou-2019", "henan-weihui-2022", "qinghe-2027"]
    assert installed.usable_by(app_session, sibling) == ["guizhou-2019", "henan-weihui-2022"]
    # the other county's administrator can neither replace it nor claim the name
    r = theirs.post("/api/v1/admin/profiles", json={"profile": local, "org_id": sibling.id})
    assert r.status_code == 422 and r.get_json()["fields"] == {"org_id": "应为青禾县"}
    assert theirs.post("/api/v1/admin/profiles", json={"profile": local, "org_id": county.id}).status_code == 403
    assert app_session.get(InstalledProfile, "qinghe-2027").org_id == county.id
    # a unit that is not a county cannot be pointed at a profile
    township = app_session.scalar(select(Org).where(Org.name == "东河镇"))
    r = mine.post("/api/v1/admin/profiles", json={"profile": local, "org_id": county.id, "counties": [township.id]})
    assert r.status_code == 422 and r.get_json()["fields"] == {"counties": "只能选县"}


def test_roles_without_the_action_are_refused(app, make_user, county):
    _uid, token = make_user("qh.bureau", ["county_bureau"], org_id=county.id)
    r = client_for(app, token).post("/api/v1/admin/profiles", json={"profile": _shipped(), "org_id": county.id})
    assert r.status_code == 403
