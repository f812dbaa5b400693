"""operator console: server-side console sessions, single-use sign-in links, the record of operator actions, and
indexes for the services listing's filters in its order (column, created_at, id), which
replace the single-column ones on source, desired_status and observed_status; indexes on
the times the console's overview counts by (events.received_at, job_attempts.started_at)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 07:40:00
"""
from alembic import op
import sqlalchemy as sa
import provisioner.db


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


LISTING = ("source", "upstream", "product_key", "desired_status", "observed_status")
REPLACED = ("source", "desired_status", "observed_status")


def upgrade() -> None:
    with op.batch_alter_table('services', schema=None) as batch_op:
        for column in LISTING:
            batch_op.create_index(f'ix_services_{column}_listing', [column, 'created_at', 'id'], unique=False)
        for column in REPLACED:
            batch_op.drop_index(f'ix_services_{column}')
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_events_received_at'), ['received_at'], unique=False)
    with op.batch_alter_table('job_attempts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_job_attempts_started_at'), ['started_at'], unique=False)

    op.create_table('console_logins',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('api_key_id', sa.Integer(), nullable=False),
    sa.Column('created_at', provisioner.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', provisioner.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', provisioner.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('ended_at', provisioner.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('ended_reason', sa.String(length=32), nullable=True),
    sa.ForeignKeyConstraint(['api_key_id'], ['api_keys.id'], name=op.f('fk_console_logins_api_key_id_api_keys')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_console_logins'))
    )
    with op.batch_alter_table('console_logins', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_console_logins_api_key_id'), ['api_key_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_console_logins_expires_at'), ['expires_at'], unique=False)

    op.create_table('console_sso_tokens',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('api_key_id', sa.Integer(), nullable=False),
    sa.Column('next_path', sa.String(length=255), nullable=True),
    sa.Column('created_at', provisioner.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', provisioner.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('used_at', provisioner.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['api_key_id'], ['api_keys.id'], name=op.f('fk_console_sso_tokens_api_key_id_api_keys')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_console_sso_tokens')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_console_sso_tokens_token_hash'))
    )
    with op.batch_alter_table('console_sso_tokens', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_console_sso_tokens_api_key_id'), ['api_key_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_console_sso_tokens_expires_at'), ['expires_at'], unique=False)

    op.create_table('operator_actions',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('at', provisioner.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('api_key_id', sa.Integer(), nullable=True),
    sa.Column('actor', sa.String(length=128), nullable=False),
    sa.Column('key_prefix', sa.String(length=16), nullable=False),
    sa.Column('via', sa.String(length=16), nullable=False),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('service_id', sa.String(length=128), nullable=True),
    sa.Column('source', sa.String(length=32), nullable=True),
    sa.Column('job_id', sa.String(length=32), nullable=True),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_operator_actions'))
    )
    with op.batch_alter_table('operator_actions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_operator_actions_at'), ['at'], unique=False)
        batch_op.create_index('ix_operator_actions_service_at', ['service_id', 'at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('job_attempts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_job_attempts_started_at'))
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_events_received_at'))
    with op.batch_alter_table('operator_actions', schema=None) as batch_op:
        batch_op.drop_index('ix_operator_actions_service_at')
        batch_op.drop_index(batch_op.f('ix_operator_actions_at'))
    op.drop_table('operator_actions')
    with op.batch_alter_table('console_sso_tokens', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_console_sso_tokens_expires_at'))
        batch_op.drop_index(batch_op.f('ix_console_sso_tokens_api_key_id'))
    op.drop_table('console_sso_tokens')
    with op.batch_alter_table('console_logins', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_console_logins_expires_at'))
        batch_op.drop_index(batch_op.f('ix_console_logins_api_key_id'))
    op.drop_table('console_logins')
    with op.batch_alter_table('services', schema=None) as batch_op:
        for column in REPLACED:
            batch_op.create_index(f'ix_services_{column}', [column], unique=False)
        for column in LISTING:
            batch_op.drop_index(f'ix_services_{column}_listing')
