"""Which prices may liquidate (SPEC §5).

A price older than ``max_age`` never liquidates. A move of more than ``jump`` against the last accepted price
must be seen again — on the next observation, or by a second source — before it is accepted. Warnings and
margin calls may use the newest price; only ``confirmed()`` prices are handed to liquidation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from domain.money import ONE


@dataclass
class Observation:
    price: Decimal
    at: datetime


@dataclass
class PriceGuard:
    max_age: timedelta
    jump: Decimal
    accepted: dict[str, Observation] = field(default_factory=dict)
    pending: dict[str, Observation] = field(default_factory=dict)

    def observe(self, asset: str, price: Decimal, at: datetime, second_source: Decimal | None = None) -> bool:
        """Record one poll of ``asset``; True when the price is accepted for liquidation."""
        last = self.accepted.get(asset)
        if last is None or abs(price / last.price - ONE) <= self.jump or self._agrees(second_source, price):
            return self._accept(asset, price, at)
        before = self.pending.get(asset)
        if before is not None and _same_side(before.price, price, last.price) \
                and abs(price / last.price - ONE) > self.jump:
            return self._accept(asset, price, at)
        self.pending[asset] = Observation(price, at)
        return False

    def confirmed(self, now: datetime) -> dict[str, Decimal]:
        """Accepted prices no older than ``max_age`` at ``now``."""
        return {a: o.price for a, o in self.accepted.items() if now - o.at <= self.max_age}

    def _accept(self, asset: str, price: Decimal, at: datetime) -> bool:
        self.accepted[asset] = Observation(price, at)
        self.pending.pop(asset, None)
        return True

    def _agrees(self, second: Decimal | None, price: Decimal) -> bool:
        return second is not None and abs(second / price - ONE) <= self.jump / 10


def _same_side(first: Decimal, second: Decimal, reference: Decimal) -> bool:
    return (first > reference) == (second > reference)
