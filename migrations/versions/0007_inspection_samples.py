"""Inspector samples with their recorded seed (issue 12: the case dossier)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 12:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('inspection_samples',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('per_township', sa.Integer(), nullable=False),
    sa.Column('seed', sa.String(length=64), nullable=False),
    sa.Column('as_of', sa.Date(), nullable=False),
    sa.Column('population', sa.JSON(), nullable=False),
    sa.Column('drawn', sa.JSON(), nullable=False),
    sa.Column('population_sha256', sa.String(length=64), nullable=False),
    sa.Column('purpose', sa.String(length=200), nullable=True),
    sa.Column('created_by', sa.String(length=80), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('org_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['org_id'], ['orgs.id'], name=op.f('fk_inspection_samples_org_id_orgs')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_inspection_samples'))
    )
    with op.batch_alter_table('inspection_samples', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_inspection_samples_org_id'), ['org_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('inspection_samples', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_inspection_samples_org_id'))
    op.drop_table('inspection_samples')
