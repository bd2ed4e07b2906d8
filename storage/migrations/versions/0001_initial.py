"""The initial schema: journal and balances, Earn shares, accounts, market state with rate history,
positions with holdings, VIP term sheets, the outbox and counters (seeded with the position-id counter).

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from storage.types import Money, UtcDateTime

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# BIGINT on PostgreSQL; INTEGER on SQLite, where only INTEGER PRIMARY KEY is the auto-numbered rowid.
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "journal_entries",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("position", sa.Integer(), nullable=True),
        sa.Column("memo", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_journal_entries_position", "journal_entries", ["position"])
    op.create_table(
        "postings",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("entry_id", BIG_ID, nullable=False),
        sa.Column("account", sa.String(length=128), nullable=False),
        sa.Column("asset", sa.String(length=32), nullable=False),
        sa.Column("amount", Money(), nullable=False),
        sa.ForeignKeyConstraint(["entry_id"], ["journal_entries.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_postings_entry_id", "postings", ["entry_id"])
    op.create_index("ix_postings_account_asset", "postings", ["account", "asset"])
    op.create_table(
        "balances",
        sa.Column("account", sa.String(length=128), nullable=False),
        sa.Column("asset", sa.String(length=32), nullable=False),
        sa.Column("amount", Money(), nullable=False),
        sa.PrimaryKeyConstraint("account", "asset"),
    )
    op.create_table(
        "earn_shares",
        sa.Column("owner", sa.String(length=128), nullable=False),
        sa.Column("asset", sa.String(length=32), nullable=False),
        sa.Column("shares", Money(), nullable=False),
        sa.PrimaryKeyConstraint("owner", "asset"),
    )
    op.create_table(
        "accounts",
        sa.Column("id", sa.String(length=128), nullable=False),
        sa.Column("warning_ltv", Money(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "markets",
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("debt_index", Money(), nullable=False),
        sa.Column("debt_shares", Money(), nullable=False),
        sa.Column("fixed_debt", Money(), nullable=False),
        sa.Column("accrued_until", UtcDateTime(), nullable=True),
        sa.Column("earn_index", Money(), nullable=False),
        sa.Column("earn_shares", Money(), nullable=False),
        sa.Column("earn_accrued_until", UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_table(
        "rate_points",
        sa.Column("market_key", sa.String(length=200), nullable=False),
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("effective_from", UtcDateTime(), nullable=False),
        sa.Column("apr", Money(), nullable=False),
        sa.ForeignKeyConstraint(["market_key"], ["markets.key"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("market_key", "seq"),
    )
    op.create_table(
        "positions",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("owner", sa.String(length=128), nullable=False),
        sa.Column("product", sa.String(length=16), nullable=False),
        sa.Column("loan_asset", sa.String(length=32), nullable=False),
        sa.Column("opened_at", UtcDateTime(), nullable=False),
        sa.Column("debt_shares", Money(), nullable=False),
        sa.Column("principal", Money(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("rate_key", sa.String(length=200), nullable=True),
        sa.Column("vip_sheet", sa.Integer(), nullable=True),
        sa.Column("closed_at", UtcDateTime(), nullable=True),
        sa.Column("updated_at", UtcDateTime(), nullable=True),
        sa.Column("warned", sa.Boolean(), nullable=False),
        sa.Column("margin_call", sa.Boolean(), nullable=False),
        sa.Column("margin_call_at", UtcDateTime(), nullable=True),
        sa.Column("liquidation_pending_since", UtcDateTime(), nullable=True),
        sa.Column("fixed_term_days", sa.Integer(), nullable=True),
        sa.Column("fixed_apr", Money(), nullable=True),
        sa.Column("fixed_expires_at", UtcDateTime(), nullable=True),
        sa.Column("fixed_interest", Money(), nullable=True),
        sa.Column("fixed_auto_repay", sa.Boolean(), nullable=True),
        sa.Column("fixed_auto_renew", sa.Boolean(), nullable=True),
        sa.Column("fixed_convert_to_flexible", sa.Boolean(), nullable=True),
        sa.Column("fixed_late_fees", Money(), nullable=True),
        sa.Column("fixed_late_fee_hours", sa.Integer(), nullable=True),
        sa.Column("fixed_reminders_sent", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_positions_owner", "positions", ["owner"])
    op.create_index("ix_positions_status", "positions", ["status"])
    op.create_index("ix_positions_owner_product_loan", "positions", ["owner", "product", "loan_asset"])
    op.create_table(
        "holdings",
        sa.Column("position_id", sa.Integer(), nullable=False),
        sa.Column("asset", sa.String(length=32), nullable=False),
        sa.Column("ordinal", sa.Integer(), nullable=False),
        sa.Column("spot", Money(), nullable=False),
        sa.Column("earn_shares", Money(), nullable=False),
        sa.ForeignKeyConstraint(["position_id"], ["positions.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("position_id", "asset"),
    )
    op.create_table(
        "term_sheets",
        sa.Column("owner", sa.String(length=128), nullable=False),
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("loan_assets", sa.Text(), nullable=False),
        sa.Column("rate", sa.String(length=16), nullable=False),
        sa.Column("apr", Money(), nullable=False),
        sa.Column("initial_ltv", Money(), nullable=False),
        sa.Column("margin_call_ltv", Money(), nullable=False),
        sa.Column("liquidation_ltv", Money(), nullable=False),
        sa.Column("collateral", sa.Text(), nullable=False),
        sa.Column("liquidation", sa.String(length=16), nullable=False),
        sa.Column("liquidation_delay_minutes", sa.Integer(), nullable=False),
        sa.Column("min_order", Money(), nullable=False),
        sa.Column("max_borrow", Money(), nullable=True),
        sa.Column("max_collateral", sa.Text(), nullable=False),
        sa.Column("warning_ltv", Money(), nullable=True),
        sa.Column("issued_at", UtcDateTime(), nullable=True),
        sa.Column("issued_by", sa.String(length=128), nullable=True),
        sa.PrimaryKeyConstraint("owner", "version"),
    )
    op.create_table(
        "outbox",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("account", sa.String(length=128), nullable=True),
        sa.Column("position", sa.Integer(), nullable=True),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("urgency", sa.Integer(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("sent_at", UtcDateTime(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_outbox_sent_at_urgency", "outbox", ["sent_at", "urgency"])
    counters = op.create_table(
        "counters",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.bulk_insert(counters, [{"name": "position_id", "value": 0}])


def downgrade() -> None:
    for table in ("counters", "outbox", "term_sheets", "holdings", "positions", "rate_points", "markets", "accounts",
                  "earn_shares", "balances", "postings", "journal_entries"):
        op.drop_table(table)
