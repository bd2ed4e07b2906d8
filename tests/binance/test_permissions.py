"""A key is kept only if it reads and cannot trade, transfer or withdraw; refusals name the boxes to untick."""

from __future__ import annotations

from bot.binance.permissions import WRITE_PERMISSIONS, can_read, refusal, write_permissions
from tests.fakes._binance_book import READ_ONLY_PERMISSIONS


def test_the_documented_read_only_key_has_no_write_permission() -> None:
    assert write_permissions(READ_ONLY_PERMISSIONS) == []
    assert can_read(READ_ONLY_PERMISSIONS)
    assert refusal(READ_ONLY_PERMISSIONS) is None


def test_every_documented_write_flag_is_named_as_on_the_api_management_page() -> None:
    for field, label in WRITE_PERMISSIONS.items():
        assert write_permissions({**READ_ONLY_PERMISSIONS, field: True}) == [label]


def test_trading_and_withdrawals_are_both_named_in_the_page_order() -> None:
    flags = {**READ_ONLY_PERMISSIONS, "enableSpotAndMarginTrading": True, "enableWithdrawals": True}
    assert write_permissions(flags) == ["Enable Withdrawals", "Enable Spot & Margin Trading"]
    text = refusal(flags)
    assert text is not None
    assert "“Enable Withdrawals”, “Enable Spot & Margin Trading”" in text and "these" in text


def test_fix_read_only_is_harmless_but_an_unknown_new_flag_is_not() -> None:
    assert write_permissions({**READ_ONLY_PERMISSIONS, "enableFixReadOnly": True}) == []
    assert write_permissions({**READ_ONLY_PERMISSIONS, "enableEarnRedemption": True}) == ["enableEarnRedemption"]


def test_a_key_that_cannot_read_is_refused() -> None:
    flags = {**READ_ONLY_PERMISSIONS, "enableReading": False}
    assert not can_read(flags)
    assert refusal(flags) == ("This API key cannot read your account. Switch on “Enable Reading” in Binance → "
                              "API Management.")
