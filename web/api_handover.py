"""JSON API of 整班移交 (DOMAIN §4): plan and roster import, 交接表 batch, registrations, closing
the registration window, the county's 15-day check report (JSON or XLSX)."""

from __future__ import annotations

import datetime as dt
import io

from flask import request, send_file
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate
from marshmallow import ValidationError as SchemaError
from sqlalchemy import select

from cases.handover import plans as ho
from cases.handover.models import PLAN_STATUSES, REGISTRATION_SOURCES, HandoverPlan, HandoverRow
from cases.store.models import Job, Org
from forms.codes import HANDOVER_WHEREABOUTS
from forms.errors import NotFound, ValidationFailed
from web.api import check_scope, current_user, db, job_json, scoped, services
from web.auth import log_export, requires
from web.openapi import JSON, PAGE_QUERY, XLSX, paged_response, produces, query
from web.paging import choice_arg, paged, paged_list
from web.schemas import JobOut

blp = Blueprint("handover", __name__, url_prefix="/api/v1", description="整班移交")


class PlanEntryIn(Schema):
    class_id = fields.Integer()
    school_code = fields.String()
    class_name = fields.String()
    receiving_school_id = fields.Integer()
    receiving_school_code = fields.String()


class PlanIn(Schema):
    county_id = fields.Integer(required=True)
    year = fields.Integer(required=True, validate=validate.Range(2000, 2100))
    window_end = fields.Date(load_default=None)
    term_start = fields.Date(load_default=None)
    title = fields.String(load_default=None)
    entries = fields.List(fields.Nested(PlanEntryIn), load_default=list)


class PlanRenderIn(Schema):
    issuer_id = fields.Integer(load_default=None)
    format = fields.String(load_default="pdf", validate=validate.OneOf(["pdf", "docx"]))
    data = fields.Dict(load_default=dict)


class RegistrationIn(Schema):
    receiving_school_id = fields.Integer(required=True)
    id_number = fields.String(load_default=None)
    xueji_no = fields.String(load_default=None)
    name = fields.String(load_default=None)
    birth_date = fields.Date(load_default=None)
    registered_on = fields.Date(required=True)
    source = fields.String(load_default="api", validate=validate.OneOf(REGISTRATION_SOURCES))


class ConfirmIn(Schema):
    accept = fields.Boolean(required=True)
    row_id = fields.Integer(load_default=None)


class WhereaboutsIn(Schema):
    whereabouts = fields.String(required=True, validate=validate.OneOf([c.code for c in HANDOVER_WHEREABOUTS]))
    proof = fields.String(load_default=None)


class CloseIn(Schema):
    today = fields.Date(load_default=None)


def _plan(plan_id: int):
    plan = ho.get_plan(db(), plan_id)
    check_scope(plan.org_id)
    return plan


def _form_date(name: str) -> dt.date | None:
    raw = request.form.get(name) or request.args.get(name)
    if not raw:
        return None
    try:
        return dt.date.fromisoformat(raw)
    except ValueError:
        raise ValidationFailed(f"{name} 应为 YYYY-MM-DD 日期", fields={name: "日期格式 YYYY-MM-DD"}) from None


def _upload() -> tuple[str, bytes]:
    f = request.files.get("file")
    if f is None:
        raise ValidationFailed("请上传 CSV 或 XLSX 文件", fields={"file": "必填"})
    return f.filename or "upload", f.read()


@blp.route("/handover/plans", methods=["POST"])
@requires("handover.manage")
@blp.doc(requestBody={"content": {"application/json": {"schema": PlanIn},
                                  "multipart/form-data": {"schema": {"type": "object", "properties": {
                                      "file": {"type": "string", "format": "binary"},
                                      "county_id": {"type": "integer"}, "year": {"type": "integer"},
                                      "window_end": {"type": "string", "format": "date"},
                                      "term_start": {"type": "string", "format": "date"}}}}}})
def create_plan():
    """Import a county's 整班移交方案: JSON entries (class -> junior school) or a CSV/XLSX file with
    columns 学校标识码, 班级, 接收学校标识码."""
    session = db()
    if request.files:
        try:
            county_id, year = int(request.form["county_id"]), int(request.form["year"])
        except (KeyError, ValueError):
            raise ValidationFailed("请给出 county_id 和 year", fields={"county_id": "整数", "year": "整数"}) from None
        check_scope(county_id)
        name, data = _upload()
        plan = ho.import_plan_table(session, county_id=county_id, year=year, filename=name, data=data,
                                    window_end=_form_date("window_end"), term_start=_form_date("term_start"),
                                    actor=current_user())
    else:
        try:
            body = PlanIn().load(request.get_json(silent=True) or {})
        except SchemaError as e:
            raise ValidationFailed("移交方案输入有误", fields={k: str(m) for k, m in e.messages.items()}) from e
        check_scope(body["county_id"])
        plan = ho.import_plan(session, actor=current_user(), **body)
    session.commit()
    return ho.plan_json(session, plan), 201


@blp.route("/handover/plans")
@requires("handover.read")
@paged_response("HandoverPlan", "整班移交方案，每件同 GET /handover/plans/{plan_id}")
@query(("org_id", "int", False, "县或其上级机构"), ("year", "int", False, "移交年份（升入七年级的年份）"),
       ("status", list(PLAN_STATUSES), False, "open 进行中，closed 已结束"), *PAGE_QUERY)
def list_plans():
    """The 整班移交方案 the user may see, newest year first, each as ``GET /handover/plans/<id>``
    answers it."""
    session = db()
    q = scoped(select(HandoverPlan).order_by(HandoverPlan.year.desc(), HandoverPlan.id.desc()), HandoverPlan)
    if request.args.get("year"):
        raw = request.args["year"].strip()
        if not (raw.isdigit() and len(raw) == 4):
            raise ValidationFailed("year 应为四位年份", fields={"year": "四位年份，如 2026"})
        q = q.where(HandoverPlan.year == int(raw))
    status = choice_arg("status", PLAN_STATUSES)
    if status:
        q = q.where(HandoverPlan.status == status)
    return paged(session, q, lambda plan: ho.plan_json(session, plan))


@blp.route("/handover/plans/<int:plan_id>")
@requires("handover.read")
def get_plan(plan_id: int):
    """A plan with its classes, receiving schools and 交接表 documents."""
    return ho.plan_json(db(), _plan(plan_id))


@blp.route("/handover/plans/<int:plan_id>/rows")
@requires("handover.read")
@query(*PAGE_QUERY)
def plan_rows(plan_id: int):
    """Every 交接表 row of the plan with its reconciliation state."""
    plan = _plan(plan_id)
    return paged_list([r for e in plan.entries for r in e.rows], ho.row_json)


@blp.route("/handover/plans/<int:plan_id>/roster", methods=["POST"])
@requires("handover.manage")
@blp.doc(requestBody={"content": {"multipart/form-data": {"schema": {"type": "object", "properties": {
    "file": {"type": "string", "format": "binary"}}}}}})
def import_roster(plan_id: int):
    """Import the grade-6 roster (CSV/XLSX). Good rows are kept; bad rows come back by row number."""
    session = db()
    plan = _plan(plan_id)
    name, data = _upload()
    result = ho.import_roster(session, plan, filename=name, data=data, actor=current_user())
    session.commit()
    return result.to_json()


@blp.route("/handover/plans/<int:plan_id>/render", methods=["POST"])
@requires("handover.manage")
@blp.arguments(PlanRenderIn)
@blp.response(202, JobOut)
def render_plan(body, plan_id: int):
    """交接表 for every class of the plan as one job -> ZIP (``GET /jobs/<id>``)."""
    session = db()
    plan = _plan(plan_id)
    if body["issuer_id"]:
        check_scope(body["issuer_id"])
    job_id = ho.start_plan_render(session, services(), plan, issuer_id=body["issuer_id"], fmt=body["format"],
                                  data=body["data"], user=current_user())
    session.expire_all()
    return job_json(session.get(Job, job_id))


@blp.route("/handover/registrations", methods=["POST"])
@requires("handover.register")
@blp.arguments(RegistrationIn)
def create_registration(body):
    """A grade-7 registration at the receiving school, matched per DOMAIN §4.3."""
    session = db()
    check_scope(body["receiving_school_id"])
    school = session.get(Org, body["receiving_school_id"])
    if school is None:
        raise NotFound("接收学校不存在", fields={"receiving_school_id": "不存在"})
    result = ho.record_registration(session, receiving_school=school, id_number=body["id_number"],
                                    xueji_no=body["xueji_no"], name=body["name"], birth_date=body["birth_date"],
                                    registered_on=body["registered_on"], source=body["source"],
                                    actor=current_user())
    session.commit()
    if isinstance(result, HandoverRow):
        return {"status": "matched", "match_method": result.match_method, "row": ho.row_json(result)}, 201
    return {"status": result.status, "registration": ho.registration_json(result)}, 201


@blp.route("/handover/registrations/<int:registration_id>/confirm", methods=["POST"])
@requires("handover.register")
@blp.arguments(ConfirmIn)
def confirm_registration(body, registration_id: int):
    """A person confirms (or rejects) a name + birth-date match."""
    from cases.handover.models import Registration

    session = db()
    reg = session.get(Registration, registration_id)
    if reg is None:
        raise NotFound(f"报到记录 {registration_id} 不存在")
    check_scope(reg.org_id)
    reg = ho.confirm_registration(session, registration_id, accept=body["accept"], row_id=body["row_id"],
                                  actor=current_user())
    session.commit()
    return ho.registration_json(reg)


@blp.route("/handover/rows/<int:row_id>/whereabouts", methods=["POST"])
@requires("handover.register")
@blp.arguments(WhereaboutsIn)
def row_whereabouts(body, row_id: int):
    """Where a pupil who did not register is, with proof (e.g. 学籍转接证明)."""
    session = db()
    row = session.get(HandoverRow, row_id)
    if row is None:
        raise NotFound(f"交接表行 {row_id} 不存在")
    check_scope(row.entry.receiving_school_id)
    row = ho.set_whereabouts(session, row_id, whereabouts=body["whereabouts"], proof=body["proof"],
                             actor=current_user())
    session.commit()
    return ho.row_json(row)


@blp.route("/handover/plans/<int:plan_id>/close-window", methods=["POST"])
@requires("handover.manage")
@blp.arguments(CloseIn)
def close_window(body, plan_id: int):
    """After the registration period: non-arrivals -> ABSENT cases, sending schools notified."""
    session = db()
    plan = _plan(plan_id)
    result = ho.close_registration_window(session, plan, today=body["today"] or dt.date.today(),
                                          actor=current_user())
    session.commit()
    return result.to_json()


@blp.route("/handover/plans/<int:plan_id>/report")
@requires("handover.read")
@produces(JSON, XLSX, description="15日核查报告（JSON）；format=xlsx 时为 Excel 文件")
@query(("as_of", "date", False, "截至日期"), ("format", ["json", "xlsx"], False, "xlsx：下载 Excel"))
def report(plan_id: int):
    """The county's 15-day check report; ``?format=xlsx`` for the workbook, ``?as_of=`` a date."""
    session = db()
    plan = _plan(plan_id)
    county = session.get(Org, plan.org_id)
    data = ho.county_check_report(session, county, plan, as_of=_form_date("as_of") or dt.date.today())
    if request.args.get("format") == "xlsx":
        check_scope(plan.org_id, "ledger.export")
        log_export(plan.org_id, "handover_report", records=len(data["pairs"]),
                   fmt="xlsx", scope={"plan": plan.id, "as_of": data["as_of"]})
        session.commit()
        return send_file(io.BytesIO(ho.report_xlsx(data)), as_attachment=True,
                         mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                         download_name=f"handover-check-{plan.id}-{data['as_of']}.xlsx")
    return data
