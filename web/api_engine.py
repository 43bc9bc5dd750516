"""Case engine API (/api/v1): workflow actions, persuasion attempts, closure evidence, referrals,
overdue deadlines, the 问题清单 (with the inspectors' findings), attendance import and holiday
tables. Every endpoint declares its action (``@requires``) and checks the case or node it touches
against it; errors are BaoxueError subclasses (409 for an invalid transition, naming the current
state and the allowed actions)."""

from __future__ import annotations

import datetime as dt

from flask import request
from flask_smorest import Blueprint
from sqlalchemy import select

from cases.engine import casework as engine
from cases.engine import installed
from cases.engine.attendance import import_attendance
from cases.engine.models import Deadline, Evidence, Problem, Referral
from cases.store import audit
from cases.store.models import Case, Org, in_scope
from forms.errors import NotFound, ValidationFailed
from web.api import check_scope, current_user, db, json_body, scope_org, uploaded_file
from web.auth import get_scoped, requires, visible
from web.openapi import PAGE_QUERY, query
from web.paging import paged, paged_list

blp = Blueprint("engine", __name__, url_prefix="/api/v1", description="案件流程、时限、问题清单、考勤导入")


def _case(case_id: int):
    return get_scoped(Case, case_id, "案件")


def _when(body: dict, key: str = "occurred_on") -> dt.date | None:
    return engine._date(body[key], key) if body.get(key) else None


def _transition_json(t) -> dict:
    return {"code": t.code, "from_state": t.from_state, "to_state": t.to_state, "actor": t.actor,
            "documents": list(t.documents), "tags": list(t.tags), "warnings": list(t.warnings),
            "outcome": t.outcome, "notice_variant": t.notice_variant,
            "timers": [{"name": s.name, "start": s.start, "due": s.due.date if s.due else None,
                        "provisional": bool(s.due and s.due.provisional),
                        "warning": s.due.warning if s.due else None} for s in t.timers]}


def _org_arg() -> Org:
    raw = request.args.get("org_id", "")
    org = db().get(Org, int(raw)) if raw.isdigit() else scope_org()
    if org is None:
        raise ValidationFailed("需要 org_id（或 X-Baoxue-Org）", fields={"org_id": "必填"})
    check_scope(org.id)
    return org


@blp.route("/cases/<int:case_id>/actions")
@requires("case.read")
def case_actions(case_id: int):
    """Allowed actions of the case, and the blocked ones with the reason."""
    session = db()
    case = _case(case_id)
    out = engine.actions(session, case)
    out["deadlines"] = [engine.deadline_json(d) for d in session.scalars(
        select(Deadline).where(Deadline.case_id == case.id).order_by(Deadline.id))]
    out["dropout_confirmed_on"] = case.dropout_confirmed_on
    return out


@blp.route("/cases/<int:case_id>/actions", methods=["POST"])
@requires("case.act")
def take_action(case_id: int):
    """Take a transition: {"code": "T8", "data": {"reason": ..., "facts": {...}}, "occurred_on": date}."""
    session = db()
    case = _case(case_id)
    body = json_body()
    code = body.get("code")
    if not isinstance(code, str) or not code:
        raise ValidationFailed("缺少操作代码", fields={"code": "必填，如 T8"})
    data = body.get("data") or {}
    if not isinstance(data, dict):
        raise ValidationFailed("data 应为对象", fields={"data": "对象"})
    t = engine.apply_action(session, case, code, actor=current_user(), data=data, occurred_at=_when(body))
    session.commit()
    return {"case_id": case.id, "state": case.state, "relapse": case.relapse,
            "transition": _transition_json(t)}, 201


@blp.route("/cases/<int:case_id>/facts", methods=["POST"])
@requires("case.act")
def post_facts(case_id: int):
    """Record facts of the episode (returned_on, out_of_contact, court_ruling...)."""
    session = db()
    case = _case(case_id)
    body = json_body()
    facts = engine.record_facts(session, case, body.get("facts") or {}, actor=current_user(),
                                occurred_at=_when(body))
    session.commit()
    return {"case_id": case.id, "facts": facts}, 201


@blp.route("/cases/<int:case_id>/attempts", methods=["POST"])
@requires("case.act")
def post_attempt(case_id: int):
    """Record a persuasion attempt (§5.5 fields); answers it with the ≥N-in-window check."""
    session = db()
    case = _case(case_id)
    attempt = engine.record_attempt(session, case, json_body(), actor=current_user())
    session.commit()
    return {"attempt": attempt, "check": engine.attempts_check(session, case)}, 201


@blp.route("/cases/<int:case_id>/attempts")
@requires("case.read")
def get_attempts(case_id: int):
    session = db()
    case = _case(case_id)
    return {"attempts": engine.attempts_of(session, case), "check": engine.attempts_check(session, case)}


@blp.route("/cases/<int:case_id>/service", methods=["POST"])
@requires("case.act")
def post_service(case_id: int):
    """Record service of a notice: {"document_id", "served_on", "method", "complete"}."""
    session = db()
    case = _case(case_id)
    body = json_body()
    missing = {k: "必填" for k in ("document_id", "served_on", "method") if not body.get(k)}
    if missing:
        raise ValidationFailed("送达信息不完整", fields=missing)
    engine.record_service(session, case, document_id=body["document_id"],
                          served_on=engine._date(body["served_on"], "served_on"), method=body["method"],
                          complete=bool(body.get("complete")), actor=current_user())
    session.commit()
    return {"case_id": case.id, "state": case.state}, 201


@blp.route("/cases/<int:case_id>/receipts", methods=["POST"])
@requires("case.act")
def post_receipt(case_id: int):
    """The 报告单 was signed for: {"document_id", "received_on", "by": "township"|"education"}."""
    session = db()
    case = _case(case_id)
    body = json_body()
    if not body.get("received_on"):
        raise ValidationFailed("缺少签收日期", fields={"received_on": "必填"})
    engine.record_receipt(session, case, document_id=body.get("document_id"),
                          received_on=engine._date(body["received_on"], "received_on"),
                          by=body.get("by", "township"), actor=current_user())
    session.commit()
    return {"case_id": case.id, "state": case.state}, 201


def _evidence_json(e: Evidence) -> dict:
    return {"id": e.id, "case_id": e.case_id, "kind": e.kind, "document_id": e.document_id,
            "upload_id": e.upload_id, "value": e.value, "issuer": e.issuer, "partners": e.partners or [],
            "note": e.note, "attached_by": e.attached_by, "verified_by": e.verified_by,
            "verified_at": e.verified_at.isoformat() if e.verified_at else None}


@blp.route("/cases/<int:case_id>/evidence", methods=["POST"])
@requires("case.act")
def post_evidence(case_id: int):
    """Attach closure evidence: {"kind", "document_id"?, "value"?, "issuer"?, "partners"?, "note"?}."""
    session = db()
    case = _case(case_id)
    body = json_body()
    if not body.get("kind"):
        raise ValidationFailed("缺少材料类型", fields={"kind": "必填"})
    ev = engine.attach_evidence(session, case, kind=body["kind"], actor=current_user(),
                                document_id=body.get("document_id"), upload_id=body.get("upload_id"),
                                value=body.get("value"), issuer=body.get("issuer"),
                                partners=body.get("partners"), note=body.get("note"))
    session.commit()
    return _evidence_json(ev), 201


@blp.route("/cases/<int:case_id>/evidence")
@requires("case.read")
def list_evidence(case_id: int):
    session = db()
    case = _case(case_id)
    return paged(session, select(Evidence).where(Evidence.case_id == case.id).order_by(Evidence.id),
                 _evidence_json)


@blp.route("/evidence/<int:evidence_id>/verify", methods=["POST"])
@requires("evidence.verify")
def verify(evidence_id: int):
    """The logged-in person confirms the evidence item (recorded by name)."""
    session = db()
    ev = get_scoped(Evidence, evidence_id, "证明材料")
    engine.verify_evidence(session, ev, by=current_user())
    session.commit()
    return _evidence_json(ev)


@blp.route("/cases/<int:case_id>/close", methods=["POST"])
@requires("case.close")
def close(case_id: int):
    """销号: {"outcome": "C1".."C7"}; refused (409) listing what is missing."""
    session = db()
    case = _case(case_id)
    body = json_body()
    if not body.get("outcome"):
        raise ValidationFailed("缺少销号类型", fields={"outcome": "必填，C1–C7"})
    t = engine.close_case(session, case, body["outcome"], actor=current_user(), data=body.get("data"),
                          occurred_at=_when(body))
    session.commit()
    return {"case_id": case.id, "state": case.state, "closure_reason": case.closure_reason,
            "transition": _transition_json(t)}


def _referral_json(r: Referral) -> dict:
    return {"id": r.id, "case_id": r.case_id, "from_org_id": r.org_id, "to_department": r.to_department,
            "to_org_id": r.to_org_id, "to_unit_name": r.to_unit_name, "reason": r.reason,
            "request": r.request, "sent_on": r.sent_on, "document_id": r.document_id,
            "acknowledged_on": r.acknowledged_on, "reply": r.reply, "replied_on": r.replied_on}


@blp.route("/cases/<int:case_id>/referrals", methods=["POST"])
@requires("case.refer")
def post_referral(case_id: int):
    """A 部门函件 to a partner department: {"to_department", "reason", "sent_on"?, "request"?}.

    With ``"render": true`` the printed letter (``referral_letter``: 协查函/交办函/书面通知, chosen
    from the department and the case's reason unless ``"variant"`` is given) is issued by the
    sending unit and linked as ``document_id``; ``"letter"`` adds or overrides its fields (the
    contact person and phone are required; ``"pdf": false`` skips the PDF). An invalid letter
    rejects the whole request (422) and records nothing."""
    session = db()
    case = _case(case_id)
    body = json_body()
    ref = engine.create_referral(session, case, to_department=body.get("to_department", ""),
                                 reason=body.get("reason", ""),
                                 sent_on=_when(body, "sent_on") or engine.china_date(None),
                                 actor=current_user(), request=body.get("request"),
                                 to_org_id=body.get("to_org_id"), to_unit_name=body.get("to_unit_name"),
                                 document_id=body.get("document_id"))
    out = {}
    if body.get("render"):
        doc = _issue_letter(session, case, ref, body)
        ref.document_id = doc.id
        out["document"] = {"id": doc.id, "number": doc.number_text, "variant": doc.variant, "status": doc.status}
    session.commit()
    return {**_referral_json(ref), **out}, 201


def _issue_letter(session, case, ref: Referral, body: dict):
    """Issue the referral's letter; validation errors raise before anything is committed."""
    from cases.documents import issuing as svc
    from cases.documents.prefill import referral_letter_data
    from web.api import services

    letter = body.get("letter") or {}
    if not isinstance(letter, dict):
        raise ValidationFailed("letter 应为 JSON 对象", fields={"letter": "JSON 对象"})
    variant, data = referral_letter_data(session, case, ref)
    variant = body.get("variant") or variant
    check_scope(ref.org_id, "document.issue")
    return svc.issue_document(session, services(), form="referral_letter", variant=variant,
                              issuer_id=ref.org_id, data={**data, **letter}, case_id=case.id,
                              user=current_user(), issued_on=ref.sent_on,
                              want_pdf=body.get("pdf", True) is not False)


@blp.route("/cases/<int:case_id>/referrals")
@requires("case.read")
def list_referrals(case_id: int):
    session = db()
    case = _case(case_id)
    q = select(Referral).where(Referral.case_id == case.id).order_by(Referral.id)
    cond = visible(Referral)  # a department sees only the letters sent to it
    if cond is not None:
        q = q.where(cond)
    return paged(session, q, _referral_json)


@blp.route("/referrals/<int:referral_id>/reply", methods=["POST"])
@requires("referral.reply")
def referral_reply(referral_id: int):
    """Record acknowledgement and/or reply: {"acknowledged_on"?, "reply"?, "replied_on"?}."""
    session = db()
    ref = get_scoped(Referral, referral_id, "部门函件")
    body = json_body()
    if body.get("acknowledged_on"):
        ref.acknowledged_on = _when(body, "acknowledged_on")
    if body.get("reply"):
        ref.reply = str(body["reply"])
        ref.replied_on = _when(body, "replied_on") or engine.china_date(None)
    audit.record(session, who=current_user(), org=ref.org_id, action="referral.reply", target=f"referral:{ref.id}",
                 after={"acknowledged_on": ref.acknowledged_on, "replied_on": ref.replied_on,
                        "reply": ref.reply})
    session.commit()
    return _referral_json(ref)


@blp.route("/overdue")
@requires("deadline.read")
@query(("org_id", "int", False, "机构（含下级）"), ("today", "date", False, "今天"), *PAGE_QUERY)
def list_overdue():
    """Open deadlines past due in the subtree of ``?org_id=`` (default: the caller's scope)."""
    org = _org_arg()
    today = engine._date(request.args["today"], "today") if request.args.get("today") else None
    return paged_list(engine.overdue(db(), org, today), org_id=org.id)


@blp.route("/problems")
@requires("deadline.read")
@query(("org_id", "int", False, "机构（含下级）"), ("status", ["open", "resolved"], False, "状态"), *PAGE_QUERY)
def list_problems():
    """The 问题清单 of the subtree of ``?org_id=`` (``?status=open|resolved``)."""
    org = _org_arg()
    q = select(Problem).where(in_scope(Problem.org_id, org)).order_by(Problem.id)
    if request.args.get("status"):
        q = q.where(Problem.status == request.args["status"])
    return paged(db(), q, _problem_json, org_id=org.id)


def _problem_json(p: Problem) -> dict:
    return {"id": p.id, "case_id": p.case_id, "deadline_id": p.deadline_id, "source": p.source,
            "category": p.category, "description": p.description, "responsible_person": p.responsible_person,
            "responsible_unit": p.responsible_unit, "measures": p.measures, "due_on": p.due_on,
            "status": p.status, "org_id": p.org_id, "created_by": p.created_by}


@blp.route("/problems", methods=["POST"])
@requires("inspection.write")
def post_inspection_finding():
    """An inspector's finding for the 问题清单 (督导意见 / 整改要求): ``{"org_id" or "case_id",
    "description", "category"?, "measures"?, "responsible_unit"?, "responsible_person"?, "due_on"?}``.
    The only thing an auditor writes; it is recorded with their name."""
    session = db()
    body = json_body()
    case = _case(int(body["case_id"])) if str(body.get("case_id") or "").isdigit() else None
    org_id = case.org_id if case is not None else body.get("org_id")
    errors = {}
    if not isinstance(org_id, int):
        errors["org_id"] = "必填：被督导的单位（或给出 case_id）"
    if not str(body.get("description") or "").strip():
        errors["description"] = "必填：发现的问题"
    if errors:
        raise ValidationFailed("督导意见不完整", fields=errors)
    if case is None:
        if session.get(Org, org_id) is None:
            raise NotFound(f"机构 {org_id} 不存在", fields={"org_id": "不存在"})
        check_scope(org_id)
    problem = Problem(org_id=org_id, case_id=case.id if case else None, source="inspection",
                      category=(str(body.get("category") or "")[:40] or None),
                      description=str(body["description"]).strip(), measures=body.get("measures"),
                      responsible_unit=body.get("responsible_unit"), responsible_person=body.get("responsible_person"),
                      due_on=_when(body, "due_on"), created_by=current_user())
    session.add(problem)
    session.flush()
    audit.record(session, who=current_user(), org=org_id, action="inspection.finding", target=f"problem:{problem.id}",
                 after=_problem_json(problem))
    session.commit()
    return _problem_json(problem), 201


@blp.route("/attendance/import", methods=["POST"])
@requires("attendance.import")
def attendance_import():
    """Multipart: ``file`` (CSV/XLSX, see cases/engine/attendance.py for columns), ``org_id`` (the unit
    whose pupils are listed). Good rows are kept even when some rows are bad."""
    filename, data, org_id = uploaded_file("考勤文件（CSV 或 XLSX）")
    session = db()
    org = session.get(Org, int(org_id))
    if org is None:
        raise NotFound(f"机构 {org_id} 不存在", fields={"org_id": "不存在"})
    check_scope(org.id)
    result = import_attendance(session, org=org, filename=filename, data=data, actor=current_user())
    session.commit()
    return result.to_dict(), 201


@blp.route("/admin/holidays", methods=["POST"])
@requires("system.admin")
def load_holidays():
    """Load a year's statutory holiday table (JSON: year, source, holidays, workdays)."""
    session = db()
    table = engine.load_holiday_table(session, json_body(), actor=current_user())
    session.commit()
    return {"year": table.year, "holidays": len(table.holidays), "workdays": len(table.workdays),
            "source": table.source}, 201


@blp.route("/admin/profiles", methods=["POST"])
@requires("profile.install")
def install_region_profile():
    """Install a region profile (``profile``: the profile JSON, as a shipped file) for ``org_id``
    (omitted or null: the whole installation, its administrator only) and point ``counties`` (ids)
    at it. The profile is checked key by key first; an error names the key and installs nothing."""
    body = json_body()
    session = db()
    data = body.get("profile")
    if not isinstance(data, dict):
        raise ValidationFailed("profile 应为地区配置（JSON 对象）", fields={"profile": "JSON 对象"})
    org_id, county_ids = body.get("org_id"), body.get("counties") or []
    if org_id is not None and (not isinstance(org_id, int) or isinstance(org_id, bool)):
        raise ValidationFailed("org_id 应为机构编号（整数）或 null", fields={"org_id": "整数"})
    if not isinstance(county_ids, list) or not all(isinstance(c, int) and not isinstance(c, bool) for c in county_ids):
        raise ValidationFailed("counties 应为县的机构编号列表", fields={"counties": "整数列表"})
    org = session.get(Org, org_id) if org_id is not None else None
    if org_id is not None and org is None:
        raise NotFound(f"机构 {org_id} 不存在", fields={"org_id": "不存在"})
    check_scope(org_id)
    counties = []
    for cid in county_ids:
        county = session.get(Org, cid)
        if county is None:
            raise NotFound(f"机构 {cid} 不存在", fields={"counties": "不存在"})
        check_scope(cid)
        counties.append(county)
    done = installed.install_profile(session, data, org=org, counties=counties, actor=current_user())
    session.commit()
    installed.sync(session)
    return {"name": done.profile.name, "title": done.profile.title, "org_id": org_id, "replaced": done.replaced,
            "sha256": installed.digest(data), "counties": county_ids}, 201


@blp.route("/admin/sweep", methods=["POST"])
@requires("system.admin")
def run_sweep():
    """Run the deadline sweep now (the daily job does the same): {"today"?: date}."""
    session = db()
    body = request.get_json(silent=True) or {}
    counts = engine.sweep(session, _when(body, "today") if isinstance(body, dict) else None)
    session.commit()
    return counts
