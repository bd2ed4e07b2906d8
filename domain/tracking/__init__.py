"""Loans held elsewhere (SPEC §9): positions at any lender, recorded by hand or synced from Binance.

loandesk only *watches* these: it never moves money there, never liquidates them and never posts them to the
desk's ledger. ``position`` holds the record and its valuation (debt with hourly interest at the lender's APR,
LTV from live prices, recalibrated at each sync), ``manual`` the rules of ``/track`` and its edits, ``watch``
the tick step that warns, margin-calls and says "liquidation near" at the lender's own levels, ``sync`` what a
sync from the lender changes (new, updated and vanished positions).
"""
