"""Random books for the sweep-index tests: flexible positions at LTVs around the levels (exact boundaries
included), Spot, Earn, mixed and multi-collateral holdings, personal warning levels, alert states, debt and
Earn indices above 1, written through any ``Book`` (``MemoryBook`` or ``SqlBook``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import strategies as st

from domain import ledger
from domain.book import Book
from domain.desk import Desk
from domain.ledger import EntryBuilder
from domain.markets import Catalog
from domain.money import exact
from domain.positions import Account, Holding, Position, Product, RiskState

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
LOANS = ("USDT", "BTC")
COLLATERAL = ("BTC", "ETH", "SOL")
PRICES = {"BTC": Decimal("30000"), "ETH": Decimal("2000"), "SOL": Decimal("95.5")}
# the catalog's levels (warning 0.80, margin call / liquidation per collateral) and their re-arm points, exact
EDGES = [Decimal(x) for x in ("0.78", "0.80", "0.83", "0.85", "0.89", "0.91", "0.68", "0.69", "0.75", "0.5")]
LEVELS = [None, None, Decimal("0.5"), Decimal("0.7"), Decimal("0.82"), Decimal("0.9")]


@dataclass
class Spec:
    loan: str
    coll: str
    kind: str  # spot | earn | mixed | two | dust
    ltv: Decimal
    amount: Decimal
    warned: bool
    called_minutes_ago: int | None
    owner: int


@dataclass
class BookSpec:
    positions: list[Spec]
    levels: dict[int, Decimal | None]
    debt_index: dict[str, Decimal]
    earn_index: dict[str, Decimal]
    hours_later: int
    moves: dict[str, Decimal] = field(default_factory=dict)


ltvs = st.one_of(st.sampled_from(EDGES), st.decimals(Decimal("0.3"), Decimal("1.2"), places=6))
specs = st.builds(Spec, st.sampled_from(LOANS), st.sampled_from(COLLATERAL),
                  st.sampled_from(["spot", "spot", "earn", "earn", "mixed", "two", "dust"]), ltvs,
                  st.decimals(Decimal("0.001"), Decimal("50"), places=8), st.booleans(),
                  st.one_of(st.none(), st.sampled_from([60, 59, 61]), st.integers(0, 180)), st.integers(0, 4))
books = st.builds(
    BookSpec, st.lists(specs, min_size=1, max_size=25),
    st.fixed_dictionaries({i: st.sampled_from(LEVELS) for i in range(5)}),
    st.fixed_dictionaries({a: st.sampled_from([Decimal(1), Decimal("1.000123456789"), Decimal("1.07")])
                           for a in LOANS}),
    st.fixed_dictionaries({a: st.sampled_from([Decimal(1), Decimal("1.0004567"), Decimal("1.2")])
                           for a in COLLATERAL}),
    st.sampled_from([0, 0, 3, 30]),
    st.fixed_dictionaries({a: st.sampled_from([Decimal(1), Decimal("0.97"), Decimal("0.9"), Decimal("1.02")])
                           for a in COLLATERAL}))


def price(asset: str) -> Decimal:
    return PRICES.get(asset, Decimal(1))


def build(desk: Desk, spec: BookSpec) -> None:
    """Write ``spec`` into ``desk.book`` as the engine would hold it (ledger funded, market totals in step)."""
    book: Book = desk.book
    for asset in {*LOANS, *COLLATERAL}:
        state = desk.market(asset, T0)
        if asset in spec.debt_index:
            state.debt_index = spec.debt_index[asset]
        if asset in spec.earn_index:
            state.earn_index = spec.earn_index[asset]
        book.save_market(state)
        book.post(EntryBuilder(T0, "deposit").move(asset, Decimal(10) ** 9, ledger.CASH, ledger.EARN_POOL).build())
    for i, level in spec.levels.items():
        if level is not None:
            book.save_account(Account(f"u{i}", level))
    for s in spec.positions:
        pid = book.new_position_id()
        i_debt = spec.debt_index[s.loan]
        i_earn = spec.earn_index.get(s.coll, Decimal(1))
        holdings = {s.coll: Holding(s.amount)}
        if s.kind == "earn":
            holdings = {s.coll: Holding(earn_shares=s.amount / i_earn)}
        elif s.kind == "mixed":
            holdings = {s.coll: Holding(s.amount / 2, s.amount / 2 / i_earn)}
        elif s.kind == "two":
            other = next(a for a in COLLATERAL if a != s.coll)
            holdings = {s.coll: Holding(s.amount), other: Holding(Decimal("0.01"))}
        elif s.kind == "dust":
            holdings = {s.coll: Holding(Decimal("0.0000005"))}
        value = sum((exact(h.amount(i_earn)) * price(a) for a, h in holdings.items()), Decimal(0))
        shares = s.ltv * value / price(s.loan) / i_debt
        called = None if s.called_minutes_ago is None else T0 - timedelta(minutes=s.called_minutes_ago)
        p = Position(pid, f"u{s.owner}", Product.FLEXIBLE, s.loan, T0 - timedelta(days=3), debt_shares=shares,
                     principal=shares, collateral=holdings, rate_key=s.loan,
                     risk=RiskState(warned=s.warned or called is not None, margin_call=called is not None,
                                    margin_call_at=called))
        entry = EntryBuilder(T0, "pledge")
        for a, h in holdings.items():
            if h.spot:
                entry.move(a, h.spot, ledger.CASH, ledger.collateral(pid))
            state = desk.market(a, T0)
            state.earn_shares += h.earn_shares
            book.save_market(state)
        book.post(entry.build())
        loan = desk.market(s.loan, T0)
        loan.debt_shares += shares
        book.save_market(loan)
        book.save_position(p)


def tick(spec: BookSpec) -> tuple[dict[str, Decimal], datetime]:
    return {a: p * spec.moves.get(a, Decimal(1)) for a, p in PRICES.items()}, T0 + timedelta(hours=spec.hours_later)


def catalog_assets(catalog: Catalog) -> None:
    assert set(COLLATERAL) <= set(catalog.collateral) and set(LOANS) <= set(catalog.loans)
