"""API ergonomics for integrators: Chinese unescaped in JSON, one list shape (total, limit, offset,
next, items) on every list endpoint, pupils with grade and class names, each form field's limits,
and the review queue paged and filtered by upload, document, case, kind and reason."""

from __future__ import annotations

import io

import pytest
from sqlalchemy import select

from cases.store.models import Org, Pupil, SchoolClass
from tests.conftest_scans import SAMPLES
from tests.test_scans_api import _post


def _walk(client, url: str) -> list[dict]:
    """Every item of a list endpoint, by following ``next``."""
    out, pages = [], 0
    while url:
        body = client.get(url).get_json()
        assert set(body) >= {"total", "limit", "offset", "next", "items"}, body
        out += body["items"]
        url, pages = body["next"], pages + 1
        assert pages < 100
    return out


def test_json_answers_carry_chinese_unescaped(client, demo):
    r = client.get("/api/v1/orgs?kind=county")
    assert "青禾县".encode() in r.data and b"\\u" not in r.data
    assert r.mimetype == "application/json"
    err = client.get("/api/v1/cases/999999")
    assert err.status_code == 404 and "不存在".encode() in err.data and b"\\u" not in err.data


def test_lists_share_one_paged_shape_and_next_walks_them_all(client, demo, app_session):
    n_orgs = len(app_session.scalars(select(Org)).all())
    first = client.get("/api/v1/orgs?limit=3").get_json()
    assert (first["total"], first["limit"], first["offset"], len(first["items"])) == (n_orgs, 3, 0, 3)
    assert first["next"] == "/api/v1/orgs?limit=3&offset=3"
    names = [o["name"] for o in _walk(client, "/api/v1/orgs?limit=3")]
    assert len(names) == n_orgs == len(set(names))
    # Filters stay in the next link; the last page has none.
    schools = client.get("/api/v1/orgs?kind=school&limit=1").get_json()
    assert schools["next"] == "/api/v1/orgs?kind=school&limit=1&offset=1"
    last = client.get(f"/api/v1/orgs?kind=school&limit=1&offset={schools['total'] - 1}").get_json()
    assert last["next"] is None and len(last["items"]) == 1
    n_pupils = len(app_session.scalars(select(Pupil)).all())
    pupils = _walk(client, "/api/v1/pupils?limit=7")
    assert [p["id"] for p in pupils] == sorted(p.id for p in app_session.scalars(select(Pupil)))
    assert len(pupils) == n_pupils
    for url in ("/api/v1/cases", "/api/v1/documents", "/api/v1/review", "/api/v1/scans/unidentified",
                "/api/v1/users", "/api/v1/tokens", "/api/v1/audit", f"/api/v1/overdue?org_id={demo.county_id}",
                f"/api/v1/problems?org_id={demo.county_id}"):
        body = client.get(url).get_json()
        assert {"total", "limit", "offset", "next", "items"} <= set(body), url
        assert body["limit"] == 50 and body["offset"] == 0 and body["total"] >= len(body["items"]), url
    assert client.get("/api/v1/cases").get_json()["total"] == demo.cases


@pytest.mark.parametrize("query,field", [("limit=abc", "limit"), ("offset=-x", "offset"),
                                         ("org_id=99999999999999999999999", "org_id"),
                                         ("class_id=abc", "class_id")])
def test_bad_paging_or_id_parameters_are_a_422_naming_them(client, demo, query, field):
    r = client.get(f"/api/v1/pupils?{query}")
    assert r.status_code == 422, r.get_json()
    assert field in r.get_json()["fields"]


def test_limits_are_clamped_not_refused(client, demo):
    body = client.get("/api/v1/pupils?limit=100000&offset=-5").get_json()
    assert (body["limit"], body["offset"]) == (500, 0)
    assert client.get("/api/v1/pupils?limit=0").get_json()["limit"] == 1


def test_pupils_listed_with_school_grade_and_class_names(client, demo, app_session):
    k = app_session.scalars(select(SchoolClass).order_by(SchoolClass.id)).first()
    school = app_session.get(Org, k.org_id)
    body = client.get(f"/api/v1/pupils?class_id={k.id}").get_json()
    assert body["total"] >= 1
    for p in body["items"]:
        assert (p["class_id"], p["class_name"], p["grade"], p["school_name"]) == (k.id, k.name, k.grade,
                                                                                school.name)
        assert p["grade_name"] == "一二三四五六七八九"[k.grade - 1] + "年级"
    by_grade = client.get(f"/api/v1/pupils?grade={k.grade}&limit=500").get_json()["items"]
    assert by_grade and {p["grade"] for p in by_grade} == {k.grade}


def test_form_detail_gives_each_fields_max_length_and_format(client):
    form = client.get("/api/v1/forms/dropout_report").get_json()
    fields = {f["name"]: f for f in form["fields"]}
    assert fields["student_id_number"]["format"].startswith("18位")
    typed = [f for f in form["fields"] if f["kind"] == "text" and f["filled"] == "input"]
    assert typed and all(isinstance(f.get("max_length"), int) for f in typed), \
        [f["name"] for f in typed if "max_length" not in f]


def test_review_queue_paged_and_filtered(client, notice, app_session):
    r1 = _post(client, notice["org_id"], (SAMPLES / "receipt_direct_flatbed200.jpg").read_bytes(), "a.jpg")
    r2 = _post(client, notice["org_id"], (SAMPLES / "receipt_direct_flatbed200.jpg").read_bytes(), "b.jpg")
    up1, up2 = r1.get_json()["upload_id"], r2.get_json()["upload_id"]
    every = _walk(client, "/api/v1/review?limit=2")
    assert len(every) == client.get("/api/v1/review").get_json()["total"] >= 4
    assert {i["upload_id"] for i in every} == {up1, up2}
    # an upload is found by the documents returned in it, also when it names none of its own (a stack
    # of several documents: its row holds no document_id)
    from cases.store.models import Upload

    app_session.get(Upload, up1).document_id = None
    app_session.commit()
    for key in (f"case_id={notice['case_id']}", f"document_id={notice['doc_id']}"):
        assert [u["id"] for u in client.get(f"/api/v1/uploads?{key}").get_json()["items"]] == [up2, up1], key
    one = client.get(f"/api/v1/review?upload_id={up1}").get_json()
    assert one["total"] == len([i for i in every if i["upload_id"] == up1]) and \
        {i["upload_id"] for i in one["items"]} == {up1}
    by_doc = client.get(f"/api/v1/review?document_id={notice['doc_id']}").get_json()
    assert by_doc["total"] == len(every)
    assert client.get("/api/v1/review?document_id=NOSUCHDOC").get_json()["total"] == 0
    by_case = client.get(f"/api/v1/review?case_id={notice['case_id']}").get_json()
    assert by_case["total"] == len(every)
    confirm = client.get("/api/v1/review?kind=confirm").get_json()
    assert confirm["total"] == len([i for i in every if i["kind"] == "confirm"]) > 0
    assert {i["kind"] for i in confirm["items"]} == {"confirm"}
    reason = every[0]["reason"][:4]
    by_reason = client.get("/api/v1/review", query_string={"reason": reason}).get_json()
    assert by_reason["total"] == len([i for i in every if reason in (i["reason"] or "")]) > 0
    combined = client.get(f"/api/v1/review?upload_id={up2}&kind=confirm").get_json()
    assert {(i["upload_id"], i["kind"]) for i in combined["items"]} == {(up2, "confirm")}
    bad = client.get("/api/v1/review?kind=nonsense")
    assert bad.status_code == 422 and "kind" in bad.get_json()["fields"]
    assert client.get("/api/v1/review?status=whatever").status_code == 422
    # Decided items leave the default (open) list and show under their status.
    client.post(f"/api/v1/review/{every[0]['id']}", json={"action": "reject"})
    assert client.get("/api/v1/review").get_json()["total"] == len(every) - 1
    rejected = client.get("/api/v1/review?status=rejected").get_json()["items"]
    assert [i["id"] for i in rejected] == [every[0]["id"]]


# ---- the lists that only had POST: uploads, inspector samples, handover plans ----------------------

def _sibling_client(app, app_session):
    """A client of an account holding every role in another county (白石县, beside the demo one)."""
    from cases.accounts import policy
    from cases.accounts import service as accounts
    from tests.conftest import client_for

    s = app_session
    county = s.scalar(select(Org).where(Org.kind == "county", Org.name == "青禾县"))
    sibling = Org(kind="county", name="白石县", parent_id=county.parent_id, code="419902", doc_prefix="白政")
    s.add(sibling)
    s.commit()
    user = accounts.create_user(s, username="sibling.lists", display_name="白石县 全角色", org_id=sibling.id,
                                roles=list(policy.ROLES), password="Sibling-passw0rd",
                                hasher=app.extensions["baoxue_hasher"], by="test")
    token = accounts.create_token(s, user, name="lists", expires_days=None, by="test").token
    s.commit()
    return client_for(app, token), sibling


def test_uploads_listed_scoped_paged_and_filtered(app, client, demo, app_session):
    from cases.store.models import Case, Document, to_json
    from tests.samples_data import sample_input

    case = app_session.scalar(select(Case).order_by(Case.id))
    school = app_session.get(Org, case.org_id)
    docs = []
    for _ in range(2):
        r = client.post("/api/v1/documents", json={"form": "dropout_report", "issuer_id": school.id,
                                                   "format": "docx",
                                                   "data": to_json(sample_input("dropout_report"))})
        assert r.status_code == 201, r.get_json()
        docs.append(r.get_json()["id"])
    app_session.get(Document, docs[0]).case_id = case.id
    app_session.commit()
    uploads = []
    for doc_id in (docs[0], docs[1], docs[0]):
        data = client.get(f"/api/v1/documents/{doc_id}/docx").data
        r = client.post("/api/v1/uploads", data={"org_id": str(school.id), "file": (io.BytesIO(data), "回收.docx")},
                        content_type="multipart/form-data")
        assert r.status_code == 201, r.get_json()
        uploads.append(r.get_json()["upload_id"])
    every = client.get("/api/v1/uploads").get_json()
    assert every["total"] == 3 and [u["id"] for u in every["items"]] == uploads[::-1]  # newest first
    # each item is what GET /uploads/<id> answers
    assert every["items"][0] == client.get(f"/api/v1/uploads/{uploads[2]}").get_json()
    first = client.get("/api/v1/uploads?limit=2").get_json()
    assert first["next"] == "/api/v1/uploads?limit=2&offset=2" and len(first["items"]) == 2
    assert [u["id"] for u in _walk(client, "/api/v1/uploads?limit=2")] == uploads[::-1]
    by_doc = client.get(f"/api/v1/uploads?document_id={docs[0]}&limit=1").get_json()
    assert by_doc["total"] == 2 and by_doc["next"] == f"/api/v1/uploads?document_id={docs[0]}&limit=1&offset=1"
    assert {u["id"] for u in _walk(client, f"/api/v1/uploads?document_id={docs[0]}&limit=1")} == \
        {uploads[0], uploads[2]}
    assert [u["id"] for u in client.get(f"/api/v1/uploads?case_id={case.id}").get_json()["items"]] == \
        [uploads[2], uploads[0]]
    assert client.get(f"/api/v1/uploads?case_id={case.id}&document_id={docs[1]}").get_json()["total"] == 0
    statuses = {u["status"] for u in every["items"]}
    assert statuses == {"parsed"}, statuses
    assert client.get("/api/v1/uploads?status=parsed").get_json()["total"] == 3
    assert client.get("/api/v1/uploads?status=failed").get_json()["total"] == 0
    bad = client.get("/api/v1/uploads?status=nonsense")
    assert bad.status_code == 422 and "status" in bad.get_json()["fields"]
    assert client.get("/api/v1/uploads?case_id=abc").status_code == 422
    other, sibling = _sibling_client(app, app_session)
    for url in ("/api/v1/uploads", f"/api/v1/uploads?document_id={docs[0]}", f"/api/v1/uploads?case_id={case.id}"):
        body = other.get(url).get_json()
        assert (body["total"], body["items"]) == (0, []), url
    assert client.get(f"/api/v1/uploads?org_id={sibling.id}").get_json()["total"] == 0


def test_samples_listed_scoped_paged_and_filtered_by_township(app, client, demo, app_session):
    orgs = {o.name: o for o in app_session.scalars(select(Org))}
    made = []
    for org, n in (("青禾县", 1), ("东河镇", 2)):
        r = client.post("/api/v1/samples", json={"org_id": orgs[org].id, "per_township": n, "seed": f"列表-{org}"})
        assert r.status_code == 201, r.get_json()
        made.append(r.get_json()["id"])
    body = client.get("/api/v1/samples?limit=1").get_json()
    assert (body["total"], [x["id"] for x in body["items"]]) == (2, [made[1]])
    assert body["next"] == "/api/v1/samples?limit=1&offset=1"
    assert body["items"][0] == client.get(f"/api/v1/samples/{made[1]}").get_json()
    assert [x["id"] for x in _walk(client, "/api/v1/samples?limit=1")] == made[::-1]
    dong = client.get(f"/api/v1/samples?township_id={orgs['东河镇'].id}").get_json()
    assert [x["id"] for x in dong["items"]] == made[::-1]
    nan = client.get(f"/api/v1/samples?township_id={orgs['南坪镇'].id}").get_json()
    assert [x["id"] for x in nan["items"]] == [made[0]]
    assert orgs["南坪镇"].id in {t["township_id"] for t in nan["items"][0]["townships"]}
    assert client.get(f"/api/v1/samples?org_id={orgs['东河镇'].id}").get_json()["total"] == 1
    r = client.get(f"/api/v1/samples?township_id={orgs['东河镇中心小学'].id}")
    assert r.status_code == 404 and "township_id" in r.get_json()["fields"]
    other, _ = _sibling_client(app, app_session)
    assert other.get("/api/v1/samples").get_json()["total"] == 0
    assert other.get(f"/api/v1/samples?township_id={orgs['东河镇'].id}").get_json()["total"] == 0


def test_handover_plans_listed_scoped_paged_and_filtered(app, client, demo, app_session):
    from tests.test_handover_api import _ids, _plan

    orgs, cls = _ids(app_session)
    first = _plan(client, orgs, cls)
    r = client.post("/api/v1/handover/plans", json={
        "county_id": orgs["青禾县"].id, "year": 2026, "term_start": "2026-09-01",
        "entries": [{"class_id": cls["东河镇柳湾小学"].id, "receiving_school_id": orgs["东河镇初级中学"].id}]})
    assert r.status_code == 201, r.get_json()
    second = r.get_json()
    body = client.get("/api/v1/handover/plans?limit=1").get_json()
    assert body["total"] == 2 and body["items"] == [first]  # newest year first, as GET /plans/<id>
    assert body["items"][0] == client.get(f"/api/v1/handover/plans/{first['id']}").get_json()
    assert body["next"] == "/api/v1/handover/plans?limit=1&offset=1"
    assert [p["id"] for p in _walk(client, "/api/v1/handover/plans?limit=1")] == [first["id"], second["id"]]
    assert [p["id"] for p in client.get("/api/v1/handover/plans?year=2026").get_json()["items"]] == [second["id"]]
    assert client.get(f"/api/v1/handover/plans?org_id={orgs['青禾县'].id}&year=2027").get_json()["total"] == 1
    assert client.get("/api/v1/handover/plans?status=open").get_json()["total"] == 2
    assert client.get("/api/v1/handover/plans?status=closed").get_json()["total"] == 0
    for bad, field in (("year=20x6", "year"), ("status=done", "status"), ("org_id=x", "org_id")):
        r = client.get(f"/api/v1/handover/plans?{bad}")
        assert r.status_code == 422 and field in r.get_json()["fields"], bad
    # a school does not see its county's plans (as GET /plans/<id> answers it 403); another county none
    school = {"X-Baoxue-Org": str(orgs["东河镇中心小学"].id)}
    assert client.get("/api/v1/handover/plans", headers=school).get_json()["total"] == 0
    other, sibling = _sibling_client(app, app_session)
    assert other.get("/api/v1/handover/plans").get_json()["total"] == 0
    assert client.get(f"/api/v1/handover/plans?org_id={sibling.id}").get_json()["total"] == 0


def test_new_lists_documented_with_the_paged_envelope(client):
    doc = client.get("/api/v1/openapi.json").get_json()
    for path, name in (("/api/v1/uploads", "PageUpload"), ("/api/v1/samples", "PageSample"),
                       ("/api/v1/handover/plans", "PageHandoverPlan")):
        op = doc["paths"][path]["get"]
        ref = op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
        assert ref.rsplit("/", 1)[1] == name, (path, ref)
        schema = doc["components"]["schemas"][name]
        assert set(schema["required"]) == {"total", "limit", "offset", "next", "items"}, path
        assert {"limit", "offset"} <= {p["name"] for p in op["parameters"]}, path
