"""services: an index on the order listings page through (created_at, id), so that a
page of the services list does not sort every service

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 21:20:00
"""
from alembic import op


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('services', schema=None) as batch_op:
        batch_op.create_index('ix_services_created_at_id', ['created_at', 'id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('services', schema=None) as batch_op:
        batch_op.drop_index('ix_services_created_at_id')
