"""《义务教育阶段学生辍学情况报告单》 (DOMAIN §5.1): the school's report to the township and the
education department. Starts the township's 2-day clock once the receipts are filled in."""

from __future__ import annotations

from forms import codes
from forms.checks import check_dates_order, check_person_identity, require_when
from forms.layout import PORTRAIT_W6, Grid, Label, Part, Rows, Spacer, Title, Value, labeller, row
from forms.spec import Effect, Field, Filled, FormSpec, Kind

F = Field

FIELDS = (
    F("doc_number", "报告单编号", filled=Filled.SYSTEM),
    F("school_name", "填报学校", required=True, max_length=40, source="school.name"),
    F("school_code", "学校标识码", required=True, max_length=10, source="school.code"),
    F("township_name", "所属乡(镇)", required=True, max_length=30, source="township.name"),
    F("send_to", "报送单位", Kind.MULTI, required=True, choices=codes.SEND_TO, default=["township", "education"]),
    F("student_name", "学生姓名", Kind.NAME, required=True, source="pupil.name"),
    F("student_sex", "性别", Kind.CHOICE, required=True, choices=codes.SEX, source="pupil.sex"),
    F("student_ethnicity", "民族", required=True, max_length=10, source="pupil.ethnicity"),
    F("student_birth_date", "出生日期", Kind.DATE, required=True, boxes=8, source="pupil.birth_date"),
    F("student_id_number", "身份证号", Kind.ID_NUMBER, required=True, boxes=18, source="pupil.id_number"),
    F("student_xueji_no", "全国学籍号", Kind.XUEJI_NO, required=True, source="pupil.xueji_no"),
    F("grade", "年级", Kind.CHOICE, required=True, choices=codes.GRADES, compact=True, source="class.grade"),
    F("class_name", "班级", required=True, max_length=20, source="class.name"),
    F("hukou_place", "户籍地(乡镇/村/组)", required=True, max_length=60, source="pupil.hukou_text"),
    F("home_address", "家庭住址", required=True, max_length=80, source="pupil.address"),
    F("poverty_category", "是否建档立卡/脱贫/监测", Kind.CHOICE, required=True,
      choices=codes.POVERTY_CATEGORIES, source="pupil.poverty_category", default="none"),
    F("special_groups", "特殊群体", Kind.MULTI, choices=codes.SPECIAL_GROUPS, source="pupil.special_groups"),
    F("aid_policies", "辍学前享受资助", Kind.MULTI, choices=codes.AID_POLICIES),
    F("guardian_name", "监护人姓名", Kind.NAME, required=True, source="guardian.name"),
    F("guardian_relation", "与学生关系", Kind.CHOICE, required=True, choices=codes.RELATIONSHIPS,
      source="guardian.relation"),
    F("guardian_id_number", "监护人身份证号", Kind.ID_NUMBER),
    F("guardian_phone", "联系电话", Kind.PHONE, required=True, boxes=11, source="guardian.phone"),
    F("guardian_address", "务工地/现住址", max_length=80, source="guardian.address|pupil.address"),
    F("absent_since", "未到校起始日期", Kind.DATE, required=True, boxes=8, source="case.opened_on"),
    F("absent_days", "连续无故缺勤天数", Kind.INT, required=True),
    F("whereabouts", "现去向", Kind.CHOICE, required=True, choices=codes.WHEREABOUTS),
    F("whereabouts_detail", "去向说明", max_length=60),
    F("reason", "辍学原因", Kind.CHOICE, required=True, choices=codes.DROPOUT_REASONS, source="case.reason_code"),
    F("reason_note", "原因说明", max_length=200),
    F("attempts", "家访/劝返记录", Kind.TABLE, required=True, min_rows=3, max_rows=10, columns=(
        F("date", "日期", Kind.DATE, required=True, source="date"),
        F("persons", "参与人员", required=True, max_length=40, source="persons"),
        F("method", "方式", Kind.CHOICE, required=True, choices=codes.ATTEMPT_METHODS, compact=True, source="method"),
        F("result", "结果", Kind.CHOICE, required=True, choices=codes.ATTEMPT_RESULTS, compact=True, source="result"),
    ), source="case.attempts"),
    F("school_opinion", "学校意见", required=True, max_length=300),
    F("suggested_partners", "建议联合劝返部门", Kind.MULTI, choices=codes.PARTNER_DEPARTMENTS),
    F("teacher_signature", "班主任签名", Kind.SIGNATURE, filled=Filled.HAND),
    F("filler_name", "填表人", Kind.NAME, required=True),
    F("principal_signature", "校长签名", Kind.SIGNATURE, filled=Filled.HAND),
    F("school_seal", "学校公章", Kind.SEAL, filled=Filled.HAND),
    F("report_date", "报告日期", Kind.DATE, required=True, boxes=8, source="today"),
    F("township_receiver", "乡(镇)签收人", Kind.NAME, filled=Filled.HAND),
    F("township_received_on", "乡(镇)签收日期", Kind.DATE, filled=Filled.HAND, boxes=8),
    F("education_receiver", "教育部门签收人", Kind.NAME, filled=Filled.HAND),
    F("education_received_on", "教育部门签收日期", Kind.DATE, filled=Filled.HAND, boxes=8),
)

W6 = PORTRAIT_W6


lv = labeller(FIELDS)


LAYOUT = (
    Part("main", "报告单", blocks=(
        Title("义务教育阶段学生辍学情况报告单"),
        Grid(rows=(
            row(lv("doc_number", 3), lv("report_date")),
            row(lv("school_name", 3), lv("school_code")),
            row(lv("township_name"), lv("send_to", 3)),
        ), widths=W6),
        Spacer(2),
        Grid(rows=(
            row(lv("student_name"), lv("student_sex"), lv("student_ethnicity")),
            row(lv("student_birth_date"), lv("student_id_number", 3)),
            row(lv("student_xueji_no", 3), lv("grade")),
            row(lv("class_name"), lv("hukou_place", 3)),
            row(lv("home_address", 5)),
            row(lv("poverty_category", 5)),
            row(lv("special_groups", 5)),
            row(lv("aid_policies", 5)),
            row(lv("guardian_name"), lv("guardian_relation", 3)),
            row(lv("guardian_id_number", 3), lv("guardian_phone")),
            row(lv("guardian_address", 5)),
            row(lv("absent_since"), lv("absent_days"), lv("whereabouts")),
            row(lv("whereabouts_detail", 5)),
            row(lv("reason", 5)),
            row(lv("reason_note", 5)),
        ), widths=W6),
        Spacer(2),
        Rows("attempts", widths=(12, 30, 50, 30, 34), keep=True),
        Spacer(2),
        Grid(rows=(
            row(lv("school_opinion", 5, 14)),
            row(lv("suggested_partners", 5)),
            row(lv("teacher_signature", 1, 12), lv("filler_name"), lv("principal_signature", 1, 12)),
            row(Label("学校公章"), Value("school_seal", span=5, height_mm=28)),
            row(lv("township_receiver"), lv("township_received_on", 3)),
            row(lv("education_receiver"), lv("education_received_on", 3)),
        ), widths=W6, keep=True),
    )),
)


SPEC = FormSpec(
    code="dropout_report",
    role="report",
    title="义务教育阶段学生辍学情况报告单",
    version="2026.1",
    fields=FIELDS,
    layout=LAYOUT,
    number_abbr="辍报",
    dossier_item=5,
    description="学校向乡(镇)人民政府和教育部门报送的辍学情况报告单（一式三份）",
    issuer="school",
    # the receiving units' 签收 dates: the township's starts its clock (卫辉: 2 days to notice)
    effects=(Effect("receipts", {"township": "township_received_on",
                                 "education": "education_received_on"}),),
    checks=(
        check_person_identity("student_id_number", sex="student_sex", birth="student_birth_date",
                              xueji="student_xueji_no"),
        check_dates_order(("absent_since", "report_date"), ("report_date", "township_received_on"),
                          ("report_date", "education_received_on"), rows=("attempts", "date"),
                          rows_between=("absent_since", "report_date")),
        require_when("reason_note", "reason", {"R99"}, "原因为“其他”时须写明说明"),
        require_when("whereabouts_detail", "whereabouts", {"working", "other"}, "须写明务工地点或去向"),
        lambda d, _v, _o: {} if set(d.get("send_to") or []) == {"township", "education"}
        else {"send_to": "须同时报送乡(镇)人民政府和教育部门"},
        lambda d, _v, o: {} if len(d.get("attempts") or []) >= int(o.get("min_attempts", 3))
        else {"attempts": f"至少需要{int(o.get('min_attempts', 3))}次家访/劝返记录"},
    ),
)
