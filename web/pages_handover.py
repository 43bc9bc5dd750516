"""Pages of 整班移交 (issue 11 item 6, DOMAIN §4): the plans of one's county, a new plan from a
CSV/XLSX, and per plan: the roster import with its rejected rows shown by row number and reason,
the 交接表 batch with its progress (htmx polling), registrations at the receiving schools and the
name + birth-date matches to confirm, the whereabouts of non-arrivals, closing the registration
window, and the county's 15-day check report (XLSX from the API)."""

from __future__ import annotations

import datetime as dt

from flask import Blueprint, redirect, render_template, request, url_for
from sqlalchemy import select

from cases.accounts.policy import Target
from cases.handover import plans as ho
from cases.handover.models import HandoverEntry, HandoverPlan, HandoverRow, Registration
from cases.store.models import Job, Org
from forms import validators as v
from forms.codes import HANDOVER_WHEREABOUTS
from forms.errors import NotFound, ValidationFailed
from web.auth import authorize_org, can, get_scoped, principal, requires, visible
from web.context import db
from web.context import services as _services

bp = Blueprint("handoverpages", __name__, url_prefix="/handover")

ROSTER_HEADINGS = {k: labels[0] for k, labels in ho.ROSTER_COLUMNS.items()}


def _date(name: str, *, required: bool = False) -> dt.date | None:
    raw = (request.form.get(name) or request.args.get(name) or "").strip()
    if not raw:
        if required:
            raise ValidationFailed("请填写日期", fields={name: "必填"})
        return None
    try:
        return v.parse_date(raw)
    except ValueError:
        raise ValidationFailed(f"“{raw}”不是有效日期", fields={name: "日期格式：2026-09-01"}) from None


def _user() -> str:
    return principal().username


def _orgs(action: str, *kinds: str) -> list[Org]:
    q = select(Org).where(Org.kind.in_(kinds)).order_by(Org.path)
    cond = visible(Org, action)
    if cond is not None:
        q = q.where(cond)
    return list(db().scalars(q))


def _plan(plan_id: int, action: str | None = None) -> HandoverPlan:
    plan = ho.get_plan(db(), plan_id)
    authorize_org(plan.org_id, action)
    return plan


def _pending_in_scope() -> list[Registration]:
    q = select(Registration).where(Registration.status == "pending").order_by(Registration.id)
    cond = visible(Registration, "handover.register")
    if cond is not None:
        q = q.where(cond)
    return list(db().scalars(q))


def _rows_by_id(ids) -> dict[int, HandoverRow]:
    ids = [i for i in ids if i]
    return {r.id: r for r in db().scalars(select(HandoverRow).where(HandoverRow.id.in_(ids)))} if ids else {}


@bp.route("")
@requires("handover.read")
def index():
    q = select(HandoverPlan).order_by(HandoverPlan.year.desc(), HandoverPlan.id.desc())
    cond = visible(HandoverPlan)
    if cond is not None:
        q = q.where(cond)
    plans = list(db().scalars(q))
    counties = _orgs("handover.manage", "county") if can("handover.manage") else []
    schools = _orgs("handover.register", "school") if can("handover.register") else []
    pending = _pending_in_scope() if can("handover.register") else []
    return render_template("handover/index.html", plans=plans, counties=counties, schools=schools,
                           pending=pending, rows=_rows_by_id(r.candidate_row_id for r in pending),
                           year=dt.date.today().year, result=None)


@bp.route("/plans", methods=["POST"])
@requires("handover.manage")
def create_plan():
    f = request.files.get("file")
    if f is None or not f.filename:
        raise ValidationFailed("请选择移交方案文件（CSV 或 XLSX）", fields={"file": "必填"})
    county_id = request.form.get("county_id", "")
    year = request.form.get("year", "")
    if not county_id.isdigit() or not year.isdigit():
        raise ValidationFailed("请选择县并填写年份", fields={"county_id": "必填", "year": "必填"})
    authorize_org(int(county_id))
    session = db()
    plan = ho.import_plan_table(session, county_id=int(county_id), year=int(year), filename=f.filename,
                                data=f.read(), window_end=_date("window_end"), term_start=_date("term_start"),
                                actor=_user())
    session.commit()
    return redirect(url_for("handoverpages.plan", plan_id=plan.id, created=1))


def _plan_page(plan: HandoverPlan, **extra):
    session = db()
    entries = ho.plan_json(session, plan)["entries"]
    rows = {e.id: list(e.rows) for e in plan.entries}
    pending = ho.registrations_of(session, plan, "pending")
    unexpected = ho.registrations_of(session, plan, "unexpected")
    job = session.get(Job, extra.pop("job_id")) if extra.get("job_id") else None
    today = dt.date.today()
    report = ho.county_check_report(session, session.get(Org, plan.org_id), plan, as_of=today)
    target = Target.org(session.get(Org, plan.org_id).path)
    receiving = session.scalars(select(Org).where(Org.id.in_({e.receiving_school_id for e in plan.entries}))
                                .order_by(Org.name)).all()
    return render_template(
        "handover/plan.html", plan=plan, entries=entries, rows=rows, pending=pending, unexpected=unexpected,
        candidates=_rows_by_id(r.candidate_row_id for r in pending), job=job, report=report, today=today,
        whereabouts=HANDOVER_WHEREABOUTS, headings=ROSTER_HEADINGS,
        may_manage=can("handover.manage", target), may_register=can("handover.register"),
        reg_schools=[o for o in receiving if can("handover.register", Target.org(o.path))],
        **extra)


@bp.route("/plans/<int:plan_id>")
@requires("handover.read")
def plan(plan_id: int):
    return _plan_page(_plan(plan_id), created=request.args.get("created") == "1",
                      job_id=request.args.get("job"), closed=None, roster=None,
                      registered=request.args.get("registered"))


@bp.route("/plans/<int:plan_id>/roster", methods=["POST"])
@requires("handover.manage")
def roster(plan_id: int):
    p = _plan(plan_id)
    f = request.files.get("file")
    if f is None or not f.filename:
        raise ValidationFailed("请选择花名册文件（CSV 或 XLSX）", fields={"file": "必填"})
    session = db()
    result = ho.import_roster(session, p, filename=f.filename, data=f.read(), actor=_user())
    session.commit()
    return _plan_page(p, roster={"filename": f.filename, **result.to_json()}, created=False, job_id=None,
                      closed=None, registered=None)


@bp.route("/plans/<int:plan_id>/render", methods=["POST"])
@requires("handover.manage")
def render(plan_id: int):
    p = _plan(plan_id)
    session = db()
    job_id = ho.start_plan_render(session, _services(), p, fmt=request.form.get("format") or "pdf", user=_user())
    return redirect(url_for("handoverpages.plan", plan_id=p.id, job=job_id) + "#batch")


@bp.route("/jobs/<job_id>")
@requires("job.read")
def job_progress(job_id: str):
    """The 交接表 batch's progress (an htmx fragment polled every second until the job ends)."""
    session = db()
    session.expire_all()
    job = get_scoped(Job, job_id, "任务")
    return render_template("handover/_job.html", job=job)


@bp.route("/registrations", methods=["POST"])
@requires("handover.register")
def register():
    school_id = request.form.get("receiving_school_id", "")
    if not school_id.isdigit():
        raise ValidationFailed("请选择接收学校", fields={"receiving_school_id": "必填"})
    authorize_org(int(school_id))
    session = db()
    school = session.get(Org, int(school_id))
    if school is None:
        raise NotFound("接收学校不存在", fields={"receiving_school_id": "不存在"})
    form = {k: (request.form.get(k) or "").strip() or None for k in ("id_number", "xueji_no", "name")}
    result = ho.record_registration(session, receiving_school=school, birth_date=_date("birth_date"),
                                    registered_on=_date("registered_on", required=True), source="manual",
                                    actor=_user(), **form)
    session.commit()
    if isinstance(result, HandoverRow):
        msg = ("matched", result.pupil.name)
    else:
        msg = (result.status, result.name or "")
    back = request.form.get("plan_id", "")
    if back.isdigit():
        return redirect(url_for("handoverpages.plan", plan_id=int(back), registered=msg[0], who=msg[1])
                        + "#registrations")
    return redirect(url_for("handoverpages.index", registered=msg[0], who=msg[1]))


@bp.route("/registrations/<int:registration_id>/confirm", methods=["POST"])
@requires("handover.register")
def confirm(registration_id: int):
    session = db()
    reg = session.get(Registration, registration_id)
    if reg is None:
        raise NotFound(f"报到记录 {registration_id} 不存在")
    authorize_org(reg.org_id)
    ho.confirm_registration(session, registration_id, accept=request.form.get("accept") == "1", actor=_user())
    session.commit()
    back = request.form.get("plan_id", "")
    if back.isdigit():
        return redirect(url_for("handoverpages.plan", plan_id=int(back)) + "#registrations")
    return redirect(url_for("handoverpages.index"))


@bp.route("/rows/<int:row_id>/whereabouts", methods=["POST"])
@requires("handover.register")
def whereabouts(row_id: int):
    session = db()
    row = session.get(HandoverRow, row_id)
    if row is None:
        raise NotFound(f"交接表行 {row_id} 不存在")
    entry = session.get(HandoverEntry, row.entry_id)
    authorize_org(entry.receiving_school_id)
    code = request.form.get("whereabouts") or ""
    if code not in {c.code for c in HANDOVER_WHEREABOUTS}:
        raise ValidationFailed("请选择去向", fields={"whereabouts": "必选"})
    ho.set_whereabouts(session, row_id, whereabouts=code, proof=(request.form.get("proof") or "").strip() or None,
                       actor=_user())
    session.commit()
    return redirect(url_for("handoverpages.plan", plan_id=entry.plan_id) + f"#row-{row_id}")


@bp.route("/plans/<int:plan_id>/close", methods=["POST"])
@requires("handover.manage")
def close(plan_id: int):
    p = _plan(plan_id)
    session = db()
    result = ho.close_registration_window(session, p, today=dt.date.today(), actor=_user())
    session.commit()
    return _plan_page(p, closed=result.to_json(), created=False, job_id=None, roster=None, registered=None)
