"""Logging in and out, sessions, CSRF, bearer tokens, throttling, the second factor, the operator
CLI and the demo accounts (web/auth, cases/accounts)."""

from __future__ import annotations

import re
import time

import pyotp
import pytest
from sqlalchemy import func, select

from cases.accounts import service as accounts
from cases.accounts.models import ApiToken, User
from cases.store.models import AuditLog, Org
from tests.conftest import client_for

PASSWORD = "Test-passw0rd"


@pytest.fixture
def county(app_session):
    org = Org(kind="county", name="青禾县", code="419901", doc_prefix="青政")
    app_session.add(org)
    app_session.commit()
    return org


def _csrf(client, path="/login") -> str:
    page = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def _login(client, username, password=PASSWORD, **extra):
    return client.post("/login", data={"username": username, "password": password,
                                       "csrf_token": _csrf(client), **extra})


def test_anonymous_requests_are_refused_except_public_routes(anon_client):
    r = anon_client.get("/api/v1/cases")
    assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Bearer")
    assert r.get_json() == {"error": "unauthorized", "message": "请先登录", "fields": {}}
    r = anon_client.get("/documents/ABC")
    assert r.status_code == 302 and r.headers["Location"] == "/login?next=/documents/ABC"
    assert anon_client.get("/").headers["Location"] == "/login?next=/"
    assert anon_client.get("/api/v1/health").get_json()["status"] == "ok"
    assert anon_client.get("/api/v1/openapi.json").get_json()["openapi"].startswith("3.")
    page = anon_client.get("/login")
    assert page.status_code == 200 and "用户名" in page.get_data(as_text=True)
    r = anon_client.get("/api/v1/cases", headers={"Authorization": "Bearer bx_not-a-real-token"})
    assert r.status_code == 401 and "令牌" in r.get_json()["message"]
    r = anon_client.get("/api/v1/cases", headers={"Authorization": "Basic dXNlcjpwdw=="})
    assert r.status_code == 401 and "Bearer" in r.get_json()["message"]


def test_an_endpoint_without_a_declared_action_is_refused(app, client):
    # A route registered after the fact, without @requires: the gate refuses it (fail closed).
    app.add_url_rule("/undeclared", "undeclared", lambda: "secret")
    r = client.get("/undeclared", headers={"Accept": "application/json"})
    assert r.status_code == 403 and "未声明" in r.get_json()["message"]


def test_login_session_csrf_and_logout(app, make_user, county):
    make_user("clerk", ["county_bureau"], county.id)
    c = app.test_client()
    r = _login(c, "clerk", "wrong-password1")
    assert r.status_code == 401 and "用户名或密码错误" in r.get_data(as_text=True)
    r = _login(c, "nobody", PASSWORD)
    assert r.status_code == 401 and "用户名或密码错误" in r.get_data(as_text=True)
    r = c.post("/login", data={"username": "clerk", "password": PASSWORD})  # no CSRF token
    assert r.status_code == 400
    r = _login(c, "clerk", next="/account")
    assert r.status_code == 302 and r.headers["Location"] == "/account"
    assert "baoxue_session" in r.headers["Set-Cookie"] and "HttpOnly" in r.headers["Set-Cookie"]
    me = c.get("/api/v1/me").get_json()
    assert me["username"] == "clerk" and me["work_org"]["id"] == county.id and "case.read" in me["actions"]
    # a state-changing request from the browser session needs the CSRF token...
    r = c.post("/api/v1/tokens", json={"name": "脚本"})
    assert r.status_code == 400 and r.get_json()["error"] == "csrf_failed"
    # ... sent as a header by scripts in the page
    r = c.post("/api/v1/tokens", json={"name": "脚本"}, headers={"X-CSRFToken": _csrf(c, "/account")})
    assert r.status_code == 201 and r.get_json()["token"].startswith("bx_")
    r = c.post("/logout", data={"csrf_token": _csrf(c, "/account")})
    assert r.status_code == 302
    assert c.get("/api/v1/me").status_code == 401


def test_login_redirect_stays_on_this_site(app, make_user, county):
    make_user("clerk", ["county_bureau"], county.id)
    for evil in ("https://evil.example/", "//evil.example/x", "javascript:alert(1)"):
        r = _login(app.test_client(), "clerk", next=evil)
        assert r.status_code == 302 and r.headers["Location"] == "/", evil


def test_login_is_throttled_per_username(app, make_user, county):
    make_user("clerk", ["county_bureau"], county.id)
    c = app.test_client()
    codes = [_login(c, "clerk", "wrong-password1").status_code for _ in range(6)]
    assert codes == [401] * 5 + [429]
    r = _login(c, "clerk")  # even the right password waits now
    assert r.status_code == 429 and "频繁" in r.get_data(as_text=True)


def test_disabled_user_and_revoked_token_are_refused_at_once(app, make_user, county, app_session):
    uid, token = make_user("clerk", ["county_bureau"], county.id)
    c = client_for(app, token)
    assert c.get("/api/v1/cases").status_code == 200
    s = app.extensions["baoxue"].session_factory()
    accounts.set_disabled(s, s.get(User, uid), True, by="admin")
    s.commit()
    r = c.get("/api/v1/cases")
    assert r.status_code == 401 and "停用" in r.get_json()["message"]
    accounts.set_disabled(s, s.get(User, uid), False, by="admin")
    s.commit()
    assert c.get("/api/v1/cases").status_code == 401  # disabling revoked the token for good
    new = accounts.create_token(s, s.get(User, uid), name="二号", expires_days=30, by="admin")
    s.commit()
    c2 = client_for(app, new.token)
    assert c2.get("/api/v1/cases").status_code == 200
    row = s.get(ApiToken, new.row.id)
    s.refresh(row)
    assert row.last_used_at is not None and row.token_hash != new.token and len(row.token_hash) == 64
    accounts.revoke_token(s, new.row.id, by="clerk")
    s.commit()
    assert c2.get("/api/v1/cases").status_code == 401
    s.close()


def test_password_change_ends_other_sessions(app, make_user, county):
    make_user("clerk", ["county_bureau"], county.id)
    a, b = app.test_client(), app.test_client()
    assert _login(a, "clerk").status_code == 302 and _login(b, "clerk").status_code == 302
    r = a.post("/account/password", data={"old_password": PASSWORD, "new_password": "short",
                                          "new_password2": "short", "csrf_token": _csrf(a, "/account")})
    assert r.status_code == 422 and "至少10位" in r.get_data(as_text=True)
    r = a.post("/account/password", data={"old_password": PASSWORD, "new_password": "Another-passw0rd",
                                          "new_password2": "Another-passw0rd", "csrf_token": _csrf(a, "/account")})
    assert r.status_code == 200 and "密码已修改" in r.get_data(as_text=True)
    assert a.get("/api/v1/me").status_code == 200  # this session goes on
    assert b.get("/api/v1/me").status_code == 401  # the other one ended
    assert _login(b, "clerk").status_code == 401
    assert _login(b, "clerk", "Another-passw0rd").status_code == 302


def test_totp_enrol_and_login_with_code(app, make_user, county):
    make_user("director", ["county_bureau"], county.id)
    c = app.test_client()
    _login(c, "director")
    page = c.get("/account/totp").get_data(as_text=True)
    assert "<svg" in page
    secret = re.search(r'<code class="secret"[^>]*>([A-Z2-7]+)</code>', page).group(1)
    r = c.post("/account/totp", data={"code": "000000", "csrf_token": _csrf(c, "/account")})
    assert r.status_code == 422 and "动态码错误" in r.get_data(as_text=True)
    code = pyotp.TOTP(secret).now()
    r = c.post("/account/totp", data={"code": code, "csrf_token": _csrf(c, "/account")})
    assert "两步验证已开启" in r.get_data(as_text=True)
    c.post("/logout", data={"csrf_token": _csrf(c, "/account")})
    r = _login(c, "director")
    assert r.status_code == 401 and 'name="totp"' in r.get_data(as_text=True)
    r = _login(c, "director", totp=code)  # the same code twice: refused
    assert r.status_code == 401 and "已用过" in r.get_data(as_text=True)
    next_code = pyotp.TOTP(secret).at(time.time() + 30)  # the next step (one step of drift is allowed)
    assert _login(c, "director", totp=next_code).status_code == 302
    # a teacher is not offered the second factor
    make_user("teacher", ["teacher"], county.id)
    t = app.test_client()
    _login(t, "teacher")
    assert t.get("/account/totp").status_code == 403


def test_work_org_header_only_narrows(app, make_user, client, county, app_session):
    east = Org(kind="township", name="东河镇", parent_id=county.id)
    other = Org(kind="county", name="别县")
    app_session.add_all([east, other])
    app_session.commit()
    _uid, token = make_user("clerk", ["county_bureau"], county.id)
    c = client_for(app, token)
    assert c.get("/api/v1/me", headers={"X-Baoxue-Org": str(east.id)}).get_json()["work_org"]["id"] == east.id
    r = c.get("/api/v1/orgs", headers={"X-Baoxue-Org": str(other.id)})
    assert r.status_code == 403 and "不在您的管辖范围内" in r.get_json()["message"]
    assert c.get("/api/v1/orgs", headers={"X-Baoxue-Org": "999999"}).status_code == 403
    assert [o["name"] for o in c.get("/api/v1/orgs").get_json()["items"]] == ["青禾县", "东河镇"]
    narrowed = c.get("/api/v1/orgs", headers={"X-Baoxue-Org": str(east.id)}).get_json()["items"]
    assert [o["name"] for o in narrowed] == ["东河镇"]


def test_audit_log_records_the_authenticated_user(app, make_user, county, app_session):
    uid, token = make_user("clerk", ["admin"], county.id)
    r = client_for(app, token).post("/api/v1/orgs", json={"kind": "township", "name": "南坪镇",
                                                          "parent_id": county.id},
                                    headers={"X-Baoxue-User": "director.zhang"})  # no longer believed
    assert r.status_code == 201
    app_session.expire_all()
    entry = app_session.scalars(select(AuditLog).where(AuditLog.action == "org.create")).one()
    assert (entry.user_id, entry.who) == (uid, "clerk")


def test_an_organisation_is_placed_only_where_its_level_allows(app, make_user, county, app_session):
    """A node stands no higher than its parent, nothing is placed under a school, only a province,
    prefecture or county stands at the top, and an unknown kind is refused by name; nothing is
    written for a refused request."""
    school = Org(kind="school", name="城关一小", parent_id=county.id)
    app_session.add(school)
    app_session.commit()
    _uid, token = make_user("county.admin2", ["admin"], county.id)
    c = client_for(app, token)
    before = app_session.scalar(select(func.count()).select_from(Org))
    refused = {
        "county under county's school": ({"kind": "township", "name": "甲镇", "parent_id": school.id},
                                         "学校之下不能再设机构"),
        "prefecture under county": ({"kind": "prefecture", "name": "乙州", "parent_id": county.id},
                                    "市（州）（市（州）级）不能设在县（市、区）之下"),
        "unknown kind": ({"kind": "banana", "name": "丙", "parent_id": county.id}, "机构类型“banana”不存在"),
    }
    for what, (body, why) in refused.items():
        r = c.post("/api/v1/orgs", json=body)
        assert r.status_code == 422, (what, r.get_json())
        assert why in r.get_json()["message"] and r.get_json()["fields"]["kind"] == r.get_json()["message"], what
    app_session.expire_all()
    assert app_session.scalar(select(func.count()).select_from(Org)) == before
    for body in ({"kind": "education_bureau", "name": "青禾县教育局", "parent_id": county.id},
                 {"kind": "township", "name": "丁镇", "parent_id": county.id}):
        r = c.post("/api/v1/orgs", json=body)
        assert r.status_code == 201 and r.get_json()["kind"] == body["kind"], r.get_json()
    town = r.get_json()["id"]
    r = c.post("/api/v1/orgs", json={"kind": "central_school", "name": "丁镇中心校", "parent_id": town})
    assert r.status_code == 201
    from cases.accounts.policy import may_place

    assert may_place("school", None) == "school须有上级机构（只有省、市（州）、县可作为最高一级）"
    assert may_place("county", None) is None and may_place("village_group", "village") is None


def test_admin_creates_users_below_its_node_only(app, make_user, county, app_session):
    east = Org(kind="township", name="东河镇", parent_id=county.id)
    other = Org(kind="county", name="别县")
    app_session.add_all([east, other])
    app_session.commit()
    _uid, token = make_user("county.admin", ["admin"], county.id)
    c = client_for(app, token)
    body = {"username": "east.clerk", "display_name": "东河镇 张三", "org_id": east.id, "roles": ["township"],
            "password": "Good-passw0rd"}
    r = c.post("/api/v1/users", json=body)
    assert r.status_code == 201 and r.get_json()["org_name"] == "东河镇"
    assert c.post("/api/v1/users", json={**body, "username": "x1", "org_id": other.id}).status_code == 403
    r = c.post("/api/v1/users", json={**body, "username": "x2", "org_id": county.id, "roles": ["admin"]})
    assert r.status_code == 403 and "全系统的管理员" in r.get_json()["message"]  # no peer administrators
    r = c.post("/api/v1/users", json={**body, "username": "x3", "org_id": None})
    assert r.status_code == 403  # nor accounts of the whole installation
    r = c.post("/api/v1/users", json={**body, "username": "east.clerk", "password": "short"})
    assert r.status_code == 422 and set(r.get_json()["fields"]) == {"username", "password"}
    users = c.get("/api/v1/users").get_json()["items"]
    assert {u["username"] for u in users} == {"county.admin", "east.clerk"}
    target = next(u for u in users if u["username"] == "east.clerk")
    r = c.post(f"/api/v1/users/{target['id']}/disable")
    assert r.status_code == 200 and r.get_json()["disabled"] is True
    # the admin reads no pupil or case records
    assert c.get("/api/v1/cases").status_code == 403


@pytest.fixture
def region(app_session):
    """演示省 > 演示市 > 青禾县 > 东河镇 > 柳湾小学, and a sibling county 别县 of the same 市."""
    s = app_session
    made: dict[str, Org] = {}
    for key, kind, name, parent in (("province", "province", "演示省", None),
                                    ("prefecture", "prefecture", "演示市", "province"),
                                    ("county", "county", "青禾县", "prefecture"),
                                    ("other", "county", "别县", "prefecture"),
                                    ("east", "township", "东河镇", "county"),
                                    ("school", "school", "柳湾小学", "east")):
        made[key] = Org(kind=kind, name=name, parent_id=made[parent].id if parent else None)
        s.add(made[key])
        s.flush()
    s.commit()
    return made


def _created(app_session, username: str) -> bool:
    app_session.expire_all()
    return app_session.scalar(select(User.id).where(User.username == username)) is not None


def test_county_admin_grants_only_roles_of_its_level_and_below(app, make_user, region, app_session):
    _uid, token = make_user("county.admin", ["admin"], region["county"].id)
    c = client_for(app, token)
    body = {"display_name": "某人", "password": "Good-passw0rd"}
    before = app_session.scalar(select(func.count(AuditLog.seq)))
    # above the county: the 市（州） role and the administrator role, on a node of its own county too
    for n, (role, org, why) in enumerate((
            ("prefecture", region["county"], "“市（州）/省”角色：该角色属于市（州）级，高于您的管理范围（县级）"),
            ("prefecture", region["school"], "高于您的管理范围（县级）"),
            ("admin", region["east"], "“系统管理员”角色：管理员账号只能由全系统的管理员开设"),
            ("admin", region["county"], "管理员账号只能由全系统的管理员开设"))):
        r = c.post("/api/v1/users", json={**body, "username": f"up{n}", "org_id": org.id,
                                          "roles": ["township", role]})
        assert r.status_code == 403, (role, r.get_json())
        assert why in r.get_json()["message"] and why in r.get_json()["fields"]["roles"]
        assert not _created(app_session, f"up{n}")
    # a role it may give, but on a node outside its county (the sibling county, the prefecture)
    for n, org in enumerate((region["other"], region["prefecture"])):
        r = c.post("/api/v1/users", json={**body, "username": f"out{n}", "org_id": org.id, "roles": ["township"]})
        assert r.status_code == 403 and not _created(app_session, f"out{n}")
    assert app_session.scalar(select(func.count(AuditLog.seq))) == before  # nothing written
    # inside its county, at its level and below: 乡镇 and 学校 roles, county roles at the county
    for username, role, org in (("east.gov", "township", "east"), ("east.central", "central_school", "east"),
                                ("liuwan.clerk", "school_clerk", "school"), ("liuwan.teacher", "teacher", "school"),
                                ("qh.bureau", "county_bureau", "county"), ("qh.audit", "auditor", "county")):
        r = c.post("/api/v1/users", json={**body, "username": username, "org_id": region[org].id, "roles": [role]})
        assert r.status_code == 201 and r.get_json()["roles"] == [role], (username, r.get_json())
    # changing roles: no raising an account above the county, no taking a role it could not give
    uid = next(u["id"] for u in c.get("/api/v1/users").get_json()["items"] if u["username"] == "east.gov")
    r = c.post(f"/api/v1/users/{uid}/roles", json={"roles": ["township", "prefecture"]})
    assert r.status_code == 403 and "市（州）/省" in r.get_json()["message"]
    assert c.get(f"/api/v1/users/{uid}").get_json()["roles"] == ["township"]
    r = c.post(f"/api/v1/users/{uid}/roles", json={"roles": ["admin"]})
    assert r.status_code == 403 and c.get(f"/api/v1/users/{uid}").get_json()["roles"] == ["township"]
    r = c.post(f"/api/v1/users/{uid}/roles", json={"roles": ["township", "village"]})
    assert r.status_code == 200 and r.get_json()["roles"] == ["township", "village"]


def test_installation_admin_grants_every_role(app, make_user, region, app_session):
    from cases.accounts.policy import ROLES

    _uid, token = make_user("root.admin", ["admin"], None)
    c = client_for(app, token)
    for role in ROLES:
        r = c.post("/api/v1/users", json={"username": f"r.{role}", "org_id": region["county"].id, "roles": [role],
                                          "password": "Good-passw0rd"})
        assert r.status_code == 201 and r.get_json()["roles"] == [role], (role, r.get_json())
    r = c.post("/api/v1/users", json={"username": "pref.user", "org_id": region["prefecture"].id,
                                      "roles": ["prefecture"], "password": "Good-passw0rd"})
    assert r.status_code == 201
    # the county administrator it made can still not give what is above its county
    county_admin = client_for(app, make_user("made.admin", ["admin"], region["county"].id)[1])
    r = county_admin.post("/api/v1/users", json={"username": "made.pref", "org_id": region["county"].id,
                                                 "roles": ["prefecture"], "password": "Good-passw0rd"})
    assert r.status_code == 403 and "高于您的管理范围（县级）" in r.get_json()["message"]
    assert not _created(app_session, "made.pref")


def test_prefecture_admin_grants_the_prefecture_role_in_its_area_only(app, make_user, region, app_session):
    c = client_for(app, make_user("pref.admin", ["admin"], region["prefecture"].id)[1])
    body = {"password": "Good-passw0rd", "roles": ["prefecture"]}
    r = c.post("/api/v1/users", json={**body, "username": "p1", "org_id": region["prefecture"].id})
    assert r.status_code == 201 and r.get_json()["roles"] == ["prefecture"]
    r = c.post("/api/v1/users", json={**body, "username": "p2", "org_id": region["province"].id})
    assert r.status_code == 403 and not _created(app_session, "p2")
    r = c.post("/api/v1/users", json={**body, "username": "p3", "org_id": region["county"].id, "roles": ["admin"]})
    assert r.status_code == 403 and not _created(app_session, "p3")


def _role_choices(html: str) -> list[str]:
    form = html[html.index('id="user-form"'):]
    return re.findall(r'name="roles" value="([a-z_]+)"', form[:form.index("</form>")])


def test_admin_page_offers_and_accepts_only_grantable_roles(app, make_user, region, app_session):
    from cases.accounts.policy import ROLES

    make_user("county.admin", ["admin"], region["county"].id)
    c = app.test_client()
    assert _login(c, "county.admin").status_code == 302
    page = c.get("/admin").get_data(as_text=True)
    assert _role_choices(page) == ["teacher", "school_clerk", "central_school", "village", "township",
                                   "county_bureau", "county_gov", "department", "auditor"]
    orgs = re.findall(r'<option value="(\d+)"', page[page.index('id="org_id"'):page.index("</select>",
                                                                                          page.index('id="org_id"'))])
    assert sorted(map(int, orgs)) == sorted(region[k].id for k in ("county", "east", "school"))
    # a hand-made form with the 市（州） role: refused on the page, the role and the reason named, nothing made
    form = {"username": "sneaky", "display_name": "某人", "org_id": str(region["east"].id),
            "roles": ["township", "prefecture"], "password": "Good-passw0rd", "csrf_token": _csrf(c, "/admin")}
    r = c.post("/admin/users", data=form)
    html = r.get_data(as_text=True)
    assert r.status_code == 403
    assert "不能授予“市（州）/省”角色：该角色属于市（州）级，高于您的管理范围（县级）" in html
    assert 'id="roles-error"' in html and 'value="sneaky"' in html
    assert not _created(app_session, "sneaky")
    r = c.post("/admin/users", data={**form, "roles": ["admin"], "csrf_token": _csrf(c, "/admin")})
    assert r.status_code == 403 and "“系统管理员”角色：管理员账号只能由全系统的管理员开设" in r.get_data(as_text=True)
    assert not _created(app_session, "sneaky")
    r = c.post("/admin/users", data={**form, "org_id": str(region["other"].id), "roles": ["township"],
                                     "csrf_token": _csrf(c, "/admin")})
    assert r.status_code == 403 and not _created(app_session, "sneaky")
    r = c.post("/admin/users", data={**form, "roles": ["township"], "csrf_token": _csrf(c, "/admin")})
    assert r.status_code == 302 and _created(app_session, "sneaky")
    # the installation's administrator is offered every role
    make_user("root.admin", ["admin"], None)
    root = app.test_client()
    assert _login(root, "root.admin").status_code == 302
    assert _role_choices(root.get("/admin").get_data(as_text=True)) == list(ROLES)


def test_county_admin_cannot_disable_a_peer_administrator(app, make_user, region, app_session):
    peer_id, peer_token = make_user("peer.admin", ["admin"], region["county"].id)
    pref_id, _ = make_user("pref.viewer", ["prefecture"], region["county"].id)  # made by the operator CLI
    _uid, token = make_user("county.admin", ["admin"], region["county"].id)
    c = client_for(app, token)
    for uid, name in ((peer_id, "peer.admin"), (pref_id, "pref.viewer")):
        r = c.post(f"/api/v1/users/{uid}/disable")
        why = r.get_json()["message"]
        assert r.status_code == 403 and why.startswith(f"不能管理账号 {name}：不能授予"), why
    token_id = client_for(app, peer_token).get("/api/v1/tokens").get_json()["items"][0]["id"]
    assert c.post(f"/api/v1/tokens/{token_id}/revoke").status_code == 403
    app_session.expire_all()
    assert not app_session.get(User, peer_id).disabled and not app_session.get(User, pref_id).disabled
    assert app_session.get(ApiToken, token_id).revoked_at is None
    # the page offers no 停用 for them, and refuses the hand-made request
    page = app.test_client()
    assert _login(page, "county.admin").status_code == 302
    html = page.get("/admin").get_data(as_text=True)
    assert 'id="toggle-peer.admin"' not in html and 'id="toggle-pref.viewer"' not in html
    assert html.count("上级管理员管理") == 2
    r = page.post(f"/admin/users/{peer_id}/disable", data={"csrf_token": _csrf(page, "/admin")})
    assert r.status_code == 403
    app_session.expire_all()
    assert not app_session.get(User, peer_id).disabled
    # the installation's administrator may
    root = client_for(app, make_user("root.admin", ["admin"], None)[1])
    assert root.post(f"/api/v1/users/{peer_id}/disable").get_json()["disabled"] is True


def test_every_org_kind_has_a_level():
    from cases.accounts.policy import KIND_LEVELS, ROLES, Level
    from cases.store.models import ORG_KINDS

    assert set(KIND_LEVELS) == set(ORG_KINDS)
    assert ROLES["admin"].level == Level.INSTALLATION and ROLES["prefecture"].level == Level.PREFECTURE
    assert {r.level for r in ROLES.values() if r.code not in ("admin", "prefecture")} <= {
        Level.COUNTY, Level.TOWNSHIP, Level.GRASSROOTS}


def test_cli_user_token_and_audit_commands(app, county):
    runner = app.test_cli_runner()
    r = runner.invoke(args=["user", "create", "first.admin", "--role", "admin", "--password-stdin"],
                      input="Strong-passw0rd\n")
    assert r.exit_code == 0, r.output
    assert "全系统" in r.output
    r = runner.invoke(args=["user", "create", "clerk", "--org", str(county.id), "--role", "county_bureau",
                            "--password-stdin"], input="weak\n")
    assert r.exit_code != 0 and "密码至少10位" in r.output
    r = runner.invoke(args=["user", "create", "clerk", "--org", str(county.id), "--role", "county_bureau",
                            "--display-name", "县控辍办", "--password-stdin"], input="Strong-passw0rd\n")
    assert r.exit_code == 0, r.output
    r = runner.invoke(args=["token", "create", "clerk", "--expires", "7"])
    assert r.exit_code == 0, r.output
    token = r.stdout.strip().splitlines()[-1]
    c = client_for(app, token)
    assert c.get("/api/v1/me").get_json()["username"] == "clerk"
    r = runner.invoke(args=["user", "disable", "clerk"])
    assert r.exit_code == 0 and "停用" in r.output
    assert c.get("/api/v1/me").status_code == 401
    r = runner.invoke(args=["user", "list"])
    assert "first.admin" in r.output and "停用" in r.output
    r = runner.invoke(args=["audit", "verify"])
    assert r.exit_code == 0 and "审计日志完好" in r.output, r.output


def test_demo_accounts_one_per_role(app, demo, app_session):
    from cases.accounts.demo import DEMO_ACCOUNTS, DEMO_PASSWORD, create_demo_accounts
    from cases.accounts.policy import ROLES

    made = create_demo_accounts(app_session, accounts.cheap_hasher())
    app_session.commit()
    assert {role for _u, _d, role, _o in DEMO_ACCOUNTS} == set(ROLES)
    assert len(made) == len(DEMO_ACCOUNTS)
    assert create_demo_accounts(app_session, accounts.cheap_hasher()) == []  # idempotent
    c = app.test_client()
    assert _login(c, "demo.police", DEMO_PASSWORD).status_code == 302
    cases = c.get("/api/v1/cases").get_json()
    assert cases["total"] == 1 and cases["items"][0]["state"] == "JOINT"  # only the case referred to it
    with pytest.raises(RuntimeError, match="production"):
        create_demo_accounts(app_session, accounts.cheap_hasher(), production=True)
