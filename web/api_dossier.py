"""Case dossier API (/api/v1): the 卷宗 PDF/A of a case, its verification, the closed-loop checks
per case and per jurisdiction, inspector sampling and dossier batches. Every route declares its
action (``@requires``) and checks the case or node it touches; every download is logged as an
export."""

from __future__ import annotations

import io
from urllib.parse import quote

from flask import request, send_file
from flask_smorest import Blueprint

from cases.dossier.build import build_dossier
from cases.dossier.verify import verify_dossier
from cases.store import audit
from cases.store.models import Case
from forms.errors import ValidationFailed
from web.api import current_user, db, get_scoped
from web.auth import authorize_row, log_export, requires
from web.context import services
from web.openapi import PDF, produces

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
