"""The auditor's pages (issue 11 item 8, DOMAIN §8.1–8.3): read-only, everything in scope — every
document including voided ones (with the reason and who voided it), the audit log, and per case
its full history (events, documents, log entries) with the dossier download when the dossier
service is installed; and a random sample of N cases per township, reproducible from its seed,
for the inspection (§8.2 抽查). Nothing on these pages changes a record."""

from __future__ import annotations

from collections import defaultdict

from flask import Blueprint, redirect, render_template, request, url_for
from sqlalchemy import or_, select

from cases.dossier import sampling
from cases.dossier.models import InspectionSample
from cases.engine import workflow
from cases.store.models import AuditLog, Case, Document, Org, Pupil
from forms.errors import ValidationFailed
from web.auth import authorize_org, authorize_row, can, get_scoped, principal, requires, visible
from web.context import db
from web.pages_cases import timeline
from web.pages_ledgers import people
from web.workqueue import page_url

bp = Blueprint("auditpages", __name__, url_prefix="/audit")

MAX_SAMPLE = 20
# Chinese names of the audit log's actions (the codes written by ``cases.store.audit.record``).
AUDIT_ACTIONS = {
    "case.create": "立案", "case.facts": "登记案件情况", "case.attempt": "劝返记录", "case.service": "送达",
    "case.dropout_confirmed": "辍学认定", "case.transition": "案件流转", "document.issue": "生成文书",
    "document.void": "作废文书", "document.returned": "回收文书",
    "document.render_failed": "文书生成失败", "document.print_full_id": "打印完整身份证号",
    "evidence.attach": "上传销号材料", "evidence.verify": "核实销号材料", "referral.create": "部门发函",
    "referral.reply": "部门回复", "pupil.create": "登记学生", "pupil.unmask": "查看完整身份证号",
    "unmask": "查看完整身份证号", "return.upload": "上传回收件", "upload.attach": "上传附件",
    "scan.assign": "指定扫描页", "handover.plan": "移交方案", "handover.roster": "导入花名册",
    "handover.registration": "报到登记", "handover.registration.confirm": "确认报到匹配",
    "handover.whereabouts": "登记去向", "handover.tick": "交接表勾选", "handover.notify": "通报移交学校",
    "ledger.file": "台账归档", "ledger.correct": "台账更正", "inspection.finding": "督导意见",
    "holidays.load": "载入节假日", "profile.install": "安装地区配置", "org.create": "新建机构",
    "user.create": "开设账号",
    "user.disable": "停用账号", "user.roles": "修改角色", "user.password": "修改密码", "user.login": "登录",
    "user.totp_on": "开启两步验证", "user.totp_off": "关闭两步验证", "token.create": "创建令牌",
    "token.revoke": "吊销令牌", "export": "导出", "notify.channel.create": "新建通知渠道",
    "notify.channel.update": "修改通知渠道", "demo.load": "载入演示数据",
}


def action_label(code: str) -> str:
    return AUDIT_ACTIONS.get(code) or AUDIT_ACTIONS.get(code.split(".")[0] + "." + code.split(".")[-1]) or "其他操作"


def _scoped(q, model, action: str):
    cond = visible(model, action)
    return q.where(cond) if cond is not None else q


def _log_in_scope(q):
    """Audit entries of the user's subtree (the whole log for an account of the installation)."""
    p = principal()
    if p.org_path is None:
        return q
    sub = select(Org.id).where(Org.path.startswith(p.org_path))
    return q.where(AuditLog.org_id.in_(sub))


@bp.route("")
@requires("audit.read")
def index():
    session = db()
    voided = list(session.scalars(_scoped(select(Document).where(Document.status == "void")
                                          .order_by(Document.created_at.desc()).limit(50), Document, "document.read")))
    void_by = {}
    if voided:
        for e in session.scalars(select(AuditLog).where(AuditLog.action == "document.void", AuditLog.target.in_(
                [f"document:{d.id}" for d in voided]))):
            void_by[e.target.split(":", 1)[1]] = e
    log = list(session.scalars(_log_in_scope(select(AuditLog).order_by(AuditLog.seq.desc()).limit(50))))
    states = defaultdict(int)
    for (state,) in session.execute(_scoped(select(Case.state), Case, "case.read")):
        states[state] += 1
    who = people([e.who for e in log] + [e.who for e in void_by.values()])
    return render_template("audit/index.html", voided=voided, void_by=void_by, log=log, who=who,
                           states=dict(states), state_labels=dict(workflow.STATES), action_label=action_label,
                           townships=_townships(), max_sample=MAX_SAMPLE, can_sample=can("inspection.sample"),
                           samples=list(session.scalars(_scoped(select(InspectionSample).order_by(
                               InspectionSample.id.desc()).limit(20), InspectionSample, "case.read"))))


def _townships() -> list[Org]:
    return list(db().scalars(_scoped(select(Org).where(Org.kind == "township").order_by(Org.path), Org, "case.read")))


def _sample_org() -> Org:
    """The node a sample is drawn in: the one the form names (in scope), else the user's own node."""
    raw = (request.form.get("org_id") or "").strip()
    org_id = int(raw) if raw.isdigit() and len(raw) < 12 else principal().org_id
    org = db().get(Org, org_id) if org_id is not None else None
    if org is None:
        raise ValidationFailed("请选择抽样的县或乡镇", fields={"org_id": "必选"})
    authorize_org(org.id)
    return org


@bp.route("/samples", methods=["POST"])
@requires("inspection.sample")
def sample_create():
    """Draw N cases at random per township through the one sampling service (the same as
    ``POST /api/v1/samples``): seed, population and draw stored and audited, then shown."""
    raw = (request.form.get("n") or "").strip()
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_SAMPLE:
        raise ValidationFailed(f"每个乡镇抽取的案件数应为1—{MAX_SAMPLE}", fields={"n": f"1—{MAX_SAMPLE}"})
    seed = (request.form.get("seed") or "").strip() or None
    session = db()
    sample = sampling.draw_sample(session, _sample_org(), int(raw), user=principal().username, seed=seed,
                                  purpose=(request.form.get("purpose") or "").strip() or None)
    session.commit()
    return redirect(url_for("auditpages.sample_view", sample_id=sample.id), code=303)


@bp.route("/samples/<int:sample_id>")
@requires("case.read")
def sample_view(sample_id: int):
    """A stored sample: its seed, population per township and the cases drawn, with the check that
    drawing again from the seed gives the same cases."""
    session = db()
    sample = sampling.get_sample(session, sample_id)
    authorize_row(sample)
    check = sampling.reproduce(session, sample)
    towns = {str(o.id): o for o in session.scalars(select(Org).where(
        Org.id.in_([int(t) for t in sample.population])))}
    drawn = [i for ids in sample.drawn.values() for i in ids]
    rows = {c.id: (c, p) for c, p in session.execute(
        select(Case, Pupil).join(Pupil, Pupil.id == Case.pupil_id).where(Case.id.in_(drawn)))}
    groups = [{"town": towns.get(t), "total": len(ids),
               "cases": [rows[i] for i in sorted(sample.drawn.get(t, [])) if i in rows]}
              for t, ids in sorted(sample.population.items(), key=lambda kv: towns[kv[0]].path
                                   if kv[0] in towns else "~")]
    return render_template("audit/sample.html", sample=sample, groups=groups, check=check,
                           state_labels=dict(workflow.STATES),
                           dossier=lambda cid: page_url("dossier.case_dossier", case_id=cid))


@bp.route("/cases/<int:case_id>")
@requires("case.read")
def case_history(case_id: int):
    session = db()
    case = get_scoped(Case, case_id, "案件")
    pupil = session.get(Pupil, case.pupil_id)
    docs = list(session.scalars(select(Document).where(Document.case_id == case.id).order_by(Document.created_at)))
    targets = [f"case:{case.id}", *(f"document:{d.id}" for d in docs)]
    log = list(session.scalars(select(AuditLog).where(or_(AuditLog.target.in_(targets),
                                                          AuditLog.target.like(f"case:{case.id}:%")))
                               .order_by(AuditLog.seq)))
    items = timeline(session, case)
    who = people([e.who for e in log] + [i.get("who") for i in items] + [d.created_by for d in docs])
    return render_template("audit/case.html", case=case, pupil=pupil, docs=docs, log=log, items=items, who=who,
                           state_labels=dict(workflow.STATES), action_label=action_label,
                           dossier=page_url("dossier.case_dossier", case_id=case.id),
                           case_page=page_url("casepages.case_page", case_id=case.id))
