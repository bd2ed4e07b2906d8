"""Auto-protection rules, checked against hand computations (SPEC §8 ``/protect``)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from domain.analysis.simulate import simulate
from domain.book import MemoryBook
from domain.checks import ledger_problems
from domain.desk import Desk
from domain.errors import Rejected
from domain.loans.borrow import borrow
from domain.loans.common import BorrowRequest
from domain.loans.servicing import close
from domain.markets import load_catalog
from domain.positions import Source
from domain.watch.protection import protect, remove_protection, run_protection, set_protection
from domain.watch.sweep import sweep

T0 = datetime(2026, 1, 1, tzinfo=UTC)
CATALOG = load_catalog().with_overrides({"loan": {"USDT": {"flexible_apr": "0", "rate_model": "manual"}},
                                         "collateral": {"BTC": {"earn_apr": "0"}}})
D = Decimal
ROOT = Path(__file__).resolve().parents[2]


def desk_with_loan(spot_btc: str = "2", earn_btc: str | None = None) -> tuple[Desk, int]:
    """30,000 USDT on 1 BTC at 50,000 (LTV 60%), APR 0 so the debt stays exactly 30,000."""
    desk = Desk(CATALOG, MemoryBook())
    desk.deposit("ann", "BTC", D(spot_btc), T0)
    if earn_btc:
        desk.deposit("ann", "BTC", D(earn_btc), T0, Source.EARN)
    p, _ = borrow(desk, BorrowRequest("ann", "USDT", D(30000), {"BTC": D(1)}),
                          {"BTC": D(50000)}, T0)
    return desk, p.id


def test_top_up_from_spot_brings_the_ltv_back_to_the_target() -> None:
    desk, pid = desk_with_loan()
    set_protection(desk, "ann", pid, D("0.80"), D("0.65"), "topup", T0)
    t = T0 + timedelta(hours=30)
    prices = {"BTC": D(37000)}
    assert desk.ltv(desk.book.get_position(pid), prices, t) == D(30000) / D(37000)  # 81.08%
    [event] = run_protection(desk, prices, t)
    # c = 30000 / (0.65 × 37000) − 1 = 0.247401247401…, rounded up to the satoshi
    assert event.type == "protection" and event.data["moved"] == {"BTC": "0.24740125"}
    assert event.data["from"] == {"BTC": {"spot": "0.24740125"}} and event.data["covered"] is True
    after = desk.ltv(desk.book.get_position(pid), prices, t)
    assert after == D(30000) / (D("1.24740125") * 37000) and after <= D("0.65")
    assert desk.spot("ann", "BTC") == D("0.75259875")
    assert run_protection(desk, prices, t) == []  # now below the trigger: nothing more


def test_repay_from_spot_brings_the_ltv_back_to_the_target() -> None:
    desk, pid = desk_with_loan()
    set_protection(desk, "ann", pid, D("0.80"), D("0.65"), "repay", T0)
    prices = {"BTC": D(37000)}
    [event] = run_protection(desk, prices, T0 + timedelta(hours=1))
    # r = 30000 − 0.65 × 37000 = 5950
    assert event.data["moved"] == {"USDT": "5950"}
    p = desk.book.get_position(pid)
    assert desk.debt(p, T0 + timedelta(hours=1)) == D(24050)
    assert desk.ltv(p, prices, T0 + timedelta(hours=1)) == D("0.65")
    assert desk.spot("ann", "USDT") == D(24050)


def test_a_wallet_that_cannot_cover_it_moves_what_it_has_spot_then_earn_and_says_so() -> None:
    desk, pid = desk_with_loan(spot_btc="1.1", earn_btc="0.05")
    set_protection(desk, "ann", pid, D("0.80"), D("0.65"), "topup", T0)
    [event] = run_protection(desk, {"BTC": D(37000)}, T0 + timedelta(hours=1))
    assert event.data["from"] == {"BTC": {"spot": "0.1", "earn": "0.05"}}
    assert event.data["covered"] is False and event.data["ltv"] == "0.7051"  # 30000 / (1.15 × 37000)
    assert desk.spot("ann", "BTC") == 0 and desk.earn("ann", "BTC", T0 + timedelta(hours=1)) == 0


def test_the_daily_limit_counts_attempts_and_resets_at_midnight_utc() -> None:
    desk, pid = desk_with_loan(spot_btc="1")  # nothing left in the wallet
    set_protection(desk, "ann", pid, D("0.80"), D("0.65"), "topup", T0, limit=2)
    prices = {"BTC": D(30000)}
    got = [run_protection(desk, prices, T0 + timedelta(hours=h)) for h in (1, 2, 3, 23)]
    assert [len(g) for g in got] == [1, 1, 0, 0]
    assert got[1][0].data["actions_left_today"] == 0 and got[1][0].data["moved"] == {}
    assert len(run_protection(desk, prices, T0 + timedelta(days=1))) == 1
    # re-setting the rule does not reset today's count
    set_protection(desk, "ann", pid, D("0.80"), D("0.60"), "topup", T0 + timedelta(days=1), limit=2)
    assert len(run_protection(desk, prices, T0 + timedelta(days=1, hours=1))) == 1
    assert run_protection(desk, prices, T0 + timedelta(days=1, hours=2)) == []


def test_protection_acts_before_the_sweep_could_liquidate() -> None:
    desk, pid = desk_with_loan(spot_btc="3")
    set_protection(desk, "ann", pid, D("0.80"), D("0.65"), "topup", T0)
    prices = {"BTC": D(32000)}  # 93.75%: above the 91% liquidation LTV
    run_protection(desk, prices, T0 + timedelta(hours=1))
    assert [e.type for e in sweep(desk, prices, T0 + timedelta(hours=1))] == []
    assert desk.book.get_position(pid).status.value == "open"


@pytest.mark.parametrize(("trigger", "target", "mode", "code"), [
    ("0.80", "0.85", "topup", "bad_levels"), ("0.91", "0.65", "topup", "bad_levels"),
    ("0.80", "0", "repay", "bad_levels"), ("0.80", "0.65", "sell", "bad_mode")])
def test_bad_rules_are_refused(trigger: str, target: str, mode: str, code: str) -> None:
    desk, pid = desk_with_loan()
    with pytest.raises(Rejected) as exc:
        set_protection(desk, "ann", pid, D(trigger), D(target), mode, T0)
    assert exc.value.code == code and desk.book.protection_rules() == []


def test_only_the_owner_sets_or_removes_a_rule_and_closed_positions_drop_theirs() -> None:
    desk, pid = desk_with_loan()
    with pytest.raises(Rejected):
        set_protection(desk, "bob", pid, D("0.8"), D("0.65"), "topup", T0)
    set_protection(desk, "ann", pid, D("0.8"), D("0.65"), "topup", T0)
    assert remove_protection(desk, "ann", pid) and not remove_protection(desk, "ann", pid)
    set_protection(desk, "ann", pid, D("0.8"), D("0.65"), "topup", T0)
    desk.deposit("ann", "USDT", D(1), T0)
    close(desk, "ann", pid, T0)
    assert run_protection(desk, {"BTC": D(10000)}, T0) == [] and desk.book.protection_rules() == []


def test_no_rules_costs_nothing() -> None:
    desk, _ = desk_with_loan()
    assert run_protection(desk, {}, T0) == []


def test_the_worked_scenario_matches_the_hand_computation() -> None:
    path = ROOT / "scenarios" / "protection_topup_repay.json"
    report = simulate(json.loads(path.read_text()), load_catalog(), base_dir=path.parent)
    protections = [e for e in report["events"] if e["type"] == "protection"]
    assert [(e["position"], e["at"], e["moved"], e["ltv"], e["covered"]) for e in protections] == [
        ("ANN", "2026-01-02T06:00:00Z", {"BTC": "0.24740125"}, "0.65", True),
        ("BOB", "2026-01-02T06:00:00Z", {"USDT": "5950"}, "0.65", True),
        ("CY", "2026-01-02T06:00:00Z", {"BTC": "0.15"}, "0.7051", False),
        ("CY", "2026-01-02T10:00:00Z", {}, "0.8152", False),  # 30000 / (1.15 × 32000); 2nd of 2 today
        ("CY", "2026-01-03T00:00:00Z", {}, "0.8152", False)]  # a new UTC day
    assert report["positions"]["ANN"]["collateral"] == {"BTC": "1.24740125"}
    assert report["positions"]["BOB"]["debt"] == "24050"
    assert report["wallets"]["ann"]["spot"]["BTC"] == "0.75259875"
    assert [e["reason"] for e in report["events"] if e["type"] == "rejected"] == ["bad_levels", "bad_mode"]
    assert report["ledger_balanced"] is True


def test_protect_keeps_the_ledger_balanced() -> None:
    desk, pid = desk_with_loan(spot_btc="1.1", earn_btc="0.05")
    rule = set_protection(desk, "ann", pid, D("0.80"), D("0.65"), "topup", T0)
    p = desk.book.get_position(pid)
    protect(desk, p, rule, {"BTC": D(37000)}, T0, D("0.81"))
    book = desk.book
    assert isinstance(book, MemoryBook)
    assert ledger_problems(desk, book.balances, book.shares, book.positions.values(), T0) == []
