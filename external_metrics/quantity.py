"""Kubernetes ``resource.Quantity`` strings: what ``ExternalMetricValue.value`` carries.

The HPA reads the value with ``Quantity.MilliValue()``, so anything finer than a thousandth is
lost on its side anyway; we therefore always emit an integer count of milli-units ("2500m" for
2.5). That form is exact (no binary float noise reaches the wire), valid for every magnitude the
HPA can hold, and the same for every value, which keeps the output easy to compare in tests.

Rounding is to the nearest milli-unit, half away from zero, from the float's shortest decimal
form, so 2.5 is "2500m" and not "2499m" or "2501m". ``parse_quantity`` reads the whole Quantity
grammar (decimal and binary SI suffixes, exponents) so tests and tools can read back what any
Kubernetes server emits. Pure; errors are :class:`QuantityError` with a message.
"""

from __future__ import annotations

import math
import re
from decimal import ROUND_HALF_UP, Decimal, DecimalException

from autoscaler.errors import InputError

MAX_MILLI = 2**63 - 1
"""The largest milli-value an int64 Quantity can hold (``MilliValue()`` returns int64)."""

_SUFFIXES: dict[str, Decimal] = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
    "Ki": Decimal(2**10),
    "Mi": Decimal(2**20),
    "Gi": Decimal(2**30),
    "Ti": Decimal(2**40),
    "Pi": Decimal(2**50),
    "Ei": Decimal(2**60),
}
_QUANTITY_RE = re.compile(
    r"(?P<number>[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))"
    r"(?:(?P<exp>[eE][+-]?[0-9]+)|(?P<suffix>[KMGTPE]i|[numkMGTPE])?)"
)


class QuantityError(InputError):
    """A value that cannot be written as, or a string that is not, a Kubernetes Quantity."""


def milli_units(value: float) -> int:
    """``value`` in milli-units, rounded half away from zero; QuantityError when not finite."""
    if not math.isfinite(value):
        raise QuantityError(f"a Quantity must be a finite number, got {value!r}")
    milli = (Decimal(repr(float(value))) * 1000).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    if abs(milli) > MAX_MILLI:
        raise QuantityError(f"{value!r} is too large for a Quantity (at most {MAX_MILLI}m)")
    return int(milli)


def format_milli(value: float) -> str:
    """The Quantity string of ``value`` in milli-units, e.g. 2.5 -> "2500m", 0 -> "0m"."""
    return f"{milli_units(value)}m"


def parse_quantity(text: str) -> Decimal:
    """The exact number a Quantity string stands for, e.g. "2500m" -> 2.5, "1Ki" -> 1024."""
    m = _QUANTITY_RE.fullmatch(text.strip())
    if m is None:
        raise QuantityError(
            f"{text!r} is not a Quantity: expected a number with an optional suffix "
            "(n, u, m, k, M, G, T, P, E, Ki ... Ei) or exponent (e.g. 1e3)"
        )
    try:
        number = Decimal(m.group("number"))
        if m.group("exp"):
            return number * Decimal(10) ** int(m.group("exp")[1:])
        return number * _SUFFIXES[m.group("suffix") or ""]
    except (DecimalException, OverflowError, ValueError) as exc:
        raise QuantityError(f"{text!r} is out of range for a Quantity") from exc
