"""Pages for returned copies (issue 11 items 4–5): upload several files (drag and drop, one request
per file so each shows its own progress), follow each reading job (polled with htmx), then per
page what document and page it was, what was read and what went to review; the review queue one
item at a time — the crop beside the proposed and the issued value, accept / correct / reject
with the keyboard, the next item swapped in by htmx without reloading the page.

The same service functions as the API (``cases.returns.intake``, ``queries``, ``review``); errors
are shown per file with its name and the reason, never as JSON."""

from __future__ import annotations

from flask import Blueprint, redirect, render_template, request, url_for
from sqlalchemy import func, select

from cases.returns import intake, queries
from cases.returns import review as review_svc
from cases.returns.models import ReturnPage, ReviewItem
from cases.store.models import Case, Document, Org, Pupil, Upload
from forms.errors import BaoxueError, ValidationFailed
from forms.registry import get_spec
from forms.spec import Kind
from forms.validators import format_date, format_datetime, parse_date, parse_datetime
from parsers.base import resolve_field
from web.auth import authorize_org, authorize_row, can, get_scoped, principal, requires, visible
from web.context import db
from web.context import services as _services
from web.messages import form_title
from web.pages import field_label, shown_value

bp = Blueprint("returnpages", __name__)


def _user() -> str:
    return principal().username


def _htmx() -> bool:
    return request.headers.get("HX-Request") == "true"


def _upload_orgs() -> list[Org]:
    q = select(Org).order_by(Org.path)
    cond = visible(Org, "upload.create")
    if cond is not None:
        q = q.where(cond)
    return list(db().scalars(q.where(Org.kind.in_(("school", "central_school", "township", "village", "county",
                                                    "education_bureau")))))


# ---- upload -----------------------------------------------------------------------------------------

@bp.route("/upload")
@requires("upload.create")
def upload_form():
    recent = db().scalars(_recent_uploads().limit(10)).all()
    return render_template("returns/upload.html", orgs=_upload_orgs(), recent=recent)


def _recent_uploads():
    q = select(Upload).where(Upload.uploaded_by == _user()).order_by(Upload.id.desc())
    return q


@bp.route("/upload", methods=["POST"])
@requires("upload.create")
def upload_files():
    """One or several files (``file``), the uploading unit (``org_id``). Each file is stored and
    read now (DOCX, digital PDF) or queued (scans, photos); a file that is refused says why beside
    its name and the others go on."""
    files = [f for f in request.files.getlist("file") if f and f.filename]
    org_id = request.form.get("org_id", "")
    errors = {}
    if not files:
        errors["file"] = "请选择要上传的文件"
    if not org_id.isdigit():
        errors["org_id"] = "请选择上传单位"
    if errors:
        raise ValidationFailed("请选择文件和上传单位", fields=errors)
    authorize_org(int(org_id))
    session = db()
    rows = []
    attach = bool(request.form.get("attach"))
    for f in files:
        try:
            out = intake.receive(session, _services(), filename=f.filename, data=f.read(), org_id=int(org_id),
                                 user=_user(), attach=attach, mime=f.mimetype,
                                 source_device=request.headers.get("User-Agent", "")[:100])
        except BaoxueError as e:
            session.rollback()
            rows.append({"filename": f.filename, "error": e.message})
            continue
        rows.append({"filename": out.get("filename", f.filename), "upload_id": out["upload_id"],
                     "note": out.get("filename_note")})
    status = 422 if all("error" in r for r in rows) else 200
    if _htmx():
        return render_template("returns/_upload_rows.html", rows=rows), status
    return render_template("returns/uploaded.html", rows=rows), status


def _outcome(upload_id: int) -> tuple[Upload, dict]:
    session = db()
    session.expire_all()
    u = get_scoped(Upload, upload_id, "上传")
    return u, queries.upload_outcome(session, upload_id)


def _pages_view(out: dict) -> list[dict]:
    """Each page read: which document and page, what was read (labels and values as printed),
    what went to review."""
    session = db()
    docs = {d.id: d for d in session.scalars(select(Document).where(
        Document.id.in_({p["document_id"] for p in out["pages"] if p["document_id"]})))}
    view = []
    for p in out["pages"]:
        doc = docs.get(p["document_id"])
        spec = get_spec(doc.form) if doc else None
        fields = []
        for path, r in p["fields"].items():
            fields.append({"label": field_label(spec, path), "value": shown_value(spec, path, r["value"]),
                           "review": r["decision"] == "review", "reason": r.get("reason")})
        view.append({**p, "doc": doc, "fields": fields})
    return view


@bp.route("/uploads/<int:upload_id>")
@requires("upload.read")
def upload_page(upload_id: int):
    u, out = _outcome(upload_id)
    return render_template("returns/upload_page.html", u=u, out=out, pages=_pages_view(out),
                           done=_finished(out))


def _finished(out: dict) -> bool:
    job = out.get("job")
    return out["status"] != "stored" or (job is not None and job["status"] in ("done", "failed"))


@bp.route("/uploads/<int:upload_id>/progress")
@requires("upload.read")
def upload_progress(upload_id: int):
    """The file's row while it is read (polled by htmx every second), then its per-page results."""
    u, out = _outcome(upload_id)
    return render_template("returns/_progress.html", u=u, out=out, pages=_pages_view(out), done=_finished(out))


# ---- review -----------------------------------------------------------------------------------------

def _open_items():
    q = select(ReviewItem).where(ReviewItem.status == "open").order_by(ReviewItem.id)
    cond = visible(ReviewItem, "review.read")
    return q.where(cond) if cond is not None else q


def _editable(f, value) -> str:
    """The proposed value as the clerk edits it: dates and times in the Chinese form the form
    accepts back (2026年12月3日10时00分), not the stored ISO text."""
    if value is None or isinstance(value, (bool, list)):
        return ""
    if f is not None and f.kind in (Kind.DATE, Kind.DATETIME):
        try:
            return (format_datetime(parse_datetime(value)) if f.kind == Kind.DATETIME
                    else format_date(parse_date(value)))
        except ValueError:
            pass
    return str(value)


def _item_view(item: ReviewItem) -> dict:
    session = db()
    doc = session.get(Document, item.document_id)
    spec = get_spec(doc.form)
    try:
        f = resolve_field(spec, item.field_path)[0]
    except KeyError:
        f = None
    proposed = (item.proposed or {}).get("value")
    issued = (item.recorded or {}).get("value") if item.recorded else None
    page = session.get(ReturnPage, item.page_id)
    case = session.get(Case, item.case_id) if item.case_id else None
    choices = [(c.code, c.label) for c in f.choices] if f is not None and f.kind in (Kind.CHOICE, Kind.MULTI) else []
    boolean = f is not None and f.kind in (Kind.BOOL, Kind.SIGNATURE, Kind.SEAL)
    kind = f.kind.value if f is not None else "text"
    return {"item": item, "doc": doc, "title": form_title(doc.form, doc.variant), "case": case, "page": page,
            "label": field_label(spec, item.field_path), "proposed": shown_value(spec, item.field_path, proposed),
            "issued": shown_value(spec, item.field_path, issued) if item.recorded else None,
            "raw": _editable(f, proposed),
            "choices": choices, "boolean": boolean, "kind": kind,
            "crop": url_for("scans.review_crop", item_id=item.id) if item.crop_path else None,
            "may_decide": can("review.decide")}


def _next_item(after: int | None = None) -> tuple[ReviewItem | None, int]:
    session = db()
    q = _open_items()
    total = session.scalar(select(func.count()).select_from(q.subquery()))
    if after is not None:
        item = session.scalar(q.where(ReviewItem.id > after).limit(1)) or session.scalar(q.limit(1))
    else:
        item = session.scalar(q.limit(1))
    return item, total


@bp.route("/review")
@requires("review.read")
def review():
    """The review queue, one item at a time (``?after=<id>`` skips to the next)."""
    after = request.args.get("after", "")
    item, total = _next_item(int(after) if after.isdigit() else None)
    ctx = {"view": _item_view(item) if item else None, "remaining": total}
    if _htmx():
        return render_template("returns/_review_item.html", **ctx)
    return render_template("returns/review.html", **ctx)


@bp.route("/review/<int:item_id>", methods=["POST"])
@requires("review.decide")
def decide(item_id: int):
    """Accept, correct or reject one item; answers the next item (htmx) or the queue page."""
    session = db()
    item = get_scoped(ReviewItem, item_id, "复核项")
    action = request.form.get("action", "")
    value = request.form.get("value")
    if action == "correct":
        view = _item_view(item)
        if view["boolean"]:
            value = {"true": True, "false": False}.get(value or "", None)
        elif view["kind"] == "multi":
            value = request.form.getlist("value")
    error, status = None, 200
    if item.status != "open":  # decided meanwhile (another person, another tab): say who and how
        from web.layout import person
        from web.messages import label

        how = label(item.status, "review_status")
        error, status = f"该项已由{person(item.decided_by)}处理（{how}），无需再处理", 409
        item_next, total = _next_item(item_id)
        ctx = {"view": _item_view(item_next) if item_next else None, "remaining": total, "error": error}
        if _htmx():
            return render_template("returns/_review_item.html", **ctx), status
        return render_template("returns/review.html", **ctx), status
    try:
        review_svc.decide(session, item_id, action=action, value=value, user=_user())
        session.commit()
    except BaoxueError as e:
        session.rollback()
        error = e.message + ("：" + "；".join(str(x) for x in e.fields.values()) if e.fields else "")
        status = e.http_status
    if error is not None:
        ctx = {"view": _item_view(session.get(ReviewItem, item_id)), "remaining": _next_item()[1], "error": error}
        if _htmx():
            return render_template("returns/_review_item.html", **ctx), status
        return render_template("returns/review.html", **ctx), status
    if _htmx():
        item, total = _next_item(item_id)
        return render_template("returns/_review_item.html", view=_item_view(item) if item else None,
                               remaining=total, decided=action)
    return redirect(url_for("returnpages.review", after=item_id))


# ---- unidentified pages -----------------------------------------------------------------------------

def _unidentified():
    q = select(ReturnPage).where(ReturnPage.status == "unidentified").order_by(ReturnPage.id)
    cond = visible(ReturnPage, "review.read")
    return q.where(cond) if cond is not None else q


@bp.route("/review/unidentified")
@requires("review.read")
def unidentified():
    """Pages no document was found for: the page image, and a search for the document by its number
    (文号) or the pupil's name to assign it to."""
    session = db()
    pages = session.scalars(_unidentified().limit(20)).all()
    uploads = {u.id: u for u in session.scalars(select(Upload).where(Upload.id.in_({p.upload_id for p in pages})))}
    q_text = (request.args.get("q") or "").strip()
    found = []
    if q_text:
        dq = (select(Document).join(Case, Case.id == Document.case_id, isouter=True)
              .where(Document.status == "issued").order_by(Document.created_at.desc()))
        dq = dq.join(Pupil, Pupil.id == Case.pupil_id, isouter=True).where(
            (Document.number_text.contains(q_text)) | (Pupil.name.contains(q_text)))
        cond = visible(Document, "document.read")
        found = session.scalars((dq.where(cond) if cond is not None else dq).limit(20)).all()
    return render_template("returns/unidentified.html", pages=pages, uploads=uploads, q=q_text, found=found,
                           page_id=request.args.get("page_id", ""), may_decide=can("review.decide"))


@bp.route("/review/pages/<int:page_id>.png")
@requires("review.read")
def page_image(page_id: int):
    """The page as uploaded (small), for a person to see which document it is."""
    import io

    from flask import send_file
    from PIL import Image

    from parsers.images import load_pages

    session = db()
    page = get_scoped(ReturnPage, page_id, "扫描页")
    u = session.get(Upload, page.upload_id)
    data = _services().store.read_bytes(u.stored_path)
    pages = load_pages(data, filename=u.original_filename)
    img = Image.fromarray(pages[page.page_index].pixels)
    img.thumbnail((700, 1000))
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    buf.seek(0)
    return send_file(buf, mimetype="image/png", max_age=3600)


@bp.route("/review/pages/<int:page_id>/assign", methods=["POST"])
@requires("review.decide")
def assign(page_id: int):
    session = db()
    get_scoped(ReturnPage, page_id, "扫描页")
    doc = session.get(Document, request.form.get("document_id", ""))
    raw_no = request.form.get("page_no", "")
    if doc is None or not raw_no.isdigit() or int(raw_no) < 1:
        raise ValidationFailed("请选择文书并填写页码",
                               fields={"document_id": "请从查找结果中选择", "page_no": "从1开始的页码"})
    authorize_row(doc, "document.read")
    intake.assign_page(session, _services(), page_id, document_id=doc.id, page_no=int(raw_no), user=_user())
    session.commit()
    return redirect(url_for("returnpages.unidentified"))
