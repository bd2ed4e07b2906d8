"""THE tick: what time and prices do to the book, in one order, for the live bot and ``loandesk simulate`` alike.

    accrue → fixed-loan expiries → auto-protection → price alerts → risk sweep

``Desk.accrue`` applies every missed HH:00 (interest, Earn, the rate model) from the stored markers;
``process_fixed`` runs reminders, expiry options, late fees and overdue liquidations; auto-protection moves the
borrower's own funds towards safety before anything can be liquidated; price alerts fire and re-arm; the sweep
warns, margin-calls and liquidates (at confirmed prices, behind the circuit breaker). ``prices`` are the newest
prices (warnings, margin calls, protection, alerts); ``confirmed`` are the ones that may liquidate.

Tracked positions (loans held elsewhere, ``domain.tracking``) are judged last, on the same prices, when the
caller passes their book: warnings, margin calls and "liquidation near" at the lender's own levels, never a
liquidation and never a ledger entry. Their events go to the outbox in the tick's (last part's) commit.

The live bot does a tick in parts (``Tick``), each in its own transaction, so that a crash's thousand liquidations
never hold the write lock for seconds: the first part runs the steps up to the sweep and judges the sweep's whole
wave; the parts act on it a few positions at a time; the last judges the tracked positions. ``loandesk simulate``
and the backtests do a tick at once (``tick``); both give the same events in the same order.

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
from domain.watch.sweep import Enough, Wave

Step = Callable[[Desk, Prices, datetime], list[Event]]
Shield = Callable[[Step, Desk, Prices, datetime], list[Event]]


def unshielded(step: Step, desk: Desk, prices: Prices, now: datetime) -> list[Event]:
    return step(desk, prices, now)


def tick(desk: Desk, prices: Prices, confirmed: Prices, now: datetime, *, corroborated: Collection[str] = (),
         shield: Shield = unshielded, tracked: TrackedBook | None = None) -> list[Event]:
    """One tick at ``now``, all at once; returns every event it emitted, in order."""
    return Tick(prices, confirmed, now, corroborated).part(desk, shield=shield, tracked=tracked)


class Tick:
    """One tick done in parts: ``part`` does the next part with the desk it is given, until ``done``.

    The first part runs the steps up to the sweep, judges the sweep's whole wave (the breaker decides on all of
    it) and acts on its first candidates; each further part acts on the next ones; the tracked positions are
    judged in the last. ``enough`` (see ``domain.watch.sweep.Wave``) ends a part; without it there is one part, the
    whole tick. Parts in separate transactions give the same events, in the same order, as one tick at once,
    except that a change made between two parts (a repayment) is seen by the later one."""

    def __init__(self, prices: Prices, confirmed: Prices, now: datetime, corroborated: Collection[str] = (),
                 enough: Enough | None = None) -> None:
        self.prices, self.confirmed, self.now = prices, confirmed, now
        self.corroborated, self.enough = corroborated, enough
        self.wave: Wave | None = None
        self.parts = 0

    @property
    def done(self) -> bool:
        return self.wave is not None and self.wave.done

    def part(self, desk: Desk, *, shield: Shield = unshielded, tracked: TrackedBook | None = None) -> list[Event]:
        events: list[Event] = []
        prices, now = self.prices, self.now
        if self.wave is None:
            events += desk.accrue(now)
            events += process_fixed(desk, prices, now, self.confirmed)
            events += shield(run_protection, desk, prices, now)
            events += shield(run_price_alerts, desk, prices, now)
            self.wave = Wave.survey(desk, prices, now, self.confirmed, corroborated=self.corroborated)
            events += self.wave.notices
        events += self.wave.part(desk, self.enough)
        self.parts += 1
        if self.wave.done and tracked is not None:
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
