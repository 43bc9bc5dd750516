"""Reading uploaded tables (attendance, rosters, plans): CSV or XLSX into numbered rows.

One reader for every import, so each accepts the same files: CSV in UTF-8 (with or without BOM)
or GB18030 (what Excel saves on Chinese Windows), or XLSX (first sheet); row 1 is the header;
blank rows are skipped; every cell comes back as text (dates as ISO, whole floats as integers).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import zipfile
from typing import Any

from forms.errors import UnsupportedInput, ValidationFailed


def cell_text(value: Any) -> str:
    """One cell as text: dates ISO, 3.0 -> "3", None -> ""."""
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _csv_rows(data: bytes, filename: str) -> list[list[Any]]:
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            text = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise UnsupportedInput(f"无法识别“{filename}”的文字编码，请另存为 UTF-8 CSV 或 XLSX",
                               fields={"file": "编码无法识别"})
    return [list(r) for r in csv.reader(io.StringIO(text))]


def _xlsx_rows(data: bytes, filename: str) -> list[list[Any]]:
    from openpyxl import load_workbook

    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as e:
        raise UnsupportedInput(f"“{filename}”不是可读的 XLSX 文件：{e}", fields={"file": "无法读取"}) from e
    try:
        return [list(r) for r in book.worksheets[0].iter_rows(values_only=True)]
    finally:
        book.close()


def read_table(filename: str, data: bytes, *, what: str = "表格", max_rows: int | None = None
               ) -> list[tuple[int, dict[str, str]]]:
    """(sheet row number, {header: text}) for every non-empty data row.

    ``what`` names the file in messages (考勤文件, 花名册...). Raises UnsupportedInput for a file
    that is neither CSV nor XLSX, ValidationFailed for an empty one or one over ``max_rows``."""
    name = (filename or "").lower()
    if name.endswith((".xlsx", ".xlsm")) or data[:4] == b"PK\x03\x04":
        table = _xlsx_rows(data, filename)
    elif name.endswith((".csv", ".txt")) or "." not in name:
        table = _csv_rows(data, filename)
    else:
        raise UnsupportedInput(f"{what}应为 CSV 或 XLSX，收到：{filename}", fields={"file": "类型不支持"})
    if not table:
        raise ValidationFailed(f"{what}“{filename}”是空的", fields={"file": "没有表头"})
    header = [cell_text(h) for h in table[0]]
    out = []
    for number, raw in enumerate(table[1:], 2):
        cells = [cell_text(c) for c in raw]
        if not any(cells):
            continue
        out.append((number, {h: (cells[i] if i < len(cells) else "") for i, h in enumerate(header) if h}))
        if max_rows is not None and len(out) > max_rows:
            raise ValidationFailed(f"{what}超过{max_rows}行，请分批导入", fields={"file": "行数过多"})
    return out


def headers_of(filename: str, data: bytes) -> list[str]:
    """The header row (row 1) of a table file."""
    name = (filename or "").lower()
    table = _xlsx_rows(data, filename) if name.endswith((".xlsx", ".xlsm")) or data[:4] == b"PK\x03\x04" \
        else _csv_rows(data, filename)
    return [cell_text(h) for h in table[0]] if table else []
