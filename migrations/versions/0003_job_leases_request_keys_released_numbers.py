"""Job leases and payloads, document request keys, released numbers, file names of any length

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07 05:11:37.192020
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('released_numbers',
    sa.Column('org_id', sa.Integer(), nullable=False),
    sa.Column('family', sa.String(length=60), nullable=False),
    sa.Column('year', sa.Integer(), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('released_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['org_id'], ['orgs.id'], name=op.f('fk_released_numbers_org_id_orgs')),
    sa.PrimaryKeyConstraint('org_id', 'family', 'year', 'seq', name=op.f('pk_released_numbers'))
    )
    with op.batch_alter_table('documents', schema=None) as batch_op:
        batch_op.add_column(sa.Column('request_key', sa.String(length=80), nullable=True))
        batch_op.create_unique_constraint(batch_op.f('uq_documents_request_key'), ['request_key'])

    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('payload', sa.JSON(), nullable=False, server_default='[]'))
        batch_op.add_column(sa.Column('attempts', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('lease_until', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('worker', sa.String(length=80), nullable=True))
        batch_op.create_index('ix_jobs_status_lease', ['status', 'lease_until'], unique=False)

    with op.batch_alter_table('uploads', schema=None) as batch_op:
        batch_op.alter_column('original_filename',
               existing_type=sa.VARCHAR(length=255),
               type_=sa.Text(),
               existing_nullable=False)



def downgrade() -> None:
    with op.batch_alter_table('uploads', schema=None) as batch_op:
        batch_op.alter_column('original_filename',
               existing_type=sa.Text(),
               type_=sa.VARCHAR(length=255),
               existing_nullable=False)

    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_index('ix_jobs_status_lease')
        batch_op.drop_column('worker')
        batch_op.drop_column('lease_until')
        batch_op.drop_column('attempts')
        batch_op.drop_column('payload')

    with op.batch_alter_table('documents', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_documents_request_key'), type_='unique')
        batch_op.drop_column('request_key')

    op.drop_table('released_numbers')
