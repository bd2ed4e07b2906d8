"""Ways in: ``cli`` (``loandesk …``), ``compose`` (the one composition root), ``run`` (``loandesk run`` and the
Application's lifecycle), ``console`` (``loandesk console``), ``backtest`` (``loandesk backtest``)."""
