"""《小学六年级毕业生整班移交交接表》 (DOMAIN §4.2): one row per pupil, landscape, multi-page.

The handing-over primary school fills the header and the rows; the receiving junior secondary
school ticks 报到 and writes remarks per row at autumn registration (Filled.HAND), then the totals.
The row table flows over as many pages as the class needs with its header row repeated on every
page (the template builder marks it); the form header (county, schools, counts) prints on page 1.
Narrow cells print compactly (``Field.compact``): special groups as codes (G01,G02), 报到 and
file-handed as ☑/✗/☐. The full row record (birth date, 学籍号 type, whereabouts, case number...)
stays in the data even where it is not printed.
"""

from __future__ import annotations

import re

from forms import codes
from forms.checks import check_person_identity
from forms.layout import Grid, Label, Para, Part, Rows, Spacer, Title, Value, labeller, row
from forms.spec import Effect, Field, Filled, FormSpec, Kind

F = Field
H = Filled.HAND
S = Filled.SYSTEM

PUPIL_COLUMNS = (
    F("name", "姓名", Kind.NAME, required=True, max_length=12, source="pupil.name"),
    F("sex", "性别", Kind.CHOICE, required=True, choices=codes.SEX, compact=True, source="pupil.sex"),
    F("birth_date", "出生日期", Kind.DATE, required=True, source="pupil.birth_date"),
    F("id_number", "身份证号", Kind.ID_NUMBER, required=True, source="pupil.id_number"),
    F("xueji_no", "全国学籍号", Kind.XUEJI_NO, required=True, source="pupil.xueji_no"),
    F("primary_class", "原就读小学/班级", max_length=40, source="class.name"),
    F("hukou_code", "户籍地区划代码", max_length=12, help="统计用区划代码，6位或12位"),
    F("hukou_place", "户籍地", required=True, max_length=24, help="乡镇/村/组", source="pupil.hukou_short"),
    F("residence", "现居住地", max_length=60, source="pupil.address"),
    F("guardian_name", "监护人", Kind.NAME, required=True, max_length=12, source="guardian.name"),
    F("guardian_relation", "关系", Kind.CHOICE, required=True, choices=codes.RELATIONSHIPS, compact=True,
      source="guardian.relation"),
    F("guardian_phone", "联系电话", Kind.PHONE, required=True, source="guardian.phone"),
    F("special_groups", "特殊群体", Kind.MULTI, choices=codes.SPECIAL_GROUPS, compact=True,
      source="pupil.special_groups"),
    F("file_handed", "档案", Kind.BOOL, compact=True, help="纸质学籍档案已移交"),
    F("intended_class", "拟就读班级", max_length=20),
    F("remarks", "移交备注", max_length=30, help="已知转出、外地就读等"),
    # the receiving school, at autumn registration
    F("registered", "报到", Kind.BOOL, filled=H, compact=True),
    F("registered_on", "报到日期", Kind.DATE, filled=H),
    F("whereabouts", "未报到去向", Kind.CHOICE, filled=H, choices=codes.HANDOVER_WHEREABOUTS, compact=True),
    F("notified_on", "通报移交学校日期", Kind.DATE, filled=H),
    F("case_no", "劝返案件号", filled=H, max_length=30),
    F("receiver_remarks", "接收备注", filled=H, max_length=30),
)

# The 花名册 (grade-6 roster) a county imports for its plan supplies these row columns, headed by
# the field's label; the other headings found in the wild are accepted too (cases/handover).
ROSTER_FIELDS = ("name", "sex", "birth_date", "id_number", "xueji_no", "hukou_code", "hukou_place",
                 "residence", "guardian_name", "guardian_relation", "guardian_phone", "special_groups")
ROSTER_ALIASES = {"xueji_no": ("学籍号",), "hukou_place": ("户籍地(乡镇/村/组)",), "guardian_name": ("监护人姓名",),
                  "guardian_relation": ("与学生关系",), "guardian_phone": ("监护人联系电话",),
                  "special_groups": ("特殊群体标识",)}


# the 户籍地区划代码 column (no source: the roster's own code, for placing the pupil's 户籍)
ROSTER_HUKOU_CODE = "hukou_code"


def roster_fields() -> tuple[Field, ...]:
    """The row fields a roster supplies, in the rows' order."""
    return tuple(f for f in PUPIL_COLUMNS if f.name in ROSTER_FIELDS)


def roster_columns() -> dict[str, tuple[str, ...]]:
    """field -> accepted headings (the label first, the field name last), in the rows' order."""
    return {f.name: (f.label, *ROSTER_ALIASES.get(f.name, ()), f.name)
            for f in roster_fields()}

FIELDS = (
    F("doc_number", "编号", filled=S),
    F("county_name", "县(市、区)", required=True, max_length=20, source="county.name"),
    F("handover_year", "年度", Kind.INT, required=True, source="year"),
    F("township_name", "乡(镇)", required=True, max_length=30, source="township.name"),
    F("central_school", "中心校", required=True, max_length=40, source="central_school.name"),
    F("from_school", "移交学校", required=True, max_length=40, source="school.name"),
    F("from_school_code", "移交学校标识码", required=True, max_length=10, source="school.code"),
    F("from_class", "原班级", required=True, max_length=20, source="class.name"),
    F("to_school", "接收学校", required=True, max_length=40, source="receiving_school.name"),
    F("to_school_code", "接收学校标识码", required=True, max_length=10, source="receiving_school.code"),
    F("expected_count", "应移交人数", Kind.INT, required=True, source="class.size"),
    F("g01_count", "建档立卡/脱贫/监测对象人数", Kind.INT, required=True, source="class.groups.G01"),
    F("disabled_count", "残疾学生人数", Kind.INT, required=True, source="class.groups.G03"),
    F("left_behind_count", "留守儿童人数", Kind.INT, required=True, source="class.groups.G02"),
    F("handover_date", "移交日期", Kind.DATE, required=True, source="today"),
    F("pupils", "学生名单", Kind.TABLE, required=True, min_rows=1, max_rows=120, columns=PUPIL_COLUMNS,
      source="class.pupils"),
    F("arrived_count", "实到人数", Kind.INT, filled=H),
    F("not_arrived_count", "未到人数", Kind.INT, filled=H),
    F("from_person_signature", "移交人签字", Kind.SIGNATURE, filled=H),
    F("from_signed_on", "移交人签字日期", Kind.DATE, filled=H, boxes=8),
    F("to_person_signature", "接收人签字", Kind.SIGNATURE, filled=H),
    F("to_signed_on", "接收人签字日期", Kind.DATE, filled=H, boxes=8),
    F("from_school_seal", "移交学校(盖章)", Kind.SEAL, filled=H),
    F("to_school_seal", "接收学校(盖章)", Kind.SEAL, filled=H),
    F("central_school_seal", "中心校(盖章)", Kind.SEAL, filled=H),
)

FIELD = {f.name: f for f in FIELDS}
# A4 landscape, 257 mm wide: the builder narrows the side margins to 20 mm for it (the 18-digit
# ID and 19-character 学籍号 must not wrap).
W8 = (28, 42, 28, 42, 32, 29, 32, 24)
PRINTED_COLUMNS = ("name", "sex", "id_number", "xueji_no", "hukou_place", "guardian_name",
                   "guardian_phone", "special_groups", "file_handed", "remarks", "registered",
                   "receiver_remarks")
# 序号 + the printed columns above; 257 mm.
ROW_WIDTHS = (7, 16, 7, 42, 44, 24, 15, 25, 16, 8, 18, 8, 27)
SPECIAL_COUNTS = {"g01_count": "G01", "disabled_count": "G03", "left_behind_count": "G02"}


lv = labeller(FIELDS)


LAYOUT = (
    Part("main", "交接表", landscape=True, blocks=(
        Title("小学六年级毕业生整班移交交接表"),
        Para("编号：{doc_number}", align="right", indent=False),
        Grid(rows=(
            row(lv("county_name"), lv("handover_year"), lv("township_name"), lv("central_school")),
            row(lv("from_school", 3), lv("from_school_code"), lv("from_class")),
            row(lv("to_school", 3), lv("to_school_code"), lv("handover_date")),
            row(lv("expected_count"), lv("g01_count"), lv("disabled_count"), lv("left_behind_count")),
        ), widths=W8),
        Para("特殊群体代码：G01建档立卡/脱贫/监测，G02农村留守儿童，G03残疾/重病，G04随迁子女，G05孤儿，"
             "G06事实无人抚养，G07困境儿童，G08低保家庭，G18学困生（其余见代码表）。"
             "档案：纸质学籍档案已移交打☑。报到、接收备注由接收学校在秋季学期注册时填写。",
             indent=False, style="small"),
        Rows("pupils", columns=PRINTED_COLUMNS, widths=ROW_WIDTHS, keep_tail=1),
        Spacer(2),
        Grid(rows=(
            row(lv("arrived_count", 3), lv("not_arrived_count", 3)),
            row(lv("from_person_signature", 3, 14), lv("to_person_signature", 3, 14)),
            row(lv("from_signed_on", 3), lv("to_signed_on", 3)),
            row(Label("移交学校(盖章)"), Value("from_school_seal", height_mm=32),
                Label("接收学校(盖章)"), Value("to_school_seal", height_mm=32),
                Label("中心校(盖章)"), Value("central_school_seal", span=3, height_mm=32)),
        ), widths=W8, keep=True),
        Para("本表一式四份，移交学校、接收学校、中心校和县教育局各存一份。", indent=False, style="small"),
    )),
)


# ---- cross-field checks --------------------------------------------------------------------------

def _check_counts(data: dict, _variant, _options) -> dict[str, str]:
    """Header counts equal what the rows say (应移交人数 and the special-group counts)."""
    errs: dict[str, str] = {}
    rows = data.get("pupils") or []
    if data.get("expected_count") is not None and data["expected_count"] != len(rows):
        errs["expected_count"] = f"应移交人数({data['expected_count']})与名单行数({len(rows)})不符"
    for name, code in SPECIAL_COUNTS.items():
        n = sum(1 for r in rows if code in (r.get("special_groups") or []))
        if data.get(name) is not None and data[name] != n:
            errs[name] = f"{FIELD[name].label}({data[name]})与名单中标记{code}的人数({n})不符"
    registered = [r.get("registered") for r in rows]
    if data.get("arrived_count") is not None and any(x is not None for x in registered):
        n = sum(1 for x in registered if x is True)
        if data["arrived_count"] != n:
            errs["arrived_count"] = f"实到人数({data['arrived_count']})与打☑报到的人数({n})不符"
    if data.get("arrived_count") is not None and data.get("not_arrived_count") is not None:
        if data.get("expected_count") is not None and \
                data["arrived_count"] + data["not_arrived_count"] != data["expected_count"]:
            errs["not_arrived_count"] = "实到人数与未到人数之和应等于应移交人数"
    return errs


def _check_rows(data: dict, _variant, _options) -> dict[str, str]:
    """No pupil twice; region codes well formed; non-arrivals have a whereabouts; dates in order."""
    errs: dict[str, str] = {}
    seen: dict[str, int] = {}
    handed = data.get("handover_date")
    for i, r in enumerate(data.get("pupils") or []):
        p = f"pupils[{i}]."
        idn = r.get("id_number")
        if idn in seen:
            errs[p + "id_number"] = f"与第{seen[idn] + 1}行身份证号重复"
        elif idn:
            seen[idn] = i
        code = r.get("hukou_code")
        if code and not re.fullmatch(r"\d{6}(\d{6})?", code):
            errs[p + "hukou_code"] = "户籍地区划代码应为6位或12位数字"
        if r.get("registered") is False and not r.get("whereabouts"):
            errs[p + "whereabouts"] = "未报到的学生须写明去向"
        if r.get("registered") is True and r.get("whereabouts"):
            errs[p + "whereabouts"] = "已报到的学生不填未报到去向"
        for col in ("registered_on", "notified_on"):
            if r.get(col) and handed and r[col] < handed:
                errs[p + col] = "不能早于移交日期"
        if r.get("notified_on") and r.get("registered") is not False:
            errs[p + "notified_on"] = "只有未报到的学生才通报移交学校"
    for name in ("from_signed_on", "to_signed_on"):
        if data.get(name) and handed and data[name] < handed:
            errs[name] = "签字日期不能早于移交日期"
    if data.get("from_school_code") and data.get("from_school_code") == data.get("to_school_code"):
        errs["to_school_code"] = "接收学校与移交学校不能是同一学校"
    for name in ("from_school_code", "to_school_code"):
        if data.get(name) and not re.fullmatch(r"\d{10}", data[name]):
            errs[name] = "学校标识码应为10位数字"
    return errs


SPEC = FormSpec(
    code="handover",
    role="class_list",
    title="小学六年级毕业生整班移交交接表",
    version="2026.1",
    fields=FIELDS,
    layout=LAYOUT,
    number_abbr="移交",
    orientation="landscape",
    description="乡(镇)中心校组织移交学校向接收初中整班移交六年级毕业生时填写，接收学校秋季注册时逐人核对",
    # each row's 报到 tick (date, or where to if not) goes to the handover plan
    effects=(Effect("registrations", {"registered": "pupils[].registered",
                                      "registered_on": "pupils[].registered_on",
                                      "whereabouts": "pupils[].whereabouts"}),),
    checks=(
        check_person_identity("id_number", sex="sex", birth="birth_date", xueji="xueji_no",
                              table="pupils"),
        _check_counts,
        _check_rows,
    ),
)
