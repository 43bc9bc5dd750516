"""The work queue (home page after login, issue 11 item 1), per role and scope: deadlines due today,
within 3 working days and overdue (the engine's ``Deadline`` rows), review items waiting, 回证
outstanding ("N of M returned", the returns queries), 整班移交 registration windows closing. Every
list is filtered by the one access policy (``visible``); nothing is counted twice.

Also the working-day countdown the case page shows beside each deadline (``countdown``)."""

from __future__ import annotations

import datetime as dt

from flask import current_app, url_for
from sqlalchemy import func, select

from cases.engine import casework as engine
from cases.engine.deadlines import count_working_days
from cases.engine.models import Deadline
from cases.returns import queries
from cases.returns.models import ReviewItem
from cases.store.models import Case, Document, Org, Pupil
from web.auth import can, visible
from web.context import db

SOON_WORKING_DAYS = 3
# Forms whose copies come back signed (送达回证): counted as "N of M returned".
RETURNED_FORMS = ("guardian_notice",)
HANDOVER_WARN_DAYS = 7


def countdown(due: dt.date | None, today: dt.date, holidays=None) -> dict:
    """Working days left until ``due`` (or overdue since), with the text a person reads:
    “还剩3个工作日”, “今天到期”, “已逾期2个工作日”; ``provisional`` when a year's holidays are unknown."""
    if due is None:
        return {"due": None, "days": None, "overdue": False, "text": "待起算", "provisional": False}
    if due == today:
        return {"due": due, "days": 0, "overdue": False, "text": "今天到期", "provisional": False}
    if due > today:
        n = count_working_days(today + dt.timedelta(days=1), due, holidays=holidays)
        text = f"还剩{n.days}个工作日" if n.days else "下个工作日前到期"
        return {"due": due, "days": n.days, "overdue": False, "text": text, "provisional": n.provisional}
    n = count_working_days(due + dt.timedelta(days=1), today, holidays=holidays)
    return {"due": due, "days": -n.days, "overdue": True, "text": f"已逾期{max(n.days, 1)}个工作日",
            "provisional": n.provisional}


def page_url(endpoint: str, **values) -> str | None:
    """The URL of a page when the page exists in this installation (pages are added by modules)."""
    if endpoint not in current_app.view_functions:
        return None
    return url_for(endpoint, **values)


def _deadlines(session, today: dt.date, holidays) -> dict[str, list[dict]]:
    horizon = today + dt.timedelta(days=14)  # 3 working days never span more than two weeks
    q = (select(Deadline, Case, Pupil).join(Case, Case.id == Deadline.case_id)
         .join(Pupil, Pupil.id == Case.pupil_id)
         .where(Deadline.status.in_(("open", "breached")), Deadline.alerting.is_(True),
                Deadline.due_on.is_not(None), Deadline.due_on <= horizon)
         .order_by(Deadline.due_on, Deadline.id))
    cond = visible(Case, "case.read")
    if cond is not None:
        q = q.where(cond)
    out: dict[str, list[dict]] = {"overdue": [], "today": [], "soon": []}
    for d, c, p in session.execute(q):
        cd = countdown(d.due_on, today, holidays)
        row = {"deadline": d, "case": c, "pupil": p, "countdown": cd,
               "url": page_url("casepages.case_page", case_id=c.id)}
        if cd["overdue"]:
            out["overdue"].append(row)
        elif cd["days"] == 0:
            out["today"].append(row)
        elif cd["days"] <= SOON_WORKING_DAYS:
            out["soon"].append(row)
    return out


def _review(session) -> dict:
    q = select(func.count()).select_from(ReviewItem).where(ReviewItem.status == "open")
    cond = visible(ReviewItem, "review.read")
    if cond is not None:
        q = q.where(cond)
    return {"open": session.scalar(q) or 0, "url": page_url("returnpages.review")}


def _returns(session, today: dt.date) -> list[dict]:
    """Per issuing unit and form variant: how many of this year's notices came back complete."""
    q = (select(Document.org_id, Document.form, Document.variant, func.count())
         .where(Document.form.in_(RETURNED_FORMS), Document.status == "issued", Document.year == today.year)
         .group_by(Document.org_id, Document.form, Document.variant))
    cond = visible(Document, "document.read")
    if cond is not None:
        q = q.where(cond)
    out = []
    for org_id, form, variant, _n in session.execute(q):
        counts = queries.returned_count(session, form=form, issuer_id=org_id, year=today.year, variant=variant)
        org = session.get(Org, org_id)
        out.append({"org": org, "form": form, "variant": variant, "returned": counts["returned"],
                    "total": counts["total"], "outstanding": counts["total"] - counts["returned"],
                    "url": page_url("casepages.documents", form=form, variant=variant or "", org_id=org_id)})
    out.sort(key=lambda r: -r["outstanding"])
    return out


def _handover(session, today: dt.date) -> list[dict]:
    from cases.handover.models import HandoverPlan

    q = select(HandoverPlan).where(HandoverPlan.status == "open").order_by(HandoverPlan.window_end)
    cond = visible(HandoverPlan, "handover.read")
    if cond is not None:
        q = q.where(cond)
    out = []
    for plan in session.scalars(q):
        left = (plan.window_end - today).days
        out.append({"plan": plan, "days_left": left, "closing": left <= HANDOVER_WARN_DAYS,
                    "url": page_url("handoverpages.plan", plan_id=plan.id)})
    return out


def work_queue(today: dt.date | None = None) -> dict:
    """Everything the home page lists for the logged-in user."""
    session = db()
    today = today or engine.china_date(None)
    holidays = engine.holiday_tables(session)
    out: dict = {"today": today}
    if can("case.read"):
        out["deadlines"] = _deadlines(session, today, holidays)
        q = select(Case.state, func.count()).where(Case.state != "CLOSED").group_by(Case.state)
        cond = visible(Case, "case.read")
        out["open_cases"] = dict(session.execute(q.where(cond) if cond is not None else q).all())
    if can("review.read"):
        out["review"] = _review(session)
    if can("document.read"):
        out["returns"] = _returns(session, today)
    if can("handover.read"):
        out["handover"] = _handover(session, today)
    return out
