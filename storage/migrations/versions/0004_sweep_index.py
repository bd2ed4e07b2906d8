"""The risk sweep's index: ``sweep_index`` (k = s_debt / s_coll per single-collateral flexible position, its
group and alert state; see ``domain.sweepindex``), filled from the positions already open, and an index on the
accounts' personal warning level.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from storage.types import UtcDateTime

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 10_000


def upgrade() -> None:
    op.create_table(
        "sweep_index",
        sa.Column("position_id", sa.Integer(), sa.ForeignKey("positions.id", ondelete="CASCADE"), primary_key=True,
                  autoincrement=False),
        sa.Column("owner", sa.String(128), nullable=False),
        sa.Column("state", sa.SmallInteger(), nullable=False),
        sa.Column("grp", sa.String(80), nullable=False),
        sa.Column("k", sa.String(49).with_variant(sa.String(49, collation="C"), "postgresql"), nullable=True),
        sa.Column("called_at", UtcDateTime(), nullable=True),
    )
    op.create_index("ix_sweep_index_state_group_k", "sweep_index", ["state", "grp", "k"])
    op.create_index("ix_sweep_index_state_called_at", "sweep_index", ["state", "called_at"])
    op.create_index("ix_sweep_index_owner", "sweep_index", ["owner"])
    op.create_index("ix_accounts_warning_ltv", "accounts", ["warning_ltv"])
    _fill(op.get_bind())


def _fill(conn: sa.Connection) -> None:
    """Index the positions that are already active, a batch of ids at a time (the rules live in the domain)."""
    from storage import mapping, sweepindex
    from storage.book import ACTIVE_VALUES
    from storage.tables import holdings, positions

    last = 0
    while True:
        rows = conn.execute(sa.select(positions).where(positions.c.status.in_(ACTIVE_VALUES), positions.c.id > last)
                            .order_by(positions.c.id).limit(BATCH)).mappings().all()
        if not rows:
            return
        last = rows[-1]["id"]
        held: dict[int, list[sa.RowMapping]] = {}
        for h in conn.execute(sa.select(holdings).where(holdings.c.position_id.in_([r["id"] for r in rows]))
                              .order_by(holdings.c.position_id, holdings.c.ordinal)).mappings():
            held.setdefault(h["position_id"], []).append(h)
        sweepindex.backfill(conn, [mapping.position_from(r, held.get(r["id"], [])) for r in rows])


def downgrade() -> None:
    op.drop_index("ix_accounts_warning_ltv", table_name="accounts")
    op.drop_index("ix_sweep_index_owner", table_name="sweep_index")
    op.drop_index("ix_sweep_index_state_called_at", table_name="sweep_index")
    op.drop_index("ix_sweep_index_state_group_k", table_name="sweep_index")
    op.drop_table("sweep_index")
