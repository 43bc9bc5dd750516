"""The work queue (home page): deadlines overdue / due today / within 3 working days, counted in
working days (holidays and weekends skipped), each linking to its case; the review count."""

from __future__ import annotations

import datetime as dt
import re

from sqlalchemy import select

from cases.engine.models import Deadline
from cases.store.models import Case
from web.workqueue import countdown

MONDAY = dt.date(2026, 12, 7)


def test_countdown_counts_working_days():
    assert countdown(MONDAY, MONDAY)["text"] == "今天到期"
    assert countdown(dt.date(2026, 12, 10), MONDAY)["text"] == "还剩3个工作日"
    # Friday to Monday: one working day
    assert countdown(MONDAY, dt.date(2026, 12, 4))["text"] == "还剩1个工作日"
    over = countdown(dt.date(2026, 12, 3), MONDAY)  # Thursday; Fri and Mon passed
    assert over["overdue"] and over["text"] == "已逾期2个工作日"
    # the National Day week is not counted: 30 Sep 2026 to 9 Oct 2026
    assert countdown(dt.date(2026, 10, 9), dt.date(2026, 9, 30))["days"] < 5
    assert countdown(None, MONDAY)["text"] == "待起算"


def test_home_lists_overdue_due_today_and_soon_with_links(client, demo, app_session, monkeypatch):
    from cases.engine import casework

    monkeypatch.setattr(casework, "china_date", lambda _v=None: MONDAY)
    cases = app_session.scalars(select(Case).order_by(Case.id)).all()[:3]
    for case, due, label in zip(cases, (dt.date(2026, 12, 2), MONDAY, dt.date(2026, 12, 9)),
                                ("测试逾期事项", "测试今天事项", "测试三日内事项"), strict=True):
        app_session.add(Deadline(case_id=case.id, org_id=case.org_id, timer="test", label=label, actor="school",
                                 unit="working_day", length=1, start_event="test", start_on=due, due_on=due,
                                 status="open", alerting=True))
    app_session.commit()
    html = client.get("/", headers={"Accept": "text/html"}).get_data(as_text=True)

    def section(name):
        return re.search(rf'id="q-{name}".*?</section>', html, re.S).group(0)

    assert "测试逾期事项" in section("overdue") and "已逾期3个工作日" in section("overdue")
    assert "测试今天事项" in section("today") and "今天到期" in section("today")
    assert "测试三日内事项" in section("soon") and "还剩2个工作日" in section("soon")
    assert f'href="/cases/{cases[0].id}"' in section("overdue") and cases[0].pupil.name in section("overdue")
    assert "测试逾期事项" not in section("soon")
