"""One parser per documented response: Binance's JSON field names → the dataclasses in ``models``.

Each function takes one row (a :class:`~bot.binance.models.Row`) of the endpoint's documented example, so a
renamed or missing field fails loudly here, in one place, with the field's name.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from bot.binance.models import (
    ApiRestrictions,
    CollateralThresholds,
    FlexibleLoan,
    FlexibleRepayment,
    InterestRate,
    Liquidation,
    LoanableAsset,
    Row,
    VipLoan,
    VipRepayment,
)

# VIP "loanRate" for a loan on a flexible rate (the docs: ``"loanRate": "0.0123", // For flexible loan
# "flexible rate"``).
FLEXIBLE_RATE = "flexible rate"


def api_restrictions(doc: Any, path: str) -> ApiRestrictions:
    """Every boolean field is kept by name, so a permission Binance adds later is still seen (and, being
    unknown, treated as able to write by :mod:`bot.binance.permissions`)."""
    row = Row(doc, path)
    row.flag("enableReading")  # the one field every answer must have
    flags = {k: v for k, v in row.data.items() if isinstance(v, bool) and k != "ipRestrict"}
    return ApiRestrictions(
        flags=flags,
        ip_restrict=bool(row.data.get("ipRestrict", False)),
        create_time=row.optional_time("createTime"),
    )


def flexible_loan(row: Row) -> FlexibleLoan:
    return FlexibleLoan(
        loan_coin=row.text("loanCoin"),
        total_debt=row.decimal("totalDebt"),
        collateral_coin=row.text("collateralCoin"),
        collateral_amount=row.decimal("collateralAmount"),
        current_ltv=row.decimal("currentLTV"),
    )


def collateral_thresholds(row: Row) -> CollateralThresholds:
    return CollateralThresholds(
        coin=row.text("collateralCoin"),
        initial_ltv=row.decimal("initialLTV"),
        margin_call_ltv=row.decimal("marginCallLTV"),
        liquidation_ltv=row.decimal("liquidationLTV"),
        max_limit=row.decimal("maxLimit"),
    )


def loanable_asset(row: Row) -> LoanableAsset:
    return LoanableAsset(
        coin=row.text("loanCoin"),
        flexible_interest_rate=row.decimal("flexibleInterestRate"),
        min_limit=row.decimal("flexibleMinLimit"),
        max_limit=row.decimal("flexibleMaxLimit"),
    )


def interest_rate(row: Row) -> InterestRate:
    return InterestRate(coin=row.text("coin"), annualized_rate=row.decimal("annualizedInterestRate"),
                        time=row.time("time"))


def vip_loan(row: Row) -> VipLoan:
    rate: Decimal | None = None
    if row.text("loanRate").strip().lower() != FLEXIBLE_RATE:
        rate = row.decimal("loanRate")
    return VipLoan(
        order_id=row.integer("orderId"),
        loan_coin=row.text("loanCoin"),
        total_debt=row.decimal("totalDebt"),
        loan_rate=rate,
        residual_interest=row.decimal("residualInterest"),
        collateral_account_ids=row.coins("collateralAccountId"),
        collateral_coins=row.coins("collateralCoin"),
        collateral_value_after_haircut=row.decimal("totalCollateralValueAfterHaircut"),
        locked_collateral_value=row.decimal("lockedCollateralValue"),
        current_ltv=row.decimal("currentLTV"),
        expiration_time=row.optional_time("expirationTime"),
        loan_date=row.optional_time("loanDate"),
        loan_term=row.text("loanTerm"),
    )


def liquidation(row: Row) -> Liquidation:
    return Liquidation(
        loan_coin=row.text("loanCoin"),
        liquidation_debt=row.decimal("liquidationDebt"),
        collateral_coin=row.text("collateralCoin"),
        liquidation_collateral_amount=row.decimal("liquidationCollateralAmount"),
        return_collateral_amount=row.decimal("returnCollateralAmount"),
        liquidation_fee=row.decimal("liquidationFee"),
        liquidation_starting_price=row.decimal("liquidationStartingPrice"),
        liquidation_starting_time=row.time("liquidationStartingTime"),
        status=row.text("status"),
    )


def flexible_repayment(row: Row) -> FlexibleRepayment:
    return FlexibleRepayment(
        loan_coin=row.text("loanCoin"),
        repay_amount=row.decimal("repayAmount"),
        collateral_coin=row.text("collateralCoin"),
        collateral_return=row.decimal("collateralReturn"),
        status=row.text("repayStatus"),
        repay_time=row.time("repayTime"),
    )


def vip_repayment(row: Row) -> VipRepayment:
    return VipRepayment(
        order_id=row.integer("orderId"),
        loan_coin=row.text("loanCoin"),
        repay_amount=row.decimal("repayAmount"),
        collateral_coins=row.coins("collateralCoin"),
        status=row.text("repayStatus"),
        loan_date=row.optional_time("loanDate"),
        repay_time=row.time("repayTime"),
    )
