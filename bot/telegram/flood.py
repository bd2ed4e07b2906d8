"""A per-user token bucket: people who flood the bot are slowed down, never served twice.

Each user has ``burst`` tokens refilled at ``rate`` per second; an update costs one. The first update over
the limit gets one "slow down" answer; further ones are dropped silently until tokens come back.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

SLOW_DOWN = "Slow down a little… I'll answer again in a few seconds."


@dataclass
class _Bucket:
    tokens: float
    at: float
    warned: bool = False


class FloodLimiter:
    def __init__(self, burst: int = 15, rate: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.burst = burst
        self.rate = rate
        self.clock = clock
        self._buckets: dict[int, _Bucket] = {}

    def check(self, user_id: int) -> str:
        """``"ok"`` (serve it), ``"warn"`` (answer SLOW_DOWN once, do not serve) or ``"drop"``."""
        now = self.clock()
        b = self._buckets.get(user_id)
        if b is None:
            b = self._buckets[user_id] = _Bucket(float(self.burst), now)
        b.tokens = min(float(self.burst), b.tokens + (now - b.at) * self.rate)
        b.at = now
        if b.tokens >= 1:
            b.tokens -= 1
            b.warned = False
            return "ok"
        if b.warned:
            return "drop"
        b.warned = True
        return "warn"
