"""Migrations that move data: rows written under an older revision survive the upgrade (and the
downgrade where the older schema can hold them)."""

from __future__ import annotations

import json

import pytest
from alembic import command
from sqlalchemy import text

from cases.store.db import alembic_config, make_engine

NOW = "2026-09-01 08:00:00+00:00"


def _rows(conn, sql: str) -> list[dict]:
    return [dict(r) for r in conn.execute(text(sql)).mappings()]


def _seed_0002(conn) -> None:
    conn.execute(text("INSERT INTO orgs (id, kind, name, path, created_at) VALUES (1, 'school', '一小', '/1/', :t)"),
                 {"t": NOW})
    conn.execute(text(
        "INSERT INTO documents (id, org_id, form, family, template_version, year, status, data, created_at) "
        "VALUES ('DOC000000001', 1, 'guardian_notice', 'f', '1', 2026, 'issued', '{}', :t), "
        "('DOC000000002', 1, 'dropout_report', 'g', '1', 2026, 'issued', '{}', :t)"), {"t": NOW})
    for i, mime in ((1, "image/png"), (2, "application/vnd.openxmlformats-officedocument.wordprocessingml.document")):
        conn.execute(text(
            "INSERT INTO uploads (id, sha256, original_filename, size, mime, stored_path, uploaded_at, status, org_id) "
            "VALUES (:i, :s, :n, 10, :m, 'objects/x', :t, 'parsed', 1)"),
            {"i": i, "s": f"{i:064d}", "n": f"f{i}", "m": mime, "t": NOW})
    conn.execute(text(
        "INSERT INTO scan_pages (id, upload_id, page_index, document_id, page_no, status, rotation, readings, "
        "created_at, org_id) VALUES (7, 1, 0, 'DOC000000001', 5, 'read', 0, :r, :t, 1)"),
        {"r": json.dumps({"service_method": {"value": "direct", "confidence": 0.99, "needs_review": True}}), "t": NOW})
    conn.execute(text(
        "INSERT INTO review_items (id, scan_page_id, upload_id, document_id, field_path, kind, proposed, confidence, "
        "status, created_at, org_id) VALUES (3, 7, 1, 'DOC000000001', 'service_method', 'confirm', "
        "'{\"value\": \"direct\"}', 0.99, 'open', :t, 1)"), {"t": NOW})
    conn.execute(text(
        "INSERT INTO document_returns (id, document_id, upload_id, form, \"values\", complete, missing, status, "
        "created_at, org_id) VALUES (1, 'DOC000000001', 1, 'guardian_notice', '{}', false, '[]', 'review', :t, 1)"),
        {"t": NOW})
    conn.execute(text(
        "INSERT INTO parsed_results (id, upload_id, document_id, \"values\", readings, changes, status, created_at) "
        "VALUES (1, 2, 'DOC000000002', :v, :r, :c, 'review', :t)"),
        {"v": json.dumps({"student_name": "王某某"}),
         "r": json.dumps({"student_name": {"value": "王某某", "raw_text": "王某某", "confidence": 1.0,
                                           "source": {"kind": "docx", "part": "main"}}}),
         "c": json.dumps({"student_name": {"status": "changed", "flagged": True, "issued": "李明",
                                           "returned": "王某某"}}), "t": NOW})


@pytest.mark.slow
def test_returns_of_every_kind_survive_the_one_pipeline_migration(db_url):
    cfg = alembic_config(db_url)
    command.upgrade(cfg, "0004")
    engine = make_engine(db_url)
    try:
        with engine.begin() as conn:
            _seed_0002(conn)
        command.upgrade(cfg, "0005")
        with engine.connect() as conn:
            pages = _rows(conn, "SELECT id, upload_id, input_kind, document_id, status FROM return_pages ORDER BY id")
            assert pages[0] == {"id": 7, "upload_id": 1, "input_kind": "scan", "document_id": "DOC000000001",
                                "status": "read"}
            assert pages[1]["upload_id"] == 2 and pages[1]["input_kind"] == "docx" and pages[1]["id"] > 7
            assert _rows(conn, "SELECT id, page_id FROM review_items") == [{"id": 3, "page_id": 7}]
            rets = _rows(conn, "SELECT document_id, input_kind, status FROM document_returns ORDER BY id")
            assert rets == [{"document_id": "DOC000000001", "input_kind": "scan", "status": "review"},
                            {"document_id": "DOC000000002", "input_kind": "docx", "status": "review"}]
            readings = conn.execute(text("SELECT readings FROM return_pages WHERE upload_id = 2")).scalar_one()
            reading = (json.loads(readings) if isinstance(readings, str) else readings)["student_name"]
            assert (reading["status"], reading["value"], reading["text"]) == ("mismatch", "李明", "王某某")
        with engine.begin() as conn:  # new rows get fresh ids after the copied ones
            conn.execute(text("INSERT INTO return_pages (upload_id, page_index, status, rotation, readings, "
                              "input_kind, warnings, created_at, org_id) "
                              "VALUES (1, 1, 'blank', 0, '{}', 'scan', '[]', :t, 1)"), {"t": NOW})
        command.downgrade(cfg, "0004")
        with engine.connect() as conn:
            assert [r["id"] for r in _rows(conn, "SELECT id FROM scan_pages ORDER BY id")][0] == 7
            assert _rows(conn, "SELECT id, scan_page_id FROM review_items") == [{"id": 3, "scan_page_id": 7}]
    finally:
        engine.dispose()
