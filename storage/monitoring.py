"""Queries on the monitoring tables (migration 0003): chats, group shares, deliveries, the scheduler's leader
lock's table (its rows as flags), accepted price ticks and push preferences.

A delivery is ``pending`` (due from ``next_attempt_at``), ``sent``, ``dropped``, ``held`` or ``superseded``: a
critical push (``domain.events.CRITICAL``) to a chat that refuses the bot waits there, never dropped, until the
chat comes back (``reactivate``) and it is pending again; only the newest held reminder of a margin call is
sent then, the older ones are ``superseded`` by it. ``scheduler_lock`` rows other than the leader lease
(``storage.leases``) double as tiny persistent flags (``flag``/``set_flag``/``clear_flag``), e.g. "the price
feed is stale since …".

``Monitoring(uow.session)`` works inside the caller's unit of work, so a delivery row or a chat flag changes in
the same transaction as whatever else the caller does. Nothing here talks to Telegram.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, Connection, delete, insert, or_, select, update
from sqlalchemy.orm import Session

from domain.events import CRITICAL, Event
from storage.mapping import event_from
from storage.tables import (
    account_prefs,
    chats,
    deliveries,
    group_shares,
    outbox,
    positions,
    price_ticks,
    scheduler_lock,
)

TICK_EVERY = timedelta(minutes=1)  # at most one stored tick per asset per minute …
TICK_JUMP = Decimal("0.15")  # … unless the price moved more than this since the last stored one
FLAG = "flag"  # the ``holder`` of a ``scheduler_lock`` row used as a flag, never a lock
OWES = ("open", "overdue", "liquidated_with_debt")  # statuses whose debt follows the market's rate


@dataclass(frozen=True)
class Due:
    """A pending delivery with its event."""

    id: int
    chat_id: int
    urgency: int
    attempts: int
    event: Event


class Monitoring:
    def __init__(self, session: Session) -> None:
        self.session = session

    @property
    def db(self) -> Connection:
        return self.session.connection()

    # ----------------------------------------------------------------- chats

    def chat(self, chat_id: int) -> dict[str, Any] | None:
        row = self.db.execute(select(chats).where(chats.c.chat_id == chat_id)).mappings().first()
        return None if row is None else dict(row)

    def save_chat(self, chat_id: int, kind: str, now: datetime, **values: Any) -> None:
        """Create or update a chat row (``active``, ``monitoring``, ``desk_channel``, ``title``, …)."""
        if self.chat(chat_id) is None:
            self.db.execute(insert(chats).values(chat_id=chat_id, kind=kind, updated_at=now,
                                                 **{"active": True, "monitoring": False, "desk_channel": False,
                                                    **values}))
        else:
            self.db.execute(update(chats).where(chats.c.chat_id == chat_id).values(updated_at=now, **values))

    def inactive(self, ids: Iterable[int]) -> set[int]:
        ids = list(set(ids))
        if not ids:
            return set()
        q = select(chats.c.chat_id).where(chats.c.chat_id.in_(ids), chats.c.active.is_(False))
        return set(self.db.execute(q).scalars())

    def away(self, ids: Iterable[int]) -> tuple[set[int], set[int]]:
        """The inactive chats among ``ids``, and those of them that may come back (blocked, or the bot
        removed from the group — not a group that migrated)."""
        ids = list(set(ids))
        if not ids:
            return set(), set()
        q = select(chats.c.chat_id, chats.c.migrated_to).where(chats.c.chat_id.in_(ids), chats.c.active.is_(False))
        rows = self.db.execute(q).all()
        return {r[0] for r in rows}, {r[0] for r in rows if r[1] is None}

    def reactivate(self, chat_id: int, now: datetime) -> int | None:
        """The chat talks to the bot again (or re-added it): active again, its held pushes pending again.

        None when the chat was not inactive (or migrated away); else how many held deliveries are due now."""
        row = self.chat(chat_id)
        if row is None or row["active"] or row["migrated_to"] is not None:
            return None
        self.save_chat(chat_id, row["kind"], now, active=True)
        return self.release_held(chat_id)

    def release_held(self, chat_id: int) -> int:
        """Held pushes of ``chat_id`` become pending again — except margin-call reminders superseded by a newer
        held reminder of the same position (status ``superseded``): the newest one carries today's numbers, and
        a week away would otherwise come back as 170 hourly reminders."""
        reminders = self.db.execute(
            select(deliveries.c.id, outbox.c.position).join(outbox, outbox.c.id == deliveries.c.outbox_id)
            .where(deliveries.c.chat_id == chat_id, deliveries.c.status == "held",
                   outbox.c.type == "margin_call_reminder").order_by(deliveries.c.outbox_id.desc())).all()
        seen: set[Any] = set()
        stale = []
        for delivery, position in reminders:  # newest first
            if position in seen:
                stale.append(delivery)
            seen.add(position)
        if stale:
            self.db.execute(update(deliveries).where(deliveries.c.id.in_(stale))
                            .values(status="superseded", error="a newer reminder of the same margin call"))
        result = self.db.execute(update(deliveries).where(deliveries.c.chat_id == chat_id,
                                                          deliveries.c.status == "held")
                                 .values(status="pending", next_attempt_at=None))
        return int(result.rowcount or 0)

    def desk_channels(self, inactive_too: bool = False) -> list[int]:
        q = select(chats.c.chat_id).where(chats.c.desk_channel.is_(True))
        if not inactive_too:
            q = q.where(chats.c.active.is_(True))
        return list(self.db.execute(q).scalars())

    def migrate_chat(self, old: int, new: int, now: datetime) -> None:
        """A group became a supergroup: the new id inherits its flags, shares and pending deliveries."""
        row = self.chat(old) or {"kind": "group", "title": None, "monitoring": False, "desk_channel": False}
        self.save_chat(new, "supergroup", now, title=row["title"], active=True, monitoring=row["monitoring"],
                       desk_channel=row["desk_channel"])
        self.save_chat(old, row["kind"], now, active=False, migrated_to=new)
        for share in self.db.execute(select(group_shares).where(group_shares.c.chat_id == old)).mappings().all():
            if not self._has_share(new, share["owner"], share["position_id"]):
                self.db.execute(update(group_shares).where(group_shares.c.id == share["id"]).values(chat_id=new))
        self.db.execute(delete(group_shares).where(group_shares.c.chat_id == old))
        for d in self.db.execute(select(deliveries).where(deliveries.c.chat_id == old,
                                                          deliveries.c.status == "pending")).mappings().all():
            taken = self.db.execute(select(deliveries.c.id).where(deliveries.c.chat_id == new,
                                                                  deliveries.c.outbox_id == d["outbox_id"])).first()
            if taken is None:
                self.db.execute(update(deliveries).where(deliveries.c.id == d["id"]).values(chat_id=new))
            else:
                self.db.execute(delete(deliveries).where(deliveries.c.id == d["id"]))

    # ----------------------------------------------------------------- shares

    def _has_share(self, chat_id: int, owner: str, pid: int | None) -> bool:
        cond = group_shares.c.position_id.is_(None) if pid is None else group_shares.c.position_id == pid
        q = select(group_shares.c.id).where(group_shares.c.chat_id == chat_id, group_shares.c.owner == owner, cond)
        return self.db.execute(q).first() is not None

    def share(self, chat_id: int, owner: str, pid: int | None, now: datetime) -> bool:
        """Let the group see ``pid`` (None: every position of ``owner``); False when it already did."""
        if self._has_share(chat_id, owner, pid):
            return False
        self.db.execute(insert(group_shares).values(chat_id=chat_id, owner=owner, position_id=pid, created_at=now))
        return True

    def unshare(self, chat_id: int, owner: str) -> int:
        """Stop sharing anything of ``owner`` with the group; how many shares went."""
        result = self.db.execute(delete(group_shares).where(group_shares.c.chat_id == chat_id,
                                                            group_shares.c.owner == owner))
        return int(result.rowcount or 0)

    def member_gone(self, chat_id: int, owner: str) -> int:
        """``owner`` left the group (or was removed): their shares end, and pushes of their positions not yet
        sent there are dropped (a margin call with their debt must not reach a group they are no longer in)."""
        gone = self.unshare(chat_id, owner)
        theirs = select(outbox.c.id).where(outbox.c.account == owner)
        self.db.execute(update(deliveries).where(deliveries.c.chat_id == chat_id,
                                                 deliveries.c.status.in_(("pending", "held")),
                                                 deliveries.c.outbox_id.in_(theirs))
                        .values(status="dropped", error="the owner left the group"))
        return gone

    def pushed_here(self, chat_id: int, pid: int) -> bool:
        """Whether a push about position ``pid`` was delivered to (or is due in) ``chat_id``."""
        q = (select(deliveries.c.id).join(outbox, outbox.c.id == deliveries.c.outbox_id)
             .where(deliveries.c.chat_id == chat_id, outbox.c.position == pid,
                    deliveries.c.status.in_(("sent", "pending", "held"))).limit(1))
        return self.db.execute(q).first() is not None

    def shares_in(self, chat_id: int) -> list[tuple[str, int | None]]:
        q = select(group_shares.c.owner, group_shares.c.position_id).where(group_shares.c.chat_id == chat_id)
        return [(r[0], r[1]) for r in self.db.execute(q.order_by(group_shares.c.id))]

    def groups_watching(self, owner: str, pid: int | None, inactive_too: bool = False) -> list[int]:
        """Active (or all) monitoring groups that see this position (shared alone, or all of the owner's)."""
        which: ColumnElement[bool] = group_shares.c.position_id.is_(None)
        if pid is not None:
            which = or_(which, group_shares.c.position_id == pid)
        q = (select(group_shares.c.chat_id).join(chats, chats.c.chat_id == group_shares.c.chat_id)
             .where(group_shares.c.owner == owner, which, chats.c.monitoring.is_(True)))
        if not inactive_too:
            q = q.where(chats.c.active.is_(True))
        return sorted(set(self.db.execute(q).scalars()))

    # ----------------------------------------------------------------- deliveries

    def undispatched(self, limit: int = 500) -> list[tuple[int, Event]]:
        """Outbox rows not yet expanded into deliveries (``sent_at`` marks the hand-over)."""
        q = select(outbox).where(outbox.c.sent_at.is_(None)).order_by(outbox.c.urgency, outbox.c.id).limit(limit)
        return [(r["id"], event_from(r)) for r in self.db.execute(q).mappings()]

    def add_deliveries(self, outbox_id: int, chat_ids: Sequence[int], urgency: int, status: str = "pending") -> None:
        for chat_id in dict.fromkeys(chat_ids):
            self.db.execute(insert(deliveries).values(outbox_id=outbox_id, chat_id=chat_id, urgency=urgency,
                                                      status=status, attempts=0))

    def due(self, now: datetime, limit: int = 300, chat_id: int | None = None) -> list[Due]:
        """Pending deliveries whose time has come (of one chat, or all), most urgent first, then as written."""
        q = (select(deliveries.c.id, deliveries.c.chat_id, deliveries.c.urgency, deliveries.c.attempts,
                    outbox.c.at, outbox.c.type, outbox.c.account, outbox.c.position, outbox.c.data)
             .join(outbox, outbox.c.id == deliveries.c.outbox_id)
             .where(deliveries.c.status == "pending",
                    or_(deliveries.c.next_attempt_at.is_(None), deliveries.c.next_attempt_at <= now))
             .order_by(deliveries.c.urgency, deliveries.c.id).limit(limit))
        if chat_id is not None:
            q = q.where(deliveries.c.chat_id == chat_id)
        return [Due(r["id"], r["chat_id"], r["urgency"], r["attempts"], event_from(r))
                for r in self.db.execute(q).mappings()]

    def delivered(self, ids: Sequence[int], message_id: int, now: datetime) -> None:
        self.db.execute(update(deliveries).where(deliveries.c.id.in_(ids), deliveries.c.status == "pending")
                        .values(status="sent", sent_at=now, message_id=message_id,
                                attempts=deliveries.c.attempts + 1, error=None))

    def retry(self, ids: Sequence[int], at: datetime, error: str) -> None:
        self.db.execute(update(deliveries).where(deliveries.c.id.in_(ids))
                        .values(attempts=deliveries.c.attempts + 1, next_attempt_at=at, error=error[:250]))

    def retry_now(self, now: datetime) -> int:
        """Telegram is reachable again: every pending delivery waiting out a back-off is due now, its failures
        forgotten (an outage must not count towards dropping it). Returns how many."""
        return int(self.db.execute(update(deliveries).where(deliveries.c.status == "pending",
                                                             deliveries.c.next_attempt_at > now)
                                   .values(next_attempt_at=now, attempts=0)).rowcount or 0)

    def drop(self, ids: Sequence[int], error: str) -> None:
        self.db.execute(update(deliveries).where(deliveries.c.id.in_(ids), deliveries.c.status == "pending")
                        .values(status="dropped", error=error[:250]))

    def drop_chat(self, chat_id: int, error: str) -> None:
        self.db.execute(update(deliveries).where(deliveries.c.chat_id == chat_id, deliveries.c.status == "pending")
                        .values(status="dropped", error=error[:250]))

    def hold_chat(self, chat_id: int, error: str) -> None:
        """The chat refuses the bot: its pending critical pushes are held for when it returns, the rest dropped."""
        q = (select(deliveries.c.id).join(outbox, outbox.c.id == deliveries.c.outbox_id)
             .where(deliveries.c.chat_id == chat_id, deliveries.c.status == "pending",
                    outbox.c.type.in_(sorted(CRITICAL))))
        ids = list(self.db.execute(q).scalars())
        if ids:
            self.db.execute(update(deliveries).where(deliveries.c.id.in_(ids)).values(status="held", error=error[:250]))
        self.drop_chat(chat_id, error)

    def delivery_rows(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self.db.execute(select(deliveries).order_by(deliveries.c.id)).mappings()]

    # ----------------------------------------------------------------- flags (scheduler_lock rows, no migration)

    def flag(self, name: str) -> datetime | None:
        """When the flag ``name`` was raised, or None."""
        q = select(scheduler_lock.c.expires_at).where(scheduler_lock.c.name == name, scheduler_lock.c.holder == FLAG)
        return self.db.execute(q).scalar_one_or_none()

    def set_flag(self, name: str, at: datetime) -> None:
        self.clear_flag(name)
        self.db.execute(insert(scheduler_lock).values(name=name, holder=FLAG, expires_at=at))

    def clear_flag(self, name: str) -> None:
        self.db.execute(delete(scheduler_lock).where(scheduler_lock.c.name == name, scheduler_lock.c.holder == FLAG))

    # ----------------------------------------------------------------- price ticks

    def last_ticks(self, assets: Iterable[str]) -> dict[str, tuple[Decimal, datetime]]:
        """The newest stored price of each asset (one indexed lookup per asset)."""
        newest: dict[str, tuple[Decimal, datetime]] = {}
        for asset in assets:
            q = (select(price_ticks.c.price, price_ticks.c.at).where(price_ticks.c.asset == asset)
                 .order_by(price_ticks.c.at.desc(), price_ticks.c.id.desc()).limit(1))
            row = self.db.execute(q).first()
            if row is not None:
                newest[asset] = (row[0], row[1])
        return newest

    def record_tick(self, asset: str, price: Decimal, at: datetime, source: str,
                    last: tuple[Decimal, datetime] | None) -> bool:
        """Store an accepted price, throttled (one a minute per asset, or a jump); True when stored."""
        if last is not None:
            moved = abs(price - last[0]) / last[0] if last[0] else Decimal(1)
            if at - last[1] < TICK_EVERY and moved <= TICK_JUMP:
                return False
        self.db.execute(insert(price_ticks).values(asset=asset, at=at, price=price, source=source))
        return True

    # ----------------------------------------------------------------- preferences

    def digest_owners(self, hour: int, day: str) -> list[str]:
        q = select(account_prefs.c.owner).where(
            account_prefs.c.daily_digest.is_(True), account_prefs.c.digest_hour <= hour,
            or_(account_prefs.c.last_digest_day.is_(None), account_prefs.c.last_digest_day < day))
        return list(self.db.execute(q).scalars())

    def digest_sent(self, owner: str, day: str) -> None:
        self.db.execute(update(account_prefs).where(account_prefs.c.owner == owner).values(last_digest_day=day))

    def rate_watchers(self, market: str | None = None) -> list[str]:
        """Borrowers who opted in to rate changes; with ``market``, only those owing debt that follows it."""
        q = select(account_prefs.c.owner).where(account_prefs.c.rate_changes.is_(True))
        if market is not None:
            owing = select(positions.c.owner).where(positions.c.rate_key == market, positions.c.status.in_(OWES))
            q = q.where(account_prefs.c.owner.in_(owing))
        return list(self.db.execute(q.order_by(account_prefs.c.owner)).scalars())

    def prefs(self, owner: str) -> dict[str, Any]:
        """The borrower's push preferences (the table's defaults when they never set any)."""
        row = self.db.execute(select(account_prefs).where(account_prefs.c.owner == owner)).mappings().first()
        if row is not None:
            return dict(row)
        return {"owner": owner, "rate_changes": False, "daily_digest": False, "digest_hour": 8,
                "last_digest_day": None}

    def set_prefs(self, owner: str, **values: Any) -> None:
        if self.db.execute(select(account_prefs.c.owner).where(account_prefs.c.owner == owner)).first() is None:
            defaults = {"rate_changes": False, "daily_digest": False, "digest_hour": 8}
            self.db.execute(insert(account_prefs).values(owner=owner, **{**defaults, **values}))
        else:
            self.db.execute(update(account_prefs).where(account_prefs.c.owner == owner).values(**values))
