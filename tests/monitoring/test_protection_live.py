"""Auto-protection acting on a live price, before the risk sweep, and telling the borrower what it did."""

from __future__ import annotations

from decimal import ROUND_UP, Decimal

from domain.desk import Desk
from tests.monitoring.conftest import ANN, World


def test_a_topup_rule_acts_on_the_next_poll_and_the_borrower_is_told(world: World) -> None:
    pid = world.borrow(ANN, "USDT", "30000", "BTC", "1", spare="0.5")
    world.start()
    assert "Auto-protection" in world.say(ANN, f"/protect {pid} 80% 65% topup")["plain"]
    world.polls(2)

    world.exchange.set_price("BTC", "37000")  # 30,000 / 37,000 = 81.1%: over the 80% trigger
    push = world.tg.wait_for(lambda r: r["chat_id"] == ANN and "Auto-protection" in (r["plain"] or "")
                             and "Added collateral" in (r["plain"] or ""))
    # Back to 65%: 30,000 / (0.65 × 37,000) − 1 = 0.247401247… BTC, rounded up to the satoshi, from Spot.
    topup = (Decimal(30000) / (Decimal("0.65") * 37000) - 1).quantize(Decimal("0.00000001"), rounding=ROUND_UP)
    assert str(topup) == "0.24740125" and f"{topup} BTC" in push["plain"]
    assert "81.1%" in push["plain"] and "65.0%" in push["plain"]
    world.polls(3)

    def state(uow: object) -> tuple[Decimal, Decimal, str]:
        desk = Desk(world.catalog, uow.domain_book)  # type: ignore[attr-defined]
        p = uow.book.get_position(pid)  # type: ignore[attr-defined]
        return desk.collateral_amounts(p, world.clock())["BTC"], desk.spot(str(ANN), "BTC"), p.status.value

    collateral, spot, status = world.rows(state)
    assert (collateral, spot, status) == (1 + topup, Decimal("0.5") - topup, "open")
    # It acted before the sweep: at 65% there is nothing to warn about, and it acted once, not every poll.
    assert world.pushes(ANN, "LTV warning") == [] and len(world.pushes(ANN, "Added collateral")) == 1
