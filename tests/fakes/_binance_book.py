"""The fake Binance's books: accounts keyed by API key, their loans and histories, kept as Binance's JSON rows.

Every row is stored exactly as the documented response example shows it (decimals as strings, times as
millisecond integers, VIP ``loanDate``/``repayTime``/``orderId`` as strings), so the server only slices and
filters. The scripting methods change the books the way Binance would: :meth:`BinanceBook.liquidate` removes the
loan and writes a liquidation-history row with the fee and what came back, :meth:`BinanceBook.repay` writes a
repay-history row, :meth:`BinanceBook.revoke` makes the key answer -2015. Floats are refused everywhere.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, ROUND_UP, Decimal
from typing import Any

Number = str | int | Decimal
EIGHT = Decimal("0.00000001")

# A key as Binance creates it with only "Enable Reading" ticked (the fields of the docs' response example).
READ_ONLY_PERMISSIONS: dict[str, Any] = {
    "ipRestrict": False,
    "createTime": 1698645219000,
    "enableReading": True,
    "enableWithdrawals": False,
    "enableInternalTransfer": False,
    "enableMargin": False,
    "enableFutures": False,
    "permitsUniversalTransfer": False,
    "enableVanillaOptions": False,
    "enableFixApiTrade": False,
    "enableFixReadOnly": False,
    "enableSpotAndMarginTrading": False,
    "enablePortfolioMarginTrading": False,
}

# Binance's flexible-loan levels (78/85/91 % for majors and stablecoins, 70 % initial for SOL and XRP).
DEFAULT_COLLATERAL = [
    {"collateralCoin": coin, "initialLTV": initial, "marginCallLTV": "0.85", "liquidationLTV": "0.91",
     "maxLimit": limit}
    for coin, initial, limit in [("BTC", "0.78", "5000000"), ("ETH", "0.78", "3000000"), ("BNB", "0.78", "1000000"),
                                 ("USDC", "0.78", "2000000"), ("SOL", "0.70", "500000"), ("XRP", "0.70", "300000")]
]
DEFAULT_LOANABLE = [
    {"loanCoin": coin, "flexibleInterestRate": hourly, "flexibleMinLimit": low, "flexibleMaxLimit": high}
    for coin, hourly, low, high in [("USDT", "0.00000700", "10", "3000000"), ("USDC", "0.00000650", "10", "3000000"),
                                    ("BTC", "0.00000120", "0.0001", "100"), ("ETH", "0.00000250", "0.001", "2000")]
]


def dec(value: Number) -> Decimal:
    if isinstance(value, float):
        raise TypeError("amounts are strings, ints or Decimals, never floats")
    return Decimal(value)


def text(value: Number) -> str:
    """Binance's string form of a decimal: plain digits, no exponent, no trailing zeros beyond the value."""
    number = dec(value)
    return format(number.normalize(), "f") if number == number.to_integral() else format(number, "f")


@dataclass
class FakeAccount:
    """One API key and everything Binance would answer for it."""

    api_key: str
    hmac_secret: str | None = None
    ed25519_public_key: str | None = None  # PEM, as pasted into API Management
    permissions: dict[str, Any] = field(default_factory=lambda: dict(READ_ONLY_PERMISSIONS))
    revoked: bool = False
    flexible_loans: list[dict[str, Any]] = field(default_factory=list)
    vip_loans: list[dict[str, Any]] = field(default_factory=list)
    collateral_data: list[dict[str, Any]] = field(default_factory=lambda: [dict(r) for r in DEFAULT_COLLATERAL])
    loanable_data: list[dict[str, Any]] = field(default_factory=lambda: [dict(r) for r in DEFAULT_LOANABLE])
    rate_history: list[dict[str, Any]] = field(default_factory=list)
    liquidation_history: list[dict[str, Any]] = field(default_factory=list)
    repay_history: list[dict[str, Any]] = field(default_factory=list)
    vip_repay_history: list[dict[str, Any]] = field(default_factory=list)


class BinanceBook:
    """Accounts and the ways a test changes them; mixed into ``FakeBinance`` (which supplies ``now_ms``)."""

    accounts: dict[str, FakeAccount]
    _book_lock: threading.RLock
    now_ms: Callable[[], int]

    def _init_book(self) -> None:
        self.accounts = {}
        self._book_lock = threading.RLock()

    def add_account(self, api_key: str, *, hmac_secret: str | None = None, ed25519_public_key: str | None = None,
                    **permissions: bool) -> FakeAccount:
        """A key with an HMAC secret or an Ed25519 public key; ``permissions`` override the read-only defaults."""
        if (hmac_secret is None) == (ed25519_public_key is None):
            raise ValueError("give exactly one of hmac_secret and ed25519_public_key")
        account = FakeAccount(api_key, hmac_secret=hmac_secret, ed25519_public_key=ed25519_public_key)
        account.permissions.update(permissions)
        with self._book_lock:
            self.accounts[api_key] = account
        return account

    def account(self, api_key: str) -> FakeAccount:
        with self._book_lock:
            return self.accounts[api_key]

    def revoke(self, api_key: str) -> None:
        """The borrower deleted the key: every request with it answers -2015."""
        with self._book_lock:
            self.accounts[api_key].revoked = True

    def set_permissions(self, api_key: str, **permissions: bool) -> None:
        """Tick or untick boxes in API Management, e.g. ``enableWithdrawals=True``."""
        with self._book_lock:
            self.accounts[api_key].permissions.update(permissions)

    def add_flexible_loan(self, api_key: str, loan_coin: str, total_debt: Number, collateral_coin: str,
                          collateral_amount: Number, current_ltv: Number) -> None:
        """An ongoing Flexible Loan v2 order; a second loan on the same pair replaces the first (one per pair)."""
        row = {"loanCoin": loan_coin, "totalDebt": text(total_debt), "collateralCoin": collateral_coin,
               "collateralAmount": text(collateral_amount), "currentLTV": text(current_ltv)}
        with self._book_lock:
            loans = self.accounts[api_key].flexible_loans
            loans[:] = [r for r in loans if (r["loanCoin"], r["collateralCoin"]) != (loan_coin, collateral_coin)]
            loans.append(row)

    def add_vip_loan(self, api_key: str, order_id: int, loan_coin: str, total_debt: Number,
                     collateral_coins: list[str], collateral_value_after_haircut: Number, current_ltv: Number, *,
                     loan_rate: Number | None = None, residual_interest: Number = "0",
                     expiration_time: int = 0, loan_date: int | None = None, loan_term: str = "open term") -> None:
        """A VIP ongoing order; ``loan_rate=None`` is a flexible rate, ``expiration_time=0`` an open term."""
        row = {
            "orderId": order_id, "loanCoin": loan_coin, "totalDebt": text(total_debt),
            "loanRate": "flexible rate" if loan_rate is None else text(loan_rate),
            "residualInterest": text(residual_interest),
            "collateralAccountId": ",".join(str(10_000_000 + i) for i in range(len(collateral_coins))),
            "collateralCoin": ",".join(collateral_coins),
            "totalCollateralValueAfterHaircut": text(collateral_value_after_haircut),
            "lockedCollateralValue": text(collateral_value_after_haircut),
            "currentLTV": text(current_ltv), "expirationTime": expiration_time,
            "loanDate": str(self.now_ms() if loan_date is None else loan_date), "loanTerm": loan_term,
        }
        with self._book_lock:
            self.accounts[api_key].vip_loans.append(row)

    def _take_flexible(self, api_key: str, loan_coin: str, collateral_coin: str) -> dict[str, Any]:
        loans = self.accounts[api_key].flexible_loans
        for row in loans:
            if (row["loanCoin"], row["collateralCoin"]) == (loan_coin, collateral_coin):
                return row
        raise KeyError(f"{api_key} has no flexible loan of {loan_coin} against {collateral_coin}")

    def liquidate(self, api_key: str, loan_coin: str, collateral_coin: str, *, price: Number,
                  fee_rate: Number = "0.02") -> dict[str, Any]:
        """Binance liquidates the loan at ``price`` (loan coin per collateral coin): collateral worth the debt
        is sold, a fee of ``fee_rate`` of it (in the collateral coin) is taken, the rest comes back. The order
        disappears and a liquidation-history row (returned) appears."""
        with self._book_lock:
            loan = self._take_flexible(api_key, loan_coin, collateral_coin)
            debt, collateral = dec(loan["totalDebt"]), dec(loan["collateralAmount"])
            sold = (debt / dec(price)).quantize(EIGHT, ROUND_UP)
            fee = (sold * dec(fee_rate)).quantize(EIGHT, ROUND_UP)
            taken = min(collateral, sold + fee)
            record = {
                "loanCoin": loan_coin, "liquidationDebt": loan["totalDebt"], "collateralCoin": collateral_coin,
                "liquidationCollateralAmount": text(taken), "returnCollateralAmount": text(collateral - taken),
                "liquidationFee": text(min(fee, collateral - min(collateral, sold))),
                "liquidationStartingPrice": text(price), "liquidationStartingTime": self.now_ms(),
                "status": "Liquidated",
            }
            account = self.accounts[api_key]
            account.flexible_loans.remove(loan)
            account.liquidation_history.append(record)
            return record

    def repay(self, api_key: str, loan_coin: str, collateral_coin: str, amount: Number | None = None) -> dict[str, Any]:
        """The borrower repays on Binance: all of it (the order disappears, the collateral comes back) or
        ``amount`` of the loan coin (the debt shrinks, the collateral stays)."""
        with self._book_lock:
            loan = self._take_flexible(api_key, loan_coin, collateral_coin)
            debt = dec(loan["totalDebt"])
            paid = debt if amount is None else min(debt, dec(amount))
            full = paid == debt
            record = {"loanCoin": loan_coin, "repayAmount": text(paid), "collateralCoin": collateral_coin,
                      "collateralReturn": loan["collateralAmount"] if full else "0", "repayStatus": "REPAID",
                      "repayTime": self.now_ms()}
            account = self.accounts[api_key]
            if full:
                account.flexible_loans.remove(loan)
            else:
                loan["totalDebt"] = text(debt - paid)
            account.repay_history.append(record)
            return record

    def repay_vip(self, api_key: str, order_id: int, amount: Number | None = None) -> dict[str, Any]:
        """A VIP repayment: all of it (the order disappears) or ``amount``."""
        with self._book_lock:
            account = self.accounts[api_key]
            loan = next(r for r in account.vip_loans if r["orderId"] == order_id)
            debt = dec(loan["totalDebt"])
            paid = debt if amount is None else min(debt, dec(amount))
            record = {"loanCoin": loan["loanCoin"], "repayAmount": text(paid), "collateralCoin": loan["collateralCoin"],
                      "repayStatus": "Repaid", "loanDate": loan["loanDate"], "repayTime": str(self.now_ms()),
                      "orderId": str(order_id)}
            if paid == debt:
                account.vip_loans.remove(loan)
            else:
                loan["totalDebt"] = text(debt - paid)
            account.vip_repay_history.append(record)
            return record

    def set_rate(self, coin: str, annual_rate: Number, api_key: str | None = None) -> None:
        """The flexible rate of ``coin`` changes now (for one account, or all): a rate-history row, and the
        loanable data's hourly ``flexibleInterestRate`` becomes ``annual_rate / 8760`` (8 places, down)."""
        hourly = text((dec(annual_rate) / 8760).quantize(EIGHT, ROUND_DOWN))
        with self._book_lock:
            for account in [self.accounts[api_key]] if api_key else list(self.accounts.values()):
                account.rate_history.append({"coin": coin, "annualizedInterestRate": text(annual_rate),
                                             "time": self.now_ms()})
                for row in account.loanable_data:
                    if row["loanCoin"] == coin:
                        row["flexibleInterestRate"] = hourly

    def set_collateral(self, coin: str, initial_ltv: Number, margin_call_ltv: Number, liquidation_ltv: Number,
                       max_limit: Number = "1000000", api_key: str | None = None) -> None:
        """Binance changes a collateral coin's LTV levels (for one account, or all)."""
        row = {"collateralCoin": coin, "initialLTV": text(initial_ltv), "marginCallLTV": text(margin_call_ltv),
               "liquidationLTV": text(liquidation_ltv), "maxLimit": text(max_limit)}
        with self._book_lock:
            for account in [self.accounts[api_key]] if api_key else list(self.accounts.values()):
                account.collateral_data[:] = [r for r in account.collateral_data if r["collateralCoin"] != coin]
                account.collateral_data.append(dict(row))
