"""the subject of each mail taken in, for `maild mails list`

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 10:00:00.000000

Mails taken in before it keep an empty subject: their bytes are kept
(storage/blobs) for whoever needs it.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import maild.adapters.database.models


revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('mails', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('subject', sa.Text(), server_default='', nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table('mails', schema=None) as batch_op:
        batch_op.drop_column('subject')
