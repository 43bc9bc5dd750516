"""Code lists (DOMAIN §7 and the enumerations of §4.2, §5). One definition each; specs and the
case engine import them from here."""

from __future__ import annotations

from forms.spec import Choice


def _choices(*pairs: tuple[str, str]) -> tuple[Choice, ...]:
    return tuple(Choice(code, label) for code, label in pairs)


DROPOUT_REASONS = _choices(
    ("R01", "学习困难/厌学"), ("R02", "外出打工"), ("R03", "早婚早育"), ("R04", "信教"),
    ("R05", "残疾/身体原因"), ("R06", "家庭经济困难"), ("R07", "监护人不履行法定义务"),
    ("R08", "失联"), ("R09", "受不良环境影响"), ("R10", "疫情影响"), ("R11", "随迁流动"),
    ("R12", "上学远/上学难"), ("R99", "其他"),
)

SPECIAL_GROUPS = _choices(
    ("G01", "建档立卡/脱贫/监测"), ("G02", "农村留守儿童"), ("G03", "残疾/重病"), ("G04", "随迁子女"),
    ("G05", "孤儿"), ("G06", "事实无人抚养"), ("G07", "困境儿童"), ("G08", "低保家庭"),
    ("G09", "特困供养"), ("G10", "服刑人员子女"), ("G11", "未成年服刑人员"), ("G12", "无户籍/无身份证号"),
    ("G13", "残疾人子女"), ("G14", "易地搬迁户"), ("G15", "流浪儿童"), ("G16", "寄宿生"),
    ("G17", "涉案未成年人"), ("G18", "学困生"),
)

POVERTY_CATEGORIES = _choices(("none", "否"), ("jdlk", "建档立卡"), ("tph", "脱贫户"), ("jcdx", "防返贫监测对象"))

AID_POLICIES = _choices(("lmyb", "两免一补"), ("yygs", "营养改善计划"), ("jsbz", "寄宿生生活补助"),
                        ("cjzz", "残疾学生资助"), ("other", "其他"))

WHEREABOUTS = _choices(("home", "在家"), ("working", "外出务工"), ("with_parents", "随父母外出"),
                       ("missing", "失踪失联"), ("other", "其他"))

ATTEMPT_METHODS = _choices(("visit", "家访"), ("phone", "电话"), ("summon", "约谈"), ("group", "集体家访"),
                           ("joint", "联合劝返"), ("remote", "异地劝返"))

ATTEMPT_RESULTS = _choices(("agreed", "同意返校"), ("refused", "拒绝"), ("not_met", "未见到"),
                           ("lost", "失联"))

PARTNER_DEPARTMENTS = _choices(("gongan", "公安"), ("sifa", "司法"), ("minzheng", "民政"),
                               ("renshe", "人社"), ("canlian", "残联"), ("weijian", "卫健"),
                               ("xczx", "乡村振兴"), ("minzong", "民宗"), ("jiaoyu", "教育"),
                               ("scjg", "市场监管"))

SEX = _choices(("男", "男"), ("女", "女"))

RELATIONSHIPS = _choices(("父", "父"), ("母", "母"), ("祖父母", "祖父母"), ("外祖父母", "外祖父母"),
                         ("其他", "其他"))

SERVICE_METHODS = _choices(("direct", "直接送达"), ("left", "留置送达"), ("proxy", "委托送达"),
                           ("post", "邮寄送达"), ("electronic", "电子送达"))

SEND_TO = _choices(("township", "乡(镇)人民政府"), ("education", "教育部门"))

HANDOVER_WHEREABOUTS = _choices(("transfer_out", "转外地就读"), ("county_other", "本县其他学校就读"),
                                ("migrated", "随迁外出"), ("unknown", "去向不明"),
                                ("suspected", "疑似辍学"))

PLACEMENTS = _choices(("chaban", "插班"), ("danduban", "单独编班"), ("puzhi", "普职融合"),
                      ("geren", "个别辅导"), ("songjiao", "送教上门"), ("yuancheng", "远程"))

GRADES = _choices(*((str(i), label) for i, label in enumerate(
    ["一年级", "二年级", "三年级", "四年级", "五年级", "六年级", "七年级", "八年级", "九年级"], 1)))
