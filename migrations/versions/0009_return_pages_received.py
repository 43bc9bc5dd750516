"""Returned copies record which pages of the document came back (a partial return is not complete)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 15:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('document_returns', schema=None) as batch_op:
        batch_op.add_column(sa.Column('pages_expected', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('pages_received', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('document_returns', schema=None) as batch_op:
        batch_op.drop_column('pages_received')
        batch_op.drop_column('pages_expected')
