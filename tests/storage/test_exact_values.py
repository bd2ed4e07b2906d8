"""Every money and accumulator column gives back exactly the Decimal it was given, and every timestamp the
same instant as an aware UTC datetime — on SQLite and on PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.exc import StatementError

from domain.ledger import Entry, Posting
from domain.positions import Account, FixedTerms, Holding, Position, Product, RiskState, Status
from domain.rates import MarketState, RatePoint
from storage import UnitOfWork
from storage.tables import balances

T0 = datetime(2026, 1, 1, tzinfo=UTC)
SAT = Decimal("0.00000001")
BIG = Decimal("123456789012.123456789012345678")
EIGHTEEN = Decimal("1.000000000000000001")
# an index after a few hours at 50 significant digits, as the domain's decimal context makes it
INDEX = Decimal("1.0000057077625570776255707762557077625570776255708")
TINY = Decimal("1E-40")
VALUES = [SAT, BIG, EIGHTEEN, INDEX, TINY, Decimal("0E-18"), Decimal("30000"), Decimal("0.3")]


def same(back: Decimal, sent: Decimal, engine: Engine) -> None:
    assert isinstance(back, Decimal)
    assert back == sent
    if engine.dialect.name == "sqlite":  # stored as the Decimal's own text: identical digit for digit
        assert str(back) == str(sent) and back.as_tuple() == sent.as_tuple()
    else:  # NUMERIC keeps the scale; only the exponent form of whole numbers may differ
        assert back.normalize() == sent.normalize()


@pytest.mark.parametrize("value", VALUES, ids=str)
def test_every_decimal_column_round_trips_exactly(db_engine: Engine, value: Decimal) -> None:
    with UnitOfWork(db_engine) as uow:
        book = uow.book
        book.post(Entry(T0, "deposit", (Posting("desk:cash", "BTC", -value), Posting("spot:alice", "BTC", value))))
        book.set_earn_shares("alice", "BTC", value)
        book.save_account(Account("alice", value))
        book.save_market(MarketState("BTC", debt_index=value, debt_shares=value, fixed_debt=value,
                                     rates=[RatePoint(T0, value)], accrued_until=T0, earn_index=value,
                                     earn_shares=value, earn_accrued_until=T0))
        book.save_position(Position(
            1, "alice", Product.FIXED, "USDT", T0, debt_shares=value, principal=value,
            collateral={"BTC": Holding(value, value)},
            fixed=FixedTerms(30, value, T0 + timedelta(days=30), value, late_fees=value)))
        uow.commit()
    with UnitOfWork(db_engine) as uow:
        book = uow.book
        same(book.balance("spot:alice", "BTC"), value, db_engine)
        same(book.balance("desk:cash", "BTC"), -value, db_engine)
        (entry,) = book.journal()
        for posting, sent in zip(entry.postings, (-value, value), strict=True):
            same(posting.amount, sent, db_engine)
        same(book.earn_shares("alice", "BTC"), value, db_engine)
        warning = book.account("alice").warning_ltv
        assert warning is not None
        same(warning, value, db_engine)
        state = book.market("BTC")
        assert state is not None
        for back in (state.debt_index, state.debt_shares, state.fixed_debt, state.earn_index, state.earn_shares,
                     state.rates[0].apr):
            same(back, value, db_engine)
        p = book.get_position(1)
        assert p is not None and p.fixed is not None
        for back in (p.debt_shares, p.principal, p.collateral["BTC"].spot, p.collateral["BTC"].earn_shares,
                     p.fixed.apr, p.fixed.interest, p.fixed.late_fees):
            same(back, value, db_engine)


def test_sums_of_satoshis_stay_exact(db_engine: Engine) -> None:
    # 0.1 + 0.2 style drift would show after a few hundred float additions; Decimal text/NUMERIC never drifts.
    for _ in range(3):
        with UnitOfWork(db_engine) as uow:
            for _ in range(100):
                uow.book.post(Entry(T0, "deposit", (Posting("desk:cash", "BTC", -SAT),
                                                    Posting("spot:alice", "BTC", SAT))))
            uow.commit()
    with UnitOfWork(db_engine) as uow:
        assert uow.book.balance("spot:alice", "BTC") == Decimal("0.000003")
        assert uow.book.balance("desk:cash", "BTC") == Decimal("-0.000003")
        raw = uow.session.execute(select(balances.c.amount).where(balances.c.account == "spot:alice")).scalar_one()
        assert isinstance(raw, Decimal)


def test_timestamps_come_back_aware_utc_and_the_same_instant(db_engine: Engine) -> None:
    india = timezone(timedelta(hours=5, minutes=30))
    opened = datetime(2026, 3, 1, 17, 45, 12, 123456, tzinfo=india)
    with UnitOfWork(db_engine) as uow:
        uow.book.save_position(Position(
            7, "bob", Product.FLEXIBLE, "USDT", opened, risk=RiskState(True, True, T0, T0 + timedelta(hours=1)),
            closed_at=T0 + timedelta(microseconds=1), updated_at=T0))
        uow.commit()
    with UnitOfWork(db_engine) as uow:
        p = uow.book.get_position(7)
        assert p is not None
        assert p.opened_at == opened and p.opened_at.tzinfo is UTC
        assert p.opened_at == datetime(2026, 3, 1, 12, 15, 12, 123456, tzinfo=UTC)
        assert p.closed_at == T0 + timedelta(microseconds=1)
        assert p.risk == RiskState(True, True, T0, T0 + timedelta(hours=1))
        for t in (p.closed_at, p.updated_at, p.risk.margin_call_at, p.risk.liquidation_pending_since):
            assert t is not None and t.tzinfo is UTC


def test_naive_datetimes_and_floats_are_refused(db_engine: Engine) -> None:
    with UnitOfWork(db_engine) as uow, pytest.raises(StatementError, match="naive datetime"):
        uow.book.save_position(Position(1, "bob", Product.FLEXIBLE, "USDT", datetime(2026, 1, 1)))
    with UnitOfWork(db_engine) as uow, pytest.raises(StatementError, match="float"):
        uow.book.set_earn_shares("bob", "BTC", 0.1)  # type: ignore[arg-type]
    with UnitOfWork(db_engine) as uow:
        assert uow.book.get_position(1) is None
        assert uow.book.earn_shares("bob", "BTC") == 0


def test_a_closed_position_keeps_its_status_and_empty_fixed_terms(db_engine: Engine) -> None:
    p = Position(3, "carol", Product.VIP, "USDC", T0, status=Status.LIQUIDATED_WITH_DEBT, vip_sheet=12,
                 rate_key=None, fixed=FixedTerms(90, Decimal("0.07"), T0 + timedelta(days=90), Decimal("12.5"),
                                                 auto_repay=False, auto_renew=True, convert_to_flexible=True,
                                                 late_fee_hours=5, reminders_sent=["3d", "1d"]))
    with UnitOfWork(db_engine) as uow:
        uow.book.save_position(p)
        uow.commit()
    with UnitOfWork(db_engine) as uow:
        assert uow.book.get_position(3) == p
