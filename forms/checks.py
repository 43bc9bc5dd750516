"""Reusable cross-field checks for specs. Each factory returns ``check(data, variant, options)``
giving ``{field path: message}`` for what fails."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from forms import validators as v


def check_person_identity(id_field: str, *, sex: str | None = None, birth: str | None = None,
                          xueji: str | None = None, table: str | None = None):
    """ID number agrees with sex (17th digit), birth date (digits 7-14) and a G-form 学籍号."""

    def one(d: dict, prefix: str) -> dict[str, str]:
        errs: dict[str, str] = {}
        idn = d.get(id_field)
        if not idn:
            return errs
        if sex and d.get(sex) and d[sex] != v.id_sex(idn):
            errs[prefix + sex] = f"性别与身份证号第17位不符(应为{v.id_sex(idn)})"
        if birth and d.get(birth) and d[birth] != v.id_birth_date(idn):
            errs[prefix + birth] = "出生日期与身份证号第7-14位不符"
        if xueji and d.get(xueji) and d[xueji].startswith("G") and d[xueji][1:] != idn:
            errs[prefix + xueji] = "G字头学籍号应为“G”+身份证号"
        return errs

    def check(data, _variant, _options):
        if table is None:
            return one(data, "")
        errs = {}
        for i, r in enumerate(data.get(table) or []):
            errs.update(one(r, f"{table}[{i}]."))
        return errs

    return check


def check_dates_order(*pairs: tuple[str, str], rows: tuple[str, str] | None = None,
                      rows_between: tuple[str, str] | None = None, not_future: Iterable[str] = ()):
    """Each (earlier, later) pair is in order; table row dates lie between two fields."""

    def check(data, _variant, _options):
        errs = {}
        for a, b in pairs:
            if data.get(a) and data.get(b) and data[a] > data[b]:
                errs[b] = "日期不能早于" + a
        if rows and rows_between:
            table, col = rows
            lo, hi = (data.get(rows_between[0]), data.get(rows_between[1]))
            for i, r in enumerate(data.get(table) or []):
                d = r.get(col)
                if d and lo and d < lo:
                    errs[f"{table}[{i}].{col}"] = "早于未到校起始日期"
                elif d and hi and d > hi:
                    errs[f"{table}[{i}].{col}"] = "晚于报告日期"
        for name in not_future:
            if data.get(name) and data[name] > dt.date.today():
                errs[name] = "不能是未来的日期"
        return errs

    return check


def require_when(target: str, source: str, values: set, message: str):
    """``target`` is required when ``source`` takes one of ``values``."""

    def check(data, _variant, _options):
        if data.get(source) in values and not data.get(target):
            return {target: message}
        return {}

    return check
