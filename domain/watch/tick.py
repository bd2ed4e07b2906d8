"""THE tick: what time and prices do to the book, in one order, for the live bot and ``loandesk simulate`` alike.

    accrue → fixed-loan expiries → auto-protection → price alerts → risk sweep

``Desk.accrue`` applies every missed HH:00 (interest, Earn, the rate model) from the stored markers;
``process_fixed`` runs reminders, expiry options, late fees and overdue liquidations; auto-protection moves the
borrower's own funds towards safety before anything can be liquidated; price alerts fire and re-arm; the sweep
warns, margin-calls and liquidates (at confirmed prices, behind the circuit breaker). ``prices`` are the newest
prices (warnings, margin calls, protection, alerts); ``confirmed`` are the ones that may liquidate.

Tracked positions (loans held elsewhere, ``domain.tracking``) are judged last, on the same prices, when the
caller passes their book: warnings, margin calls and "liquidation near" at the lender's own levels, never a
liquidation and never a ledger entry. Their events join the desk's in the same outbox commit.

The two steps that act on the borrower's own rules run through ``shield``: the live bot passes one that runs a
step inside a savepoint and undoes it if it fails, so a broken rule never stops margin calls or liquidations; the
simulator runs them as they are.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from datetime import datetime, timedelta

from domain.desk import Desk
from domain.events import Event
from domain.loans.expiry import process_fixed
from domain.positions import PriceAlert
from domain.prices import Prices
from domain.tracking.watch import TrackedBook, WatchRules, watch_tracked
from domain.watch.alerts import run_price_alerts
from domain.watch.protection import run_protection
from domain.watch.sweep import sweep

Step = Callable[[Desk, Prices, datetime], list[Event]]
Shield = Callable[[Step, Desk, Prices, datetime], list[Event]]


def unshielded(step: Step, desk: Desk, prices: Prices, now: datetime) -> list[Event]:
    return step(desk, prices, now)


def tick(desk: Desk, prices: Prices, confirmed: Prices, now: datetime, *, corroborated: Collection[str] = (),
         shield: Shield = unshielded, tracked: TrackedBook | None = None) -> list[Event]:
    """One tick at ``now``; returns every event it emitted, in order."""
    events = desk.accrue(now)
    events += process_fixed(desk, prices, now, confirmed)
    events += shield(run_protection, desk, prices, now)
    events += shield(run_price_alerts, desk, prices, now)
    events += sweep(desk, prices, now, confirmed, corroborated=corroborated)
    if tracked is not None:
        events += shield(watch_step(tracked), desk, prices, now)
    return events


def watch_step(tracked: TrackedBook) -> Step:
    """The tracked positions' step, with the desk's re-arm gap, reminder interval and precisions."""
    def watch_tracked_positions(desk: Desk, prices: Prices, now: datetime) -> list[Event]:
        rules = WatchRules(desk.catalog.desk.rearm_gap, timedelta(minutes=desk.catalog.desk.margin_call_repeat_minutes),
                           desk.catalog.precision)
        def alerts() -> dict[int, PriceAlert]:
            return {a.position: a for a in desk.book.price_alerts()}

        return watch_tracked(tracked, prices, now, rules, lambda owner: desk.book.account(owner).warning_ltv,
                             desk.emit, alerts, desk.book.save_price_alert)
    return watch_tracked_positions
