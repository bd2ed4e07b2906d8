"""A started ``FakeBinance`` with one HMAC key and one Ed25519 key, and clients for them.

Clients read the fake's clock (``clock=fake.now_ms() / 1000``) so Retry-After seconds and minute boundaries
can be computed by hand; a test that wants a stale clock passes its own. Every test using ``fake`` also
checks, when it ends, that the fake counted no non-GET request and did not crash.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest

from bot.binance import BinanceAccount, Ed25519Signer, HmacSigner, Secret, generate_ed25519
from bot.binance.signing import Ed25519KeyPair, Signer
from tests.fakes.binance import FakeBinance

T = TypeVar("T")

HMAC_KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
HMAC_SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
ED_KEY = "4yNzx3yWC5bS6YTwEkSRaC0nRmSQIIStAUOh1b6kqaBrTLIhjCpI5lJH8q8R8WNO"


def run(coro: Awaitable[T]) -> T:
    async def main() -> T:
        return await coro

    return asyncio.run(main())


@pytest.fixture(scope="session")
def ed_pair() -> Ed25519KeyPair:
    return generate_ed25519()


@pytest.fixture
def fake(ed_pair: Ed25519KeyPair) -> Iterator[FakeBinance]:
    with FakeBinance({"BTC": "50000", "ETH": "3000"}) as server:
        server.add_account(HMAC_KEY, hmac_secret=HMAC_SECRET)
        server.add_account(ED_KEY, ed25519_public_key=ed_pair.public_key_pem)
        yield server
        assert server.non_get_requests == 0, "the client sent something other than GET"


class Recording:
    """A signer that remembers every signature it produced (to prove none leaks)."""

    def __init__(self, inner: Signer) -> None:
        self.inner, self.kind = inner, inner.kind
        self.signatures: list[str] = []

    def sign(self, payload: str) -> str:
        signature = self.inner.sign(payload)
        self.signatures.append(signature)
        return signature


Factory = Callable[..., BinanceAccount]


@pytest.fixture
def hmac_client(fake: FakeBinance) -> Factory:
    def make(secret: str = HMAC_SECRET, api_key: str = HMAC_KEY, **options: Any) -> BinanceAccount:
        options.setdefault("clock", lambda: fake.now_ms() / 1000)
        options.setdefault("sleep", _no_sleep)
        signer = options.pop("signer", None) or HmacSigner(Secret(secret))
        return BinanceAccount(fake.url, api_key, signer, **options)

    return make


@pytest.fixture
def ed_client(fake: FakeBinance, ed_pair: Ed25519KeyPair) -> Factory:
    def make(**options: Any) -> BinanceAccount:
        options.setdefault("clock", lambda: fake.now_ms() / 1000)
        options.setdefault("sleep", _no_sleep)
        signer = options.pop("signer", None) or Ed25519Signer(ed_pair.private_key_pem)
        return BinanceAccount(fake.url, ED_KEY, signer, **options)

    return make


async def _no_sleep(seconds: float) -> None:
    return None

