"""Real Chromium (tests/conftest_browser.py): ledgers with drill-down from the prefecture to a school,
a snapshot filed and verified, indicators with their charts, the quarterly 统计表 — every page in
Chinese, screenshotted under output/screenshots/."""

from __future__ import annotations

from tests.conftest_browser import WORD


def test_prefecture_drills_down_to_a_school_and_downloads_xlsx(web):
    page = web.login("demo.prefecture")
    text = web.visit(page, "/ledgers", "prefecture-ledger")
    assert "演示市" in text and "台账" in text
    page.click("#ledger-children a:text('青禾县')")
    text = web.check(page, "county-ledger")
    assert "青禾县县级台账" in text
    page.click("#ledger-children a:text('东河镇')")
    text = web.check(page, "township-ledger")
    assert "东河镇乡级台账" in text and "朱琪" in text and "谢嫣紫" in text
    page.click("#ledger-children a:text('东河镇柳湾小学')")
    text = web.check(page, "school-ledger")
    assert "东河镇柳湾小学学校台账" in text and "朱琪" in text and "谢嫣紫" not in text  # 谢: 初级中学
    assert "青禾县" in page.inner_text("nav.trail")
    with page.expect_download() as dl:
        page.click("#ledger-xlsx")
    assert dl.value.suggested_filename.endswith(".xlsx")
    with open(dl.value.path(), "rb") as fh:
        assert fh.read(2) == b"PK"


def test_township_files_a_snapshot_and_verifies_it(web):
    page = web.login("demo.township")
    text = web.visit(page, "/ledgers", "township-own-ledger")
    assert "东河镇乡级台账" in text
    page.click("#file-snapshot button")
    digest = page.inner_text("#snap-hash")
    assert len(digest) == 64
    hex_words = set(WORD.findall(digest)) | {"SHA"}
    text = web.check(page, "snapshot-filed", allow=hex_words)
    assert "已归档" in text and "校验值" in text
    page.click("#verify")
    text = web.check(page, "snapshot-verified", allow=hex_words)
    assert "复核一致" in text


def test_indicators_with_charts_and_quarterly_table(web, live_server):
    from cases.ledgers.models import IndicatorTarget
    from cases.store.models import Org

    s = live_server.session()
    county = s.get(Org, live_server.county_id)
    s.add_all([IndicatorTarget(region=county.code, indicator="primary_enrolment_rate", op="ge", value=99.5),
               IndicatorTarget(region=county.code, indicator="junior_dropout_rate", op="le", value=1.8)])
    s.commit()
    s.close()
    page = web.login("demo.bureau")
    text = web.visit(page, "/ledgers/indicators", "indicators")
    assert "控辍保学指标" in text and "未设目标" in text
    row = page.inner_text("#indicators tr:has-text('小学入学率')")
    assert "≥ 99.5%" in row and ("未达标" in row or "达标" in row)
    row = page.inner_text("#indicators tr:has-text('初中辍学率')")
    assert "≤ 1.8%" in row and "达标" in row
    assert page.locator("#charts svg.chart").count() >= 2
    box = page.locator("#charts svg.chart").first.bounding_box()
    assert box and box["width"] > 200 and box["height"] > 60
    text = web.visit(page, "/ledgers/quarterly", "quarterly")
    assert "季度控辍保学统计表" in text and "本期排查疑似辍学人数" in text
    assert page.locator("#quarterly-xlsx").count() == 1


def test_other_county_sees_nothing_of_this_one(web, live_server):
    page = web.login("other.bureau")
    text = web.visit(page, "/ledgers", "other-county-ledger")
    assert "白河县" in text and "东河镇" not in text and "林俊远" not in text
    web.visit(page, f"/ledgers?org_id={live_server.county_id}", "other-county-refused", status=403)
