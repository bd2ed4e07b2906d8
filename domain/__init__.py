"""loandesk's loan engine: pure Python, standard library only.

The rules of ``../shared/SPEC.md`` live here: money and assets, the market catalog, positions, interest
indices, borrower actions, risk levels, liquidation and a double-entry ledger. Nothing in this package talks to
Telegram, a database or the clock: time and prices come in as arguments, state lives behind the ``Book`` port.
"""
