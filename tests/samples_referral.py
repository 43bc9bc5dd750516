"""Sample input for the 部门函件 family (``referral_letter``: 协查函 / 交办函 / 书面通知), merged into
``tests.samples_data``. People are synthetic (``synthetic_id_number``); dates lie in 2025."""

from __future__ import annotations

import datetime as dt

from forms.validators import synthetic_id_number

VARIANTS = {"referral_letter": ("xiecha", "jiaoban", "tongzhi")}

# variant: (receiving department, receiving unit, reason, number abbreviation)
_LETTERS = {
    "xiecha": ("gongan", "卫辉市公安局城关派出所", "R08", "城政协查"),
    "jiaoban": ("renshe", "卫辉市人力资源和社会保障局", "R02", "城政交办"),
    "tongzhi": ("jiaoyu", "林州市教育局", "R11", "卫教通知"),
}

_REQUESTS = {
    "xiecha": "请协助核查该生现居住地、联系方式及监护人去向；如发现该生在外务工，请一并告知务工地点。",
    "jiaoban": "请依法核查该生是否被招用务工，督促用人单位清退并告知监护人送其返校。",
    "tongzhi": "请核实该生是否已返回户籍地，组织户籍地学校劝返复学，并与我局保持联系。",
}


def sample_input(form_code: str, variant_code: str | None = None, *, hand: bool = True,
                 signatures: bool = False) -> dict:
    """A valid letter of ``variant_code``; ``hand`` adds the filled 回执, ``signatures`` the seals."""
    if form_code != "referral_letter" or variant_code not in _LETTERS:
        raise KeyError(f"no sample for {form_code!r}/{variant_code!r}")
    department, unit, reason, abbr = _LETTERS[variant_code]
    birth = dt.date(2011, 3, 14)
    issued = dt.date(2025, 10, 10)
    d = {
        "doc_number": f"{abbr}〔2025〕5号",
        "issue_date": issued,
        "from_unit": "卫辉市教育局" if variant_code == "tongzhi" else "卫辉市城关镇人民政府",
        "to_department": department,
        "to_unit": unit,
        "student_name": "王浩然",
        "student_sex": "男",
        "student_birth_date": birth,
        "student_id_number": synthetic_id_number("410781", birth, 3),
        "school_name": "卫辉市城关镇第一初级中学",
        "grade": "8",
        "hukou_place": "林州市姚村镇西丰村" if variant_code == "tongzhi" else "城关镇东关村三组",
        "home_address": "城关镇东关村三组18号",
        "guardian_name": "王建国",
        "guardian_phone": "13912345678",
        "absent_since": dt.date(2025, 9, 8),
        "reason": reason,
        "facts": "该生自2025年9月8日起未到校，学校和镇政府已先后劝返4次，监护人拒不送其返校。",
        "request_text": _REQUESTS[variant_code],
        "reply_by": issued + dt.timedelta(days=15),
        "contact_person": "赵玉梅",
        "contact_phone": "13712345678",
        "cc": "卫辉市城关镇第一初级中学",
    }
    if hand:
        d.update({
            "received_on": issued + dt.timedelta(days=2),
            "reply_text": "经核查，该生现随其父在郑州市务工，已通知其父送其返校。",
            "reply_handler": "郑志强",
            "reply_phone": "0373-4412345",
            "replied_on": issued + dt.timedelta(days=9),
        })
    if signatures:
        d.update({"issuer_seal": True})
        if hand:
            d.update({"reply_signature": True, "reply_seal": True})
    return d
