"""No secret anywhere: not in logs (any logger, DEBUG), exceptions, tracebacks or reprs; no signature in errors.

Each client goes through success and every failure path (bad signature, revoked key, stale clock, 429,
timeouts), with a signer that records the signatures it made; then everything a person or a log could see
is searched for the HMAC secret, the Ed25519 private key and those signatures.
"""

from __future__ import annotations

import logging
import traceback

import pytest

from bot.binance import BinanceAccount, BinanceError, Ed25519Signer, HmacSigner
from bot.binance.signing import Ed25519KeyPair
from tests.binance.conftest import ED_KEY, HMAC_KEY, HMAC_SECRET, Factory, Recording, run
from tests.fakes.binance import FakeBinance


async def _every_path(client: BinanceAccount, impatient: BinanceAccount, fake: FakeBinance,
                      api_key: str) -> list[BaseException]:
    caught: list[BaseException] = []

    async def attempt(call: object) -> None:
        try:
            await call  # type: ignore[misc]
        except BinanceError as exc:
            caught.append(exc)

    await attempt(client.api_restrictions())  # the client's clock is 30 s behind: -1021, resync, success
    await attempt(client.flexible_ongoing_orders())
    fake.script(400, -1021, "Timestamp for this request is outside of the recvWindow.", times=2,
                path="/sapi/v1/loan/vip/ongoing/orders")
    await attempt(client.vip_ongoing_orders())
    fake.stall(1.0, times=2)  # only this client has a short timeout: a slow machine must not time out the rest
    await attempt(impatient.flexible_collateral_data())
    fake.ban(5)
    await attempt(client.flexible_loanable_data())
    fake.advance(6)  # the ban is over (the client reads the fake's clock)
    fake.revoke(api_key)
    await attempt(client.flexible_repay_history())
    return caught


def _visible(exc: BaseException) -> str:
    return "\n".join([str(exc), repr(exc), "".join(traceback.format_exception(exc))])


@pytest.mark.parametrize("kind", ["HMAC", "Ed25519"])
def test_no_secret_in_logs_exceptions_or_tracebacks(fake: FakeBinance, hmac_client: Factory, ed_client: Factory,
                                                    ed_pair: Ed25519KeyPair, caplog: pytest.LogCaptureFixture,
                                                    kind: str) -> None:
    caplog.set_level(logging.DEBUG)
    options = {"retries": 1, "clock": lambda: fake.now_ms() / 1000 - 30}
    make = hmac_client if kind == "HMAC" else ed_client
    if kind == "HMAC":
        signer, api_key, secrets = Recording(HmacSigner(HMAC_SECRET)), HMAC_KEY, [HMAC_SECRET]
    else:
        signer, api_key = Recording(Ed25519Signer(ed_pair.private_key_pem)), ED_KEY
        pem = ed_pair.private_key_pem.reveal()
        secrets = [pem, *[line for line in pem.splitlines() if "-----" not in line]]

    client = make(signer=signer, **options)
    impatient = make(signer=signer, timeout=0.2, retries=1)

    async def go() -> list[BaseException]:
        async with client, impatient:
            return await _every_path(client, impatient, fake, api_key)

    caught = run(go())
    kinds = sorted({type(e).__name__ for e in caught})
    assert kinds == ["Banned", "ClockOutOfSync", "KeyRejected", "Unavailable"]
    assert len(signer.signatures) == 9  # 2 (-1021, ok) + 1 + 2 (-1021 twice) + 2 timeouts + 418 + -2015
    shown = [_visible(e) for e in caught] + [repr(client), repr(impatient), repr(signer.inner)]
    own_logs = [r.getMessage() for r in caplog.records if r.name.startswith("bot.binance")]
    assert own_logs, "the client logged nothing: the test would prove nothing"
    for secret in secrets:
        assert secret not in caplog.text
        assert all(secret not in text for text in shown)
    for signature in signer.signatures:
        assert all(signature not in text for text in shown + own_logs)

