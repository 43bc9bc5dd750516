"""API ergonomics for integrators: Chinese unescaped in JSON, one list shape (total, limit, offset,
next, items) on every list endpoint, pupils with grade and class names, each form field's limits,
and the review queue paged and filtered by upload, document, case, kind and reason."""

from __future__ import annotations

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
