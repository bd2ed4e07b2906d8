"""Borrowing, whatever the product: one table from ``Product`` to its module's preview and borrow.

``preview_borrow`` validates and computes what the borrower sees; ``borrow`` books it. Each product module
(``flexible``, ``fixed``, ``vip``) builds only on ``domain.loans.common``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from domain.desk import Desk
from domain.errors import Rejected
from domain.events import Event
from domain.loans import fixed, flexible, vip
from domain.loans.common import BorrowPreview, BorrowRequest
from domain.positions import Position, Product
from domain.prices import Prices

Preview = Callable[[Desk, BorrowRequest, Prices, datetime], BorrowPreview]
Borrow = Callable[[Desk, BorrowRequest, Prices, datetime], tuple[Position, Event]]

PRODUCTS: dict[Product, tuple[Preview, Borrow]] = {
    Product.FLEXIBLE: (flexible.preview_flexible, flexible.borrow_flexible),
    Product.FIXED: (fixed.preview_fixed, fixed.borrow_fixed),
    Product.VIP: (vip.preview_vip, vip.borrow_vip),
}


def _product(req: BorrowRequest) -> tuple[Preview, Borrow]:
    found = PRODUCTS.get(req.product)
    if found is None:
        raise Rejected("unknown_product", f"{req.product} loans are not offered on this desk")
    return found


def preview_borrow(desk: Desk, req: BorrowRequest, prices: Prices, now: datetime) -> BorrowPreview:
    """Validate a borrow of any product and compute its numbers; changes nothing."""
    return _product(req)[0](desk, req, prices, now)


def borrow(desk: Desk, req: BorrowRequest, prices: Prices, now: datetime) -> tuple[Position, Event]:
    """Book a borrow of any product (Flexible: a new position or an addition to the open one of the pair)."""
    return _product(req)[1](desk, req, prices, now)
