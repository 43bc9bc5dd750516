"""Pages of the ledgers, indicators and the quarterly 统计表 (issue 11 item 7, DOMAIN §6).

* ``/ledgers``: the ledger of a node at any as-of date, drill-down prefecture → county → township →
  school (each child a link), XLSX download (the API's export, logged), filing a snapshot and the
  node's filed snapshots (each verifiable: re-run and hash compared).
* ``/ledgers/indicators``: the §6.4 indicators against their targets, with small SVG charts
  (``web.charts``, matplotlib on the server) and per child node.
* ``/ledgers/quarterly``: the 统计表 of a quarter (XLSX, or issued as a numbered DOCX/PDF).
"""

from __future__ import annotations

import datetime as dt

from flask import Blueprint, redirect, render_template, request, url_for
from sqlalchemy import select

from cases.accounts.policy import Target
from cases.ledgers import indicators, reporting
from cases.ledgers import ledger as ledgers
from cases.ledgers.models import LedgerSnapshot
from cases.store.models import Org
from forms import validators as v
from forms.errors import ValidationFailed
from forms.registry import get_spec
from forms.specs.quarterly_stats import TABLES
from web import charts
from web.auth import authorize_org, can, principal, requires, visible, work_org
from web.context import db
from web.context import services as _services

bp = Blueprint("ledgerpages", __name__, url_prefix="/ledgers")

LEVELS = ("prefecture", "county", "township", "village", "school")


def _date(name: str, default: dt.date | None = None) -> dt.date | None:
    raw = (request.values.get(name) or "").strip()
    if not raw:
        return default
    try:
        return v.parse_date(raw)
    except ValueError:
        raise ValidationFailed(f"“{raw}”不是有效日期", fields={name: "日期格式：2026-03-15"}) from None


def _int(name: str, default: int | None = None) -> int | None:
    raw = (request.values.get(name) or "").strip()
    if not raw:
        return default
    if not raw.isdigit():
        raise ValidationFailed(f"参数“{raw}”应为数字", fields={name: "应为数字"})
    return int(raw)


def _node(action: str) -> Org | None:
    """The node asked for (``org_id``) or the user's own; for an account of the whole installation
    without one, None (the page offers the top nodes)."""
    org_id = _int("org_id")
    if org_id is None:
        org = work_org()
        if org is None:
            return None
        if org.kind not in LEVELS:  # a department or bureau: the jurisdiction it serves
            ids = [int(x) for x in org.path.strip("/").split("/") if x][::-1]
            nodes = {o.id: o for o in db().scalars(select(Org).where(Org.id.in_(ids)))}
            org = next((nodes[i] for i in ids if i in nodes and nodes[i].kind in LEVELS
                        and can(action, Target.org(nodes[i].path))), None)
            if org is None:
                return None
    else:
        org = db().get(Org, org_id)
        if org is None:
            raise ValidationFailed(f"机构 {org_id} 不存在", fields={"org_id": "不存在"})
    authorize_org(org.id, action)
    return org


def _top_nodes(action: str) -> list[Org]:
    q = select(Org).where(Org.kind.in_(LEVELS)).order_by(Org.path)
    cond = visible(Org, action)
    if cond is not None:
        q = q.where(cond)
    rows = list(db().scalars(q))
    paths = {o.path for o in rows}
    return [o for o in rows if not any(o.path != p and o.path.startswith(p) for p in paths)]


def _trail(org: Org, action: str) -> list[Org]:
    """The node's ancestors the user may see (the way back up the drill-down), then the node."""
    ids = [int(x) for x in org.path.strip("/").split("/") if x]
    nodes = {o.id: o for o in db().scalars(select(Org).where(Org.id.in_(ids)))}
    return [nodes[i] for i in ids if i in nodes and nodes[i].kind in LEVELS
            and can(action, Target.org(nodes[i].path))]


def _kind_of(org: Org) -> str | None:
    return org.kind if org.kind in LEVELS else None


def _children(agg: ledgers.Aggregate) -> list[dict]:
    orgs = {o.id: o for o in db().scalars(select(Org).where(Org.id.in_([c["org_id"] for c in agg.children])))}
    out = []
    for c in agg.children:
        o = orgs.get(c["org_id"])
        out.append({**c, "kind": o.kind if o else None, "level": _kind_of(o) if o else None})
    return out


@bp.route("")
@requires("ledger.read")
def index():
    org = _node("ledger.read")
    if org is None:
        return render_template("ledgers/pick.html", nodes=_top_nodes("ledger.read"), target="ledgerpages.index",
                               title="台账")
    kinds = [k for k in ledgers.KIND_TITLES if ledgers.NODE_KINDS.get(k) is None or org.kind in ledgers.NODE_KINDS[k]]
    if not kinds:
        raise ValidationFailed(f"“{org.name}”不是辖区节点，没有台账",
                               fields={"org_id": "应为学校、村、乡(镇)、县或市(州)"})
    kind = request.args.get("kind") or (org.kind if org.kind in kinds else kinds[0])
    as_of = _date("as_of", dt.date.today())
    session = db()
    scope = ledgers.make_scope(session, kind, org.id, as_of)
    offset = max(_int("offset", 0) or 0, 0)
    limit = 50
    page = ledgers.ledger_page(session, scope, limit=limit, offset=offset)
    agg = ledgers.aggregate(session, scope)
    snaps = list(session.scalars(select(LedgerSnapshot).where(LedgerSnapshot.org_id == org.id)
                                 .order_by(LedgerSnapshot.filed_at.desc()).limit(20)))
    columns = [(k, h) for k, h in page.columns if k not in ("id_number", "xueji_no", "school_code", "address")]
    # a ledger is filed as of a 15th or a month-end: the latest such date up to the one shown
    file_as_of = as_of if reporting.defined_as_of(as_of) else reporting.nearest_as_of(as_of)[0]
    return render_template("ledgers/index.html", file_as_of=file_as_of, org=org, kind=kind, kinds=kinds,
                           titles=ledgers.KIND_TITLES,
                           as_of=as_of, page=page, agg=agg, children=_children(agg), columns=columns,
                           trail=_trail(org, "ledger.read"), snaps=snaps, offset=offset, limit=limit,
                           people=people(x.filed_by for x in snaps),
                           bands=ledgers.BANDS, states=ledgers.STATE_LABELS,
                           may_file=can("ledger.file", Target.org(org.path)),
                           may_export=can("ledger.export", Target.org(org.path)),
                           xlsx=url_for("ledgers.ledger", kind=kind, org_id=org.id, as_of=as_of.isoformat(),
                                        format="xlsx"))


@bp.route("/snapshots", methods=["POST"])
@requires("ledger.file")
def file_snapshot():
    org = _node("ledger.file")
    if org is None:
        raise ValidationFailed("请选择单位", fields={"org_id": "必填"})
    kind = request.form.get("kind") or org.kind
    as_of = _date("as_of", dt.date.today())
    session = db()
    snap = ledgers.file_snapshot(session, kind, org.id, as_of, user=principal().username)
    session.commit()
    return redirect(url_for("ledgerpages.snapshot", snapshot_id=snap.id, filed=1))


@bp.route("/snapshots/<int:snapshot_id>")
@requires("ledger.read")
def snapshot(snapshot_id: int):
    session = db()
    snap = ledgers.get_snapshot(session, snapshot_id)
    authorize_org(snap.org_id)
    verification = ledgers.verify_snapshot(session, snap) if request.args.get("verify") == "1" else None
    org = session.get(Org, snap.org_id)
    corrections = list(session.scalars(select(LedgerSnapshot).where(LedgerSnapshot.corrects_id == snap.id)
                                       .order_by(LedgerSnapshot.id)))
    columns = [(k, h) for k, h in ledgers.ROW_COLUMNS if k not in ("id_number", "xueji_no", "school_code", "address")]
    return render_template("ledgers/snapshot.html", snap=snap, org=org, verification=verification,
                           corrections=corrections, columns=columns, titles=ledgers.KIND_TITLES,
                           filed=request.args.get("filed") == "1", people=people([snap.filed_by]),
                           may_file=can("ledger.file", Target.org(org.path)))


@bp.route("/snapshots/<int:snapshot_id>/corrections", methods=["POST"])
@requires("ledger.file")
def correct_snapshot(snapshot_id: int):
    session = db()
    snap = ledgers.get_snapshot(session, snapshot_id)
    authorize_org(snap.org_id)
    new = ledgers.file_correction(session, snap, reason=(request.form.get("reason") or "").strip(),
                                  user=principal().username)
    session.commit()
    return redirect(url_for("ledgerpages.snapshot", snapshot_id=new.id, filed=1))


def people(usernames) -> dict[str, str]:
    """username -> display name (who filed, who decided), for pages."""
    from cases.accounts.models import User

    names = {u for u in usernames if u}
    if not names:
        return {}
    return {u.username: u.display_name for u in db().scalars(select(User).where(User.username.in_(names)))}


def _school_year(today: dt.date) -> int:
    return today.year if today.month >= 9 else today.year - 1


def _indicator_charts(results: list[indicators.IndicatorResult]) -> list:
    """One chart per scale: enrolment and retention rates (near 100%), dropout rates (near 0%), counts."""
    counts = [r for r in results if r.unit != "%"]
    down = [r for r in results if r.unit == "%" and "dropout" in r.code]
    up = [r for r in results if r.unit == "%" and r not in down]
    out = []
    for title, group, unit in (("入学率与巩固率", up, "%"), ("辍学率", down, "%"), ("人数", counts, "人")):
        if not group:
            continue
        out.append(charts.bars([r.name for r in group],
                               [None if r.value is None else round(float(r.value), 2) for r in group],
                               title=f"{title}（{unit}）", unit=unit,
                               targets=[None if r.target is None else float(r.target.value) for r in group],
                               passed=[r.passed for r in group]))
    return out


@bp.route("/indicators", endpoint="indicators")
@requires("indicator.read")
def indicators_page():
    org = _node("indicator.read")
    if org is None:
        return render_template("ledgers/pick.html", nodes=_top_nodes("indicator.read"),
                               target="ledgerpages.indicators", title="指标")
    year = _int("year", _school_year(dt.date.today()))
    session = db()
    results = indicators.compute(session, org.id, year)
    # per child node: the out-of-school count of the ledger today, for the drill-down chart
    child_chart = None
    children = []
    if org.kind in ("prefecture", "county", "township"):
        agg = ledgers.aggregate(session, ledgers.make_scope(session, org.kind, org.id, dt.date.today()))
        children = [c for c in _children(agg) if c["level"]]
        if children:
            child_chart = charts.bars([c["name"] for c in children], [c["out_of_school"] for c in children],
                                      title="各下级单位失学辍学人数（今日）", unit="人")
    return render_template("ledgers/indicators.html", org=org, year=year, results=results,
                           charts=_indicator_charts(results), child_chart=child_chart, children=children,
                           trail=_trail(org, "indicator.read"), ops=indicators.OPS)


def _quarter_of(day: dt.date) -> tuple[int, int]:
    q = (day.month - 1) // 3 + 1
    return (day.year, q - 1) if q > 1 else (day.year - 1, 4)


@bp.route("/quarterly", methods=["GET"])
@requires("indicator.read")
def quarterly():
    org = _node("indicator.read")
    if org is None:
        return render_template("ledgers/pick.html", nodes=_top_nodes("indicator.read"),
                               target="ledgerpages.quarterly", title="统计表")
    last_year, last_q = _quarter_of(dt.date.today())
    year, quarter = _int("year", last_year), _int("quarter", last_q)
    if quarter not in (1, 2, 3, 4):
        raise ValidationFailed("季度应为1—4", fields={"quarter": "1—4"})
    figures = ledgers.quarterly_figures(db(), org.id, year, quarter)
    spec = get_spec("quarterly_stats")
    tables = [{"name": name, "title": spec.field(name).label,
               "columns": [(c.name, c.label) for c in cols if c.name != "band"],
               "rows": figures.table_rows(name)} for name, cols in TABLES.items()]
    return render_template("ledgers/quarterly.html", org=org, figures=figures, tables=tables,
                           year=year, quarter=quarter, trail=_trail(org, "indicator.read"),
                           bands={"primary": "小学", "junior": "初中", "total": "合计"},
                           may_export=can("ledger.export", Target.org(org.path)),
                           may_issue=can("report.issue", Target.org(org.path)),
                           xlsx=url_for("ledgers.quarterly", org_id=org.id, year=year, quarter=quarter,
                                        format="xlsx"))


@bp.route("/quarterly/issue", methods=["POST"])
@requires("report.issue")
def quarterly_issue():
    from cases.documents import issuing as svc

    org = _node("report.issue")
    if org is None:
        raise ValidationFailed("请选择单位", fields={"org_id": "必填"})
    year, quarter = _int("year"), _int("quarter")
    session = db()
    figures = ledgers.quarterly_figures(session, org.id, year, quarter)
    sign = {k: (request.form.get(k) or "").strip() for k in ("filler_name", "checker_name", "unit_head")}
    data = figures.form_data(fill_date=dt.date.today().isoformat(), **{k: x for k, x in sign.items() if x})
    doc = svc.issue_document(session, _services(), form="quarterly_stats", variant=None, issuer_id=org.id,
                             data=data, user=principal().username, want_pdf=True)
    return redirect(url_for("pages.document_page", doc_id=doc.id))
