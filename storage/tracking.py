"""Tracked positions and linked Binance accounts in the database (``tracked_positions``, ``linked_accounts``).

``SqlTracked`` is the ``domain.tracking.watch.TrackedBook`` port on one session (the tick's, or a service's unit
of work), so tracked alarms change in the same commit as the desk's sweep and their events. Linked accounts are
rows of ciphertext: this module never sees a key in clear (``bot.service.tracking`` encrypts and decrypts).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import delete, insert, or_, select, update
from sqlalchemy.orm import Session

from domain.tracking.position import Alarm, Kind, Lender, Levels, Tracked
from storage.tables import deliveries, outbox, price_alerts
from storage.tables import linked_accounts as links
from storage.tables import tracked_positions as rows

# every event kind about loans held elsewhere (``domain.tracking``): what /unlink forgets with the positions
TRACKED_EVENTS = ("tracked_warning", "tracked_margin_call", "tracked_margin_call_reminder",
                  "tracked_margin_call_cleared", "liquidation_near", "tracked_liquidated", "tracked_repaid",
                  "tracked_gone", "tracked_found", "tracked_collateral_changed", "tracked_expiry_reminder",
                  "tracked_price_alert", "link_revoked")


@dataclass
class Link:
    """A linked account's row (ciphertexts, never clear keys)."""

    owner: str
    kind: str  # "ed25519" | "hmac"
    state: str  # "pending" | "active" | "revoked"
    secret: str
    created_at: datetime
    api_key: str | None = None
    public_key: str | None = None
    synced_at: datetime | None = None
    next_sync_at: datetime | None = None
    failures: int = 0


def _to_row(t: Tracked) -> dict[str, Any]:
    return {"id": t.id, "owner": t.owner, "lender": t.lender.value, "kind": t.kind.value, "ref": t.ref,
            "loan_asset": t.loan_asset, "debt": t.debt, "debt_at": t.debt_at, "apr": t.apr,
            "collateral": json.dumps({a: str(v) for a, v in t.collateral.items()}),
            "margin_call_ltv": t.levels.margin_call, "liquidation_ltv": t.levels.liquidation,
            "initial_ltv": t.levels.initial, "calibration": t.calibration, "opened_at": t.opened_at,
            "synced_at": t.synced_at, "synced_ltv": t.synced_ltv, "expires_at": t.expires_at,
            "reminders_sent": ",".join(t.reminders_sent), "warned": t.alarm.warned,
            "margin_call": t.alarm.margin_call, "margin_call_at": t.alarm.margin_call_at, "near": t.alarm.near}


def _from_row(r: Any) -> Tracked:
    return Tracked(
        id=r.id, owner=r.owner, lender=Lender(r.lender), kind=Kind(r.kind), loan_asset=r.loan_asset, debt=r.debt,
        debt_at=r.debt_at, apr=r.apr, collateral={a: Decimal(v) for a, v in json.loads(r.collateral).items()},
        levels=Levels(r.margin_call_ltv, r.liquidation_ltv, r.initial_ltv), opened_at=r.opened_at, ref=r.ref,
        calibration=r.calibration, synced_at=r.synced_at, synced_ltv=r.synced_ltv, expires_at=r.expires_at,
        reminders_sent=[x for x in r.reminders_sent.split(",") if x],
        alarm=Alarm(r.warned, r.margin_call, r.margin_call_at, r.near))


class SqlTracked:
    def __init__(self, session: Session) -> None:
        self.session = session

    @property
    def db(self) -> Any:
        return self.session.connection()

    # ----------------------------------------------------------------- positions

    def active_tracked(self) -> list[Tracked]:
        return [_from_row(r) for r in self.db.execute(select(rows).order_by(rows.c.id))]

    def tracked_of(self, owner: str) -> list[Tracked]:
        return [_from_row(r) for r in self.db.execute(select(rows).where(rows.c.owner == owner).order_by(rows.c.id))]

    def get_tracked(self, pid: int) -> Tracked | None:
        r = self.db.execute(select(rows).where(rows.c.id == pid)).first()
        return _from_row(r) if r is not None else None

    def save_tracked(self, t: Tracked) -> None:
        values = _to_row(t)
        done = self.db.execute(update(rows).where(rows.c.id == t.id).values(**values))
        if done.rowcount == 0:
            self.db.execute(insert(rows).values(**values))

    def delete_tracked(self, pid: int) -> None:
        self.db.execute(delete(rows).where(rows.c.id == pid))

    def delete_synced(self, owner: str) -> list[int]:
        """Every position synced from a linked account of ``owner`` (manual ones stay), with what was pushed about
        them and about the link (outbox events and their deliveries) and their price alerts; returns their ids."""
        ids = list(self.db.execute(select(rows.c.id).where(rows.c.owner == owner,
                                                           rows.c.lender != Lender.MANUAL.value)).scalars())
        manual = select(rows.c.id).where(rows.c.owner == owner, rows.c.lender == Lender.MANUAL.value)
        about = select(outbox.c.id).where(outbox.c.account == owner, outbox.c.type.in_(TRACKED_EVENTS),
                                          or_(outbox.c.position.is_(None), outbox.c.position.not_in(manual)))
        self.db.execute(delete(deliveries).where(deliveries.c.outbox_id.in_(about)))
        self.db.execute(delete(outbox).where(outbox.c.id.in_(about.scalar_subquery())))
        self.db.execute(delete(price_alerts).where(price_alerts.c.position_id.in_(ids)))
        self.db.execute(delete(rows).where(rows.c.id.in_(ids)))
        return ids

    # ----------------------------------------------------------------- linked accounts

    def link(self, owner: str) -> Link | None:
        r = self.db.execute(select(links).where(links.c.owner == owner)).first()
        return Link(**dict(r._mapping)) if r is not None else None

    def save_link(self, link: Link) -> None:
        values = dict(link.__dict__)
        done = self.db.execute(update(links).where(links.c.owner == link.owner).values(**values))
        if done.rowcount == 0:
            self.db.execute(insert(links).values(**values))

    def delete_link(self, owner: str) -> bool:
        return bool(self.db.execute(delete(links).where(links.c.owner == owner)).rowcount)

    def due_links(self, now: datetime, limit: int = 100) -> list[Link]:
        """Active links whose next sync is due, the longest waiting first."""
        found = self.db.execute(select(links).where(links.c.state == "active", links.c.next_sync_at <= now)
                                .order_by(links.c.next_sync_at).limit(limit))
        return [Link(**dict(r._mapping)) for r in found]

    def active_links(self) -> int:
        return len(self.db.execute(select(links.c.owner).where(links.c.state == "active")).all())
