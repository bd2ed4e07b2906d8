"""The one price guard (SPEC §5 and the hardening rules), without HTTP: what may liquidate, what may only warn,
and what is rejected outright. Time comes in as an argument, as it does live and in ``simulate``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from domain.markets import load_catalog
from domain.prices import GuardRules, PriceGuard

T = datetime(2030, 1, 7, 10, 0, tzinfo=UTC)
D = Decimal
RULES = GuardRules.of(load_catalog().desk)  # 60 s, 15%, 10 s, 2%, 10×


def at(seconds: float) -> datetime:
    return T + timedelta(seconds=seconds)


def guard(second: bool = False, btc: str | None = "50000") -> PriceGuard:
    g = PriceGuard(RULES, second_source=second)
    if btc is not None:
        g.seed({"BTC": (D(btc), at(0))})
    return g


def test_the_rules_come_from_the_markets_file() -> None:
    assert (RULES.max_age, RULES.jump, RULES.confirm, RULES.agree, RULES.band) == (
        timedelta(seconds=60), D("0.15"), timedelta(seconds=10), D("0.02"), D(10))
    edited = load_catalog().with_overrides({"desk": {"price_jump": "0.05", "price_confirm_seconds": 30}})
    assert GuardRules.of(edited.desk).jump == D("0.05") and GuardRules.of(edited.desk).confirm.seconds == 30


def test_a_small_move_is_accepted_at_once() -> None:
    g = guard()
    assert g.observe("BTC", D(45000), at(10)) == "accepted"  # −10%
    assert g.confirmed(at(10))["BTC"] == D(45000) and g.newest(at(10))["BTC"] == D(45000)


def test_a_jump_warns_at_once_but_liquidates_only_after_persisting_ten_seconds() -> None:
    g = guard()
    assert g.observe("BTC", D(32000), at(10)) == "held"
    assert g.newest(at(10))["BTC"] == D(32000) and g.confirmed(at(10))["BTC"] == D(50000)
    assert g.observe("BTC", D(31800), at(15)) == "held"  # still beyond the jump, but only 5 s
    assert g.observe("BTC", D(31500), at(20)) == "accepted"  # 10 s on the same side, beyond the jump
    assert g.confirmed(at(20))["BTC"] == D(31500)


def test_a_stream_of_ticks_confirms_nothing_faster_than_time() -> None:
    g = guard()
    outcomes = [g.observe("BTC", D(32000) - i, at(10 + i * 0.1)) for i in range(89)]  # 8.8 s of ticks
    assert set(outcomes) == {"held"}
    assert g.observe("BTC", D(31000), at(20)) == "accepted"


def test_the_next_poll_confirms_even_if_it_answers_a_few_milliseconds_early() -> None:
    g = guard()
    assert g.observe("BTC", D(32000), at(10.030)) == "held"  # this poll's answer took 30 ms
    assert g.observe("BTC", D(31900), at(19.995)) == "accepted"  # the next one 25 ms less: still "seen again"


def test_a_wick_never_becomes_confirmed() -> None:
    g = guard()
    g.observe("BTC", D(32000), at(10))
    assert g.observe("BTC", D(50000), at(20)) == "accepted"
    assert g.confirmed(at(20))["BTC"] == D(50000) and not g.held


def test_a_jump_that_turns_to_the_other_side_starts_again() -> None:
    g = guard()
    g.observe("BTC", D(40000), at(10))  # −20%
    assert g.observe("BTC", D(60000), at(21)) == "held"  # +20%: not the same move
    assert g.observe("BTC", D(61000), at(31)) == "accepted"


def test_the_second_source_confirms_a_jump_at_once_and_a_disagreeing_one_blocks_liquidation() -> None:
    g = guard(second=True)
    g.observe_all({"BTC": D(32000)}, at(10), {"BTC": D(32100)})
    assert g.confirmed(at(10))["BTC"] == D(32000) and "BTC" in g.corroborated(at(10))
    g2 = guard(second=True)
    g2.observe_all({"BTC": D(44000)}, at(10), {"BTC": D(50000)})  # −12%: accepted, but the sources disagree
    assert "BTC" not in g2.confirmed(at(10))  # liquidation needs the two to agree
    g2.observe_all({"BTC": D(44000)}, at(20), {"BTC": D(44100)})
    assert g2.confirmed(at(20))["BTC"] == D(44000)


def test_a_garbage_price_is_rejected_however_often_it_repeats() -> None:
    g = guard()
    for i in range(60):  # a minute of 1e-30 at one poll a second
        assert g.observe("BTC", D("1e-30"), at(1 + i)) == "rejected"
    assert g.confirmed(at(30)) == {"USDT": 1, "BTC": D(50000)} and "BTC" not in g.newest(at(61))
    assert "BTC" not in g.confirmed(at(61))  # and the last good price goes stale: nothing liquidates
    assert "more than 10" in g.troubles(at(61), ["BTC"], at(0))["BTC"]


def test_zero_negative_and_missing_prices_are_troubles_for_the_operators() -> None:
    g = guard()
    assert g.observe("BTC", D(0), at(1)) == "rejected"
    assert g.observe("BTC", D(-5), at(2)) == "rejected"
    assert g.troubles(at(5), ["BTC"], at(0)) == {}  # not yet: a blip is not worth a page
    assert "not a price" in g.troubles(at(12), ["BTC"], at(0))["BTC"]
    g.observe("BTC", D(50100), at(13))
    assert g.troubles(at(13), ["BTC"], at(0)) == {}
    assert "no ETH price" in g.troubles(at(61), ["ETH", "BTC"], at(0))["ETH"]


def test_a_cold_start_treats_the_first_price_as_a_jump() -> None:
    g = guard(btc=None)
    assert g.observe("BTC", D(20000), at(0)) == "held"  # a −60% print, nothing stored to compare with
    assert "BTC" not in g.confirmed(at(0))
    assert g.observe("BTC", D(50000), at(10)) == "held"  # not near the first print: it starts again
    assert g.observe("BTC", D(50100), at(20)) == "accepted"
    g2 = PriceGuard(RULES, second_source=True)
    g2.observe_all({"BTC": D(50000)}, at(0), {"BTC": D(50050)})  # or a second source agrees
    assert g2.confirmed(at(0))["BTC"] == D(50000)


def test_a_price_older_than_60_seconds_never_liquidates() -> None:
    g = guard(btc=None)
    g.seed({"BTC": (D(50000), at(0))})
    assert "BTC" in g.confirmed(at(60)) and "BTC" not in g.confirmed(at(61))
    g.observe("BTC", D(50000), at(61))
    assert g.newest(at(200))["BTC"] == D(50000)  # warnings may still use it
    assert "BTC" not in g.newest(at(500), timedelta(minutes=5))  # but not forever


def test_a_restart_measures_jumps_against_the_stored_price() -> None:
    g = guard(btc=None)
    g.seed({"BTC": (D(50000), at(-3600))})
    assert g.observe("BTC", D(32000), at(0)) == "held"
    assert "BTC" not in g.confirmed(at(0))
