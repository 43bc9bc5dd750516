"""Which days count: statutory working days (chinese-calendar + admin-loaded holiday tables) and
school days (term dates, weekends, holidays, closures).

chinese-calendar 1.11 knows the State Council holiday arrangements for 2004–2026 only and raises
``NotImplementedError`` outside that range. For later years an administrator loads the year's
table from the 国务院办公厅 notice (``HolidayTable``). A day in a year nobody knows is classified by
weekends alone and marked *unknown*, so callers can flag the result as provisional instead of
printing a silently wrong date.

Holiday table file format (``cases/holidays/<year>.json``, UTF-8)::

    {
      "year": 2027,
      "source": "国务院办公厅关于2027年部分节假日安排的通知（国办发明电〔2026〕N号）",
      "holidays": ["2027-01-01", "2027-02-06", ...],   # rest days of the arrangement (incl. weekends inside)
      "workdays": ["2027-02-20", ...]                  # 调休 make-up working days (always a Sat/Sun)
    }

Every date must lie in ``year``; a date may not be both a holiday and a make-up working day.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import chinese_calendar

from forms.errors import ValidationFailed

log = logging.getLogger(__name__)

# Data beside the code of the areas, in cases/holidays/ (holiday tables) and cases/profiles/ (region profiles).
HOLIDAY_DIR = Path(__file__).resolve().parent.parent / "holidays"
WEEKEND = frozenset({5, 6})  # Saturday, Sunday (date.weekday())


@dataclass(frozen=True)
class DayInfo:
    """Classification of one day. ``known`` is False when the year's holiday arrangement is not
    known (neither chinese-calendar nor a loaded table) and ``is_workday`` was guessed from
    weekends only."""

    day: dt.date
    is_workday: bool
    known: bool


@dataclass(frozen=True)
class HolidayTable:
    """One year's statutory holiday arrangement, as published by 国务院办公厅."""

    year: int
    holidays: frozenset[dt.date]
    workdays: frozenset[dt.date] = frozenset()
    source: str = ""

    def validate(self) -> HolidayTable:
        """Raise ``ValidationFailed`` unless every date is in ``year``, the two sets do not
        overlap and every make-up working day falls on a weekend. Returns ``self``."""
        problems: dict[str, str] = {}
        if not isinstance(self.year, int) or not 1949 < self.year < 2200:
            problems["year"] = f"年份无效：{self.year!r}"
        else:
            outside = sorted(d for d in self.holidays | self.workdays if d.year != self.year)
            if outside:
                problems["dates"] = (f"以下日期不在{self.year}年内："
                                     + "、".join(d.isoformat() for d in outside))
        overlap = sorted(self.holidays & self.workdays)
        if overlap:
            problems["overlap"] = ("以下日期同时列为放假日和调休上班日："
                                   + "、".join(d.isoformat() for d in overlap))
        weekday_makeups = sorted(d for d in self.workdays if d.weekday() not in WEEKEND)
        if weekday_makeups:
            problems["workdays"] = ("调休上班日应为周六或周日，以下日期不是："
                                    + "、".join(d.isoformat() for d in weekday_makeups))
        if not self.holidays:
            problems["holidays"] = "放假日期为空"
        if problems:
            raise ValidationFailed(f"{self.year}年节假日安排表无效：" + "；".join(problems.values()),
                                   fields=problems)
        return self

    def is_workday(self, day: dt.date) -> bool:
        """Working day under this arrangement: a make-up day, or a weekday that is no holiday."""
        if day in self.workdays:
            return True
        return day.weekday() not in WEEKEND and day not in self.holidays

    def to_dict(self) -> dict:
        return {
            "year": self.year,
            "source": self.source,
            "holidays": [d.isoformat() for d in sorted(self.holidays)],
            "workdays": [d.isoformat() for d in sorted(self.workdays)],
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> HolidayTable:
        """Build and validate a table from its JSON form; errors name the failing key."""
        if not isinstance(data, Mapping):
            raise ValidationFailed("节假日安排表应为 JSON 对象", fields={"": "not an object"})
        for key in ("year", "holidays"):
            if key not in data:
                raise ValidationFailed(f"节假日安排表缺少键 '{key}'", fields={key: "missing"})
        year = data["year"]
        if not isinstance(year, int) or isinstance(year, bool):
            raise ValidationFailed(f"节假日安排表键 'year' 应为整数，实为 {year!r}",
                                   fields={"year": "not int"})

        def dates(key: str) -> frozenset[dt.date]:
            raw = data.get(key, [])
            if not isinstance(raw, list):
                raise ValidationFailed(f"节假日安排表键 '{key}' 应为日期列表", fields={key: "not a list"})
            out = set()
            for item in raw:
                try:
                    out.add(dt.date.fromisoformat(str(item)))
                except ValueError as e:
                    raise ValidationFailed(
                        f"节假日安排表键 '{key}' 中的日期 {item!r} 无法识别（应为 YYYY-MM-DD）",
                        fields={key: f"bad date {item!r}"}) from e
            return frozenset(out)

        return cls(year=year, holidays=dates("holidays"), workdays=dates("workdays"),
                   source=str(data.get("source", ""))).validate()

    @classmethod
    def load(cls, path: Path) -> HolidayTable:
        """Read and validate one ``<year>.json`` file."""
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            raise ValidationFailed(f"无法读取节假日安排表 {path.name}：{e}",
                                   fields={"file": str(path.name)}) from e
        table = cls.from_dict(data)
        if path.stem.isdigit() and int(path.stem) != table.year:
            raise ValidationFailed(f"文件名 {path.name} 与表内年份 {table.year} 不一致",
                                   fields={"year": "file name mismatch"})
        return table

    def save(self, directory: Path) -> Path:
        """Validate and write ``<directory>/<year>.json``; returns the path."""
        self.validate()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{self.year}.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.to_dict(), ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        tmp.replace(path)  # atomic on one file system: readers never see half a table
        return path


@dataclass(frozen=True)
class HolidayTables:
    """The admin-loaded tables, by year. An explicitly loaded table takes precedence over
    chinese-calendar for its year (so an administrator can also correct a known year)."""

    tables: Mapping[int, HolidayTable] = field(default_factory=dict, hash=False)

    @classmethod
    def of(cls, *tables: HolidayTable) -> HolidayTables:
        return cls({t.validate().year: t for t in tables})

    def get(self, year: int) -> HolidayTable | None:
        return self.tables.get(year)

    def with_table(self, table: HolidayTable) -> HolidayTables:
        """A copy with ``table`` added (replacing any table of the same year)."""
        return HolidayTables({**self.tables, table.validate().year: table})

    @classmethod
    def load_dir(cls, directory: Path = HOLIDAY_DIR) -> HolidayTables:
        """Load every ``<year>.json`` in ``directory`` (missing directory: no tables)."""
        directory = Path(directory)
        if not directory.is_dir():
            return cls({})
        tables = [HolidayTable.load(p) for p in sorted(directory.glob("*.json")) if p.stem.isdigit()]
        return cls({t.year: t for t in tables})

    def years(self) -> tuple[int, ...]:
        return tuple(sorted(self.tables))


def chinese_calendar_years() -> tuple[int, int]:
    """First and last year the installed chinese-calendar knows."""
    years = [d.year for d in chinese_calendar.holidays]
    return min(years), max(years)


def day_info(day: dt.date, holidays: HolidayTables | None = None) -> DayInfo:
    """Classify ``day`` as a statutory working day, saying whether the classification is known."""
    if isinstance(day, dt.datetime):
        day = day.date()
    table = holidays.get(day.year) if holidays is not None else None
    if table is not None:
        return DayInfo(day, table.is_workday(day), True)
    try:
        return DayInfo(day, bool(chinese_calendar.is_workday(day)), True)
    except NotImplementedError:
        # Outside chinese-calendar's years and no table loaded: weekends only, flagged unknown.
        return DayInfo(day, day.weekday() not in WEEKEND, False)


def provisional_warning(years: Iterable[int]) -> str | None:
    """The user-visible warning for dates computed without a holiday arrangement."""
    years = sorted(set(years))
    if not years:
        return None
    listed = "、".join(f"{y}年" for y in years)
    return f"{listed}法定节假日安排尚未导入，按周末推算，日期为暂定"


@dataclass(frozen=True)
class SchoolCalendar:
    """When the child should be at school.

    ``terms`` are inclusive (first day, last day) ranges. With ``statutory_rules`` (the default)
    a school day is a statutory working day inside a term, so 调休 make-up Saturdays are school
    days and statutory holidays are not; without it, any day not in ``weekend`` and not in
    ``holidays`` is. ``closures`` are extra days the school is shut (snow day, exam break...);
    ``extra_days`` are extra school days (e.g. a Saturday make-up class)."""

    terms: tuple[tuple[dt.date, dt.date], ...]
    statutory_rules: bool = True
    weekend: frozenset[int] = WEEKEND
    holidays: frozenset[dt.date] = frozenset()
    closures: frozenset[dt.date] = frozenset()
    extra_days: frozenset[dt.date] = frozenset()
    holiday_tables: HolidayTables | None = None

    def __post_init__(self):
        for i, (first, last) in enumerate(self.terms):
            if last < first:
                raise ValidationFailed(f"学期 {i + 1} 的结束日期 {last} 早于开始日期 {first}",
                                       fields={f"terms[{i}]": "end before start"})

    def in_term(self, day: dt.date) -> bool:
        return any(first <= day <= last for first, last in self.terms)

    def day_info(self, day: dt.date) -> DayInfo:
        """Whether the child should attend on ``day`` (``known`` False if the statutory
        arrangement of that year is unknown)."""
        if day in self.closures:
            return DayInfo(day, False, True)
        if day in self.extra_days:
            return DayInfo(day, True, True)
        if not self.in_term(day) or day in self.holidays:
            return DayInfo(day, False, True)
        if self.statutory_rules:
            info = day_info(day, self.holiday_tables)
            return DayInfo(day, info.is_workday, info.known)
        return DayInfo(day, day.weekday() not in self.weekend, True)

    def is_school_day(self, day: dt.date) -> bool:
        return self.day_info(day).is_workday
