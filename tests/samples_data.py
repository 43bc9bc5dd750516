"""One valid, synthetic sample input per form and variant, for every engineer's tests.

``sample_input(form_code, variant_code)`` returns a fresh dict that passes
``get_spec(form_code).validate(data, spec.variant(variant_code))`` and fills every field that
prints: INPUT and SYSTEM fields, and (``hand=True``, the default) the HAND fields a returned form
carries in writing (service details, receipt dates, 报到 ticks...). Signature and seal zones print
as empty boxes, so their presence flags are included only with ``signatures=True``.

People are synthetic: ID numbers from ``forms.validators.synthetic_id_number`` (checksum-valid,
never a real person's), invented names, 139/137 phone numbers. Dates lie in 2025 so "not in the
future" checks hold.

``all_samples()`` lists (form, variant, label, data) for every form and variant, including the
交接表 twice: a class of 45 pupils (several pages) and a small class of 6.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import chinese_calendar

from forms import clauses, legal
from forms.validators import synthetic_id_number

AREA = "410781"  # 卫辉市; python-stdnum knows it from 1989 on, so synthetic births are 1989 or later
SURNAMES = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗梁宋郑谢韩唐冯于董萧程曹袁邓许傅沈曾彭吕苏卢蒋蔡贾丁魏"
GIVEN = ("子涵", "浩然", "欣怡", "宇轩", "梓萱", "俊杰", "雨桐", "思远", "佳怡", "一鸣", "诗琪", "博文",
         "若曦", "天佑", "晨阳", "可馨", "嘉懿", "明哲", "语嫣", "泽宇")
ADULT_GIVEN = ("建国", "秀兰", "志强", "丽华", "国庆", "桂英", "卫东", "玉梅", "德明", "春花")


def _child_name(i: int) -> str:
    if i == 7:
        return "阿依古丽·买买提"  # minority name with the middle dot
    return SURNAMES[i % len(SURNAMES)] + GIVEN[(i * 7) % len(GIVEN)]


def _adult_name(i: int, surname: str) -> str:
    return surname + ADULT_GIVEN[i % len(ADULT_GIVEN)]


def _child_id(i: int, *, male: bool, birth: dt.date) -> str:
    seq = 2 * i + (1 if male else 2)  # 17th digit odd = male
    return synthetic_id_number(AREA, birth, seq)


def add_working_days(start: dt.date, n: int) -> dt.date:
    """The n-th working day after ``start`` (statutory calendar with 调休 make-up days)."""
    day = start
    while n > 0:
        day += dt.timedelta(days=1)
        if chinese_calendar.is_workday(day):
            n -= 1
    return day


# ---- 报告单 --------------------------------------------------------------------------------------

def _dropout_report(hand: bool, signatures: bool) -> dict:
    birth = dt.date(2011, 3, 14)
    idn = _child_id(1, male=True, birth=birth)
    d = {
        "doc_number": "城关一中辍报〔2025〕3号",
        "school_name": "卫辉市城关镇第一初级中学",
        "school_code": "2141012345",
        "township_name": "城关镇",
        "send_to": ["township", "education"],
        "student_name": "王浩然",
        "student_sex": "男",
        "student_ethnicity": "汉族",
        "student_birth_date": birth,
        "student_id_number": idn,
        "student_xueji_no": "G" + idn,
        "grade": "8",
        "class_name": "八(3)班",
        "hukou_place": "城关镇东关村三组",
        "home_address": "城关镇东关村三组18号",
        "poverty_category": "tph",
        "special_groups": ["G01", "G02"],
        "aid_policies": ["lmyb", "yygs"],
        "guardian_name": "王建国",
        "guardian_relation": "父",
        "guardian_id_number": synthetic_id_number(AREA, dt.date(1989, 5, 2), 31),
        "guardian_phone": "13912345678,0373-4412345",
        "guardian_address": "广东省东莞市长安镇",
        "absent_since": dt.date(2025, 9, 8),
        "absent_days": 12,
        "whereabouts": "working",
        "whereabouts_detail": "随亲戚在广东东莞打工",
        "reason": "R02",
        "reason_note": "家长认为读书无用，同意孩子外出打工",
        "attempts": [
            {"date": dt.date(2025, 9, 11), "persons": "班主任李丽华、副校长张志强", "method": "visit",
             "result": "not_met"},
            {"date": dt.date(2025, 9, 15), "persons": "班主任李丽华", "method": "phone", "result": "refused"},
            {"date": dt.date(2025, 9, 19), "persons": "李丽华、张志强、村支书刘德明", "method": "visit",
             "result": "refused"},
            {"date": dt.date(2025, 9, 22), "persons": "校长陈卫东", "method": "summon", "result": "refused"},
        ],
        "school_opinion": "经学校四次劝返无效，特此报告，请乡(镇)人民政府依法督促监护人送子女返校。",
        "suggested_partners": ["renshe", "gongan"],
        "filler_name": "李丽华",
        "report_date": dt.date(2025, 9, 24),
    }
    if hand:
        d.update({"township_receiver": "赵玉梅", "township_received_on": dt.date(2025, 9, 24),
                  "education_receiver": "孙国庆", "education_received_on": dt.date(2025, 9, 25)})
    if signatures:
        d.update({"teacher_signature": True, "principal_signature": True, "school_seal": True})
    return d


# ---- 监护人通知书 -----------------------------------------------------------------------------------

_NOTICE_VARIANTS = {
    # variant: (issuer, abbr, reason for extra citations, service method, issue date)
    "xianqi": ("卫辉市城关镇人民政府", "城政限返", "R02", "direct", dt.date(2025, 9, 26)),
    "quanfan": ("卫辉市教育局", "卫教劝返", None, "proxy", dt.date(2025, 9, 26)),
    "dunfan": ("卫辉市城关镇人民政府", "城政敦返", None, "direct", dt.date(2025, 10, 9)),
    "zeling": ("卫辉市城关镇人民政府", "城政责令", "R07", "left", dt.date(2025, 10, 9)),
}


def _guardian_notice(variant: str, hand: bool, signatures: bool) -> dict:
    issuer, abbr, reason, method, issued = _NOTICE_VARIANTS[variant]
    birth = dt.date(2011, 3, 14)
    idn = _child_id(1, male=True, birth=birth)
    served = dt.datetime.combine(issued + dt.timedelta(days=1), dt.time(9, 30))
    d = {
        "doc_number": f"{abbr}〔2025〕12号",
        "issue_date": issued,
        "issuer_name": issuer,
        "countersigner_name": "卫辉市司法局城关司法所" if variant == "zeling" else None,
        "guardian_name": "王建国",
        "guardian2_name": "刘秀兰",
        "guardian_relation": "父",
        "guardian_phone": "13912345678",
        "guardian_address": "城关镇东关村三组18号",
        "student_name": "王浩然",
        "student_sex": "男",
        "student_id_number": idn,
        "school_name": "卫辉市城关镇第一初级中学",
        "grade": "8",
        "class_name": "八(3)班",
        "absent_since": dt.date(2025, 9, 8),
        "persuasion_count": 4,
        "persuasion_dates": "2025年9月11日、9月15日、9月19日、9月22日",
        "legal_basis": legal.legal_basis_rows(variant, issued, reason=reason),
        "return_deadline_days": 5,
        "return_deadline_date": add_working_days(served.date(), 5) if hand else None,
        "return_school": "卫辉市城关镇第一初级中学",
        "report_place": "卫辉市城关镇第一初级中学教务处(学校南楼二层)",
        "contact_person": "李丽华",
        "contact_phone": "13712345678",
        "help_text": "两免一补、营养改善计划；经济困难可申请生活补助",
        "helper_name": "张志强",
        "helper_phone": "0373-4412345",
        "cc": "卫辉市城关镇第一初级中学，城关镇东关村村民委员会",
        "handler_name": "赵玉梅",
        "approver_name": "孙国庆",
        "receipt_number": f"{abbr}送回〔2025〕12号",
    }
    if hand:
        d.update({
            "stub_service_method": method,
            "stub_service_date": served.date(),
            "stub_remarks": "回证已归档",
            "recipient_name": "王建国",
            "recipient_relation": "父",
            "service_place": "城关镇东关村三组18号",
            "service_time": served,
            "service_method": method,
            "receipt_remarks": "送达人二人到场",
        })
        if method in ("direct", "proxy"):
            d["recipient_signed_on"] = served.date()
        if method == "proxy":
            d.update({"proxy_name": "王德明", "proxy_relation": "祖父(同住成年家属)",
                      "proxy_reason": "受送达人外出务工未归"})
        if method == "left":
            d.update({"refusal_reason": "监护人拒绝签收，称不需要孩子上学",
                      "witness_name": "刘德明", "witness_unit": "东关村村民委员会"})
    if signatures:
        d.update({"issuer_seal": True, "handler_signature": True, "approver_signature": True,
                  "server_signature_1": True, "server_signature_2": True})
        if variant == "zeling":
            d["countersign_seal"] = True
        if hand and method == "direct":
            d["recipient_signature"] = True
        if hand and method == "proxy":
            d["proxy_signature"] = True
        if hand and method == "left":
            d["witness_signature"] = True
    return {k: v for k, v in d.items() if v is not None}


# ---- 责任书 ----------------------------------------------------------------------------------------

_PARTIES = {
    # variant: (A name, A person, A post, B name, B person, B post, C (name, person, post) or None)
    "R-CT": ("卫辉市人民政府", "周明哲", "市长", "卫辉市城关镇人民政府", "吴建国", "镇长", None),
    "R-CD": ("卫辉市人民政府", "周明哲", "市长", "卫辉市公安局", "郑志强", "局长", None),
    "R-ES": ("卫辉市教育局", "孙国庆", "局长", "卫辉市城关镇第一初级中学", "陈卫东", "校长", None),
    "R-HO": ("卫辉市教育局", "孙国庆", "局长", "卫辉市城关镇东关小学", "马玉梅", "校长",
             ("卫辉市城关镇第一初级中学", "陈卫东", "校长")),
    "R-TV": ("卫辉市城关镇人民政府", "吴建国", "镇长", "城关镇东关村村民委员会", "刘德明", "村委会主任", None),
    "R-VG": ("城关镇东关村村民委员会", "刘德明", "村委会主任", "王志强", None, "东关村三组组长", None),
    "R-ST": ("卫辉市城关镇第一初级中学", "陈卫东", "校长", "李丽华", None, "八(3)班班主任", None),
    "R-SP": ("卫辉市城关镇第一初级中学", "李丽华", "八(3)班班主任", "王建国", None, "父", None),
}


def _responsibility(variant: str, hand: bool, signatures: bool) -> dict:
    a, ap, apost, b, bp, bpost, c = _PARTIES[variant]
    d = {
        "doc_number": f"卫教控辍责〔2025〕{list(_PARTIES).index(variant) + 1}号",
        "school_year": "2025—2026学年",
        "validity_from": dt.date(2025, 9, 1),
        "validity_to": dt.date(2026, 8, 31),
        "basis": "《中华人民共和国义务教育法》；卫政文〔2022〕80号",
        "party_a_name": a, "party_a_person": ap, "party_a_post": apost,
        "party_b_name": b, "party_b_person": bp, "party_b_post": bpost,
        "clauses": clauses.clauses_for(variant),
        "targets": clauses.targets_for(variant),
        "copies_note": clauses.copies_for(variant),
        "sign_date": dt.date(2025, 9, 5),
    }
    if c is not None:
        d.update({"party_c_name": c[0], "party_c_person": c[1], "party_c_post": c[2]})
    if variant == "R-SP":
        d.update({"student_name": "王浩然", "student_class": "卫辉市城关镇第一初级中学八(3)班"})
    if signatures:
        d.update({"party_a_signature": True, "party_b_signature": True, "party_a_seal": True})
        if variant in ("R-CT", "R-CD", "R-ES", "R-HO", "R-TV"):
            d["party_b_seal"] = True
        if c is not None:
            d.update({"party_c_signature": True, "party_c_seal": True})
    return {k: v for k, v in d.items() if v is not None}


# ---- 交接表 ----------------------------------------------------------------------------------------

def _pupil(i: int, hand: bool) -> dict:
    male = i % 2 == 0
    birth = dt.date(2013, 1 + i % 12, 1 + (i * 5) % 28)
    idn = _child_id(i, male=male, birth=birth)
    if i % 10 == 3:
        xueji = "L" + AREA + f"{birth:%Y%m%d}" + f"{i:04d}"  # no ID at enrolment: L form
    else:
        xueji = "G" + idn
    name = _child_name(i)
    guardian = "买买提·吐尔逊" if "·" in name else _adult_name(i, name[0])
    groups = []
    if i % 6 == 0:
        groups.append("G01")
    if i % 4 == 1:
        groups.append("G02")
    if i % 15 == 2:
        groups.append("G03")
    if i % 9 == 5:
        groups.append("G18")
    row = {
        "name": name,
        "sex": "男" if male else "女",
        "birth_date": birth,
        "id_number": idn,
        "xueji_no": xueji,
        "primary_class": "东关小学六(1)班" if i % 2 else "东关小学六(2)班",
        "hukou_code": "410781100" + f"{200 + i % 7:03d}",
        "hukou_place": f"城关镇东关村{1 + i % 7}组",
        "residence": f"城关镇东关村{1 + i % 7}组{10 + i}号",
        "guardian_name": guardian,
        "guardian_relation": ("父", "母", "祖父母", "外祖父母", "其他")[i % 5],
        "guardian_phone": f"139{i:08d}" if i % 8 else "0373-44" + f"{i:05d}",
        "special_groups": groups,
        "file_handed": i % 11 != 4,
        "intended_class": f"七({1 + i % 4})班",
        "remarks": "学籍档案补交中" if i % 11 == 4 else "",
    }
    if hand:
        arrived = i % 13 != 12
        row["registered"] = arrived
        if arrived:
            row["registered_on"] = dt.date(2025, 9, 1)
            row["receiver_remarks"] = "" if i % 5 else "已分班"
        elif i % 2:
            row.update({"whereabouts": "suspected", "notified_on": dt.date(2025, 9, 3),
                        "case_no": "城关劝〔2025〕7号", "receiver_remarks": "电话联系不上"})
        else:
            row.update({"whereabouts": "transfer_out", "notified_on": dt.date(2025, 9, 3),
                        "receiver_remarks": "有转学证明"})
    return row


def _handover(pupils: int, hand: bool, signatures: bool) -> dict:
    rows = [_pupil(i, hand) for i in range(pupils)]

    def count(code: str) -> int:
        return sum(1 for r in rows if code in r["special_groups"])

    d = {
        "doc_number": "城关中心校移交〔2025〕1号",
        "county_name": "卫辉市",
        "handover_year": 2025,
        "township_name": "城关镇",
        "central_school": "卫辉市城关镇中心学校",
        "from_school": "卫辉市城关镇东关小学",
        "from_school_code": "2141011111",
        "from_class": "六(1)(2)班",
        "to_school": "卫辉市城关镇第一初级中学",
        "to_school_code": "2141012345",
        "expected_count": len(rows),
        "g01_count": count("G01"),
        "disabled_count": count("G03"),
        "left_behind_count": count("G02"),
        "handover_date": dt.date(2025, 7, 10),
        "pupils": rows,
    }
    if hand:
        arrived = sum(1 for r in rows if r["registered"])
        d.update({"arrived_count": arrived, "not_arrived_count": len(rows) - arrived,
                  "from_signed_on": dt.date(2025, 7, 10), "to_signed_on": dt.date(2025, 7, 10)})
    if signatures:
        d.update({"from_person_signature": True, "to_person_signature": True, "from_school_seal": True,
                  "to_school_seal": True, "central_school_seal": True})
    return d


# ---- public --------------------------------------------------------------------------------------

VARIANTS = {
    "dropout_report": (None,),
    "guardian_notice": tuple(_NOTICE_VARIANTS),
    "responsibility": tuple(_PARTIES),
    "handover": (None,),
}


# Forms added later keep their samples in their own module with ``VARIANTS`` (form -> variant codes)
# and ``sample_input(form_code, variant_code, *, hand, signatures) -> dict``; they are merged here.
EXTRA_SAMPLE_MODULES = ("tests.samples_stats", "tests.samples_referral")


def _extra_modules():
    import importlib

    for name in EXTRA_SAMPLE_MODULES:
        try:
            yield importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name != name:
                raise


for _mod in _extra_modules():
    VARIANTS.update(_mod.VARIANTS)


def sample_input(form_code: str, variant_code: str | None = None, *, hand: bool = True,
                 signatures: bool = False, pupils: int = 45) -> dict:
    """A fresh valid input for ``form_code``/``variant_code`` (see the module docstring).

    ``pupils`` sets the 交接表 class size (45 prints over several pages; try 6 for one page).
    """
    if form_code == "dropout_report":
        return _dropout_report(hand, signatures)
    if form_code == "guardian_notice":
        return _guardian_notice(variant_code, hand, signatures)
    if form_code == "responsibility":
        return _responsibility(variant_code, hand, signatures)
    if form_code == "handover":
        return _handover(pupils, hand, signatures)
    for mod in _extra_modules():
        if form_code in mod.VARIANTS:
            return mod.sample_input(form_code, variant_code, hand=hand, signatures=signatures)
    raise KeyError(f"no sample for form {form_code!r}")


def all_samples(*, hand: bool = True, signatures: bool = False) -> Iterator[tuple[str, str | None, str, dict]]:
    """(form code, variant code, label, data) for every form and variant; 交接表 at 45 and 6 pupils."""
    for form, variants in VARIANTS.items():
        for variant in variants:
            if form == "handover":
                for n in (45, 6):
                    yield form, None, f"handover-{n}", sample_input(form, None, hand=hand,
                                                                    signatures=signatures, pupils=n)
            else:
                label = f"{form}-{variant}" if variant else form
                yield form, variant, label, sample_input(form, variant, hand=hand, signatures=signatures)
