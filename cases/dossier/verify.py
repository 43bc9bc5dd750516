"""Verifying a dossier file (``flask --app app dossier verify FILE.pdf``, ``POST /dossiers/verify``):

1. the attached manifest is there and its Ed25519 signature is this server's (current or retired
   key) and valid: the manifest was not changed after signing;
2. the file has exactly the pages the manifest lists, and every page before the manifest pages
   shows what it showed when signed (page fingerprints): nothing added, removed, reordered or
   edited;
3. every listed original (issued PDF, returned copy, evidence file) is still in the store with the
   same SHA-256, and its database record still points at that hash.

Originals added to the case after the dossier was made are reported as notes (the dossier is a
snapshot), not as failures.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, field

import pikepdf
from sqlalchemy import select
from sqlalchemy.orm import Session

from cases.dossier import manifest as mf
from cases.dossier import pdf as P
from cases.store.models import Case, Document, Upload
from cases.store.storage import Store
from forms.errors import NotFound

MAX_LISTED = 10


@dataclass
class Verification:
    ok: bool
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    case: dict | None = None
    pages: int | None = None
    files_checked: int = 0

    def as_json(self) -> dict:
        return {"ok": self.ok, "problems": self.problems, "notes": self.notes, "case": self.case,
                "pages": self.pages, "files_checked": self.files_checked}


def _page_problems(pdf: pikepdf.Pdf, man: dict) -> list[str]:
    out = []
    n, listed = len(pdf.pages), int(man.get("pages") or 0)
    if n != listed:
        out.append(f"页数不符：清单记载 {listed} 页，文件有 {n} 页（{'有页被删除' if n < listed else '有页被添加'}）")
    prints = man.get("page_fingerprints") or []
    version = mf.FORMATS.get(man.get("format"), P.FINGERPRINT_VERSION)
    changed = [i + 1 for i, fp in enumerate(prints) if i >= n or P.page_fingerprint(pdf.pages[i], version) != fp]
    if changed:
        shown = "、".join(str(p) for p in changed[:MAX_LISTED]) + ("…" if len(changed) > MAX_LISTED else "")
        out.append(f"第 {shown} 页与签名时的内容不符（共 {len(changed)} 页）")
    return out


def _original_problems(session: Session, store: Store, files: list[dict]) -> list[str]:
    out = []
    for f in files:
        label, path = f.get("label"), f.get("store_path") or ""
        try:
            data = store.read_bytes(path)
        except (NotFound, OSError):
            out.append(f"原件缺失：{label}（{path}）")
            continue
        if hashlib.sha256(data).hexdigest() != f.get("sha256"):
            out.append(f"原件已被改动：{label}（{path}，SHA-256 与清单不符）")
        if f.get("role") == "issued":
            doc = session.get(Document, f.get("document_id"))
            if doc is None or doc.pdf_sha256 != f.get("sha256"):
                out.append(f"签发件记录已变化：{label}（文书 {f.get('document_id')}）")
        elif f.get("upload_id") is not None:
            up = session.get(Upload, f.get("upload_id"))
            if up is None or up.sha256 != f.get("sha256"):
                out.append(f"上传记录已变化：{label}（上传 {f.get('upload_id')}）")
    return out


def _later_notes(session: Session, man: dict) -> list[str]:
    case_id = (man.get("case") or {}).get("id")
    if case_id is None or session.get(Case, case_id) is None:
        return []
    listed = {f.get("document_id") for f in man.get("files") or [] if f.get("role") == "issued"}
    later = [d for d in session.scalars(select(Document).where(Document.case_id == case_id,
                                                               Document.status == "issued"))
             if d.pdf_sha256 and d.id not in listed]
    return [f"卷宗生成后新签发的文书（不在本卷宗内）：{d.number_text or d.id}" for d in later]


def verify_dossier(session: Session, store: Store, data: bytes, *, secret: str,
                   retired: tuple[str, ...] = ()) -> Verification:
    """Check a dossier file against its signed manifest and the store (module docstring)."""
    try:
        pdf = pikepdf.open(io.BytesIO(data))
    except pikepdf.PdfError as e:
        return Verification(False, [f"不是可读取的 PDF 文件：{e}"])
    with pdf:
        att = pdf.attachments.get(P.MANIFEST_NAME)
        if att is None:
            return Verification(False, ["文件中没有卷宗清单（manifest.json）：不是本系统生成的卷宗，或清单被移除"],
                                pages=len(pdf.pages))
        try:
            envelope = json.loads(att.get_file().read_bytes())
        except (ValueError, pikepdf.PdfError):
            return Verification(False, ["卷宗清单无法读取（不是有效的 JSON）"], pages=len(pdf.pages))
        problems = mf.check_signature(envelope, secret, retired)
        man = envelope.get("manifest") if isinstance(envelope.get("manifest"), dict) else {}
        if man:
            problems += _page_problems(pdf, man)
        pages = len(pdf.pages)
    files = man.get("files") or []
    problems += _original_problems(session, store, files)
    return Verification(not problems, problems, _later_notes(session, man), case=man.get("case"), pages=pages,
                        files_checked=len(files))
