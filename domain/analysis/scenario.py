"""A scenario's input (``../shared/SCENARIO.md``): prices, VIP term sheets and wallets read from the parsed JSON.

Everything here only reads and validates; every problem raises ``ScenarioError`` naming the field. The time loop
and the steps are ``domain.analysis.simulate``; the JSON report is ``domain.analysis.report``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from domain.errors import InputError
from domain.inputs import decimal_of, parse_time
from domain.markets import QUOTE
from domain.positions import Source
from domain.prices import PriceSeries, read_price_csv
from domain.termsheet import TermSheet

ScenarioError = InputError  # the scenario file itself is malformed (a step the desk refuses is a ``rejected`` event)

STEP_KINDS = ("borrow", "add_collateral", "withdraw_collateral", "repay", "close", "deposit", "set_rate",
              "set_fixed_expiry", "set_protection", "set_price_alert", "resume_liquidations")


def load_prices(spec: Mapping[str, Any], resolve: Callable[[str], Path]) -> dict[str, PriceSeries]:
    series: dict[str, PriceSeries] = {}
    for asset, value in spec.items():
        s = PriceSeries()
        where = f"prices.{asset}"
        if isinstance(value, (str, int)) and not isinstance(value, bool):
            s.times, s.values, s.constant = [datetime.min.replace(tzinfo=UTC)], [decimal_of(value, where)], True
        elif isinstance(value, list):
            points = []
            for i, point in enumerate(value):
                if not (isinstance(point, list) and len(point) == 2):
                    raise ScenarioError(f"{where}[{i}] must be [time, price]")
                points.append((parse_time(point[0], f"{where}[{i}]"), decimal_of(point[1], f"{where}[{i}]")))
            points.sort(key=lambda p: p[0])
            s.times, s.values = [p[0] for p in points], [p[1] for p in points]
        elif isinstance(value, Mapping) and "csv" in value:
            s = read_price_csv(resolve(str(value["csv"])), str(value.get("column", "close")), where)
        else:
            raise ScenarioError(f"{where} must be a price, a list of [time, price] or {{\"csv\": FILE}}")
        if any(v <= 0 for v in s.values):
            raise ScenarioError(f"{where}: prices must be greater than zero")
        series[asset] = s
    return series


def parse_term_sheet(owner: str, spec: Any) -> TermSheet:
    """A ``vip`` entry of a scenario (SCENARIO.md) as an unissued term sheet."""
    where = f"vip.{owner}"
    if not isinstance(spec, Mapping):
        raise ScenarioError(f"{where} must be an object")
    loans = spec.get("loan", [QUOTE])
    if isinstance(loans, str):
        loans = [loans]
    if not isinstance(loans, list) or not loans:
        raise ScenarioError(f"{where}.loan must list loan assets")
    coll = spec.get("collateral")
    if not isinstance(coll, Mapping) or not coll:
        raise ScenarioError(f"{where}.collateral must map asset to collateral ratio")
    rate = spec.get("rate", "fixed")
    rate_value = spec.get("apr") if rate == "fixed" else spec.get("spread", spec.get("apr", "0"))
    if rate_value is None:
        raise ScenarioError(f"{where}: a fixed-rate sheet needs 'apr'")
    delay = spec.get("liquidation_delay_minutes", 0)
    if not isinstance(delay, int) or isinstance(delay, bool):
        raise ScenarioError(f"{where}.liquidation_delay_minutes must be a whole number")

    def level(key: str, default: str) -> Decimal:
        return decimal_of(spec.get(key, default), f"{where}.{key}")

    caps = spec.get("max_collateral") or {}
    if not isinstance(caps, Mapping):
        raise ScenarioError(f"{where}.max_collateral must map asset to amount")
    return TermSheet(
        owner, tuple(str(a) for a in loans), str(rate), decimal_of(rate_value, f"{where}.apr"),
        level("initial_ltv", "0.72"), level("margin_call_ltv", "0.77"), level("liquidation_ltv", "0.91"),
        {str(a): decimal_of(r, f"{where}.collateral.{a}") for a, r in coll.items()},
        str(spec.get("liquidation", "full")), delay, level("min_order", "50000"),
        decimal_of(spec["max_borrow"], f"{where}.max_borrow") if spec.get("max_borrow") is not None else None,
        {str(a): decimal_of(v, f"{where}.max_collateral.{a}") for a, v in caps.items()},
        decimal_of(spec["warning_ltv"], f"{where}.warning_ltv") if spec.get("warning_ltv") is not None else None)


def source_of(value: Any) -> Source:
    if value not in ("spot", "earn"):
        raise ScenarioError(f"the wallet must be spot or earn (got {value!r})")
    return Source(value)
