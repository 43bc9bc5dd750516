"""The store checked against the database (``flask --app app store check``).

A stored file belongs to a row when its SHA-256 appears in a column of the database: any column
named ``*sha256*`` holds a digest, any column named ``*_path`` a store path (whose file name is the
digest). Found:

* **orphans**: stored files no row refers to (e.g. a render whose row was never committed);
  removed with ``delete`` once older than ``min_age_s`` (a file younger than that may belong to a
  unit of work still running);
* **missing**: store paths in rows whose file is absent; when the file is still in staging (the
  process died between commit and move, ``cases.store.storage``), the move is finished;
* **stale staging** files older than ``min_age_s`` (their unit of work rolled back or died).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from cases.store.models import Base
from cases.store.storage import Staged, Store

_HEX = re.compile(r"[0-9a-f]{64}")


@dataclass
class StoreReport:
    files: int = 0
    referenced: int = 0
    orphans: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)
    stale_staging: list[str] = field(default_factory=list)
    deleted: int = 0

    @property
    def ok(self) -> bool:
        return not (self.orphans or self.missing)

    def to_json(self) -> dict:
        return {"ok": self.ok, "files": self.files, "referenced": self.referenced, "orphans": self.orphans,
                "missing": self.missing, "repaired": self.repaired, "stale_staging": self.stale_staging,
                "deleted": self.deleted}


def referenced(session: Session) -> tuple[set[str], set[str]]:
    """(digests referenced anywhere, store paths named in ``*_path`` columns)."""
    from cases.store.models import load_all_models

    load_all_models()
    digests: set[str] = set()
    paths: set[str] = set()
    for table in Base.metadata.sorted_tables:
        for col in table.columns:
            name = col.name.lower()
            if "sha256" not in name and not name.endswith("_path"):
                continue
            for (value,) in session.execute(select(col).where(col.is_not(None))):
                if not isinstance(value, str):
                    continue
                if name.endswith("_path") and value.startswith("objects/"):
                    paths.add(value)
                    m = _HEX.search(value)
                    if m:
                        digests.add(m.group(0))
                elif _HEX.fullmatch(value):
                    digests.add(value)
    return digests, paths


def check_store(session: Session, store: Store, *, delete: bool = False, min_age_s: float = 3600) -> StoreReport:
    """Compare the store with the rows (module docstring); repair what can be repaired."""
    report = StoreReport()
    digests, paths = referenced(session)
    report.referenced = len(digests)
    now = time.time()
    objects = store.root / "objects"
    for f in sorted(objects.rglob("*")) if objects.exists() else []:
        if not f.is_file() or f.name.startswith(".tmp-"):
            continue
        report.files += 1
        if f.name[:64] in digests:
            continue
        rel = f.relative_to(store.root).as_posix()
        if now - f.stat().st_mtime < min_age_s:
            continue
        report.orphans.append(rel)
        if delete:
            f.unlink()
            report.deleted += 1
    staging = store.root / "staging"
    staged = sorted(staging.glob("*.part")) if staging.exists() else []
    for rel in sorted(paths):
        if store.exists(rel):
            continue
        digest = _HEX.search(rel).group(0)
        candidates = [p for p in staged if p.name.startswith(digest + ".") and p.exists()]
        if candidates:
            Staged(store, digest, rel, candidates[0]).publish()
            report.repaired.append(rel)
        else:
            report.missing.append(rel)
    for p in staged:
        if p.exists() and now - p.stat().st_mtime >= min_age_s:
            report.stale_staging.append(p.name)
            if delete:
                p.unlink()
                report.deleted += 1
    if delete:
        report.orphans = [r for r in report.orphans if store.exists(r)]
    return report
