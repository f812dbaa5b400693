"""client area: server-side logins (so a session can end before its cookie) and refused
sign-in links counted in the database (one limit for every process)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 10:09:20.993219
"""
from alembic import op
import sqlalchemy as sa
import provisioner.db


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('sso_failures',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('client', sa.String(length=64), nullable=False),
    sa.Column('at', provisioner.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sso_failures'))
    )
    with op.batch_alter_table('sso_failures', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sso_failures_at'), ['at'], unique=False)
        batch_op.create_index('ix_sso_failures_client_at', ['client', 'at'], unique=False)

    op.create_table('client_logins',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('service_id', sa.String(length=128), nullable=False),
    sa.Column('created_at', provisioner.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', provisioner.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', provisioner.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('ended_at', provisioner.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('ended_reason', sa.String(length=32), nullable=True),
    sa.ForeignKeyConstraint(['service_id'], ['services.id'], name=op.f('fk_client_logins_service_id_services')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_client_logins'))
    )
    with op.batch_alter_table('client_logins', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_client_logins_expires_at'), ['expires_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_client_logins_service_id'), ['service_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('client_logins', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_client_logins_service_id'))
        batch_op.drop_index(batch_op.f('ix_client_logins_expires_at'))

    op.drop_table('client_logins')
    with op.batch_alter_table('sso_failures', schema=None) as batch_op:
        batch_op.drop_index('ix_sso_failures_client_at')
        batch_op.drop_index(batch_op.f('ix_sso_failures_at'))

    op.drop_table('sso_failures')
