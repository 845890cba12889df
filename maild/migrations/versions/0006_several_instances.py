"""several instances on one PostgreSQL: their heartbeats, the leases of the
roles one instance runs at a time, and one record per mail's bytes

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05 11:00:00.000000

The hash of a mail's bytes becomes unique: maild never wrote two records for
the same bytes but in a race between two instances, which the index now
prevents.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import maild.adapters.database.models


revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'instances',
        sa.Column('id', sa.String(length=64), nullable=False),
        sa.Column('host', sa.String(length=255), nullable=False),
        sa.Column('pid', sa.Integer(), nullable=False),
        sa.Column('started_at', maild.adapters.database.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column('seen_at', maild.adapters.database.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column('schema_revision', sa.String(length=32), nullable=False),
        sa.Column('roles', sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_instances')),
    )
    op.create_table(
        'leases',
        sa.Column('role', sa.String(length=32), nullable=False),
        sa.Column('holder', sa.String(length=64), nullable=False),
        sa.Column('epoch', sa.BigInteger(), nullable=False),
        sa.Column('taken_at', maild.adapters.database.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column('expires_at', maild.adapters.database.models.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('role', name=op.f('pk_leases')),
    )
    with op.batch_alter_table('mails', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_mails_content_hash'))
        batch_op.create_index(
            batch_op.f('ix_mails_content_hash'), ['content_hash'], unique=True
        )


def downgrade() -> None:
    with op.batch_alter_table('mails', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_mails_content_hash'))
        batch_op.create_index(
            batch_op.f('ix_mails_content_hash'), ['content_hash'], unique=False
        )
    op.drop_table('leases')
    op.drop_table('instances')
