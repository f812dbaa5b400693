"""console sign-in failures: refused console sign-ins counted per client address

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 08:30:00
"""
from alembic import op
import sqlalchemy as sa
import provisioner.db


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('console_sign_in_failures',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('client', sa.String(length=64), nullable=False),
    sa.Column('at', provisioner.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_console_sign_in_failures'))
    )
    with op.batch_alter_table('console_sign_in_failures', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_console_sign_in_failures_at'), ['at'], unique=False)
        batch_op.create_index('ix_console_sign_in_failures_client_at', ['client', 'at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('console_sign_in_failures', schema=None) as batch_op:
        batch_op.drop_index('ix_console_sign_in_failures_client_at')
        batch_op.drop_index(batch_op.f('ix_console_sign_in_failures_at'))
    op.drop_table('console_sign_in_failures')
