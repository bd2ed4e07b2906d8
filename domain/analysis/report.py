"""A simulation's JSON report (``../shared/SCENARIO.md``, "Output"): events, positions, wallets, the ledger check.

Decimals are strings, times ``2026-01-01T00:00:00Z``, and every collection is written in a fixed order, so the
same scenario gives the same bytes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from domain.book import MemoryBook
from domain.checks import ledger_problems
from domain.desk import Desk
from domain.errors import Rejected
from domain.events import Event
from domain.inputs import iso
from domain.money import fmt, fmt_ratio, round_down, round_up
from domain.positions import Position, Status
from domain.prices import Prices


def event_rows(events: Iterable[Event], names: Mapping[int, str]) -> list[dict[str, Any]]:
    """Events as report rows; positions by the name the scenario gave them (``P1``), else ``#id``."""
    rows = []
    for e in events:
        row: dict[str, Any] = {"at": iso(e.at), "type": e.type}
        if e.account is not None:
            row["account"] = e.account
        if e.position is not None:
            row["position"] = names.get(e.position, f"#{e.position}")
        row.update({k: (iso(v) if isinstance(v, datetime) else v) for k, v in e.data.items()})
        rows.append(row)
    return rows


def report(desk: Desk, book: MemoryBook, ids: Mapping[str, int], events: list[dict[str, Any]], prices: Prices,
           end: datetime) -> dict[str, Any]:
    positions = {name: position_report(desk, book.positions[pid], prices, end) for name, pid in ids.items()}
    wallets: dict[str, Any] = {}
    for owner in book.owners():
        spot = {a: fmt(v) for (acct, a), v in sorted(book.balances.items()) if acct == f"spot:{owner}" and v != 0}
        earn = {a: fmt(desk.earn(owner, a, end)) for (o, a) in sorted(book.shares)
                if o == owner and desk.earn(owner, a, end) != 0}
        wallets[owner] = {"spot": spot, "earn": earn}
    problems = ledger_problems(desk, book.balances, book.shares, book.positions.values(), end)
    out: dict[str, Any] = {"events": events, "positions": positions, "wallets": wallets,
                           "ledger_balanced": not problems}
    if problems:
        out["ledger_problems"] = problems
    return out


def position_report(desk: Desk, p: Position, prices: Prices, end: datetime) -> dict[str, Any]:
    cat = desk.catalog
    debt = desk.debt(p, end)
    try:
        ltv = fmt_ratio(desk.ltv(p, prices, end)) if p.active else "0"
    except Rejected:
        ltv = None
    out: dict[str, Any] = {
        "status": p.status.value, "product": p.product.value, "loan": p.loan_asset,
        "principal": fmt(round_up(p.principal, cat.precision(p.loan_asset))),
        "debt": fmt(round_up(debt, cat.precision(p.loan_asset))),
        "collateral": {a: fmt(round_down(desk.holding_amount(a, h, end), cat.precision(a)))
                       for a, h in p.collateral.items()},
        "ltv": ltv if p.status is not Status.LIQUIDATED_WITH_DEBT else None}
    if p.fixed is not None:  # Fixed loans (and ones converted from Fixed): the term
        out["fixed"] = {"term_days": p.fixed.term_days, "apr": fmt(p.fixed.apr), "interest": fmt(p.fixed.interest),
                        "expires_at": iso(p.fixed.expires_at), "late_fees": fmt(p.fixed.late_fees)}
    if p.vip_sheet is not None:
        out["vip_sheet"] = p.vip_sheet
    return out


def render(result: Mapping[str, Any]) -> str:
    """The report as the CLI prints it: indented JSON, key order as built, UTF-8 text."""
    return json.dumps(result, indent=2, ensure_ascii=False) + "\n"
