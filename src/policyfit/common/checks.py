"""Argument checks that fail as one-line :class:`~policyfit.errors.ConfigError` s.

Public functions take numbers from users (Python callers and CLI flags alike); a wrong one must say
which argument (``field``) and what it should be, not surface as a numpy ``TypeError`` three calls
deeper. Each check returns the value converted (``int`` / ``float``) so callers can write
``k = check_int(k, "k", minimum=1)``.

Example:
    >>> check_int(8, "k", minimum=1)
    8
    >>> check_int(0, "k", minimum=1)
    Traceback (most recent call last):
    ...
    policyfit.errors.ConfigError: k: must be an integer >= 1, got 0
    >>> check_float(0.5, "rate", low=0.0, high=1.0)
    0.5
"""

from __future__ import annotations

import math
import numbers
from typing import Any

from policyfit.errors import ConfigError


def check_int(
    value: Any, field: str, *, minimum: int | None = None, path: str | None = None
) -> int:
    """``value`` as an ``int`` (a bool or a non-integral number is refused), at least ``minimum``."""
    bound = "" if minimum is None else f" >= {minimum}"
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if not ok and isinstance(value, numbers.Real) and not isinstance(value, bool):
        ok = math.isfinite(value) and float(value).is_integer()
    if not ok or (minimum is not None and int(value) < minimum):
        raise ConfigError(f"must be an integer{bound}, got {value!r}", field=field, path=path)
    return int(value)


def check_float(
    value: Any,
    field: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    path: str | None = None,
) -> float:
    """``value`` as a finite ``float`` in the interval given by ``low``/``high`` (closed unless
    ``low_open``/``high_open``)."""
    lo = "(-inf" if low is None else ("(" if low_open else "[") + f"{low:g}"
    hi = "inf)" if high is None else f"{high:g}" + (")" if high_open else "]")
    where = "" if low is None and high is None else f" in {lo}, {hi}"
    number = isinstance(value, numbers.Real) and not isinstance(value, bool)
    x = float(value) if number else math.nan
    inside = math.isfinite(x)
    if inside and low is not None:
        inside = x > low if low_open else x >= low
    if inside and high is not None:
        inside = x < high if high_open else x <= high
    if not inside:
        raise ConfigError(f"must be a finite number{where}, got {value!r}", field=field, path=path)
    return x
