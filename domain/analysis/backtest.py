"""Backtests: replay one Flexible position over a price history through the real engine.

A fresh ``Desk`` on a ``MemoryBook`` opens the position with ``borrow`` at the first instant, then at
every price point and every HH:00 in between it runs the tick (``domain.watch.tick``) exactly as the live
desk does (warnings, margin calls with hourly reminders, liquidation with the 2% fee and shortfall debt).
If the position survives to the end it is closed there with ``close`` (the borrower tops up Spot with
the interest), so "returned" is always what the engine handed back.

Choices a reader should know:

* A row's price holds from its timestamp until the next row (as in ``loandesk simulate``): for candle files
  that is the *close* of the bar stamped with the bar's open time, so events are reported at the bar's hour.
* Every price of the file is treated as confirmed (``confirmed = prices``): a close is a print seen on the
  exchange, so the "a >15% jump must be seen twice" rule, which guards against one bad tick of a live feed,
  does not hold back a liquidation here.
* ``first_warning`` / ``first_margin_call`` / ``liquidation`` are the first instants the LTV reached each
  level, taken from the engine's events. Levels nest: a jump straight past 85% to a liquidation is also the
  first margin call (the engine liquidates without sending one).
* ``apr`` sets a manual flexible rate for the whole run; without it the loan asset's rate model runs as on the
  desk (with this position as the only borrower).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from domain.book import MemoryBook
from domain.checks import ledger_problems
from domain.desk import Desk
from domain.errors import Rejected
from domain.inputs import iso
from domain.loans.borrow import borrow
from domain.loans.common import BorrowRequest
from domain.loans.servicing import close
from domain.markets import QUOTE, Catalog, CatalogError, Thresholds
from domain.money import ONE, ZERO, fmt, fmt_ratio, pct, round_down, round_up
from domain.positions import Status
from domain.prices import PriceSeries
from domain.rates import hours_between
from domain.watch.tick import tick

BORROWER = "backtest"
PRICE_PLACES = 8  # scaled prices are cut to 8 decimals, like the exchange prints they stand for
PricePath = PriceSeries | Sequence[tuple[datetime, Decimal]]


class BacktestError(ValueError):
    """The backtest cannot run as asked (unknown asset, no prices in the window, a borrow the desk refuses)."""


@dataclass(frozen=True)
class Mark:
    """An instant of the replay: when, the watched asset's price, and the LTV."""

    time: datetime
    price: Decimal
    ltv: Decimal


@dataclass(frozen=True)
class Point:
    time: datetime
    price: Decimal  # the watched asset (the collateral, or the loan asset against stablecoin collateral)
    ltv: Decimal | None  # None once the position is closed or liquidated
    debt: Decimal
    margin_call_price: Decimal | None  # of the watched asset, at this instant's debt
    liquidation_price: Decimal | None


@dataclass
class BacktestResult:
    loan_asset: str
    loan_amount: Decimal
    collateral_asset: str
    collateral_amount: Decimal
    watched: str  # the asset whose price the series, marks and trigger prices are about
    apr: Decimal | None  # the manual APR, or None when the rate model ran
    start: Mark
    end: datetime
    thresholds: Thresholds
    warning_ltv: Decimal
    first_warning: Mark | None = None
    first_margin_call: Mark | None = None
    liquidation: Mark | None = None
    max_ltv: Mark | None = None
    margin_call_alerts: int = 0  # margin calls plus hourly reminders the borrower would have received
    outcome: str = "survived"  # survived | liquidated | liquidated_with_shortfall
    interest: Decimal = ZERO  # interest accrued until the position was closed or liquidated
    returned: dict[str, Decimal] = field(default_factory=dict)  # collateral handed back to the borrower
    returned_value: Decimal = ZERO  # in the quote asset, at the price of that instant
    shortfall: Decimal = ZERO  # debt still owed after a liquidation
    events: list[tuple[datetime, str, Decimal | None]] = field(default_factory=list)
    points: list[Point] = field(default_factory=list)
    ledger_balanced: bool = True


def _series(path: PricePath) -> PriceSeries:
    if isinstance(path, PriceSeries):
        return path
    points = sorted(path, key=lambda p: p[0])
    return PriceSeries([t for t, _ in points], [v for _, v in points])


def scale_to(series: PriceSeries, today: Decimal) -> PriceSeries:
    """The same relative path started from ``today``'s price: ``today × p_k / p_0`` at the same instants."""
    if not series.values:
        return PriceSeries()
    base = series.values[0]
    return PriceSeries(list(series.times), [round_down(today * v / base, PRICE_PLACES) for v in series.values])


def backtest(catalog: Catalog, loan_amount: Decimal, loan_asset: str, collateral_amount: Decimal,
             collateral_asset: str, prices: Mapping[str, PricePath], apr: Decimal | None = None,
             start: datetime | None = None, end: datetime | None = None) -> BacktestResult:
    """Replay a flexible loan of ``loan_amount`` against ``collateral_amount`` over ``prices`` (asset → path;
    stablecoins without a path are worth 1) from ``start`` to ``end`` (default: the whole path)."""
    if loan_asset not in catalog.loans:
        raise BacktestError(f"{loan_asset} cannot be borrowed (borrowable: {', '.join(catalog.loans)})")
    if collateral_asset not in catalog.collateral:
        raise BacktestError(f"{collateral_asset} is not accepted as collateral "
                            f"(accepted: {', '.join(catalog.collateral)})")
    if loan_asset == collateral_asset:
        raise BacktestError("the collateral asset must differ from the loan asset")
    if apr is not None:
        try:
            catalog = catalog.with_overrides({"loan": {loan_asset: {"rate_model": "manual",
                                                                    "flexible_apr": str(apr)}}})
        except CatalogError as exc:
            raise BacktestError(f"--apr {apr}: {exc}") from exc
    series: dict[str, PriceSeries] = {}
    for asset in (collateral_asset, loan_asset):
        if asset in prices:
            series[asset] = _series(prices[asset])
        elif asset != QUOTE and not catalog.is_stable(asset):
            raise BacktestError(f"no prices for {asset}")
    if not series:
        raise BacktestError("at least one of the two assets needs a price history")
    watched = collateral_asset if collateral_asset in series else loan_asset
    first = max(s.times[0] for s in series.values() if s.times)
    last = min(s.times[-1] for s in series.values() if s.times)
    if start is not None and end is not None and end < start:
        raise BacktestError(f"the end {iso(end)} is before the start {iso(start)}")
    start = first if start is None else start
    end = last if end is None else end
    instants = sorted({t for s in series.values() for t in s.times if start <= t <= end})
    if not instants or any(s.at(instants[0]) is None for s in series.values()):
        raise BacktestError(f"no prices between {iso(start)} and {iso(end)} "
                            f"(the file covers {iso(first)} to {iso(last)})")
    steps = sorted(set(instants) | set(hours_between(instants[0], instants[-1])))
    return _Replay(catalog, series, watched, loan_asset, collateral_asset).run(
        loan_amount, collateral_amount, apr, steps)


class _Replay:
    def __init__(self, catalog: Catalog, series: Mapping[str, PriceSeries], watched: str, loan: str,
                 coll: str) -> None:
        self.catalog, self.series, self.watched, self.loan, self.coll = catalog, series, watched, loan, coll
        self.book = MemoryBook()
        self.desk = Desk(catalog, self.book)

    def prices(self, t: datetime) -> dict[str, Decimal]:
        out = {QUOTE: ONE, self.loan: ONE, self.coll: ONE}
        for asset, s in self.series.items():
            v = s.at(t)
            assert v is not None
            out[asset] = v
        return out

    def run(self, amount: Decimal, collateral: Decimal, apr: Decimal | None,
            steps: list[datetime]) -> BacktestResult:
        desk, t0 = self.desk, steps[0]
        p0 = self.prices(t0)
        try:
            desk.deposit(BORROWER, self.coll, collateral, t0)
            position, _ = borrow(desk, BorrowRequest(BORROWER, self.loan, amount,
                                                                     {self.coll: collateral}), p0, t0)
        except Rejected as exc:
            raise BacktestError(f"the desk refuses this loan at {iso(t0)}: {exc.message}") from exc
        th = desk.thresholds(position)
        r = BacktestResult(self.loan, amount, self.coll, collateral, self.watched, apr,
                           Mark(t0, p0[self.watched], desk.ltv(position, p0, t0)), steps[-1], th,
                           desk.warning_level(position))
        for t in steps:
            prices = self.prices(t)
            if not position.active:
                r.points.append(Point(t, prices[self.watched], None, ZERO, None, None))
                continue
            desk.accrue(t)
            debt = desk.debt(position, t)
            value = desk.ltv(position, prices, t)
            mark = Mark(t, prices[self.watched], value)
            r.points.append(Point(t, mark.price, value, debt, self._trigger(value, mark.price, th.margin_call),
                                  self._trigger(value, mark.price, th.liquidation)))
            if r.max_ltv is None or value > r.max_ltv.ltv:
                r.max_ltv = mark
            for e in tick(desk, prices, prices, t):
                r.events.append((t, e.type, value if e.type != "shortfall" else None))
                if e.type in ("margin_call", "margin_call_reminder"):
                    r.margin_call_alerts += 1
                if e.type == "warning" and r.first_warning is None:
                    r.first_warning = mark
                if e.type == "margin_call" and r.first_margin_call is None:
                    r.first_margin_call = mark
                if e.type == "liquidated":
                    r.liquidation = mark
            if r.liquidation is not None:
                self._liquidated(r, position.status, prices, debt, t)
        if position.active:
            self._close(r, position.id, steps[-1])
        r.first_margin_call = r.first_margin_call or r.liquidation
        r.first_warning = r.first_warning or r.first_margin_call
        r.ledger_balanced = not ledger_problems(desk, self.book.balances, self.book.shares,
                                                self.book.positions.values(), steps[-1])
        return r

    def _trigger(self, ltv_now: Decimal, price_now: Decimal, level: Decimal) -> Decimal | None:
        """The watched asset's price at ``level``: the LTV scales as 1/price for collateral, as price for debt."""
        if ltv_now == 0:
            return None
        if self.watched == self.coll:
            return price_now * ltv_now / level
        return price_now * level / ltv_now

    def _liquidated(self, r: BacktestResult, status: Status, prices: Mapping[str, Decimal], debt: Decimal,
                    t: datetime) -> None:
        places = self.catalog.precision(self.loan)
        r.interest = round_up(debt, places) - r.loan_amount
        got = self.desk.spot(BORROWER, self.coll)
        r.returned = {self.coll: got} if got > 0 else {}
        r.returned_value = got * prices[self.coll]
        r.outcome = "liquidated"
        if status is Status.LIQUIDATED_WITH_DEBT:
            r.outcome = "liquidated_with_shortfall"
            pos = self.book.positions[max(self.book.positions)]
            r.shortfall = round_up(self.desk.debt(pos, t), places)

    def _close(self, r: BacktestResult, pid: int, t: datetime) -> None:
        """Repay everything at the end, the borrower adding the interest to Spot first."""
        desk = self.desk
        desk.accrue(t)
        position = self.book.positions[pid]
        due = round_up(desk.debt(position, t), self.catalog.precision(self.loan))
        missing = due - desk.spot(BORROWER, self.loan)
        if missing > 0:
            desk.deposit(BORROWER, self.loan, missing, t)
        close(desk, BORROWER, pid, t)
        r.interest = due - r.loan_amount
        r.returned = {self.coll: desk.spot(BORROWER, self.coll)}
        r.returned_value = r.returned[self.coll] * self.prices(t)[self.coll]
        r.events.append((t, "closed", None))


# --------------------------------------------------------------------------- output


def _mark(m: Mark | None) -> dict[str, str] | None:
    if m is None:
        return None
    return {"time": iso(m.time), "price": fmt(m.price), "ltv": fmt_ratio(m.ltv), "ltv_pct": pct(m.ltv)}


def to_json(r: BacktestResult, series: bool = True) -> dict[str, Any]:
    """The result as JSON-ready values: decimals as strings, times ISO-8601 with Z."""
    quote_places = 2
    out: dict[str, Any] = {
        "loan": {"asset": r.loan_asset, "amount": fmt(r.loan_amount)},
        "collateral": {"asset": r.collateral_asset, "amount": fmt(r.collateral_amount)},
        "price_of": r.watched,
        "apr": fmt(r.apr) if r.apr is not None else None,  # None: the loan asset's rate model ran
        "rate": "manual" if r.apr is not None else "model",
        "from": iso(r.start.time), "to": iso(r.end),
        "thresholds": {"initial": fmt(r.thresholds.initial), "warning": fmt(r.warning_ltv),
                       "margin_call": fmt(r.thresholds.margin_call), "liquidation": fmt(r.thresholds.liquidation)},
        "start": _mark(r.start),
        "first_warning": _mark(r.first_warning),
        "first_margin_call": _mark(r.first_margin_call),
        "liquidation": _mark(r.liquidation),
        "max_ltv": _mark(r.max_ltv),
        "margin_call_alerts": r.margin_call_alerts,
        "outcome": r.outcome,
        "interest": fmt(r.interest),
        "returned": {a: fmt(v) for a, v in r.returned.items()},
        "returned_value": fmt(round_down(r.returned_value, quote_places)),
        "shortfall": fmt(r.shortfall),
        "ledger_balanced": r.ledger_balanced,
        "events": [{"time": iso(t), "type": kind, **({"ltv": fmt_ratio(v)} if v is not None else {})}
                   for t, kind, v in r.events],
    }
    if series:
        out["series"] = [{"time": iso(p.time), "price": fmt(p.price),
                          "ltv": fmt_ratio(p.ltv) if p.ltv is not None else None} for p in r.points]
    return out


def _when(t: datetime) -> str:
    return t.strftime("%Y-%m-%d %H:%M UTC")


def _price(x: Decimal) -> str:
    """A price as people read it: cents above 1, six significant digits below."""
    places = max(2, 5 - x.adjusted()) if x > 0 else 2
    return fmt(x.quantize(Decimal(1).scaleb(-min(places, PRICE_PLACES))))


def describe(r: BacktestResult) -> list[str]:
    """Plain-text lines for a person. Levels crossed in the same step (a candle that jumps past several) say
    so, and the margin-call count says why it is zero when the LTV went straight to liquidation."""
    def mark(m: Mark | None) -> str:
        if m is None:
            return "never"
        return f"{_when(m.time)} at {r.watched} {_price(m.price)} (LTV {pct(m.ltv)})"

    def same(m: Mark | None, later: Mark | None, what: str) -> str:
        return f"  — the same step as the {what}" if m is not None and later is not None and m.time == later.time \
            else ""

    warned, called, gone = r.first_warning, r.first_margin_call, r.liquidation
    th = r.thresholds
    alerts = f"Margin-call alerts sent: {r.margin_call_alerts}"
    if r.margin_call_alerts == 0 and called is not None and gone is not None and called.time == gone.time:
        alerts += " (the LTV went past the margin call straight to liquidation: no time for an alert)"
    apr = f"{pct(r.apr)} APR" if r.apr is not None else "the desk's rate model"
    lines = [f"Backtest: {fmt(r.loan_amount)} {r.loan_asset} against {fmt(r.collateral_amount)} "
             f"{r.collateral_asset}, {_when(r.start.time)} → {_when(r.end)}, {apr}",
             f"Start:             {mark(r.start)}",
             f"First warning:     {mark(warned)}  (≥ {pct(r.warning_ltv)})" + same(warned, called, "margin call"),
             f"First margin call: {mark(called)}  (≥ {pct(th.margin_call)})" + same(called, gone, "liquidation"),
             f"Liquidation:       {mark(gone)}  (≥ {pct(th.liquidation)})",
             f"Maximum LTV:       {mark(r.max_ltv)}",
             alerts,
             f"Interest:          {fmt(round_up(r.interest, 8))} {r.loan_asset}"]
    returned = ", ".join(f"{fmt(v)} {a}" for a, v in r.returned.items()) or "nothing"
    if r.outcome == "survived":
        lines.append(f"Survived. Repaid at the end; returned {returned} "
                     f"(worth {fmt(round_down(r.returned_value, 2))} {QUOTE}).")
    else:
        lines.append(f"Liquidated. Returned {returned} (worth {fmt(round_down(r.returned_value, 2))} {QUOTE}).")
    if r.shortfall > 0:
        lines.append(f"Shortfall: {fmt(r.shortfall)} {r.loan_asset} still owed.")
    return lines
