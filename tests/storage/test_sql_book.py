"""``SqlBook`` keeps the ``Book`` promises ``MemoryBook`` keeps: one object per position within a unit of work,
saved state comes back equal, queries follow the live objects, and no borrower's account goes negative."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import Engine, func, select

from domain.book import MemoryBook
from domain.ledger import Entry, Posting
from domain.positions import Account, Holding, Position, Product, Status
from domain.rates import MarketState, RatePoint
from domain.termsheet import TermSheet
from storage import SqlBook, UnitOfWork
from storage.tables import holdings, journal_entries, rate_points

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def flexible(pid: int, owner: str = "alice", loan: str = "USDT", coll: str = "BTC") -> Position:
    return Position(pid, owner, Product.FLEXIBLE, loan, T0, debt_shares=Decimal("30000"),
                    principal=Decimal("30000"), collateral={coll: Holding(Decimal("1"))}, rate_key=loan)


def deposit(owner: str, asset: str, amount: str) -> Entry:
    return Entry(T0, "deposit", (Posting("desk:cash", asset, -Decimal(amount)),
                                 Posting(f"spot:{owner}", asset, Decimal(amount))))


def test_a_position_is_one_object_per_unit_of_work(db_engine: Engine) -> None:
    with UnitOfWork(db_engine) as uow:
        uow.book.save_position(flexible(uow.book.new_position_id()))
        uow.commit()
    with UnitOfWork(db_engine) as uow:
        first = uow.book.get_position(1)
        assert first is not None
        assert uow.book.get_position(1) is first
        assert uow.book.positions_of("alice") == [first] and uow.book.positions_of("alice")[0] is first
        (active,) = uow.book.active_positions()
        assert active is first
        assert uow.book.find_flexible("alice", "USDT", "BTC") is first
    with UnitOfWork(db_engine) as uow:
        again = uow.book.get_position(1)
        assert again is not None and again is not first and again == first


def test_saving_updates_the_row_and_replaces_the_holdings(db_engine: Engine) -> None:
    with UnitOfWork(db_engine) as uow:
        uow.book.save_position(flexible(1))
        uow.commit()
    with UnitOfWork(db_engine) as uow:
        p = uow.book.get_position(1)
        assert p is not None
        p.collateral["ETH"] = Holding(Decimal("2"), Decimal("0.5"))
        del p.collateral["BTC"]
        p.collateral["BTC"] = Holding(Decimal("0"), Decimal("3"))  # now after ETH: the order is kept
        p.status, p.closed_at = Status.CLOSED, T0 + timedelta(days=1)
        uow.book.save_position(p)
        uow.commit()
    with UnitOfWork(db_engine) as uow:
        back = uow.book.get_position(1)
        assert back is not None
        assert list(back.collateral) == ["ETH", "BTC"]
        assert back.collateral["BTC"] == Holding(Decimal("0"), Decimal("3"))
        assert back.status is Status.CLOSED and back.closed_at == T0 + timedelta(days=1)
        assert uow.session.execute(select(func.count()).select_from(holdings)).scalar_one() == 2
        assert list(uow.book.active_positions()) == []


def test_queries_follow_the_live_objects_not_stale_rows(db_engine: Engine) -> None:
    with UnitOfWork(db_engine) as uow:
        for pid in (1, 2):
            uow.book.save_position(flexible(pid, "alice" if pid == 1 else "bob"))
        uow.commit()
    with UnitOfWork(db_engine) as uow:
        p = uow.book.get_position(1)
        assert p is not None
        p.status = Status.CLOSED  # changed in memory, not saved yet: MemoryBook would already see it
        assert [q.id for q in uow.book.active_positions()] == [2]
        assert uow.book.find_flexible("alice", "USDT", "BTC") is None
        p.status = Status.OPEN
        assert uow.book.find_flexible("alice", "USDT", "ETH") is None
        assert uow.book.find_flexible("alice", "USDC", "BTC") is None
        assert uow.book.find_flexible("alice", "USDT", "BTC") is p


def test_changes_to_objects_handed_out_are_written_at_commit(db_engine: Engine) -> None:
    with UnitOfWork(db_engine) as uow:
        uow.book.save_position(flexible(1))
        uow.book.save_market(MarketState("USDT", rates=[RatePoint(T0, Decimal("0.05"))]))
        uow.book.save_account(Account("alice"))
        uow.commit()
    with UnitOfWork(db_engine) as uow:
        p, state, account = uow.book.get_position(1), uow.book.market("USDT"), uow.book.account("alice")
        assert p is not None and state is not None
        p.risk.warned = True
        state.debt_index = Decimal("1.0001")
        account.warning_ltv = Decimal("0.7")
        uow.commit()
    with UnitOfWork(db_engine) as uow:
        p, state = uow.book.get_position(1), uow.book.market("USDT")
        assert p is not None and p.risk.warned
        assert state is not None and state.debt_index == Decimal("1.0001")
        assert uow.book.account("alice").warning_ltv == Decimal("0.7")


def test_rate_history_is_kept_in_order_and_only_its_tail_rewritten(db_engine: Engine) -> None:
    with UnitOfWork(db_engine) as uow:
        state = MarketState("USDT", rates=[RatePoint(T0, Decimal("0.05"))], accrued_until=T0)
        uow.book.save_market(state)
        for h in range(1, 4):
            state.set_rate(Decimal("0.05") + Decimal(h) / 100, T0 + timedelta(hours=h, minutes=5))
            uow.book.save_market(state)
        state.set_rate(Decimal("0.2"), T0 + timedelta(hours=3, minutes=30))  # same hour: replaces the last
        uow.book.save_market(state)
        uow.commit()
    with UnitOfWork(db_engine) as uow:
        back = uow.book.market("USDT")
        assert back is not None
        assert back == state
        assert [r.apr for r in back.rates] == [Decimal("0.05"), Decimal("0.06"), Decimal("0.07"), Decimal("0.2")]
        assert back.apr_at(T0 + timedelta(hours=2, minutes=59)) == Decimal("0.06")
        assert uow.session.execute(select(func.count()).select_from(rate_points)).scalar_one() == 4
    with UnitOfWork(db_engine) as uow:
        assert uow.book.market("nope") is None


def test_customer_accounts_never_go_negative_and_the_refused_entry_leaves_nothing(db_engine: Engine) -> None:
    with UnitOfWork(db_engine) as uow:
        uow.book.post(deposit("alice", "BTC", "1"))
        uow.commit()
    memory = MemoryBook()
    memory.post(deposit("alice", "BTC", "1"))
    overdraw = Entry(T0, "withdrawal", (Posting("spot:alice", "BTC", Decimal("-1.00000001")),
                                        Posting("desk:cash", "BTC", Decimal("1.00000001"))))
    with pytest.raises(AssertionError, match="spot:alice BTC would go negative in withdrawal"):
        memory.post(overdraw)
    with UnitOfWork(db_engine) as uow:
        with pytest.raises(AssertionError, match="spot:alice BTC would go negative in withdrawal"):
            uow.book.post(overdraw)
        assert uow.book.balance("spot:alice", "BTC") == 1
        for account in ("collateral:9", "earn:pool"):
            with pytest.raises(AssertionError):
                uow.book.post(Entry(T0, "x", (Posting(account, "BTC", Decimal("-1")),
                                              Posting("desk:cash", "BTC", Decimal("1")))))
        # desk accounts may be negative: that is what the desk holds or is owed
        uow.book.post(Entry(T0, "borrow", (Posting("desk:loans", "USDT", Decimal("-5")),
                                           Posting("spot:alice", "USDT", Decimal("5")))))
        uow.commit()
    with UnitOfWork(db_engine) as uow:
        assert uow.book.all_balances() == {("desk:cash", "BTC"): Decimal("-1"), ("spot:alice", "BTC"): Decimal("1"),
                                           ("desk:loans", "USDT"): Decimal("-5"), ("spot:alice", "USDT"): Decimal("5")}
        assert uow.session.execute(select(func.count()).select_from(journal_entries)).scalar_one() == 2


def test_posting_checks_each_posting_in_order_like_memory_book(db_engine: Engine) -> None:
    # Out then back in within one entry: MemoryBook refuses the first posting, so must the SQL book.
    swing = Entry(T0, "swing", (Posting("spot:alice", "BTC", Decimal("-1")), Posting("desk:cash", "BTC", Decimal("1")),
                                Posting("desk:cash", "BTC", Decimal("-1")), Posting("spot:alice", "BTC", Decimal("1"))))
    with pytest.raises(AssertionError):
        MemoryBook().post(swing)
    with UnitOfWork(db_engine) as uow, pytest.raises(AssertionError):
        uow.book.post(swing)


def test_position_ids_count_from_one_and_are_never_reused_after_commit(db_engine: Engine) -> None:
    with UnitOfWork(db_engine) as uow:
        assert [uow.book.new_position_id() for _ in range(3)] == [1, 2, 3]
        uow.commit()
    with UnitOfWork(db_engine) as uow:
        assert uow.book.new_position_id() == 4  # rolled back: the counter goes back with it
    with UnitOfWork(db_engine) as uow:
        assert uow.book.new_position_id() == 4


def test_owners_and_wallet_shares_like_memory_book(db_engine: Engine) -> None:
    memory = MemoryBook()
    with UnitOfWork(db_engine) as uow:
        for book in (memory, uow.book):
            book.post(deposit("zed", "USDT", "10"))
            book.post(deposit("amy", "BTC", "1"))
            book.set_earn_shares("kim", "ETH", Decimal("0"))
            book.set_earn_shares("amy", "ETH", Decimal("2.5"))
        assert uow.book.owners() == memory.owners() == ["amy", "kim", "zed"]
        assert uow.book.all_earn_shares() == memory.shares
        assert uow.book.all_balances() == dict(memory.balances)
        assert uow.book.journal() == memory.journal
        uow.commit()


def test_an_unknown_account_gets_defaults_until_saved(db_engine: Engine) -> None:
    with UnitOfWork(db_engine) as uow:
        book: SqlBook = uow.book
        assert book.account("nobody") == Account("nobody")
        book.save_account(Account("nobody", Decimal("0.6")))
        assert book.account("nobody").warning_ltv == Decimal("0.6")
        uow.commit()


def test_term_sheets_are_versioned_per_borrower_like_memory_book(db_engine: Engine) -> None:
    def sheet(owner: str, version: int, apr: str) -> TermSheet:
        return TermSheet(owner, ("USDT", "USDC"), "flexible", Decimal(apr), Decimal("0.7"), Decimal("0.8"),
                         Decimal("0.9"), {"BTC": Decimal("0.95"), "ETH": Decimal("0.9")}, liquidation="partial",
                         liquidation_delay_minutes=30, max_borrow=Decimal("1000000.00000001"),
                         max_collateral={"BTC": Decimal("12.5")}, version=version, issued_at=T0, issued_by="ops")

    memory = MemoryBook()
    with UnitOfWork(db_engine) as uow:
        for book in (memory, uow.book):
            for s in (sheet("zoe", 1, "0.01"), sheet("al", 1, "0.02"), sheet("zoe", 2, "0.015"),
                      sheet("zoe", 2, "0.0125")):  # the same version again replaces it
                book.save_term_sheet(s)
        uow.commit()
    with UnitOfWork(db_engine) as uow:
        book = uow.book
        assert book.term_sheets() == memory.term_sheets()
        assert [(s.owner, s.version) for s in book.term_sheets()] == [("al", 1), ("zoe", 1), ("zoe", 2)]
        assert book.term_sheet("zoe") == sheet("zoe", 2, "0.0125")
        assert book.term_sheet("zoe", 1) == memory.term_sheet("zoe", 1)
        assert book.term_sheet("zoe", 3) is None and book.term_sheet("nobody") is None
        assert book.term_sheets("al") == [sheet("al", 1, "0.02")]


def test_vip_debt_index_keys_fit(db_engine: Engine) -> None:
    key = "USDT@vip:" + "x" * 128 + ":v12345"
    with UnitOfWork(db_engine) as uow:
        uow.book.save_market(MarketState(key, rates=[RatePoint(T0, Decimal("0.05"))]))
        p = flexible(1)
        p.rate_key = key
        uow.book.save_position(p)
        uow.commit()
    with UnitOfWork(db_engine) as uow:
        assert uow.book.market(key) == MarketState(key, rates=[RatePoint(T0, Decimal("0.05"))])
        back = uow.book.get_position(1)
        assert back is not None and back.rate_key == key


def test_sql_book_offers_every_method_of_the_book_port_with_the_same_parameters() -> None:
    import inspect

    from domain.book import Book

    wanted = {name for name, member in vars(Book).items() if callable(member) and not name.startswith("_")}
    assert wanted, "the Book protocol lists no methods?"
    for name in sorted(wanted | {"owners"}):
        ours = getattr(SqlBook, name, None)
        assert ours is not None, f"SqlBook lacks {name}"
        theirs = getattr(MemoryBook, name)
        assert list(inspect.signature(ours).parameters) == list(inspect.signature(theirs).parameters), name
