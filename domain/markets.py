"""The market catalog ("Loan Data"): assets, loan markets, collateral markets and product rules.

Shipped as ``markets.toml`` beside this module; an operator's edited copy replaces it. Loading validates every
field and fails with a message naming the field and what is wrong. Decimals must be written as strings.
"""

from __future__ import annotations

import copy
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from domain.money import ONE, ZERO, AmountError, to_decimal

QUOTE = "USDT"
PRODUCTS = ("flexible", "fixed", "vip")
RATE_MODELS = ("utilisation", "manual")
SHIPPED = Path(__file__).with_name("markets.toml")


class CatalogError(ValueError):
    """The catalog file (or an override) is not a valid market catalog."""


@dataclass(frozen=True)
class Asset:
    symbol: str
    precision: int = 8  # ledger decimals
    stable: bool = False
    display: int | None = None  # decimals shown to people (None: 2 for stablecoins, else ``precision``)

    @property
    def shown(self) -> int:
        return self.display if self.display is not None else min(2, self.precision) if self.stable else self.precision


@dataclass(frozen=True)
class RateModel:
    kind: str  # "utilisation" | "manual"
    base: Decimal = ZERO
    kink: Decimal = Decimal("0.8")
    slope1: Decimal = ZERO
    slope2: Decimal = ZERO

    def apr(self, utilisation: Decimal) -> Decimal:
        """APR of the kinked utilisation line (only meaningful for kind == "utilisation")."""
        u = min(max(utilisation, ZERO), ONE)
        if u <= self.kink:
            return self.base + self.slope1 * u / self.kink
        return self.base + self.slope1 + self.slope2 * (u - self.kink) / (ONE - self.kink)


@dataclass(frozen=True)
class LoanMarket:
    asset: str
    flexible_apr: Decimal
    rate_model: RateModel
    fixed_apr: Mapping[int, Decimal]
    min_borrow: Decimal
    max_borrow: Decimal
    lending_cap: Decimal


@dataclass(frozen=True)
class CollateralMarket:
    asset: str
    initial_ltv: Decimal
    margin_call_ltv: Decimal
    liquidation_ltv: Decimal
    ratio: Decimal
    max_per_account: Decimal
    earn_apr: Decimal


@dataclass(frozen=True)
class ProductRules:
    initial_ltv: Decimal | None  # None for flexible: it comes from the collateral market
    warning_ltv: Decimal
    margin_call_ltv: Decimal
    liquidation_ltv: Decimal
    liquidation_fee: Decimal
    min_order: Decimal = ZERO


@dataclass(frozen=True)
class Thresholds:
    """The LTV levels that govern one position."""

    initial: Decimal
    warning: Decimal
    margin_call: Decimal
    liquidation: Decimal
    fee: Decimal


@dataclass(frozen=True)
class DeskRules:
    rearm_gap: Decimal
    margin_call_repeat_minutes: int
    repay_spread: Decimal
    quote_seconds: int
    price_max_age_seconds: int
    price_jump: Decimal
    price_confirm_seconds: int
    price_agree: Decimal
    price_band: Decimal
    breaker_share: Decimal
    breaker_asset_share: Decimal
    breaker_min_positions: int
    protection_daily_limit: int
    liquidation_order: tuple[str, ...]
    fixed_terms: tuple[int, ...]
    late_fee_multiplier: Decimal
    grace_hours: int


@dataclass(frozen=True)
class Catalog:
    assets: Mapping[str, Asset]
    loans: Mapping[str, LoanMarket]
    collateral: Mapping[str, CollateralMarket]
    products: Mapping[str, ProductRules]
    desk: DeskRules
    raw: Mapping[str, Any]

    def precision(self, asset: str) -> int:
        a = self.assets.get(asset)
        return a.precision if a else 8

    def display(self, asset: str) -> int:
        """Decimals an amount of ``asset`` is shown with (the ledger keeps ``precision``)."""
        a = self.assets.get(asset)
        return a.shown if a else 8

    def is_stable(self, asset: str) -> bool:
        a = self.assets.get(asset)
        return bool(a and a.stable)

    def thresholds(self, product: str, collateral_asset: str | None = None) -> Thresholds:
        """Levels for a product; flexible levels come from the (single) collateral asset's market."""
        rules = self.products[product]
        if product == "flexible":
            if collateral_asset is None:
                raise ValueError("flexible thresholds need the collateral asset")
            c = self.collateral[collateral_asset]
            return Thresholds(c.initial_ltv, rules.warning_ltv, c.margin_call_ltv, c.liquidation_ltv,
                              rules.liquidation_fee)
        assert rules.initial_ltv is not None
        return Thresholds(rules.initial_ltv, rules.warning_ltv, rules.margin_call_ltv, rules.liquidation_ltv,
                          rules.liquidation_fee)

    def liquidation_rank(self, asset: str) -> tuple[int, str]:
        """Sort key of the market's liquidation order: stablecoins, BTC, ETH, then the rest by name."""
        for i, name in enumerate(self.desk.liquidation_order):
            if name == asset or (name == "stable" and self.is_stable(asset)):
                return (i, asset)
        return (len(self.desk.liquidation_order), asset)

    def with_overrides(self, overrides: Mapping[str, Any]) -> Catalog:
        """A new catalog with fields of ``overrides`` (same shape as the file) merged over this one."""
        merged = copy.deepcopy(dict(self.raw))
        _merge(merged, overrides)
        return parse_catalog(merged)


def _merge(into: dict[str, Any], extra: Mapping[str, Any]) -> None:
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = copy.deepcopy(value)


def load_catalog(path: str | Path | None = None) -> Catalog:
    """Load and validate a catalog file; ``None`` loads the shipped ``markets.toml``."""
    try:
        text = Path(path or SHIPPED).read_text(encoding="utf-8")
    except OSError as exc:
        raise CatalogError(f"cannot read the market catalog {path}: {exc.strerror}") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CatalogError(f"the market catalog {path or 'markets.toml'} is not valid TOML: {exc}") from exc
    return parse_catalog(data)


class _Reader:
    """Reads typed fields out of one table of the catalog, naming the field on any error."""

    def __init__(self, table: Mapping[str, Any], where: str) -> None:
        if not isinstance(table, Mapping):
            raise CatalogError(f"{where} must be a table")
        self.table = table
        self.where = where

    def dec(self, key: str, default: str | None = None, *, lo: Decimal | None = ZERO,
            hi: Decimal | None = None, positive: bool = False) -> Decimal:
        value = self.table.get(key, default)
        if value is None:
            raise CatalogError(f"{self.where}.{key} is missing")
        if isinstance(value, float):
            raise CatalogError(f'{self.where}.{key} = {value} is a float; write it as a string: "{value}"')
        if not isinstance(value, (str, int)) or isinstance(value, bool):
            raise CatalogError(f"{self.where}.{key} must be a decimal string, not {value!r}")
        try:
            d = to_decimal(value)
        except AmountError as exc:
            raise CatalogError(f"{self.where}.{key}: {exc}") from exc
        if positive and d <= 0:
            raise CatalogError(f"{self.where}.{key} must be greater than 0 (got {value})")
        if lo is not None and d < lo:
            raise CatalogError(f"{self.where}.{key} must be at least {lo} (got {value})")
        if hi is not None and d > hi:
            raise CatalogError(f"{self.where}.{key} must be at most {hi} (got {value})")
        return d

    def int(self, key: str, default: int | None = None, lo: int = 0, hi: int = 10**9) -> int:
        value = self.table.get(key, default)
        if isinstance(value, str) and value.isdigit():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            raise CatalogError(f"{self.where}.{key} must be a whole number (got {value!r})")
        if not lo <= value <= hi:
            raise CatalogError(f"{self.where}.{key} must be between {lo} and {hi} (got {value})")
        return value


def _symbol(name: str, where: str) -> str:
    if not (isinstance(name, str) and name.isalnum() and name.upper() == name and 2 <= len(name) <= 10):
        raise CatalogError(f"{where}: '{name}' is not an asset symbol (2–10 upper-case letters or digits)")
    return name


def _levels(where: str, initial: Decimal, warning: Decimal | None, mc: Decimal, liq: Decimal) -> None:
    if not ZERO < initial < mc < liq < ONE:
        raise CatalogError(f"{where}: need 0 < initial_ltv ({initial}) < margin_call_ltv ({mc}) "
                           f"< liquidation_ltv ({liq}) < 1")
    if warning is not None and not warning < mc:
        raise CatalogError(f"{where}: warning_ltv ({warning}) must be below margin_call_ltv ({mc})")


def parse_catalog(data: Mapping[str, Any]) -> Catalog:
    """Validate a parsed catalog (TOML or the JSON of a scenario's overrides merged in)."""
    for section in ("desk", "products", "assets", "loan", "collateral"):
        if not isinstance(data.get(section), Mapping):
            raise CatalogError(f"the market catalog has no [{section}] table")
    unit = ONE
    d = _Reader(data["desk"], "desk")
    order = data["desk"].get("liquidation_order", ["stable", "BTC", "ETH"])
    terms = data["desk"].get("fixed_terms", [7, 14, 30, 60, 90, 180])
    if not (isinstance(terms, list) and terms and all(isinstance(t, int) and t > 0 for t in terms)):
        raise CatalogError("desk.fixed_terms must be a list of whole numbers of days")
    desk = DeskRules(
        rearm_gap=d.dec("rearm_gap", "0.02", hi=unit),
        margin_call_repeat_minutes=d.int("margin_call_repeat_minutes", 60, lo=1),
        repay_spread=d.dec("repay_spread", "0.005", hi=Decimal("0.5")),
        quote_seconds=d.int("quote_seconds", 15, lo=1),
        price_max_age_seconds=d.int("price_max_age_seconds", 60, lo=1),
        price_jump=d.dec("price_jump", "0.15", positive=True, hi=unit),
        price_confirm_seconds=d.int("price_confirm_seconds", 10, lo=0, hi=3600),
        price_agree=d.dec("price_agree", "0.02", positive=True, hi=Decimal("0.5")),
        price_band=d.dec("price_band", "10", lo=Decimal("1.5"), hi=Decimal(1000)),
        breaker_share=d.dec("breaker_share", "0.5", positive=True, hi=unit),
        breaker_asset_share=d.dec("breaker_asset_share", "0.9", positive=True, hi=unit),
        breaker_min_positions=d.int("breaker_min_positions", 50, lo=1),
        protection_daily_limit=d.int("protection_daily_limit", 3, lo=1, hi=24),
        liquidation_order=tuple(str(x) for x in order),
        fixed_terms=tuple(sorted(terms)),
        late_fee_multiplier=d.dec("late_fee_multiplier", "3"),
        grace_hours=d.int("grace_hours", 24, lo=1),
    )
    assets: dict[str, Asset] = {}
    for name, spec in data["assets"].items():
        r = _Reader(spec, f"assets.{name}")
        precision = r.int("precision", 8, lo=0, hi=18)
        shown = r.int("display", precision, lo=0, hi=precision) if "display" in spec else None
        assets[_symbol(name, "assets")] = Asset(name, precision, bool(spec.get("stable", False)), shown)
    products: dict[str, ProductRules] = {}
    for name in PRODUCTS:
        if name not in data["products"]:
            raise CatalogError(f"the market catalog has no [products.{name}] table")
        r = _Reader(data["products"][name], f"products.{name}")
        initial = None if name == "flexible" else r.dec("initial_ltv", positive=True, hi=unit)
        rules = ProductRules(
            initial_ltv=initial,
            warning_ltv=r.dec("warning_ltv", positive=True, hi=unit),
            margin_call_ltv=r.dec("margin_call_ltv", positive=True, hi=unit),
            liquidation_ltv=r.dec("liquidation_ltv", positive=True, hi=unit),
            liquidation_fee=r.dec("liquidation_fee", "0.02", hi=Decimal("0.5")),
            min_order=r.dec("min_order", "0"),
        )
        if initial is not None:
            _levels(f"products.{name}", initial, rules.warning_ltv, rules.margin_call_ltv, rules.liquidation_ltv)
        products[name] = rules
    flex = products["flexible"]
    loans: dict[str, LoanMarket] = {}
    for name, spec in data["loan"].items():
        where = f"loan.{name}"
        _symbol(name, "loan")
        if name not in assets:
            assets[name] = Asset(name)
        r = _Reader(spec, where)
        kind = spec.get("rate_model", "manual")
        if kind not in RATE_MODELS:
            raise CatalogError(f"{where}.rate_model must be one of {', '.join(RATE_MODELS)} (got {kind!r})")
        model = RateModel(kind)
        if kind == "utilisation":
            model = RateModel(kind, r.dec("base", hi=unit), r.dec("kink", positive=True, hi=Decimal("0.99")),
                              r.dec("slope1", hi=Decimal(10)), r.dec("slope2", hi=Decimal(10)))
        fixed_raw = spec.get("fixed_apr", {})
        if not isinstance(fixed_raw, Mapping):
            raise CatalogError(f"{where}.fixed_apr must map term days to an APR")
        fixed: dict[int, Decimal] = {}
        fr = _Reader(fixed_raw, f"{where}.fixed_apr")
        for term in fixed_raw:
            if not str(term).isdigit() or int(term) not in desk.fixed_terms:
                raise CatalogError(f"{where}.fixed_apr: {term} is not a term in days "
                                   f"({', '.join(map(str, desk.fixed_terms))})")
            fixed[int(term)] = fr.dec(str(term), hi=Decimal(10))
        lm = LoanMarket(name, r.dec("flexible_apr", hi=Decimal(10)), model, fixed,
                        r.dec("min_borrow", "0"), r.dec("max_borrow", positive=True),
                        r.dec("lending_cap", positive=True))
        if lm.min_borrow > lm.max_borrow:
            raise CatalogError(f"{where}: min_borrow ({lm.min_borrow}) is above max_borrow ({lm.max_borrow})")
        loans[name] = lm
    collateral: dict[str, CollateralMarket] = {}
    for name, spec in data["collateral"].items():
        where = f"collateral.{name}"
        _symbol(name, "collateral")
        if name not in assets:
            assets[name] = Asset(name)
        r = _Reader(spec, where)
        cm = CollateralMarket(
            name,
            initial_ltv=r.dec("initial_ltv", "0.65", positive=True, hi=unit),
            margin_call_ltv=r.dec("margin_call_ltv", str(flex.margin_call_ltv), positive=True, hi=unit),
            liquidation_ltv=r.dec("liquidation_ltv", str(flex.liquidation_ltv), positive=True, hi=unit),
            ratio=r.dec("ratio", "1", positive=True, hi=unit),
            max_per_account=r.dec("max_per_account", positive=True),
            earn_apr=r.dec("earn_apr", "0", hi=unit),
        )
        _levels(where, cm.initial_ltv, flex.warning_ltv if flex.warning_ltv < cm.margin_call_ltv else None,
                cm.margin_call_ltv, cm.liquidation_ltv)
        collateral[name] = cm
    if QUOTE not in assets:
        raise CatalogError(f"the quote asset {QUOTE} must be listed under [assets]")
    if len(loans) == 0 or len(collateral) == 0:
        raise CatalogError("the market catalog needs at least one loan asset and one collateral asset")
    return Catalog(assets, loans, collateral, products, desk, copy.deepcopy(dict(data)))
