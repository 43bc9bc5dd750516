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
    """The demo county's targets (cases.demo.DEMO_TARGETS): every figure shown against one."""
    page = web.login("demo.bureau")
    text = web.visit(page, "/ledgers/indicators", "indicators")
    assert "控辍保学指标" in text and "未设目标" not in text
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


def test_township_files_a_correction_of_a_filed_snapshot(web, live_server):
    """A filed ledger is frozen; when a record was wrong, the 更正 is filed against it with a reason,
    rebuilt from what is recorded now, and says which entries changed."""
    from sqlalchemy import select

    from cases.ledgers.models import LedgerSnapshot
    from cases.store.models import Case, Guardian, Org

    page = web.login("demo.township")
    web.visit(page, "/ledgers", "correction-ledger")
    page.click("#file-snapshot button")
    hex_words = set(WORD.findall(page.inner_text("#snap-hash"))) | {"SHA"}
    first_url = page.url
    s = live_server.session()
    try:
        snap_id = int(first_url.split("/snapshots/")[1].split("?")[0])
        township = s.scalar(select(Org).where(Org.kind == "township", Org.name == "东河镇"))
        rows = {r["name"]: r["entry_no"] for r in s.get(LedgerSnapshot, snap_id).rows}
        case = next(c for c in s.scalars(select(Case).where(Case.township_org_id == township.id).order_by(Case.id))
                    if c.pupil.name in rows)
        entry = rows[case.pupil.name]
        guardian = s.scalars(select(Guardian).where(Guardian.pupil_id == case.pupil_id).order_by(Guardian.id)).first()
        guardian.phone = "13900001111"  # the phone recorded wrongly, put right after filing
        s.commit()
    finally:
        s.close()
    page.click("text=登记更正")
    page.fill("#reason", "监护人电话登记有误，已核实更正")
    page.click("button:text('按当前记录登记更正')")
    text = web.check(page, "correction-filed", allow=hex_words | set(WORD.findall(page.inner_text("#snap-hash")))
                     | set(WORD.findall(entry)))
    assert "已归档" in text and "更正" in text and "理由：监护人电话登记有误，已核实更正" in text
    changes = page.inner_text("#correction-changes")
    assert "新增 0 条、减少 0 条、变化 1 条" in changes and entry in changes
    assert "13900001111" in page.inner_text("table.grid:has(th:text('监护人电话'))")
    s = live_server.session()
    try:
        new = s.scalars(select(LedgerSnapshot).where(LedgerSnapshot.corrects_id == snap_id)).one()
        assert new.status == "correction" and new.filed_by == "demo.township" and new.changes["changed"] == [entry]
        assert s.get(LedgerSnapshot, snap_id).status == "filed"  # the original stays as it was filed
        new_id = new.id
    finally:
        s.close()
    # the original lists its correction
    page.goto(first_url)
    assert "更正记录" in web.check(page, "correction-original", allow=hex_words)
    phone = web.login("demo.township", viewport=(390, 844))
    web.visit(phone, f"/ledgers/snapshots/{new_id}", "correction-phone",
              allow=hex_words | set(WORD.findall(entry)) | set(WORD.findall(new.content_sha256)))


def test_bureau_issues_the_quarterly_table_from_its_page(web, live_server):
    """The quarterly 统计表 issued as a numbered document from the figures page, with PDF and DOCX,
    holding the figures the page showed."""
    from sqlalchemy import select

    from cases.ledgers import ledger as ledgers
    from cases.store.models import Document

    page = web.login("demo.bureau")
    web.visit(page, "/ledgers/quarterly", "quarterly-before-issue")
    heading = page.inner_text("h1")
    year, quarter = int(heading.split("年第")[0][-4:]), int(heading.split("年第")[1][0])
    page.fill("#filler_name", "李晓")
    page.fill("#checker_name", "王审")
    page.fill("#unit_head", "赵局长")
    page.click("#quarterly-issue button")
    page.wait_for_url("**/documents/**", timeout=120_000)
    text = web.check(page, "quarterly-issued")
    assert page.locator("#download-pdf").count() == 1 and page.locator("#download-docx").count() == 1
    with page.expect_download() as dl:
        page.click("#download-pdf")
    with open(dl.value.path(), "rb") as fh:
        assert fh.read(5) == b"%PDF-"
    s = live_server.session()
    try:
        doc = s.scalars(select(Document).where(Document.form == "quarterly_stats")).one()
        assert doc.org_id == live_server.county_id and doc.created_by == "demo.bureau" and doc.status == "issued"
        assert (doc.data["filler_name"], doc.data["checker_name"], doc.data["unit_head"]) == ("李晓", "王审", "赵局长")
        figures = ledgers.quarterly_figures(s, live_server.county_id, year, quarter)
        assert doc.data["unit_name"] == "青禾县" and doc.data["as_of"] == figures.end.isoformat()
        assert doc.data["screening"] == figures.table_rows("screening")
        assert doc.data["reasons"] == figures.table_rows("reasons")
        assert doc.number_text and doc.number_text in text
    finally:
        s.close()
    phone = web.login("demo.bureau", viewport=(390, 844))
    web.visit(phone, f"/documents/{doc.id}", "quarterly-issued-phone")
