"""Pages for pupils and cases (issue 11 items 2–3): search pupils (name, pinyin initials, 学籍号,
the tail of the ID number), class rosters, the case page (state, the engine's allowed next actions
as buttons with the reason a blocked one is refused, timeline, deadlines with working-day
countdowns, persuasion attempts, service of notices, referrals, closure with its evidence
checklist) and issuing a document from the case (the API's prefill; only missing fields asked; a
warning before a second document of the same kind).

Every page goes through the one access policy (``@requires``; the case touched is checked with
``authorize_row``) and calls the same service functions as the API (``cases.engine.casework``,
``cases.documents``) — never the HTTP API, never its own copy of engine logic."""

from __future__ import annotations

import datetime as dt
import functools
import re

from flask import Blueprint, abort, redirect, render_template, request, url_for
from sqlalchemy import func, or_, select

from cases.accounts.scope import target_of
from cases.documents import issuing as svc
from cases.documents.prefill import complete_data, data_from_case, default_issuer
from cases.engine import casework as engine
from cases.engine import workflow
from cases.engine.closure import EVIDENCE_KINDS, OUTCOMES, evidence_sets
from cases.engine.models import Deadline, Evidence, Referral
from cases.store.models import Case, Document, Org, Pupil, SchoolClass
from forms import codes
from forms import validators as v
from forms.errors import BaoxueError, InvalidTransition, ValidationFailed
from forms.registry import all_specs, get_spec
from forms.spec import Filled, Kind
from web.auth import authorize_org, can, get_scoped, principal, requires, visible
from web.context import db
from web.context import services as _services
from web.messages import cdate, form_title, shown
from web.pages import form_data
from web.workqueue import countdown

bp = Blueprint("casepages", __name__)

PAGE_SIZE = 50


def _user() -> str:
    return principal().username


def _case(case_id: int, action: str | None = None) -> Case:
    return get_scoped(Case, case_id, "案件", action)


def _may(action: str, row) -> bool:
    return can(action, target_of(db(), row))


# ---- pupils ----------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=20000)
def initials(name: str) -> str:
    """Pinyin initials of a Chinese name (王小明 → wxm), every reading of a polyphonic character."""
    from pypinyin import Style, pinyin

    readings = pinyin(name, style=Style.FIRST_LETTER, heteronym=True, errors="ignore")
    out = [""]
    for options in readings:
        out = [o + r[:1].lower() for o in out for r in dict.fromkeys(options)][:16]
    return "|".join(out)


def search_pupils(q_text: str, class_id: int | None = None, limit: int = PAGE_SIZE) -> tuple[list[Pupil], int]:
    """Pupils in scope matching ``q_text``: part of the name, pinyin initials (ASCII letters), the
    学籍号 (or its end), the last 4–6 characters of the ID number. Returns (page, total)."""
    session = db()
    q = select(Pupil).order_by(Pupil.class_id, Pupil.name, Pupil.id)
    cond = visible(Pupil, "pupil.read")
    if cond is not None:
        q = q.where(cond)
    if class_id is not None:
        q = q.where(Pupil.class_id == class_id)
    text = (q_text or "").strip()
    if text:
        if re.fullmatch(r"[A-Za-z]{1,8}", text):
            wanted = text.lower()
            ids = [pid for pid, name in session.execute(q.with_only_columns(Pupil.id, Pupil.name))
                   if any(r.startswith(wanted) for r in initials(name).split("|"))]
            q = q.where(Pupil.id.in_(ids))
        elif re.fullmatch(r"[0-9Xx]{4,6}", text):
            q = q.where(or_(Pupil.id_number.endswith(text.upper()), Pupil.xueji_no.endswith(text.upper())))
        elif re.fullmatch(r"[Gg]?[0-9Xx]{7,19}", text):
            q = q.where(Pupil.xueji_no.contains(text.upper()))
        else:
            q = q.where(Pupil.name.contains(text))
    total = session.scalar(select(func.count()).select_from(q.subquery()))
    return list(session.scalars(q.limit(limit))), total


def _classes() -> list[tuple[Org, SchoolClass, int]]:
    """Classes of the schools in scope with their pupil counts (for the rosters)."""
    session = db()
    q = (select(Org, SchoolClass, func.count(Pupil.id)).join(SchoolClass, SchoolClass.org_id == Org.id)
         .join(Pupil, Pupil.class_id == SchoolClass.id).group_by(Org.id, SchoolClass.id)
         .order_by(Org.path, SchoolClass.grade, SchoolClass.name))
    cond = visible(Pupil, "pupil.read")
    if cond is not None:
        q = q.where(cond)
    return list(session.execute(q).all())


def class_label(klass: SchoolClass | None) -> str:
    if klass is None:
        return "—"
    grade = dict((c.code, c.label) for c in codes.GRADES).get(str(klass.grade), f"{klass.grade}年级")
    return klass.name if klass.name.startswith(grade) else f"{grade}{klass.name}"


@bp.route("/pupils")
@requires("pupil.read")
def pupils():
    """Search pupils; without a search, the class rosters of the schools in scope."""
    session = db()
    q_text = request.args.get("q", "")
    raw_class = request.args.get("class_id", "")
    klass = session.get(SchoolClass, int(raw_class)) if raw_class.isdigit() else None
    if raw_class and klass is None:
        abort(404, description=f"班级 {raw_class} 不存在")
    found, total = (search_pupils(q_text, klass.id if klass else None) if (q_text or klass) else ([], 0))
    if klass is not None and total == 0:
        # a class none of whose pupils the user may see: refused unless the school is in scope (an
        # empty class); a village or a department sees the class's pupils it may see, like the roster
        authorize_org(klass.org_id)
    open_cases = {}
    if found:
        for c in session.scalars(select(Case).where(Case.pupil_id.in_([p.id for p in found]),
                                                    Case.state != "CLOSED")):
            open_cases[c.pupil_id] = c
    return render_template("cases/pupils.html", q=q_text, klass=klass, pupils=found, total=total,
                           classes=[] if (q_text or klass) else _classes(), open_cases=open_cases,
                           class_label=class_label, mask=v.mask_id,
                           school=session.get(Org, klass.org_id) if klass else None)


@bp.route("/pupils/<int:pupil_id>")
@requires("pupil.read")
def pupil_page(pupil_id: int):
    session = db()
    p = get_scoped(Pupil, pupil_id, "学生")
    cases = session.scalars(select(Case).where(Case.pupil_id == p.id).order_by(Case.episode)).all()
    return render_template("cases/pupil.html", p=p, cases=[c for c in cases if _may("case.read", c)],
                           school=session.get(Org, p.org_id), class_label=class_label, mask=v.mask_id,
                           may_open=_may("case.create", p) and not any(c.state != "CLOSED" for c in cases))


@bp.route("/pupils/<int:pupil_id>/cases", methods=["POST"])
@requires("case.create")
def open_case(pupil_id: int):
    """Open a case for the pupil (T1: 登记无故缺勤), from the date absence began."""
    session = db()
    p = get_scoped(Pupil, pupil_id, "学生")
    day = _form_date("opened_on", required=True)
    reason = request.form.get("reason_code") or None
    if session.scalar(select(Case.id).where(Case.pupil_id == p.id, Case.state != "CLOSED")):
        raise ValidationFailed("该学生已有未销号的案件", fields={"pupil_id": "已有在办案件"})
    case = engine.open_case(session, p, reason_code=reason, opened_on=day, actor=_user())
    session.commit()
    return redirect(url_for("casepages.case_page", case_id=case.id))


# ---- cases -----------------------------------------------------------------------------------------

@bp.route("/cases")
@requires("case.read")
def cases():
    """Cases in scope, by state; search by the pupil's name."""
    session = db()
    q = select(Case, Pupil).join(Pupil, Pupil.id == Case.pupil_id).order_by(Case.opened_on.desc(), Case.id.desc())
    cond = visible(Case, "case.read")
    if cond is not None:
        q = q.where(cond)
    state = request.args.get("state", "open")
    if state == "open":
        q = q.where(Case.state != "CLOSED")
    elif state in workflow.STATES:
        q = q.where(Case.state == state)
    name = request.args.get("q", "").strip()
    if name:
        q = q.where(Pupil.name.contains(name))
    total = session.scalar(select(func.count()).select_from(q.subquery()))
    rows = session.execute(q.limit(200)).all()
    schools = {o.id: o for o in session.scalars(select(Org).where(Org.id.in_({c.org_id for c, _ in rows})))}
    return render_template("cases/cases.html", rows=rows, total=total, state=state, q=name, schools=schools,
                           states=workflow.STATES)


def _event_text(e) -> str:
    """One line of the timeline in words."""
    data = e.data or {}
    if e.kind == "transition":
        text = workflow.TRANSITIONS_BY_CODE[e.transition].label if e.transition in workflow.TRANSITIONS_BY_CODE \
            else "状态变更"
        return f"{text}（{workflow.STATES.get(e.from_state, '—')} → {workflow.STATES.get(e.to_state, '—')}）"
    if e.kind == "opened":
        return f"立案（{workflow.STATES.get(e.to_state, '—')}）"
    if e.kind == "attempt":
        methods = {c.code: c.label for c in codes.ATTEMPT_METHODS}
        results = {c.code: c.label for c in codes.ATTEMPT_RESULTS}
        return (f"劝返：{methods.get(data.get('method'), '')}，{results.get(data.get('result'), '')}；"
                f"人员：{data.get('persons') or '—'}" + (f"；地点：{data['place']}" if data.get("place") else ""))
    if e.kind == "service":
        methods = {c.code: c.label for c in codes.SERVICE_METHODS}
        return (f"通知书送达（{methods.get(data.get('method'), '')}），送达日期 {_cn(data.get('served_on'))}"
                + ("" if data.get("complete") else "，回证不完整"))
    if e.kind == "receipt":
        return f"报告单签收，签收日期 {_cn(data.get('received_on'))}"
    if e.kind == "evidence":
        return f"销号材料：{EVIDENCE_KINDS.get(data.get('kind'), '材料')}"
    if e.kind == "referral":
        partners = {c.code: c.label for c in codes.PARTNER_DEPARTMENTS}
        return f"部门函件：致{partners.get(data.get('to_department'), '部门')}"
    if e.kind == "facts":
        return "登记案件情况"
    if e.kind == "document_returned":
        return "回收文书已应用到案件"
    if e.kind == "registration":
        return "整班移交报到"
    if e.kind == "document":
        return "生成文书"
    return "记录"


def _cn(value) -> str:
    return cdate(value)


def timeline(session, case: Case) -> list[dict]:
    """Events and documents of the case, oldest first."""
    items = [{"at": e.occurred_at, "what": _event_text(e), "who": e.actor, "kind": e.kind} for e in case.events]
    for d in session.scalars(select(Document).where(Document.case_id == case.id)):
        items.append({"at": d.created_at, "what": f"生成{form_title(d.form, d.variant)}", "who": d.created_by,
                      "kind": "document", "doc": d})
    items.sort(key=lambda x: (x["at"].replace(tzinfo=None) if x["at"] else dt.datetime.min))
    return items


def _closure_checklists(session, case: Case) -> list[dict]:
    """For each closure outcome reachable from the current state: its evidence checklist."""
    profile = engine.case_profile(case)
    have = engine.evidence_items(session, case)
    out = []
    for outcome, reqs in evidence_sets(profile).items():
        if not any(t.outcome == outcome and case.state in t.sources and t.applies_to(profile)
                   for t in workflow.TRANSITIONS):
            continue
        rows = []
        for req in reqs:
            options = []
            for option in req.options:
                needs = []
                for need in option:
                    items = [i for i in have if i.kind == need.kind]
                    verified = [i for i in items if i.verified]
                    needs.append({"kind": need.kind, "label": EVIDENCE_KINDS[need.kind], "min": need.min_count,
                                  "have": len(items), "verified": len(verified),
                                  "met": len(verified) >= need.min_count})
                options.append(needs)
            rows.append({"label": req.label, "options": options,
                         "met": any(all(n["met"] for n in opt) for opt in options)})
        from cases.engine.closure import check_closure

        check = check_closure(outcome, have, profile)
        out.append({"outcome": outcome, "label": OUTCOMES[outcome], "rows": rows, "ok": check.ok,
                    "missing": check.missing})
    return out


@bp.route("/cases/<int:case_id>")
@requires("case.read")
def case_page(case_id: int):
    return _render_case(_case(case_id))


def _render_case(case: Case, errors: dict | None = None, message: str | None = None, form: str | None = None,
                 status: int = 200):
    session = db()
    today = engine.china_date(None)
    holidays = engine.holiday_tables(session)
    acts = engine.actions(session, case, today=today)
    closing = {t.code for t in workflow.TRANSITIONS if t.outcome}
    deadlines = session.scalars(select(Deadline).where(Deadline.case_id == case.id).order_by(Deadline.id)).all()
    dl_rows = [{"d": d, "countdown": countdown(d.due_on, today, holidays) if d.status in ("open", "breached")
                else None} for d in deadlines]
    docs = session.scalars(select(Document).where(Document.case_id == case.id)
                           .order_by(Document.created_at)).all()
    services_ = [e for e in case.events if e.kind == "service"]
    service_deadlines = [d for d in deadlines if d.start_event == "service"]
    refs_q = select(Referral).where(Referral.case_id == case.id).order_by(Referral.id)
    cond = visible(Referral, "case.read")
    refs = session.scalars(refs_q.where(cond) if cond is not None else refs_q).all()
    evidence = session.scalars(select(Evidence).where(Evidence.case_id == case.id).order_by(Evidence.id)).all()
    may_act = _may("case.act", case)
    issue_forms = _issue_choices() if _may("document.issue", case) else []
    return render_template(
        "cases/case.html", case=case, pupil=case.pupil, school=session.get(Org, case.pupil.org_id),
        class_label=class_label, mask=v.mask_id, acts=acts, closing=closing, deadlines=dl_rows, docs=docs,
        services=services_, service_deadlines=service_deadlines, referrals=refs, evidence=evidence,
        attempts=engine.attempts_of(session, case), attempts_check=engine.attempts_check(session, case, today=today),
        checklists=_closure_checklists(session, case) if case.state != "CLOSED" else [],
        timeline=timeline(session, case), today=today, may_act=may_act,
        may_close=_may("case.close", case), may_refer=_may("case.refer", case),
        may_verify=_may("evidence.verify", case), issue_forms=issue_forms,
        notices=[d for d in docs if d.form == "guardian_notice" and d.status == "issued"],
        attempt_methods=codes.ATTEMPT_METHODS, attempt_results=codes.ATTEMPT_RESULTS,
        partners=codes.PARTNER_DEPARTMENTS, service_methods=codes.SERVICE_METHODS,
        evidence_kinds=EVIDENCE_KINDS, placements=codes.PLACEMENTS, errors=errors or {}, message=message,
        error_form=form, values=request.form if form else {}), status


def _issue_choices() -> list[tuple[str, str | None, str]]:
    """(form, variant, title) of every form a case can prefill (not the batch-only 交接表/统计表)."""
    out = []
    for spec in all_specs().values():
        if spec.code in ("handover", "quarterly_stats", "responsibility"):
            continue
        for var in spec.variants or [None]:
            out.append((spec.code, var.code if var else None, form_title(spec.code, var.code if var else None)))
    return out


def _form_date(key: str, required: bool = False) -> dt.date | None:
    raw = (request.form.get(key) or "").strip()
    if not raw:
        if required:
            raise ValidationFailed("请填写日期", fields={key: "必填"})
        return None
    try:
        return dt.date.fromisoformat(raw)
    except ValueError:
        raise ValidationFailed("日期格式错误", fields={key: "应为年-月-日"}) from None


def _back(case: Case, anchor: str = ""):
    return redirect(url_for("casepages.case_page", case_id=case.id) + (f"#{anchor}" if anchor else ""))


@bp.route("/cases/<int:case_id>/act", methods=["POST"])
@requires("case.act")
def take_action(case_id: int):
    """One of the engine's transitions (button on the case page); a refused one answers a page
    naming the reason (409), nothing changed."""
    session = db()
    case = _case(case_id)
    code = request.form.get("code", "")
    if code not in workflow.TRANSITIONS_BY_CODE:
        raise ValidationFailed("请选择要办理的事项", fields={"code": "未知事项"})
    if workflow.TRANSITIONS_BY_CODE[code].outcome:
        raise ValidationFailed("销号请在“销号”一栏办理（需核实证明材料）", fields={"code": "销号"})
    note = (request.form.get("note") or "").strip()[:500]
    return _run(case, "state", lambda: engine.apply_action(
        session, case, code, actor=_user(), data={"note": note} if note else {},
        occurred_at=_form_date("occurred_on")))


@bp.route("/cases/<int:case_id>/attempts", methods=["POST"])
@requires("case.act")
def add_attempt(case_id: int):
    session = db()
    case = _case(case_id)
    f = request.form
    raw = {k: f.get(k) for k in ("date", "method", "result", "persons", "place", "statements", "next_step", "time")}
    raw["partners"] = f.getlist("partners")
    return _run(case, "attempts", lambda: engine.record_attempt(session, case, raw, actor=_user()))


@bp.route("/cases/<int:case_id>/service", methods=["POST"])
@requires("case.act")
def add_service(case_id: int):
    """Record by hand that a notice was served (when the 回证 is not uploaded)."""
    session = db()
    case = _case(case_id)
    doc = session.get(Document, request.form.get("document_id", ""))

    def record():
        if doc is None or doc.case_id != case.id:
            raise ValidationFailed("请选择本案的通知书", fields={"document_id": "不是本案的文书"})
        engine.record_service(session, case, document_id=doc.id, served_on=_form_date("served_on", required=True),
                              method=request.form.get("method", ""), complete=bool(request.form.get("complete")),
                              actor=_user())

    return _run(case, "deadlines", record)


@bp.route("/cases/<int:case_id>/referrals", methods=["POST"])
@requires("case.refer")
def add_referral(case_id: int):
    session = db()
    case = _case(case_id)
    return _run(case, "referrals", lambda: engine.create_referral(
        session, case, to_department=request.form.get("to_department", ""),
        reason=(request.form.get("reason") or "").strip(),
        sent_on=_form_date("sent_on") or engine.china_date(None), actor=_user(),
        request=(request.form.get("request") or "").strip() or None))


@bp.route("/cases/<int:case_id>/evidence", methods=["POST"])
@requires("case.act")
def add_evidence(case_id: int):
    session = db()
    case = _case(case_id)
    f = request.form
    return _run(case, "closure", lambda: engine.attach_evidence(
        session, case, kind=f.get("kind", ""), actor=_user(), value=f.get("value") or None,
        issuer=f.get("issuer") or None, partners=f.getlist("partners") or None,
        note=(f.get("note") or "").strip() or None))


@bp.route("/evidence/<int:evidence_id>/verify", methods=["POST"])
@requires("evidence.verify")
def verify_evidence(evidence_id: int):
    session = db()
    ev = get_scoped(Evidence, evidence_id, "证明材料")
    engine.verify_evidence(session, ev, by=_user())
    session.commit()
    return _back(session.get(Case, ev.case_id), "closure")


@bp.route("/cases/<int:case_id>/close", methods=["POST"])
@requires("case.close")
def close_case(case_id: int):
    session = db()
    case = _case(case_id)
    return _run(case, "closure", lambda: engine.close_case(
        session, case, request.form.get("outcome", ""), actor=_user(), occurred_at=_form_date("occurred_on")))


def _run(case: Case, form: str, action):
    """Do ``action`` and commit, then back to the case page at ``form``; refused or invalid input:
    nothing is kept and the case page answers again with the reason beside that form."""
    session = db()
    try:
        action()
    except BaoxueError as e:
        session.rollback()
        session.expire_all()
        return _case_with_errors(session.get(Case, case.id), form, e)
    session.commit()
    return _back(case, form)


def _case_with_errors(case: Case, form: str, e: BaoxueError):
    """The case page again with the errors beside the fields of the form the user posted; what was
    typed is kept. A refused transition is told in words (the engine's message names codes)."""
    message = e.message
    details = getattr(e, "details", None) or {}
    if isinstance(e, InvalidTransition) and details.get("current_state_label") and details.get("reason"):
        what = workflow.TRANSITIONS_BY_CODE.get(details.get("action", ""))
        message = (f"当前状态为“{details['current_state_label']}”，不能办理"
                   f"{'“' + what.label + '”' if what else '此事项'}：{details['reason']}")
    return _render_case(case, errors=e.fields, message=message, form=form, status=e.http_status)


# ---- issuing documents from the case ----------------------------------------------------------------

def _ask_fields(spec, data: dict) -> list:
    """Fields a person fills before printing that the case could not prefill."""
    out = []
    for f in spec.fields:
        if f.filled == Filled.SYSTEM or f.kind in (Kind.SIGNATURE, Kind.SEAL):
            continue
        if f.name in data and data[f.name] not in (None, "", []):
            continue
        if f.filled == Filled.HAND and not f.required:
            continue
        out.append(f)
    return out


def _prefilled_rows(spec, data: dict) -> list[tuple[str, str]]:
    rows = []
    for f in spec.fields:
        if f.name not in data or f.filled == Filled.SYSTEM and f.name not in ("issuer_name",):
            continue
        value = data[f.name]
        if f.kind == Kind.TABLE:
            value = f"{len(value)}条（来自本案记录）" if isinstance(value, list) else value
        elif f.kind in (Kind.ID_NUMBER, Kind.XUEJI_NO):
            value = v.mask_id(value)
        elif f.kind == Kind.DATE:
            value = cdate(value)
        elif f.kind in (Kind.CHOICE, Kind.MULTI):
            items = value if isinstance(value, list) else [value]
            value = "、".join(f.choice_label(c) if c in {x.code for x in f.choices} else str(c) for c in items)
        rows.append((f.label, shown(value)))
    return rows


@bp.route("/cases/<int:case_id>/issue", methods=["GET", "POST"])
@requires("document.issue")
def issue(case_id: int):
    """Issue a form for the case: prefilled from the case record like ``POST /api/v1/cases/<id>/documents``,
    only the missing fields asked; a second document of the same kind needs a confirmation."""
    session = db()
    case = _case(case_id)
    spec = get_spec(request.values.get("form", ""))
    var = spec.variant(request.values.get("variant") or None) if spec.variants else None
    issuer_id = default_issuer(session, case, spec, var)
    issuer = session.get(Org, issuer_id)
    prefill = data_from_case(session, case, spec, var)
    shown_data = complete_data(spec, var, prefill, profile=svc.profile_name(session, issuer, _services()),
                               issued_on=engine.china_date(None), issuer=issuer)
    ask = _ask_fields(spec, shown_data)
    earlier = session.scalars(select(Document).where(
        Document.case_id == case.id, Document.form == spec.code, Document.status == "issued",
        Document.variant == (var.code if var else None) if var else Document.variant.is_(None))
        .order_by(Document.created_at)).all()
    errors, message, status = {}, None, 200
    if request.method == "POST":
        authorize_org(issuer_id)
        if earlier and not request.form.get("confirm_again"):
            errors["confirm_again"] = "请确认确实需要再生成一份"
            message = f"本案已有{len(earlier)}份{form_title(spec.code, var.code if var else None)}，请确认后再生成"
            status = 409
        else:
            data = {**prefill, **form_data(ask, spare_rows=3)}
            try:
                doc = svc.issue_document(session, _services(), form=spec.code, variant=var.code if var else None,
                                         issuer_id=issuer_id, case_id=case.id, data=data, user=_user(),
                                         want_pdf=True)
            except ValidationFailed as e:
                session.rollback()
                errors, message, status = e.fields, e.message, 422
            else:
                return redirect(url_for("pages.document_page", doc_id=doc.id))
    return render_template("cases/issue.html", case=case, spec=spec, var=var, issuer=issuer,
                           prefilled=_prefilled_rows(spec, shown_data), ask=ask, earlier=earlier,
                           values=request.form, errors=errors, message=message, Kind=Kind,
                           title=form_title(spec.code, var.code if var else None)), status


# ---- documents --------------------------------------------------------------------------------------

@bp.route("/documents")
@requires("document.read")
def documents():
    """Documents in scope (``?form=&variant=&org_id=``), newest first, with whether each came back."""
    from cases.returns.models import DocumentReturn

    session = db()
    q = select(Document).order_by(Document.created_at.desc())
    cond = visible(Document, "document.read")
    if cond is not None:
        q = q.where(cond)
    args = request.args
    if args.get("form"):
        q = q.where(Document.form == args["form"])
    if args.get("variant"):
        q = q.where(Document.variant == args["variant"])
    if (args.get("org_id") or "").isdigit():
        q = q.where(Document.org_id == int(args["org_id"]))
    total = session.scalar(select(func.count()).select_from(q.subquery()))
    docs = session.scalars(q.limit(200)).all()
    returned = set(session.scalars(select(DocumentReturn.document_id).where(
        DocumentReturn.document_id.in_([d.id for d in docs]), DocumentReturn.complete.is_(True),
        DocumentReturn.status == "applied"))) if docs else set()
    # came back in part: a page the form returns is still missing (nothing applied yet)
    partial = set(session.scalars(select(DocumentReturn.document_id).where(
        DocumentReturn.document_id.in_([d.id for d in docs]), DocumentReturn.status == "partial"))) - returned \
        if docs else set()
    cases_ = {c.id: c for c in session.scalars(select(Case).where(Case.id.in_({d.case_id for d in docs if d.case_id})))}
    # the pupil's name links to the case only for who may open it (县政府 reads documents, not cases)
    linked = {c.id for c in cases_.values() if _may("case.read", c)}
    return render_template("cases/documents.html", docs=docs, total=total, returned=returned,
                           partial=partial, cases=cases_,
                           linked=linked)
