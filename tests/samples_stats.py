"""Sample input for 《学期汇总控辍保学排查整改工作情况统计表》 (``quarterly_stats``), merged into
``tests.samples_data``. Figures are invented but consistent (合计 = 小学 + 初中; parts within their
whole; closures by basis add up to 销号人数)."""

from __future__ import annotations

import datetime as dt

from forms.specs.quarterly_stats import count_columns

VARIANTS = {"quarterly_stats": (None,)}


def _table(name: str, seed: int) -> list[dict]:
    cols = count_columns(name)
    primary = {c: (seed + 3 * i) % 7 + 1 for i, c in enumerate(cols)}
    junior = {c: (seed + 5 * i) % 9 + 2 for i, c in enumerate(cols)}
    if name == "screening":
        for d, base in ((primary, 3000), (junior, 1500)):
            d["enrolled"] = base + seed
            d["suspected_found"] = d["found_returned"] + d["found_persuading"] + d["found_joint"] + 2
            d["persuaded_3plus"] = min(d["persuaded_3plus"], d["suspected_found"])
    if name == "outcomes":
        for d in (primary, junior):
            d["returned"] = sum(d[c] for c in ("chaban", "danduban", "puzhi", "geren", "songjiao")) + 1
    rows = [{"band": "primary", **primary}, {"band": "junior", **junior},
            {"band": "total", **{c: primary[c] + junior[c] for c in cols}}]
    return rows


def sample_input(form_code: str, variant_code: str | None = None, *, hand: bool = True,
                 signatures: bool = False) -> dict:
    """A valid 统计表 input (see the module doc); ``signatures`` adds the seal's presence."""
    if form_code != "quarterly_stats" or variant_code is not None:
        raise KeyError(f"no sample for {form_code!r}/{variant_code!r}")
    closures = _table("closures", 2)
    outcomes = _table("outcomes", 1)
    for o, c in zip(outcomes, closures, strict=True):  # 销号人数 = the sum over C1–C7
        o["closed"] = sum(c[k] for k in ("c1", "c2", "c3", "c4", "c5", "c6", "c7"))
    data = {
        "doc_number": "卫教控统〔2025〕3号",
        "unit_name": "卫辉市教育局",
        "period": "2025年第3季度（2025年7月1日—9月30日）",
        "as_of": dt.date(2025, 9, 30),
        "screening": _table("screening", 4),
        "outcomes": outcomes,
        "closures": closures,
        "reasons": _table("reasons", 3),
        "remarks": "数据取自控辍保学案件台账",
        "filler_name": "李秀兰",
        "checker_name": "王建国",
        "unit_head": "张卫东",
        "fill_date": dt.date(2025, 10, 8),
    }
    if signatures:
        data["unit_seal"] = True
    return data
