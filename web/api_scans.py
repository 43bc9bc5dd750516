"""Returned documents API (DOMAIN §5.6), the same for every kind of return: upload scans and
photos, follow the job, review what a person must decide, assign unidentified pages, count
returned copies. (``POST /uploads`` in ``web.api`` takes every kind too, reading DOCX and digital
PDF in the request.)

* ``POST /scans`` (multipart ``file``, ``org_id``) -> 202 {job_id, upload_id} at once; the upload is
  stored before the answer and read by a background job, whatever its kind. ``GET /jobs/<id>``
  (foundation API) shows pages done / total.
* ``GET /scans/<upload_id>``: per-page outcome and per-document completeness.
* ``GET /review?org_id=&status=&upload_id=&document_id=&case_id=&kind=&reason=``: review items,
  paged, with their crop image URL;
  ``GET /review/<id>/crop.png``; ``POST /review/<id>`` {"action": "accept"|"correct"|"reject",
  "value": ...} records who and when.
* ``GET /scans/unidentified``; ``POST /scans/pages/<id>/assign`` {"document_id", "page_no"}.
* ``GET /returns?form=&issuer_id=&year=&variant=``: "N of M returned".
* ``GET /documents/<id>/geometry``: where every field, label, character box and tick box sits on
  each page of an issued document (PDF points, top-left), for integrators' own capture.
"""

from __future__ import annotations

import io

import marshmallow as ma
from flask import request, send_file, url_for
from flask_smorest import Blueprint

from cases.returns import geometry, intake, queries, review
from cases.returns.models import REVIEW_KINDS, ReturnPage, ReviewItem
from cases.store.models import Document, Org
from forms.errors import NotFound, ValidationFailed
from web.api import check_scope, current_user, db, int_arg, scope_org, services, uploaded_file
from web.auth import get_scoped, requires
from web.openapi import PAGE_QUERY, PNG, produces, query
from web.paging import paged, paged_list
from web.schemas import UploadForm

blp = Blueprint("scans", __name__, url_prefix="/api/v1", description="扫描件与照片识别、人工复核")


class DecisionIn(ma.Schema):
    action = ma.fields.String(required=True, validate=ma.validate.OneOf(["accept", "correct", "reject"]))
    value = ma.fields.Raw(allow_none=True, load_default=None)


class AssignIn(ma.Schema):
    document_id = ma.fields.String(required=True)
    page_no = ma.fields.Integer(required=True, validate=ma.validate.Range(min=1))


def _item_json(it: ReviewItem) -> dict:
    return {"id": it.id, "document_id": it.document_id, "case_id": it.case_id, "upload_id": it.upload_id,
            "page_id": it.page_id, "field_path": it.field_path, "kind": it.kind,
            "proposed": (it.proposed or {}).get("value"),
            "recorded": (it.recorded or {}).get("value") if it.recorded else None,
            "text": it.text, "confidence": it.confidence, "reason": it.reason, "status": it.status,
            "decided_by": it.decided_by, "decided_at": it.decided_at.isoformat() if it.decided_at else None,
            "decision": it.decision, "org_id": it.org_id,
            "crop_url": url_for("scans.review_crop", item_id=it.id) if it.crop_path else None}


def _page_json(p: ReturnPage) -> dict:
    return {"id": p.id, "upload_id": p.upload_id, "index": p.page_index, "status": p.status,
            "reason": p.reason, "document_id": p.document_id, "org_id": p.org_id,
            "assign_url": url_for("scans.assign_page", page_id=p.id)}


@blp.route("/scans", methods=["POST"])
@requires("upload.create")
@blp.doc(requestBody={"content": {"multipart/form-data": {"schema": UploadForm}}})
def upload_scan():
    """Upload a scan or photo (PNG, JPEG, TIFF, image-only PDF; many pages of several documents in
    any order and rotation). Answers 202 with the job id at once; the file is stored first."""
    filename, data, org_id = uploaded_file("扫描件")
    out = intake.receive(db(), services(), filename=filename, data=data, org_id=org_id, user=current_user(),
                         source_device=request.headers.get("User-Agent", "")[:100], background=True)
    out["links"] = {"job": url_for("api.job_status", job_id=out["job_id"]),
                    "scan": url_for("scans.scan_outcome", upload_id=out["upload_id"])}
    return out, 202


@blp.route("/scans/<int:upload_id>")
@requires("upload.read")
def scan_outcome(upload_id: int):
    """Per-page outcome of a scan upload: identified document, status, reason, fields read."""
    session = db()
    session.expire_all()
    out = queries.upload_outcome(session, upload_id)
    check_scope(out["org_id"])
    return out


@blp.route("/scans/unidentified")
@requires("review.read")
@query(*PAGE_QUERY)
def unidentified_pages():
    """Pages no document could be found for, with the reason, for a person to assign (paged)."""
    return paged_list(queries.list_unidentified(db(), scope_org()), _page_json)


@blp.route("/scans/pages/<int:page_id>/assign", methods=["POST"])
@requires("review.decide")
@blp.arguments(AssignIn)
def assign_page(body, page_id: int):
    """Say which document and page an unidentified page is; it is then read like the others."""
    page = db().get(ReturnPage, page_id)
    if page is None:
        raise NotFound(f"扫描页 {page_id} 不存在")
    check_scope(page.org_id)
    row = intake.assign_page(db(), services(), page_id, document_id=body["document_id"], page_no=body["page_no"],
                            user=current_user())
    return {"id": row.id, "status": row.status, "document_id": row.document_id, "page_no": row.page_no,
            "reason": row.reason}


@blp.route("/review")
@requires("review.read")
@query(("org_id", "int", False, "机构（含下级），默认为当前用户的范围"),
       ("status", ["open", "accepted", "corrected", "rejected", "all"], False, "默认 open"),
       ("upload_id", "int", False, "上传"), ("document_id", "str", False, "文书编号"),
       ("case_id", "int", False, "案件"),
       ("kind", list(REVIEW_KINDS), False, "复核类型"), ("reason", "str", False, "原因中的文字"),
       ("field", "str", False, "字段路径的一部分"), *PAGE_QUERY)
def review_list():
    """Review queue, paged (``limit``, ``offset``, ``next``), oldest first. Filters: ``org_id``
    (default: the caller's scope), ``status`` (open — the default —, accepted, corrected, rejected,
    all), ``upload_id``, ``document_id``, ``case_id``, ``kind`` (low_confidence, invalid, ambiguous,
    tamper, confirm, discrepancy), ``reason`` (a part of the reason text), ``field`` (a part of
    the field path)."""
    args = request.args
    org = scope_org()
    if args.get("org_id"):
        org_id = int_arg("org_id")
        check_scope(org_id)
        org = db().get(Org, org_id)
        if org is None:
            raise NotFound(f"机构 {org_id} 不存在", fields={"org_id": "不存在"})
    q = review.review_query(org, status=args.get("status", "open"),
                            upload_id=int_arg("upload_id") if args.get("upload_id") else None,
                            document_id=args.get("document_id") or None,
                            case_id=int_arg("case_id") if args.get("case_id") else None,
                            kind=args.get("kind"), reason=args.get("reason") or None,
                            field=args.get("field") or None)
    return paged(db(), q, _item_json)


def _item(item_id: int) -> ReviewItem:
    return get_scoped(ReviewItem, item_id, "复核项")


@blp.route("/review/<int:item_id>/crop.png")
@requires("review.read")
@produces(PNG, description="读取该值的图像区域（PNG）")
def review_crop(item_id: int):
    """The image region the value was read from."""
    it = _item(item_id)
    if not it.crop_path:
        raise NotFound(f"复核项 {item_id} 没有图像")
    data = services().store.read_bytes(it.crop_path)
    return send_file(io.BytesIO(data), mimetype="image/png", download_name=f"review-{item_id}.png")


@blp.route("/review/<int:item_id>", methods=["POST"])
@requires("review.decide")
@blp.arguments(DecisionIn)
def review_decide(body, item_id: int):
    """Accept the proposed value, correct it, or reject it; records who and when. When the last
    open item of a returned document is decided, the document is applied to its case."""
    _item(item_id)
    it = review.decide(db(), item_id, action=body["action"], value=body.get("value"),
                      user=current_user())
    return _item_json(it)


@blp.route("/returns")
@requires("document.read")
@query(("form", "str", True, "表单代码"), ("issuer_id", "int", True, "签发机构"),
       ("year", "int", False, "年份"), ("variant", "str", False, "变体代码"))
def returns_count():
    """"N of M returned": ``form``, ``issuer_id``, optional ``year`` and ``variant``."""
    args = request.args
    missing = {k: v for k, v in (("form", "必填"), ("issuer_id", "必填，整数")) if not args.get(k)}
    if missing:
        raise ValidationFailed("缺少参数", fields=missing)
    issuer_id = int_arg("issuer_id")
    check_scope(issuer_id)
    year = int_arg("year") if "year" in args else None
    return queries.returned_count(db(), form=args["form"], issuer_id=issuer_id, year=year,
                                variant=args.get("variant") or None)


@blp.route("/documents/<doc_id>/geometry")
@requires("document.read")
def document_geometry(doc_id: str):
    """Per page of an issued document: part, size, QR square, table outlines, and for every field
    its value box, label box, Chinese label, kind, limits, printed character boxes (one digit each,
    grouped) and tick boxes with the choice each stands for. Boxes ``[x0, top, x1, bottom]`` in PDF
    points, origin top-left."""
    doc = get_scoped(Document, doc_id, "文书")
    if not doc.geometry or not (doc.geometry.get("pages") or []):
        raise NotFound(f"文书 {doc.number_text or doc.id} 没有版面记录（未生成 PDF）",
                       fields={"doc_id": "没有 PDF 版面"})
    store = services().store
    pdf = store.read_bytes(store.relpath_for(doc.pdf_sha256, ".pdf")) if doc.pdf_sha256 else None
    return geometry.document_geometry(doc, pdf)
