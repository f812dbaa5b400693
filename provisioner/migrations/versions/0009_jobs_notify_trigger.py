"""jobs: on PostgreSQL a trigger NOTIFYs provisioner_jobs when a job becomes runnable
now (inserted so, or handed back to the queue), in the transaction that does it: the
listening workers wake at its COMMIT, and the writer spends no round trip of its own

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 08:15:00
"""
from alembic import op


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

# The channel is provisioner.jobs.CHANNEL; the app's clock wrote both times compared
# (run_after and created_at / updated_at), so the database's clock plays no part.
RUNNABLE_NOW = "NEW.state IN ('queued', 'retrying')"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return                      # SQLite has one machine's workers, which poll
    op.execute("""
        CREATE FUNCTION provisioner_jobs_wake() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('provisioner_jobs', '');
            RETURN NULL;
        END $$""")
    op.execute(f"""
        CREATE TRIGGER jobs_wake_on_insert AFTER INSERT ON jobs FOR EACH ROW
        WHEN ({RUNNABLE_NOW} AND NEW.run_after <= NEW.created_at)
        EXECUTE FUNCTION provisioner_jobs_wake()""")
    op.execute(f"""
        CREATE TRIGGER jobs_wake_on_update AFTER UPDATE OF state ON jobs FOR EACH ROW
        WHEN ({RUNNABLE_NOW} AND OLD.state IS DISTINCT FROM NEW.state AND NEW.run_after <= NEW.updated_at)
        EXECUTE FUNCTION provisioner_jobs_wake()""")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER IF EXISTS jobs_wake_on_update ON jobs")
    op.execute("DROP TRIGGER IF EXISTS jobs_wake_on_insert ON jobs")
    op.execute("DROP FUNCTION IF EXISTS provisioner_jobs_wake()")
