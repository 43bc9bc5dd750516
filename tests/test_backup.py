"""Backup and restore round trip (issue 14 item 10), on SQLite and (``-m db``) PostgreSQL: an
installation with an issued document, a read scan with review items and an audit chain is backed
up with ``flask backup create`` while its app is up, the database and the store are lost, and
``flask backup restore`` onto an empty database and store brings back the same rows and files —
every hash checked, ``audit verify`` passes, the document downloads byte for byte."""

from __future__ import annotations

import io
import json
import os
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from cases.returns.models import ReturnPage, ReviewItem
from cases.store import audit
from cases.store.db import make_engine, normalise_url
from cases.store.models import AuditLog, Document, Upload, to_json
from tests.samples_data import sample_input

SAMPLES = Path(__file__).parent / "samples" / "scans"


def _config(db_url, out: Path) -> dict:
    return {"TESTING": True, "HUEY_IMMEDIATE": True, "REDIS_URL": None, "DATABASE_URL": db_url,
            "OUTPUT_DIR": out, "CREATE_SCHEMA": False, "QR_HMAC_SECRET": "test-qr-secret", "SECRET_KEY": "test",
            "PASSWORD_HASH": "cheap", "PDF_WORKERS": 1}


def _lose_database(db_url: str, tmp_path: Path) -> str:
    """The database is gone: an empty one at a new SQLite path, or the PostgreSQL schema emptied."""
    u = normalise_url(db_url)
    if u.get_backend_name() == "sqlite":
        return f"sqlite:///{tmp_path / 'restored.db'}"
    schema = u.query["options"].split("search_path=")[1]
    admin = make_engine(u.set(query={}))
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    admin.dispose()
    return db_url


def _snapshot(session) -> dict:
    session.expire_all()
    rows = session.scalars
    return {
        "documents": sorted((d.id, d.number_text, d.status, d.pdf_sha256) for d in rows(select(Document))),
        "uploads": sorted((u.id, u.sha256, u.stored_path, u.status) for u in rows(select(Upload))),
        "pages": sorted((p.upload_id, p.page_index, p.status, p.document_id) for p in rows(select(ReturnPage))),
        "review": sorted((i.id, i.field_path, i.kind, i.status, i.crop_path) for i in rows(select(ReviewItem))),
        "audit": session.scalar(select(func.count()).select_from(AuditLog)),
        "audit_head": session.scalar(select(AuditLog.hash).order_by(AuditLog.seq.desc()).limit(1)),
    }


def test_backup_and_restore_round_trip(app, client, app_session, services, notice, db_url, tmp_path):
    # an issued document (real LibreOffice), a scan read into pages and review items, an audit chain
    r = client.post("/api/v1/documents", json={"form": "dropout_report", "issuer_id": notice["org_id"],
                                               "format": "pdf", "data": to_json(sample_input("dropout_report"))})
    assert r.status_code == 201, r.get_json()
    doc = r.get_json()
    pdf = client.get(f"/api/v1/documents/{doc['id']}/pdf").data
    scan = (SAMPLES / "receipt_direct_flatbed200.jpg").read_bytes()
    r = client.post("/api/v1/scans", data={"org_id": str(notice["org_id"]), "file": (io.BytesIO(scan), "回证.jpg")},
                    content_type="multipart/form-data")
    assert r.status_code == 202, r.get_json()
    before = _snapshot(app_session)
    assert before["review"] and before["pages"] and before["audit"] >= 3

    runner = app.test_cli_runner()
    backup = tmp_path / "backup"
    # the service keeps writing (audit entries, each chained to the one before) during the backup
    stop, written = threading.Event(), []

    def writer():
        while not stop.is_set():
            with services.session_factory() as s:
                audit.record(s, who="writer", org=notice["org_id"], action="test.write", target=f"n:{len(written)}")
                s.commit()
            written.append(1)
            time.sleep(0.005)

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    while not written:
        time.sleep(0.01)
    try:
        out = runner.invoke(args=["backup", "create", str(backup)])
    finally:
        stop.set()
        thread.join()
    assert out.exit_code == 0, out.output
    before = _snapshot(app_session)  # what the backup holds is checked below against its own manifest
    manifest = json.loads((backup / "manifest.json").read_text(encoding="utf-8"))
    stored = [p for p in (services.store.root / "objects").rglob("*") if p.is_file()]
    assert len([f for f in manifest["files"] if f.startswith("store/")]) == len(stored) >= 4
    assert manifest["database"]["counts"]["documents"] == len(before["documents"])
    assert runner.invoke(args=["backup", "verify", str(backup)]).exit_code == 0

    # a tampered backup is refused before anything is restored
    bad = tmp_path / "bad"
    os.system(f"cp -r '{backup}' '{bad}'")  # noqa: S605 - test copies its own temp folder
    victim = next(p for p in (bad / "store").rglob("*") if p.is_file())
    victim.chmod(0o644)
    victim.write_bytes(victim.read_bytes() + b"x")
    assert "哈希" in runner.invoke(args=["backup", "verify", str(bad)]).output

    # disaster: database and store are lost; restore onto empty ones
    app.extensions["baoxue_engine"].dispose()
    app_session.close()
    target = _lose_database(db_url, tmp_path)
    from app import create_app

    restored = create_app(_config(target, tmp_path / "restored-output"))
    try:
        r_runner = restored.test_cli_runner()
        out = r_runner.invoke(args=["backup", "restore", str(backup)])
        assert out.exit_code == 0, out.output
        assert "哈希全部相符" in out.output
        again = r_runner.invoke(args=["backup", "restore", str(backup)])  # never over existing data
        assert again.exit_code != 0 and "不是空的" in again.output
        session = restored.extensions["baoxue"].session_factory()
        try:
            after = _snapshot(session)
        finally:
            session.close()
        # everything made before the backup is back; the audit log holds a prefix of what was
        # written meanwhile, its chain intact (audit verify below)
        assert {k: v for k, v in after.items() if k not in ("audit", "audit_head")} == \
            {k: v for k, v in before.items() if k not in ("audit", "audit_head")}
        assert manifest["database"]["counts"]["audit_log"] == after["audit"] <= before["audit"]
        verify = r_runner.invoke(args=["audit", "verify"])
        assert verify.exit_code == 0, verify.output
        check = r_runner.invoke(args=["store", "check", "--min-age-minutes", "0"])
        assert check.exit_code == 0, check.output
        new_store = restored.extensions["baoxue"].store
        rows = {d[0]: d for d in before["documents"]}
        assert new_store.read_bytes(new_store.relpath_for(rows[doc["id"]][3], ".pdf")) == pdf
    finally:
        restored.extensions["baoxue_engine"].dispose()


def test_restore_refuses_a_backup_of_the_other_database_kind(tmp_path):
    from cases.store.backup import BackupFailed, restore_backup
    from cases.store.storage import Store

    folder = tmp_path / "b"
    folder.mkdir()
    (folder / "manifest.json").write_text(json.dumps({"format": 1, "database": {"kind": "postgresql",
                                                                                 "file": "database.pgdump"},
                                                      "files": {}}))
    with pytest.raises(BackupFailed, match="postgresql"):
        restore_backup(folder, f"sqlite:///{tmp_path / 'x.db'}", Store(tmp_path / "s"))
