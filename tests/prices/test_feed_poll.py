"""A poll fetches the exchange's ticker and the second source at the same time (issue 12, item 3): each fake
answers only once the other has been asked, so fetching one after the other can never succeed."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime
from decimal import Decimal as D

from bot.monitor.feed import PriceFeed
from bot.monitor.prices import ExchangePrices
from domain.markets import load_catalog
from domain.prices import GuardRules
from tests.fakes._http import Request, Response
from tests.fakes.exchange import FakeExchange

NOW = datetime(2030, 1, 7, 10, 0, tzinfo=UTC)


class Rendezvous(FakeExchange):
    """Answers a request only after ``other`` has received one too (or gives up after 5 s with a 503)."""

    def __init__(self, prices: dict[str, str]) -> None:
        super().__init__(prices)
        self.asked = threading.Event()
        self.other: Rendezvous | None = None

    def handle(self, request: Request) -> Response:
        self.asked.set()
        assert self.other is not None
        if not self.other.asked.wait(5):
            return Response.json(503, {"code": -1001, "msg": "the other source was never asked"})
        return super().handle(request)


def test_the_exchange_and_the_second_source_are_asked_at_once() -> None:
    with Rendezvous({"BTC": "50000", "ETH": "3000"}) as primary, Rendezvous({"BTC": "50100"}) as second:
        primary.other, second.other = second, primary
        rules = GuardRules.of(load_catalog().desk)

        async def poll() -> PriceFeed:
            one = ExchangePrices(primary.url, ["BTC", "ETH"], cache_seconds=0, timeout=10)
            two = ExchangePrices(second.url, ["BTC"], cache_seconds=0, timeout=10)
            feed = PriceFeed(one, lambda: NOW, rules, two, ["BTC", "ETH"], retries=0)
            try:
                assert await feed.poll() is not None
            finally:
                await one.close()
                await two.close()
            return feed

        feed = asyncio.run(poll())
        assert feed.guard.newest_seen["BTC"].price == D(50000)
        assert feed.guard.second["BTC"].price == D(50100)  # both answered: neither waited for the other
