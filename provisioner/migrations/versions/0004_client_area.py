"""client area: single sign-on tokens (hashed, single use)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21 14:53:44.383177
"""
from alembic import op
import sqlalchemy as sa
import provisioner.db


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('sso_tokens',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('service_id', sa.String(length=64), nullable=False),
    sa.Column('created_at', provisioner.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', provisioner.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('used_at', provisioner.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['service_id'], ['services.id'], name=op.f('fk_sso_tokens_service_id_services')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sso_tokens')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_sso_tokens_token_hash'))
    )
    with op.batch_alter_table('sso_tokens', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sso_tokens_expires_at'), ['expires_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_sso_tokens_service_id'), ['service_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('sso_tokens', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sso_tokens_service_id'))
        batch_op.drop_index(batch_op.f('ix_sso_tokens_expires_at'))

    op.drop_table('sso_tokens')
