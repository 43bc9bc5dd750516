"""One returns pipeline: every kind of return in the same tables

``scan_pages`` becomes ``return_pages`` (a unit read from any returned file: a page of a scan, or
a DOCX / digital PDF read whole; new ``input_kind`` and ``warnings``), ``review_items.scan_page_id``
becomes ``page_id``, ``document_returns`` gains ``input_kind``, and ``parsed_results`` (the old
second result type of DOCX/PDF returns) is folded into them: each parsed result becomes one
return page and one returned copy of its document.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 10:00:00
"""

import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PAGE_COLUMNS = ("id", "upload_id", "job_id", "page_index", "document_id", "page_no", "status", "method",
                "rotation", "align_method", "reason", "readings", "seconds", "created_at", "org_id")


def _loads(value):
    if value is None or isinstance(value, (dict, list)):
        return value
    return json.loads(value)


def _create_return_pages() -> None:
    op.create_table('return_pages',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('upload_id', sa.Integer(), nullable=False),
    sa.Column('job_id', sa.String(length=36), nullable=True),
    sa.Column('page_index', sa.Integer(), nullable=False),
    sa.Column('document_id', sa.String(length=12), nullable=True),
    sa.Column('page_no', sa.Integer(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('method', sa.String(length=16), nullable=True),
    sa.Column('rotation', sa.Integer(), nullable=False),
    sa.Column('align_method', sa.String(length=16), nullable=True),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('readings', sa.JSON(), nullable=False),
    sa.Column('seconds', sa.Float(), nullable=True),
    sa.Column('input_kind', sa.String(length=8), nullable=False),
    sa.Column('warnings', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('org_id', sa.Integer(), nullable=False),
    sa.CheckConstraint("input_kind IN ('docx', 'pdf', 'scan')", name=op.f('ck_return_pages_input_kind')),
    sa.CheckConstraint("status IN ('read', 'unidentified', 'blank', 'failed', 'assigned')",
                       name=op.f('ck_return_pages_status')),
    sa.ForeignKeyConstraint(['document_id'], ['documents.id'], name=op.f('fk_return_pages_document_id_documents')),
    sa.ForeignKeyConstraint(['org_id'], ['orgs.id'], name=op.f('fk_return_pages_org_id_orgs')),
    sa.ForeignKeyConstraint(['upload_id'], ['uploads.id'], name=op.f('fk_return_pages_upload_id_uploads')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_return_pages')),
    sa.UniqueConstraint('upload_id', 'page_index', name=op.f('uq_return_pages_upload_id_page_index'))
    )
    with op.batch_alter_table('return_pages', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_return_pages_document_id'), ['document_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_return_pages_job_id'), ['job_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_return_pages_org_id'), ['org_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_return_pages_upload_id'), ['upload_id'], unique=False)


def _reset_sequence(table: str) -> None:
    # Rows were copied with their ids: a PostgreSQL serial must continue after them.
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                   f"COALESCE((SELECT MAX(id) FROM {table}), 0) + 1, false)")


def _digital_reading(path: str, r: dict, change: dict | None) -> dict:
    flagged = bool(change and change.get("flagged"))
    source = r.get("source") or {}
    return {"path": path, "kind": "", "origin": "printed" if flagged else "hand",
            "status": "mismatch" if flagged else ("blank" if r.get("value") in (None, "", []) else "read"),
            "value": change.get("issued") if flagged else r.get("value"), "text": r.get("raw_text") or "",
            "confidence": r.get("confidence", 1.0), "needs_review": flagged, "reason": "", "page": source.get("page", 0),
            "bbox_pt": source.get("bbox") or [0.0, 0.0, 0.0, 0.0], "bbox_px": [0, 0, 0, 0],
            "issued": change.get("issued") if change else None, "confirm": False, "source": source}


def _fold_parsed_results(bind) -> None:
    """Each DOCX/PDF parsed result as one return page and one returned copy (status review when a
    printed value was changed, else incomplete: completeness was never assessed for them)."""
    meta = sa.MetaData()
    parsed = sa.Table("parsed_results", meta, autoload_with=bind)
    uploads = sa.Table("uploads", meta, autoload_with=bind)
    documents = sa.Table("documents", meta, autoload_with=bind)
    pages = sa.Table("return_pages", meta, autoload_with=bind)
    returns = sa.Table("document_returns", meta, autoload_with=bind)
    rows = bind.execute(sa.select(parsed, uploads.c.org_id, uploads.c.mime, documents.c.form,
                                  documents.c.org_id.label("issuer_id"))
                        .join(uploads, uploads.c.id == parsed.c.upload_id)
                        .join(documents, documents.c.id == parsed.c.document_id)
                        .order_by(parsed.c.id)).mappings().all()
    for row in rows:
        readings, changes = _loads(row["readings"]) or {}, _loads(row["changes"]) or {}
        kind = "pdf" if (row["mime"] or "").endswith("pdf") else "docx"
        exists = bind.execute(sa.select(pages.c.id).where(pages.c.upload_id == row["upload_id"],
                                                          pages.c.page_index == 0)).first()
        if exists is not None:
            continue
        bind.execute(pages.insert().values(
            upload_id=row["upload_id"], page_index=0, document_id=row["document_id"], status="read",
            rotation=0, input_kind=kind, warnings=[], created_at=row["created_at"], org_id=row["org_id"],
            readings={p: _digital_reading(p, r, changes.get(p)) for p, r in readings.items()}))
        flagged = any(c.get("flagged") for c in changes.values())
        bind.execute(returns.insert().values(
            document_id=row["document_id"], upload_id=row["upload_id"], form=row["form"], input_kind=kind,
            values=_loads(row["values"]) or {}, complete=False, missing=[], status="review" if flagged else "incomplete",
            created_at=row["created_at"], org_id=row["issuer_id"]))


def upgrade() -> None:
    _create_return_pages()
    cols = ", ".join(PAGE_COLUMNS)
    op.execute(f"INSERT INTO return_pages ({cols}, input_kind, warnings) SELECT {cols}, 'scan', '[]' FROM scan_pages")
    _reset_sequence("return_pages")

    with op.batch_alter_table('review_items', schema=None) as batch_op:
        batch_op.drop_constraint('fk_review_items_scan_page_id_scan_pages', type_='foreignkey')
        batch_op.drop_constraint('uq_review_items_scan_page_id_field_path_kind', type_='unique')
        batch_op.drop_index('ix_review_items_scan_page_id')
        batch_op.alter_column('scan_page_id', new_column_name='page_id', existing_type=sa.Integer(),
                              existing_nullable=False)
    with op.batch_alter_table('review_items', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_review_items_page_id'), ['page_id'], unique=False)
        batch_op.create_unique_constraint(batch_op.f('uq_review_items_page_id_field_path_kind'),
                                          ['page_id', 'field_path', 'kind'])
        batch_op.create_foreign_key(batch_op.f('fk_review_items_page_id_return_pages'), 'return_pages',
                                    ['page_id'], ['id'])

    with op.batch_alter_table('document_returns', schema=None) as batch_op:
        batch_op.add_column(sa.Column('input_kind', sa.String(length=8), nullable=True))
    op.execute("UPDATE document_returns SET input_kind = 'scan'")

    _reset_sequence("document_returns")
    _fold_parsed_results(op.get_bind())

    with op.batch_alter_table('scan_pages', schema=None) as batch_op:
        batch_op.drop_index('ix_scan_pages_upload_id')
        batch_op.drop_index('ix_scan_pages_org_id')
        batch_op.drop_index('ix_scan_pages_job_id')
        batch_op.drop_index('ix_scan_pages_document_id')
    op.drop_table('scan_pages')
    with op.batch_alter_table('parsed_results', schema=None) as batch_op:
        batch_op.drop_index('ix_parsed_results_upload_id')
        batch_op.drop_index('ix_parsed_results_document_id')
    op.drop_table('parsed_results')


def downgrade() -> None:
    """Back to scan pages: the scan rows are kept; returns of DOCX and digital PDF files (and their
    review items) are dropped, as the old schema kept them in ``parsed_results`` without readings
    in this shape."""
    op.create_table('parsed_results',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('upload_id', sa.Integer(), nullable=False),
    sa.Column('document_id', sa.String(length=12), nullable=True),
    sa.Column('values', sa.JSON(), nullable=False),
    sa.Column('readings', sa.JSON(), nullable=False),
    sa.Column('changes', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['document_id'], ['documents.id'], name=op.f('fk_parsed_results_document_id_documents')),
    sa.ForeignKeyConstraint(['upload_id'], ['uploads.id'], name=op.f('fk_parsed_results_upload_id_uploads')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_parsed_results'))
    )
    with op.batch_alter_table('parsed_results', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_parsed_results_document_id'), ['document_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_parsed_results_upload_id'), ['upload_id'], unique=False)
    op.create_table('scan_pages',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('upload_id', sa.Integer(), nullable=False),
    sa.Column('job_id', sa.String(length=36), nullable=True),
    sa.Column('page_index', sa.Integer(), nullable=False),
    sa.Column('document_id', sa.String(length=12), nullable=True),
    sa.Column('page_no', sa.Integer(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('method', sa.String(length=16), nullable=True),
    sa.Column('rotation', sa.Integer(), nullable=False),
    sa.Column('align_method', sa.String(length=16), nullable=True),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('readings', sa.JSON(), nullable=False),
    sa.Column('seconds', sa.Float(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('org_id', sa.Integer(), nullable=False),
    sa.CheckConstraint("status IN ('read', 'unidentified', 'blank', 'failed', 'assigned')",
                       name=op.f('ck_scan_pages_status')),
    sa.ForeignKeyConstraint(['document_id'], ['documents.id'], name=op.f('fk_scan_pages_document_id_documents')),
    sa.ForeignKeyConstraint(['org_id'], ['orgs.id'], name=op.f('fk_scan_pages_org_id_orgs')),
    sa.ForeignKeyConstraint(['upload_id'], ['uploads.id'], name=op.f('fk_scan_pages_upload_id_uploads')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_scan_pages')),
    sa.UniqueConstraint('upload_id', 'page_index', name=op.f('uq_scan_pages_upload_id_page_index'))
    )
    with op.batch_alter_table('scan_pages', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_scan_pages_document_id'), ['document_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_scan_pages_job_id'), ['job_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_scan_pages_org_id'), ['org_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_scan_pages_upload_id'), ['upload_id'], unique=False)
    cols = ", ".join(PAGE_COLUMNS)
    op.execute(f"INSERT INTO scan_pages ({cols}) SELECT {cols} FROM return_pages WHERE input_kind = 'scan'")
    _reset_sequence("scan_pages")
    op.execute("DELETE FROM review_items WHERE page_id NOT IN (SELECT id FROM scan_pages)")
    op.execute("DELETE FROM document_returns WHERE input_kind IS NOT NULL AND input_kind <> 'scan'")

    with op.batch_alter_table('review_items', schema=None) as batch_op:
        batch_op.drop_constraint('fk_review_items_page_id_return_pages', type_='foreignkey')
        batch_op.drop_constraint('uq_review_items_page_id_field_path_kind', type_='unique')
        batch_op.drop_index('ix_review_items_page_id')
        batch_op.alter_column('page_id', new_column_name='scan_page_id', existing_type=sa.Integer(),
                              existing_nullable=False)
    with op.batch_alter_table('review_items', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_review_items_scan_page_id'), ['scan_page_id'], unique=False)
        batch_op.create_unique_constraint(batch_op.f('uq_review_items_scan_page_id_field_path_kind'),
                                          ['scan_page_id', 'field_path', 'kind'])
        batch_op.create_foreign_key(batch_op.f('fk_review_items_scan_page_id_scan_pages'), 'scan_pages',
                                    ['scan_page_id'], ['id'])
    with op.batch_alter_table('document_returns', schema=None) as batch_op:
        batch_op.drop_column('input_kind')
    with op.batch_alter_table('return_pages', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_return_pages_upload_id'))
        batch_op.drop_index(batch_op.f('ix_return_pages_org_id'))
        batch_op.drop_index(batch_op.f('ix_return_pages_job_id'))
        batch_op.drop_index(batch_op.f('ix_return_pages_document_id'))
    op.drop_table('return_pages')
