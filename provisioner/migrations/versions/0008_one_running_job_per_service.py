"""jobs: a partial unique index, at most one running job per service (the claim's
guarantee, kept by the database whatever the claimers race), and a partial index of
runnable jobs in the order they are due (the claim reads its front)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 07:30:00
"""
import sqlalchemy as sa
from alembic import op


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


RUNNABLE = sa.text("state IN ('queued', 'retrying')")


def upgrade() -> None:
    op.create_index('ix_jobs_runnable', 'jobs', ['run_after', 'created_at'], unique=False,
                    postgresql_where=RUNNABLE, sqlite_where=RUNNABLE)
    op.create_index('uq_jobs_one_running_per_service', 'jobs', ['service_id'], unique=True,
                    postgresql_where=sa.text("state = 'running'"), sqlite_where=sa.text("state = 'running'"))


def downgrade() -> None:
    op.drop_index('uq_jobs_one_running_per_service', table_name='jobs')
    op.drop_index('ix_jobs_runnable', table_name='jobs')
