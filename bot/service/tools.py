"""The borrower's protection and risk tools as use cases: one unit of work each, around the domain.

Settings (``/protect``, ``/alert price``) commit at once, like ``/alert ltv``; the rules then act from the
scheduler (``domain.protection.run_protection``, ``domain.alerts.run_price_alerts``). Tools (``/stress``,
``/estimate``, ``/backtest``, ``/chart``) only read. VIP term sheets are read here; issuing one is an operator
preview confirmed through ``LoanService`` (kind ``vip``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from bot.history.events import backtest_event
from bot.service.loans import LoanService
from bot.service.store import UnitOfWork
from bot.service.tracking import TrackingService
from bot.service.views import PositionView, position_view
from domain.analysis import estimate as estimates
from domain.analysis import stress as stresses
from domain.analysis.backtest import BacktestError, BacktestResult
from domain.desk import Desk
from domain.errors import Rejected
from domain.markets import QUOTE
from domain.positions import PriceAlert, ProtectionRule
from domain.prices import Prices
from domain.risk import Distance
from domain.termsheet import TermSheet
from domain.tracking import watch as tracked_watch
from domain.tracking.position import Tracked
from domain.watch import alerts, protection
from storage.monitoring import Monitoring
from storage.protection import price_history

MIN_TICKS = 2  # a chart needs at least this many prices
CHART_SPAN = timedelta(hours=1)  # a younger position's chart shows the last hour (the time before it opened too)


@dataclass(frozen=True)
class AlertsOverview:
    """Everything ``/alerts`` lists for one borrower."""

    warning: Decimal | None  # the borrower's own warning level (None: the default)
    default_warning: Decimal
    price_alerts: list[tuple[PriceAlert, Distance | None]]
    rules: list[ProtectionRule]
    now: datetime


@dataclass(frozen=True)
class ChartData:
    """A position now, and the recorded prices of its assets since it opened."""

    view: PositionView
    watched: str
    warning: Decimal
    ratios: dict[str, Decimal]
    history: dict[str, list[tuple[datetime, Decimal]]]
    current: dict[str, Decimal]  # today's prices, for assets without recorded history
    opened: datetime | None = None
    now: datetime | None = None
    candles: int = 0  # of the watched asset's prices, how many came from the exchange's candles

    @property
    def ticks(self) -> int:
        return len(self.history.get(self.watched, []))

    @property
    def start(self) -> datetime | None:
        """Where the chart begins: when the position opened, or ``CHART_SPAN`` before now if that is earlier."""
        if self.opened is None or self.now is None:
            return self.opened
        return min(self.opened, self.now - CHART_SPAN)

    def assets(self) -> list[str]:
        return list(self.history)

    def with_candles(self, candles: Mapping[str, list[tuple[datetime, Decimal]]]) -> ChartData:
        """The exchange's candles for the time before each asset's first recorded price (all of the chart when
        none is recorded), then the recorded prices, then today's price of the watched asset now."""
        history: dict[str, list[tuple[datetime, Decimal]]] = {}
        from_exchange = 0
        for asset in dict.fromkeys([*self.history, *candles]):
            recorded = self.history.get(asset, [])
            first = recorded[0][0] if recorded else None
            before = [(t, p) for t, p in candles.get(asset, []) if first is None or t < first]
            history[asset] = before + recorded
            if asset == self.watched:
                from_exchange = len(before)
        series = history.setdefault(self.watched, [])
        price = self.current.get(self.watched)
        if self.now is not None and price is not None and series and series[-1][0] < self.now:
            series.append((self.now, price))
        return replace(self, history=history, candles=from_exchange)


class ToolService:
    def __init__(self, loans: LoanService, tracking: TrackingService | None = None) -> None:
        self.loans = loans
        self.tracking = tracking  # loans held elsewhere: /stress, /backtest and /chart work on them too
        self.catalog = loans.catalog
        self.store = loans.store

    def _desk(self, uow: UnitOfWork) -> Desk:
        return self.loans._desk(uow)

    # ----------------------------------------------------------------- settings

    def prefs(self, owner: str) -> dict[str, Any]:
        """Opt-in pushes (``account_prefs``): rate changes, and the daily digest with its UTC hour."""
        with self.store.unit_of_work(read_only=True) as uow:
            return Monitoring(uow.session).prefs(owner)

    def set_prefs(self, owner: str, **values: Any) -> dict[str, Any]:
        with self.store.unit_of_work() as uow:
            m = Monitoring(uow.session)
            m.set_prefs(owner, **values)
            uow.commit()
            return m.prefs(owner)

    def protect(self, owner: str, pid: int, trigger: Decimal, target: Decimal,
                mode: str) -> ProtectionRule:
        now = self.loans.clock()
        if self.tracking is not None and self.tracking.one(owner, pid) is not None:
            raise Rejected("held_elsewhere", f"#{pid} is held elsewhere: auto-protection moves money, and loandesk "
                                             "never moves money at another lender. /alert price warns you instead")
        with self.store.unit_of_work() as uow:
            rule = protection.set_protection(self._desk(uow), owner, pid, trigger, target, mode, now)
            uow.commit()
        return rule

    def unprotect(self, owner: str, pid: int) -> bool:
        with self.store.unit_of_work() as uow:
            removed = protection.remove_protection(self._desk(uow), owner, pid)
            uow.commit()
        return removed

    def alert_price(self, owner: str, pid: int, distance: Decimal, prices: Prices) -> tuple[
            PriceAlert, Distance | None]:
        now = self.loans.clock()
        held = self.tracking.one(owner, pid) if self.tracking is not None else None
        if held is not None:  # a loan held elsewhere: the same alert, judged by its own watch step
            if not Decimal(0) < distance <= alerts.MAX_DISTANCE:
                raise Rejected("bad_distance", "the distance must be above 0% and at most 90%")
            alert = PriceAlert(pid, owner, distance)
            with self.store.unit_of_work() as uow:
                uow.book.save_price_alert(alert)
                uow.commit()
            return alert, _held_distance(held, prices, now)
        with self.store.unit_of_work() as uow:
            desk = self._desk(uow)
            alert = alerts.set_price_alert(desk, owner, pid, distance)
            uow.commit()
            return alert, _distance(desk, pid, prices, now)

    def unalert_price(self, owner: str, pid: int) -> bool:
        if self.tracking is not None and self.tracking.one(owner, pid) is not None:
            with self.store.unit_of_work() as uow:
                found = any(a.position == pid for a in uow.book.price_alerts(owner))
                uow.book.delete_price_alert(pid)
                uow.commit()
            return found
        with self.store.unit_of_work() as uow:
            removed = alerts.remove_price_alert(self._desk(uow), owner, pid)
            uow.commit()
        return removed

    def overview(self, owner: str, prices: Prices) -> AlertsOverview:
        now = self.loans.clock()
        with self.store.unit_of_work(read_only=True) as uow:
            desk = self._desk(uow)
            held = {t.id: t for t in self.tracking.tracked(owner)} if self.tracking is not None else {}
            found = [(a, _held_distance(held[a.position], prices, now) if a.position in held
                      else _distance(desk, a.position, prices, now)) for a in uow.book.price_alerts(owner)]
            return AlertsOverview(uow.book.account(owner).warning_ltv,
                                  self.catalog.products["flexible"].warning_ltv, found,
                                  uow.book.protection_rules(owner), now)

    # ----------------------------------------------------------------- tools

    def stress(self, owner: str, pid: int, moves: dict[str, Decimal], prices: Prices) -> stresses.StressResult:
        """``moves`` keyed by asset; the key ``*`` means every collateral asset of the position."""
        if self.tracking is not None and (held := self.tracking.stress(owner, pid, moves, prices)) is not None:
            return held  # a loan held elsewhere, at the lender's levels
        now = self.loans.clock()
        with self.store.unit_of_work(read_only=True) as uow:
            desk = self._desk(uow)
            p = desk.own(owner, pid)
            if not p.active:
                raise Rejected("position_not_open", f"#{pid} is {p.status.value.replace('_', ' ')}")
            if "*" in moves:
                moves = {a: moves["*"] for a in p.collateral_assets}
            return stresses.stress(desk, p, moves, prices, now)

    def estimate(self, amount: Decimal, asset: str, days: int) -> estimates.Estimate:
        apr = self.loans.apr(asset) if asset in self.catalog.loans else None
        return estimates.estimate(self.catalog, amount, asset, days, apr, self.loans.clock())

    def backtest(self, owner: str, pid: int, event: str, prices: Prices) -> BacktestResult:
        """The position's debt and collateral now, through a named historical crash at the current APR."""
        held = self.tracking.position_view(owner, pid, prices) if self.tracking is not None else None
        view = held or self.loans.position(owner, pid, prices)
        if view.status not in ("open", "overdue"):
            raise Rejected("position_not_open", f"#{pid} is {view.status.replace('_', ' ')}")
        coll = view.single_collateral
        if coll is None:
            raise Rejected("single_collateral_only", f"backtests replay one collateral asset; #{pid} holds "
                                                     f"{', '.join(view.collateral)}")
        try:
            return backtest_event(self.catalog, view.debt, view.loan_asset, view.collateral[coll], coll, event,
                                  prices, apr=view.apr)
        except BacktestError as exc:
            raise Rejected("backtest", str(exc)) from None

    def chart(self, owner: str, pid: int, prices: Prices) -> ChartData:
        held = self.tracking.position_view(owner, pid, prices) if self.tracking is not None else None
        if held is not None and self.tracking is not None:  # a loan held elsewhere: the same chart, its levels
            t = self.tracking.one(owner, pid)
            assert t is not None
            with self.store.unit_of_work() as uow:
                assets = [a for a in held.collateral if a != QUOTE]
                if held.loan_asset != QUOTE and not self.catalog.is_stable(held.loan_asset):
                    assets.append(held.loan_asset)
                watched = max(held.collateral, key=lambda a: held.collateral[a] * prices.get(a, Decimal(0)),
                              default=held.loan_asset)
                history = price_history(uow.session.connection(), assets, t.opened_at)
            return ChartData(held, watched, held.thresholds.warning, {a: Decimal(1) for a in held.collateral},
                             history, dict(prices))
        now = self.loans.clock()
        with self.store.unit_of_work(read_only=True) as uow:
            desk = self._desk(uow)
            p = desk.own(owner, pid)
            view = position_view(desk, p, prices, now)
            assets = [a for a in view.collateral if a != QUOTE]
            if p.loan_asset != QUOTE and not self.catalog.is_stable(p.loan_asset):
                assets.append(p.loan_asset)
            watched = max(view.collateral, key=lambda a: view.collateral[a] * prices.get(a, Decimal(0)),
                          default=p.loan_asset)
            if self.catalog.is_stable(watched) or watched == QUOTE:
                watched = p.loan_asset
            start = min(p.opened_at, now - CHART_SPAN)
            history = price_history(uow.session.connection(), assets, start)
            return ChartData(view, watched, desk.warning_level(p), {a: desk.ratio(p, a) for a in view.collateral},
                             history, dict(prices), p.opened_at, now)

    def term_sheet(self, owner: str) -> TermSheet | None:
        with self.store.unit_of_work(read_only=True) as uow:
            return uow.domain_book.term_sheet(owner)


def _held_distance(t: Tracked, prices: Prices, now: datetime) -> Distance | None:
    return tracked_watch.distance_to_margin_call(t, {QUOTE: Decimal(1), **prices}, now)


def _distance(desk: Desk, pid: int, prices: Prices, now: datetime) -> Distance | None:
    p = desk.book.get_position(pid)
    if p is None or not p.active:
        return None
    try:
        return alerts.distance_to_margin_call(desk, p, prices, now)
    except Rejected:
        return None

