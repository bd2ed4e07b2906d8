"""Real crash price histories shipped with loandesk for backtests (see README.md and events.py)."""
