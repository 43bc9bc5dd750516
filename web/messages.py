"""The one message catalogue of the web pages: every code a page shows (states, statuses, actions,
roles, form and variant titles, job and upload states...) becomes Chinese here, and values are
written the way a person reads them (no ``None``/``True``, dates as 2026年3月5日).

Labels that already live with their fact are taken from there (workflow states and transitions,
policy actions and roles, code lists, closure outcomes, form specs); the rest are defined once
below. Templates use the Jinja globals and filters registered by ``init_messages``:

* ``{{ case.state | label('case_state') }}``, ``{{ doc | form_title }}``, ``{{ value | shown }}``,
  ``{{ day | cdate }}``, ``{{ when | cdatetime }}``, ``{{ t('nav.cases') }}``.

``tests/test_web_messages.py`` checks that every code of every list has its label.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Mapping

from markupsafe import Markup

log = logging.getLogger(__name__)

CHINA_TZ = dt.timezone(dt.timedelta(hours=8))
EMPTY = "—"

# ---- labels defined here (facts with no other home) --------------------------------------------

_OWN: dict[str, dict[str, str]] = {
    "document_status": {"rendering": "生成中", "issued": "已生成", "void": "已作废"},
    "upload_status": {"stored": "已保存，待识别", "parsed": "已识别", "failed": "无法识别", "attached": "作为附件保存"},
    "job_status": {"queued": "排队中", "running": "处理中", "done": "已完成", "failed": "失败"},
    "job_kind": {"return_read": "识别回收件", "batch_render": "批量生成文书", "verify_store": "核验存储文件",
                 "dossier_batch": "批量生成卷宗"},
    "page_status": {"read": "已识别", "unidentified": "未能识别是哪份文书", "blank": "空白页", "failed": "无法读取",
                    "assigned": "已人工指定文书"},
    "input_kind": {"docx": "Word 文档", "pdf": "PDF 文件", "scan": "扫描件或照片", "mixed": "多种"},
    "return_status": {"review": "待人工复核", "applied": "已应用到案件", "incomplete": "已收回，但不完整",
                      "partial": "部分收回，未应用到案件"},
    "review_status": {"open": "待复核", "accepted": "已确认", "corrected": "已更正", "rejected": "已驳回"},
    "review_kind": {"low_confidence": "识别把握不大", "invalid": "填写内容不合规", "ambiguous": "有多种可能",
                    "tamper": "印制内容被改动", "confirm": "须人工确认", "discrepancy": "与签发内容不一致"},
    "review_action": {"accept": "确认", "correct": "改正", "reject": "驳回"},
    "change": {"changed": "印制内容被改动", "cleared": "印制内容被删除", "filled_in": "已填写"},
    "deadline_status": {"waiting": "待起算", "open": "进行中", "met": "已按时完成", "breached": "已逾期",
                        "cancelled": "已取消", "elapsed": "期限已过"},
    "problem_status": {"open": "待整改", "resolved": "已整改"},
    "plan_status": {"open": "报到中", "closed": "已关闭报到"},
    "registration_status": {"matched": "已匹配", "pending": "待确认", "unexpected": "名单外报到", "rejected": "已否决"},
    "snapshot_status": {"filed": "已归档", "correction": "更正"},
    "attempts_status": {"not_started": "未开始", "running": "进行中", "met": "已达到", "missed": "未达到"},
    "org_kind": {"province": "省", "prefecture": "市（州）", "county": "县（市、区）", "township": "乡（镇）",
                 "village": "村（居）", "village_group": "村民小组", "school": "学校", "central_school": "中心校",
                 "education_bureau": "教育局", "department": "部门"},
    "attempt_stage": {"school": "学校劝返", "township": "乡（镇）劝返", "joint": "联合劝返"},
    "receipt_by": {"township": "乡(镇)人民政府", "education": "教育部门"},
    "event_kind": {"opened": "立案", "transition": "流转", "attempt": "劝返记录", "facts": "登记情况",
                   "service": "送达", "receipt": "报告单签收",
                   "document_returned": "回收文书", "registration": "报到", "evidence": "销号材料",
                   "referral": "部门函件",
                   "document": "生成文书", "return": "回收文书", "alert": "时限提醒", "breach": "时限逾期",
                   "attendance": "考勤", "note": "备注"},
    "audit_action": {"document.issue": "生成", "document.void": "作废", "document.returned": "收回",
                     "document.print_full_id": "打印（含完整身份证号）",
                     "document.download_full_id.pdf": "下载 PDF（含完整身份证号）",
                     "document.download_full_id.docx": "下载 DOCX（含完整身份证号）"},
    "bool": {"True": "是", "False": "否"},
    # Input names that error messages refer to (a spec's own fields are labelled from the spec).
    "field": {"file": "文件", "files": "文件", "org_id": "单位", "issuer_id": "签发机构", "reason": "理由",
              "date": "日期", "persons": "劝返人员", "place": "地点", "method": "方式", "result": "结果",
              "partners": "成员单位", "stage": "阶段", "statements": "监护人/学生陈述", "next_step": "下一步措施",
              "time": "时间", "code": "办理事项", "value": "值", "document_id": "文书", "page_no": "页码",
              "served_on": "送达日期", "received_on": "签收日期", "kind": "材料类型", "outcome": "销号类型",
              "to_department": "部门", "sent_on": "发函日期", "q": "搜索", "form": "文书", "variant": "文书类别",
              "body": "提交内容", "limit": "分页", "offset": "分页", "csrf_token": "安全令牌"},
}

# Short UI texts used in more than one place (navigation, buttons, empty states).
TEXT: dict[str, str] = {
    "app.name": "保学 · 控辍保学文书与案卷",
    "nav.home": "工作台",
    "nav.pupils": "学生",
    "nav.cases": "案件",
    "nav.forms": "文书",
    "nav.upload": "上传回收件",
    "nav.review": "复核",
    "nav.handover": "整班移交",
    "nav.ledgers": "台账",
    "nav.indicators": "指标",
    "nav.audit": "督导",
    "nav.admin": "管理",
    "nav.account": "我的账号",
    "nav.logout": "退出",
    "empty": "暂无",
    "back.home": "返回工作台",
    "provisional": "暂定",
    "provisional.help": "该年度节假日表尚未载入，日期为暂定，载入后会重新计算",
}

# Navigation: (text key, endpoint, action). An entry shows when the endpoint exists (pages may be
# added by other modules later) and the user's roles grant the action somewhere.
NAV: tuple[tuple[str, str, str], ...] = (
    ("nav.home", "pages.index", "forms.read"),
    ("nav.pupils", "casepages.pupils", "pupil.read"),
    ("nav.cases", "casepages.cases", "case.read"),
    ("nav.forms", "pages.forms", "forms.read"),
    ("nav.upload", "returnpages.upload_form", "upload.create"),
    ("nav.review", "returnpages.review", "review.read"),
    ("nav.handover", "handoverpages.index", "handover.read"),
    ("nav.ledgers", "ledgerpages.index", "ledger.read"),
    ("nav.indicators", "ledgerpages.indicators", "indicator.read"),
    ("nav.audit", "auditpages.index", "audit.read"),
    ("nav.admin", "adminpages.index", "user.read"),
)


def _from_homes() -> dict[str, dict[str, str]]:
    """Labels owned elsewhere: read them from where the fact lives."""
    from cases.accounts.policy import ACTIONS, ROLES
    from cases.engine import workflow
    from cases.engine.closure import EVIDENCE_KINDS, OUTCOMES
    from cases.engine.profiles import ORGS
    from forms import codes

    def choices(items) -> dict[str, str]:
        return {c.code: c.label for c in items}

    return {
        "case_state": dict(workflow.STATES),
        "transition": {t.code: t.label for t in workflow.TRANSITIONS},
        "actor": {**ORGS, **workflow.ACTORS},
        "action": {a.code: a.label for a in ACTIONS.values()},
        "role": {r.code: r.label for r in ROLES.values()},
        "outcome": dict(OUTCOMES),
        "evidence_kind": dict(EVIDENCE_KINDS),
        "reason": choices(codes.DROPOUT_REASONS),
        "attempt_method": choices(codes.ATTEMPT_METHODS),
        "attempt_result": choices(codes.ATTEMPT_RESULTS),
        "partner": choices(codes.PARTNER_DEPARTMENTS),
        "service_method": choices(codes.SERVICE_METHODS),
        "whereabouts": choices(codes.WHEREABOUTS),
        "handover_whereabouts": choices(codes.HANDOVER_WHEREABOUTS),
        "placement": choices(codes.PLACEMENTS),
        "grade": choices(codes.GRADES),
        "poverty": choices(codes.POVERTY_CATEGORIES),
        "special_group": choices(codes.SPECIAL_GROUPS),
    }


_CATALOGUE: dict[str, dict[str, str]] | None = None


def catalogue() -> dict[str, dict[str, str]]:
    global _CATALOGUE
    if _CATALOGUE is None:
        merged = dict(_OWN)
        for kind, table in _from_homes().items():
            merged[kind] = {**table, **merged.get(kind, {})}
        _CATALOGUE = merged
    return _CATALOGUE


def label(code, kind: str) -> str:
    """The Chinese label of ``code`` in list ``kind``; ``—`` for no value. An unknown code is logged
    and shown as “其他”, never as the code itself."""
    if code is None or code == "":
        return EMPTY
    table = catalogue().get(kind)
    if table is None:
        raise KeyError(f"no label list {kind!r} in web.messages")
    key = str(code)
    if key in table:
        return table[key]
    log.warning("no label for %s %r", kind, code)
    return "其他"


def labels(kind: str) -> Mapping[str, str]:
    """Every code → label of ``kind`` (for select boxes)."""
    return catalogue()[kind]


def field_label(name) -> str:
    """A field named in an error: its label when known; a bare code name becomes “填写项”."""
    if name is None:
        return EMPTY
    name = str(name)
    table = catalogue()["field"]
    if name in table:
        return table[name]
    base = name.split(".")[0].split("[")[0]
    if base in table:
        return table[base]
    return name if not name.isascii() else "填写项"


def t(key: str, **values) -> str:
    text = TEXT[key]
    return text.format(**values) if values else text


# ---- values as a person reads them ----------------------------------------------------------------

def cdate(value) -> str:
    """2026年3月5日 (a date or an ISO string); ``—`` for none."""
    if value is None or value == "":
        return EMPTY
    if isinstance(value, str):
        try:
            value = dt.date.fromisoformat(value[:10])
        except ValueError:
            return value
    if isinstance(value, dt.datetime):
        value = to_local(value).date()
    return f"{value.year}年{value.month}月{value.day}日"


def to_local(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(CHINA_TZ)


def cdatetime(value) -> str:
    """2026年3月5日 14:05 in China time; ``—`` for none."""
    if value is None or value == "":
        return EMPTY
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            return value
    local = to_local(value)
    return f"{local.year}年{local.month}月{local.day}日 {local:%H:%M}"


def shown(value, empty: str = EMPTY) -> str:
    """Any value for a page: none → ``—``, booleans → 是/否, dates in Chinese, lists joined with 、."""
    if value is None or value == "" or value == []:
        return empty
    if isinstance(value, bool):
        return "是" if value else "否"
    if isinstance(value, dt.datetime):
        return cdatetime(value)
    if isinstance(value, dt.date):
        return cdate(value)
    if isinstance(value, (list, tuple)):
        return "、".join(shown(v, "") for v in value if v not in (None, "")) or empty
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, str) and _ISO_DATE.fullmatch(value):
        return cdate(value)  # rows of ledgers and reports carry dates as ISO text
    return str(value)


_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def form_title(form: str | object, variant: str | None = None) -> str:
    """The title a person knows a form or variant by. Variants sharing a title (four 责任书 are all
    “控辍保学工作责任书”) add their parties (the spec's subtitle), so each reads differently.
    Accepts a form code or a document row."""
    from forms.registry import get_spec

    if not isinstance(form, str):
        form, variant = form.form, getattr(form, "variant", None)
    try:
        spec = get_spec(form)
    except KeyError:
        return "未知文书"
    if not variant or not spec.variants:
        return spec.title
    try:
        var = spec.variant(variant)
    except (KeyError, ValueError):
        return spec.title
    same = [v for v in spec.variants if v.title == var.title]
    subtitle = (var.data or {}).get("subtitle") if hasattr(var, "data") else None
    if len(same) > 1 and subtitle:
        return f"{var.title}{subtitle}"
    return var.title


def days_left(due: dt.date | None, today: dt.date | None = None) -> str:
    """“还剩3天” / “今天到期” / “已逾期2天” (calendar days to a due date computed in working days)."""
    if due is None:
        return "待起算"
    if isinstance(due, str):
        due = dt.date.fromisoformat(due[:10])
    today = today or dt.datetime.now(CHINA_TZ).date()
    n = (due - today).days
    if n > 0:
        return f"还剩{n}天"
    if n == 0:
        return "今天到期"
    return f"已逾期{-n}天"


def _page_list(pages) -> str:
    return "、".join(f"第{p}页" for p in pages)


def return_pages(received, expected) -> str:
    """Which pages of a returned document came back, as a person reads it: 已收回第1页，共2页，缺第2页
    (empty when not known or the document has one page that came back)."""
    if not expected or received is None:
        return ""
    got = [p for p in expected if p in set(received)]
    lacking = [p for p in expected if p not in set(received)]
    if not lacking:
        return "" if len(expected) == 1 else f"已收回全部{len(expected)}页"
    head = f"已收回{_page_list(got)}，" if got else "尚未收回任何一页，"
    return f"{head}共{len(expected)}页，缺{_page_list(lacking)}"


def init_messages(app) -> None:
    env = app.jinja_env
    env.filters["label"] = label
    env.filters["shown"] = shown
    env.filters["cdate"] = cdate
    env.filters["field_label"] = field_label
    env.filters["cdatetime"] = cdatetime
    env.filters["form_title"] = lambda form, variant=None: form_title(form, variant)
    env.globals["t"] = t
    env.globals["labels"] = labels
    env.globals["form_title"] = form_title
    env.globals["days_left"] = days_left
    env.globals["return_pages"] = return_pages
    # A None that slips through a template prints as “—”, never as “None”.
    env.finalize = _finalize


def _finalize(value):
    if value is None:
        return EMPTY
    if isinstance(value, bool):
        return "是" if value else "否"
    if isinstance(value, Markup):
        return value
    return value
