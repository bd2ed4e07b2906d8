"""What-ifs, on a fresh desk or read-only: ``simulate`` (scenario replay; input in ``scenario``, output in
``report``), ``backtest`` (a position through real price history), ``stress`` and ``estimate``."""
