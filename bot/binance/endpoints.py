"""Every Binance endpoint loandesk calls, with its documented weight and rate-limit pool: the one table.

Weights are Binance's own ("Request Weight(IP)" on each endpoint's page in the Binance developer docs,
read 2026): Crypto Loan → Flexible Rate, VIP Loan, Wallet → Account, and the spot REST "Check server time".

| GET endpoint                                 | weight | pool                | docs page ("Get …")                |
|----------------------------------------------|-------:|---------------------|------------------------------------|
| /api/v3/time                                 |      1 | /api/* shared, 6000 | Check server time                  |
| /sapi/v1/account/apiRestrictions             |      1 | own, 12000          | API Key Permission                 |
| /sapi/v2/loan/flexible/ongoing/orders        |    300 | own, 12000          | Flexible Loan Ongoing Orders       |
| /sapi/v2/loan/flexible/collateral/data       |    400 | own, 12000          | Flexible Loan Collateral Assets Data|
| /sapi/v2/loan/flexible/loanable/data         |    400 | own, 12000          | Flexible Loan Assets Data          |
| /sapi/v2/loan/interestRateHistory            |    400 | own, 12000          | Flexible Loan Interest Rate History|
| /sapi/v2/loan/flexible/liquidation/history   |    400 | own, 12000          | Flexible Loan Liquidation History  |
| /sapi/v2/loan/flexible/repay/history         |    400 | own, 12000          | Flexible Loan Repayment History    |
| /sapi/v1/loan/vip/ongoing/orders             |    400 | own, 12000          | VIP Loan Ongoing Orders            |
| /sapi/v1/loan/vip/repay/history              |    400 | own, 12000          | VIP Loan Repayment History         |

Limits: every ``/api/*`` request shares one pool of 6,000 weight a minute per IP (header
``X-MBX-USED-WEIGHT-1M``); each IP-limited ``/sapi/*`` endpoint has its **own** 12,000 a minute per IP (header
``X-SAPI-USED-IP-WEIGHT-1M``, the weight used on that endpoint). Minutes are calendar minutes: a request at
00:01:23 counts towards the 00:01:00 minute.
"""

from __future__ import annotations

from dataclasses import dataclass

API_POOL = "/api/*"
API_LIMIT_PER_MINUTE = 6_000
SAPI_IP_LIMIT_PER_MINUTE = 12_000

SAPI_WEIGHT_HEADER = "X-SAPI-USED-IP-WEIGHT-1M"
API_WEIGHT_HEADER = "X-MBX-USED-WEIGHT-1M"


@dataclass(frozen=True)
class Endpoint:
    """One GET endpoint: its path, weight, whether it is signed, and the pool its weight counts against."""

    path: str
    weight: int
    signed: bool = True

    @property
    def pool(self) -> str:
        """Where the weight counts: the shared ``/api/*`` pool, or the SAPI endpoint's own."""
        return API_POOL if self.path.startswith("/api/") else self.path

    @property
    def limit(self) -> int:
        """Weight a minute per IP in that pool."""
        return API_LIMIT_PER_MINUTE if self.pool == API_POOL else SAPI_IP_LIMIT_PER_MINUTE

    @property
    def weight_header(self) -> str:
        return API_WEIGHT_HEADER if self.pool == API_POOL else SAPI_WEIGHT_HEADER


SERVER_TIME = Endpoint("/api/v3/time", 1, signed=False)
API_RESTRICTIONS = Endpoint("/sapi/v1/account/apiRestrictions", 1)
FLEXIBLE_ONGOING_ORDERS = Endpoint("/sapi/v2/loan/flexible/ongoing/orders", 300)
FLEXIBLE_COLLATERAL_DATA = Endpoint("/sapi/v2/loan/flexible/collateral/data", 400)
FLEXIBLE_LOANABLE_DATA = Endpoint("/sapi/v2/loan/flexible/loanable/data", 400)
INTEREST_RATE_HISTORY = Endpoint("/sapi/v2/loan/interestRateHistory", 400)
FLEXIBLE_LIQUIDATION_HISTORY = Endpoint("/sapi/v2/loan/flexible/liquidation/history", 400)
FLEXIBLE_REPAY_HISTORY = Endpoint("/sapi/v2/loan/flexible/repay/history", 400)
VIP_ONGOING_ORDERS = Endpoint("/sapi/v1/loan/vip/ongoing/orders", 400)
VIP_REPAY_HISTORY = Endpoint("/sapi/v1/loan/vip/repay/history", 400)

ENDPOINTS: dict[str, Endpoint] = {
    e.path: e
    for e in (
        SERVER_TIME,
        API_RESTRICTIONS,
        FLEXIBLE_ONGOING_ORDERS,
        FLEXIBLE_COLLATERAL_DATA,
        FLEXIBLE_LOANABLE_DATA,
        INTEREST_RATE_HISTORY,
        FLEXIBLE_LIQUIDATION_HISTORY,
        FLEXIBLE_REPAY_HISTORY,
        VIP_ONGOING_ORDERS,
        VIP_REPAY_HISTORY,
    )
}

# What one routine sync of one linked account calls (one page each); thresholds and rates are cached by the
# caller and refreshed far less often, and the histories are read only when a position disappears.
SYNC_ENDPOINTS: tuple[Endpoint, ...] = (FLEXIBLE_ONGOING_ORDERS, VIP_ONGOING_ORDERS)

# Paging limits shared by every paged loan endpoint ("current": 1..1000, "limit": 1..100, default 10).
MAX_PAGE = 1_000
MAX_PAGE_SIZE = 100
