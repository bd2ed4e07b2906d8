"""Indexes for a tick on a large book: each sweep band one range scan, the Fixed loans without the rest.

* ``(state, called_at)`` on ``sweep_index`` also matched every band's ``state = …``, and PostgreSQL, with
  statistics that say the warned and called states are nearly empty, read a band's range through it (all warned
  rows once per band) instead of ``(state, grp, k)``. A partial index on ``called_at`` (only margin calls have
  one) serves the reminder query and nothing else.
* ``(product, status)`` on ``positions``: the expiry step of every tick reads the active Fixed loans only;
  ``status`` alone matches the whole book.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WHERE = sa.text("called_at IS NOT NULL")


def upgrade() -> None:
    op.drop_index("ix_sweep_index_state_called_at", table_name="sweep_index")
    op.create_index("ix_sweep_index_called_at", "sweep_index", ["called_at"], postgresql_where=WHERE,
                    sqlite_where=WHERE)
    op.create_index("ix_positions_product_status", "positions", ["product", "status"])


def downgrade() -> None:
    op.drop_index("ix_positions_product_status", table_name="positions")
    op.drop_index("ix_sweep_index_called_at", table_name="sweep_index")
    op.create_index("ix_sweep_index_state_called_at", "sweep_index", ["state", "called_at"])
