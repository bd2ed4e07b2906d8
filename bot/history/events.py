"""Named historical crashes shipped with loandesk, and running a borrower's position through one.

Each event names real Binance spot price files in this folder (copied verbatim from ``shared/data/prices``;
provenance in ``README.md``). ``backtest_event`` does not replay the historical *prices* — a 2020 BTC price
means nothing to a loan opened at today's price — but the historical *path*: the event's relative moves
applied to today's price (``today × close_k / close_0``), at the event's own timestamps, so the chart and the
report still say "2020-03-13T01:00Z". Hourly interest accrues over the event's duration as it would have.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from domain.analysis.backtest import BacktestError, BacktestResult, backtest, scale_to
from domain.markets import QUOTE, Catalog
from domain.prices import PriceSeries, read_price_csv

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class HistoricalEvent:
    name: str
    title: str
    summary: str
    files: Mapping[str, str]  # asset → file in this folder
    source: str


_CDD = ("Binance spot 1h klines via CryptoDataDownload exports (GitHub andrewsiah/crypto-historical-data "
        "@bcf8fc9, zuvelatamara/Data-Crypto2 @5451571); see README.md")
EVENTS: dict[str, HistoricalEvent] = {e.name: e for e in (
    HistoricalEvent("march2020", "March 2020 (COVID crash)",
                    "BTC −53% and ETH −59% close to close, 8 → 13 March, hourly",
                    {"BTC": "BTCUSDT_1h_2020-03-08_2020-03-20.csv", "ETH": "ETHUSDT_1h_2020-03-08_2020-03-20.csv"},
                    _CDD),
    HistoricalEvent("may2021", "May 2021 crash",
                    "BTC −44% and ETH −57% close to close, 12 → 23 May (19 May sell-off), hourly",
                    {"BTC": "BTCUSDT_1h_2021-05-12_2021-05-26.csv", "ETH": "ETHUSDT_1h_2021-05-12_2021-05-26.csv"},
                    _CDD),
    HistoricalEvent("dec2021", "December 2021 weekend crash",
                    "BTC −21% and ETH −19% close to close, 1 → 4 December, hourly",
                    {"BTC": "BTCUSDT_1h_2021-12-01_2021-12-05.csv", "ETH": "ETHUSDT_1h_2021-12-01_2021-12-05.csv"},
                    _CDD),
    HistoricalEvent("aug2024", "August 2024 (yen carry-trade unwind)",
                    "BTC −15% and ETH −21% close to close within 5 August, by the minute",
                    {"BTC": "BTCUSDT_1m_2024-08-05_2024-08-05.csv", "ETH": "ETHUSDT_1m_2024-08-05_2024-08-05.csv"},
                    "Binance spot 1m klines (Binance Vision daily files) via GitHub LKHJAR001/STA5071Z-Optim "
                    "@8826049; see README.md"),
)}


def event(name: str) -> HistoricalEvent:
    key = name.strip().lower().replace(" ", "").replace("-", "").replace("_", "")
    found = EVENTS.get(key)
    if found is None:
        raise BacktestError(f"no historical event '{name}' (choose one of: {', '.join(EVENTS)})")
    return found


def event_prices(name: str, asset: str) -> PriceSeries:
    """The event's historical closes of ``asset`` (USDT prices, as recorded)."""
    ev = event(name)
    file = ev.files.get(asset)
    if file is None:
        raise BacktestError(f"{ev.title} has no {asset} prices (it has {', '.join(ev.files)})")
    return read_price_csv(HERE / file, "close", f"{ev.name} {asset}")


def backtest_event(catalog: Catalog, loan_amount: Decimal, loan_asset: str, collateral_amount: Decimal,
                   collateral_asset: str, event_name: str, today: Mapping[str, Decimal],
                   apr: Decimal | None = None, asset: str | None = None) -> BacktestResult:
    """Run a position (its current debt and collateral) through a named event, scaled to ``today``'s prices.

    Each non-stablecoin asset of the pair follows the event's path of the same asset; ``asset`` makes the
    collateral follow another asset's path instead (e.g. SOL collateral through BTC's March 2020), since only
    BTC and ETH histories ship. ``apr`` fixes the rate (e.g. the loan asset's current APR).
    """
    ev = event(event_name)
    paths: dict[str, PriceSeries] = {}
    for own, follows in ((collateral_asset, asset or collateral_asset), (loan_asset, loan_asset)):
        if own == QUOTE or catalog.is_stable(own):
            continue
        now = today.get(own)
        if now is None or now <= 0:
            raise BacktestError(f"no current price for {own}")
        if follows not in ev.files:
            raise BacktestError(f"{ev.title} has no {follows} prices (it has {', '.join(ev.files)}); "
                                f"pick one of those as the path to follow")
        paths[own] = scale_to(event_prices(ev.name, follows), now)
    return backtest(catalog, loan_amount, loan_asset, collateral_amount, collateral_asset, paths, apr)
