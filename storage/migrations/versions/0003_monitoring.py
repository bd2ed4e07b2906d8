"""Monitoring: chats (private and groups, with the desk risk channel), what members share with groups,
per-chat deliveries of outbox events, the scheduler's leader lock, auto-protection rules, price alerts and
opt-in push preferences.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from storage.types import Money, UtcDateTime

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "chats",
        sa.Column("chat_id", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("title", sa.String(256), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("monitoring", sa.Boolean(), nullable=False),
        sa.Column("desk_channel", sa.Boolean(), nullable=False),
        sa.Column("migrated_to", sa.BigInteger(), nullable=True),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
    )
    op.create_table(
        "group_shares",
        sa.Column("id", BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("position_id", sa.Integer(), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
    )
    op.create_index("ix_group_shares_owner", "group_shares", ["owner"])
    op.create_index("uq_group_shares", "group_shares", ["chat_id", "owner", "position_id"], unique=True)
    op.create_table(
        "deliveries",
        sa.Column("id", BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("outbox_id", BIG_ID, nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("urgency", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UtcDateTime(), nullable=True),
        sa.Column("sent_at", UtcDateTime(), nullable=True),
        sa.Column("message_id", sa.BigInteger(), nullable=True),
        sa.Column("error", sa.String(256), nullable=True),
    )
    op.create_index("uq_deliveries_event_chat", "deliveries", ["outbox_id", "chat_id"], unique=True)
    op.create_index("ix_deliveries_due", "deliveries", ["status", "urgency", "next_attempt_at"])
    op.create_table(
        "scheduler_lock",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("holder", sa.String(128), nullable=False),
        sa.Column("expires_at", UtcDateTime(), nullable=False),
    )
    op.create_table(
        "protection_rules",
        sa.Column("position_id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("trigger", Money(), nullable=False),
        sa.Column("target", Money(), nullable=False),
        sa.Column("mode", sa.String(8), nullable=False),
        sa.Column("daily_limit", sa.Integer(), nullable=False),
        sa.Column("used_day", sa.String(10), nullable=True),
        sa.Column("used_count", sa.Integer(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
    )
    op.create_table(
        "price_alerts",
        sa.Column("position_id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("distance", Money(), nullable=False),
        sa.Column("armed", sa.Boolean(), nullable=False),
    )
    op.create_table(
        "account_prefs",
        sa.Column("owner", sa.String(64), primary_key=True),
        sa.Column("rate_changes", sa.Boolean(), nullable=False),
        sa.Column("daily_digest", sa.Boolean(), nullable=False),
        sa.Column("digest_hour", sa.Integer(), nullable=False),
        sa.Column("last_digest_day", sa.String(10), nullable=True),
    )


def downgrade() -> None:
    op.drop_index("ix_deliveries_due", table_name="deliveries")
    op.drop_index("uq_deliveries_event_chat", table_name="deliveries")
    op.drop_index("uq_group_shares", table_name="group_shares")
    op.drop_index("ix_group_shares_owner", table_name="group_shares")
    for name in ("account_prefs", "price_alerts", "protection_rules", "scheduler_lock", "deliveries",
                 "group_shares", "chats"):
        op.drop_table(name)
