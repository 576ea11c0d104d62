"""Exact USD amounts: 9 decimal places, bounded so that every sum stays exact."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

MONEY_SCALE = 9
MONEY_PRECISION = 27
MONEY_QUANTUM = Decimal(1).scaleb(-MONEY_SCALE)
# SQLite keeps money as an integer count of 1e-9 USD; this bound keeps every
# sum far from the 64-bit limit, where SQLite would silently switch to floats.
MAX_MONEY = Decimal(10) ** 9


def to_money(value: Decimal | int | str) -> Decimal:
    """Return ``value`` as an exact USD amount with 9 decimal places, or raise ValueError."""
    if isinstance(value, float | bool) or not isinstance(value, Decimal | int | str):
        raise ValueError(f"money must be a Decimal, int or str, not {type(value).__name__}")
    try:
        amount = Decimal(value)
    except (InvalidOperation, TypeError) as exc:
        raise ValueError(f"not an amount of money: {value!r}") from exc
    if not amount.is_finite():
        raise ValueError(f"not an amount of money: {value!r}")
    if abs(amount) > MAX_MONEY:
        raise ValueError(f"{value} exceeds the largest supported amount, {MAX_MONEY}")
    quantized = amount.quantize(MONEY_QUANTUM)
    if quantized != amount:
        raise ValueError(f"{value} has more than {MONEY_SCALE} decimal places")
    if abs(quantized) > MAX_MONEY:
        raise ValueError(f"{value} exceeds the largest supported amount, {MAX_MONEY}")
    return quantized
