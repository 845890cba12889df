"""the trusted MTA's verdict on a new ticket's sender, while only staff are told

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05 11:00:00.000000

Tickets opened before it were never held: they get an empty verdict.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import maild.adapters.database.models


revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('unverified_sender', sa.Text(), server_default='', nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.drop_column('unverified_sender')
