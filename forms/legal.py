"""The legal citation library printed on guardian notices (DOMAIN §5.0.4), as versioned data.

The statute text lives in ``forms/data/legal_texts.json``: one entry per (citation key, version)
with the law, article, version, the date it took effect, the official text and the notice variants
that cite it. ``citations_for`` picks, for each key a variant uses, the version in force on the
notice date, so a notice issued before 2021-06-01 cites 未成年人保护法 第十三条 (2012修正) and one
issued after cites 第十六条 (2020修订). Each citation carries a SHA-256 of its text; the notice's
``legal_basis`` table stores law_id, article, version and hash so the case file records exactly
what was printed. A region corrects the text by editing (or replacing) the JSON file, not code.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from forms.datafiles import read_json
from forms.errors import BaoxueError, NotFound

log = logging.getLogger(__name__)

LEGAL_TEXTS_PATH = Path(__file__).resolve().parent / "data" / "legal_texts.json"


class LegalLibraryError(BaoxueError):
    """The legal text library file is missing or malformed (a deployment problem, not user input)."""

    code = "legal_library_invalid"
    http_status = 500


def text_hash(text: str) -> str:
    """SHA-256 (hex) of a citation's text exactly as stored and printed."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Citation:
    """One article (or paragraph/item) of one version of a law, as printed on a notice."""

    entry_id: str
    key: str  # stable across versions, e.g. "wcn.guardian_education"
    law_id: str
    law_title: str
    article: str
    version: str
    effective_from: dt.date
    text: str
    sha256: str
    variants: tuple[str, ...]
    reasons: tuple[str, ...]
    verify: bool  # wording not yet checked against an official copy

    @property
    def law_label(self) -> str:
        """Printed law name with its version, e.g. 《中华人民共和国义务教育法》(2018修正)."""
        return f"《{self.law_title}》({self.version})"

    def as_row(self) -> dict[str, str]:
        """A row of a notice's ``legal_basis`` TABLE field (printed columns + snapshot columns)."""
        return {"law": self.law_label, "article": self.article, "text": self.text,
                "law_id": self.law_id, "version": self.version, "sha256": self.sha256}


@dataclass(frozen=True)
class LegalLibrary:
    """The parsed library: laws by id and citations in print order."""

    library_version: str
    laws: dict[str, tuple[str, dt.date]]  # law_id -> (title, first date any version was in force)
    citations: tuple[Citation, ...]

    def keys_for(self, variant_code: str, reason: str | None = None) -> list[str]:
        """Citation keys a variant prints (in library order), plus those added by the case reason."""
        out: list[str] = []
        for c in self.citations:
            if c.key in out:
                continue
            if variant_code in c.variants or (reason and reason in c.reasons):
                out.append(c.key)
        return out

    def in_force(self, key: str, on_date: dt.date) -> Citation | None:
        """The version of ``key`` in force on ``on_date``: the latest one that took effect by then."""
        versions = [c for c in self.citations if c.key == key and c.effective_from <= on_date]
        return max(versions, key=lambda c: c.effective_from) if versions else None

    def find(self, law_id: str, article: str, version: str) -> Citation | None:
        for c in self.citations:
            if (c.law_id, c.article, c.version) == (law_id, article, version):
                return c
        return None


def _date(value: str, where: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except (TypeError, ValueError) as e:
        raise LegalLibraryError(f"法律文本库{where}的日期“{value}”应为YYYY-MM-DD") from e


def load_library(path: Path | str | None = None) -> LegalLibrary:
    """Read and check a legal text library file (default: the bundled one). Cached per path."""
    return _load(str(Path(path or LEGAL_TEXTS_PATH).resolve()))


@lru_cache(maxsize=8)
def _load(path: str) -> LegalLibrary:
    raw = read_json(path, "法律文本库", LegalLibraryError)
    try:
        laws = {law["law_id"]: (law["title"], _date(law["first_effective"], law["law_id"]))
                for law in raw["laws"]}
        citations = []
        seen: set[tuple[str, dt.date]] = set()
        for e in raw["entries"]:
            if e["law_id"] not in laws:
                raise LegalLibraryError(f"法律文本库条目{e['id']}引用了未定义的法律{e['law_id']}")
            when = _date(e["effective_from"], e["id"])
            if (e["key"], when) in seen:
                raise LegalLibraryError(f"法律文本库中{e['key']}在{when}有两个版本")
            seen.add((e["key"], when))
            text = e["text"].strip()
            citations.append(Citation(
                entry_id=e["id"], key=e["key"], law_id=e["law_id"], law_title=laws[e["law_id"]][0],
                article=e["article"], version=e["version"], effective_from=when, text=text,
                sha256=text_hash(text), variants=tuple(e.get("variants", ())),
                reasons=tuple(e.get("reasons", ())), verify=bool(e.get("verify", False))))
        return LegalLibrary(library_version=str(raw.get("library_version", "")), laws=laws,
                            citations=tuple(citations))
    except (KeyError, TypeError) as e:
        raise LegalLibraryError(f"法律文本库 {path} 缺少必需的项：{e}") from e


def citations_for(variant_code: str, on_date: dt.date, *, reason: str | None = None,
                  library: LegalLibrary | None = None) -> list[Citation]:
    """The citations a notice variant prints on ``on_date`` (its issue date), in print order.

    ``reason`` (a DOMAIN §7.1 code) adds reason-specific articles, e.g. R02 外出打工 adds
    义务教育法 第十四条 and 禁止使用童工规定. A law not yet in force on ``on_date`` is left out;
    a law in force whose text the library lacks for that date raises NotFound (fix the library).
    """
    lib = library or load_library()
    keys = lib.keys_for(variant_code, reason)
    if not keys:
        raise NotFound(f"法律文本库中没有通知书变体“{variant_code}”引用的条文", variant=variant_code)
    out: list[Citation] = []
    for key in keys:
        c = lib.in_force(key, on_date)
        if c is not None:
            out.append(c)
            continue
        law_id = next(x.law_id for x in lib.citations if x.key == key)
        title, first = lib.laws[law_id]
        if on_date >= first:
            raise NotFound(f"法律文本库缺少《{title}》（{key}）在{on_date.isoformat()}施行的文本，"
                           "请在 forms/data/legal_texts.json 中补充该版本", key=key)
        log.info("legal citation %s skipped: %s not in force on %s", key, law_id, on_date)
    return out


def legal_basis_rows(variant_code: str, on_date: dt.date, *, reason: str | None = None,
                     library: LegalLibrary | None = None) -> list[dict[str, str]]:
    """Rows for a guardian notice's ``legal_basis`` TABLE field (see ``Citation.as_row``)."""
    return [c.as_row() for c in citations_for(variant_code, on_date, reason=reason, library=library)]


def _squash(text: str) -> str:
    # printed text may come back re-flowed (line breaks between 款 become spaces)
    return re.sub(r"\s+", "", text)


def check_rows(rows: list[dict], *, library: LegalLibrary | None = None,
               table: str = "legal_basis") -> dict[str, str]:
    """Rows that claim a library citation (law_id set) must name an existing version with the
    same hash; the printed text must equal the library text (whitespace aside) when present."""
    lib = library or load_library()
    errs: dict[str, str] = {}
    for i, r in enumerate(rows or []):
        if not r.get("law_id"):
            continue  # read back from paper: only the printed columns are known
        c = lib.find(r["law_id"], r.get("article") or "", r.get("version") or "")
        if c is None:
            errs[f"{table}[{i}].article"] = (f"法律文本库中没有{r['law_id']} {r.get('article')}"
                                             f"（{r.get('version')}）")
        elif r.get("sha256") and r["sha256"] != c.sha256:
            errs[f"{table}[{i}].sha256"] = "条文哈希与法律文本库不符（文本被改动或版本不对）"
        elif r.get("text") and _squash(r["text"]) != _squash(c.text):
            errs[f"{table}[{i}].text"] = "条文内容与法律文本库不符"
    return errs
