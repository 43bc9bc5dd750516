"""The case pages through the Flask client, on SQLite and PostgreSQL: every page answers 200 in
Chinese, the pupil search finds by name, pinyin initials, 学籍号 end and ID tail, and a refused
action or invalid attempt answers the case page with the reason (nothing written)."""

from __future__ import annotations

import re

from sqlalchemy import select

from cases.store.models import Case, CaseEvent, Pupil

HTML = {"Accept": "text/html"}


def _text(r) -> str:
    assert r.status_code == 200, r.get_data(as_text=True)[:1000]
    html = r.get_data(as_text=True)
    assert not re.search(r">\s*(None|True|False)\s*<", html)
    return html


def test_pupil_search_by_name_initials_xueji_and_id_tail(client, demo, app_session):
    from web.pages_cases import initials

    p = app_session.scalars(select(Pupil).order_by(Pupil.id)).first()
    for q in (p.name, initials(p.name).split("|")[0], p.xueji_no[-12:], p.id_number[-4:]):
        html = _text(client.get("/pupils", query_string={"q": q}, headers=HTML))
        assert p.name in html, q
        assert p.id_number not in html  # masked
    html = _text(client.get("/pupils", headers=HTML))
    assert "班级花名册" in html and "六年级" in html


def test_class_roster_page_names_school_and_class(client, demo, app_session):
    """The roster links of /pupils (?class_id=) answer the class's pupils under its school's name."""
    from cases.store.models import Org, SchoolClass

    klass = app_session.scalars(select(SchoolClass).order_by(SchoolClass.id)).first()
    school = app_session.get(Org, klass.org_id)
    html = _text(client.get("/pupils", query_string={"class_id": klass.id}, headers=HTML))
    assert f"{school.name} " in html and "花名册" in html
    names = app_session.scalars(select(Pupil.name).where(Pupil.class_id == klass.id)).all()
    assert names and all(n in html for n in names)
    assert client.get("/pupils", query_string={"class_id": 999999}, headers=HTML).status_code == 404


def test_every_case_page_renders(client, demo, app_session):
    for case in app_session.scalars(select(Case)).all():
        html = _text(client.get(f"/cases/{case.id}", headers=HTML))
        assert case.pupil.name in html and "下一步办理" in html
    case = app_session.scalars(select(Case).order_by(Case.id)).first()
    for form, variant in (("guardian_notice", "xianqi"), ("guardian_notice", "zeling"), ("dropout_report", ""),
                          ("referral_letter", "xiecha")):
        html = _text(client.get(f"/cases/{case.id}/issue", query_string={"form": form, "variant": variant},
                                headers=HTML))
        assert "需要填写" in html and "从案卷带入" in html
    for path in ("/", "/cases", "/cases?state=all", "/documents", "/upload", "/review", "/review/unidentified",
                 "/forms"):
        _text(client.get(path, headers=HTML))


def test_invalid_attempt_and_refused_action_answer_the_case_page(client, demo, app_session):
    case = app_session.scalars(select(Case).where(Case.state == "SUSPECTED")).first()
    before = app_session.query(CaseEvent).filter(CaseEvent.case_id == case.id).count()
    r = client.post(f"/cases/{case.id}/attempts", data={"date": "", "method": "visit", "result": "refused",
                                                        "persons": ""}, headers=HTML)
    assert r.status_code == 422
    html = r.get_data(as_text=True)
    assert "劝返记录有" in html and "必填" in html and case.pupil.name in html
    r = client.post(f"/cases/{case.id}/act", data={"code": "T9"}, headers=HTML)  # not from SUSPECTED
    assert r.status_code == 409
    html = r.get_data(as_text=True)
    assert "当前状态为“疑似辍学”，不能办理“限期内返校”" in html and "SUSPECTED" not in html
    app_session.expire_all()
    assert app_session.query(CaseEvent).filter(CaseEvent.case_id == case.id).count() == before


def test_a_tool_failure_reads_as_a_chinese_page(app):
    """LibreOffice's or tesseract's English message stays in the log and the API answer; the page
    tells the clerk in Chinese that the action did not happen and what to do."""
    from forms.errors import ToolFailed
    from web.errors import TOOL_TROUBLE, error_response

    err = ToolFailed("LibreOffice PDF export timed out", tool="soffice")
    with app.test_request_context("/forms/dropout_report", headers=HTML):
        response, status = error_response(err.http_status, err.to_dict())
        html = response if isinstance(response, str) else response.get_data(as_text=True)
    assert status == 502 and TOOL_TROUBLE in html and "LibreOffice" not in html and "服务器出错了" in html
    with app.test_request_context("/api/v1/documents"):
        response, _ = error_response(err.http_status, err.to_dict())
        assert response.get_json()["message"] == "LibreOffice PDF export timed out"


def test_one_navigation_entry_is_current(client, demo):
    """/ledgers/indicators lies under /ledgers: only 指标 is marked, not 台账 as well."""
    for path, current in (("/ledgers/indicators", "指标"), ("/ledgers", "台账"), ("/cases", "案件"), ("/", "工作台")):
        html = _text(client.get(path, headers=HTML))
        marked = re.findall(r'aria-current="page">([^<]+)</a>', html)
        assert marked == [current], (path, marked)
