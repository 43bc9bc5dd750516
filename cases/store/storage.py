"""Content-addressed file store and the upload storage order.

Files live under ``<root>/objects/ab/cd/<sha256><suffix>``. A file is written to a temporary name
in its final folder, flushed to disk, then hard-linked to its final name, which fails instead of
replacing when that name exists: a stored file is never overwritten, and storing the same bytes
twice is a no-op. Stored files are made read-only.

Storage order for uploads (after Paperless-ngx's consumer: store → row → move): the upload's
bytes are written untouched to ``<root>/staging/`` first, then the database row is written in
the caller's unit of work, and only when that unit commits is the staged file moved (hard-linked)
to its content address; a rollback deletes it. So a file is never in the store without its row. If
the process dies between the commit and the move, the row's file is still in staging, named by its
hash: ``check_store`` (``flask --app app store check``) finds it and finishes the move, and also
reports (and with ``delete`` removes) any stored file no row refers to and stale staging files.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
import unicodedata
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from sqlalchemy import event
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from cases.store.models import Org, Upload
from forms.errors import BaoxueError, NotFound, ValidationFailed

log = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 64 * 1024 * 1024
_SUFFIX_RE = re.compile(r"^\.[A-Za-z0-9]{1,10}$")
_REL_RE = re.compile(r"^objects/[0-9a-f]{2}/[0-9a-f]{2}/[0-9a-f]{64}(\.[a-z0-9]{1,10})?$")


class StorageFailed(BaoxueError):
    """A file could not be stored or its record could not be written."""

    code = "storage_failed"
    http_status = 500


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Store:
    """Content-addressed, write-once file store rooted at ``root`` (normally ``<output>/``)."""

    def __init__(self, root: Path | str):
        self.root = Path(root)

    def relpath_for(self, sha256: str, suffix: str = "") -> str:
        suffix = _clean_suffix(suffix)
        return f"objects/{sha256[:2]}/{sha256[2:4]}/{sha256}{suffix}"

    def stage(self, data: bytes, suffix: str = "") -> Staged:
        """Write ``data`` to the staging area; ``Staged.publish()`` moves it to its address."""
        digest = sha256_bytes(data)
        rel = self.relpath_for(digest, suffix)
        staging = self.root / "staging"
        try:
            staging.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=staging, prefix=f"{digest}.", suffix=".part")
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, 0o444)
        except OSError as e:
            raise StorageFailed(f"无法保存文件到存储区：{e.strerror or e}", path=rel) from e
        return Staged(self, digest, rel, Path(tmp))

    def put_bytes(self, data: bytes, suffix: str = "") -> tuple[str, str]:
        """Store ``data``; return ``(sha256, relpath)``. Idempotent; never overwrites."""
        digest = sha256_bytes(data)
        rel = self.relpath_for(digest, suffix)
        final = self.root / rel
        if final.exists():
            return digest, rel
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=final.parent, prefix=".tmp-")
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.chmod(tmp, 0o444)
                try:
                    os.link(tmp, final)  # atomic, and refuses to replace an existing file
                except FileExistsError:
                    pass  # another writer stored the same content first: same bytes by construction
            finally:
                os.unlink(tmp)
        except OSError as e:
            raise StorageFailed(f"无法保存文件到存储区：{e.strerror or e}", path=rel) from e
        log.info("stored %s (%d bytes)", rel, len(data))
        return digest, rel

    def path(self, relpath: str) -> Path:
        """Absolute path of a stored file (checked to stay inside the store)."""
        rel = str(PurePosixPath(relpath))
        if not _REL_RE.match(rel):
            raise NotFound(f"不是存储区中的文件路径：{relpath}")
        return self.root / rel

    def exists(self, relpath: str) -> bool:
        try:
            return self.path(relpath).is_file()
        except NotFound:
            return False

    def open(self, relpath: str) -> BinaryIO:
        """Open a stored file for reading."""
        p = self.path(relpath)
        try:
            return p.open("rb")
        except FileNotFoundError as e:
            raise NotFound(f"存储区中没有文件 {relpath}") from e

    def read_bytes(self, relpath: str) -> bytes:
        with self.open(relpath) as fh:
            return fh.read()


class Staged:
    """A file in the staging area waiting for its row to commit."""

    def __init__(self, store: Store, sha256: str, relpath: str, tmp: Path):
        self.store, self.sha256, self.relpath, self.tmp = store, sha256, relpath, tmp

    def publish(self) -> None:
        """Move to the content address (never replacing an existing file; idempotent)."""
        final = self.store.root / self.relpath
        try:
            if not final.exists():
                final.parent.mkdir(parents=True, exist_ok=True)
                try:
                    os.link(self.tmp, final)
                except FileExistsError:
                    pass  # the same bytes, stored meanwhile
            self.tmp.unlink(missing_ok=True)
        except OSError as e:
            # the row is committed: check_store finishes the move from staging
            log.error("could not move %s to %s: %s", self.tmp, self.relpath, e)
            return
        log.info("stored %s", self.relpath)

    def discard(self) -> None:
        self.tmp.unlink(missing_ok=True)


_STAGED_KEY = "baoxue_staged_files"


def _after_commit(session: Session) -> None:
    for staged in session.info.pop(_STAGED_KEY, []):
        staged.publish()


def _after_rollback(session: Session) -> None:
    for staged in session.info.pop(_STAGED_KEY, []):
        staged.discard()


def stage_with(session: Session, staged: Staged) -> None:
    """Publish ``staged`` when ``session`` commits, discard it when it rolls back."""
    if not event.contains(session, "after_commit", _after_commit):
        event.listen(session, "after_commit", _after_commit)
        event.listen(session, "after_rollback", _after_rollback)
    session.info.setdefault(_STAGED_KEY, []).append(staged)


def _clean_suffix(suffix: str) -> str:
    suffix = (suffix or "").lower()
    if suffix and not suffix.startswith("."):
        suffix = "." + suffix
    if suffix and not _SUFFIX_RE.match(suffix):
        return ""  # odd extensions are dropped: the hash is the identity, the mime says the kind
    return suffix


MAX_FILENAME_CHARS = 1024
_FS_NAME_BYTES = 120


def clean_filename(filename: str | None) -> tuple[str, str | None]:
    """The name a user's file is recorded under, and a note when it had to be changed.

    Any script and length is accepted: folders are dropped (``a/b.pdf`` -> ``b.pdf``), control and
    format characters (NUL, line breaks, bidi overrides) become ``_``, a name longer than
    ``MAX_FILENAME_CHARS`` keeps its start and suffix with a note. The stored bytes are named by
    their SHA-256, never by this name."""
    raw = str(filename or "")
    name = PurePosixPath(raw.replace("\\", "/")).name
    name = "".join("_" if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn") else ch for ch in name)
    name = name.strip().strip(".") and name.strip() or ""
    note = None
    if not name:
        name = "upload"
        if raw:
            note = "文件名无效，已记为“upload”"
    if len(name) > MAX_FILENAME_CHARS:
        suffix = PurePosixPath(name).suffix
        suffix = suffix if len(suffix) <= 16 else ""
        name = name[:MAX_FILENAME_CHARS - len(suffix) - 1] + "…" + suffix
        note = f"文件名过长（{len(raw)}个字符），已截断为{MAX_FILENAME_CHARS}个字符"
    elif raw and name != PurePosixPath(raw.replace("\\", "/")).name.strip():
        note = note or "文件名含控制字符，已替换为“_”"
    return name, note


def fs_name(name: str) -> str:
    """A file-system-safe short form of a clean name (at most 120 bytes, suffix kept), for
    working copies: file systems refuse names over 255 bytes."""
    suffix = _clean_suffix(PurePosixPath(name).suffix)
    stem = name[: len(name) - len(PurePosixPath(name).suffix)] if suffix else name
    stem = stem.replace("/", "_").replace("\x00", "_") or "upload"
    budget = _FS_NAME_BYTES - len(suffix.encode())
    encoded = stem.encode("utf-8")
    if len(encoded) > budget:
        stem = encoded[:budget].decode("utf-8", errors="ignore") or "upload"
    return stem + suffix


def save_upload(session: Session, store: Store, *, filename: str, data: bytes, org: Org | int,
                user: str | None, mime: str | None, source_device: str | None = None,
                max_bytes: int = DEFAULT_MAX_BYTES) -> Upload:
    """Stage an upload's original bytes, then add its ``Upload`` row (flushed, not committed); the
    bytes reach the store when the caller commits (module docstring).

    Raises ValidationFailed for an empty or oversized file or a row the checks refuse (an unknown
    organisation...), StorageFailed when the bytes or the row cannot be written. A failed row
    rolls back the caller's unit of work: no row remains and nothing is stored.
    """
    name = clean_filename(filename)[0]
    if not data:
        raise ValidationFailed(f"文件“{name}”是空的", fields={"file": f"{name}：文件为空"})
    if len(data) > max_bytes:
        limit = max_bytes / (1024 * 1024)
        raise ValidationFailed(f"文件“{name}”超过大小上限（{limit:g} MB）",
                               fields={"file": f"{name}：{len(data)} 字节，上限 {max_bytes} 字节"})
    staged = store.stage(data, Path(name).suffix)
    digest, rel = staged.sha256, staged.relpath
    upload = Upload(sha256=digest, original_filename=name, size=len(data), mime=mime, stored_path=rel,
                    org_id=org.id if isinstance(org, Org) else org, uploaded_by=user,
                    source_device=source_device, status="stored")
    session.add(upload)
    try:
        session.flush()
    except ValidationFailed:
        staged.discard()
        session.rollback()
        raise
    except SQLAlchemyError as e:
        staged.discard()
        session.rollback()  # the failed unit of work is void; its pending rows are discarded
        raise StorageFailed(f"文件“{name}”登记记录失败，未保存：{type(e).__name__}", file=name) from e
    stage_with(session, staged)
    log.info("upload %s staged as %s", upload.id, rel)
    return upload
