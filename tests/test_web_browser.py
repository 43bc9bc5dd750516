"""Real Chromium against a live server (tests/conftest_browser.py): every demo role logs in and
opens its home page and every page of its navigation; each page is screenshotted under
output/screenshots/ and its text checked for English codes and Python literals."""

from __future__ import annotations

import pytest

from cases.accounts.demo import DEMO_ACCOUNTS

ROLES = [username for username, *_ in DEMO_ACCOUNTS]


@pytest.mark.parametrize("username", ROLES)
def test_each_role_logs_in_and_every_navigation_page_reads_in_chinese(web, username):
    page = web.login(username)
    text = web.check(page, f"{username}-home")
    assert "工作台" in text and "退出" in text
    links = page.eval_on_selector_all("nav.main a", "els => els.map(e => [e.textContent, e.getAttribute('href')])")
    assert links and links[0][0] == "工作台"
    for label, href in links:
        body = web.visit(page, href, f"{username}-{href.strip('/').replace('/', '-') or 'home'}")
        assert label in body or href == "/"


def test_login_page_and_errors_are_pages_in_chinese(web):
    page = web.new_page()
    text = web.visit(page, "/login", "login")
    assert "登录" in text and "用户名" in text
    page = web.login("demo.teacher")
    text = web.visit(page, "/documents/x1y2z3w4q5", "error-404", status=404)
    assert "不存在" in text or "找不到" in text


def test_phone_layout_has_the_navigation_and_no_horizontal_scroll(web, live_server):
    from sqlalchemy import select

    from cases.store.models import Case

    s = live_server.session()
    try:
        case_id = s.scalar(select(Case.id).where(Case.state == "NOTICED"))
    finally:
        s.close()
    page = web.login("demo.township", viewport=(390, 844))
    web.check(page, "phone-home")
    assert page.is_visible("nav.main")
    for path, name in (("/", "home"), (f"/cases/{case_id}", "case"), ("/cases", "cases"), ("/pupils", "pupils"),
                       ("/upload", "upload"), ("/review", "review")):
        web.visit(page, path, f"phone-{name}")
        width = page.evaluate("document.body.scrollWidth")
        assert width <= 390 + 1, f"{path} wider than a phone: {width}px"


def test_phone_layout_of_forms_pupils_ledgers_and_documents(web, live_server):
    """Pages with wide tables fit a phone: the 交接表 and 统计表 row tables scroll inside their
    fieldset, a pupil's record table wraps its numbers, the ledger scrolls sideways inside its box
    with one line per cell, and a document's returns table scrolls in its box."""
    from sqlalchemy import select

    from cases.store.models import Document, Pupil

    s = live_server.session()
    try:
        pupil_id = s.scalar(select(Pupil.id).order_by(Pupil.id))
        doc_id = s.scalar(select(Document.id).order_by(Document.created_at))
    finally:
        s.close()
    page = web.login("demo.bureau", viewport=(390, 844))
    paths = [("/forms/handover", "form-handover"), ("/forms/quarterly_stats", "form-quarterly"),
             (f"/pupils/{pupil_id}", "pupil"), ("/ledgers", "ledger")]
    if doc_id:
        paths.append((f"/documents/{doc_id}", "document"))
    for path, name in paths:
        web.visit(page, path, f"phone-{name}")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390 + 1, f"{path} wider than a phone: {width}px"
    # the navigation scrolls sideways on a phone; the current entry (far right: 指标) is in view
    web.visit(page, "/ledgers/indicators", "phone-indicators")
    box = page.locator("nav.main a.active").bounding_box()
    assert box and box["x"] >= 0 and box["x"] + box["width"] <= 390 + 1, box
    page = web.login("demo.bureau")
    web.visit(page, "/ledgers", "ledger-desk")
    heights = page.eval_on_selector_all("#ledger-rows tbody tr", "rs => rs.map(r => r.getBoundingClientRect().height)")
    assert heights and max(heights) < 60, f"ledger rows wrap cell text into tall rows: {heights}"
    # the buttons beside the filter are as tall as a button, not stretched to the labels' height
    tall = page.eval_on_selector_all("#ledger-filter a.button", "as => as.map(a => a.getBoundingClientRect().height)")
    assert tall and max(tall) < 45, tall


def test_every_form_and_variant_page_reads_in_chinese_with_date_pickers(web):
    from forms.registry import all_specs

    page = web.login("demo.bureau")
    for spec in all_specs().values():
        for v in spec.variants or [None]:
            path = f"/forms/{spec.code}" + (f"?variant={v.code}" if v else "")
            web.visit(page, path, f"form-{spec.code}-{v.code if v else 'main'}")
            if any(f.kind.value == "date" for f in spec.fields):
                assert page.locator("input[type=date]").count() >= 1, path


def test_account_page_reads_in_chinese_with_china_time(web):
    """“我的账号” (linked from every page's header, not the navigation): last login and the tokens'
    times in China time as 2026年12月7日 22:02, never an ISO/UTC stamp; the login name, the token and
    the header name are the only ASCII (marked data-ascii)."""
    import re

    page = web.login("demo.bureau")
    page.click("text=我的账号")
    text = web.visit(page, None, "account")
    assert "上次登录" in text and "UTC" not in text
    assert re.search(r"上次登录\s+\d{4}年\d{1,2}月\d{1,2}日 \d{2}:\d{2}", text), text[:400]
    page.fill("#name", "对接学籍系统")
    page.click("text=生成令牌")
    text = web.visit(page, None, "account-token")
    assert "只显示这一次" in text and "对接学籍系统" in text
    assert not re.search(r"\d{4}-\d{2}-\d{2}", text), text
