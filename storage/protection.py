"""Borrower rules on SQL: auto-protection rules (``protection_rules``), price alerts (``price_alerts``), and
reading the accepted price history (``price_ticks``) for charts.

``ProtectionTables`` is a mixin of ``SqlBook`` (it needs only ``self.db``, the unit of work's connection): it
implements the ``Book`` methods ``protection_rules``/``save_protection_rule``/``delete_protection_rule`` and
``price_alerts``/``save_price_alert``/``delete_price_alert``, one row per position, written at once.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import Connection, delete, insert, select, update

from domain.positions import PriceAlert, ProtectionRule
from storage.tables import price_alerts, price_ticks, protection_rules


class ProtectionTables:
    """The ``Book`` methods for protection rules and price alerts (see the module docstring)."""

    @property
    def db(self) -> Connection:  # provided by SqlBook
        raise NotImplementedError

    # ------------------------------------------------------------------ protection rules

    def protection_rules(self, owner: str | None = None) -> list[ProtectionRule]:
        q = select(protection_rules).order_by(protection_rules.c.position_id)
        if owner is not None:
            q = q.where(protection_rules.c.owner == owner)
        return [ProtectionRule(r["position_id"], r["owner"], r["trigger"], r["target"], r["mode"],
                               r["daily_limit"], r["used_day"], r["used_count"], r["created_at"])
                for r in self.db.execute(q).mappings()]

    def save_protection_rule(self, rule: ProtectionRule) -> None:
        values = {"owner": rule.owner, "trigger": rule.trigger, "target": rule.target, "mode": rule.mode,
                  "daily_limit": rule.daily_limit, "used_day": rule.used_day, "used_count": rule.used_count,
                  "created_at": rule.created_at}
        done = self.db.execute(update(protection_rules)
                               .where(protection_rules.c.position_id == rule.position).values(**values))
        if done.rowcount == 0:
            self.db.execute(insert(protection_rules).values(position_id=rule.position, **values))

    def delete_protection_rule(self, position: int) -> None:
        self.db.execute(delete(protection_rules).where(protection_rules.c.position_id == position))

    # ------------------------------------------------------------------ price alerts

    def price_alerts(self, owner: str | None = None) -> list[PriceAlert]:
        q = select(price_alerts).order_by(price_alerts.c.position_id)
        if owner is not None:
            q = q.where(price_alerts.c.owner == owner)
        return [PriceAlert(r["position_id"], r["owner"], r["distance"], bool(r["armed"]))
                for r in self.db.execute(q).mappings()]

    def save_price_alert(self, alert: PriceAlert) -> None:
        values = {"owner": alert.owner, "distance": alert.distance, "armed": alert.armed}
        done = self.db.execute(update(price_alerts)
                               .where(price_alerts.c.position_id == alert.position).values(**values))
        if done.rowcount == 0:
            self.db.execute(insert(price_alerts).values(position_id=alert.position, **values))

    def delete_price_alert(self, position: int) -> None:
        self.db.execute(delete(price_alerts).where(price_alerts.c.position_id == position))


def price_history(db: Connection, assets: list[str], since: datetime,
                  limit: int = 2000) -> dict[str, list[tuple[datetime, Decimal]]]:
    """Accepted prices of ``assets`` from ``since`` on, oldest first; the newest ``limit`` per asset."""
    out: dict[str, list[tuple[datetime, Decimal]]] = {}
    for asset in assets:
        rows = db.execute(select(price_ticks.c.at, price_ticks.c.price)
                          .where(price_ticks.c.asset == asset, price_ticks.c.at >= since)
                          .order_by(price_ticks.c.at.desc()).limit(limit)).all()
        out[asset] = [(r.at, r.price) for r in reversed(rows)]
    return out
