"""Ordinary bad input never answers 500 (issue 14 item 5), on SQLite and PostgreSQL: ids beyond
64 bits on every ``<int:...>`` route, unknown foreign keys and over-long texts named as fields,
file names of any length and script recorded safely, and nothing half-written."""

from __future__ import annotations

import io
import re

import pytest
from sqlalchemy import func, select

from cases.store.models import Org, Pupil, Upload

HUGE = str(2**64)


@pytest.fixture
def school(app_session):
    org = Org(kind="school", name="青禾县城关镇第一小学", code="2141001234", doc_prefix="城一小")
    app_session.add(org)
    app_session.commit()
    return org.id


def _count(session, model) -> int:
    session.expire_all()
    return session.scalar(select(func.count()).select_from(model))


def test_ids_beyond_64_bits_are_404_on_every_int_route(app, client):
    rules = [r for r in app.url_map.iter_rules() if re.search(r"<int:", r.rule)]
    assert len(rules) >= 15
    for rule in rules:
        url = re.sub(r"<int:[^>]+>", HUGE, rule.rule)
        url = re.sub(r"<(?:[a-z]+:)?[^>]+>", "x", url)
        method = next(m for m in ("GET", "POST", "PUT", "PATCH", "DELETE") if m in rule.methods)
        r = client.open(url, method=method, json={})
        # 404; or 405 where a route with a text parameter has the same shape for other methods
        assert r.status_code in (404, 405), (rule.rule, r.status_code, r.get_data(as_text=True)[:200])
        if url.startswith("/api/"):
            assert r.get_json()["error"] in ("not_found", "method_not_allowed")
    # the largest id the database can hold still routes (and is simply not found)
    r = client.get(f"/api/v1/pupils/{2**63 - 1}")
    assert r.status_code == 404 and r.get_json()["error"] == "not_found"


def _pupil(school, **extra):
    return {"org_id": school, "name": "测试生", "sex": "男", "birth_date": "2013-05-04", **extra}


def test_unknown_class_id_is_422_naming_the_field(client, app_session, school):
    r = client.post("/api/v1/pupils", json=_pupil(school, class_id=987654))
    assert r.status_code == 422, r.get_json()
    body = r.get_json()
    assert body["error"] == "validation_failed" and "class_id" in body["fields"]
    assert "987654" in body["message"]
    assert _count(app_session, Pupil) == 0


def test_huge_number_in_a_body_is_422_not_500(client, app_session, school):
    r = client.post("/api/v1/pupils", json=_pupil(school, class_id=2**64))
    assert r.status_code == 422, r.get_json()
    r = client.post("/api/v1/pupils", json=_pupil(2**64))
    assert r.status_code == 422, r.get_json()
    assert _count(app_session, Pupil) == 0


def test_text_longer_than_its_column_is_422_naming_the_field(client, app_session, school):
    r = client.post("/api/v1/pupils", json=_pupil(school, address="东" * 201))
    assert r.status_code == 422, r.get_json()
    assert "address" in r.get_json()["fields"] and "200" in r.get_json()["fields"]["address"]
    r = client.post("/api/v1/pupils", json=_pupil(school, hukou_text="a\x00b"))
    assert r.status_code == 422 and "hukou_text" in r.get_json()["fields"]
    assert _count(app_session, Pupil) == 0


def test_integrity_checks_in_the_store_directly(app_session, school):
    from forms.errors import ValidationFailed

    app_session.add(Pupil(org_id=school, class_id=424242, name="甲", sex="男"))
    with pytest.raises(ValidationFailed) as e:
        app_session.flush()
    assert e.value.fields == {"class_id": "school_classes 中没有 424242"}
    app_session.rollback()
    # a parent added in the same flush with its id set is found without the database
    org = Org(id=777, kind="school", name="新学校")
    app_session.add_all([org, Pupil(org_id=777, name="乙", sex="女")])
    app_session.flush()
    app_session.rollback()


LONG_LATIN = "report-" + "x" * 300 + ".docx"
LONG_CJK = "送达回证" * 27 + ".docx"         # 108 characters, 324 bytes in UTF-8
NAMES = [
    (LONG_LATIN, None),
    (LONG_CJK, LONG_CJK),
    ("a" * 5000 + ".docx", None),
    ("../../etc/passwd.docx", "passwd.docx"),
    ("C:/Users/x/回证.docx", "回证.docx"),
    ("bad\tname\x7f.docx", "bad_name_.docx"),
    ("evil\u202efdp.exe", "evil_fdp.exe"),
    ("...", "upload"),
    ("ملف.docx", "ملف.docx"),
    ("😀 file.docx", "😀 file.docx"),
]


@pytest.mark.parametrize("name,stored", NAMES, ids=[f"name{i}" for i in range(len(NAMES))])
def test_file_names_of_any_length_and_script(client, app_session, school, name, stored):
    from tests.hostile.make import plain_docx

    before = _count(app_session, Upload)
    r = client.post("/api/v1/uploads", data={"org_id": str(school), "attach": "1",
                                             "file": (io.BytesIO(plain_docx()), name)},
                    content_type="multipart/form-data")
    assert r.status_code == 201, r.get_json()
    body = r.get_json()
    assert body["status"] == "attached"
    upload = app_session.get(Upload, body["upload_id"])
    if stored is None:  # too long: truncated with a note, the start and the suffix kept
        assert len(upload.original_filename) <= 1024 and upload.original_filename.endswith(".docx")
        assert upload.original_filename.startswith(name[:20])
        if len(name) > 1024:
            assert "截断" in body["filename_note"]
    else:
        assert upload.original_filename == stored
    assert body["filename"] == upload.original_filename
    assert _count(app_session, Upload) == before + 1


def test_clean_filename_rules():
    from cases.store.storage import clean_filename, fs_name

    assert clean_filename("bad\x00name\r\n.pdf") == ("bad_name__.pdf", "文件名含控制字符，已替换为“_”")
    assert clean_filename("") == ("upload", None)
    assert clean_filename("..")[0] == "upload"
    name, note = clean_filename("长" * 2000 + ".pdf")
    assert len(name) == 1024 and name.endswith("….pdf") and "2004" in note
    assert len(fs_name(name).encode()) <= 120 and fs_name(name).endswith(".pdf")
