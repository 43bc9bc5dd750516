"""Real Chromium (tests/conftest_browser.py): administration (accounts of one's subtree opened and
disabled, holiday table upload, region profile check, QR key status) and the auditor's read-only
view (voided documents, the audit log, a reproducible random sample per township, a case's full
history with no way to change it)."""

from __future__ import annotations

import json

from sqlalchemy import func, select

from cases.accounts.demo import DEMO_ACCOUNTS
from cases.accounts.models import User
from cases.accounts.policy import ROLES
from cases.dossier.models import InspectionSample
from cases.store.models import AuditLog, Case, Document
from tests.conftest_browser import WORD

# login names are ASCII by nature (demo.teacher ...): the page may show them
NAMES = {w for username, *_ in DEMO_ACCOUNTS for w in WORD.findall(username)}
NAMES |= {"other", "bureau", "clerk", "wang", "JSON"}


def test_admin_opens_and_disables_an_account(web, live_server):
    page = web.login("demo.admin")
    keys = live_server.app.extensions["baoxue"].qr_keys
    allow = NAMES | set(WORD.findall(keys.current_id)) | {w for k in keys.by_id() for w in WORD.findall(k)}
    text = web.visit(page, "/admin", "admin", allow=allow)
    assert "账号" in text and "demo.teacher" in text and "other.bureau" not in text  # another county's account
    assert keys.current_id in page.inner_text("#qr-keys")
    # the county's administrator is offered no role above the county (市（州）, 系统管理员)
    offered = page.eval_on_selector_all("#user-form input[name=roles]", "els => els.map(e => e.value)")
    assert offered == ["teacher", "school_clerk", "central_school", "village", "township", "county_bureau",
                       "county_gov", "department", "auditor"]
    assert "市（州）/省" not in page.inner_text("#user-form") and "系统管理员" not in page.inner_text("#user-form")
    page.fill("#username", "wang.clerk")
    page.fill("#display_name", "王干事")
    page.select_option("#org_id", label="东河镇柳湾小学（学校）")
    page.check("input[name=roles][value=school_clerk]")
    page.fill("#password", "short")
    page.click("#user-form button")
    text = web.check(page, "admin-bad-password", allow=allow)
    assert "密码" in page.inner_text("#user-form")  # the weak password named, the form kept
    assert page.input_value("#username") == "wang.clerk"
    page.fill("#password", "Qinghe-clerk-2026!")
    page.click("#user-form button")
    text = web.check(page, "admin-created", allow=allow)
    assert "已开设账号 wang.clerk" in text
    row = page.inner_text("#user-list tr:has-text('wang.clerk')")
    assert "王干事" in row and "东河镇柳湾小学" in row and "学校（校长/学籍管理员）" in row and "正常" in row
    page.click("#toggle-wang\\.clerk")
    text = web.check(page, "admin-disabled", allow=allow)
    assert "已停用账号 wang.clerk" in text
    s = live_server.session()
    assert s.scalars(select(User).where(User.username == "wang.clerk")).one().disabled is True
    s.close()
    # the disabled account cannot log in
    p2 = web.new_page()
    p2.goto(web.url("/login"))
    p2.fill("#username", "wang.clerk")
    p2.fill("#password", "Qinghe-clerk-2026!")
    p2.click("button[type=submit]")
    assert "/login" in p2.url
    # a 市（州） role slipped into the form by hand: refused on the page, the role and why named
    web.visit(page, "/admin", "admin", allow=allow)
    page.fill("#username", "sneaky.pref")
    page.select_option("#org_id", label="东河镇柳湾小学（学校）")
    page.evaluate("""() => { const box = document.createElement('input'); box.type = 'checkbox';
        box.name = 'roles'; box.value = 'prefecture'; box.checked = true;
        document.querySelector('#user-form fieldset').appendChild(box); }""")
    page.fill("#password", "Qinghe-clerk-2026!")
    page.click("#user-form button")
    web.check(page, "admin-role-refused", allow=allow)
    why = "不能授予“市（州）/省”角色：该角色属于市（州）级，高于您的管理范围（县级）"
    assert page.inner_text("#roles-error") == why and why in page.inner_text("#problem")
    assert page.input_value("#username") == "sneaky.pref"
    s = live_server.session()
    assert s.scalar(select(User.id).where(User.username == "sneaky.pref")) is None
    s.close()


def test_sysadmin_loads_a_holiday_table_and_checks_a_profile(web, tmp_path):
    page = web.login("demo.sysadmin")
    table = {"year": 2031, "source": "国务院办公厅关于2031年部分节假日安排的通知（测试）",
             "holidays": ["2031-01-01", "2031-10-01", "2031-10-02"], "workdays": ["2031-09-28"]}
    path = tmp_path / "2031.json"
    path.write_text(json.dumps(table, ensure_ascii=False), encoding="utf-8")
    web.visit(page, "/admin", "sysadmin", allow=NAMES | {"admin"})
    offered = page.eval_on_selector_all("#user-form input[name=roles]", "els => els.map(e => e.value)")
    assert offered == list(ROLES)  # the installation's administrator may give every role
    page.set_input_files("#holiday-file", str(path))
    page.click("#holiday-form button")
    text = web.check(page, "holidays-loaded", allow=NAMES | {"admin"})
    assert "已载入2031年节假日安排：放假3天，调休上班1天" in text
    assert "2031" in page.inner_text("#holiday-list")
    bad = tmp_path / "profile.json"
    bad.write_text(json.dumps({"name": "x-test"}), encoding="utf-8")
    page.set_input_files("#profile-file", str(bad))
    page.click("#profile-form button")
    check = page.locator("#profile-check")
    assert "bad" in check.get_attribute("class")  # refused, not 检查通过
    assert "地区配置 x-test" in check.inner_text() and "absence：缺失" in check.inner_text()
    assert "检查通过" not in check.inner_text()


def test_auditor_reads_everything_and_changes_nothing(web, live_server):
    s = live_server.session()
    case = s.scalars(select(Case).order_by(Case.id)).first()
    s.add(Document(id="VOIDTEST0001", case_id=case.id, org_id=case.org_id, form="dropout_report",
                   family="dropout_report", template_version="2026.1", year=2026, seq=99,
                   number_text="青禾县东河镇报〔2026〕99号", status="void", void_reason="学生姓名写错，重新生成",
                   created_by="demo.school"))
    s.commit()
    s.close()
    page = web.login("demo.auditor")
    text = web.visit(page, "/audit", "auditor-index", allow=NAMES)
    assert "督导检查" in text and "只读" in text and "操作日志" in text
    voided = page.inner_text("#voided")
    assert "青禾县东河镇报〔2026〕99号" in voided and "学生姓名写错，重新生成" in voided
    page.fill("#n", "2")
    page.fill("#seed", "abc123")
    page.click("#sample-form button")
    text = web.check(page, "auditor-sample", allow=NAMES | {"abc"})
    assert "抽样编号：abc123" in text and "东河镇" in text
    assert "重现核对：用同一编号重新抽取，结果一致" in page.inner_text("#reproduce")
    first, first_url = page.inner_text("main"), page.url
    assert page.locator("table.sample").first.locator("tr").count() == 3  # header + 2 drawn
    # drawn again with the same seed: a second stored sample with the same cases
    web.visit(page, "/audit", "auditor-index-2", allow=NAMES | {"abc"})
    page.fill("#n", "2")
    page.fill("#seed", "abc123")
    page.click("#sample-form button")
    page.wait_for_url(lambda u: u != first_url and "/audit/samples/" in u)
    tables = lambda text: text[text.index("重现核对"):]  # noqa: E731  (the groups, without the time line)
    assert tables(page.inner_text("main")) == tables(first)
    s2 = live_server.session()
    stored = s2.scalars(select(InspectionSample).order_by(InspectionSample.id)).all()
    assert [x.seed for x in stored][-2:] == ["abc123", "abc123"] and stored[-1].drawn == stored[-2].drawn
    assert s2.scalar(select(func.count()).select_from(AuditLog).where(AuditLog.action == "inspection.sample")) >= 2
    s2.close()
    text = web.visit(page, f"/audit/cases/{case.id}", "auditor-case", allow=NAMES)
    assert "案件全部记录" in page.title() or "经过" in text
    assert "立案" in text and "操作日志" in text
    row = page.inner_text("#documents tr:has-text('99号')")
    assert "已作废" in row and "学生姓名写错" in row
    assert page.locator("form[method=post] button:not(:has-text('退出'))").count() == 0
    # the case page itself offers the auditor no action either
    web.visit(page, f"/cases/{case.id}", "auditor-case-page", allow=NAMES)
    assert page.locator("form[method=post] button:not(:has-text('退出'))").count() == 0


def test_other_county_auditor_sees_nothing(web):
    page = web.login("other.bureau")
    page.goto(web.url("/audit"))
    assert "东河镇" not in page.inner_text("body")


def test_county_admin_installs_a_region_profile_from_the_page(web, live_server, tmp_path):
    from cases.engine import profiles
    from cases.engine.models import InstalledProfile
    from cases.store.models import Org

    data = json.loads((profiles.PROFILE_DIR / "henan-weihui-2022.json").read_text(encoding="utf-8"))
    page = web.login("demo.admin")
    allow = NAMES | {"henan", "weihui", "qinghe"}
    try:
        # a shipped name: refused for a county's administrator, the field named, nothing installed
        shipped = tmp_path / "henan.json"
        shipped.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
        web.visit(page, "/admin#profiles", "admin-profiles", allow=allow)
        page.set_input_files("#install-file", str(shipped))
        page.click("#install-form button")
        problem = page.inner_text("#install-problem")
        assert "没有安装" in problem and "系统自带" in problem and "name：与系统自带的地区配置同名" in problem
        web.check(page, "admin-profile-refused", allow=allow | {"name"})
        # renamed, with a 15-working-day return deadline: installed for 青禾县 and used by it
        data["name"], data["title"] = "qinghe-2027", "青禾县控辍保学规程（2027）"
        data["timers"]["return_deadline"]["length"] = 15
        local = tmp_path / "qinghe.json"
        local.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
        page.set_input_files("#install-file", str(local))
        assert page.locator("#install-org option").all_inner_texts() == ["青禾县"]
        page.check("input[name=counties]")
        page.click("#install-form button")
        text = web.check(page, "admin-profile-installed", allow=allow)
        assert "已安装地区配置“青禾县控辍保学规程（2027）”（qinghe-2027），青禾县改用此配置" in text
        assert "青禾县控辍保学规程（2027）" in page.inner_text("#profile-list tr:has-text('青禾县')")
        row = page.inner_text("#installed-profiles")
        assert "qinghe-2027" in row and "青禾县" in row and "demo.admin" in row
        s = live_server.session()
        assert s.get(InstalledProfile, "qinghe-2027").org_id == live_server.county_id
        assert s.get(Org, live_server.county_id).region_profile == "qinghe-2027"
        assert profiles.load_profile("qinghe-2027").return_deadline.length == 15
        s.close()
        # the page at phone width
        phone = web.login("demo.admin", viewport=(390, 844))
        web.visit(phone, "/admin#profiles", "admin-profiles-phone", allow=allow)
    finally:
        s = live_server.session()
        s.get(Org, live_server.county_id).region_profile = "henan-weihui-2022"
        s.commit()
        s.close()
