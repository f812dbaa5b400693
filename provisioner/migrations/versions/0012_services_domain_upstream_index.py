"""services: one index on (domain, upstream) instead of domain alone

Intake asks, for every first create, whether a live service of another billing
source has the domain on the same upstream. With an index on the domain alone,
PostgreSQL with stale statistics (a table filled faster than autovacuum analyses
it) combined it with the upstream's listing index and read every service of the
upstream per hook. The composite index answers the query on its own and still
serves look-ups by domain alone.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 11:30:00
"""
from alembic import op


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('services', schema=None) as batch_op:
        batch_op.create_index('ix_services_domain_upstream', ['domain', 'upstream'], unique=False)
        batch_op.drop_index('ix_services_domain')


def downgrade() -> None:
    with op.batch_alter_table('services', schema=None) as batch_op:
        batch_op.create_index('ix_services_domain', ['domain'], unique=False)
        batch_op.drop_index('ix_services_domain_upstream')
