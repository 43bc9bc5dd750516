"""HTML pages: the input form is generated from the spec; errors are shown beside their fields."""

from __future__ import annotations

import io

from cases.store.models import Org, to_json
from tests.samples_data import sample_input


def _school(app_session) -> int:
    org = Org(kind="school", name="青禾县城关镇第一小学", code="2141001234", doc_prefix="城一小")
    app_session.add(org)
    app_session.commit()
    return org.id


def test_index_lists_every_form(client):
    html = client.get("/forms").get_data(as_text=True)
    for title in ("义务教育阶段学生辍学情况报告单", "限期返校通知书", "责令复学通知书", "整班移交"):
        assert title in html


def test_form_page_has_an_input_per_spec_field(client):
    html = client.get("/forms/dropout_report").get_data(as_text=True)
    assert 'name="student_id_number"' in html
    assert 'name="attempts-0-date"' in html
    assert 'value="R05"' in html  # reason choices from the code list
    assert 'name="doc_number"' not in html  # SYSTEM fields are not typed by people


def test_invalid_form_post_shows_errors_beside_fields(client, app_session):
    school = _school(app_session)
    r = client.post("/forms/dropout_report", data={"issuer_id": str(school), "student_name": "张三",
                                                   "student_id_number": "123"})
    assert r.status_code == 422
    html = r.get_data(as_text=True)
    assert "身份证号应为18位" in html
    assert 'value="张三"' in html  # what the clerk typed is kept


def test_valid_form_post_issues_and_shows_the_document(client, app_session):
    school = _school(app_session)
    data = to_json(sample_input("dropout_report"))
    form = {"issuer_id": str(school), "format": "docx"}
    for key, value in data.items():
        if isinstance(value, list) and value and isinstance(value[0], dict):
            for i, row in enumerate(value):
                for col, cell in row.items():
                    form[f"{key}-{i}-{col}"] = "" if cell is None else str(cell)
        elif isinstance(value, list):
            form[key] = value
        elif value is not None and not isinstance(value, bool):
            form[key] = str(value)
    r = client.post("/forms/dropout_report", data=form)
    assert r.status_code == 302, r.get_data(as_text=True)[:2000]
    page = client.get(r.headers["Location"]).get_data(as_text=True)
    assert "城一小辍报〔" in page and "下载 DOCX" in page


def test_upload_page_refuses_a_non_form_with_the_reason(client, app_session):
    school = _school(app_session)
    r = client.post("/upload", data={"org_id": str(school), "file": (io.BytesIO(b"hello"), "a.txt")},
                    content_type="multipart/form-data", headers={"Accept": "text/html"})
    assert r.status_code == 422
    assert "a.txt" in r.get_data(as_text=True)
