"""《控辍保学工作责任书》 (DOMAIN §5.3): agreements signed level by level ("层层签订").

Eight variants, R-CT ... R-SP, differ in the parties (role names in ``Variant.data``) and in the
clauses and targets, which come from the clause library (``forms.clauses``) and are stored in the
``clauses`` / ``targets`` TABLE fields, so a signed agreement keeps the wording it was printed
with. ``agreement_defaults(variant_code)`` gives those rows for a new agreement. Four printed
shapes: two institutions (default template), an institution and a person (R-VG, R-ST: no seal
for 乙方), school and parent (R-SP: adds the student), and three parties (R-HO 整班移交).
"""

from __future__ import annotations

import re

from forms import clauses as clause_library
from forms import validators as v
from forms.layout import (
    PORTRAIT_W6,
    Grid,
    Heading,
    Items,
    Label,
    Layout,
    Para,
    Part,
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
    F("doc_number", "编号", filled=S),
    F("school_year", "学年度", required=True, max_length=20, help="如：2025—2026学年"),
    F("validity_from", "有效期自", Kind.DATE, required=True),
    F("validity_to", "有效期至", Kind.DATE, required=True),
    F("basis", "签订依据", required=True, max_length=200,
      help="法律和文件号，如：《中华人民共和国义务教育法》、某政办〔2025〕12号"),
    F("party_a_name", "甲方", required=True, max_length=40, source="superior.title"),
    F("party_a_person", "甲方负责人", Kind.NAME, required=True),
    F("party_a_post", "甲方职务", required=True, max_length=30),
    F("party_b_name", "乙方", required=True, max_length=40, source="subordinate.title"),
    F("party_b_person", "乙方负责人", Kind.NAME),
    F("party_b_post", "乙方职务", max_length=30),
    F("party_c_name", "丙方", max_length=40),
    F("party_c_person", "丙方负责人", Kind.NAME),
    F("party_c_post", "丙方职务", max_length=30),
    F("student_name", "学生姓名", Kind.NAME, help="仅学校与家长签订的责任书", source="pupil.name"),
    F("student_class", "就读学校及班级", max_length=40),
    F("clauses", "责任条款", Kind.TABLE, filled=S, max_rows=40, columns=(
        F("clause_id", "条款编号", filled=S, max_length=20),
        F("section", "类别", filled=S, max_length=10),
        F("text", "条款内容", filled=S, max_length=500),
    )),
    F("targets", "目标任务", Kind.TABLE, max_rows=20, columns=(
        F("indicator", "指标", required=True, max_length=40),
        F("target", "目标值", required=True, max_length=20),
        F("formula", "计算口径", max_length=80),
    ), help="默认取自条款库(DOMAIN §6.4)，可按地区目标修改"),
    F("copies_note", "份数及生效", filled=S, max_length=80),
    F("sign_date", "签订日期", Kind.DATE, required=True),
    F("party_a_signature", "甲方负责人签字", Kind.SIGNATURE, filled=H),
    F("party_b_signature", "乙方负责人签字", Kind.SIGNATURE, filled=H),
    F("party_c_signature", "丙方负责人签字", Kind.SIGNATURE, filled=H),
    F("party_a_seal", "甲方(盖章)", Kind.SEAL, filled=H),
    F("party_b_seal", "乙方(盖章)", Kind.SEAL, filled=H),
    F("party_c_seal", "丙方(盖章)", Kind.SEAL, filled=H),
)

W6 = PORTRAIT_W6
W6_THREE = (20, 32, 20, 32, 20, 32)  # three seal zones side by side


lv = labeller(FIELDS)


_GOV = r"(人民政府|办事处)$"
_BUREAU = r"(教育局|教育和体育局|教育体育局|教体局)$"
_SCHOOL = r"(学校|小学|中学|学|校|教学点)$"
_VILLAGE = r"(委员会|村委会|居委会)$"


# ``shape`` picks the printed layout; ``parties`` 2 or 3; ``b_person``: 乙方 is a person (no seal,
# name validated as a name); ``needs_student``: the agreement names a student (R-SP). ``party_x``:
# (role printed in messages, pattern the party's name must match): a 局–校 agreement cannot be
# signed by a county government. ``purpose`` leads the preamble, which names the actual parties.
VARIANTS = (
    Variant("R-CT", "控辍保学工作目标责任书", data={
        "party_a": ("县(市、区)人民政府", _GOV), "party_b": ("乡(镇)人民政府或街道办事处", _GOV),
        "subtitle": "（县人民政府与乡(镇)人民政府）", "shape": "institutions", "parties": 2,
        "purpose": "全面落实控辍保学县长、乡(镇)长负责制",
    }),
    Variant("R-CD", "控辍保学联控联保工作责任书", data={
        "party_a": ("县(市、区)人民政府", _GOV), "party_b": ("县直成员单位", r"^(?!.*人民政府$).+$"),
        "subtitle": "（县人民政府与成员单位）", "shape": "institutions", "parties": 2,
        "purpose": "落实控辍保学联控联保工作机制",
    }),
    Variant("R-ES", "控辍保学工作责任书", data={
        "party_a": ("县(市、区)教育局", _BUREAU), "party_b": ("学校", _SCHOOL),
        "subtitle": "（县教育局与学校）", "shape": "institutions", "parties": 2,
        "purpose": "落实控辍保学局长、校长负责制",
    }),
    Variant("R-HO", "小学六年级毕业生整班移交工作责任书", data={
        "party_a": ("县(市、区)教育局", _BUREAU), "party_b": ("移交学校", _SCHOOL),
        "party_c": ("接收学校", _SCHOOL),
        "subtitle": "（县教育局、移交学校与接收学校）", "shape": "three_party", "parties": 3,
        "purpose": "做好小学六年级毕业生整班移交工作，防止学生在小升初环节流失辍学",
    }),
    Variant("R-TV", "控辍保学工作责任书", data={
        "party_a": ("乡(镇)人民政府或街道办事处", _GOV), "party_b": ("村(居)民委员会", _VILLAGE),
        "subtitle": "（乡(镇)人民政府与村(居)民委员会）", "shape": "institutions", "parties": 2,
        "purpose": "落实控辍保学乡(镇)长、村委会主任负责制",
    }),
    Variant("R-VG", "控辍保学工作责任书", data={
        "party_a": ("村(居)民委员会", _VILLAGE), "party_b": ("村民小组组长", None),
        "subtitle": "（村(居)民委员会与村民小组）", "shape": "person", "parties": 2, "b_person": True,
        "purpose": "把控辍保学责任落实到组、到户、到人",
    }),
    Variant("R-ST", "控辍保学工作责任书", data={
        "party_a": ("学校", _SCHOOL), "party_b": ("班主任/科任教师", None),
        "subtitle": "（学校与教师）", "shape": "person", "parties": 2, "b_person": True,
        "purpose": "落实控辍保学师长责任",
    }),
    Variant("R-SP", "控辍保学家长责任书", data={
        "party_a": ("学校", _SCHOOL), "party_b": ("学生家长(监护人)", None),
        "subtitle": "（学校与学生家长）", "shape": "parent", "parties": 2, "b_person": True,
        "needs_student": True,
        "purpose": "落实家长送子女接受义务教育的法定责任",
    }),
)

_LAW = "根据《中华人民共和国义务教育法》《中华人民共和国未成年人保护法》等法律法规和有关文件规定"


def _head(shape: str) -> tuple:
    parties = [row(lv("party_a_name", 5)), row(lv("party_a_person"), lv("party_a_post", 3))]
    if shape == "institutions" or shape == "three_party":
        parties += [row(lv("party_b_name", 5)), row(lv("party_b_person"), lv("party_b_post", 3))]
    elif shape == "person":
        parties += [row(lv("party_b_name", label="乙方(姓名)"), lv("party_b_post", 3))]
    else:  # parent
        parties += [row(lv("party_b_name", label="乙方(家长姓名)"),
                        lv("party_b_post", 3, label="与学生关系")),
                    row(lv("student_name"), lv("student_class", 3))]
    if shape == "three_party":
        parties += [row(lv("party_c_name", 5)), row(lv("party_c_person"), lv("party_c_post", 3))]
    parties += [row(lv("school_year", 5)),
                row(lv("validity_from", 3), lv("validity_to")),
                row(lv("basis", 5))]
    who = ("{party_a_name}（甲方）、{party_b_name}（乙方）与{party_c_name}（丙方）" if shape == "three_party"
           else "{party_a_name}（甲方）与{party_b_name}（乙方）")
    return (
        Title("{variant.title}"),
        Para("{variant.subtitle}", align="center", indent=False, style="subtitle"),
        Para("编号：{doc_number}", align="right", indent=False),
        Grid(rows=tuple(parties), widths=W6),
        Para("为{variant.purpose}，确保适龄儿童少年依法接受并完成义务教育，" + _LAW + "，经协商，"
             + who + "签订本责任书。"),
        Heading("一、责任条款"),
        Items("clauses", "（{_cn}）{section}：{text}"),
        Heading("二、目标任务"),
        Items("targets", "（{_cn}）{indicator}：{target}[（计算口径：{formula}）]。"),
        Heading("三、其他"),
        Para("本责任书有效期至{validity_to}。{copies_note}"),
    )


def _signatures(shape: str) -> Grid:
    """Seals and signatures of the parties (kept with the last paragraph, never split)."""
    if shape == "three_party":
        return Grid(keep=True, rows=(
            row(Label("甲方(盖章)"), Value("party_a_seal", height_mm=30),
                Label("乙方(盖章)"), Value("party_b_seal", height_mm=30),
                Label("丙方(盖章)"), Value("party_c_seal", height_mm=30)),
            row(lv("party_a_signature", 1, 12), lv("party_b_signature", 1, 12),
                lv("party_c_signature", 1, 12)),
            row(lv("sign_date", 5)),
        ), widths=W6_THREE)
    if shape == "institutions":
        return Grid(keep=True, rows=(
            row(Label("甲方(盖章)"), Value("party_a_seal", span=2, height_mm=30),
                Label("乙方(盖章)"), Value("party_b_seal", span=2, height_mm=30)),
            row(lv("party_a_signature", 2, 12), lv("party_b_signature", 2, 12)),
            row(lv("sign_date", 5)),
        ), widths=W6)
    return Grid(keep=True, rows=(  # 乙方 is a person: signature or fingerprint, no seal
        row(Label("甲方(盖章)"), Value("party_a_seal", span=5, height_mm=30)),
        row(lv("party_a_signature", 2, 12), lv("party_b_signature", 2, 12, label="乙方签字(捺印)")),
        row(lv("sign_date", 5)),
    ), widths=W6)


_TEMPLATE_KEYS = {"institutions": None, "person": "person", "parent": "parent", "three_party": "three_party"}
_LAYOUTS = {shape: Layout((Part("main", "责任书", blocks=(*_head(shape), _signatures(shape))),),
                          template_key=key)
            for shape, key in _TEMPLATE_KEYS.items()}


def layout(variant: Variant | None) -> Layout:
    """The printed shape of a variant (see the module docstring)."""
    return _LAYOUTS[variant.data["shape"] if variant is not None else "institutions"]


def agreement_defaults(variant_code: str) -> dict:
    """Library rows for a new agreement: ``clauses``, ``targets`` and ``copies_note``."""
    return {"clauses": clause_library.clauses_for(variant_code),
            "targets": clause_library.targets_for(variant_code),
            "copies_note": clause_library.copies_for(variant_code)}


# ---- cross-field checks --------------------------------------------------------------------------

_SCHOOL_YEAR_RE = re.compile(r"^(\d{4})\s*[-—–－~至]{1,2}\s*(\d{4})\s*学年度?$")
_PERCENT_RE = re.compile(r"^(?:[≥≤<>=]|不低于|不高于|不超过|达到)?\s*(\d+(?:\.\d+)?)\s*%$")


def _check_period(data: dict, _variant, _options) -> dict[str, str]:
    errs: dict[str, str] = {}
    start, end, signed = data.get("validity_from"), data.get("validity_to"), data.get("sign_date")
    if start and end and start >= end:
        errs["validity_to"] = "有效期截止日期应晚于起始日期"
    if signed and end and signed > end:
        errs["sign_date"] = "签订日期不能晚于有效期截止日期"
    year = data.get("school_year")
    if year:
        m = _SCHOOL_YEAR_RE.match(year)
        if not m:
            errs["school_year"] = "学年度应写作如“2025—2026学年”"
        elif int(m.group(2)) != int(m.group(1)) + 1:
            errs["school_year"] = "学年度的两个年份应相差1年"
    return errs


def _check_parties(data: dict, variant: Variant | None, _options) -> dict[str, str]:
    """Third party only (and always) for three-party variants; persons' names valid; names differ."""
    errs: dict[str, str] = {}
    vdata = variant.data if variant is not None else {}
    if vdata.get("parties", 2) == 3:
        for name in ("party_c_name", "party_c_person", "party_c_post"):
            if not data.get(name):
                errs[name] = f"《{variant.title}》为三方责任书，须填写丙方"
    else:
        for name in ("party_c_name", "party_c_person", "party_c_post"):
            if data.get(name):
                errs[name] = "本责任书只有甲乙双方，丙方应为空"
    if vdata.get("b_person"):
        try:
            v.check_name(data.get("party_b_name") or "")
        except ValueError as e:
            errs["party_b_name"] = f"乙方为个人，应填写姓名：{e}"
    elif not data.get("party_b_person"):
        errs["party_b_person"] = "须填写乙方负责人"
    if not vdata.get("b_person") and not data.get("party_b_post"):
        errs["party_b_post"] = "须填写乙方负责人职务"
    if vdata.get("needs_student"):
        if not data.get("student_name"):
            errs["student_name"] = "家长责任书须写明学生姓名"
        if not data.get("party_b_post"):
            errs["party_b_post"] = "须写明家长与学生的关系"
    elif data.get("student_name"):
        errs["student_name"] = "只有家长责任书填写学生姓名"
    for key in ("party_a", "party_b", "party_c"):
        role, pattern = vdata.get(key) or (None, None)
        name = data.get(f"{key}_name")
        if pattern and name and not re.search(pattern, name) and f"{key}_name" not in errs:
            errs[f"{key}_name"] = (f"《{variant.title}》{vdata.get('subtitle', '')}的{_PARTY_LABEL[key]}应为{role}，"
                                   f"“{name}”不是（请写全称，如政府写“某某县人民政府”）")
    names = [data.get(n) for n in ("party_a_name", "party_b_name", "party_c_name") if data.get(n)]
    if len(set(names)) != len(names):
        errs["party_b_name"] = "各方名称不能相同"
    return errs


_PARTY_LABEL = {"party_a": "甲方", "party_b": "乙方", "party_c": "丙方"}


def _check_terms(data: dict, _variant, _options) -> dict[str, str]:
    """At least one clause (from the library); percentage targets are 0-100 with at most 2 decimals
    (毛入学率 may exceed 100%, DOMAIN §5.0.3)."""
    errs: dict[str, str] = {}
    if not data.get("clauses"):
        errs["clauses"] = "须至少有一条责任条款（由条款库生成：agreement_defaults）"
    if not data.get("targets"):
        errs["targets"] = "须至少有一项目标任务（默认取自条款库：agreement_defaults）"
    for i, t in enumerate(data.get("targets") or []):
        m = _PERCENT_RE.match((t.get("target") or "").replace(" ", ""))
        if not m:
            continue
        value = m.group(1)
        if "." in value and len(value.split(".")[1]) > 2:
            errs[f"targets[{i}].target"] = "百分比最多保留2位小数"
        elif float(value) > 100 and "毛入学率" not in (t.get("indicator") or ""):
            errs[f"targets[{i}].target"] = "百分比不能超过100%（毛入学率除外）"
    return errs


SPEC = FormSpec(
    code="responsibility",
    role="duty_agreement",
    title="控辍保学工作责任书",
    version="2026.1",
    fields=FIELDS,
    layout=layout,
    variants=VARIANTS,
    number_abbr="控辍责",
    description="层层签订的控辍保学责任书：县—乡、县—部门、局—校、整班移交三方、乡—村、村—组、"
                "校—师、校—家长",
    checks=(_check_period, _check_parties, _check_terms),
    system_values=lambda _data, variant, _ctx: agreement_defaults(variant.code) if variant is not None else {},
)
