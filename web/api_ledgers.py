"""Ledger, indicator and quarterly-report endpoints (DOMAIN §6) under /api/v1.

- ``GET /ledgers/<kind>?org_id=&as_of=&limit=&offset=`` JSON rows (paginated) and the aggregate;
  ``&format=xlsx`` the whole ledger as XLSX (``&unmask=1`` full ID numbers, logged).
- ``POST /ledgers/<kind>/snapshots`` file (freeze) a snapshot; ``GET /ledgers/snapshots/<id>``
  (``?verify=1`` re-runs it and compares hashes); ``POST /ledgers/snapshots/<id>/corrections`` 更正.
- ``GET /indicators?org_id=&year=`` the §6.4 indicators with pass/fail.
- ``GET /reports/quarterly?org_id=&year=&quarter=`` the 统计表 figures (``&format=xlsx``);
  ``POST /reports/quarterly/render`` issues the 统计表 as DOCX/PDF through ``issue_document``.
"""

from __future__ import annotations

import datetime as dt
import io

from flask import request, send_file
from flask_smorest import Blueprint

from cases.ledgers import indicators, reporting
from cases.ledgers import ledger as ledgers
from forms import validators as v
from forms.errors import ValidationFailed
from web.api import check_scope, current_user, db, doc_json, services
from web.auth import log_export, log_unmask, requires, unmask_reason
from web.openapi import JSON, PAGE_QUERY, XLSX, produces, query
from web.paging import next_link, page_args, paged, paged_list

blp = Blueprint("ledgers", __name__, url_prefix="/api/v1", description="台账、指标与统计表")

XLSX_MIME = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


_RANGES = {"year": (2000, 2100), "quarter": (1, 4)}


def _int_arg(name: str, *, required: bool = True, default: int | None = None) -> int | None:
    body = request.get_json(silent=True) if request.method != "GET" else None
    raw = request.args.get(name) if request.method == "GET" else (body if isinstance(body, dict) else {}).get(name)
    if raw in (None, ""):
        if required:
            raise ValidationFailed(f"缺少参数 {name}", fields={name: "必填"})
        return default
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise ValidationFailed(f"参数 {name} 应为整数", fields={name: "应为整数"}) from None
    low, high = _RANGES.get(name, (0, 2**63 - 1))
    if not low <= value <= high:
        raise ValidationFailed(f"参数 {name} 超出范围", fields={name: f"应在 {low}–{high} 之间"})
    return value


def _date_arg(raw: str | None, name: str = "as_of") -> dt.date | None:
    if raw in (None, ""):
        return None
    try:
        return v.parse_date(raw)
    except ValueError as e:
        raise ValidationFailed(f"参数 {name} 不是有效日期", fields={name: str(e)}) from None


@blp.route("/ledgers/<kind>")
@requires("ledger.read")
@produces(JSON, XLSX, description="台账（JSON）；format=xlsx 时为 Excel 文件")
@query(("org_id", "int", True, "机构编号"), ("as_of", "date", False, "截至日期，默认今天"),
       ("format", ["json", "xlsx"], False, "xlsx：下载 Excel"), *PAGE_QUERY)
def ledger(kind: str):
    """A ledger of ``kind`` for node ``org_id`` as of ``as_of`` (default today)."""
    session = db()
    org_id = _int_arg("org_id")
    check_scope(org_id)
    scope = ledgers.make_scope(session, kind, org_id, _date_arg(request.args.get("as_of")))
    unmask = request.args.get("unmask") == "1"
    reason = None
    if unmask:  # full ID numbers: a permission of its own, a reason, and an audit entry with it
        reason = unmask_reason()
        check_scope(org_id, "pupil.unmask")
    if request.args.get("format") == "xlsx":
        check_scope(org_id, "ledger.export")
        data = ledgers.ledger_xlsx(session, scope, unmask=unmask, user=current_user(), unmask_reason=reason)
        session.commit()  # the export's audit entry
        name = f"{scope.org_name}{ledgers.KIND_TITLES[kind]}-{scope.as_of.isoformat()}.xlsx"
        return send_file(io.BytesIO(data), mimetype=XLSX_MIME, as_attachment=True, download_name=name)
    limit, offset = page_args()
    page = ledgers.ledger_page(session, scope, limit=limit, offset=offset, unmask=unmask)
    if unmask:
        log_unmask(org_id, f"ledger:{kind}:{org_id}:{scope.as_of.isoformat()}", reason, records=len(page.rows))
        session.commit()
    return {"kind": kind, "title": ledgers.KIND_TITLES[kind], "org_id": page.org_id, "org_name": page.org_name,
            "as_of": page.as_of.isoformat(), "total": page.total, "limit": limit, "offset": offset,
            "next": next_link(limit, offset, page.total),
            "columns": [{"key": k, "heading": h} for k, h in page.columns], "items": page.rows,
            "aggregate": ledgers.aggregate(session, scope).as_json() if offset == 0 else None}


@blp.route("/ledgers/<kind>/snapshots", methods=["POST"])
@requires("ledger.file")
def file_snapshot(kind: str):
    """File (freeze) the ledger as of ``as_of``; body ``{"org_id", "as_of"}``. Returns the hash."""
    session = db()
    body = request.get_json(silent=True) or {}
    org_id = _int_arg("org_id")
    check_scope(org_id)
    as_of = _date_arg(body.get("as_of"))
    snap = ledgers.file_snapshot(session, kind, org_id, as_of, user=current_user())
    session.commit()
    return ledgers.snapshot_json(snap, with_rows=False), 201


@blp.route("/ledgers/snapshots/<int:snapshot_id>")
@requires("ledger.read")
def get_snapshot(snapshot_id: int):
    """A filed snapshot with its rows; ``?verify=1`` re-runs it and compares the hashes."""
    session = db()
    snap = ledgers.get_snapshot(session, snapshot_id)
    check_scope(snap.org_id)
    out = ledgers.snapshot_json(snap)
    if request.args.get("verify") == "1":
        out["verification"] = ledgers.verify_snapshot(session, snap).as_json()
    return out


@blp.route("/ledgers/snapshots/<int:snapshot_id>/corrections", methods=["POST"])
@requires("ledger.file")
def correct_snapshot(snapshot_id: int):
    """A 更正 entry for a filed snapshot; body ``{"reason"}``. The original stays unchanged."""
    session = db()
    snap = ledgers.get_snapshot(session, snapshot_id)
    check_scope(snap.org_id)
    body = request.get_json(silent=True) or {}
    new = ledgers.file_correction(session, snap, reason=str(body.get("reason") or ""), user=current_user())
    session.commit()
    return ledgers.snapshot_json(new, with_rows=False), 201


def _org(org_id: int):
    from cases.store.models import Org
    from forms.errors import NotFound

    org = db().get(Org, org_id)
    if org is None:
        raise NotFound(f"机构 {org_id} 不存在", fields={"org_id": "不存在"})
    return org


@blp.route("/reports/calendar")
@requires("ledger.read")
@query(("org_id", "int", True, "机构编号"), ("today", "date", False, "今天"), ("from", "date", False, "起"),
       ("to", "date", False, "止"))
def report_calendar():
    """The reporting calendar (DOMAIN §6.3) of the units under ``org_id``: every report due from
    ``from`` to ``to`` (default: this month and next), its as-of date and what was filed for it."""
    org_id = _int_arg("org_id")
    check_scope(org_id)
    today = _date_arg(request.args.get("today"), "today") or dt.date.today()
    start = _date_arg(request.args.get("from"), "from") or today.replace(day=1)
    end = _date_arg(request.args.get("to"), "to") or reporting.month_end(
        today.year + (today.month == 12), today.month % 12 + 1)
    items = reporting.calendar(db(), _org(org_id), start, end, today)
    return paged_list(items, org_id=org_id, today=today.isoformat(), **{"from": start.isoformat(),
                                                                          "to": end.isoformat()})


@blp.route("/reports/not-filed")
@requires("ledger.read")
@query(("org_id", "int", True, "机构编号"), ("today", "date", False, "今天"))
def reports_not_filed():
    """The "not filed" list of a jurisdiction: reports whose as-of date has passed and that no unit
    under ``org_id`` has filed (``overdue`` once the due date is past), as of ``today``."""
    org_id = _int_arg("org_id")
    check_scope(org_id)
    today = _date_arg(request.args.get("today"), "today") or dt.date.today()
    items = reporting.not_filed(db(), _org(org_id), today)
    return paged_list(items, org_id=org_id, today=today.isoformat())


@blp.route("/reports/reminders")
@requires("ledger.read")
@query(("org_id", "int", True, "机构编号"))
def report_reminders():
    """The reminders the scheduler raised for reports not filed (T−1, due today, overdue)."""
    from sqlalchemy import select

    from cases.ledgers.models import ReportReminder

    org_id = _int_arg("org_id")
    check_scope(org_id)
    q = (select(ReportReminder).where(ReportReminder.in_scope(_org(org_id)))
         .order_by(ReportReminder.due_on.desc(), ReportReminder.id))
    return paged(db(), q, reporting.reminder_json, org_id=org_id)


@blp.route("/indicators")
@requires("indicator.read")
@query(("org_id", "int", True, "机构编号"), ("year", "int", False, "学年起始年"),
       ("reference", "date", False, "参照日"))
def indicator_list():
    """The §6.4 indicators of node ``org_id`` for school year ``year`` with targets and pass/fail."""
    session = db()
    org_id = _int_arg("org_id")
    check_scope(org_id)
    year = _int_arg("year", required=False, default=None)
    if year is None:
        today = dt.date.today()
        year = today.year if today.month >= 9 else today.year - 1
    results = indicators.compute(session, org_id, year, reference=_date_arg(request.args.get("reference"),
                                                                          "reference"))
    return {"org_id": org_id, "year": year, "items": [r.as_json() for r in results]}


@blp.route("/reports/quarterly")
@requires("indicator.read")
@produces(JSON, XLSX, description="统计表数字（JSON）；format=xlsx 时为 Excel 文件")
@query(("org_id", "int", True, "机构编号"), ("year", "int", True, "年份"), ("quarter", "int", True, "季度 1–4"),
       ("format", ["json", "xlsx"], False, "xlsx：下载 Excel"))
def quarterly():
    """The 统计表 figures of node ``org_id`` for ``year``/``quarter`` (``&format=xlsx``)."""
    session = db()
    org_id = _int_arg("org_id")
    check_scope(org_id)
    figures = ledgers.quarterly_figures(session, org_id, _int_arg("year"), _int_arg("quarter"))
    if request.args.get("format") == "xlsx":
        check_scope(org_id, "ledger.export")
        log_export(org_id, "quarterly", records=1, fmt="xlsx",
                   scope={"org_id": org_id, "year": figures.year, "quarter": figures.quarter})
        session.commit()
        return send_file(io.BytesIO(ledgers.quarterly_xlsx(figures)), mimetype=XLSX_MIME, as_attachment=True,
                         download_name=f"{figures.org_name}-{figures.year}Q{figures.quarter}-统计表.xlsx")
    return figures.as_json()


@blp.route("/reports/quarterly/render", methods=["POST"])
@requires("report.issue")
def quarterly_render():
    """Issue the 统计表 as a numbered document (DOCX + PDF): body ``{"org_id", "year", "quarter",
    "issuer_id", "format": "pdf"|"docx", "data": {filler_name, checker_name, unit_head, fill_date...}}``."""
    from cases.documents import issuing as svc

    session = db()
    body = request.get_json(silent=True) or {}
    org_id = _int_arg("org_id")
    check_scope(org_id)
    issuer_id = int(body.get("issuer_id") or org_id)
    check_scope(issuer_id)
    figures = ledgers.quarterly_figures(session, org_id, _int_arg("year"), _int_arg("quarter"))
    extra = body.get("data") or {}
    if not isinstance(extra, dict):
        raise ValidationFailed("data 应为对象", fields={"data": "应为对象"})
    data = figures.form_data(**{"fill_date": dt.date.today().isoformat(), **extra})
    doc = svc.issue_document(session, services(), form="quarterly_stats", variant=None, issuer_id=issuer_id,
                             data=data, user=current_user(), want_pdf=body.get("format", "pdf") == "pdf")
    return doc_json(doc), 201
