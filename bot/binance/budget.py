"""Binance's request weight, planned and tracked: how often N linked accounts may sync, and when a call may go.

Pure: no I/O, no asyncio; time comes in as epoch seconds (``at=``) or from the injected ``clock``.

Planning (:func:`plan_syncs`). Each IP-limited SAPI endpoint has its own 12,000 weight a minute per IP, and we
allow ourselves only ``share`` of it (default half, SPEC §9), so ``A = 12000 × share`` per endpoint a minute.
One sync of one account spends ``w`` on an endpoint; N accounts each synced every T seconds spend
``N × w × 60 / T`` a minute, so ``T ≥ 60 × N × w / A`` for every endpoint, and the heaviest one binds.
With the defaults (ongoing orders 300 and VIP ongoing orders 400, A = 6000): T ≥ 4 s × N, the syncs spaced 4 s
apart, i.e. 15 accounts a minute.

Tracking (:class:`WeightBudget`). Binance counts weight per calendar minute, per pool (the shared ``/api/*``
pool, or one SAPI endpoint). The budget adds what we spend, takes the response header (which also counts what
other processes on this IP spent) as the truth for that minute, remembers ``Retry-After`` blocks (429 on one
pool, 418 on all), and answers when the next call of a given weight may go.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from bot.binance.endpoints import API_LIMIT_PER_MINUTE, API_POOL, SAPI_IP_LIMIT_PER_MINUTE, SYNC_ENDPOINTS, Endpoint

DEFAULT_SHARE = 0.5


@dataclass(frozen=True)
class SyncPlan:
    """How often each of ``accounts`` may be synced, and how far apart consecutive syncs should start."""

    accounts: int
    interval_seconds: float
    spacing_seconds: float
    binding_endpoint: str


def _per_sync_weights(endpoints: Iterable[Endpoint] | Mapping[str, int]) -> dict[str, int]:
    if isinstance(endpoints, Mapping):
        return dict(endpoints)
    weights: dict[str, int] = {}
    for endpoint in endpoints:  # an endpoint listed twice (two pages) costs twice
        weights[endpoint.pool] = weights.get(endpoint.pool, 0) + endpoint.weight
    return weights


def plan_syncs(
    accounts: int,
    endpoints: Iterable[Endpoint] | Mapping[str, int] = SYNC_ENDPOINTS,
    *,
    limit: int = SAPI_IP_LIMIT_PER_MINUTE,
    share: float = DEFAULT_SHARE,
) -> SyncPlan:
    """The shortest interval at which every one of ``accounts`` can be synced within ``share`` of ``limit``.

    ``endpoints``: what one sync calls, as endpoints or as ``{pool: weight per sync}``.
    """
    if accounts < 0 or not 0 < share <= 1:
        raise ValueError("accounts must be ≥ 0 and share in (0, 1]")
    allowance = limit * share
    weights = _per_sync_weights(endpoints)
    binding, heaviest = max(weights.items(), key=lambda item: item[1])
    if heaviest > allowance:
        raise ValueError(f"one sync spends {heaviest} on {binding}, more than the {allowance:g} allowed a minute")
    spacing = 60 * heaviest / allowance
    return SyncPlan(accounts=accounts, interval_seconds=spacing * accounts, spacing_seconds=spacing,
                    binding_endpoint=binding)


def max_accounts(
    interval_seconds: float,
    endpoints: Iterable[Endpoint] | Mapping[str, int] = SYNC_ENDPOINTS,
    *,
    limit: int = SAPI_IP_LIMIT_PER_MINUTE,
    share: float = DEFAULT_SHARE,
) -> int:
    """How many accounts one IP can keep synced every ``interval_seconds`` within the share."""
    spacing = plan_syncs(1, endpoints, limit=limit, share=share).spacing_seconds
    return math.floor(interval_seconds / spacing + 1e-9)  # 1e-9: 60 / 4 must count as 15, not 14.999…


class WeightBudget:
    """Weight used per pool per calendar minute, blocks from 429/418, and when the next call may go.

    ``share`` caps each pool at ``floor(limit × share)``; the client's own budget uses 1.0 (Binance's hard
    limit), a sync scheduler passes 0.5 to keep half of every endpoint free.
    """

    def __init__(
        self,
        share: float = 1.0,
        *,
        limits: Mapping[str, int] | None = None,
        default_limit: int = SAPI_IP_LIMIT_PER_MINUTE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not 0 < share <= 1:
            raise ValueError("share must be in (0, 1]")
        self.share = share
        self._limits = {API_POOL: API_LIMIT_PER_MINUTE, **(limits or {})}
        self._default_limit = default_limit
        self._clock = clock
        self._used: dict[str, tuple[int, int]] = {}  # pool -> (minute, weight used in it)
        self._blocked: dict[str, float] = {}  # pool -> epoch seconds; "" blocks every pool (an IP ban)

    def _now(self, at: float | None) -> float:
        return self._clock() if at is None else at

    def cap(self, pool: str) -> int:
        """The most weight we let ``pool`` use in one minute."""
        return math.floor(self._limits.get(pool, self._default_limit) * self.share)

    def used(self, pool: str, at: float | None = None) -> int:
        """Weight used on ``pool`` in the minute of ``at`` (0 once that minute is over)."""
        minute, weight = self._used.get(pool, (-1, 0))
        return weight if minute == int(self._now(at) // 60) else 0

    def snapshot(self, at: float | None = None) -> dict[str, int]:
        """Every pool's weight used this minute (pools with none are left out)."""
        return {pool: used for pool in self._used if (used := self.used(pool, at))}

    def spend(self, pool: str, weight: int, at: float | None = None) -> None:
        """Count a request we are sending now."""
        now = self._now(at)
        self._used[pool] = (int(now // 60), self.used(pool, now) + weight)

    def observe(self, pool: str, used_weight: int, at: float | None = None) -> None:
        """Binance's header for ``pool``: the IP's true total this minute (ours and anyone else's)."""
        self._used[pool] = (int(self._now(at) // 60), used_weight)

    def block(self, pool: str | None, seconds: float, at: float | None = None) -> None:
        """Nothing goes to ``pool`` (``None``: to any pool, an IP ban) for ``seconds``."""
        key = "" if pool is None else pool
        self._blocked[key] = max(self._blocked.get(key, 0.0), self._now(at) + seconds)

    def banned_until(self, at: float | None = None) -> float | None:
        """When an IP ban ends, if one is in force."""
        until = self._blocked.get("", 0.0)
        return until if until > self._now(at) else None

    def next_call_at(self, pool: str, weight: int, at: float | None = None) -> float:
        """The earliest epoch second at which a call of ``weight`` may go to ``pool``."""
        if weight > self.cap(pool):
            raise ValueError(f"a call of weight {weight} can never fit {pool}'s cap of {self.cap(pool)}")
        now = self._now(at)
        when = max(now, self._blocked.get(pool, 0.0), self._blocked.get("", 0.0))
        if self.used(pool, when) + weight > self.cap(pool):
            when = (int(when // 60) + 1) * 60.0  # the next calendar minute starts from zero
        return when

    def wait_seconds(self, pool: str, weight: int, at: float | None = None) -> float:
        """How long until a call of ``weight`` may go to ``pool`` (0: now)."""
        now = self._now(at)
        return max(0.0, self.next_call_at(pool, weight, now) - now)
