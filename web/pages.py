"""HTML pages for clerks: pick a form, fill it in (the input form is generated from the spec),
download DOCX/PDF, upload a returned copy and see what was read and what changed. Login required
and the same policy as the API: every page declares its action (``@requires``), lists show only
what the user may see, and the issuer and uploading unit lists only the units within reach."""

from __future__ import annotations

import re

from flask import Blueprint, redirect, render_template, request, url_for
from sqlalchemy import select

from cases.accounts.scope import target_of
from cases.documents import issuing as svc
from cases.returns import queries
from cases.store.models import Document, Org
from forms.errors import ValidationFailed
from forms.registry import all_specs, get_spec
from forms.spec import Filled, Kind
from parsers.base import resolve_field
from web import messages
from web.auth import authorize_org, can, get_scoped, principal, requires, visible
from web.context import db as _db
from web.context import services as _services

pages = Blueprint("pages", __name__)


def _user() -> str:
    return principal().username


def _orgs(action: str, *conditions) -> list[Org]:
    """Units the user may ``action`` (issuer choices, uploading units)."""
    q = select(Org).where(*conditions).order_by(Org.path)
    cond = visible(Org, action)
    if cond is not None:
        q = q.where(cond)
    return list(_db().scalars(q))


# ---- showing a returned copy in words (labels from the spec, no codes on the page) ----------------------

def field_label(spec, path: str) -> str:
    """The printed label of a field path (table cells as 表名第N行·列名); never the code."""
    if spec is None:
        return messages.field_label(path)
    try:
        f, name, row, _col = resolve_field(spec, path)
    except KeyError:
        return messages.field_label(path)
    return f"{spec.field(name).label}第{row + 1}行·{f.label}" if row is not None else f.label


def shown_value(spec, path: str, value) -> str:
    """A read value as a person writes it: 有/无 for marks, choice labels, dates as read."""
    if value is None or value == "" or value == []:
        return ""
    if isinstance(value, bool):
        return "有" if value else "无"
    if spec is None:
        return str(value)
    try:
        f = resolve_field(spec, path)[0]
    except KeyError:
        return str(value)
    if isinstance(value, str) and f.kind in (Kind.CHOICE, Kind.MULTI, Kind.BOOL) and _TICKS.fullmatch(value):
        return _tick_text(f, value)
    if f.kind in (Kind.CHOICE, Kind.MULTI):
        codes = value if isinstance(value, list) else [value]
        return "、".join(f.choice_label(c) if c in {x.code for x in f.choices} else str(c) for c in codes)
    return str(value).replace("T", " ") if f.kind == Kind.DATETIME else str(value)


# What the scan reader saw in a field's tick boxes, one ``code:state`` per box (``男:ticked,女:empty``).
_TICKS = re.compile(r"[\w.-]+:(?:ticked|empty|ambiguous)(?:,[\w.-]+:(?:ticked|empty|ambiguous))*")


def _tick_text(f, value: str) -> str:
    """The boxes a reader saw, as a person says it: 勾选“男” / 未见勾选; unclear boxes named."""
    def name(code: str) -> str:
        if f.kind == Kind.BOOL:
            return {"Y": "是", "N": "否"}.get(code, code)
        return f.choice_label(code) if code in {c.code for c in f.choices} else code

    boxes = [part.rsplit(":", 1) for part in value.split(",")]
    ticked = [name(c) for c, state in boxes if state == "ticked"]
    unclear = [name(c) for c, state in boxes if state == "ambiguous"]
    text = ("勾选" + "、".join(f"“{t}”" for t in ticked)) if ticked else "未见勾选"
    if unclear:
        text += "；看不清：" + "、".join(f"“{t}”" for t in unclear)
    return text


def _return_view(spec) -> dict:
    return {"label": lambda path: field_label(spec, path), "shown": lambda path, v: shown_value(spec, path, v)}


@pages.route("/forms")
@requires("forms.read")
def forms():
    """The forms, the upload form, and the latest documents the user may see."""
    session = _db()
    docs = None
    if can("document.read"):
        q = select(Document).order_by(Document.created_at.desc()).limit(20)
        cond = visible(Document, "document.read")
        docs = session.scalars(q.where(cond) if cond is not None else q).all()
    orgs = _orgs("upload.create") if can("upload.create") else []
    return render_template("forms.html", specs=list(all_specs().values()), docs=docs, orgs=orgs,
                           may_issue=can("document.issue"))


@pages.route("/")
@requires("forms.read")
def index():
    """Home after login: the work queue of the user's role and scope (``web.workqueue``)."""
    from web.workqueue import work_queue

    return render_template("index.html", queue=work_queue())


def _form_rows(spec, variant_code):
    """Fields the user types before printing (INPUT, plus HAND fields that may be prefilled)."""
    out = []
    for f in spec.fields:
        if f.filled == Filled.SYSTEM or f.kind in (Kind.SIGNATURE, Kind.SEAL):
            continue
        out.append(f)
    return out


def form_data(fields, spare_rows: int) -> dict:
    """Turn the posted HTML form back into spec data for ``fields`` (tables as
    ``name-<row>-<col>``; a table is read up to ``spare_rows`` rows past its minimum, the blank
    rows the page offers to add to it)."""
    data: dict = {}
    for f in fields:
        if f.kind == Kind.TABLE:
            rows = []
            for i in range(max(f.min_rows, 1) + spare_rows):
                row = {c.name: request.form.get(f"{f.name}-{i}-{c.name}", "").strip() for c in f.columns}
                if any(row.values()):
                    rows.append(row)
            if rows:
                data[f.name] = rows
        elif f.kind == Kind.MULTI:
            values = request.form.getlist(f.name)
            if values:
                data[f.name] = values
        else:
            value = request.form.get(f.name, "").strip()
            if value:
                data[f.name] = value
    return data


@pages.route("/forms/<code>", methods=["GET", "POST"])
@requires(GET="forms.read", POST="document.issue")
def fill_form(code: str):
    spec = get_spec(code)
    session = _db()
    orgs = _orgs("document.issue", Org.doc_prefix.is_not(None)) if can("document.issue") else []
    variant = request.values.get("variant") or (spec.variants[0].code if spec.variants else None)
    errors: dict = {}
    message = None
    status = 200
    if request.method == "POST":
        data = form_data(spec.fields, spare_rows=5)
        issuer = request.form.get("issuer_id", "")
        try:
            if not issuer.isdigit():
                raise ValidationFailed("请选择签发机构", fields={"issuer_id": "必填"})
            authorize_org(int(issuer))
            doc = svc.issue_document(session, _services(), form=spec.code, variant=variant,
                                     issuer_id=int(issuer), data=data, user=_user(),
                                     want_pdf=request.form.get("format", "pdf") == "pdf")
            return redirect(url_for("pages.document_page", doc_id=doc.id))
        except ValidationFailed as e:
            errors, message, status = e.fields, e.message, 422
    return render_template("form.html", spec=spec, variant=variant, fields=_form_rows(spec, variant),
                           values=request.form, errors=errors, message=message, orgs=orgs,
                           Kind=Kind), status


@pages.route("/documents/<doc_id>")
@requires("document.read")
def document_page(doc_id: str):
    session = _db()
    doc = get_scoped(Document, doc_id, "文书")
    history = queries.document_history(session, doc)
    spec = get_spec(doc.form)
    case_link = doc.case is not None and can("case.read", target_of(session, doc.case))
    return render_template("document.html", doc=doc, spec=spec, history=history, case_link=case_link,
                           **_return_view(spec))


@pages.route("/documents/<doc_id>/pages/<int:page_no>.png")
@requires("document.read")
def document_preview(doc_id: str, page_no: int):
    """One page of the issued PDF as a small PNG for the preview in the page (rendered by the one
    PDF rasteriser; a preview of a page printing a full ID number is logged like a download)."""
    import io

    from flask import send_file
    from PIL import Image

    from parsers.images import render_pdf

    session = _db()
    doc = get_scoped(Document, doc_id, "文书")
    data = svc.document_file(_services(), doc, "pdf", session=session, who=_user())
    session.commit()
    pixels = render_pdf(data, dpi=60, pages=[page_no], name=doc.number_text or "PDF")[0]
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG", optimize=True)
    buf.seek(0)
    response = send_file(buf, mimetype="image/png", max_age=3600)
    return response
