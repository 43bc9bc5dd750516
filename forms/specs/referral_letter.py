"""The 部门函件 family (DOMAIN §5.5, §1.4, §3.4): 协查函 / 交办(转介)函 / 书面通知.

A township or education department writes to another unit about one child: 公安 to find a child
out of contact (协查函), a partner department chosen by the dropout reason (交办函, §3.4), or the
education department of the child's 户籍 area when a migrant child moves on (书面通知, §1.4 rule 2).
Each letter prints as two parts, each on a new page: the letter itself (正文) and the reply slip
(回执) that the receiving unit fills in, seals and sends back. Both carry the same letter number.
The printed wording that differs between variants (opening, request lead-in, closing) is
``Variant.data``; ``department`` names the receiving department a variant is bound to (None: any
partner department).
"""

from __future__ import annotations

import datetime as dt

from forms import codes
from forms.checks import check_dates_order, check_person_identity, require_when
from forms.layout import (
    PORTRAIT_W6,
    Banji,
    Grid,
    Label,
    Layout,
    Para,
    Part,
    Signoff,
    Spacer,
    Title,
    Value,
    labeller,
    row,
)
from forms.spec import Field, Filled, FormSpec, Kind, Variant

F = Field
H = Filled.HAND
S = Filled.SYSTEM

FIELDS = (
    # ---- the letter --------------------------------------------------------------------------------
    F("doc_number", "函号", filled=S),
    F("issue_date", "发函日期", Kind.DATE, required=True, boxes=8, source="referral.sent_on|issue.date"),
    F("from_unit", "发函单位", required=True, max_length=40,
      help="如：卫辉市城关镇人民政府、卫辉市教育局", source="referral.from_unit"),
    F("to_department", "受函部门", Kind.CHOICE, required=True, choices=codes.PARTNER_DEPARTMENTS,
      compact=True, source="referral.to_department"),
    F("to_unit", "受函单位", required=True, max_length=40, help="如：卫辉市公安局城关派出所",
      source="referral.to_unit"),
    F("student_name", "学生姓名", Kind.NAME, required=True, source="pupil.name"),
    F("student_sex", "性别", Kind.CHOICE, required=True, choices=codes.SEX, source="pupil.sex"),
    F("student_birth_date", "出生日期", Kind.DATE, boxes=8, source="pupil.birth_date"),
    F("student_id_number", "身份证号", Kind.ID_NUMBER, mask_on_print=True,
      full_print_when=(("to_department", ("gongan",)),),
      help="无身份证号的儿童(G12)可不填；打印时只显示前6位和后4位，致公安机关的协查函打印全号（记入审计日志）",
      source="pupil.id_number"),
    F("school_name", "学籍所在学校", required=True, max_length=40, source="school.name"),
    F("grade", "年级", Kind.CHOICE, required=True, choices=codes.GRADES, compact=True, source="class.grade"),
    F("hukou_place", "户籍地", max_length=60, help="书面通知(户籍地教育部门)必填", source="pupil.hukou_text"),
    F("home_address", "现住址/最后居住地", max_length=80, source="pupil.address"),
    F("guardian_name", "监护人", Kind.NAME, source="guardian.name"),
    F("guardian_phone", "监护人电话", Kind.PHONE, source="guardian.phone"),
    F("absent_since", "未到校起始日期", Kind.DATE, required=True, source="case.opened_on"),
    F("reason", "辍学原因", Kind.CHOICE, required=True, choices=codes.DROPOUT_REASONS, source="case.reason_code"),
    F("facts", "基本情况", required=True, max_length=300,
      help="已开展的劝返工作、学生现去向等", source="referral.reason"),
    F("request_text", "请协助事项", required=True, max_length=300, source="referral.request|variant.default_request"),
    F("reply_by", "回复期限", Kind.DATE, required=True, boxes=8, source="referral.reply_by"),
    F("contact_person", "联系人", Kind.NAME, required=True),
    F("contact_phone", "联系电话", Kind.PHONE, required=True),
    F("cc", "抄送", max_length=100),
    F("issuer_seal", "发函单位印章", Kind.SEAL, filled=H),
    # ---- 回执 (filled in by the receiving unit) -----------------------------------------------------
    F("received_on", "收函日期", Kind.DATE, filled=H, boxes=8),
    F("reply_text", "办理情况", filled=H, max_length=300),
    F("reply_handler", "经办人", Kind.NAME, filled=H),
    F("reply_phone", "经办人电话", Kind.PHONE, filled=H, boxes=11),
    F("replied_on", "回复日期", Kind.DATE, filled=H, boxes=8),
    F("reply_signature", "负责人签名", Kind.SIGNATURE, filled=H),
    F("reply_seal", "受函单位印章", Kind.SEAL, filled=H),
)

W6 = PORTRAIT_W6


lv = labeller(FIELDS)


# Printed wording per variant (data, not code branches). ``department``: the PARTNER_DEPARTMENTS
# code the letter must go to (None: any partner, chosen by reason, DOMAIN §3.4).
VARIANTS = (
    Variant("xiecha", "协查函", number_abbr="协查", data={
        "department": "gongan",
        "opening": "我单位在控辍保学工作中发现，下列适龄儿童少年辍学后与家庭、学校失去联系，"
                   "经多次查找仍下落不明。",
        "ask": "根据《中华人民共和国义务教育法》和控辍保学工作有关规定，请贵单位协助查找该生下落，"
               "并将查询结果函复我单位。",
        "closing": "感谢贵单位对控辍保学工作的支持。",
        "default_request": "请协助查找该生下落，核查其现居住地、联系方式及监护人去向。",
    }),
    Variant("jiaoban", "控辍保学工作交办函", number_abbr="交办", data={
        "department": None,
        "opening": "我单位在控辍保学工作中发现下列适龄儿童少年辍学，经学校和乡(镇)多次劝返未果。"
                   "根据辍学原因，需贵单位依职责参与联合劝返。",
        "ask": "请贵单位按照控辍保学部门职责分工，协助做好以下工作，并将办理情况函复我单位。",
        "closing": "特此函告。",
        "default_request": "请依职责参与联合劝返，督促监护人送其返校，并告知办理情况。",
    }),
    Variant("tongzhi", "随迁子女辍学情况书面通知", number_abbr="通知", data={
        "department": "jiaoyu",
        "opening": "下列随迁子女在本地就读期间辍学，现已离开本地，户籍在贵地。根据控辍保学"
                   "工作有关规定，现书面通知户籍所在地，请会同现流入地做好劝返复学工作。",
        "ask": "请贵单位接到本通知后及时核实该生去向，组织劝返，并将办理情况函复我单位。",
        "closing": "特此通知。",
        "default_request": "请核实该生是否已返回户籍地，组织劝返复学，并告知办理情况。",
    }),
)

REPLY_DAYS = 15  # calendar days to reply when the caller names no deadline (at most 90, see checks)

# Names of the county-level units by department, for a default 受函单位 ("{county}{unit}")
DEPARTMENT_UNITS = {
    "gongan": "公安局", "sifa": "司法局", "minzheng": "民政局", "renshe": "人力资源和社会保障局",
    "canlian": "残疾人联合会", "weijian": "卫生健康委员会", "xczx": "乡村振兴局", "minzong": "民族宗教事务局",
    "jiaoyu": "教育局", "scjg": "市场监督管理局",
}


def variant_for(to_department: str, reason: str | None) -> str:
    """Which letter a referral needs: 协查函 to 公安 for a child out of contact (R08), 书面通知 to
    the 户籍-area education department for a migrant child (R11), otherwise a 交办函 (DOMAIN §3.4)."""
    if to_department == "gongan" and reason == "R08":
        return "xiecha"
    if to_department == "jiaoyu" and reason == "R11":
        return "tongzhi"
    return "jiaoban"


REPLY_NOTE = "注：请受函单位在回复期限内填写本回执，签名盖章后寄回或送回发函单位；逾期未复的，发函单位将再次函询。"


def _letter() -> Part:
    """The letter in GB/T 9704 form: title, 函号, the receiving unit addressed (主送), the opening,
    the child's particulars, the facts and the request as prose, the ask with the reply deadline,
    the 落款 (sender over the date, seal pressing on both), the 附注 with the contact and the
    抄送 版记 (when there is one) at the foot of the last page."""
    return Part("letter", "正文", blocks=(
        Title("{variant.title}"),
        Para("{doc_number}", align="center", indent=False),
        Spacer(6),
        Para("{to_unit}：", indent=False),
        Para("{variant.opening}"),
        Grid(rows=(
            row(lv("student_name"), lv("student_sex"), lv("student_birth_date")),
            row(lv("student_id_number", 3), lv("grade")),
            row(lv("school_name", 5)),
            row(lv("hukou_place", 5)),
            row(lv("home_address", 5)),
            row(lv("guardian_name"), lv("guardian_phone", 3)),
            row(lv("absent_since"), lv("reason", 3)),
        ), widths=W6),
        Para("基本情况：{facts}"),
        Para("请协助事项：{request_text}"),
        Para("{variant.ask}请于{reply_by}前将回执寄回。{variant.closing}"),
        Signoff(("from_unit",), "issue_date", ("issuer_seal",)),
        Para("（联系人：{contact_person}，联系电话：{contact_phone}）"),
        Banji(("抄送：{cc}。",), when="cc"),
    ))


def _reply() -> Part:
    return Part("reply", "回执", blocks=(
        Title("{variant.title}（回执）"),
        Grid(rows=(
            row(lv("doc_number", 3, label="来函函号"), lv("issue_date")),
            row(lv("from_unit", 5)),
            row(lv("to_unit", 3), lv("to_department")),
            row(lv("student_name"), lv("student_sex"), lv("grade")),
            row(lv("received_on", 3), lv("reply_handler")),
            row(lv("replied_on", 5)),
            row(lv("reply_phone", 5)),
            row(lv("reply_text", 5, 60)),
            row(lv("reply_signature", 5, 15)),
            row(Label("受函单位印章"), Value("reply_seal", span=5, height_mm=32)),
        ), widths=W6, keep=True),
        Para(REPLY_NOTE, indent=False, style="small"),
    ))


LAYOUT = Layout((_letter(), _reply()), template_key=None)


def layout(_variant: Variant | None) -> Layout:
    """Two parts (正文, 回执), the same for every variant: only the printed wording differs."""
    return LAYOUT


# ---- cross-field checks --------------------------------------------------------------------------

def _check_department(data: dict, variant: Variant | None, _options) -> dict[str, str]:
    """协查函 goes to 公安, 书面通知 to the 户籍-area education department; a 交办函 to any partner."""
    wanted = variant.data.get("department") if variant is not None else None
    got = data.get("to_department")
    if wanted and got and got != wanted:
        label = {c.code: c.label for c in codes.PARTNER_DEPARTMENTS}[wanted]
        return {"to_department": f"《{variant.title}》的受函部门应为{label}"}
    return {}


def _check_hukou(data: dict, variant: Variant | None, _options) -> dict[str, str]:
    if variant is not None and variant.code == "tongzhi" and not data.get("hukou_place"):
        return {"hukou_place": "书面通知户籍所在地时须写明学生户籍地"}
    return {}


def _check_dates(data: dict, _variant, _options) -> dict[str, str]:
    """The reply deadline lies after the letter; nothing was issued, received or replied in the future."""
    errs: dict[str, str] = {}
    issued, reply_by = data.get("issue_date"), data.get("reply_by")
    if issued and reply_by and reply_by <= issued:
        errs["reply_by"] = "回复期限应晚于发函日期"
    if issued and reply_by and (reply_by - issued).days > 90:
        errs["reply_by"] = "回复期限不应超过发函后90天"
    for name, label in (("issue_date", "发函日期"), ("received_on", "收函日期"), ("replied_on", "回复日期"),
                        ("absent_since", "未到校起始日期")):
        when = data.get(name)
        if when and when > dt.date.today():
            errs[name] = f"{label}不能是未来的日期"
    return errs


def _check_reply(data: dict, _variant, _options) -> dict[str, str]:
    """A returned 回执 with a reply must say when it was written and who handled it."""
    errs: dict[str, str] = {}
    if data.get("reply_text"):
        if not data.get("replied_on"):
            errs["replied_on"] = "填写了办理情况时须写明回复日期"
        if not data.get("reply_handler"):
            errs["reply_handler"] = "填写了办理情况时须写明经办人"
    return errs


SPEC = FormSpec(
    code="referral_letter",
    role="department_letter",
    title="部门函件",
    version="2026.1",
    fields=FIELDS,
    layout=layout,
    variants=VARIANTS,
    number_abbr="函",
    dossier_item=7,
    # the department sends back the 回执 (the 正文 stays with it)
    returned_parts=("reply",),
    description="乡(镇)人民政府或教育部门致公安、联合劝返部门或户籍地教育部门的协查函、交办函、"
                "书面通知，每份打印正文和回执两联，共用同一函号",
    checks=(
        check_person_identity("student_id_number", sex="student_sex", birth="student_birth_date"),
        check_dates_order(("absent_since", "issue_date"), ("issue_date", "received_on"),
                          ("received_on", "replied_on"), ("issue_date", "replied_on")),
        require_when("facts", "reason", {"R99"}, "原因为“其他”时须在基本情况中写明"),
        _check_department,
        _check_hukou,
        _check_dates,
        _check_reply,
    ),
)
