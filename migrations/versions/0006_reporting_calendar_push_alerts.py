"""Reporting calendar reminders, push-alert channels and deliveries, scheduler runs (issue 16)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07 11:10:44.044099
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('scheduler_runs',
    sa.Column('name', sa.String(length=40), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('result', sa.JSON(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('runs', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_scheduler_runs'))
    )
    op.create_table('report_reminders',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('as_of', sa.Date(), nullable=False),
    sa.Column('due_on', sa.Date(), nullable=False),
    sa.Column('stage', sa.String(length=12), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('org_id', sa.Integer(), nullable=False),
    sa.CheckConstraint("stage IN ('due_soon', 'due_today', 'overdue')", name=op.f('ck_report_reminders_stage')),
    sa.ForeignKeyConstraint(['org_id'], ['orgs.id'], name=op.f('fk_report_reminders_org_id_orgs')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_report_reminders')),
    sa.UniqueConstraint('org_id', 'kind', 'as_of', 'stage', name=op.f('uq_report_reminders_org_id_kind_as_of_stage'))
    )
    with op.batch_alter_table('report_reminders', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_report_reminders_org_id'), ['org_id'], unique=False)

    op.create_table('notify_channels',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('kind', sa.String(length=12), nullable=False),
    sa.Column('name', sa.String(length=80), nullable=False),
    sa.Column('target', sa.String(length=500), nullable=False),
    sa.Column('secret', sa.String(length=200), nullable=True),
    sa.Column('events', sa.JSON(), nullable=False),
    sa.Column('review_threshold', sa.Integer(), nullable=False),
    sa.Column('quiet_start', sa.String(length=5), nullable=True),
    sa.Column('quiet_end', sa.String(length=5), nullable=True),
    sa.Column('digest', sa.Boolean(), nullable=False),
    sa.Column('digest_at', sa.String(length=5), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('created_by', sa.String(length=80), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('org_id', sa.Integer(), nullable=False),
    sa.CheckConstraint("kind IN ('wecom', 'dingtalk', 'email')", name=op.f('ck_notify_channels_kind')),
    sa.ForeignKeyConstraint(['org_id'], ['orgs.id'], name=op.f('fk_notify_channels_org_id_orgs')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_notify_channels_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notify_channels'))
    )
    with op.batch_alter_table('notify_channels', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_notify_channels_org_id'), ['org_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_notify_channels_user_id'), ['user_id'], unique=False)

    op.create_table('notify_deliveries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('channel_id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=120), nullable=False),
    sa.Column('event', sa.String(length=16), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=True),
    sa.Column('subject', sa.String(length=200), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('link', sa.String(length=500), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('log', sa.JSON(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('digest_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('org_id', sa.Integer(), nullable=False),
    sa.CheckConstraint("event IN ('due_soon', 'breach', 'review_items', 'report_due', 'digest', 'test')", name=op.f('ck_notify_deliveries_event')),
    sa.CheckConstraint("status IN ('pending', 'held', 'queued_digest', 'digested', 'retrying', 'sent', 'failed')", name=op.f('ck_notify_deliveries_status')),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_notify_deliveries_case_id_cases')),
    sa.ForeignKeyConstraint(['channel_id'], ['notify_channels.id'], name=op.f('fk_notify_deliveries_channel_id_notify_channels')),
    sa.ForeignKeyConstraint(['digest_id'], ['notify_deliveries.id'], name=op.f('fk_notify_deliveries_digest_id_notify_deliveries')),
    sa.ForeignKeyConstraint(['org_id'], ['orgs.id'], name=op.f('fk_notify_deliveries_org_id_orgs')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notify_deliveries')),
    sa.UniqueConstraint('channel_id', 'key', name=op.f('uq_notify_deliveries_channel_id_key'))
    )
    with op.batch_alter_table('notify_deliveries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_notify_deliveries_case_id'), ['case_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_notify_deliveries_channel_id'), ['channel_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_notify_deliveries_next_attempt_at'), ['next_attempt_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_notify_deliveries_org_id'), ['org_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_notify_deliveries_status'), ['status'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('notify_deliveries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_notify_deliveries_status'))
        batch_op.drop_index(batch_op.f('ix_notify_deliveries_org_id'))
        batch_op.drop_index(batch_op.f('ix_notify_deliveries_next_attempt_at'))
        batch_op.drop_index(batch_op.f('ix_notify_deliveries_channel_id'))
        batch_op.drop_index(batch_op.f('ix_notify_deliveries_case_id'))

    op.drop_table('notify_deliveries')
    with op.batch_alter_table('notify_channels', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_notify_channels_user_id'))
        batch_op.drop_index(batch_op.f('ix_notify_channels_org_id'))

    op.drop_table('notify_channels')
    with op.batch_alter_table('report_reminders', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_report_reminders_org_id'))

    op.drop_table('report_reminders')
    op.drop_table('scheduler_runs')
