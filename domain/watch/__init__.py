"""What time and prices do: the one tick (``tick``), the risk sweep (``sweep``), the circuit breaker
(``breaker``), auto-protection (``protection``) and price alerts (``alerts``)."""
