"""retention: when a ticket's raw mails were purged, blobs to sweep

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05 11:00:00.000000

Indexes on the blob keys of attachments and mails (the sweep asks whether
any row still names a blob before its file goes) and on a mail's ticket
(the purge takes a ticket's mails).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import maild.adapters.database.models


revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "blob_sweep",
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("sha256", name=op.f("pk_blob_sweep")),
    )
    with op.batch_alter_table("attachments", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_attachments_sha256"), ["sha256"], unique=False
        )
    with op.batch_alter_table("mails", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_mails_blob_sha256"), ["blob_sha256"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_mails_ticket_id"), ["ticket_id"], unique=False
        )
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "purged_at",
                maild.adapters.database.models.UtcDateTime(timezone=True),
                nullable=True,
            )
        )
        batch_op.create_index(
            "ix_tickets_purge_due", ["purged_at", "closed_at", "id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.drop_index("ix_tickets_purge_due")
        batch_op.drop_column("purged_at")
    with op.batch_alter_table("mails", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_mails_ticket_id"))
        batch_op.drop_index(batch_op.f("ix_mails_blob_sha256"))
    with op.batch_alter_table("attachments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_attachments_sha256"))
    op.drop_table("blob_sweep")
