"""Price alerts: fire once when a collateral price comes within the distance of its margin-call price,
re-arm 2 points further away (hand-computed: 30,000 USDT on 1 BTC, margin call 85% → BTC 35,294.12)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from domain.book import MemoryBook
from domain.desk import Desk
from domain.errors import Rejected
from domain.loans.borrow import borrow
from domain.loans.common import BorrowRequest
from domain.markets import load_catalog
from domain.positions import PriceAlert
from domain.watch.alerts import (
    distance_to_margin_call,
    evaluate_price_alerts,
    price_alert_events,
    remove_price_alert,
    run_price_alerts,
    set_price_alert,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
CATALOG = load_catalog().with_overrides({"loan": {"USDT": {"flexible_apr": "0", "rate_model": "manual"}}})
D = Decimal


def setup() -> tuple[Desk, int]:
    desk = Desk(CATALOG, MemoryBook())
    desk.deposit("ann", "BTC", D(1), T0)
    p, _ = borrow(desk, BorrowRequest("ann", "USDT", D(30000), {"BTC": D(1)}),
                          {"BTC": D(50000)}, T0)
    return desk, p.id


def test_distance_is_how_far_the_price_may_fall_before_the_margin_call() -> None:
    desk, pid = setup()
    d = distance_to_margin_call(desk, desk.book.get_position(pid), {"BTC": D(40000)}, T0)
    assert d is not None and d.asset == "BTC"
    assert d.margin_call_price == D(30000) / D("0.85")  # 35294.117647…
    assert d.distance.quantize(D("0.0001")) == D("0.1176")  # 1 − 35294.12 / 40000


def test_an_alert_fires_once_and_re_arms_two_points_further_away() -> None:
    desk, pid = setup()
    set_price_alert(desk, "ann", pid, D("0.10"))
    fired = [len(run_price_alerts(desk, {"BTC": D(p)}, T0)) for p in (40000, 39000, 38000, 40000, 41000, 39000)]
    # 40000: 11.8% away; 39000: 9.5% → fires; 38000: still close, already told; 40000: 11.8% < 12%, not re-armed;
    # 41000: 13.9% → re-armed silently; 39000 → fires again
    assert fired == [0, 1, 0, 0, 0, 1]
    desk2, pid2 = setup()
    set_price_alert(desk2, "ann", pid2, D("0.10"))
    [e] = run_price_alerts(desk2, {"BTC": D(39000)}, T0)
    assert e.type == "price_alert" and e.data["margin_call_price"] == "35294.12"
    assert e.data["distance"] == "0.095" and e.data["ltv"] == "0.7692"


def test_evaluation_is_pure() -> None:
    desk, pid = setup()
    alert = PriceAlert(pid, "ann", D("0.10"))
    check = evaluate_price_alerts(desk, [alert], {"BTC": D(39000)}, T0)
    assert [a.armed for a in check.alerts] == [False] and alert.armed
    assert desk.book.price_alerts() == [] and desk.book.events[-1].type == "borrowed"
    assert len(price_alert_events(desk, [alert], {"BTC": D(39000)}, T0)) == 1
    assert price_alert_events(desk, [alert], {}, T0) == []  # no price: nothing judged


def test_bad_or_foreign_alerts_are_refused_and_removal_works() -> None:
    desk, pid = setup()
    for bad in (D(0), D("0.95")):
        with pytest.raises(Rejected):
            set_price_alert(desk, "ann", pid, bad)
    with pytest.raises(Rejected):
        set_price_alert(desk, "bob", pid, D("0.1"))
    set_price_alert(desk, "ann", pid, D("0.1"))
    assert remove_price_alert(desk, "ann", pid) and desk.book.price_alerts() == []
