"""Backup and restore of the whole installation: the database and the content-addressed store.

``create_backup(url, store, dest)`` writes, while the service runs:

* ``database.sqlite3`` — SQLite's online backup API (a consistent copy, page by page, while other
  connections keep writing), or ``database.pgdump`` — ``pg_dump --format=custom`` (one
  repeatable-read snapshot). The database is copied first: the store is write-once, so every file
  the copied rows refer to is already in the store when it is copied next.
* ``store/objects/...`` — every stored file, copied and checked against its content address.
* ``manifest.json`` — the SHA-256 and size of every file of the backup, the database kind, the
  schema revision and the row count of every table.

``restore_backup(src, url, store)`` checks every hash of the backup first, refuses a database
that has tables or a store that has files, restores the database (SQLite backup API /
``pg_restore``) and the files, then checks every restored file's hash and every table's row
count against the manifest. Errors are ``BackupFailed`` naming the file and the reason.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

from sqlalchemy import create_engine, inspect, text

from cases.store.db import normalise_url
from cases.store.storage import Store
from forms.errors import BaoxueError

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
FORMAT = 1
_CHUNK = 1024 * 1024


class BackupFailed(BaoxueError):
    """A backup could not be written, or a backup could not be restored or verified."""

    code = "backup_failed"
    http_status = 500


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _pg_args(url) -> tuple[list[str], dict, str | None]:
    """libpq connection arguments for pg_dump/pg_restore, the password in the environment, and
    the schema chosen in the URL (``?options=-csearch_path=...``), if any."""
    u = normalise_url(url)
    args = ["-h", u.host or "127.0.0.1", "-p", str(u.port or 5432), "-U", u.username or "postgres",
            "-d", u.database or "postgres"]
    env = dict(os.environ)
    if u.password:
        env["PGPASSWORD"] = str(u.password)
    schema = None
    options = u.query.get("options")
    if isinstance(options, str) and "search_path=" in options:
        schema = options.split("search_path=", 1)[1].split(",")[0].split()[0].strip()
    return args, env, schema


def _run(cmd: list[str], env: dict, what: str) -> None:
    try:
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=3600)
    except FileNotFoundError as e:
        raise BackupFailed(f"{what}：未安装 {cmd[0]}（postgresql-client）") from e
    if out.returncode != 0:
        raise BackupFailed(f"{what}失败：{out.stderr.strip()[-800:]}")


def _counts(bind) -> dict[str, int]:
    """Rows per table, on an engine or inside a connection's transaction."""
    if hasattr(bind, "connect") and not hasattr(bind, "execute"):
        with bind.connect() as conn:
            return _counts(conn)
    names = sorted(inspect(bind).get_table_names())
    return {n: bind.execute(text(f'SELECT COUNT(*) FROM "{n}"')).scalar_one() for n in names}


def _revision(bind) -> str | None:
    if hasattr(bind, "connect") and not hasattr(bind, "execute"):
        with bind.connect() as conn:
            return _revision(conn)
    if "alembic_version" not in inspect(bind).get_table_names():
        return None
    return bind.execute(text("SELECT version_num FROM alembic_version")).scalar()


def create_backup(url: str, store: Store, dest: Path | str) -> dict:
    """Write a backup of the database at ``url`` and of ``store`` into the new folder ``dest``;
    returns the manifest (module docstring)."""
    dest = Path(dest)
    if dest.exists() and any(dest.iterdir()):
        raise BackupFailed(f"备份目录 {dest} 不是空的")
    dest.mkdir(parents=True, exist_ok=True)
    u = normalise_url(url)
    kind = u.get_backend_name()
    if kind == "sqlite":
        db_file = dest / "database.sqlite3"
        src = sqlite3.connect(u.database, timeout=30)
        dst = sqlite3.connect(db_file)
        try:
            src.backup(dst)  # consistent while other connections write
        finally:
            dst.close()
            src.close()
        copy = create_engine(f"sqlite:///{db_file}")
        try:  # the row counts of the copy itself
            counts, revision = _counts(copy), _revision(copy)
        finally:
            copy.dispose()
    elif kind == "postgresql":
        db_file = dest / "database.pgdump"
        args, env, schema = _pg_args(u)
        engine = create_engine(u)
        try:
            # One snapshot for the counts and the dump: exported by a repeatable-read transaction
            # held open while pg_dump reads it, so rows written meanwhile are in neither.
            with engine.connect() as conn:
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
                with conn.begin():
                    snapshot = conn.execute(text("SELECT pg_export_snapshot()")).scalar_one()
                    counts, revision = _counts(conn), _revision(conn)
                    _run(["pg_dump", "--format=custom", "--no-owner", "--no-privileges", f"--snapshot={snapshot}",
                          *args, *(["-n", schema] if schema else []), "-f", str(db_file)], env, "pg_dump")
        finally:
            engine.dispose()
    else:  # pragma: no cover - only SQLite and PostgreSQL are supported
        raise BackupFailed(f"不支持的数据库：{kind}")
    files = {db_file.name: {"sha256": _sha256(db_file), "size": db_file.stat().st_size}}
    objects = store.root / "objects"
    for f in sorted(objects.rglob("*")) if objects.exists() else []:
        if not f.is_file() or f.name.startswith(".tmp-"):
            continue
        rel = f.relative_to(store.root).as_posix()
        target = dest / "store" / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(f, target)
        digest = _sha256(target)
        if digest != f.name[:64]:
            raise BackupFailed(f"存储区文件 {rel} 的内容与其哈希不符（文件已损坏）", file=rel)
        files[f"store/{rel}"] = {"sha256": digest, "size": target.stat().st_size}
    manifest = {"format": FORMAT, "created_at": dt.datetime.now(dt.UTC).isoformat(),
                "database": {"kind": kind, "file": db_file.name, "revision": revision, "counts": counts},
                "files": files}
    (dest / MANIFEST).write_text(json.dumps(manifest, ensure_ascii=False, indent=1), encoding="utf-8")
    log.info("backup written to %s: %d files, %d rows", dest, len(files), sum(counts.values()))
    return manifest


def verify_backup(src: Path | str) -> dict:
    """The manifest of the backup at ``src``, after checking every file's SHA-256 and size."""
    src = Path(src)
    try:
        manifest = json.loads((src / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise BackupFailed(f"备份 {src} 没有可读的 {MANIFEST}：{e}") from e
    if manifest.get("format") != FORMAT:
        raise BackupFailed(f"不认识的备份格式：{manifest.get('format')}")
    for rel, want in manifest["files"].items():
        path = src / rel
        if not path.is_file():
            raise BackupFailed(f"备份中缺少文件 {rel}", file=rel)
        if path.stat().st_size != want["size"] or _sha256(path) != want["sha256"]:
            raise BackupFailed(f"备份文件 {rel} 的哈希与清单不符（已损坏或被改动）", file=rel)
    return manifest


def restore_backup(src: Path | str, url: str, store: Store) -> dict:
    """Restore the backup at ``src`` onto the empty database at ``url`` and the empty ``store``;
    returns {"files": n, "rows": n, "tables": n} after checking everything (module docstring)."""
    src = Path(src)
    manifest = verify_backup(src)
    u = normalise_url(url)
    kind = u.get_backend_name()
    if kind != manifest["database"]["kind"]:
        raise BackupFailed(f"备份来自 {manifest['database']['kind']}，不能恢复到 {kind}")
    engine = create_engine(u)
    try:
        tables = inspect(engine).get_table_names()
    finally:
        engine.dispose()
    if tables:
        raise BackupFailed(f"目标数据库不是空的（已有{len(tables)}张表）：只能恢复到空数据库")
    objects = store.root / "objects"
    if objects.exists() and any(p.is_file() for p in objects.rglob("*")):
        raise BackupFailed(f"目标存储区 {store.root} 不是空的：只能恢复到空存储区")
    db_file = src / manifest["database"]["file"]
    if kind == "sqlite":
        Path(u.database).parent.mkdir(parents=True, exist_ok=True)
        source = sqlite3.connect(db_file)
        target = sqlite3.connect(u.database, timeout=30)
        try:
            source.backup(target)
        finally:
            target.close()
            source.close()
    else:
        args, env, schema = _pg_args(u)
        if schema:  # the dump creates its schema: an existing (empty) one is dropped first
            engine = create_engine(u.set(query={}))
            try:
                with engine.begin() as conn:
                    conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}"'))
            finally:
                engine.dispose()
        _run(["pg_restore", "--no-owner", "--no-privileges", "--exit-on-error", *args, str(db_file)], env,
             "pg_restore")
    restored = 0
    for rel, want in manifest["files"].items():
        if not rel.startswith("store/"):
            continue
        target = store.root / rel[len("store/"):]
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src / rel, target)
        os.chmod(target, 0o444)
        if _sha256(target) != want["sha256"]:
            raise BackupFailed(f"恢复后的文件 {rel} 哈希不符", file=rel)
        restored += 1
    engine = create_engine(u)
    try:
        counts = _counts(engine)
    finally:
        engine.dispose()
    if counts != manifest["database"]["counts"]:
        diff = {t: (manifest["database"]["counts"].get(t), counts.get(t))
                for t in set(counts) | set(manifest["database"]["counts"])
                if counts.get(t) != manifest["database"]["counts"].get(t)}
        raise BackupFailed(f"恢复后的行数与备份清单不符：{diff}")
    log.info("restored %s: %d files, %d rows", src, restored, sum(counts.values()))
    return {"files": restored, "rows": sum(counts.values()), "tables": len(counts)}

