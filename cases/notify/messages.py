"""What a push message says (Chinese): the case number, the pupil's name masked, what is due, when,
and a link to the page. Never an ID number: messages are built only from the fields below."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from cases.engine.profiles import ACTORS, ORGS

PREFIX = "【控辍保学】"


@dataclass(frozen=True)
class Message:
    subject: str
    body: str
    link: str | None


def mask_name(name: str | None) -> str:
    """张三 → 张*, 王小明 → 王*明, 欧阳小明 → 欧**明, 阿依古丽·买买提 → 阿******提."""
    name = (name or "").strip()
    if len(name) <= 1:
        return name or "（未登记）"
    if len(name) == 2:
        return name[0] + "*"
    return name[0] + "*" * (len(name) - 2) + name[-1]


def cn_date(day: dt.date) -> str:
    return f"{day.year}年{day.month}月{day.day}日"


def case_link(base_url: str, case_id: int) -> str:
    return f"{base_url.rstrip('/')}/cases/{case_id}"


def deadline_message(*, kind: str, case_number: str, case_id: int, pupil_name: str | None, school: str | None,
                     label: str, actor: str, due_on: dt.date, today: dt.date, base_url: str) -> Message:
    """A T−1 (``due_soon``) or breach alert of one deadline of one case."""
    who = ACTORS.get(actor) or ORGS.get(actor) or actor
    if kind == "breach":
        late = (today - due_on).days
        head = f"{PREFIX}已逾期：{label}（案件{case_number}）"
        when = f"{cn_date(due_on)}到期，已逾期{late}日"
    else:
        head = f"{PREFIX}即将到期：{label}（案件{case_number}）"
        when = f"{cn_date(due_on)}到期" + ("（今日）" if due_on == today else "（明日）" if
                                           (due_on - today).days == 1 else "")
    link = case_link(base_url, case_id)
    body = "\n".join([f"案件：{case_number}" + (f"（{school}）" if school else ""),
                      f"学生：{mask_name(pupil_name)}",
                      f"事项：{label}（责任：{who}）",
                      f"期限：{when}",
                      f"查看：{link}"])
    return Message(head, body, link)


def report_message(*, stage: str, org_name: str, title: str, to: str, as_of: dt.date, due_on: dt.date,
                   base_url: str, org_id: int) -> Message:
    """A reporting-calendar reminder (T−1, due today, overdue)."""
    state = {"due_soon": "明日截止", "due_today": "今日截止", "overdue": "逾期未报送"}[stage]
    link = f"{base_url.rstrip('/')}/reports/not-filed?org_id={org_id}"
    body = "\n".join([f"单位：{org_name}", f"事项：{title}（截至{cn_date(as_of)}）报送{to}",
                      f"期限：{cn_date(due_on)}（{state}）", f"查看：{link}"])
    return Message(f"{PREFIX}{state}：{org_name}{title}", body, link)


def review_message(*, org_name: str, count: int, threshold: int, base_url: str) -> Message:
    link = f"{base_url.rstrip('/')}/review"
    body = "\n".join([f"单位：{org_name}", f"事项：有{count}条新的回收件识别结果待人工复核（提醒阈值{threshold}条）",
                      "期限：请尽快复核，复核后回证日期等方可生效", f"查看：{link}"])
    return Message(f"{PREFIX}待复核{count}条：{org_name}", body, link)


def digest_message(*, day: dt.date, items: list[tuple[str, str]], base_url: str) -> Message:
    """One message listing the day's items (subject, body) instead of single messages."""
    lines = [f"{cn_date(day)}控辍保学提醒汇总，共{len(items)}条："]
    for i, (subject, body) in enumerate(items, 1):
        lines.append(f"{i}. {subject.removeprefix(PREFIX)}")
        lines.extend("   " + line for line in body.splitlines())
    return Message(f"{PREFIX}每日汇总（{len(items)}条）", "\n".join(lines), base_url.rstrip("/") + "/")
