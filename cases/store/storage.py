"""Content-addressed file store and the upload storage order.

Files live under ``<root>/objects/ab/cd/<sha256><suffix>``. A file is written to a temporary name
in its final folder, flushed to disk, then hard-linked to its final name, which fails instead of
replacing when that name exists: a stored file is never overwritten, and storing the same bytes
twice is a no-op. Stored files are made read-only.

Storage order (after Paperless-ngx's consumer): the upload's bytes are stored untouched first,
then the database row is written in the caller's unit of work; the caller commits and only then
acknowledges. If the row cannot be written no row remains and the error says why; the stored bytes
stay (content-addressed, harmless, reused by a retry).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
from pathlib import Path, PurePosixPath
from typing import BinaryIO

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


def _clean_suffix(suffix: str) -> str:
    suffix = (suffix or "").lower()
    if suffix and not suffix.startswith("."):
        suffix = "." + suffix
    if suffix and not _SUFFIX_RE.match(suffix):
        return ""  # odd extensions are dropped: the hash is the identity, the mime says the kind
    return suffix


def save_upload(session: Session, store: Store, *, filename: str, data: bytes, org: Org | int,
                user: str | None, mime: str | None, source_device: str | None = None,
                max_bytes: int = DEFAULT_MAX_BYTES) -> Upload:
    """Store an upload's original bytes, then add its ``Upload`` row (flushed, not committed).

    Raises ValidationFailed for an empty or oversized file (nothing stored), StorageFailed when
    the bytes or the row cannot be written. A failed row rolls back the caller's unit of work, so
    no row remains; the stored bytes stay for a retry.
    """
    name = Path(str(filename or "").replace("\\", "/")).name or "upload"
    if not data:
        raise ValidationFailed(f"文件“{name}”是空的", fields={"file": f"{name}：文件为空"})
    if len(data) > max_bytes:
        limit = max_bytes / (1024 * 1024)
        raise ValidationFailed(f"文件“{name}”超过大小上限（{limit:g} MB）",
                               fields={"file": f"{name}：{len(data)} 字节，上限 {max_bytes} 字节"})
    digest, rel = store.put_bytes(data, Path(name).suffix)
    upload = Upload(sha256=digest, original_filename=name, size=len(data), mime=mime, stored_path=rel,
                    org_id=org.id if isinstance(org, Org) else org, uploaded_by=user,
                    source_device=source_device, status="stored")
    session.add(upload)
    try:
        session.flush()
    except SQLAlchemyError as e:
        session.rollback()  # the failed unit of work is void; its pending rows are discarded
        raise StorageFailed(f"文件“{name}”已保存，但登记记录失败：{type(e).__name__}", file=name) from e
    log.info("upload %s stored as %s", upload.id, rel)
    return upload
