"""Region profiles installed by an administrator (issue 11: administration)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 14:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('engine_region_profiles',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('org_id', sa.Integer(), nullable=True),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('installed_by', sa.String(length=80), nullable=False),
    sa.Column('installed_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['org_id'], ['orgs.id'], name=op.f('fk_engine_region_profiles_org_id_orgs')),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_engine_region_profiles'))
    )
    with op.batch_alter_table('engine_region_profiles', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_engine_region_profiles_org_id'), ['org_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('engine_region_profiles', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_engine_region_profiles_org_id'))
    op.drop_table('engine_region_profiles')
