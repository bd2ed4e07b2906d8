"""The weights table says what Binance's docs say, and the fake (written out separately) agrees with it."""

from __future__ import annotations

from bot.binance.endpoints import API_POOL, ENDPOINTS, SYNC_ENDPOINTS
from tests.fakes._binance_routes import ROUTES

# "Request Weight(IP)" on each endpoint's page of the Binance developer docs.
DOCUMENTED = {
    "/api/v3/time": 1,
    "/sapi/v1/account/apiRestrictions": 1,
    "/sapi/v2/loan/flexible/ongoing/orders": 300,
    "/sapi/v2/loan/flexible/collateral/data": 400,
    "/sapi/v2/loan/flexible/loanable/data": 400,
    "/sapi/v2/loan/interestRateHistory": 400,
    "/sapi/v2/loan/flexible/liquidation/history": 400,
    "/sapi/v2/loan/flexible/repay/history": 400,
    "/sapi/v1/loan/vip/ongoing/orders": 400,
    "/sapi/v1/loan/vip/repay/history": 400,
}


def test_the_client_table_is_the_documented_one() -> None:
    assert {path: e.weight for path, e in ENDPOINTS.items()} == DOCUMENTED


def test_the_fake_charges_the_same_weights() -> None:
    signed = {path: weight for path, weight in DOCUMENTED.items() if path.startswith("/sapi")}
    assert {path: r.weight for path, r in ROUTES.items()} == signed


def test_pools_limits_and_headers() -> None:
    time, flex = ENDPOINTS["/api/v3/time"], ENDPOINTS["/sapi/v2/loan/flexible/ongoing/orders"]
    assert (time.pool, time.limit, time.weight_header, time.signed) == (API_POOL, 6000, "X-MBX-USED-WEIGHT-1M", False)
    assert (flex.pool, flex.limit, flex.weight_header) == (flex.path, 12000, "X-SAPI-USED-IP-WEIGHT-1M")
    assert [e.weight for e in SYNC_ENDPOINTS] == [300, 400]
