"""Platform write-backs (Measures Art. 6).

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    op.create_table(
        "propagations",
        sa.Column("propagate_id", sa.String(64), primary_key=True),
        sa.Column("platform", sa.String(64), nullable=False),
        sa.Column("produce_id", sa.String(64), nullable=True),
        sa.Column("classification", sa.String(16), nullable=False),
        sa.Column("record_json", sa.Text, nullable=False),
        sa.Column("content_sha256", sa.String(64), nullable=False),
        sa.Column("media_type", sa.String(128), nullable=False),
        sa.Column("requester", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_propagations_produce_id", "propagations", ["produce_id"])
    op.create_index("ix_propagations_content_sha256", "propagations", ["content_sha256"])
    op.create_index("ix_propagations_created_at", "propagations", ["created_at"])


def downgrade() -> None:
    op.drop_table("propagations")
