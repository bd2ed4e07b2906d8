"""Tracked positions, worked by hand (SPEC §9): interest between edits, LTV, the lender's levels, syncs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from domain.errors import Rejected
from domain.events import Event
from domain.money import round_up
from domain.tracking import manual
from domain.tracking.position import Kind, Levels, Tracked, debt_at, ltv, price_at_level
from domain.tracking.sync import (
    LiquidationRecord,
    RepayRecord,
    Snapshot,
    explain,
    implied_collateral,
    reconcile,
)
from domain.tracking.watch import WatchRules, judge, watch_tracked

D = Decimal
T0 = datetime(2030, 1, 7, 10, 15, tzinfo=UTC)
ASSETS = {"USDT", "BTC", "ETH", "BNB"}
RULES = WatchRules(D("0.02"), timedelta(minutes=60), lambda a: 8)


def btc(price: str) -> dict[str, Decimal]:
    return {"USDT": D(1), "BTC": D(price)}


def tracked(apr: str = "0.06") -> Tracked:
    return manual.track(manual.TrackRequest("7", "USDT", D(15000), "BTC", D("0.5"), apr=D(apr)), 5, T0, ASSETS)


def test_interest_compounds_at_each_full_hour_at_the_given_apr() -> None:
    t = tracked()
    assert debt_at(t, T0 + timedelta(minutes=44)) == D(15000)  # 10:59: no HH:00 yet
    # 10:15 → 13:20 crosses 11:00, 12:00 and 13:00: 15000 × (1 + 0.06/8760)^3, r = 0.0000068493150684931…
    # (1 + r)^3 = 1 + 3r + 3r² + r³ = 1.0000205480859451…  → 15000.3082212891…
    debt = debt_at(t, T0 + timedelta(hours=3, minutes=5))
    assert round_up(debt, 8) == D("15000.30822129")
    # LTV at BTC 40,000: 15000.3082212891 / (0.5 × 40000) = 0.7500154110644…
    assert ltv(t, btc("40000"), T0 + timedelta(hours=3, minutes=5)).quantize(D("0.0000001")) == D("0.7500154")


def test_a_debt_edit_replaces_the_accrued_debt_and_interest_restarts_from_it() -> None:
    t = tracked()
    manual.edit_debt(t, D(14000), T0 + timedelta(hours=2))  # 12:15
    assert debt_at(t, T0 + timedelta(hours=2, minutes=30)) == D(14000)  # 12:45: no HH:00 since the edit
    # one HH:00 (13:00): 14000 × (1 + 0.06/8760) = 14000.09589041095890…
    assert round_up(debt_at(t, T0 + timedelta(hours=3)), 8) == D("14000.09589042")


def test_a_collateral_edit_keeps_the_interest_accrued_so_far() -> None:
    t = tracked()
    manual.edit_collateral(t, D("0.6"), T0 + timedelta(hours=1))  # 11:15: one hour accrued
    assert t.collateral == {"BTC": D("0.6")}
    assert round_up(t.debt, 8) == D("15000.10273973")  # 15000 × (1 + 0.06/8760) = 15000.102739726…


@pytest.mark.parametrize(("request_", "code"), [
    (manual.TrackRequest("7", "USDT", D(15000), "USDT", D(1)), "same_asset"),
    (manual.TrackRequest("7", "USDT", D(0), "BTC", D(1)), "bad_amount"),
    (manual.TrackRequest("7", "USDT", D(10), "DOGE", D(1)), "unknown_asset"),
    (manual.TrackRequest("7", "USDT", D(10), "BTC", D(1), Levels(D("0.91"), D("0.85"))), "bad_levels"),
    (manual.TrackRequest("7", "USDT", D(10), "BTC", D(1), apr=D("1.5")), "bad_apr"),
])
def test_bad_tracking_input_is_refused_with_a_reason(request_: manual.TrackRequest, code: str) -> None:
    with pytest.raises(Rejected) as refused:
        manual.track(request_, 1, T0, ASSETS)
    assert refused.value.code == code


def test_only_the_owner_edits_and_binance_positions_are_not_edited_by_hand() -> None:
    t = tracked()
    with pytest.raises(Rejected, match="no position #5"):
        manual.editable(t, "8", 5)
    t.lender = t.lender.BINANCE
    with pytest.raises(Rejected, match="synced from Binance"):
        manual.editable(t, "7", 5)


def test_margin_call_and_liquidation_near_fire_once_at_the_lenders_levels_and_rearm() -> None:
    t = tracked(apr="0")
    # margin call 85% at 15000 / (0.5 × 0.85) = 35,294.12; liquidation near 88% at 15000 / 0.44 = 34,090.91
    assert price_at_level(t, btc("40000"), T0, D("0.85")) == D(15000) / D("0.425")
    # 15000 / 18500 = 81.08%: past the default warning level, the margin call minus 5 points = 80%
    assert [e.type for e in judge(t, btc("37000"), T0, RULES, None)] == ["tracked_warning"]
    events = judge(t, btc("35000"), T0, RULES, None)  # 85.71%
    assert [e.type for e in events] == ["tracked_margin_call"]
    assert events[0].data["ltv"] == "0.8571" and events[0].data["lender"] == "manual"
    assert judge(t, btc("35000"), T0 + timedelta(minutes=59), RULES, None) == []
    assert [e.type for e in judge(t, btc("35000"), T0 + timedelta(minutes=60), RULES, None)] == [
        "tracked_margin_call_reminder"]
    assert [e.type for e in judge(t, btc("34000"), T0 + timedelta(minutes=61), RULES, None)] == [
        "liquidation_near"]  # 88.24% ≥ 91 − 3
    assert judge(t, btc("34000"), T0 + timedelta(minutes=62), RULES, None) == []
    # back to 83.33% (BTC 36,000): not 2 points below 85% yet; at 82.19% (36,500) it clears
    assert judge(t, btc("36000"), T0 + timedelta(minutes=63), RULES, None) == []
    assert [e.type for e in judge(t, btc("36500"), T0 + timedelta(minutes=64), RULES, None)] == [
        "tracked_margin_call_cleared"]


def test_the_warning_uses_the_borrowers_own_level_below_the_margin_call() -> None:
    t = tracked(apr="0")
    assert judge(t, btc("40100"), T0, RULES, D("0.75")) == []  # 15000 / 20050 = 74.81%: below 75%
    events = judge(t, btc("40000"), T0, RULES, D("0.75"))  # 15000 / 20000 = 75.00%: at the level
    assert [e.type for e in events] == ["tracked_warning"] and events[0].data["level"] == "0.75"
    assert judge(t, btc("39000"), T0, RULES, D("0.75")) == []  # once
    # an own level at or above the margin call is ignored: the default 80% applies
    u = tracked(apr="0")
    assert judge(u, btc("39000"), T0, RULES, D("0.9")) == []  # 76.92% < 80%


class Book:
    def __init__(self, *ts: Tracked) -> None:
        self.ts = list(ts)
        self.saved: list[int] = []

    def active_tracked(self) -> list[Tracked]:
        return self.ts

    def save_tracked(self, t: Tracked) -> None:
        self.saved.append(t.id)


def test_the_watch_step_emits_and_stores_only_what_changed() -> None:
    a, b = tracked(apr="0"), tracked(apr="0")
    b.id = 6
    b.collateral = {"BTC": D(1)}
    emitted: list[Event] = []
    book = Book(a, b)
    events = watch_tracked(book, btc("35000"), T0, RULES, lambda owner: None, emitted.append)
    assert [(e.type, e.position) for e in events] == [("tracked_margin_call", 5)]  # #6 is at 42.9%
    assert emitted == events and book.saved == [5]


def test_vip_expiry_reminders_send_the_latest_due_once() -> None:
    t = tracked(apr="0")
    t.expires_at = T0 + timedelta(hours=10)
    events = judge(t, btc("60000"), T0, RULES, None)  # 10 h before: the 72 h and 24 h marks are both past
    assert [(e.type, e.data["hours"]) for e in events] == [("tracked_expiry_reminder", 24)]
    assert judge(t, btc("60000"), T0 + timedelta(hours=1), RULES, None) == []
    events = judge(t, btc("60000"), T0 + timedelta(hours=9, minutes=1), RULES, None)
    assert [e.data["hours"] for e in events] == [1]


def snapshot(debt: str, amount: str, current: str) -> Snapshot:
    return Snapshot("flexible:USDT:BTC", Kind.FLEXIBLE, "USDT", D(debt), {"BTC": D(amount)}, D(current),
                    Levels(D("0.85"), D("0.91"), D("0.78")), D("0.0438"))


def test_a_sync_creates_recalibrates_and_reports_a_collateral_change() -> None:
    ids = iter([41, 42])
    first = reconcile("7", [], [snapshot("10000", "0.5", "0.4")], btc("50000"), T0, lambda: next(ids),
                      lambda a: 8, first=True)
    (t,) = first.new
    assert t.id == 41 and first.events == []  # the link's answer shows it: no push
    # ours at the sync: 10000 / 25000 = 0.4 = Binance's → calibration 1
    assert t.calibration == D(1) and ltv(t, btc("40000"), T0) == D("0.5")
    later = T0 + timedelta(minutes=1)
    second = reconcile("7", [t], [snapshot("10000", "0.6", "0.34")], btc("50000"), later, lambda: 0, lambda a: 8)
    assert [(e.type, e.data["change"], e.data["amount"]) for e in second.events] == [
        ("tracked_collateral_changed", "added", "0.1")]
    # ours: 10000 / 30000 = 0.3333…; Binance says 0.34 → calibration 1.02; at BTC 40,000: 10000/24000 × 1.02
    assert second.updated[0].calibration == D("0.34") / (D(10000) / D(30000))
    assert ltv(t, btc("40000"), later).quantize(D("0.0001")) == D("0.4250")


def test_a_vanished_loan_is_explained_from_the_liquidation_history() -> None:
    t = tracked(apr="0")
    t.lender, t.kind = t.lender.BINANCE, Kind.FLEXIBLE
    liq = LiquidationRecord("USDT", "BTC", D(15000), D("0.4896"), D("0.0104"), D("0.0096"), D(31250),
                            T0 + timedelta(minutes=5))
    e = explain(t, [liq], [], T0 + timedelta(minutes=6))
    assert e.type == "tracked_liquidated"
    assert (e.data["fee"], e.data["returned"], e.data["debt_repaid"]) == ("0.0096", "0.0104", "15000")
    repaid = explain(t, [], [RepayRecord("USDT", D(15000), T0 + timedelta(minutes=1), "BTC", D("0.5"))], T0)
    assert repaid.type == "tracked_repaid" and repaid.data["collateral_returned"] == "0.5"
    assert explain(t, [], [], T0).type == "tracked_gone"


def test_vip_collateral_value_is_split_evenly_over_the_coins() -> None:
    amounts = implied_collateral(["BTC", "ETH"], D(100000), {"BTC": D(50000), "ETH": D(2500)})
    assert amounts == {"BTC": D(1), "ETH": D(20)}
