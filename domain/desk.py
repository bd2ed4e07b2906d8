"""The desk: state access, valuation, money movement and interest catch-up shared by every rule.

``Desk`` wraps a catalog and a ``Book``. What borrowers do (``domain.loans``) and what time and prices do
(``domain.watch``) build on the helpers here. Every public operation first catches interest up to
``now`` from the stored markers, so a debt is exact whether or not the scheduler ran.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal

from domain import ledger
from domain.book import Book
from domain.errors import Rejected
from domain.events import Event
from domain.ledger import EntryBuilder
from domain.markets import QUOTE, Catalog, Thresholds
from domain.money import ONE, ZERO, decimals_of, exact, fmt, quantum, round_down
from domain.positions import Holding, Position, Product, Source
from domain.prices import Prices, price
from domain.rates import DAYS_PER_YEAR, HOURS_PER_YEAR, MarketState, RatePoint, floor_hour, hours_between
from domain.risk import Lot, ltv
from domain.termsheet import TermSheet, loan_asset_of

MODEL_APR_PLACES = 4


class Desk:
    def __init__(self, catalog: Catalog, book: Book) -> None:
        self.catalog = catalog
        self.book = book

    # ----------------------------------------------------------------- market state and interest

    def market(self, key: str, now: datetime) -> MarketState:
        """The running state of a debt index / Earn index, created at ``now`` if it is new."""
        state = self.book.market(key)
        if state is None:
            state = MarketState(key, accrued_until=floor_hour(now), earn_accrued_until=_midnight(now))
            loan = self.catalog.loans.get(key)
            if loan is not None:
                state.rates.append(RatePoint(floor_hour(now), loan.flexible_apr))
            self.book.save_market(state)
        return state

    def accrue(self, now: datetime) -> list[Event]:
        """Apply every HH:00 (and 00:00 for Earn) up to ``now`` that was not applied yet, in order."""
        events: list[Event] = []
        for asset in self.catalog.loans:
            events += self._accrue_debt(self.market(asset, now), now)
        for sheet in self.book.term_sheets():  # VIP debt: one index per (borrower, sheet version, asset)
            for asset in sheet.loan_assets:
                vip = self.book.market(sheet.rate_key(asset))
                if vip is not None:
                    if sheet.rate == "flexible" and asset in self.catalog.loans:
                        base = self.market(asset, now).rates
                        # A rate history only changes at its tail (set_rate), so length and last point tell
                        # whether the spread copy is stale; rebuilding on every action would cost O(history).
                        last = RatePoint(base[-1].effective_from, base[-1].apr + sheet.apr) if base else None
                        if len(vip.rates) != len(base) or (vip.rates[-1] if vip.rates else None) != last:
                            vip.rates = [RatePoint(r.effective_from, r.apr + sheet.apr) for r in base]
                    events += self._accrue_debt(vip, now)
        for asset in self.catalog.collateral:
            self._accrue_earn(self.market(asset, now), now)
        return events

    def _accrue_debt(self, state: MarketState, now: datetime) -> list[Event]:
        events: list[Event] = []
        assert state.accrued_until is not None
        hours = list(hours_between(state.accrued_until, now))
        if not hours:
            return events
        loan = self.catalog.loans.get(state.asset)
        for hour in hours:
            before = state.debt_index
            state.debt_index = before * (ONE + state.apr_at(hour) / HOURS_PER_YEAR)
            interest = exact(state.debt_shares * (state.debt_index - before))
            if interest:
                self.book.post(EntryBuilder(hour, "interest").move(
                    loan_asset_of(state.asset), interest, ledger.LOANS, ledger.INTEREST).build())
            state.accrued_until = hour
            if loan is not None and loan.rate_model.kind == "utilisation":
                apr = loan.rate_model.apr(state.borrowed() / loan.lending_cap).quantize(quantum(MODEL_APR_PLACES))
                if apr != state.apr_at(hour):
                    point = state.set_rate(apr, hour)
                    events.append(self.emit(Event(hour, "rate_changed", data={
                        "asset": state.asset, "apr": fmt(apr), "effective_from": point.effective_from,
                        "source": "utilisation"})))
        self.book.save_market(state)
        return events

    def _accrue_earn(self, state: MarketState, now: datetime) -> None:
        assert state.earn_accrued_until is not None
        coll = self.catalog.collateral.get(state.asset)
        apr = coll.earn_apr if coll else ZERO
        changed = False
        for hour in hours_between(state.earn_accrued_until, now):
            if hour.hour != 0:
                continue
            before = state.earn_index
            state.earn_index = before * (ONE + apr / DAYS_PER_YEAR)
            reward = exact(state.earn_shares * (state.earn_index - before))
            if reward:
                self.book.post(EntryBuilder(hour, "earn_reward").move(
                    state.asset, reward, ledger.EARN_REWARDS, ledger.EARN_POOL).build())
            state.earn_accrued_until = hour
            changed = True
        if changed:
            self.book.save_market(state)

    def borrowed(self, asset: str, now: datetime) -> Decimal:
        """Everything lent in ``asset`` at ``now``: flexible and fixed debt plus the debt of every VIP term sheet
        in that asset (each in its own index). Catches up first, so it is exact whichever path got here."""
        self.accrue(now)
        total = self.market(asset, now).borrowed()
        for sheet in self.book.term_sheets():
            vip = self.book.market(sheet.rate_key(asset)) if asset in sheet.loan_assets else None
            if vip is not None:
                total += vip.flexible_debt()
        return total

    def set_rate(self, asset: str, apr: Decimal, now: datetime) -> Event:
        """An operator's flexible APR for ``asset``, in force from the next HH:00."""
        if asset not in self.catalog.loans:
            raise Rejected("unknown_asset", f"{asset} is not a loan asset of this desk")
        if not ZERO <= apr <= Decimal(10):
            raise Rejected("bad_rate", "the APR must be between 0% and 1000%")
        self.accrue(now)
        state = self.market(asset, now)
        point = state.set_rate(apr, now)
        self.book.save_market(state)
        event = Event(now, "rate_changed", data={"asset": asset, "apr": fmt(apr),
                                                  "effective_from": point.effective_from, "source": "operator"})
        self.book.emit(event)
        return event

    # ----------------------------------------------------------------- valuation

    def debt_index(self, position: Position, now: datetime) -> Decimal:
        """The index of the position's debt, caught up to ``now`` (reads are exact without a scheduler)."""
        if not position.rate_key:
            return ONE
        state = self.market(position.rate_key, now)
        self._accrue_debt(state, now)
        return state.debt_index

    def debt(self, position: Position, now: datetime) -> Decimal:
        """What the borrower owes, exact to 18 decimals."""
        return exact(position.debt_shares * self.debt_index(position, now))

    def earn_index(self, asset: str, now: datetime) -> Decimal:
        state = self.market(asset, now)
        self._accrue_earn(state, now)
        return state.earn_index

    def holding_amount(self, asset: str, holding: Holding, now: datetime) -> Decimal:
        if holding.earn_shares == 0:
            return holding.spot
        return exact(holding.amount(self.earn_index(asset, now)))

    def collateral_amounts(self, position: Position, now: datetime) -> dict[str, Decimal]:
        return {a: self.holding_amount(a, h, now) for a, h in position.collateral.items() if not h.empty}

    def ratio(self, position: Position, asset: str) -> Decimal:
        if position.product is Product.FLEXIBLE:
            return ONE
        sheet = self.sheet_of(position)
        if sheet is not None and asset in sheet.collateral:
            return sheet.collateral[asset]
        return self.catalog.collateral[asset].ratio

    def sheet_of(self, position: Position) -> TermSheet | None:
        """The VIP term sheet (the version it was opened under) governing ``position``."""
        if position.product is not Product.VIP or position.vip_sheet is None:
            return None
        return self.book.term_sheet(position.owner, position.vip_sheet)

    def lots(self, position: Position, prices: Prices, now: datetime,
             amounts: Mapping[str, Decimal] | None = None) -> list[Lot]:
        amounts = self.collateral_amounts(position, now) if amounts is None else amounts
        return [Lot(a, amt, price(prices, a), self.ratio(position, a)) for a, amt in amounts.items() if amt > 0]

    def ltv(self, position: Position, prices: Prices, now: datetime) -> Decimal:
        return ltv(self.debt(position, now), price(prices, position.loan_asset), self.lots(position, prices, now))

    def thresholds(self, position: Position) -> Thresholds:
        if position.product is Product.FLEXIBLE:
            return self.catalog.thresholds("flexible", position.single_collateral
                                           or next(iter(position.collateral)))
        sheet = self.sheet_of(position)
        if sheet is not None:
            rules = self.catalog.products["vip"]
            return sheet.thresholds(rules.warning_ltv, rules.liquidation_fee)
        return self.catalog.thresholds(position.product.value)

    def warning_level(self, position: Position) -> Decimal:
        own = self.book.account(position.owner).warning_ltv
        th = self.thresholds(position)
        return own if own is not None and own < th.margin_call else th.warning

    # ----------------------------------------------------------------- wallets

    def spot(self, owner: str, asset: str) -> Decimal:
        return self.book.balance(ledger.spot(owner), asset)

    def earn(self, owner: str, asset: str, now: datetime) -> Decimal:
        """The Earn balance as the borrower sees it (rounded down to the asset's precision)."""
        shares = self.book.earn_shares(owner, asset)
        if shares == 0:
            return ZERO
        return round_down(shares * self.earn_index(asset, now), self.catalog.precision(asset))

    def deposit(self, owner: str, asset: str, amount: Decimal, now: datetime, to: Source = Source.SPOT,
                kind: str = "deposit") -> None:
        """Funds arriving from outside (a transfer in, an operator credit, the demo faucet)."""
        self.check_amount(asset, amount)
        self.accrue(now)
        entry = EntryBuilder(now, kind)
        if to is Source.SPOT:
            entry.move(asset, amount, ledger.CASH, ledger.spot(owner))
        else:
            entry.move(asset, amount, ledger.CASH, ledger.EARN_POOL)
            self._add_earn_shares(owner, asset, amount, now)
        self.book.post(entry.build())

    def withdraw_funds(self, owner: str, asset: str, amount: Decimal, now: datetime) -> None:
        """Funds leaving Spot to the outside (an operator debit)."""
        self.check_amount(asset, amount)
        if self.spot(owner, asset) < amount:
            raise Rejected("insufficient_funds", f"Spot holds {fmt(self.spot(owner, asset))} {asset}, "
                                                 f"less than {fmt(amount)}")
        self.book.post(EntryBuilder(now, "withdrawal").move(asset, amount, ledger.spot(owner), ledger.CASH).build())

    def transfer(self, owner: str, asset: str, amount: Decimal, to: Source, now: datetime) -> Event:
        """Move the borrower's own funds between Spot and Earn (Simple Earn Flexible: in and out at any time).

        Redeeming the whole Earn balance takes every share; what its exact value holds beyond the amount paid
        (rounded down to the asset's precision) goes to the desk's rounding account, so the pool and its shares
        stay equal."""
        self.check_amount(asset, amount)
        self.accrue(now)
        entry = EntryBuilder(now, "earn_subscribe" if to is Source.EARN else "earn_redeem")
        if to is Source.EARN:
            have = self.spot(owner, asset)
            if have < amount:
                raise Rejected("insufficient_funds", f"your Spot wallet holds {fmt(have)} {asset}, "
                                                     f"less than {fmt(amount)}")
            entry.move(asset, amount, ledger.spot(owner), ledger.EARN_POOL)
            self._add_earn_shares(owner, asset, amount, now)
        else:
            have = self.earn(owner, asset, now)
            if have < amount:
                raise Rejected("insufficient_funds", f"your Earn wallet holds {fmt(have)} {asset}, "
                                                     f"less than {fmt(amount)}")
            state = self.market(asset, now)
            wallet = self.book.earn_shares(owner, asset)
            shares = wallet if amount == have else amount / state.earn_index
            value = exact(wallet * state.earn_index) if shares == wallet else amount
            self.book.set_earn_shares(owner, asset, wallet - shares)
            state.earn_shares -= shares
            self.book.save_market(state)
            entry.move(asset, amount, ledger.EARN_POOL, ledger.spot(owner))
            entry.move(asset, value - amount, ledger.EARN_POOL, ledger.ROUNDING)
        self.book.post(entry.build())
        return self.emit(Event(now, "transferred", owner, None, {
            "asset": asset, "amount": fmt(amount), "to": to.value}))

    def _add_earn_shares(self, owner: str, asset: str, amount: Decimal, now: datetime) -> Decimal:
        state = self.market(asset, now)
        shares = amount / state.earn_index
        self.book.set_earn_shares(owner, asset, self.book.earn_shares(owner, asset) + shares)
        state.earn_shares += shares
        self.book.save_market(state)
        return shares

    # ----------------------------------------------------------------- checks

    def check_amount(self, asset: str, amount: Decimal) -> None:
        if asset not in self.catalog.assets and asset != QUOTE:
            raise Rejected("unknown_asset", f"{asset} is not an asset this desk knows")
        places = self.catalog.precision(asset)
        if amount <= 0:
            raise Rejected("non_positive_amount", "the amount must be greater than zero")
        if decimals_of(amount) > places:
            raise Rejected("too_precise", f"{asset} amounts have at most {places} decimal places")

    def own(self, owner: str, pid: int) -> Position:
        """The position ``pid`` if it belongs to ``owner``; strangers get the same answer as a missing one."""
        p = self.book.get_position(pid)
        if p is None or p.owner != owner:
            raise Rejected("position_not_found", f"you have no position #{pid}")
        return p

    def emit(self, event: Event) -> Event:
        self.book.emit(event)
        return event


def _midnight(t: datetime) -> datetime:
    return t.replace(hour=0, minute=0, second=0, microsecond=0)
