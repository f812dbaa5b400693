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


# Running jobs beyond the first of their service (only the old claim's race made them):
# handed back to the queue like the lease sweep does, so that the unique index can exist.
EXTRA_RUNNING = ("SELECT id FROM jobs WHERE state = 'running' AND id NOT IN "
                 "(SELECT MIN(id) FROM jobs WHERE state = 'running' GROUP BY service_id)")


def upgrade() -> None:
    op.execute(f"UPDATE job_attempts SET finished_at = CURRENT_TIMESTAMP, outcome = 'lost', "
               f"error_code = 'worker_lost', error_message = 'The job was interrupted before it finished.', "
               f"detail = 'a second running job of its service, handed back by migration 0008' "
               f"WHERE finished_at IS NULL AND job_id IN ({EXTRA_RUNNING})")
    op.execute(f"UPDATE jobs SET state = 'retrying', lease_owner = NULL, lease_expires_at = NULL, "
               f"run_after = CURRENT_TIMESTAMP WHERE id IN ({EXTRA_RUNNING})")
    op.create_index('ix_jobs_runnable', 'jobs', ['run_after', 'created_at'], unique=False,
                    postgresql_where=RUNNABLE, sqlite_where=RUNNABLE)
    op.create_index('uq_jobs_one_running_per_service', 'jobs', ['service_id'], unique=True,
                    postgresql_where=sa.text("state = 'running'"), sqlite_where=sa.text("state = 'running'"))


def downgrade() -> None:
    op.drop_index('uq_jobs_one_running_per_service', table_name='jobs')
    op.drop_index('ix_jobs_runnable', table_name='jobs')
