"""Money movements shared by actions and liquidation: pledging, releasing and taking collateral, and
adding or reducing debt, keeping position, market totals and the ledger entry in step."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from domain import ledger
from domain.desk import Desk
from domain.ledger import EntryBuilder
from domain.money import ZERO, exact
from domain.positions import Holding, Position, Product, Source


def pledge(desk: Desk, p: Position, asset: str, amount: Decimal, source: Source, entry: EntryBuilder,
            now: datetime) -> None:
    holding = p.collateral.setdefault(asset, Holding())
    if source is Source.SPOT:
        entry.move(asset, amount, ledger.spot(p.owner), ledger.collateral(p.id))
        holding.spot += amount
        return
    # Earn-pledged collateral stays in the Earn pool and keeps earning: only the shares change hands.
    wallet = desk.book.earn_shares(p.owner, asset)
    shares = wallet if amount >= desk.earn(p.owner, asset, now) else amount / desk.earn_index(asset, now)
    desk.book.set_earn_shares(p.owner, asset, wallet - shares)
    holding.earn_shares += shares


def take(desk: Desk, p: Position, asset: str, amount: Decimal, target: str, entry: EntryBuilder,
          now: datetime) -> None:
    """Remove ``amount`` of collateral to ``target``: Spot-sourced part first, then Earn shares."""
    holding = p.collateral[asset]
    from_spot = min(amount, holding.spot)
    entry.move(asset, from_spot, ledger.collateral(p.id), target)
    holding.spot -= from_spot
    rest = amount - from_spot
    if rest > 0:
        state = desk.market(asset, now)
        shares = min(rest / state.earn_index, holding.earn_shares)
        if exact(holding.amount(state.earn_index)) <= amount:
            shares = holding.earn_shares
        holding.earn_shares -= shares
        state.earn_shares -= shares
        desk.book.save_market(state)
        entry.move(asset, rest, ledger.EARN_POOL, target)


def unpledge(desk: Desk, p: Position, asset: str, amount: Decimal, entry: EntryBuilder, now: datetime) -> None:
    """Return ``amount`` of collateral to the wallets it came from: Spot part first, then Earn shares."""
    holding = p.collateral[asset]
    from_spot = min(amount, holding.spot)
    entry.move(asset, from_spot, ledger.collateral(p.id), ledger.spot(p.owner))
    holding.spot -= from_spot
    rest = amount - from_spot
    if rest > 0:
        index = desk.earn_index(asset, now)
        shares = holding.earn_shares if exact(holding.amount(index)) <= amount else rest / index
        holding.earn_shares -= shares
        desk.book.set_earn_shares(p.owner, asset, desk.book.earn_shares(p.owner, asset) + shares)
    if holding.empty and p.product is not Product.FLEXIBLE:
        del p.collateral[asset]


def add_debt(desk: Desk, p: Position, amount: Decimal, now: datetime) -> None:
    if p.rate_key is None:
        p.debt_shares += amount
        p.principal += amount
        _fixed_total(desk, p, amount, now)
        return
    state = desk.market(p.rate_key, now)
    shares = amount / state.debt_index
    p.debt_shares += shares
    p.principal += amount
    state.debt_shares += shares
    desk.book.save_market(state)


def reduce_debt(desk: Desk, p: Position, paid: Decimal, debt: Decimal, now: datetime, full: bool) -> None:
    """Lower the debt by ``paid`` (interest first, then principal); ``full`` clears it exactly."""
    interest = max(debt - p.principal, ZERO)
    p.principal = ZERO if full else max(p.principal - max(paid - interest, ZERO), ZERO)
    if p.rate_key is None:
        _fixed_total(desk, p, -(debt if full else paid), now)
        p.debt_shares = ZERO if full else p.debt_shares - paid
        return
    state = desk.market(p.rate_key, now)
    shares = p.debt_shares if full else min(paid / state.debt_index, p.debt_shares)
    p.debt_shares -= shares
    state.debt_shares -= shares
    desk.book.save_market(state)


def _fixed_total(desk: Desk, p: Position, change: Decimal, now: datetime) -> None:
    """Non-compounding (Fixed) debt counts towards the asset's utilisation and lending cap."""
    state = desk.market(p.loan_asset, now)
    state.fixed_debt += change
    desk.book.save_market(state)
