"""loandesk's storage: the domain's ``Book`` on SQLModel tables (SQLite by default, PostgreSQL for scale).

    engine = make_engine("sqlite:///loandesk.db")     # or postgresql://…
    migrate(engine)                                   # alembic upgrade head, at start
    with UnitOfWork(engine) as uow:                   # one transaction per action
        desk = Desk(catalog, uow.book)                # uow.book is a SqlBook
        ...
        uow.commit()                                  # or leave the block: everything rolls back

Modules: ``types`` (exact money, UTC time), ``tables`` (schema), ``mapping`` (rows ⇄ domain objects),
``book`` (SqlBook), ``outbox`` (the notifier's queue), ``uow`` (transactions), ``engine`` (engines and
migrations), ``migrations/`` (Alembic scripts).
"""

from storage.book import SqlBook
from storage.engine import make_engine, migrate
from storage.outbox import Outbox, OutboxMessage
from storage.uow import UnitOfWork

__all__ = ["Outbox", "OutboxMessage", "SqlBook", "UnitOfWork", "make_engine", "migrate"]
