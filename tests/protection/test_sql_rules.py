"""SqlBook keeps protection rules and price alerts like MemoryBook does (SQLite, exact decimals)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from domain.positions import PriceAlert, ProtectionRule
from storage.engine import make_engine, migrate
from storage.uow import UnitOfWork

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_rules_and_alerts_round_trip_and_replace(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'rules.db'}")
    migrate(engine)
    rule = ProtectionRule(3, "ann", Decimal("0.8"), Decimal("0.65"), "topup", 3, "2026-01-01", 1, T0)
    with UnitOfWork(engine) as uow:
        uow.book.save_protection_rule(rule)
        uow.book.save_price_alert(PriceAlert(3, "ann", Decimal("0.1")))
        uow.book.save_price_alert(PriceAlert(5, "bob", Decimal("0.05"), armed=False))
        uow.commit()
    with UnitOfWork(engine) as uow:
        assert uow.book.protection_rules("ann") == [rule] and uow.book.protection_rules("bob") == []
        assert [a.position for a in uow.book.price_alerts()] == [3, 5]
        assert uow.book.price_alerts("bob") == [PriceAlert(5, "bob", Decimal("0.05"), armed=False)]
        rule.used_count = 2
        uow.book.save_protection_rule(rule)
        uow.book.delete_price_alert(3)
        uow.commit()
    with UnitOfWork(engine) as uow:
        assert uow.book.protection_rules()[0].used_count == 2 and len(uow.book.price_alerts()) == 1
        uow.book.delete_protection_rule(3)
        uow.commit()
    with UnitOfWork(engine) as uow:
        assert uow.book.protection_rules() == []
    engine.dispose()
