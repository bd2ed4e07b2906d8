"""loandesk's loan engine: pure Python, standard library only.

The rules of ``../shared/SPEC.md`` live here: money and assets, the market catalog, positions, interest
indices, borrower actions, risk levels, liquidation and a double-entry ledger. Nothing in this package talks to
Telegram, a database or the clock: time and prices come in as arguments, state lives behind the ``Book`` port.

The floors, from the bottom: ``money``, ``errors``, ``events``, ``inputs``; ``markets``, ``rates``, ``termsheet``,
``positions`` (and the records that hang on them); ``prices`` (the one ``PriceGuard``), ``ledger``, ``risk``,
``sweepindex``; ``book`` (the storage port) and ``desk`` (valuation, wallets, interest catch-up); ``checks``.
Above them: ``loans/`` (what a borrower does, liquidation and expiry), ``watch/`` (what time and prices do: the
one tick), ``analysis/`` (simulate, backtest, stress, estimate). Each module imports only from below it.
"""
