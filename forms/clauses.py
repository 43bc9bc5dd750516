"""The clause library of the 责任书 (DOMAIN §5.3), as data in ``forms/data/clauses.json``.

Clauses, target indicators and the copies formula are keyed by agreement variant (R-CT ... R-SP).
The 责任书 spec stores them in its ``clauses`` / ``targets`` TABLE fields and ``copies_note``, so
each signed agreement keeps the exact wording it was printed with, even after the library changes.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from forms.datafiles import read_json
from forms.errors import BaoxueError, NotFound

CLAUSES_PATH = Path(__file__).resolve().parent / "data" / "clauses.json"


class ClauseLibraryError(BaoxueError):
    """The clause library file is missing or malformed (a deployment problem, not user input)."""

    code = "clause_library_invalid"
    http_status = 500


def load_library(path: Path | str | None = None) -> dict:
    """The parsed clause library (default: the bundled file). Cached per path; do not mutate."""
    return _load(str(Path(path or CLAUSES_PATH).resolve()))


@lru_cache(maxsize=8)
def _load(path: str) -> dict:
    raw = read_json(path, "责任书条款库", ClauseLibraryError)
    try:
        sections = {s["code"]: s["label"] for s in raw["sections"]}
        for c in raw["clauses"]:
            if c["section"] not in sections:
                raise ClauseLibraryError(f"条款{c['id']}的类别“{c['section']}”未定义")
        raw["copies"]["default"]  # noqa: B018 - required key
        for t in raw["targets"]:
            t["indicator"], t["target"]  # noqa: B018 - required keys
    except (KeyError, TypeError) as e:
        raise ClauseLibraryError(f"责任书条款库 {path} 缺少必需的项：{e}") from e
    return raw


def _known(lib: dict, variant_code: str) -> None:
    if not any(variant_code in c["variants"] for c in lib["clauses"]):
        raise NotFound(f"责任书条款库中没有变体“{variant_code}”的条款", variant=variant_code)


def clauses_for(variant_code: str, *, path: Path | str | None = None) -> list[dict]:
    """Rows for the ``clauses`` TABLE: ``{"clause_id", "section", "text"}``, ``section`` being the
    printed section label (甲方职责/乙方职责/丙方职责/报告制度/考核问责), ordered by section."""
    lib = load_library(path)
    _known(lib, variant_code)
    order = [s["code"] for s in lib["sections"]]
    labels = {s["code"]: s["label"] for s in lib["sections"]}
    chosen = [c for c in lib["clauses"] if variant_code in c["variants"]]
    chosen.sort(key=lambda c: order.index(c["section"]))  # stable: library order within a section
    return [{"clause_id": c["id"], "section": labels[c["section"]], "text": c["text"]} for c in chosen]


def targets_for(variant_code: str, *, path: Path | str | None = None) -> list[dict]:
    """Rows for the ``targets`` TABLE: ``{"indicator", "target", "formula"}`` (DOMAIN §6.4)."""
    lib = load_library(path)
    _known(lib, variant_code)
    return [{"indicator": t["indicator"], "target": t["target"], "formula": t.get("formula", "")}
            for t in lib["targets"] if variant_code in t["variants"]]


def copies_for(variant_code: str, *, path: Path | str | None = None) -> str:
    """The copies/effect formula, e.g. 一式两份，甲乙双方各执一份 (三份 for R-HO)."""
    lib = load_library(path)
    _known(lib, variant_code)
    return lib["copies"].get(variant_code, lib["copies"]["default"])


def library_version(*, path: Path | str | None = None) -> str:
    return str(load_library(path).get("library_version", ""))
