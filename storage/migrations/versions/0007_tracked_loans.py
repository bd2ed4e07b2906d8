"""Tracked loans (SPEC §9): positions held elsewhere, and linked Binance accounts (keys encrypted).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from storage.types import Money, UtcDateTime

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "tracked_positions",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("lender", sa.String(16), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("ref", sa.String(64), nullable=False),
        sa.Column("loan_asset", sa.String(32), nullable=False),
        sa.Column("debt", Money(), nullable=False),
        sa.Column("debt_at", UtcDateTime(), nullable=False),
        sa.Column("apr", Money(), nullable=False),
        sa.Column("collateral", sa.Text(), nullable=False),
        sa.Column("margin_call_ltv", Money(), nullable=False),
        sa.Column("liquidation_ltv", Money(), nullable=False),
        sa.Column("initial_ltv", Money(), nullable=True),
        sa.Column("calibration", Money(), nullable=False),
        sa.Column("opened_at", UtcDateTime(), nullable=False),
        sa.Column("synced_at", UtcDateTime(), nullable=True),
        sa.Column("synced_ltv", Money(), nullable=True),
        sa.Column("expires_at", UtcDateTime(), nullable=True),
        sa.Column("reminders_sent", sa.String(64), nullable=False),
        sa.Column("warned", sa.Boolean(), nullable=False),
        sa.Column("margin_call", sa.Boolean(), nullable=False),
        sa.Column("margin_call_at", UtcDateTime(), nullable=True),
        sa.Column("near", sa.Boolean(), nullable=False),
    )
    op.create_index("ix_tracked_positions_owner", "tracked_positions", ["owner"])
    op.create_table(
        "linked_accounts",
        sa.Column("owner", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("api_key", sa.Text(), nullable=True),
        sa.Column("secret", sa.Text(), nullable=False),
        sa.Column("public_key", sa.Text(), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("synced_at", UtcDateTime(), nullable=True),
        sa.Column("next_sync_at", UtcDateTime(), nullable=True),
        sa.Column("failures", sa.Integer(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("linked_accounts")
    op.drop_index("ix_tracked_positions_owner", table_name="tracked_positions")
    op.drop_table("tracked_positions")
