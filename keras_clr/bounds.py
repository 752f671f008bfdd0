"""Learning-rate bounds from a range-test curve: pure NumPy, no Keras.

Every rule takes the swept learning rates and the recorded values of one
metric, drops non-finite rows, smooths with a centered moving average (no
lag, so the bounds are not pushed to higher LRs) and returns a `Bounds`, or
refuses a curve with no clear signal (a `ValueError` that says why). The
loss rules warn (`ShallowCurveWarning`) when the loss barely fell.

- `lowest_loss_bounds` (the default, `"lowest_loss"`): `max_lr` where the
  smoothed training loss is lowest, the single LR `lr = max_lr / 2.5` and
  `base_lr = max_lr / 25`. Chosen by `benchmarks/suggestions.py`: across its
  tasks it lands closest to the best fixed LR of a grid search and to the
  best 1cycle peak (docs/suggestions.md).
- `accuracy_bounds`: Smith's rule (2017): `base_lr` where accuracy starts to
  rise, `max_lr` where the rise stops (it flattens, turns ragged or falls).
- `loss_bounds`: `base_lr` where the loss starts to fall; `max_lr` from one of
  `"valley"` (two thirds of the way, in sweep steps, from `base_lr` down the
  valley to the lowest loss), `"steepest"` (steepest descent before the
  minimum) or `"minimum"` (one tenth of the LR at the lowest loss).
"""

import sys
import warnings
from typing import NamedTuple

import numpy as np

from keras_clr import _checks

LOSS_METHODS = ("valley", "steepest", "minimum")  # `loss_bounds`' methods
METHODS = ("lowest_loss", "accuracy", *LOSS_METHODS)

# The default rule's constants (see `lowest_loss_bounds`): the single LR and
# the cycle's base below the peak, and its smoothing, a wider share of the
# sweep than the other rules'.
LR_BELOW_PEAK = 2.5
BASE_BELOW_PEAK = 25.0  # 1cycle's usual `div_factor` (PyTorch, fastai)
LOWEST_LOSS_WINDOW = 0.10
WINDOW = 0.05  # the other rules' smoothing, as a share of the points

# Fractions of the total rise (accuracy) or drop (loss) that mark where the
# useful region of the sweep begins and where accuracy has stopped rising.
START_FRACTION = 0.10
PLATEAU_FRACTION = 0.95

# A loss that falls by less than this share of its level before its lowest
# point barely trained during the sweep: the loss rules still answer, with a
# `ShallowCurveWarning`. On the 24 sweeps of benchmarks/suggestions.py the
# loss fell 37% to 91%, except on the GRU task's (12% to 13%), whose lowest
# point lies about 5x below the best fixed LR (docs/range-test.md). On its 25
# holdout sweeps, which did not set it, it marks exactly the 5 of an LSTM.
SHALLOW_FALL = 0.25


class ShallowCurveWarning(UserWarning):
    """The loss barely fell before its lowest point: the bounds may be low."""


class Bounds(NamedTuple):
    """Suggested cycle bounds, with the rule and the curve that gave them.

    `lr` is a single fixed LR, for training without a cycle (None for the
    rules that do not give one).
    """

    base_lr: float
    max_lr: float
    method: str
    metric: str
    lr: float = None

    def describe(self, ended, digits=3):
        """One line for people: the values, the rule and how the sweep `ended`.

        Examples:
            >>> Bounds(0.004, 0.1, "lowest_loss", "loss", 0.04).describe("finished")
            'base_lr=0.004 max_lr=0.1 lr=0.04 (lowest_loss rule on loss; finished)'
        """
        single = "" if self.lr is None else f" lr={self.lr:.{digits}g}"
        return (f"base_lr={self.base_lr:.{digits}g} max_lr={self.max_lr:.{digits}g}{single} "
                f"({self.method} rule on {self.metric}; {ended})")


def smooth(values, window=None):
    """Centered moving average; the window shrinks at both ends.

    Examples:
        >>> smooth(np.array([0.0, 3.0, 0.0, 3.0, 0.0]), window=3).tolist()
        [1.5, 1.0, 2.0, 1.0, 1.5]
    """
    values = np.asarray(values, dtype="float64")
    if window is None:
        window = default_window(len(values))
    half = window // 2
    padded_sum = np.concatenate([[0.0], np.cumsum(values)])
    index = np.arange(len(values))
    low = np.maximum(index - half, 0)
    high = np.minimum(index + half + 1, len(values))
    return (padded_sum[high] - padded_sum[low]) / (high - low)


def default_window(n, fraction=WINDOW):
    """About `fraction` of the points (5%), odd, at least 3 (1 for tiny curves)."""
    if n < 10:
        return 1
    return max(3, int(n * fraction) | 1)


def rule_window(method, n):
    """The moving average rule `method` reads `n` points through by default
    (`None`: the other rules' 5%)."""
    return default_window(n, LOWEST_LOSS_WINDOW if method == "lowest_loss" else WINDOW)


def lowest_loss_bounds(lrs, loss, metric="loss", window=None):
    """keras-clr's default rule, on a training-loss-vs-LR curve.

    `max_lr` is the LR where the smoothed loss is lowest (the moving average
    spans 10% of the points); the single LR is `max_lr / 2.5`, `base_lr` is
    `max_lr / 25`. A curve whose lowest point is its last (the loss still
    falls at the sweep's end) is refused: the peak lies beyond the sweep. A
    loss that fell by less than a quarter of its level before its lowest point
    gives bounds with a `ShallowCurveWarning`: they may be several times low.

    Examples:
        >>> lrs = np.geomspace(1e-5, 1.0, 300)
        >>> loss = 2.3 - 2.0 / (1 + (1e-2 / lrs) ** 2) + 50 * lrs**2
        >>> found = lowest_loss_bounds(lrs, loss)
        >>> round(found.max_lr, 4), round(found.lr, 4), round(found.base_lr, 5)
        (0.0425, 0.017, 0.0017)
    """
    lrs, curve, noise = _prepare(lrs, loss, metric, window, "lowest_loss")
    lowest, start_level, drop = _lowest_point(curve, noise, metric)
    if lowest == len(curve) - 1:
        raise ValueError(
            f"The {metric!r} curve is still falling at the end of the sweep "
            f"({lrs[-1]:.3g}), so its lowest point lies beyond it. Sweep to a higher "
            "`end_lr` (or until the loss diverges)."
        )
    _warn_if_shallow(lrs, curve, lowest, start_level, drop, metric)
    max_lr = float(lrs[lowest])
    return Bounds(max_lr / BASE_BELOW_PEAK, max_lr, "lowest_loss", metric,
                  lr=max_lr / LR_BELOW_PEAK)


def accuracy_bounds(lrs, accuracy, metric="accuracy", window=None):
    """Smith's rule on an accuracy-vs-LR curve.

    Examples:
        >>> lrs = np.linspace(0.001, 0.1, 200)
        >>> accuracy = 0.1 + 0.8 / (1 + np.exp(-(lrs - 0.03) / 0.004))
        >>> bounds = accuracy_bounds(lrs, accuracy)
        >>> round(bounds.base_lr, 3), round(bounds.max_lr, 3)
        (0.021, 0.042)
    """
    lrs, curve, noise = _prepare(lrs, accuracy, metric, window)
    peak = int(np.argmax(curve))
    start_level = curve[: max(1, peak)].min()
    rise = curve[peak] - start_level
    _require_signal(rise, noise, curve[peak], metric, "rise")
    base = _first_at_least(curve, start_level + START_FRACTION * rise)
    top = _first_at_least(curve, start_level + PLATEAU_FRACTION * rise)
    return _bounds(lrs, base, top, "accuracy", metric)


def loss_bounds(lrs, loss, method="valley", metric="loss", window=None, log_scale=None):
    """Bounds from a loss-vs-LR curve; `method` picks `max_lr`.

    `log_scale` (default: guessed from the spacing of `lrs`) measures slopes
    against log(lr), as suits an exponential sweep.

    Examples:
        >>> lrs = np.geomspace(1e-5, 1.0, 200)
        >>> loss = 2.3 - 2.0 / (1 + (1e-2 / lrs) ** 2) + 50 * lrs**2
        >>> bounds = loss_bounds(lrs, loss, method="valley")
        >>> round(bounds.base_lr, 4), round(bounds.max_lr, 4)
        (0.0031, 0.0174)
    """
    if method not in LOSS_METHODS:
        raise ValueError(
            f"Argument `method` must be one of {', '.join(map(repr, LOSS_METHODS))}. "
            f"Received: method={method!r}"
        )
    lrs, curve, noise = _prepare(lrs, loss, metric, window)
    lowest, start_level, drop = _lowest_point(curve, noise, metric)
    base = _first_at_least(-curve, -(start_level - START_FRACTION * drop))
    top, top_lr = None, None
    if method == "minimum":
        top_lr = lrs[lowest] / 10.0
    elif method == "valley":
        top = base + (2 * (lowest - base)) // 3
    else:
        if log_scale is None:
            log_scale = _looks_geometric(lrs)
        x = np.log(lrs) if log_scale else lrs
        descent = slice(0, lowest + 1)
        slope = np.gradient(curve[descent], x[descent]) if lowest > 1 else np.zeros(1)
        top = int(np.argmin(slope))
    found = _bounds(lrs, base, top, method, metric, top_lr=top_lr)
    _warn_if_shallow(lrs, curve, lowest, start_level, drop, metric)  # only with an answer
    return found


def suggest(lrs, values, method, metric, window=None, log_scale=None):
    """Dispatches to the rule named by `method` (one of `METHODS`)."""
    if method == "lowest_loss":
        return lowest_loss_bounds(lrs, values, metric=metric, window=window)
    if method == "accuracy":
        return accuracy_bounds(lrs, values, metric=metric, window=window)
    return loss_bounds(lrs, values, method, metric=metric, window=window, log_scale=log_scale)


def _lowest_point(curve, noise, metric):
    """The lowest point of a smoothed loss curve, the highest level before it and
    the drop between them; a drop within the noise is refused."""
    lowest = int(np.argmin(curve))
    start_level = curve[: max(1, lowest)].max()
    drop = start_level - curve[lowest]
    _require_signal(drop, noise, start_level, metric, "drop")
    return lowest, start_level, drop


def _warn_if_shallow(lrs, curve, lowest, start_level, drop, metric):
    """A `ShallowCurveWarning` when the loss fell by less than `SHALLOW_FALL`
    of its level before its lowest point."""
    if drop >= SHALLOW_FALL * abs(start_level):
        return
    warnings.warn(
        f"The {metric!r} curve fell only {drop / abs(start_level):.0%} (from "
        f"{start_level:.4g} to {curve[lowest]:.4g}) before its lowest point at "
        f"{lrs[lowest]:.3g}: the model barely trained during the sweep, and the best "
        "LR for a full run may lie several times higher. Sweep more steps "
        "(`num_steps`) and check the plot.",
        ShallowCurveWarning,
        stacklevel=_first_frame_outside_package(),
    )


def _first_frame_outside_package():
    """The `stacklevel` that points a warning at the code that called keras_clr."""
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_globals.get("__name__", "").startswith("keras_clr."):
        frame, level = frame.f_back, level + 1
    return level


def _prepare(lrs, values, metric, window, method=None):
    lrs = np.asarray(lrs, dtype="float64")
    values = np.asarray(values, dtype="float64")
    if lrs.shape != values.shape or lrs.ndim != 1:
        raise ValueError(
            "Arguments `lrs` and the metric values must be 1-D and of equal length. "
            f"Received: shapes {lrs.shape} and {values.shape}"
        )
    finite = np.isfinite(lrs) & np.isfinite(values)
    lrs, values = lrs[finite], values[finite]
    if len(lrs) < 5:
        raise ValueError(
            f"The {metric!r} curve has {len(lrs)} finite points; at least 5 are "
            "needed to suggest bounds. Sweep more steps or stop later. Received: "
            f"{len(lrs)} finite of {len(finite)} points"
        )
    if np.any(np.diff(lrs) <= 0):
        first = int(np.argmax(np.diff(lrs) <= 0))
        raise ValueError(
            "Argument `lrs` must be strictly increasing (one sweep). Received: "
            f"lrs[{first}]={lrs[first]:.6g} followed by lrs[{first + 1}]={lrs[first + 1]:.6g}"
        )
    if window is None:
        window = rule_window(method, len(values))
    else:
        window = _checks.positive_int("window", window)
        if window > len(values):
            raise ValueError(f"Argument `window` must be at most the curve's {len(values)} "
                             f"finite points. Received: window={window!r}")
    return lrs, smooth(values, window), _noise(values) / np.sqrt(window)


def _noise(values):
    """Robust per-point noise: MAD of the first differences, over sqrt(2)."""
    steps = np.diff(values)
    return 1.4826 * float(np.median(np.abs(steps - np.median(steps)))) / np.sqrt(2)


# A flat, noisy curve's smoothed range stays within a few noise units (at most
# 5 on shuffled and synthetic noise); a real rise or drop is many times larger
# (39 to 291 on the 24 sweeps of benchmarks/suggestions.py).
SIGNAL_TO_NOISE = 12.0
MIN_RELATIVE_CHANGE = 0.01


def _require_signal(change, smoothed_noise, level, metric, word):
    """Refuses a rise or drop within the noise, or under 1% of the curve's level
    (a constant loss, as from inputs that carry nothing, has no noise at all)."""
    if not change > max(SIGNAL_TO_NOISE * smoothed_noise, MIN_RELATIVE_CHANGE * abs(level), 1e-8):
        raise ValueError(
            f"The {metric!r} curve shows no clear {word} over the sweep "
            f"({word} {change:.3g} from {level:.4g}, smoothed noise {smoothed_noise:.3g}): it "
            "is flat or pure noise. Sweep more steps per decade (a model that starts slowly "
            "needs them), a range reaching higher LRs, or another metric."
        )


def _first_at_least(curve, level):
    return int(np.argmax(curve >= level))


def _looks_geometric(lrs):
    ratios = lrs[1:] / lrs[:-1]
    return lrs[0] > 0 and np.ptp(ratios) < 1e-6 * ratios.mean() and ratios.mean() > 1 + 1e-9


def _bounds(lrs, base, top, method, metric, top_lr=None):
    base_lr = float(lrs[base])
    max_lr = float(lrs[top] if top_lr is None else top_lr)
    if not max_lr > base_lr:
        raise ValueError(
            f"The {method!r} rule on {metric!r} found no usable range: the curve's "
            f"start ({base_lr:.3g}) is not below its end ({max_lr:.3g}). Sweep a "
            "wider LR range or more steps, or try another method."
        )
    return Bounds(base_lr, max_lr, method, metric)
