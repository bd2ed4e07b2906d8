"""Weight planning and tracking, with numbers worked out by hand.

Defaults: one sync calls flexible ongoing orders (weight 300) and VIP ongoing orders (400); each SAPI endpoint
has 12,000 a minute, of which we use half: 6,000. The VIP endpoint binds: 6000 / 400 = 15 syncs a minute,
one every 60 / 15 = 4 s, so N accounts each wait 4·N s.
"""

from __future__ import annotations

import pytest

from bot.binance.budget import WeightBudget, max_accounts, plan_syncs
from bot.binance.endpoints import API_POOL, FLEXIBLE_ONGOING_ORDERS, VIP_ONGOING_ORDERS

VIP = VIP_ONGOING_ORDERS.path
FLEX = FLEXIBLE_ONGOING_ORDERS.path


@pytest.mark.parametrize(
    ("accounts", "share", "interval", "spacing"),
    [
        (1, 0.5, 4.0, 4.0),  # 60 × 1 × 400 / 6000
        (100, 0.5, 400.0, 4.0),  # 60 × 100 × 400 / 6000
        (1000, 0.5, 4000.0, 4.0),
        (100, 1.0, 200.0, 2.0),  # the whole 12,000: 60 × 100 × 400 / 12000
        (30, 0.25, 240.0, 8.0),  # 3,000 a minute: 60 × 30 × 400 / 3000
    ],
)
def test_the_heaviest_endpoint_sets_the_interval(accounts: int, share: float, interval: float, spacing: float) -> None:
    plan = plan_syncs(accounts, share=share)
    assert (plan.interval_seconds, plan.spacing_seconds, plan.binding_endpoint) == (interval, spacing, VIP)


def test_flexible_only_syncs_are_bound_by_weight_300() -> None:
    plan = plan_syncs(50, [FLEXIBLE_ONGOING_ORDERS])
    assert (plan.interval_seconds, plan.spacing_seconds) == (150.0, 3.0)  # 60 × 50 × 300 / 6000


def test_two_pages_of_the_same_endpoint_cost_twice() -> None:
    plan = plan_syncs(10, [VIP_ONGOING_ORDERS, VIP_ONGOING_ORDERS])
    assert plan.interval_seconds == 80.0  # 60 × 10 × 800 / 6000


def test_how_many_accounts_one_ip_keeps_synced() -> None:
    assert max_accounts(60) == 15  # 6000 / 400 a minute
    assert max_accounts(300) == 75
    assert max_accounts(59.9) == 14
    assert max_accounts(60, share=1.0) == 30


def test_a_call_heavier_than_the_share_can_never_be_planned() -> None:
    with pytest.raises(ValueError):
        plan_syncs(1, {VIP: 7000})


def test_weight_counts_per_calendar_minute_and_resets_at_the_next() -> None:
    budget = WeightBudget(share=0.5)
    budget.spend(VIP, 400, at=120.0)
    budget.spend(VIP, 400, at=179.9)
    assert budget.used(VIP, at=179.9) == 800
    assert budget.used(VIP, at=180.0) == 0
    assert budget.snapshot(at=150.0) == {VIP: 800}


def test_the_header_is_the_truth_for_its_minute() -> None:
    budget = WeightBudget()
    budget.spend(FLEX, 300, at=10.0)
    budget.observe(FLEX, 2100, at=10.5)  # other processes on this IP spent 1,800 more
    assert budget.used(FLEX, at=11.0) == 2100
    budget.spend(FLEX, 300, at=12.0)
    assert budget.used(FLEX, at=12.0) == 2400


def test_a_call_that_would_pass_the_cap_waits_for_the_next_minute() -> None:
    budget = WeightBudget(share=0.5)  # cap 6000 on a SAPI endpoint
    assert budget.cap(VIP) == 6000 and budget.cap(API_POOL) == 3000
    for i in range(15):
        budget.spend(VIP, 400, at=60.0 + i)
    assert budget.used(VIP, at=75.0) == 6000
    assert budget.next_call_at(VIP, 400, at=75.0) == 120.0
    assert budget.wait_seconds(VIP, 400, at=75.0) == 45.0
    assert budget.wait_seconds(FLEX, 300, at=75.0) == 0.0  # another endpoint has its own 12,000


def test_retry_after_blocks_one_endpoint_and_a_ban_blocks_all() -> None:
    budget = WeightBudget()
    budget.block(VIP, 30, at=100.0)
    assert budget.wait_seconds(VIP, 400, at=100.0) == 30.0
    assert budget.wait_seconds(FLEX, 300, at=100.0) == 0.0
    budget.block(None, 120, at=100.0)
    assert budget.wait_seconds(FLEX, 300, at=100.0) == 120.0
    assert budget.banned_until(at=100.0) == 220.0
    assert budget.banned_until(at=220.0) is None


def test_a_call_heavier_than_the_cap_is_an_error_not_a_wait() -> None:
    with pytest.raises(ValueError):
        WeightBudget(share=0.01).next_call_at(VIP, 400, at=0.0)  # cap 120
