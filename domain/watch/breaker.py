"""The circuit breaker: a tick that would liquidate too much of the book at once pauses liquidations.

A bad feed that slips through the price guard (a slow drift to garbage, a broken exchange) would otherwise sell
out the whole book in one tick. When one tick would liquidate more than ``breaker_share`` of the watched
positions, or more than ``breaker_asset_share`` of the positions secured by one collateral asset — and at least
``breaker_min_positions`` at once — liquidations **pause**: warnings and margin calls go on, and the operators are
paged (``liquidations_paused``). The pause lifts when:

* both price sources agree on every price involved (``corroborated``: a real crash, seen by two feeds), or
* an operator confirms (``resume``, the ``/resume`` command): that wave then goes through; the breaker re-arms
  once a tick has nothing left to liquidate.

A wave whose prices both sources already agree on never trips it. The state is two settings in the book
(``liquidations_paused``: since when, and the assets of the wave; ``liquidations_resumed``: an operator's
confirmation), so it survives a restart or a change of leader; the simulator keeps it the same way in memory.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Sequence
from datetime import datetime

from domain.desk import Desk
from domain.events import Event
from domain.markets import QUOTE
from domain.positions import Position

PAUSED = "liquidations_paused"
RESUMED = "liquidations_resumed"


def paused(desk: Desk) -> tuple[str, set[str]] | None:
    """Since when liquidations are paused (ISO time) and the assets of the wave, or None while they run."""
    value = desk.book.setting(PAUSED)
    if value is None:
        return None
    since, _, assets = value.partition(" ")
    return since, {a for a in assets.split(",") if a}


def admit(desk: Desk, due: Sequence[Position], corroborated: Collection[str],
          now: datetime) -> tuple[bool, list[Event]]:
    """Whether this tick's liquidations (``due``) may go ahead, and the notices for the operators."""
    rules = desk.catalog.desk
    involved = {a for p in due for a in (*p.collateral_assets, p.loan_asset) if a != QUOTE}
    both = bool(due) and involved <= set(corroborated)
    pause = paused(desk)
    if pause is not None:
        if not (pause[1] | involved) <= set(corroborated):
            return False, []
        desk.book.save_setting(PAUSED, None)
        return True, [desk.emit(Event(now, "liquidations_resumed", data={
            "by": "prices", "message": "Both price sources agree: liquidations run again."}))]
    if len(due) < rules.breaker_min_positions:
        if not due:
            desk.book.save_setting(RESUMED, None)  # the wave is over: the breaker is armed again
        return True, []
    if both or desk.book.setting(RESUMED) is not None:
        return True, []
    counts = desk.book.count_watched()
    total = sum(counts.values())
    by_asset = Counter(p.single_collateral or "" for p in due)
    heavy = {a: n for a, n in by_asset.items() if a and n > rules.breaker_asset_share * counts.get(a, 0)}
    if not (len(due) > rules.breaker_share * total or heavy):
        return True, []
    desk.book.save_setting(PAUSED, f"{now.isoformat()} {','.join(sorted(involved))}")
    share = f"{len(due)} of {total} watched positions"
    return False, [desk.emit(Event(now, "liquidations_paused", data={
        "positions": len(due), "watched": total, "by_asset": dict(sorted(by_asset.items())),
        "message": (f"Liquidations are paused: one price update would liquidate {share}. Margin calls go on. "
                    "Check the prices; /resume lets this wave through, or it resumes by itself once a second "
                    "price source confirms them.")}))]


def resume(desk: Desk, now: datetime, by: str) -> Event:
    """An operator lets the paused wave through (until a tick has nothing left to liquidate)."""
    desk.book.save_setting(PAUSED, None)
    desk.book.save_setting(RESUMED, now.isoformat())
    return desk.emit(Event(now, "liquidations_resumed", data={
        "by": by, "message": f"Operator {by} confirmed the prices: liquidations run again."}))
