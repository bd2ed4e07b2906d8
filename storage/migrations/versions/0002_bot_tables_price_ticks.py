"""The bot's own tables (previews with one-time tokens, guided-borrow drafts, processed update keys, faucet
days) under migrations instead of ``create_all``, and ``price_ticks`` for accepted exchange prices.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from storage.types import Money, UtcDateTime

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    # Databases made before this revision got these four tables from the bot's create_all.
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    if "bot_previews" not in existing:
        op.create_table(
            "bot_previews",
            sa.Column("token", sa.String(32), primary_key=True),
            sa.Column("owner", sa.String(64), nullable=False),
            sa.Column("kind", sa.String(32), nullable=False),
            sa.Column("params", sa.Text(), nullable=False),
            sa.Column("created", sa.String(40), nullable=False),
            sa.Column("expires", sa.String(40), nullable=False),
            sa.Column("state", sa.String(16), nullable=False),
        )
    if "bot_drafts" not in existing:
        op.create_table(
            "bot_drafts",
            sa.Column("owner", sa.String(64), primary_key=True),
            sa.Column("loan", sa.String(32), nullable=True),
            sa.Column("collateral", sa.String(32), nullable=True),
            sa.Column("amount", sa.String(64), nullable=True),
        )
    if "bot_seen" not in existing:
        op.create_table(
            "bot_seen",
            sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
            sa.Column("key", sa.String(96), nullable=False, unique=True),
        )
    if "bot_faucet" not in existing:
        op.create_table(
            "bot_faucet",
            sa.Column("owner", sa.String(64), primary_key=True),
            sa.Column("day", sa.String(10), nullable=False),
        )
    op.create_table(
        "price_ticks",
        sa.Column("id", BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("asset", sa.String(16), nullable=False),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.Column("price", Money(), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
    )
    op.create_index("ix_price_ticks_asset_at", "price_ticks", ["asset", "at"])


def downgrade() -> None:
    op.drop_index("ix_price_ticks_asset_at", table_name="price_ticks")
    for name in ("price_ticks", "bot_faucet", "bot_seen", "bot_drafts", "bot_previews"):
        op.drop_table(name)
