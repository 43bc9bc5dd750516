"""部门函件 (forms/specs/referral_letter.py): variants bound to departments, checks, the masked ID and
the variant wording in the rendered letter, the 回执 part; prefill from a case + referral
(cases/documents/prefill.py ``referral_letter_data``) and ``render: true`` on POST /cases/<id>/referrals."""

from __future__ import annotations

import datetime as dt
import io

import docx
import pytest
from sqlalchemy import select

from cases.engine import casework as engine
from cases.engine.models import Referral
from cases.store.models import Case, Document, Pupil
from forms import validators as v
from forms.errors import ValidationFailed
from forms.registry import get_spec
from forms.specs.referral_letter import VARIANTS, variant_for
from tests._render_helpers import render_docx
from tests.samples_data import sample_input

D = dt.date
SPEC = get_spec("referral_letter")


def _errors(data: dict, variant: str) -> dict:
    with pytest.raises(ValidationFailed) as e:
        SPEC.validate(data, SPEC.variant(variant))
    return e.value.fields


@pytest.mark.parametrize("variant", [x.code for x in VARIANTS])
def test_samples_valid_two_parts(variant):
    cleaned = SPEC.validate(sample_input("referral_letter", variant, signatures=True), SPEC.variant(variant))
    assert cleaned["reply_by"] - cleaned["issue_date"] == dt.timedelta(days=15)
    assert [p.key for p in SPEC.parts(SPEC.variant(variant))] == ["letter", "reply"]
    assert SPEC.abbr(SPEC.variant(variant)) == {"xiecha": "协查", "jiaoban": "交办", "tongzhi": "通知"}[variant]


def test_variant_bound_to_department():
    data = sample_input("referral_letter", "xiecha")
    data["to_department"] = "renshe"
    assert "应为公安" in _errors(data, "xiecha")["to_department"]
    data = sample_input("referral_letter", "tongzhi")
    data["to_department"] = "gongan"
    assert "应为教育" in _errors(data, "tongzhi")["to_department"]
    data = sample_input("referral_letter", "jiaoban")  # any partner department
    for dept in ("sifa", "minzheng", "canlian", "gongan"):
        assert SPEC.validate({**data, "to_department": dept}, SPEC.variant("jiaoban"))["to_department"] == dept


def test_checks():
    data = sample_input("referral_letter", "tongzhi", hand=False)
    del data["hukou_place"]
    assert "户籍地" in _errors(data, "tongzhi")["hukou_place"]
    data = sample_input("referral_letter", "jiaoban", hand=False)
    assert "hukou_place" not in _errors({**data, "hukou_place": None, "reply_by": data["issue_date"]}, "jiaoban")
    assert "应晚于发函日期" in _errors({**data, "reply_by": data["issue_date"]}, "jiaoban")["reply_by"]
    assert "90天" in _errors({**data, "reply_by": data["issue_date"] + dt.timedelta(days=120)}, "jiaoban")["reply_by"]
    errs = _errors({**data, "reply_text": "已核查"}, "jiaoban")
    assert set(errs) == {"replied_on", "reply_handler"}
    errs = _errors({**data, "student_sex": "女"}, "jiaoban")
    assert "第17位" in errs["student_sex"]
    errs = _errors({**data, "received_on": data["issue_date"] - dt.timedelta(days=1)}, "jiaoban")
    assert "received_on" in errs
    assert "request_text" in _errors({**data, "request_text": ""}, "jiaoban")


def test_variant_for_reason():
    assert variant_for("gongan", "R08") == "xiecha"
    assert variant_for("gongan", "R02") == "jiaoban"
    assert variant_for("jiaoyu", "R11") == "tongzhi"
    assert variant_for("jiaoyu", "R05") == "jiaoban"
    assert variant_for("renshe", None) == "jiaoban"


def test_rendered_letter_prints_id_per_recipient_and_variant_wording():
    """The 协查函 to 公安 prints the full number (the police search by it); a 交办函 to another
    department masks it (DOMAIN §8.4)."""
    other = SPEC.variant("jiaoban")
    data = sample_input("referral_letter", "jiaoban")
    cleaned = SPEC.validate(data, other)
    d = docx.Document(io.BytesIO(render_docx(SPEC, other, cleaned)))
    cells = "\n".join(c.text for t in d.tables for r in t.rows for c in r.cells)
    assert data["student_id_number"] not in cells and v.mask_id(data["student_id_number"]) in cells
    assert SPEC.full_prints(cleaned) == []
    variant = SPEC.variant("xiecha")
    data = sample_input("referral_letter", "xiecha")
    cleaned = SPEC.validate(data, variant)
    assert SPEC.full_prints(cleaned) == ["student_id_number"]
    text = "\n".join(p.text for p in docx.Document(io.BytesIO(render_docx(SPEC, variant, cleaned))).paragraphs)
    body = text + "\n".join(c.text for t in docx.Document(io.BytesIO(render_docx(SPEC, variant, cleaned))).tables
                            for r in t.rows for c in r.cells)
    assert data["student_id_number"] in body
    assert "协查函" in text and "协查函（回执）" in text
    assert variant.data["opening"][:20] in text
    assert "卫辉市公安局城关派出所：" in text
    assert "经核查，该生现随其父在郑州市务工" in body


# ---- prefill and the API -------------------------------------------------------------------------

def _case(session, reason: str) -> Case:
    pupil = session.scalars(select(Pupil).where(Pupil.id.not_in(select(Case.pupil_id))).order_by(Pupil.id)).first()
    case = engine.open_case(session, pupil, opened_on=D(2025, 3, 3), actor="t", reason_code=reason)
    session.commit()
    return case


def test_prefill_from_case_and_referral(app_session, demo):
    from cases.documents.prefill import referral_letter_data

    case = _case(app_session, "R08")
    ref = engine.create_referral(app_session, case, to_department="gongan", reason="该生失联，多次查找未果",
                                 sent_on=D(2025, 3, 12), actor="t")
    variant, data = referral_letter_data(app_session, case, ref)
    assert variant == "xiecha"
    assert data["student_name"] == case.pupil.name and data["to_department"] == "gongan"
    assert data["to_unit"].endswith("公安局") and data["facts"] == "该生失联，多次查找未果"
    assert data["reply_by"] == "2025-03-27" and data["issue_date"] == "2025-03-12"
    assert data["request_text"] == SPEC.variant("xiecha").data["default_request"]
    cleaned = SPEC.validate({**data, "contact_person": "赵玉梅", "contact_phone": "13712345678"},
                            SPEC.variant(variant))
    assert cleaned["absent_since"] == D(2025, 3, 3) and cleaned["reason"] == "R08"
    app_session.rollback()


def test_post_referral_render_issues_and_links_letter(client, app_session, demo):
    case = _case(app_session, "R02")
    body = {"to_department": "renshe", "reason": "外出务工，请协查用工单位", "sent_on": "2025-03-12",
            "to_unit_name": "卫辉市人力资源和社会保障局", "render": True, "pdf": False}
    res = client.post(f"/api/v1/cases/{case.id}/referrals", json=body)
    assert res.status_code == 422 and "contact_person" in res.json["fields"]
    assert app_session.scalars(select(Referral).where(Referral.case_id == case.id)).first() is None

    body["letter"] = {"contact_person": "赵玉梅", "contact_phone": "13712345678"}
    res = client.post(f"/api/v1/cases/{case.id}/referrals", json=body)
    assert res.status_code == 201, res.json
    doc_id = res.json["document_id"]
    assert doc_id and res.json["document"]["id"] == doc_id and res.json["document"]["variant"] == "jiaoban"
    assert "交办" in res.json["document"]["number"] and res.json["document"]["status"] == "issued"
    app_session.expire_all()
    doc = app_session.get(Document, doc_id)
    assert doc.form == "referral_letter" and doc.case_id == case.id
    assert doc.data["to_unit"] == "卫辉市人力资源和社会保障局" and doc.data["contact_person"] == "赵玉梅"
    ref = app_session.get(Referral, res.json["id"])
    assert ref.document_id == doc_id

    # an explicit variant that does not fit the department is refused
    res = client.post(f"/api/v1/cases/{case.id}/referrals", json={**body, "variant": "xiecha"})
    assert res.status_code == 422 and "to_department" in res.json["fields"]
    # without render: no letter
    res = client.post(f"/api/v1/cases/{case.id}/referrals", json={"to_department": "gongan", "reason": "协查"})
    assert res.status_code == 201 and res.json["document_id"] is None and "document" not in res.json


def test_full_number_print_is_audited_not_logged(services, app_session, caplog):
    """Issuing and downloading a 协查函 that prints the full 身份证号 writes an audit entry naming the
    field and the recipient rule (not the number); the application log never carries the number."""
    import logging

    from sqlalchemy import select

    from cases.documents.issuing import document_file, issue_document
    from cases.store.models import AuditLog, Org

    org = Org(kind="township", name="城关镇", doc_prefix="城政", code="410781001")
    app_session.add(org)
    app_session.commit()
    data = sample_input("referral_letter", "xiecha")
    data.pop("doc_number", None)
    with caplog.at_level(logging.DEBUG):
        doc = issue_document(app_session, services, form="referral_letter", variant="xiecha", issuer_id=org.id,
                             data=data, want_pdf=False, user="tester")
        document_file(services, doc, "docx", session=app_session, who="clerk")
        app_session.commit()
    entries = app_session.scalars(select(AuditLog).where(AuditLog.target == f"document:{doc.id}")).all()
    actions = {e.action: e for e in entries}
    full = actions["document.print_full_id"]
    assert full.after["fields"] == ["student_id_number"]
    assert full.after["rule"] == {"student_id_number": ["to_department=gongan"]}
    assert actions["document.download_full_id.docx"].who == "clerk"
    assert all(data["student_id_number"] not in str(e.after) for e in entries)
    assert data["student_id_number"] not in caplog.text
    other = issue_document(app_session, services, form="referral_letter", variant="jiaoban", issuer_id=org.id,
                           data={**sample_input("referral_letter", "jiaoban"), "doc_number": None},
                           want_pdf=False)
    assert not app_session.scalars(select(AuditLog).where(AuditLog.target == f"document:{other.id}",
                                                          AuditLog.action.like("%full_id%"))).all()
