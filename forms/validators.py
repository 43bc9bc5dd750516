"""Field validation library (DOMAIN §5.0.3): ID numbers, 学籍号, phones, dates, names.

Pure functions: each ``check_*`` returns the normalised value or raises ``ValueError`` with a
message a clerk can act on (Chinese, naming the rule that failed). Nothing here logs values: these
are minors' records.
"""

from __future__ import annotations

import datetime as dt
import re

from stdnum.cn import ric
from stdnum.exceptions import ValidationError as StdnumError

ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
ID_CHECK = "10X98765432"
PROVINCE_PREFIXES = {
    *range(11, 16), *range(21, 24), *range(31, 38), *range(41, 47), *range(50, 55), *range(61, 66),
    81, 82, 83,
}
MOBILE_RE = re.compile(r"^1[3-9]\d{9}$")
LANDLINE_RE = re.compile(r"^0\d{2,3}-?\d{7,8}(-\d{1,6})?$")
NAME_RE = re.compile(r"^[\u3400-\u4dbf\u4e00-\u9fff\U00020000-\U0003134f·•]+$")
CN_DIGITS = {"〇": 0, "零": 0, "○": 0, "O": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4,
             "五": 5, "六": 6, "七": 7, "八": 8, "九": 9, "十": 10}


def mask_id(value: str | None) -> str:
    """Mask an ID number for printing and logs: first 6 + last 4 (DOMAIN §5.2.1)."""
    if not value:
        return ""
    value = str(value)
    if len(value) < 10:
        return "*" * len(value)
    return value[:6] + "*" * (len(value) - 10) + value[-4:]


def id_check_char(first17: str) -> str:
    """GB 11643 check character for the first 17 digits."""
    total = sum(int(c) * w for c, w in zip(first17, ID_WEIGHTS, strict=True))
    return ID_CHECK[total % 11]


def check_id_number(value: str, *, today: dt.date | None = None) -> str:
    """Validate a GB 11643 ID number (18 chars); return it normalised (upper-case X)."""
    v = re.sub(r"\s", "", str(value or "")).upper()
    if len(v) == 15:
        raise ValueError("15位旧身份证号仅可用于监护人，请换算为18位")
    if len(v) != 18 or not re.fullmatch(r"\d{17}[\dX]", v):
        raise ValueError("身份证号应为18位：17位数字加1位校验码(0-9或X)")
    if int(v[:2]) not in PROVINCE_PREFIXES:
        raise ValueError(f"身份证号前两位{v[:2]}不是有效的省级行政区划代码")
    try:
        birth = dt.date(int(v[6:10]), int(v[10:12]), int(v[12:14]))
    except ValueError:
        raise ValueError("身份证号第7-14位不是有效的出生日期") from None
    if birth > (today or dt.date.today()):
        raise ValueError("身份证号中的出生日期在未来")
    try:
        ric.validate(v)
    except KeyError:
        # python-stdnum 2.2 raises KeyError for an area code whose prefecture it does not know
        raise ValueError(f"身份证号前6位{v[:6]}不是有效的县级行政区划代码") from None
    except StdnumError as e:
        if id_check_char(v[:17]) != v[17]:
            raise ValueError("身份证号校验码错误(GB 11643)") from e
        raise ValueError(f"身份证号无效：{e}") from e
    return v


def id_birth_date(value: str) -> dt.date:
    return dt.date(int(value[6:10]), int(value[10:12]), int(value[12:14]))


def id_sex(value: str) -> str:
    """'男' when the 17th digit is odd, else '女'."""
    return "男" if int(value[16]) % 2 else "女"


def check_xueji_no(value: str) -> str:
    """全国学籍号: G + ID number; J + 18 chars passing the ID checksum; L + area(6) + date(8) + 4 digits."""
    v = re.sub(r"\s", "", str(value or "")).upper()
    if len(v) != 19 or v[0] not in "GJL":
        raise ValueError("全国学籍号应为19位，以G、J或L开头")
    body = v[1:]
    if v[0] in "GJ":
        if not re.fullmatch(r"\d{17}[\dX]", body) or id_check_char(body[:17]) != body[17]:
            raise ValueError(f"{v[0]}字头学籍号的后18位未通过身份证号校验")
    else:
        if not re.fullmatch(r"\d{18}", body):
            raise ValueError("L字头学籍号应为L+6位区划+8位日期+4位数字")
        try:
            dt.date(int(body[6:10]), int(body[10:12]), int(body[12:14]))
        except ValueError:
            raise ValueError("L字头学籍号中的日期无效") from None
    return v


def check_phone(value: str) -> str:
    """One or more phone numbers (mobile or landline), separated by ,，、/ or spaces; normalised."""
    parts = [p for p in re.split(r"[,，、/;；\s]+", str(value or "").strip()) if p]
    if not parts:
        raise ValueError("请填写联系电话")
    out = []
    for p in parts:
        p = p.replace("－", "-").replace("—", "-")
        if MOBILE_RE.match(p.replace("-", "")) and len(p.replace("-", "")) == 11:
            out.append(p.replace("-", ""))
        elif LANDLINE_RE.match(p):
            out.append(p)
        else:
            raise ValueError(f"电话号码“{p}”格式不正确：手机为11位且以1开头，座机如0373-4412345")
    return ",".join(out)


def check_name(value: str) -> str:
    v = re.sub(r"\s", "", str(value or ""))
    if not 1 <= len(v) <= 20:
        raise ValueError("姓名长度应为1-20个字")
    if not NAME_RE.match(v):
        raise ValueError("姓名只能包含汉字和间隔号“·”")
    return v.replace("•", "·")


def _cn_number(text: str) -> int:
    """Chinese numerals up to 99 ('二十三', '十', '九') and digit-by-digit years ('二〇二四')."""
    if text.isdigit():
        return int(text)
    if "十" in text:
        tens, _, ones = text.partition("十")
        return (CN_DIGITS[tens] if tens else 1) * 10 + (CN_DIGITS[ones] if ones else 0)
    return int("".join(str(CN_DIGITS[c]) for c in text))


_DATE_PATTERNS = (
    re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})$"),
    re.compile(r"^(\d{2,4})\s*[年./\-]\s*(\d{1,2})\s*[月./\-]\s*(\d{1,2})\s*日?$"),
    re.compile(r"^(\d{4})(\d{2})(\d{2})$"),
)
_CN_DATE = re.compile(r"^([〇零○O一二三四五六七八九\d]{2,4})年([一二三四五六七八九十\d]{1,3})月"
                      r"([一二三四五六七八九十\d]{1,3})[日号]$")


def parse_date(value) -> dt.date:
    """Parse ISO and handwritten variants: 2024.9.3, 2024/09/03, 24年9月3日, 二〇二四年九月三日."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    text = re.sub(r"\s", "", str(value or ""))
    if not text:
        raise ValueError("日期为空")
    m = _CN_DATE.match(text)
    if m:
        y, mo, d = (_cn_number(g) for g in m.groups())
    else:
        for pat in _DATE_PATTERNS:
            m = pat.match(text)
            if m:
                y, mo, d = (int(g) for g in m.groups())
                break
        else:
            raise ValueError(f"无法识别的日期“{text}”，请写作2024年9月3日或2024-09-03")
    if y < 100:
        y += 2000
    try:
        return dt.date(y, mo, d)
    except ValueError:
        raise ValueError(f"日期“{text}”不存在") from None


def format_date(value: dt.date | None) -> str:
    """Print style of GB/T 9704: 2024年9月3日 (no leading zeros)."""
    if value is None:
        return ""
    return f"{value.year}年{value.month}月{value.day}日"


def parse_datetime(value) -> dt.datetime:
    """Parse '2024-09-03 14:30', ISO '2024-09-03T14:30:00', '2024年9月3日14时30分', or a date (midnight)."""
    if isinstance(value, dt.datetime):
        return value
    text = re.sub(r"\s+", " ", str(value or "")).strip()
    m = re.match(r"^(.*?日|\d{4}-\d{1,2}-\d{1,2})[\sT]*(\d{1,2})\s*[时:：点]\s*(\d{1,2})\s*(?:分|:00)?$", text)
    if m:
        d = parse_date(m.group(1))
        return dt.datetime(d.year, d.month, d.day, int(m.group(2)), int(m.group(3)))
    d = parse_date(text)
    return dt.datetime(d.year, d.month, d.day)


def format_datetime(value: dt.datetime | None) -> str:
    if value is None:
        return ""
    return f"{format_date(value.date())}{value.hour}时{value.minute:02d}分"


def synthetic_id_number(area: str, birth: dt.date, seq: int) -> str:
    """A checksum-valid ID number for synthetic test and demo data (never a real person's):
    6-digit area code + birth date + 3-digit sequence (odd = male) + check character."""
    first17 = f"{area}{birth:%Y%m%d}{seq % 1000:03d}"
    return first17 + id_check_char(first17)
