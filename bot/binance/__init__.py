"""Read-only access to Binance accounts (SPEC §9): a signed, GET-only client of our own on httpx.

Why our own: Binance's official Python connector is synchronous (requests) and pins its own base package,
while loandesk runs on asyncio beside python-telegram-bot; the few endpoints we need are plain signed GETs.

* :mod:`~bot.binance.signing`: payloads, HMAC-SHA256 and Ed25519 signatures, ``Secret``, key generation;
* :mod:`~bot.binance.transport`: ``SignedTransport``, the only sender: GET, clock offset, weight, retries;
* :mod:`~bot.binance.client`: ``BinanceAccount``, one linked account's endpoints;
* :mod:`~bot.binance.endpoints`: every endpoint with its documented weight (the one table);
* :mod:`~bot.binance.budget`: weight per endpoint per minute, and how often N accounts may sync;
* :mod:`~bot.binance.permissions`: which enabled permissions make a key unfit to keep;
* :mod:`~bot.binance.models` / :mod:`~bot.binance.responses`: the answers as frozen dataclasses of Decimals;
* :mod:`~bot.binance.errors`: one exception per thing the caller must do.
"""

from __future__ import annotations

from bot.binance.budget import SyncPlan, WeightBudget, max_accounts, plan_syncs
from bot.binance.client import BinanceAccount
from bot.binance.errors import (
    Banned,
    BinanceApiError,
    BinanceError,
    ClockOutOfSync,
    KeyRejected,
    RateLimited,
    Unavailable,
)
from bot.binance.models import (
    ApiRestrictions,
    CollateralThresholds,
    FlexibleLoan,
    FlexibleRepayment,
    InterestRate,
    Liquidation,
    LoanableAsset,
    Page,
    VipLoan,
    VipRepayment,
)
from bot.binance.permissions import can_read, refusal, write_permissions
from bot.binance.signing import Ed25519KeyPair, Ed25519Signer, HmacSigner, Secret, Signer, generate_ed25519

__all__ = [
    "ApiRestrictions",
    "Banned",
    "BinanceAccount",
    "BinanceApiError",
    "BinanceError",
    "ClockOutOfSync",
    "CollateralThresholds",
    "Ed25519KeyPair",
    "Ed25519Signer",
    "FlexibleLoan",
    "FlexibleRepayment",
    "HmacSigner",
    "InterestRate",
    "KeyRejected",
    "Liquidation",
    "LoanableAsset",
    "Page",
    "RateLimited",
    "Secret",
    "Signer",
    "SyncPlan",
    "Unavailable",
    "VipLoan",
    "VipRepayment",
    "WeightBudget",
    "can_read",
    "generate_ed25519",
    "max_accounts",
    "plan_syncs",
    "refusal",
    "write_permissions",
]
