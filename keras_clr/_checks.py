"""Argument checks shared by the public constructors.

Each check returns the cleaned value or raises a ``ValueError``/``TypeError``
that names the argument, what was received and what is expected, in Keras'
house style: ``Argument `step_size` must be a positive integer. Received:
step_size=0``.
"""

import math
import numbers


def _fail(error, name, value, expected):
    raise error(f"Argument `{name}` must be {expected}. Received: {name}={value!r}")


def real_number(name, value):
    """Returns `value` as a finite Python float, or raises."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        _fail(TypeError, name, value, "a real number")
    value = float(value)
    if not math.isfinite(value):
        _fail(ValueError, name, value, "finite")
    return value


def non_negative_number(name, value):
    value = real_number(name, value)
    if value < 0:
        _fail(ValueError, name, value, "a number >= 0")
    return value


def positive_number(name, value):
    value = real_number(name, value)
    if value <= 0:
        _fail(ValueError, name, value, "a number > 0")
    return value


def positive_int(name, value):
    """Accepts ints and integral floats (``2000.0``); returns a Python int."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        _fail(TypeError, name, value, "a positive integer")
    if not math.isfinite(value) or value != int(value) or value < 1:
        _fail(ValueError, name, value, "a positive integer")
    return int(value)


def greater(name, value, other_name, other):
    """Raises unless ``value > other``."""
    if not value > other:
        raise ValueError(
            f"Argument `{name}` must be greater than `{other_name}`. "
            f"Received: {name}={value!r}, {other_name}={other!r}"
        )


def momentum_range(base_momentum, max_momentum):
    """Checks ``0 <= base_momentum <= max_momentum < 1``; returns both as floats."""
    base = fraction("base_momentum", base_momentum, low_open=False)
    top = fraction("max_momentum", max_momentum, low_open=False)
    if base > top:
        raise ValueError(
            "Argument `base_momentum` must not exceed `max_momentum`. Received: "
            f"base_momentum={base_momentum!r}, max_momentum={max_momentum!r}"
        )
    return base, top


def optional_momentum_range(base_momentum, max_momentum, use):
    """`(None, None)` when neither is given, else `momentum_range`; one alone
    raises. `use` completes the message: "Give both ... {use}, or neither"."""
    if base_momentum is None and max_momentum is None:
        return None, None
    if base_momentum is None or max_momentum is None:
        raise ValueError(
            f"Give both `base_momentum` and `max_momentum` {use}, or neither. Received: "
            f"base_momentum={base_momentum!r}, max_momentum={max_momentum!r}"
        )
    return momentum_range(base_momentum, max_momentum)


def one_of(name, value, choices):
    if value not in choices:
        _fail(ValueError, name, value, "one of " + ", ".join(map(repr, choices)))
    return value


def fraction(name, value, *, low_open=True, high_open=True):
    """Checks ``value`` lies in the interval ``(0, 1)``, ``(0, 1]`` or ``[0, 1)``."""
    value = real_number(name, value)
    low_ok = value > 0 if low_open else value >= 0
    high_ok = value < 1 if high_open else value <= 1
    if not (low_ok and high_ok):
        interval = ("(" if low_open else "[") + "0, 1" + (")" if high_open else "]")
        _fail(ValueError, name, value, f"in {interval}")
    return value
