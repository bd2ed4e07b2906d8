"""What a borrower does: borrow (Flexible, Fixed, VIP), service an open loan, and what liquidation and expiry do.

``common`` holds the shared borrowing steps; ``flexible``, ``fixed`` and ``vip`` are one product each, built only
on ``common``; ``borrow`` is the table from product to module; ``servicing`` adds, withdraws, repays and closes;
``liquidation`` is full, partial and delayed liquidation; ``expiry`` is what happens to a Fixed loan at and
after its term; ``moves`` keeps positions, market totals and ledger entries in step when money moves.
"""
