"""FakeBinance is as strict as Binance, checked with plain httpx and hand-made signatures (not the client's).

A fake that accepted a forged signature or a POST would let the client's bugs through, so it is tested on its
own: signatures, keys, timestamps, parameters, weights, 429 → 418, non-GET refusal, the ticker beside it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Iterator
from urllib.parse import quote

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bot.binance.signing import Ed25519KeyPair
from tests.binance.conftest import ED_KEY, HMAC_KEY, HMAC_SECRET
from tests.fakes.binance import FakeBinance

FLEX = "/sapi/v2/loan/flexible/ongoing/orders"


def query(params: list[tuple[str, str]], ts_ms: int | None = None) -> str:
    ts = int(time.time() * 1000) if ts_ms is None else ts_ms
    return "&".join(f"{k}={quote(v, safe='')}" for k, v in [*params, ("timestamp", str(ts))])


def hmac_sign(payload: str, secret: str = HMAC_SECRET) -> str:
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


@pytest.fixture
def http(fake: FakeBinance) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fake.url, timeout=5) as client:
        yield client


def get(http: httpx.Client, path: str, payload: str, signature: str, key: str | None = HMAC_KEY) -> httpx.Response:
    headers = {"X-MBX-APIKEY": key} if key else {}
    return http.get(f"{path}?{payload}&signature={quote(signature, safe='')}", headers=headers)


def error(response: httpx.Response) -> tuple[int, int]:
    return response.status_code, response.json()["code"]


def test_a_correct_hmac_signature_is_accepted_in_either_case(http: httpx.Client) -> None:
    payload = query([("limit", "5")])
    ok = get(http, FLEX, payload, hmac_sign(payload).upper())  # HMAC signatures are case-insensitive
    assert ok.status_code == 200 and ok.json() == {"rows": [], "total": 0}
    assert ok.headers["X-SAPI-USED-IP-WEIGHT-1M"] == "300"


def test_forged_or_tampered_signatures_are_refused(http: httpx.Client, ed_pair: Ed25519KeyPair) -> None:
    payload = query([("limit", "5")])
    assert error(get(http, FLEX, payload, hmac_sign(payload, "not-the-secret"))) == (400, -1022)
    tampered = payload.replace("limit=5", "limit=6")
    assert error(get(http, FLEX, tampered, hmac_sign(payload))) == (400, -1022)
    stranger = base64.b64encode(Ed25519PrivateKey.generate().sign(payload.encode())).decode()
    assert error(get(http, FLEX, payload, stranger, key=ED_KEY)) == (400, -1022)
    assert error(get(http, FLEX, payload, "!!notbase64", key=ED_KEY)) == (400, -1022)


def test_an_ed25519_signature_over_the_payload_is_accepted(http: httpx.Client, ed_pair: Ed25519KeyPair) -> None:
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    key = load_pem_private_key(ed_pair.private_key_pem.reveal().encode(), password=None)
    assert isinstance(key, Ed25519PrivateKey)
    payload = query([])
    signature = base64.b64encode(key.sign(payload.encode())).decode()
    assert get(http, FLEX, payload, signature, key=ED_KEY).status_code == 200


@pytest.mark.parametrize(("key", "expected"), [(None, (401, -2014)), ("unknown", (401, -2015))])
def test_a_missing_or_unknown_key_is_refused(http: httpx.Client, key: str | None, expected: tuple[int, int]) -> None:
    payload = query([])
    assert error(get(http, FLEX, payload, hmac_sign(payload), key=key)) == expected


@pytest.mark.parametrize(("offset_ms", "message"), [
    (-5_001, "outside of the recvWindow"),  # older than the default recvWindow of 5000
    (1_500, "1000ms ahead"),  # more than 1 s in the future
])
def test_timestamps_outside_the_window_are_minus_1021(http: httpx.Client, fake: FakeBinance, offset_ms: int,
                                                      message: str) -> None:
    payload = query([], fake.now_ms() + offset_ms)
    response = get(http, FLEX, payload, hmac_sign(payload))
    assert error(response) == (400, -1021) and message in response.json()["msg"]


def test_a_wider_recv_window_accepts_an_older_timestamp(http: httpx.Client, fake: FakeBinance) -> None:
    payload = query([("recvWindow", "10000")], fake.now_ms() - 5_001)
    assert get(http, FLEX, payload, hmac_sign(payload)).status_code == 200
    too_wide = query([("recvWindow", "60001")])
    assert error(get(http, FLEX, too_wide, hmac_sign(too_wide))) == (400, -1131)


def test_parameters_are_checked_like_binance(http: httpx.Client) -> None:
    cases = [
        (FLEX, [("limit", "101")], -1130),
        (FLEX, [("colour", "red")], -1104),
        (FLEX, [("limit", "5"), ("limit", "6")], -1101),
        ("/sapi/v2/loan/interestRateHistory", [("recvWindow", "5000")], -1102),  # coin is mandatory
    ]
    for path, params, code in cases:
        payload = query(params)
        assert error(get(http, path, payload, hmac_sign(payload))) == (400, code), (path, params)
    no_timestamp = "limit=5"
    assert error(get(http, FLEX, no_timestamp, hmac_sign(no_timestamp))) == (400, -1102)


def test_weight_429_with_retry_after_then_418_for_a_client_that_keeps_going(http: httpx.Client,
                                                                            fake: FakeBinance) -> None:
    fake.sapi_limit, fake.ban_after = 1000, 2
    fake.advance(((15_000 - fake.now_ms() % 60_000) % 60_000) / 1000)  # 15 s past a minute
    statuses, weights = [], []
    for _ in range(6):
        payload = query([], fake.now_ms())
        response = get(http, FLEX, payload, hmac_sign(payload))
        statuses.append(response.status_code)
        weights.append(response.headers.get("X-SAPI-USED-IP-WEIGHT-1M"))
        if response.status_code == 429:
            assert response.headers["Retry-After"] == "45" and response.json()["code"] == -1003
    assert statuses == [200, 200, 200, 429, 429, 418]
    assert weights == ["300", "600", "900", "900", "900", None]
    assert http.get("/api/v3/time").status_code == 418  # an IP ban covers every path
    fake.advance(121)
    assert http.get("/api/v3/time").status_code == 200


def test_every_non_get_is_refused_and_counted() -> None:
    with FakeBinance({"BTC": "50000"}) as fake, httpx.Client(base_url=fake.url) as http:
        fake.add_account(HMAC_KEY, hmac_secret=HMAC_SECRET)
        payload = query([])
        signed = f"{FLEX}?{payload}&signature={hmac_sign(payload)}"  # a valid signature does not help
        assert error(http.post(signed, headers={"X-MBX-APIKEY": HMAC_KEY})) == (405, -1000)
        assert http.post("/api/v3/ticker/price").status_code == 405
        assert fake.non_get_requests == 2 and fake.used_weight(FLEX) == 0


def test_server_time_and_the_public_ticker_are_served_too(fake: FakeBinance, http: httpx.Client) -> None:
    fake.advance(10)
    response = http.get("/api/v3/time")
    assert abs(response.json()["serverTime"] - (time.time() * 1000 + 10_000)) < 1_000
    assert response.headers["X-MBX-USED-WEIGHT-1M"] == "1"
    ticker = http.get("/api/v3/ticker/price", params={"symbol": "BTCUSDT"})
    assert ticker.json() == {"symbol": "BTCUSDT", "price": "50000.00000000"}


def test_documented_json_shapes(fake: FakeBinance, http: httpx.Client) -> None:
    fake.add_flexible_loan(HMAC_KEY, "USDT", "15000", "BTC", "0.5", "0.6")
    fake.add_vip_loan(HMAC_KEY, 1, "USDT", "100", ["BNB", "BTC"], "300", "0.33")
    shapes = {
        FLEX: {"loanCoin", "totalDebt", "collateralCoin", "collateralAmount", "currentLTV"},
        "/sapi/v2/loan/flexible/collateral/data": {"collateralCoin", "initialLTV", "marginCallLTV",
                                                   "liquidationLTV", "maxLimit"},
        "/sapi/v1/loan/vip/ongoing/orders": {"orderId", "loanCoin", "totalDebt", "loanRate", "residualInterest",
                                             "collateralAccountId", "collateralCoin", "lockedCollateralValue",
                                             "totalCollateralValueAfterHaircut", "currentLTV", "expirationTime",
                                             "loanDate", "loanTerm"},
    }
    for path, fields in shapes.items():
        payload = query([])
        body = get(http, path, payload, hmac_sign(payload)).json()
        assert set(body) == {"rows", "total"} and set(body["rows"][0]) == fields, path
        assert all(isinstance(v, str) for k, v in body["rows"][0].items() if k not in {"orderId", "expirationTime"})
