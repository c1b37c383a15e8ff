"""The labels ledger.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def upgrade() -> None:
    op.create_table(
        "labels",
        sa.Column("produce_id", sa.String(64), primary_key=True),
        sa.Column("watermark_key", sa.String(16), nullable=False),
        sa.Column("content_sha256", sa.String(64), nullable=False),
        sa.Column("media_type", sa.String(128), nullable=False),
        sa.Column("producer", sa.String(64), nullable=False),
        sa.Column("record_json", sa.Text, nullable=False),
        sa.Column("requester", sa.String(128), nullable=False),
        sa.Column("explicit_label", sa.String(64), nullable=False),
        sa.Column("explicit_omitted", sa.Boolean, nullable=False),
        sa.Column("omit_reason", sa.Text, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_labels_watermark_key", "labels", ["watermark_key"])
    op.create_index("ix_labels_content_sha256", "labels", ["content_sha256"])
    op.create_index("ix_labels_created_at", "labels", ["created_at"])


def downgrade() -> None:
    op.drop_table("labels")
