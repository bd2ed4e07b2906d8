"""VIP term sheets as people read them: the borrower's ``/terms``, an operator's ``/vip`` and its preview."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from bot.render.common import Reply, e
from domain.money import fmt, pct
from domain.termsheet import TermSheet


def term_sheet_lines(s: TermSheet | Mapping[str, object], version: int | None = None) -> list[str]:
    """A sheet (issued, or the params of a preview) for borrower and operator alike."""
    if isinstance(s, TermSheet):
        values: Mapping[str, object] = {
            "user": s.owner, "loan": list(s.loan_assets), "rate": s.rate, "apr": s.apr, "initial": s.initial_ltv,
            "margin_call": s.margin_call_ltv, "liquidation_ltv": s.liquidation_ltv, "collateral": s.collateral,
            "liquidation": s.liquidation, "delay": s.liquidation_delay_minutes, "min_order": s.min_order,
            "max_borrow": s.max_borrow, "warning": s.warning_ltv}
        version = s.version
    else:
        values = s
    apr = values["apr"]
    assert isinstance(apr, Decimal)
    rate = (f"fixed {e(fmt(apr * 100))}% APR" if values["rate"] == "fixed"
            else f"the flexible APR + {e(fmt(apr * 100))}%")
    coll = values["collateral"]
    assert isinstance(coll, Mapping)
    loans = values["loan"]
    assert isinstance(loans, list)
    lines = [f"<b>VIP term sheet</b>{f' v{version}' if version else ''} for user {e(values['user'])}",
             f"Borrow: {e(', '.join(loans))} at {rate}, compounding hourly",
             f"LTV: initial {_ltv(values['initial'])} · margin call {_ltv(values['margin_call'])} · "
             f"liquidation {_ltv(values['liquidation_ltv'])}"
             + (f" · warning {_ltv(values['warning'])}" if values.get("warning") is not None else ""),
             "Collateral (ratio): " + ", ".join(f"{e(a)} {e(fmt(r))}" for a, r in coll.items()),
             f"Liquidation: {e(values['liquidation'])}"
             + (f", after a {e(values['delay'])} min delay" if values["delay"] else ""),
             f"Minimum first order: {_money(values['min_order'])} USDT"
             + (f" · maximum total: {_money(values['max_borrow'])} USDT" if values.get("max_borrow") else "")]
    return lines


def _ltv(x: object) -> str:
    return e(pct(x)) if isinstance(x, Decimal) else "—"


def _money(x: object) -> str:
    return e(fmt(x)) if isinstance(x, Decimal) else "—"


def term_sheet(s: TermSheet | None) -> Reply:
    if s is None:
        return Reply("You have no VIP term sheet. Ask the desk for one; once issued it shows here.")
    return Reply("\n".join([*term_sheet_lines(s), "Borrow under it with e.g. /borrow 60000 USDT with 1.5 BTC vip"]))
