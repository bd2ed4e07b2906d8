"""A monitoring group's board (``/board``, and View under a push in a group): one line per shared position with
its LTV, the distance to the margin call and the debt."""

from __future__ import annotations

from decimal import Decimal

from bot.render.common import Reply, amount, e, ltv_text, price
from bot.service.views import PositionView
from domain.money import pct


def board(views: list[PositionView], prices: dict[str, Decimal]) -> Reply:
    if not views:
        return Reply("Nothing is shared here yet. Members: /share to show your positions.")
    lines = ["<b>Board</b> (LTV · distance to margin call)"]
    for v in sorted(views, key=lambda v: v.ltv if v.ltv is not None else Decimal(0), reverse=True):
        lines.append(line(v, prices))
    return Reply("\n".join(lines))


def line(v: PositionView, prices: dict[str, Decimal]) -> str:
    """One position on the board: LTV, distance to margin call, debt (and the status when no longer open)."""
    if v.status not in ("open", "overdue"):
        return f"#{v.id} user {e(v.owner)}: {e(v.status.replace('_', ' '))} · debt " \
               f"{amount(v.debt, v.loan_asset, up=True)}"
    return (f"#{v.id} user {e(v.owner)}: LTV <b>{ltv_text(v.ltv)}</b> · {_gap(v, prices)} · "
            f"debt {amount(v.debt, v.loan_asset, up=True)}")


def _gap(v: PositionView, prices: dict[str, Decimal]) -> str:
    if v.ltv is None:
        return "no price"
    points = (v.thresholds.margin_call - v.ltv) * 100
    if points <= 0:
        return "<b>in margin call</b>"
    text = f"{e(points.quantize(Decimal('0.1')))} points to margin call"
    asset = v.single_collateral
    now_price = prices.get(asset) if asset else None
    if asset and now_price and v.margin_call_price is not None:
        drop = 1 - v.margin_call_price / now_price
        text += f" ({e(asset)} −{e(pct(drop))}, at {price(v.margin_call_price)})"
    return text
