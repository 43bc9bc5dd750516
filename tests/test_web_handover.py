"""Real Chromium (tests/conftest_browser.py): 整班移交 in the browser — a county imports a plan, a
roster with one bad row (shown by row number and reason), generates the 交接表 batch (progress, ZIP),
registers arrivals (one by ID number, one by name + birth date confirmed by a person), records a
proven whereabouts, closes the window (a case for the non-arrival) and reads the 15-day report."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from cases.store.models import Case, Org, Pupil
from forms.validators import synthetic_id_number


def _write(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_county_runs_a_whole_class_handover_in_the_browser(web, live_server, tmp_path):
    s = live_server.session()
    orgs = {o.name: o for o in s.scalars(select(Org))}
    s.close()
    today = dt.date.today()
    window_end = today - dt.timedelta(days=5)
    year = window_end.year
    sending, receiving = orgs["南坪镇中心小学"], orgs["西岭乡初级中学"]
    page = web.login("demo.bureau")
    web.visit(page, "/handover", "index")
    page.fill("#year", str(year))
    page.fill("#window_end", window_end.isoformat())
    page.set_input_files("#plan-file", _write(tmp_path, "方案.csv", "学校标识码,班级,接收学校标识码\n"
                                              f"{sending.code},六年级(9)班,{receiving.code}\n"))
    page.click("#plan-form button")
    text = web.check(page, "plan-created")
    assert "方案已导入，共 1 个班级" in text and "六年级(9)班" in text and "西岭乡初级中学" in text
    plan_url = page.url.split("?")[0]

    births = [dt.date(year - 12, 3, d) for d in (1, 2, 3)]
    ids = [synthetic_id_number("410721", b, 21 + 2 * i) for i, b in enumerate(births)]
    head = "学校标识码,班级,姓名,性别,出生日期,身份证号,全国学籍号,户籍地,监护人,关系,联系电话\n"
    lines = [f"{sending.code},六年级(9)班,{n},男,{b.isoformat()},{i},G{i},青禾县南坪镇后沟村,{n}父,父,1390000222{k}"
             for k, (n, b, i) in enumerate(zip(("赵一", "钱二", "孙三"), births, ids, strict=True))]
    lines.append(f"{sending.code},六年级(9)班,李四,男,2014-01-01,123,G123,后沟村,李大,父,139")
    page.set_input_files("#roster-file", _write(tmp_path, "花名册.csv", head + "\n".join(lines) + "\n"))
    page.click("#roster-form button")
    text = web.check(page, "roster-imported")
    assert "新增 3 人" in text and "1 行未导入" in text
    err = page.inner_text("#roster-errors")
    assert "第 5 行" in err and "身份证号" in err and "联系电话" in err

    page.select_option("#render-form select", "docx")
    page.click("#render-form button")
    page.wait_for_selector("#batch-zip", timeout=60_000)
    text = web.check(page, "batch-done", allow={"ZIP"})
    assert "已完成" in page.inner_text("#batch-job") and "1 / 1" in page.inner_text("#batch-job")
    assert "查看" in page.inner_text("#entries")

    # arrivals: 赵一 by ID number; 钱二 by name + birth date (a person confirms); 孙三 does not come
    page.click("#registrations ~ details summary")
    page.fill("#id_number", ids[0])
    page.fill("#registered_on", (window_end - dt.timedelta(days=1)).isoformat())
    page.click("#register-form button")
    text = web.check(page, "registered-by-id")
    assert "赵一：已匹配" in text
    page.click("#registrations ~ details summary")
    page.fill("#name", "钱二")
    page.fill("#birth_date", births[1].isoformat())
    page.fill("#registered_on", (window_end - dt.timedelta(days=1)).isoformat())
    page.click("#register-form button")
    text = web.check(page, "registered-pending")
    assert "钱二：待确认" in text and "钱二（交接表第2行" in page.inner_text("#pending")
    page.click("#pending button:text('是同一人')")
    text = web.check(page, "confirmed")
    assert "没有待确认的匹配" in text

    page.once("dialog", lambda d: d.accept())
    page.click("#close-form button")
    text = web.check(page, "closed")
    assert "已关闭报到：1 名未报到学生已立案" in page.inner_text("#close-result")
    s = live_server.session()
    sun = s.scalars(select(Pupil).where(Pupil.name == "孙三")).one()
    case = s.scalars(select(Case).where(Case.pupil_id == sun.id)).one()
    assert case.state == "ABSENT" and case.org_id == receiving.id
    s.close()
    totals = page.inner_text("#report tr:last-child")
    assert totals.split()[:5] == ["合计", "3", "2", "1", "0"] or totals.split()[:4] == ["合计", "3", "2", "1"]
    with page.expect_download() as dl:
        page.click("#report-xlsx")
    assert dl.value.suggested_filename.endswith(".xlsx")
    assert page.url.startswith(plan_url)


def test_a_school_sees_no_county_plan_and_another_county_nothing(web, live_server):
    page = web.login("demo.school")
    text = web.visit(page, "/handover", "school-index")
    assert "整班移交" in text
    page = web.login("other.bureau")
    text = web.visit(page, "/handover", "other-county")
    assert "青禾县" not in text and "南坪镇" not in text
