"""Ledger, indicator and 统计表 pages (issue 11 item 7) through the Flask client: values on the
page, drill-down links, snapshots filed and verified, scope. Real Chromium: test_web_ledgers.py."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from sqlalchemy import select

from cases.ledgers import reporting
from cases.ledgers.models import LedgerSnapshot
from cases.store.models import Org
from tests.conftest import client_for


@pytest.fixture
def bureau(app, demo, make_user):
    s = app.extensions["baoxue"].session_factory()
    county = s.scalars(select(Org).where(Org.kind == "county")).first()
    s.close()
    _uid, token = make_user("t.bureau", ["county_bureau"], org_id=county.id)
    return client_for(app, token), county


def text(r) -> str:
    return re.sub(r"<[^>]+>", " ", r.get_data(as_text=True))


def test_ledger_page_drills_down_and_files_a_snapshot(bureau, app):
    c, county = bureau
    r = c.get("/ledgers")
    assert r.status_code == 200
    page = text(r)
    assert f"{county.name}县级台账" in page and "共 8 条" in page
    # totals by 学段 from the aggregate, and each township a drill-down link with its counts
    assert re.search(r"小学\s+240\s+1\s+初中\s+60\s+5", page)
    html = r.get_data(as_text=True)
    s = app.extensions["baoxue"].session_factory()
    dong = s.scalars(select(Org).where(Org.name == "东河镇")).one()
    school = s.scalars(select(Org).where(Org.name == "东河镇柳湾小学")).one()
    s.close()
    assert f'href="/ledgers?org_id={dong.id}&amp;as_of=' in html
    r = c.get(f"/ledgers?org_id={dong.id}")
    page = text(r)
    assert "东河镇乡级台账" in page and "共 6 条" in page
    assert f"org_id={school.id}" in r.get_data(as_text=True)
    r = c.get(f"/ledgers?org_id={school.id}")
    assert "东河镇柳湾小学学校台账" in text(r) and "共 3 条" in text(r)
    assert "朱琪" in text(r) and "谢嫣紫" not in text(r)  # 谢嫣紫: same township, another school
    # an as-of date before every case: no rows
    assert "共 0 条" in text(c.get(f"/ledgers?org_id={dong.id}&as_of=2020-01-01"))
    # the XLSX link is the API export of the same ledger
    assert f"/api/v1/ledgers/school?org_id={school.id}" in r.get_data(as_text=True)
    x = c.get(f"/api/v1/ledgers/township?org_id={dong.id}&format=xlsx")
    assert x.status_code == 200 and x.data[:2] == b"PK"
    # file a snapshot from the page: redirected to it, with its hash; verify re-runs it
    day = reporting.nearest_as_of(dt.date.today())[0]  # the last 15th or month-end
    assert f"将截至 {day.year}年{day.month}月{day.day}日 的县级台账归档" in text(c.get("/ledgers"))
    third = f"{day.year}-{day.month:02d}-03"
    bad = c.post("/ledgers/snapshots", data={"org_id": dong.id, "kind": "township", "as_of": third})
    assert bad.status_code == 422 and "不是规定的统计时点" in text(bad)
    r = c.post("/ledgers/snapshots", data={"org_id": dong.id, "kind": "township", "as_of": day.isoformat()})
    assert r.status_code == 302, r.get_data(as_text=True)[-1500:]
    s = app.extensions["baoxue"].session_factory()
    snap = s.scalars(select(LedgerSnapshot)).one()
    got = (snap.org_id, snap.kind, snap.as_of.isoformat(), snap.filed_by)
    assert got == (dong.id, "township", day.isoformat(), "t.bureau")
    s.close()
    assert r.headers["Location"].endswith(f"/ledgers/snapshots/{snap.id}?filed=1")
    page = text(c.get(r.headers["Location"]))
    assert "已归档" in page and snap.content_sha256 in page and f"{snap.row_count}" in page
    assert "复核一致" in text(c.get(f"/ledgers/snapshots/{snap.id}?verify=1"))
    assert f"{day.year}年{day.month}月{day.day}日" in text(c.get(f"/ledgers?org_id={dong.id}"))


def test_ledger_of_a_node_out_of_scope_is_refused(app, demo, make_user):
    s = app.extensions["baoxue"].session_factory()
    dong = s.scalars(select(Org).where(Org.name == "东河镇")).one()
    xi = s.scalars(select(Org).where(Org.name == "西岭乡")).one()
    s.close()
    _uid, token = make_user("t.town", ["township"], org_id=dong.id)
    c = client_for(app, token)
    assert "东河镇乡级台账" in text(c.get("/ledgers"))
    r = c.get(f"/ledgers?org_id={xi.id}")
    assert r.status_code == 403 and "西岭乡" not in text(r)
    assert c.get(f"/ledgers/indicators?org_id={xi.id}").status_code == 403


def test_indicators_page_shows_values_targets_and_charts(bureau):
    c, county = bureau
    r = c.get("/ledgers/indicators?year=2026")
    assert r.status_code == 200
    html = r.get_data(as_text=True)
    page = text(r)
    assert f"{county.name} 2026—2027学年控辍保学指标" in page
    assert html.count('<svg role="img"') >= 2  # rates and the per-township chart
    assert "各下级单位失学辍学人数" in html and "东河镇" in html
    assert "初中辍学率" in page or "辍学率" in page
    assert "达标" in page
    # no matplotlib metadata or English in the chart text
    assert "Matplotlib" not in html


def test_quarterly_page_shows_the_four_tables(bureau):
    c, county = bureau
    today = dt.date.today()  # the demo's cases are opened in the last weeks
    year, quarter = today.year, (today.month - 1) // 3 + 1
    r = c.get(f"/ledgers/quarterly?year={year}&quarter={quarter}")
    assert r.status_code == 200
    page = text(r)
    assert f"{county.name} {year}年第{quarter}季度控辍保学统计表" in page
    assert "本期排查疑似辍学人数" in page and "销号人数" in page
    figures = c.get(f"/api/v1/reports/quarterly?org_id={county.id}&year={year}&quarter={quarter}").json
    total = figures["tables"]["screening"]["total"]
    assert total["suspected_found"] >= 1
    m = re.search(r"合计\s+(\d+)\s+(\d+)", page)
    assert m and (int(m.group(1)), int(m.group(2))) == (total["enrolled"], total["suspected_found"])
    assert c.get("/ledgers/quarterly?year=2026&quarter=5").status_code == 422
