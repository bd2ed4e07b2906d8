"""Accounting checks: the whole book balances per asset, no borrower's account is negative, and the ledger
agrees with the positions (receivables = debts, pledged collateral = holdings, Earn pool = Earn shares)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal

from domain import ledger
from domain.desk import Desk
from domain.money import ZERO
from domain.positions import Position

# Index arithmetic is exact to 18 decimals per operation; allow that much drift per position and posting.
DRIFT = Decimal("1e-15")


def ledger_problems(desk: Desk, balances: Mapping[tuple[str, str], Decimal],
                    wallet_shares: Mapping[tuple[str, str], Decimal], positions: Iterable[Position],
                    now: datetime) -> list[str]:
    """Every way the book disagrees with itself; an empty list means it is balanced and consistent."""
    problems: list[str] = []
    per_asset: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for (account, asset), amount in balances.items():
        per_asset[asset] += amount
        if ledger.is_customer_account(account) and amount < 0:
            problems.append(f"{account} holds {amount} {asset}")
    problems += [f"{asset} sums to {total}, not 0" for asset, total in sorted(per_asset.items()) if total != 0]
    positions = list(positions)
    debts: dict[str, Decimal] = defaultdict(lambda: ZERO)
    shares: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for (_, asset), n in wallet_shares.items():
        shares[asset] += n
    for p in positions:
        debts[p.loan_asset] += desk.debt(p, now)
        for asset, h in p.collateral.items():
            held = balances.get((ledger.collateral(p.id), asset), ZERO)
            if held != h.spot:
                problems.append(f"#{p.id} holds {h.spot} {asset} but its ledger account has {held}")
            shares[asset] += h.earn_shares
    tolerance = DRIFT * (len(positions) + len(wallet_shares) + 1)
    for asset in sorted(set(debts) | {a for (acct, a) in balances if acct == ledger.LOANS}):
        owed = -balances.get((ledger.LOANS, asset), ZERO)
        if abs(owed - debts[asset]) > tolerance:
            problems.append(f"receivables of {asset} are {owed} but positions owe {debts[asset]}")
    for asset in sorted(set(shares) | {a for (acct, a) in balances if acct == ledger.EARN_POOL}):
        state = desk.book.market(asset)
        index = state.earn_index if state else Decimal(1)
        total = state.earn_shares if state else ZERO
        if abs(total - shares[asset]) > tolerance:
            problems.append(f"Earn shares of {asset} add up to {shares[asset]}, the market counts {total}")
        pool = balances.get((ledger.EARN_POOL, asset), ZERO)
        if abs(pool - shares[asset] * index) > tolerance:
            problems.append(f"Earn pool of {asset} holds {pool} but its shares are worth {shares[asset] * index}")
    return problems
