"""Domain objects ⇄ row values: positions (with risk, fixed terms and holdings), market states (with their
rate history), VIP term sheets and events (``data`` as JSON text).

Each ``*_values`` function gives plain, immutable column values, so the book can also keep them as a
snapshot and write an object only when it really changed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from domain.events import Event
from domain.positions import FixedTerms, Holding, Position, Product, RiskState, Status
from domain.rates import MarketState, RatePoint
from domain.termsheet import TermSheet

Values = dict[str, Any]
RowLike = Mapping[Any, Any]  # a result row by column name (SQLAlchemy RowMapping)
HoldingValues = tuple[tuple[str, Decimal, Decimal], ...]  # (asset, spot, earn_shares) in dict order
RateValues = tuple[tuple[datetime, Decimal], ...]  # (effective_from, apr) in order


# --------------------------------------------------------------------------- positions


def position_values(p: Position) -> Values:
    f = p.fixed
    return {
        "id": p.id, "owner": p.owner, "product": p.product.value, "loan_asset": p.loan_asset,
        "opened_at": p.opened_at, "debt_shares": p.debt_shares, "principal": p.principal,
        "status": p.status.value, "rate_key": p.rate_key, "vip_sheet": p.vip_sheet, "closed_at": p.closed_at,
        "updated_at": p.updated_at,
        "warned": p.risk.warned, "margin_call": p.risk.margin_call, "margin_call_at": p.risk.margin_call_at,
        "liquidation_pending_since": p.risk.liquidation_pending_since,
        "fixed_term_days": f.term_days if f else None, "fixed_apr": f.apr if f else None,
        "fixed_expires_at": f.expires_at if f else None, "fixed_interest": f.interest if f else None,
        "fixed_auto_repay": f.auto_repay if f else None, "fixed_auto_renew": f.auto_renew if f else None,
        "fixed_convert_to_flexible": f.convert_to_flexible if f else None,
        "fixed_late_fees": f.late_fees if f else None, "fixed_late_fee_hours": f.late_fee_hours if f else None,
        "fixed_reminders_sent": json.dumps(f.reminders_sent) if f else None,
    }


def holding_values(p: Position) -> HoldingValues:
    return tuple((asset, h.spot, h.earn_shares) for asset, h in p.collateral.items())


def position_from(row: RowLike, held: Sequence[RowLike]) -> Position:
    """A ``Position`` from its row and its holdings rows (already in ``ordinal`` order)."""
    fixed = None
    if row["fixed_term_days"] is not None:
        fixed = FixedTerms(
            term_days=row["fixed_term_days"], apr=row["fixed_apr"], expires_at=row["fixed_expires_at"],
            interest=row["fixed_interest"], auto_repay=bool(row["fixed_auto_repay"]),
            auto_renew=bool(row["fixed_auto_renew"]), convert_to_flexible=bool(row["fixed_convert_to_flexible"]),
            late_fees=row["fixed_late_fees"], late_fee_hours=row["fixed_late_fee_hours"],
            reminders_sent=list(json.loads(row["fixed_reminders_sent"] or "[]")))
    return Position(
        id=row["id"], owner=row["owner"], product=Product(row["product"]), loan_asset=row["loan_asset"],
        opened_at=row["opened_at"], debt_shares=row["debt_shares"], principal=row["principal"],
        collateral={h["asset"]: Holding(h["spot"], h["earn_shares"]) for h in held},
        status=Status(row["status"]),
        risk=RiskState(bool(row["warned"]), bool(row["margin_call"]), row["margin_call_at"],
                       row["liquidation_pending_since"]),
        rate_key=row["rate_key"], fixed=fixed, vip_sheet=row["vip_sheet"], closed_at=row["closed_at"],
        updated_at=row["updated_at"])


# --------------------------------------------------------------------------- market state


def market_values(state: MarketState) -> Values:
    return {"key": state.asset, "debt_index": state.debt_index, "debt_shares": state.debt_shares,
            "fixed_debt": state.fixed_debt, "accrued_until": state.accrued_until, "earn_index": state.earn_index,
            "earn_shares": state.earn_shares, "earn_accrued_until": state.earn_accrued_until}


def rate_values(state: MarketState) -> RateValues:
    return tuple((r.effective_from, r.apr) for r in state.rates)


def market_from(row: RowLike, rates: Sequence[RowLike]) -> MarketState:
    return MarketState(
        asset=row["key"], debt_index=row["debt_index"], debt_shares=row["debt_shares"],
        fixed_debt=row["fixed_debt"], rates=[RatePoint(r["effective_from"], r["apr"]) for r in rates],
        accrued_until=row["accrued_until"], earn_index=row["earn_index"], earn_shares=row["earn_shares"],
        earn_accrued_until=row["earn_accrued_until"])


# --------------------------------------------------------------------------- VIP term sheets


def sheet_values(sheet: TermSheet) -> Values:
    return {
        "owner": sheet.owner, "version": sheet.version, "loan_assets": json.dumps(list(sheet.loan_assets)),
        "rate": sheet.rate, "apr": sheet.apr, "initial_ltv": sheet.initial_ltv,
        "margin_call_ltv": sheet.margin_call_ltv, "liquidation_ltv": sheet.liquidation_ltv,
        "collateral": _dump_decimals(sheet.collateral), "liquidation": sheet.liquidation,
        "liquidation_delay_minutes": sheet.liquidation_delay_minutes, "min_order": sheet.min_order,
        "max_borrow": sheet.max_borrow, "max_collateral": _dump_decimals(sheet.max_collateral),
        "warning_ltv": sheet.warning_ltv, "issued_at": sheet.issued_at, "issued_by": sheet.issued_by,
    }


def sheet_from(row: RowLike) -> TermSheet:
    return TermSheet(
        owner=row["owner"], loan_assets=tuple(json.loads(row["loan_assets"])), rate=row["rate"], apr=row["apr"],
        initial_ltv=row["initial_ltv"], margin_call_ltv=row["margin_call_ltv"],
        liquidation_ltv=row["liquidation_ltv"], collateral=_load_decimals(row["collateral"]),
        liquidation=row["liquidation"], liquidation_delay_minutes=row["liquidation_delay_minutes"],
        min_order=row["min_order"], max_borrow=row["max_borrow"],
        max_collateral=_load_decimals(row["max_collateral"]), warning_ltv=row["warning_ltv"],
        version=row["version"], issued_at=row["issued_at"], issued_by=row["issued_by"])


def _dump_decimals(values: Mapping[str, Decimal]) -> str:
    """``{asset: Decimal}`` as JSON with the decimals as their exact text (never JSON numbers: floats)."""
    return json.dumps({k: str(v) for k, v in values.items()})


def _load_decimals(text: str) -> dict[str, Decimal]:
    return {k: Decimal(v) for k, v in json.loads(text).items()}


# --------------------------------------------------------------------------- events


def dump_data(data: Mapping[str, Any]) -> str:
    """``Event.data`` as JSON: datetimes become ISO-8601 strings, stray Decimals exact fixed-point text."""
    return json.dumps(data, default=_json_default, ensure_ascii=False, separators=(",", ":"))


def load_data(text: str) -> dict[str, Any]:
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError(f"event data must be a JSON object, got {text[:80]!r}")
    return value


def event_values(event: Event, created_at: datetime) -> Values:
    return {"at": event.at, "type": event.type, "account": event.account, "position": event.position,
            "data": dump_data(event.data), "urgency": event.urgency, "created_at": created_at,
            "sent_at": None, "attempts": 0, "next_attempt_at": None}


def event_from(row: RowLike) -> Event:
    """The stored event; datetimes inside ``data`` come back as ISO strings (see ``dump_data``)."""
    return Event(row["at"], row["type"], row["account"], row["position"], load_data(row["data"]))


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value, "f")  # exact, and without an exponent (0.00000001, not 1E-8)
    raise TypeError(f"{type(value).__name__} {value!r} is not JSON-ready")
