"""The guardian notice family (DOMAIN §5.2): 限期返校 / 劝返复学 / 敦返复学 / 责令复学通知书.

Each notice prints as three parts, each on a new page: 存根 (kept by the issuer, §5.2.2), 正本
(served on the guardian, §5.2.1) and 送达回证 (proof of service, §5.2.3). All three carry the same
notice number. The printed wording that differs between variants (facts, demand, consequences)
is ``Variant.data``; the statute text is the ``legal_basis`` table, filled by the caller from the
versioned library (``forms.legal.legal_basis_rows``). The return deadline is "N working days from
service" (N from the region profile); ``return_deadline_date`` is printed when the caller knows
the service date and has computed it with the working-day calendar, and is blank otherwise.

``receipt_complete`` states the §5.2.3 validity rule of a returned 回证: only a complete 回证
starts the return-deadline clock.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from forms import codes, legal
from forms import validators as v
from forms.checks import check_person_identity
from forms.layout import (
    PORTRAIT_W6,
    Banji,
    Grid,
    Items,
    Layout,
    Para,
    Part,
    Signoff,
    Spacer,
    Title,
    labeller,
    row,
)
from forms.spec import Effect, Field, Filled, FormSpec, IssueContext, Kind, Variant, is_blank

F = Field
H = Filled.HAND
S = Filled.SYSTEM

FIELDS = (
    # ---- shared by the three parts --------------------------------------------------------------
    F("doc_number", "文号", filled=S),
    F("issue_date", "发文日期", Kind.DATE, filled=S, boxes=8, source="issue.date"),
    F("issuer_name", "发文机关", required=True, max_length=40,
      help="如：某某县某某镇人民政府；责令复学通知书由乡(镇)人民政府署名，司法所会签", source="issuer.title"),
    F("countersigner_name", "会签单位", max_length=40, help="仅责令复学通知书：会签的司法所"),
    F("guardian_name", "监护人", Kind.NAME, required=True, source="guardian.name"),
    F("guardian2_name", "监护人(二)", Kind.NAME, help="父母双方均为受文人时填写", source="guardian2.name"),
    F("guardian_relation", "与学生关系", Kind.CHOICE, required=True, choices=codes.RELATIONSHIPS,
      source="guardian.relation"),
    F("guardian_phone", "监护人电话", Kind.PHONE, required=True, source="guardian.phone"),
    F("guardian_address", "家庭住址", required=True, max_length=80, source="guardian.address|pupil.address"),
    F("student_name", "学生姓名", Kind.NAME, required=True, source="pupil.name"),
    F("student_sex", "性别", Kind.CHOICE, required=True, choices=codes.SEX, source="pupil.sex"),
    F("student_id_number", "身份证号", Kind.ID_NUMBER, mask_on_print=True,
      help="无身份证号的儿童(G12)可不填；打印时只显示前6位和后4位", source="pupil.id_number"),
    F("school_name", "就读学校", required=True, max_length=40, source="school.name"),
    F("grade", "年级", Kind.CHOICE, required=True, choices=codes.GRADES, compact=True, source="class.grade"),
    F("class_name", "班级", max_length=20, source="class.name"),
    # ---- 正本: facts, legal basis, demand, consequences, contacts ----------------------------------
    F("absent_since", "未到校起始日期", Kind.DATE, required=True, source="case.opened_on"),
    F("persuasion_count", "已劝返次数", Kind.INT, required=True, source="case.attempt_count"),
    F("persuasion_dates", "历次劝返日期", max_length=120, source="case.attempt_days"),
    F("legal_basis", "法律依据", Kind.TABLE, filled=S, max_rows=20, columns=(
        F("law", "法律名称", filled=S, max_length=60),
        F("article", "条款", filled=S, max_length=30),
        F("text", "条文", filled=S, max_length=2000),
        F("law_id", "法律代码", filled=S, max_length=60),
        F("version", "版本", filled=S, max_length=30),
        F("sha256", "文本哈希", filled=S, max_length=64),
    )),
    F("return_deadline_days", "返校期限(工作日)", Kind.INT, filled=S,
      help="自送达之日起的工作日数，取自地区配置(卫辉：5)"),
    F("return_deadline_date", "返校截止日期", Kind.DATE, filled=S,
      help="送达日期已知时由系统按工作日历计算；未知时打印空白"),
    F("return_school", "报到学校", required=True, max_length=40, source="school.name"),
    F("report_place", "报到地点", required=True, max_length=60),
    F("contact_person", "联系人", Kind.NAME, required=True),
    F("contact_phone", "联系电话", Kind.PHONE, required=True),
    F("help_text", "可享受的帮扶政策", max_length=200, help="如：两免一补、营养改善计划、送教上门"),
    F("helper_name", "帮扶联系人", Kind.NAME),
    F("helper_phone", "帮扶联系人电话", Kind.PHONE),
    F("cc", "抄送", required=True, max_length=100),
    F("issuer_seal", "发文机关印章", Kind.SEAL, filled=H),
    F("countersign_seal", "会签单位印章", Kind.SEAL, filled=H),
    # ---- 存根 ----------------------------------------------------------------------------------
    F("handler_name", "经办人", Kind.NAME, required=True),
    F("handler_signature", "经办人签名", Kind.SIGNATURE, filled=H),
    F("approver_name", "审批人", Kind.NAME),
    F("approver_signature", "审批人签名", Kind.SIGNATURE, filled=H),
    F("stub_service_method", "存根送达方式", Kind.CHOICE, filled=H, choices=codes.SERVICE_METHODS, confirm=True),
    F("stub_service_date", "存根送达日期", Kind.DATE, filled=H, boxes=8, confirm=True),
    F("stub_remarks", "存根备注", filled=H, max_length=100),
    # ---- 送达回证 --------------------------------------------------------------------------------
    F("receipt_number", "回证编号", filled=S, series="送回"),
    F("recipient_name", "受送达人", Kind.NAME, filled=H, case_person=True, help="可预填监护人姓名",
      source="guardian.name"),
    F("recipient_relation", "受送达人与学生关系", Kind.CHOICE, filled=H, choices=codes.RELATIONSHIPS),
    F("service_place", "送达地点", filled=H, max_length=80, help="可预填家庭住址",
      source="guardian.address|pupil.address"),
    F("service_time", "送达时间", Kind.DATETIME, filled=H, confirm=True),
    F("service_method", "送达方式", Kind.CHOICE, filled=H, choices=codes.SERVICE_METHODS, confirm=True),
    F("recipient_signature", "受送达人签名(捺印)", Kind.SIGNATURE, filled=H),
    F("recipient_signed_on", "签收日期", Kind.DATE, filled=H, boxes=8, confirm=True),
    F("proxy_name", "代收人", Kind.NAME, filled=H),
    F("proxy_relation", "与受送达人关系", filled=H, max_length=20),
    F("proxy_reason", "代收理由", filled=H, max_length=60),
    F("proxy_signature", "代收人签名", Kind.SIGNATURE, filled=H),
    F("refusal_reason", "拒收事由", filled=H, max_length=200),
    F("witness_name", "见证人", Kind.NAME, filled=H),
    F("witness_unit", "见证人单位", filled=H, max_length=40),
    F("witness_signature", "见证人签名", Kind.SIGNATURE, filled=H),
    F("server_signature_1", "送达人签名(一)", Kind.SIGNATURE, filled=H),
    F("server_signature_2", "送达人签名(二)", Kind.SIGNATURE, filled=H),
    F("receipt_remarks", "回证备注", filled=H, max_length=200),
)

W6 = PORTRAIT_W6


lv = labeller(FIELDS)


# Printed wording per variant (data, not code branches). ``demand`` leads into "自送达之日起…";
# ``countersign`` says whether the 司法所 countersigns (DOMAIN §9 Q15).
VARIANTS = (
    Variant("xianqi", "限期返校通知书", number_abbr="限返", data={
        "issuer_kind": "乡(镇)人民政府",
        "facts": "学校已多次家访劝返，并向本机关报送了《义务教育阶段学生辍学情况报告单》。"
                 "你未依法保证被监护人按时入学接受义务教育，违反了下列法律规定：",
        "demand": "根据《中华人民共和国义务教育法》第五十八条的规定，现对你进行批评教育，并责令你",
        "consequences": "逾期仍不送被监护人返校的，本机关将会同有关部门进行联合劝返，并会同司法部门"
                        "依法发出责令复学通知书；情节严重的，依法追究你的法律责任。",
        "countersign": False,
    }),
    Variant("quanfan", "劝返复学通知书", number_abbr="劝返", issuer="education_bureau", data={
        "issuer_kind": "教育行政部门/学校",
        "facts": "学校已多次家访劝返，该生至今未返校就读。依照下列法律规定，你应当保证被监护人"
                 "接受并完成义务教育：",
        "demand": "现劝告你认真履行监护职责，",
        "consequences": "逾期仍未返校的，学校将报告乡(镇)人民政府和教育行政部门，依法对你批评教育、"
                        "责令限期改正；拒不改正的，依法追究你的法律责任。",
        "countersign": False,
    }),
    Variant("dunfan", "敦返复学通知书", number_abbr="敦返", data={
        "issuer_kind": "乡(镇)人民政府",
        "facts": "本机关已会同学校、村(居)委会两次上门劝返，该生仍未返校就读。"
                 "你的行为违反了下列法律规定：",
        "demand": "根据《中华人民共和国义务教育法》第五十八条的规定，现敦促你",
        "consequences": "逾期仍不送被监护人返校的，本机关将会同司法部门依法发出责令复学"
                        "通知书；情节严重的，依法提起诉讼，由你承担相应的法律责任。",
        "countersign": False,
    }),
    Variant("zeling", "责令复学通知书", number_abbr="责令", dossier_item=8, data={
        "issuer_kind": "乡(镇)人民政府(司法所会签)",
        "facts": "经学校、乡(镇)人民政府及有关部门多次联合劝返，你仍未送被监护人返校就读，"
                 "违反了下列法律规定：",
        "demand": "依照《中华人民共和国义务教育法》第五十八条的规定，现责令你",
        "consequences": "逾期拒不改正的，将依法对你予以训诫，并可以责令你接受家庭教育指导；"
                        "情节严重的，依法提起诉讼，由你承担相应的法律责任。",
        "countersign": True,
    }),
)

RECEIPT_NOTE = ("注：受送达人拒绝签收的，送达人应当邀请有关基层组织或者所在单位的代表到场，说明情况，"
                "在本回证上记明拒收事由和日期，由送达人、见证人签名，把文书留在受送达人的住所，即视为送达。")


def _stub() -> Part:
    return Part("stub", "存根", blocks=(
        Title("{variant.title}（存根）"),
        Grid(rows=(
            row(lv("doc_number", 3), lv("issue_date")),
            row(lv("student_name"), lv("student_sex"), lv("grade")),
            row(lv("school_name", 3), lv("class_name")),
            row(lv("guardian_name"), lv("guardian_relation", 3)),
            row(lv("guardian_phone"), lv("guardian_address", 3)),
            row(lv("return_deadline_days"), lv("return_deadline_date"), lv("issuer_name")),
            row(lv("handler_name"), lv("handler_signature", 3, 12)),
            row(lv("approver_name"), lv("approver_signature", 3, 12)),
            row(lv("stub_service_method", 5, label="送达方式")),
            row(lv("stub_service_date", 5, label="送达日期")),
            row(lv("stub_remarks", 5, label="备注")),
        ), widths=W6),
    ))


def _original(countersigned: bool) -> Part:
    """The notice itself in GB/T 9704 form: title, 文号, the guardian addressed (主送), the facts, the
    particulars of the child, the legal provisions as numbered prose, the demand, contacts, the
    consequences, the 落款 (issuer — and the countersigning 司法所 — over the date, seals pressing
    on both) and the 抄送 版记 at the foot of the last page."""
    names = ("issuer_name", "countersigner_name") if countersigned else ("issuer_name",)
    seals = ("issuer_seal", "countersign_seal") if countersigned else ("issuer_seal",)
    return Part("original", "正本", blocks=(
        Title("{variant.title}"),
        Para("{doc_number}", align="center", indent=False),
        Spacer(6),
        Para("{guardian_name}：", indent=False),
        Para("经查，你的被监护人{student_name}自{absent_since}起未到校就读，"
             "学校及有关部门已先后劝返{persuasion_count}次，仍未返校。{variant.facts}"),
        Grid(rows=(
            row(lv("student_name"), lv("student_sex"), lv("grade")),
            row(lv("student_id_number", 3), lv("class_name")),
            row(lv("school_name", 5)),
            row(lv("persuasion_dates", 5)),
            row(lv("guardian2_name", label="其他监护人"), lv("guardian_address", 3)),
        ), widths=W6),
        Items("legal_basis", "（{_cn}）{law}{article}：{text}"),
        Para("{variant.demand}自送达之日起{return_deadline_days}个工作日内（即{return_deadline_date}前），"
             "将被监护人{student_name}送回{return_school}报到复学。"),
        Grid(rows=(
            row(lv("report_place", 5)),
            row(lv("contact_person"), lv("contact_phone", 3)),
            row(lv("help_text", 5)),
            row(lv("helper_name"), lv("helper_phone", 3)),
        ), widths=W6),
        Para("{variant.consequences}"),
        Signoff(names, "issue_date", seals),
        Banji(("抄送：{cc}。",)),
    ))


def _receipt() -> Part:
    return Part("receipt", "送达回证", blocks=(
        Title("送达回证"),
        Para("送达文书：《{variant.title}》", indent=False),
        Grid(rows=(
            row(lv("receipt_number"), lv("doc_number", 3, label="送达文书文号")),
            row(lv("issuer_name", 5, label="送达机关")),
            row(lv("recipient_name"), lv("recipient_relation", 3, label="与学生关系")),
            row(lv("service_place", 5)),
            row(lv("service_time", 5)),
            row(lv("service_method", 5)),
            row(lv("recipient_signature", 5, 15)),
            row(lv("recipient_signed_on", 5)),
            row(lv("proxy_name"), lv("proxy_relation", 3)),
            row(lv("proxy_reason", 3), lv("proxy_signature", 1, 15)),
            row(lv("refusal_reason", 5, 12)),
            row(lv("witness_name"), lv("witness_unit"), lv("witness_signature", 1, 15)),
            row(lv("server_signature_1", 2, 15), lv("server_signature_2", 2, 15)),
            row(lv("receipt_remarks", 5, 12, label="备注")),
        ), widths=W6),
        Para(RECEIPT_NOTE, indent=False, style="small"),
    ))


_PLAIN = Layout((_stub(), _original(False), _receipt()), template_key=None)
_COUNTERSIGNED = Layout((_stub(), _original(True), _receipt()), template_key="countersigned")


def layout(variant: Variant | None) -> Layout:
    """Three parts (存根, 正本, 送达回证); the 责令 variant adds the 司法所 countersignature zone."""
    return _COUNTERSIGNED if variant is not None and variant.data.get("countersign") else _PLAIN


# ---- the §5.2.3 validity rule of a returned 回证 ----------------------------------------------------

def receipt_complete(values: Mapping[str, Any]) -> tuple[bool, list[str]]:
    """Whether a returned 送达回证 proves service (so the return deadline starts), and what is missing.

    Complete when the service time and method are present, at least one serving officer signed, and
    either (a) the recipient — or an adult proxy with name and relationship — signed or
    fingerprinted, with the date; or (b) 留置送达 is ticked with a refusal reason and a witness
    signature. ``values`` are cleaned values (``FormSpec.validate(..., stage="returned")``).
    Missing items are field names of this spec.
    """
    missing = [n for n in ("service_time", "service_method") if not values.get(n)]
    if not (values.get("server_signature_1") or values.get("server_signature_2")):
        missing.append("server_signature_1")
    if values.get("service_method") == "left":
        missing += [n for n in ("refusal_reason", "witness_signature") if not values.get(n)]
    else:
        if values.get("proxy_signature") or values.get("service_method") == "proxy":
            missing += [n for n in ("proxy_name", "proxy_relation", "proxy_signature")
                        if not values.get(n)]
        elif not values.get("recipient_signature"):
            missing.append("recipient_signature")
        if not values.get("recipient_signed_on"):
            missing.append("recipient_signed_on")
    return (not missing, missing)


# ---- values the service computes at issue -------------------------------------------------------

def system_values(data: Mapping[str, Any], variant: Variant | None, ctx: IssueContext) -> dict:
    """The legal-basis rows of the variant from the versioned library, the return deadline's
    length from the region profile and, when the service date is already known (a notice issued
    after it was served), the deadline date; a date that may be wrong is left blank."""
    if variant is None:
        return {}
    out = {"legal_basis": legal.legal_basis_rows(variant.code, ctx.issued_on, reason=data.get("reason_code")),
           "return_deadline_days": ctx.timer_length("return_deadline")}
    service = data.get("service_time") or data.get("stub_service_date")
    if service and is_blank(data.get("return_deadline_date")):
        try:
            served = v.parse_datetime(service).date()
        except ValueError:
            served = None  # reported by validation against its own field
        if served is not None:
            due = ctx.due("return_deadline", served)
            if due is not None:
                out["return_deadline_date"] = due.isoformat()
    return out


# ---- cross-field checks --------------------------------------------------------------------------

def _day(value: Any) -> dt.date | None:
    return value.date() if isinstance(value, dt.datetime) else value


def _check_dates(data: dict, _variant, _options) -> dict[str, str]:
    """Dates in order: absent -> issued -> served/signed -> deadline; nothing happened in the future."""
    errs: dict[str, str] = {}
    absent, issued = data.get("absent_since"), data.get("issue_date")
    served = _day(data.get("service_time"))
    deadline = data.get("return_deadline_date")
    if absent and absent > dt.date.today():
        errs["absent_since"] = "不能是未来的日期"
    if absent and issued and absent > issued:
        errs["absent_since"] = "未到校起始日期不能晚于发文日期"
    if issued and deadline and deadline <= issued:
        errs["return_deadline_date"] = "返校截止日期应晚于发文日期"
    if served and deadline and deadline <= served:
        errs["return_deadline_date"] = "返校截止日期应晚于送达日期（自送达之日起计算）"
    for name, label in (("service_time", "送达时间"), ("recipient_signed_on", "签收日期"),
                        ("stub_service_date", "送达日期")):
        when = _day(data.get(name))
        if when and issued and when < issued:
            errs[name] = f"{label}不能早于发文日期"
        elif when and when > dt.date.today():
            errs[name] = f"{label}不能是未来的日期"
    signed = data.get("recipient_signed_on")
    if signed and served and signed < served:
        errs["recipient_signed_on"] = "签收日期不能早于送达时间"
    return errs


def _check_service(data: dict, _variant, _options) -> dict[str, str]:
    """留置送达 needs the refusal reason and a witness; a proxy needs name and relationship.
    These are HAND fields: checked only once the 回证 says how it was served. Signature presence
    is confirmed by a person, so it is judged by ``receipt_complete``, not here."""
    errs: dict[str, str] = {}
    method = data.get("service_method")
    if method == "left":
        if not data.get("refusal_reason"):
            errs["refusal_reason"] = "留置送达须写明拒收事由"
        if not data.get("witness_name"):
            errs["witness_name"] = "留置送达须写明见证人"
    if method == "proxy" and not data.get("proxy_name"):
        errs["proxy_name"] = "委托送达(代收)须写明代收人"
    if data.get("proxy_name") and not data.get("proxy_relation"):
        errs["proxy_relation"] = "须写明代收人与受送达人的关系(应为同住成年家属)"
    if (data.get("stub_service_method") and method
            and data["stub_service_method"] != method):
        errs["stub_service_method"] = "存根与送达回证的送达方式不一致"
    return errs


def _check_issuer(data: dict, variant: Variant | None, _options) -> dict[str, str]:
    """责令复学通知书: township with the 司法所 countersigning (DOMAIN §9 Q15); others: no countersigner."""
    if variant is not None and variant.data.get("countersign"):
        if not data.get("countersigner_name"):
            return {"countersigner_name": "责令复学通知书须由司法所会签，请填写会签单位"}
    elif data.get("countersigner_name"):
        return {"countersigner_name": f"《{variant.title if variant else '通知书'}》没有会签单位"}
    return {}


def _check_deadline(data: dict, _variant, _options) -> dict[str, str]:
    days = data.get("return_deadline_days")
    if days is not None and not 1 <= days <= 30:
        return {"return_deadline_days": "返校期限应为1-30个工作日"}
    if data.get("return_deadline_date") and days is None:
        return {"return_deadline_days": "打印返校截止日期时须同时给出工作日数"}
    return {}


def _check_legal(data: dict, _variant, _options) -> dict[str, str]:
    return legal.check_rows(data.get("legal_basis") or [])


SPEC = FormSpec(
    code="guardian_notice",
    role="notice",
    title="监护人通知书",
    version="2026.1",
    fields=FIELDS,
    layout=layout,
    variants=VARIANTS,
    dossier_item=6,
    description="乡(镇)人民政府、教育部门或司法部门向监护人发出的返校通知书，"
                "每份打印存根、正本、送达回证三联，共用同一文号",
    system_values=system_values,
    # a complete 送达回证 records the service: the return deadline starts (DOMAIN §5.2.3)
    effects=(Effect("service", {"served": "service_time", "method": "service_method"},
                    when_any=("service_method", "recipient_signature"), complete=receipt_complete),),
    # only the 送达回证 comes back (the 存根 stays with the issuer, the 正本 with the guardian)
    returned_parts=("receipt",),
    checks=(
        check_person_identity("student_id_number", sex="student_sex"),
        _check_dates,
        _check_service,
        _check_issuer,
        _check_deadline,
        _check_legal,
        lambda d, _v, _o: {} if d.get("persuasion_count") is None or d["persuasion_count"] >= 1
        else {"persuasion_count": "发出通知书前应至少劝返1次"},
    ),
)
