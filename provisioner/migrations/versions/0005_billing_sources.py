"""billing sources: services keyed by (source, billing id), source-scoped API keys,
per-source webhook-ids and callbacks, billing's auto-suspend override, outcome callbacks

Every existing row belongs to the source ``default`` and keeps its key (the
billing id), so a single-source set-up behaves exactly as before.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 01:02:43.159192
"""
from alembic import op
import sqlalchemy as sa
import provisioner.db


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.add_column(sa.Column('source', sa.String(length=32), nullable=True))

    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('source', sa.String(length=32), server_default='default', nullable=False))
        batch_op.alter_column('service_id',
               existing_type=sa.VARCHAR(length=64),
               type_=sa.String(length=128),
               existing_nullable=False)
        batch_op.drop_constraint(batch_op.f('uq_events_webhook_id'), type_='unique')
        batch_op.create_unique_constraint(batch_op.f('uq_events_source'), ['source', 'webhook_id'])

    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('report_outcome', sa.Boolean(), server_default='0', nullable=False))
        batch_op.alter_column('service_id',
               existing_type=sa.VARCHAR(length=64),
               type_=sa.String(length=128),
               existing_nullable=False)

    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.add_column(sa.Column('source', sa.String(length=32), server_default='default', nullable=False))
        batch_op.alter_column('service_id',
               existing_type=sa.VARCHAR(length=64),
               type_=sa.String(length=128),
               existing_nullable=True)
        batch_op.create_index(batch_op.f('ix_notifications_source'), ['source'], unique=False)

    with op.batch_alter_table('reconcile_runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('source', sa.String(length=32), nullable=True))

    with op.batch_alter_table('services', schema=None) as batch_op:
        batch_op.add_column(sa.Column('source', sa.String(length=32), server_default='default', nullable=False))
        batch_op.add_column(sa.Column('billing_id', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('auto_suspend_enabled', sa.Boolean(), server_default='1', nullable=False))
        batch_op.add_column(sa.Column('auto_suspend_until', sa.Date(), nullable=True))
        batch_op.alter_column('id',
               existing_type=sa.VARCHAR(length=64),
               type_=sa.String(length=128),
               existing_nullable=False)
    # Until now the key was the billing id.
    op.execute("UPDATE services SET billing_id = id")
    with op.batch_alter_table('services', schema=None) as batch_op:
        batch_op.alter_column('billing_id', existing_type=sa.String(length=64), nullable=False)
        batch_op.create_index(batch_op.f('ix_services_source'), ['source'], unique=False)
        batch_op.create_unique_constraint(batch_op.f('uq_services_source'), ['source', 'billing_id'])

    with op.batch_alter_table('sso_tokens', schema=None) as batch_op:
        batch_op.alter_column('service_id',
               existing_type=sa.VARCHAR(length=64),
               type_=sa.String(length=128),
               existing_nullable=False)



def downgrade() -> None:
    bind = op.get_bind()
    others = bind.execute(sa.text("SELECT count(*) FROM services WHERE source <> 'default'")).scalar()
    if others:
        raise RuntimeError(f"{others} service(s) belong to billing sources other than default; "
                           "before 0005 they could not be told apart from the default source's")
    with op.batch_alter_table('sso_tokens', schema=None) as batch_op:
        batch_op.alter_column('service_id',
               existing_type=sa.String(length=128),
               type_=sa.VARCHAR(length=64),
               existing_nullable=False)

    with op.batch_alter_table('services', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_services_source'), type_='unique')
        batch_op.drop_index(batch_op.f('ix_services_source'))
        batch_op.alter_column('id',
               existing_type=sa.String(length=128),
               type_=sa.VARCHAR(length=64),
               existing_nullable=False)
        batch_op.drop_column('auto_suspend_until')
        batch_op.drop_column('auto_suspend_enabled')
        batch_op.drop_column('billing_id')
        batch_op.drop_column('source')

    with op.batch_alter_table('reconcile_runs', schema=None) as batch_op:
        batch_op.drop_column('source')

    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_notifications_source'))
        batch_op.alter_column('service_id',
               existing_type=sa.String(length=128),
               type_=sa.VARCHAR(length=64),
               existing_nullable=True)
        batch_op.drop_column('source')

    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.alter_column('service_id',
               existing_type=sa.String(length=128),
               type_=sa.VARCHAR(length=64),
               existing_nullable=False)
        batch_op.drop_column('report_outcome')

    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_events_source'), type_='unique')
        batch_op.create_unique_constraint(batch_op.f('uq_events_webhook_id'), ['webhook_id'])
        batch_op.alter_column('service_id',
               existing_type=sa.String(length=128),
               type_=sa.VARCHAR(length=64),
               existing_nullable=False)
        batch_op.drop_column('source')

    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.drop_column('source')

