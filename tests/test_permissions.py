"""The access matrix, generated from the app's URL map (issue 10 item 8): every endpoint × every
method × {anonymous, one demo account per role, a user of a sibling county holding every role}.

A route added later is covered without touching this file: its path parameters are filled from the
records below by name (an unknown name gets an id that does not exist), and its declared action
decides what each account should get:

* anonymous: 401 under ``/api/``, a redirect to the login page elsewhere (public routes excepted);
* an account none of whose roles grants the action: 403;
* the sibling county's account (every role, so the route-level check always passes): 403 or 404 on
  every record of the demo county — document downloads, unmask, void, review decisions, job
  results (a batch's ZIP), users, tokens... — and its lists hold nothing of the demo county;
* a demo account that may perform the action: reads answer (not 401/403, no server error) when the
  record is within its reach by the policy, and 403/404 when it is not. Writes are sent only where
  they must be refused (so the matrix does not void documents or disable accounts on its way).

Runs on SQLite and (``-m db`` with ``DATABASE_URL``) on PostgreSQL.
"""

from __future__ import annotations

import io
import re
import uuid
import zipfile

import pytest
from sqlalchemy import select
from werkzeug.routing import AnyConverter, IntegerConverter

from cases.accounts import policy
from cases.accounts import service as accounts
from cases.accounts.demo import DEMO_ACCOUNTS, create_demo_accounts
from cases.accounts.models import ApiToken, User
from cases.accounts.scope import target_of
from cases.engine.models import Referral
from cases.store.models import Case, Document, Job, Org, Pupil, Upload, to_json
from tests.conftest import client_for
from tests.samples_data import sample_input

WRITE = {"POST", "PUT", "PATCH", "DELETE"}
MISSING_INT, MISSING_STR = 999999, "NOSUCHRECORD"
SIBLING = "sibling.all"


def _rules(app):
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if rule.endpoint == "static" or rule.rule.startswith("/static"):
            continue
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            yield rule, method


@pytest.fixture
def world(app, demo, app_session, client):
    """The demo county with its accounts, a document, an upload, a finished batch job; a sibling
    county with an account holding every role; bearer tokens for all."""
    s = app_session
    hasher = app.extensions["baoxue_hasher"]
    create_demo_accounts(s, hasher)
    s.commit()
    county = s.scalar(select(Org).where(Org.kind == "county", Org.name == "青禾县"))
    case = s.scalar(select(Case).where(Case.state == "JOINT").order_by(Case.id))  # referred to the police
    school = s.get(Org, case.org_id)
    # a document of that case, issued through the API (real rendering), and its return uploaded
    r = client.post("/api/v1/documents", json={"form": "dropout_report", "issuer_id": school.id, "format": "pdf",
                                                "data": to_json(sample_input("dropout_report"))})
    assert r.status_code == 201, r.get_json()
    doc_id = r.get_json()["id"]
    doc = s.get(Document, doc_id)
    doc.case_id = case.id
    pdf = client.get(f"/api/v1/documents/{doc_id}/pdf").data
    r = client.post("/api/v1/uploads", data={"org_id": str(school.id), "file": (io.BytesIO(pdf), "回收.pdf")},
                    content_type="multipart/form-data")
    assert r.status_code == 201, r.get_json()
    upload_id = r.get_json()["upload_id"]
    # a finished batch job of the demo township with its ZIP
    result = app.config["OUTPUT_DIR"] / "jobs" / "matrix.zip"
    result.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(result, "w") as z:
        z.writestr("责任书.pdf", pdf)
    job = Job(id=str(uuid.uuid4()), kind="batch_responsibility", org_id=case.township_org_id, status="done",
              done=1, total=1, result_path=str(result))
    s.add(job)
    # the sibling county (same prefecture) and its account holding every role
    sibling = Org(kind="county", name="白石县", parent_id=county.parent_id, code="419902", doc_prefix="白政")
    s.add(sibling)
    s.flush()
    s.add(Org(kind="township", name="白石镇", parent_id=sibling.id, doc_prefix="白石镇政"))
    s.commit()
    accounts.create_user(s, username=SIBLING, display_name="白石县 全角色", org_id=sibling.id,
                         roles=list(policy.ROLES), password="Sibling-passw0rd", hasher=hasher, by="test")
    s.commit()
    users = {u.username: u for u in s.scalars(select(User))}
    tokens = {name: accounts.create_token(s, users[name], name="matrix", expires_days=None, by="test").token
              for name in [d[0] for d in DEMO_ACCOUNTS] + [SIBLING]}
    # a second token of the teacher: the record of the token routes
    spare = accounts.create_token(s, users["demo.teacher"], name="spare", expires_days=None, by="test")
    referral = s.scalar(select(Referral).where(Referral.case_id == case.id))
    s.commit()
    records = {
        "case_id": case, "doc_id": doc, "upload_id": s.get(Upload, upload_id), "job_id": job,
        "pupil_id": s.get(Pupil, case.pupil_id), "org_id": school, "user_id": users["demo.teacher"],
        "token_id": s.get(ApiToken, spare.row.id), "referral_id": referral,
    }
    return {"records": records, "tokens": tokens, "users": users, "county": county, "sibling": sibling,
            "school": school}


def _value(name: str, converter, records) -> tuple[str, object | None]:
    """A path parameter's value and the record it names (None: a made-up id or a constant)."""
    if name == "kind" and isinstance(converter, AnyConverter):
        return "pdf", None
    if name == "kind":  # ledgers
        return "school", None
    if name == "code":
        return "dropout_report", None
    if name == "filename":
        return "x.css", None
    row = records.get(name)
    if row is None:
        return (str(MISSING_INT) if isinstance(converter, IntegerConverter) else MISSING_STR), None
    return str(row.id), row


def _url(rule, records) -> tuple[str, list]:
    url, named = rule.rule, []
    for name, converter in rule._converters.items():  # noqa: SLF001 - werkzeug has no public accessor
        value, row = _value(name, converter, records)
        url = re.sub(r"<(?:[^<>:]+(?:\([^)]*\))?:)?" + name + ">", value, url)
        if row is not None:
            named.append(row)
    return url, named


def _reaches(session, p: policy.Principal, action: str, row) -> bool:
    """Whether the policy lets ``p`` ``action`` the record ``row`` (what the route must enforce)."""
    if isinstance(row, User):
        return policy.can(p, action, policy.Target.org(session.get(Org, row.org_id).path if row.org_id else None))
    if isinstance(row, ApiToken):  # one's own token, or an administrator over its owner
        owner = session.get(User, row.user_id)
        return p.user_id == owner.id or policy.can(p, "user.manage", policy.Target.org(
            session.get(Org, owner.org_id).path if owner.org_id else None))
    return policy.can(p, action, target_of(session, row))


# Views that refuse for a reason of their own, not the access policy: the second factor is offered
# to county-level and administrator accounts only (issue 10 item 1).
def _view_refuses(endpoint: str, p: policy.Principal) -> bool:
    if endpoint == "auth.totp_enrol":
        return not any(policy.ROLES[r].totp_offered for r in p.roles)
    return False


def _send(c, method, url):
    headers = {"Accept": "application/json"} if url.startswith("/api/") else {}
    if method == "GET":
        return c.get(url, headers=headers)
    return c.open(url, method=method, json={}, headers=headers)


def test_every_route_refuses_anonymous_and_out_of_scope_requests(app, world, app_session):
    from web.auth.core import declared_action

    s = app_session
    records, tokens, users = world["records"], world["tokens"], world["users"]
    anon = app.test_client()
    clients = {name: client_for(app, tok) for name, tok in tokens.items()}
    principals = {name: accounts.principal_of(s, users[name]) for name in tokens}
    wrong: list[str] = []
    checked = 0
    for rule, method in _rules(app):
        action = declared_action(rule.endpoint, method, app)
        assert action is not None, f"{rule.rule} {method} declares no action"
        if action == policy.PUBLIC:
            continue
        url, named = _url(rule, records)
        # anonymous
        r = _send(anon, method, url)
        want = "401" if url.startswith("/api/") else "302 → /login"
        got = str(r.status_code) if r.status_code != 302 else f"302 → {r.headers['Location'].split('?')[0]}"
        if got != want:
            wrong.append(f"anonymous {method} {url}: {got}, want {want}")
        for name, p in principals.items():
            granted = policy.can(p, action)
            if name == SIBLING:
                refuse = bool(named)  # every named record is of the demo county
            elif not granted:
                refuse = True
            else:
                refuse = _view_refuses(rule.endpoint, p) or not all(_reaches(s, p, action, row) for row in named)
            if method in WRITE and not refuse and not (name == SIBLING and not named):
                continue  # allowed writes are not sent (see the module doc)
            if method in WRITE and name == SIBLING and not named:
                continue  # route-level allowed; bodies naming the demo county are checked below
            r = _send(clients[name], method, url)
            checked += 1
            code = r.status_code
            if not granted and name != SIBLING:
                ok = code == 403
            elif refuse:
                ok = code in (403, 404)
            else:
                ok = code not in (401, 403) and code < 500
            if not ok:
                body = (r.get_json(silent=True) or {}).get("message", "") if r.is_json else ""
                wrong.append(f"{name} {method} {url} ({action}): {code} {body}"
                             f" want {'403' if not granted else '403/404' if refuse else 'allowed'}")
    assert checked > 300
    assert wrong == [], "\n".join(wrong)


def test_sibling_county_sees_nothing_of_the_demo_county(app, world, app_session):
    c = client_for(app, world["tokens"][SIBLING])
    county, school = world["county"], world["school"]
    for path in ("/api/v1/cases", "/api/v1/pupils", "/api/v1/documents", "/api/v1/review", "/api/v1/overdue",
                 "/api/v1/users", "/api/v1/audit"):
        r = c.get(path)
        assert r.status_code == 200, (path, r.status_code)
        body = r.get_json()
        items = body.get("items", body) if isinstance(body, dict) else body
        texts = str(items)
        assert "青禾县" not in texts and "柳湾" not in texts and "demo." not in texts, (path, texts[:300])
    orgs = c.get("/api/v1/orgs").get_json()
    names = {o["name"] for o in (orgs.get("items", orgs) if isinstance(orgs, dict) else orgs)}
    assert names and "青禾县" not in names and "东河镇" not in names and "白石县" in names
    # writes naming a node of the demo county are refused, and nothing is written
    refused = [
        c.post("/api/v1/documents", json={"form": "dropout_report", "issuer_id": school.id,
                                          "data": to_json(sample_input("dropout_report"))}),
        c.post("/api/v1/uploads", data={"org_id": str(school.id), "file": (io.BytesIO(b"%PDF-1.4"), "x.pdf")},
               content_type="multipart/form-data"),
        c.post("/api/v1/orgs", json={"kind": "township", "name": "冒名镇", "parent_id": county.id}),
        c.post("/api/v1/batches/responsibility", json={"variant": "R-CT", "parent_org_id": county.id,
                                                       "issuer_id": county.id, "child_kind": "township",
                                                       "data": {}}),
        c.get("/api/v1/cases", headers={"X-Baoxue-Org": str(school.id)}),
    ]
    assert [r.status_code for r in refused] == [403] * len(refused), [
        (r.status_code, (r.get_json(silent=True) or {}).get("message")) for r in refused]
    r = c.post("/api/v1/users", json={"username": "intruder", "display_name": "x", "org_id": county.id,
                                      "roles": ["county_bureau"], "password": "Xk7-qwe-plm-993"})
    assert r.status_code == 403 and r.get_json()["message"] == \
        "不能授予“县教育局/控辍办”角色：只能为本单位及下级单位开设账号", r.get_json()
    assert app_session.scalar(select(User).where(User.username == "intruder")) is None
    assert app_session.scalar(select(Org).where(Org.name == "冒名镇")) is None
    # a filter naming the demo county's school finds nothing (lists are scoped before filtering)
    assert c.get(f"/api/v1/cases?org_id={school.id}").get_json()["total"] == 0


def test_a_job_zip_is_only_for_its_county(app, world):
    job = world["records"]["job_id"]
    own = client_for(app, world["tokens"]["demo.bureau"]).get(f"/api/v1/jobs/{job.id}/result")
    assert own.status_code == 200 and zipfile.ZipFile(io.BytesIO(own.data)).namelist() == ["责任书.pdf"]
    other = client_for(app, world["tokens"][SIBLING]).get(f"/api/v1/jobs/{job.id}/result")
    assert other.status_code in (403, 404) and other.get_json()["error"] in ("forbidden", "not_found")
    assert client_for(app, world["tokens"][SIBLING]).get(f"/api/v1/jobs/{job.id}").status_code in (403, 404)
    assert app.test_client().get(f"/api/v1/jobs/{job.id}/result").status_code == 401
