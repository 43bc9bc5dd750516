"""《学期汇总控辍保学排查整改工作情况统计表》 (DOMAIN §6.3, [S1] names it; columns [CP]).

Filed by the education department at each quarter end (Q6). One row per 学段 (小学 / 初中 / 合计)
in four tables: screening and persuasion, returns and outcomes, closures by evidence set (C1–C7)
with special-group sub-counts, and the reasons (§7.1) of the suspected dropouts found in the
period. Each count column declares what it counts (``Field.counts``: ``forms.spec.Count``), and
``cases.ledgers.ledger.quarterly_figures`` computes every column from that declaration alone; the
columns here are the single definition that the figures, the XLSX export and the template share.
Sign-off (填报人, 审核人, 单位负责人, seal, date) per §6.3.
"""

from __future__ import annotations

from forms import codes
from forms.layout import Grid, Label, Para, Part, Rows, Spacer, Title, Value, labeller, row
from forms.spec import Choice, Count, Field, Filled, FormSpec, Kind

F = Field
BANDS = (Choice("primary", "小学"), Choice("junior", "初中"), Choice("total", "合计"))


def _band() -> Field:
    return F("band", "学段", Kind.CHOICE, required=True, choices=BANDS, compact=True)


def _n(name: str, label: str, *counts: Count) -> Field:
    return F(name, label, Kind.INT, required=True, counts=counts)


# What each column counts (``forms.spec.Count``), from the case record of the node and quarter.
# The suspected dropouts found in the period: cases that entered SUSPECTED inside the quarter.
FOUND = "cases_entering"
# Where a found case stands at quarter end: back at school (RETURNED, or closed by C1), still open
# (absent, being verified or out of school and not yet closed).
BACK = ("RETURNED", "C1")
OPEN = ("ABSENT", "VERIFY", "SUSPECTED", "REPORTED", "NOTICED", "JOINT", "LEGAL", "LOCATING", "ASSESSING",
        "APPROVAL", "DEFERRED")

SCREENING_COLUMNS = (
    _band(),
    _n("enrolled", "在校生数", Count("pupils")),
    _n("suspected_found", "本期排查疑似辍学人数", Count(FOUND)),
    _n("found_returned", "其中：已返校", Count(FOUND, at_end=BACK)),
    _n("found_persuading", "其中：劝返中", Count(FOUND, at_end=OPEN, not_reached=("JOINT",))),
    _n("found_joint", "其中：已报联合劝返组", Count(FOUND, reached=("JOINT",), not_at_end=BACK)),
    _n("persuaded_3plus", "劝返不少于3次人数", Count(FOUND, min_attempts=3)),
    _n("lost_contact", "失联人数", Count("cases_at_end", at_end=("LOCATING",))),
    _n("legal_docs", "司法文书发放数", Count("documents", role="notice", variant="zeling")),
)
PLACEMENT_COLUMNS = ("chaban", "danduban", "puzhi", "geren", "songjiao")
OUTCOME_COLUMNS = (
    _band(),
    _n("returned", "复学人数", Count("transitions", into=("RETURNED", "HOME_TAUGHT"))),
    *(_n(c.code, f"复学：{c.label}", Count("transitions", into=("RETURNED",), placement=c.code),
         *((Count("transitions", into=("HOME_TAUGHT",)),) if c.code == "songjiao" else ()))
      for c in codes.PLACEMENTS if c.code in PLACEMENT_COLUMNS),
    _n("deferred", "延缓入学/休学人数", Count("cases_at_end", at_end=("DEFERRED",))),
    _n("disability_assessed", "残疾评估认定人数", Count("transitions", transitions=("T16a", "T16b"))),
    _n("over_age", "超龄离校标注人数", Count("transitions", into=("CLOSED",), outcome="C6")),
    _n("closed", "销号人数", Count("transitions", into=("CLOSED",))),
)
CLOSURE_CODES = ("C1", "C2", "C3", "C4", "C5", "C6", "C7")
CLOSURE_LABELS = {"C1": "复学", "C2": "延缓/休学(拒不复学)", "C3": "身体原因", "C4": "贫困家庭拒不复学",
                  "C5": "失踪或死亡", "C6": "超龄", "C7": "非辍学"}
GROUP_COLUMNS = {"g01": ("建档立卡/脱贫/监测", "G01"), "left_behind": ("留守儿童", "G02"),
                 "disabled": ("残疾儿童", "G03"), "migrant": ("随迁子女", "G04")}
CLOSURE_COLUMNS = (
    _band(),
    *(_n(c.lower(), f"销号{c}：{CLOSURE_LABELS[c]}", Count("transitions", into=("CLOSED",), outcome=c))
      for c in CLOSURE_CODES),
    *(_n(name, label, Count(FOUND, group=code)) for name, (label, code) in GROUP_COLUMNS.items()),
)
REASON_COLUMNS = (
    _band(),
    *(_n(c.code.lower(), c.label, Count(FOUND, reason=c.code)) for c in codes.DROPOUT_REASONS),
)
TABLES = {"screening": SCREENING_COLUMNS, "outcomes": OUTCOME_COLUMNS, "closures": CLOSURE_COLUMNS,
          "reasons": REASON_COLUMNS}


def count_columns(table: str) -> tuple[str, ...]:
    """The count columns of one table (every column but 学段)."""
    return tuple(c.name for c in TABLES[table] if c.name != "band")


FIELDS = (
    F("doc_number", "编号", filled=Filled.SYSTEM),
    F("unit_name", "填报单位", required=True, max_length=40, source="report.unit"),
    F("period", "统计期间", required=True, max_length=60, source="report.period"),
    F("as_of", "统计时点", Kind.DATE, required=True, source="report.end"),
    F("screening", "排查与劝返情况", Kind.TABLE, required=True, min_rows=3, max_rows=3,
      columns=SCREENING_COLUMNS),
    F("outcomes", "复学与处置情况", Kind.TABLE, required=True, min_rows=3, max_rows=3, columns=OUTCOME_COLUMNS),
    F("closures", "销号与特殊群体情况", Kind.TABLE, required=True, min_rows=3, max_rows=3,
      columns=CLOSURE_COLUMNS),
    F("reasons", "疑似辍学原因分布", Kind.TABLE, required=True, min_rows=3, max_rows=3, columns=REASON_COLUMNS),
    F("remarks", "备注", max_length=200),
    F("filler_name", "填报人", Kind.NAME, required=True),
    F("checker_name", "审核人", Kind.NAME, required=True),
    F("unit_head", "单位负责人", Kind.NAME, required=True),
    F("fill_date", "填报日期", Kind.DATE, required=True),
    F("unit_seal", "单位(盖章)", Kind.SEAL, filled=Filled.HAND),
)

# A4 landscape: 257 mm of table width (as the 交接表).
W6 = (28, 72, 28, 58, 28, 43)


lv = labeller(FIELDS)


def _widths(n: int, first: float) -> tuple[float, ...]:
    rest = int((257 - first) // (n - 1))
    return (first, *([rest] * (n - 1)))


LAYOUT = (
    Part("main", "统计表", landscape=True, blocks=(
        Title("学期汇总控辍保学排查整改工作情况统计表"),
        Para("编号：{doc_number}", align="right", indent=False),
        Grid(rows=(row(lv("unit_name", 3), lv("as_of")), row(lv("period", 5))), widths=W6),
        Para("一、排查与劝返（单位：人、份）", indent=False, style="small"),
        Rows("screening", widths=_widths(len(SCREENING_COLUMNS), 17), number_column=None),
        Para("二、复学与处置（单位：人）", indent=False, style="small"),
        Rows("outcomes", widths=_widths(len(OUTCOME_COLUMNS), 17), number_column=None),
        Para("三、本期销号（按销号依据）与特殊群体（本期排查疑似辍学学生中）", indent=False, style="small"),
        Rows("closures", widths=_widths(len(CLOSURE_COLUMNS), 17), number_column=None),
        Para("四、本期排查疑似辍学学生辍学原因", indent=False, style="small"),
        Rows("reasons", widths=_widths(len(REASON_COLUMNS), 15), number_column=None),
        Spacer(2),
        Grid(rows=(
            row(lv("remarks", 5)),
            row(lv("filler_name"), lv("checker_name"), lv("unit_head")),
            row(Label("单位(盖章)"), Value("unit_seal", span=3, height_mm=28), lv("fill_date")),
        ), widths=W6, keep=True),
    )),
)


# ---- cross-field checks --------------------------------------------------------------------------

def _by_band(rows) -> dict[str, dict]:
    return {r.get("band"): r for r in rows or []}


def _check_bands(data: dict, _variant, _options) -> dict[str, str]:
    """Each table has one row per 学段 (小学, 初中, 合计) and 合计 = 小学 + 初中 in every column."""
    errs: dict[str, str] = {}
    for table in TABLES:
        rows = data.get(table) or []
        bands = [r.get("band") for r in rows]
        if sorted(bands) != sorted(c.code for c in BANDS):
            errs[table] = "应有小学、初中、合计各一行"
            continue
        by = _by_band(rows)
        i = bands.index("total")
        for col in count_columns(table):
            if by["total"][col] != by["primary"][col] + by["junior"][col]:
                errs[f"{table}[{i}].{col}"] = "合计应等于小学与初中之和"
    return errs


def _check_parts(data: dict, _variant, _options) -> dict[str, str]:
    """Of-which counts within their whole; closures by basis add up to the 销号 total."""
    errs: dict[str, str] = {}
    screening, outcomes, closures = (data.get(t) or [] for t in ("screening", "outcomes", "closures"))
    for i, r in enumerate(screening):
        parts = r["found_returned"] + r["found_persuading"] + r["found_joint"]
        if parts > r["suspected_found"]:
            errs[f"screening[{i}].found_returned"] = "已返校、劝返中、已报联合劝返组之和不能超过本期排查人数"
        if r["persuaded_3plus"] > r["suspected_found"]:
            errs[f"screening[{i}].persuaded_3plus"] = "劝返不少于3次人数不能超过本期排查人数"
    for i, r in enumerate(outcomes):
        if sum(r[c] for c in PLACEMENT_COLUMNS) > r["returned"]:
            errs[f"outcomes[{i}].returned"] = "各安置方式人数之和不能超过复学人数"
    closed = {r.get("band"): r["closed"] for r in outcomes}
    for i, r in enumerate(closures):
        total = sum(r[c.lower()] for c in CLOSURE_CODES)
        if r.get("band") in closed and total != closed[r.get("band")]:
            errs[f"closures[{i}].c1"] = f"按依据的销号人数之和({total})应等于销号人数({closed[r.get('band')]})"
    return errs


SPEC = FormSpec(
    code="quarterly_stats",
    role="statistics",
    title="学期汇总控辍保学排查整改工作情况统计表",
    version="2026.1",
    fields=FIELDS,
    layout=LAYOUT,
    number_abbr="控统",
    orientation="landscape",
    description="教育部门每季度末报送的控辍保学排查整改工作情况统计表（按学段汇总，数据取自案件台账）",
    checks=(_check_bands, _check_parts),
)
