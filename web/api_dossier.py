"""Case dossier API (/api/v1): the 卷宗 PDF/A of a case, its verification, the closed-loop checks
per case and per jurisdiction, inspector sampling and dossier batches. Every route declares its
action (``@requires``) and checks the case or node it touches; every download is logged as an
export."""

from __future__ import annotations

import io
from urllib.parse import quote

from flask import request, send_file
from flask_smorest import Blueprint
from sqlalchemy import select

from cases.dossier import checks as chk
from cases.dossier import sampling
from cases.dossier.build import build_dossier
from cases.dossier.casefile import load_case_file
from cases.dossier.models import InspectionSample
from cases.dossier.verify import verify_dossier
from cases.store import audit
from cases.store.models import Case, Org
from forms.errors import NotFound, ValidationFailed
from web.api import check_scope, current_user, db, json_body, scope_org, scoped
from web.auth import authorize_row, get_scoped, log_export, requires
from web.context import services
from web.openapi import PAGE_QUERY, PDF, paged_response, produces, query
from web.paging import int_arg, paged

blp = Blueprint("dossier", __name__, url_prefix="/api/v1", description="个案卷宗、核验、闭环核查、督查抽样")


def _attachment(data: bytes, mimetype: str, filename: str):
    resp = send_file(io.BytesIO(data), mimetype=mimetype, as_attachment=True, download_name=filename)
    resp.headers["Content-Disposition"] = f"attachment; filename*=UTF-8''{quote(filename)}"
    return resp


@blp.route("/cases/<int:case_id>/dossier.pdf")
@requires("dossier.read")
@produces(PDF, description="案卷（PDF/A）")
def case_dossier(case_id: int):
    """The case dossier (卷宗) as one PDF/A file: cover (pupil masked), 目录 with page numbers, the
    thirteen closed-loop items of DOMAIN §8.3 with issued PDFs and returned copies, "缺失" lines,
    the closed-loop check results, a manifest page and the signed manifest attached. Logged as an
    export. ``?validate=1`` also runs the PDF/A validator on the written file (slower)."""
    session = db()
    case = get_scoped(Case, case_id, "案件")
    validate = request.args.get("validate", "").lower() in {"1", "true", "yes"}
    dossier = build_dossier(session, services(), case, generated_by=current_user(), validate=validate)
    log_export(case.org_id, "dossier", records=1, fmt="pdf",
               scope={"case": case.id, "files": len(dossier.manifest["files"]), "pages": dossier.manifest["pages"]})
    session.commit()
    return _attachment(dossier.pdf, "application/pdf", dossier.filename)


@blp.route("/dossiers/verify", methods=["POST"])
@requires("dossier.verify")
@blp.doc(requestBody={"content": {"multipart/form-data": {"schema": {
    "type": "object", "properties": {"file": {"type": "string", "format": "binary"}}}}}})
def verify_upload():
    """Verify a dossier file an auditor holds (multipart ``file``): the manifest's signature, every
    page, every listed original against the store. 200 with ``ok`` and each ``problem`` named (a
    file that fails verification is an answer, not an error); 422 without a file."""
    f = request.files.get("file")
    if f is None or not f.filename:
        raise ValidationFailed("请选择要核验的卷宗 PDF 文件", fields={"file": "必填"})
    data = f.read()
    keys = services().qr_keys
    result = verify_dossier(db(), services().store, data, secret=keys.current, retired=tuple(keys.retired))
    case_id = (result.case or {}).get("id")
    if case_id is not None and db().get(Case, case_id) is not None:
        authorize_row(db().get(Case, case_id))  # verifying names the case's originals: in scope only
    audit.record(db(), who=current_user(), org=None, action="dossier.verify", target=f"case:{case_id}",
                 after={"ok": result.ok, "problems": len(result.problems), "file": f.filename[:100]})
    db().commit()
    return result.as_json()


# ---- closed-loop checks ---------------------------------------------------------------------------

@blp.route("/cases/<int:case_id>/checks")
@requires("case.read")
def case_checks(case_id: int):
    """The closed-loop consistency findings of one case (DOMAIN §8.3), each naming the rule."""
    session = db()
    case = get_scoped(Case, case_id, "案件")
    findings = chk.run_checks(session, load_case_file(session, case))
    return {"case_id": case.id, "case_number": case.number, "findings": [f.as_json() for f in findings],
            "rules": [{"rule": r, "label": label} for r, label in chk.RULES.items()]}


def _org_arg() -> Org:
    raw = request.args.get("org_id", "")
    org = db().get(Org, int(raw)) if raw.isdigit() else scope_org()
    if org is None:
        raise ValidationFailed("需要 org_id（或 X-Baoxue-Org）", fields={"org_id": "必填，机构编号"})
    check_scope(org.id)
    return org


@blp.route("/checks")
@requires("dossier.read")
def jurisdiction_checks():
    """The closed-loop findings of every case of a node (``?org_id=``; ``format=xlsx`` for the
    worksheet). Each finding names the case and the rule; the XLSX download is logged as an export."""
    session = db()
    org = _org_arg()
    findings = chk.jurisdiction_checks(session, org)
    if request.args.get("format") == "xlsx":
        log_export(org.id, "checks", records=len(findings), fmt="xlsx", scope={"org": org.id})
        session.commit()
        return _attachment(chk.report_xlsx(org, findings),
                           "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                           f"闭环核查-{org.name}.xlsx")
    return chk.report_json(org, findings)


# ---- inspector sampling ---------------------------------------------------------------------------

@blp.route("/samples", methods=["POST"])
@requires("inspection.sample")
def create_sample():
    """Draw N cases at random per township of ``org_id``: {"org_id", "per_township", "seed"?,
    "purpose"?}. The seed (made when not given), the population and the draw are stored and audited."""
    body = json_body()
    raw = body.get("org_id")
    org = db().get(Org, raw) if isinstance(raw, int) else None
    if org is None:
        raise ValidationFailed("抽样机构不存在", fields={"org_id": "必填，机构编号"})
    check_scope(org.id)
    sample = sampling.draw_sample(db(), org, body.get("per_township"), user=current_user(), seed=body.get("seed"),
                                  purpose=body.get("purpose"))
    db().commit()
    return sampling.sample_json(db(), sample), 201


@blp.route("/samples")
@requires("dossier.read")
@paged_response("Sample", "督查抽样，每件同 GET /samples/{sample_id}")
@query(("org_id", "int", False, "抽样的机构（含下级）"),
       ("township_id", "int", False, "乡镇：抽样范围包括该乡镇的抽样"), *PAGE_QUERY)
def list_samples():
    """Inspector samples the user may see, newest first, each as ``GET /samples/<id>`` answers it."""
    session = db()
    q = scoped(select(InspectionSample).order_by(InspectionSample.id.desc()), InspectionSample)
    if request.args.get("township_id"):
        township = session.get(Org, int_arg("township_id"))
        if township is None or township.kind != "township":
            raise NotFound("乡镇不存在", fields={"township_id": "不是乡镇的编号"})
        # drawn over the township: at the township itself or at a node above it
        q = q.where(InspectionSample.org_id.in_(township.ancestor_ids))
    return paged(session, q, lambda sample: sampling.sample_json(session, sample))


def _sample(sample_id: int):
    sample = sampling.get_sample(db(), sample_id)
    authorize_row(sample)
    return sample


@blp.route("/samples/<int:sample_id>")
@requires("dossier.read")
def get_sample(sample_id: int):
    """A stored sample: seed, population per township, the cases drawn."""
    return sampling.sample_json(db(), _sample(sample_id))


@blp.route("/samples/<int:sample_id>/reproduce")
@requires("dossier.read")
def reproduce_sample(sample_id: int):
    """Draw the sample again from its seed and check the population against the database."""
    return sampling.reproduce(db(), _sample(sample_id))


@blp.route("/dossiers/batch", methods=["POST"])
@requires("dossier.read")
def dossier_batch():
    """The dossiers of every case of a node (``{"org_id"}``, e.g. a township) or of an inspector
    sample (``{"sample_id"}``) as one ZIP: 202 with the job; poll ``/jobs/<id>``, download its result
    (logged as an export)."""
    from cases.dossier import jobs as dossier_jobs
    from web.api import job_json

    body = json_body()
    session = db()
    if isinstance(body.get("sample_id"), int):
        sample = _sample(body["sample_id"])
        ids, org_id, label = dossier_jobs.cases_of_sample(sample), sample.org_id, f"抽样 {sample.id}"
    elif isinstance(body.get("org_id"), int) and session.get(Org, body["org_id"]) is not None:
        org = session.get(Org, body["org_id"])
        check_scope(org.id)
        ids, org_id, label = dossier_jobs.cases_of_org(session, org), org.id, org.name
    else:
        raise ValidationFailed("需要 org_id 或 sample_id", fields={"org_id": "机构编号", "sample_id": "抽样编号"})
    job_id = dossier_jobs.submit_batch(session, services(), ids, user=current_user(), org_id=org_id, label=label)
    from cases.store.models import Job

    return job_json(session.get(Job, job_id)), 202
