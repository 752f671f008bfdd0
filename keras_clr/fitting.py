"""One call from a compiled model to a trained one: `fit_one_cycle`."""

import inspect
from collections.abc import Mapping

from keras_clr import _checks
from keras_clr._optimizer import flatten
from keras_clr.callbacks import OneCycleLR
from keras_clr.range_test import lr_range_test

# The `fit` arguments shared with the range test: those that describe the
# training data, and `verbose`.
_SHARED_ARGUMENTS = ("batch_size", "sample_weight", "class_weight", "shuffle",
                     "steps_per_epoch", "validation_split", "verbose")
# With `validation_data`, the range test evaluates it every this many steps (as
# in the suggestion benchmark): `val_*` columns for the plot and for rules you
# apply yourself. The suggestion itself reads the training loss.
_EVAL_EVERY = 15


def fit_one_cycle(model, x, y=None, *, epochs, max_lr=None, range_test=None, one_cycle=None,
                  **fit_kwargs):
    """Trains `model` with 1cycle, finding `max_lr` with a range test first.

    Without `max_lr`, `lr_range_test` runs on the same training data (and,
    given `validation_data`, evaluates it every 15 steps into `val_*`
    columns: about 20 passes over it, which `range_test={"validation_data":
    None, "eval_every": None}` skips) and its default suggestion, read from
    the training loss, sets the cycle: `max_lr` and `div_factor = max_lr /
    base_lr` (25 with the default rule, 1cycle's usual start). Then `model.fit` trains with
    `OneCycleLR` over exactly the steps of this fit (epochs x steps per
    epoch, gradient accumulation and `steps_per_execution` accounted for),
    cycling momentum or `beta_1` where the optimizer has one.

    Args:
        model: A built, compiled model whose optimizer has a float LR.
        x: Training inputs, as for `fit`.
        y: Training targets, as for `fit`.
        epochs: Epochs to train.
        max_lr: The cycle's peak. Defaults to the range test's suggestion.
        range_test: Optional dict of `lr_range_test` arguments (`num_steps`,
            `seed`, `repeats`, ...); only without `max_lr`. The bounds come
            from the default rule (`suggest_bounds()`).
        one_cycle: Optional dict of `OneCycleLR` arguments other than
            `max_lr` and `verbose` (`pct_start`, `final_div_factor`,
            `cycle_momentum`, ...), checked before the range test runs (all
            but the check that the fit is long enough for every phase, made
            when `fit` starts). A `div_factor` here replaces the suggested
            `max_lr / base_lr`.
        **fit_kwargs: Passed to `model.fit` (`batch_size`, `callbacks`,
            `validation_data`, ...); the data arguments and `verbose` also
            to the range test.

    Returns:
        The `History` of the fit, with `learning_rate` per epoch, and with
        the range test's `RangeTestResult` as `history.range_test` (None
        when `max_lr` was given).

    Raises:
        ValueError: The range test found no trustworthy bounds (the message
            says why; pass `max_lr`), a model compiled with
            `steps_per_execution > 1` without `max_lr` (the range test needs
            every step's logs), `max_lr` inside `one_cycle`, `epochs` not a
            positive integer (all of these before the range test runs), or
            what `fit` and `OneCycleLR` raise.
        TypeError: `one_cycle` or `range_test` is not a dict, `one_cycle`
            names an argument it does not take, or a value (of `epochs`
            too) has the wrong type.

    Examples:
        >>> # history = fit_one_cycle(model, x, y, epochs=10, batch_size=64)
        >>> # history.range_test.plot(); history.history["val_accuracy"]
        >>> # fit_one_cycle(model, x, y, epochs=10, one_cycle={"pct_start": 0.1})
    """
    if max_lr is not None and range_test is not None:
        raise ValueError("`range_test` sets up the range test that finds `max_lr`; with "
                         f"`max_lr` given none runs. Pass one of them. Received: "
                         f"max_lr={max_lr!r}, range_test={range_test!r}")
    epochs = _checks.positive_int("epochs", epochs)  # before the range test runs
    if range_test is not None and not isinstance(range_test, Mapping):
        raise TypeError("`range_test` must be a dict of `lr_range_test` arguments, e.g. "
                        f"{{'num_steps': 600}}. Received: range_test={range_test!r}")
    result, cycle = None, _cycle_arguments(one_cycle)
    if max_lr is None:
        shared = {name: fit_kwargs[name] for name in _SHARED_ARGUMENTS if name in fit_kwargs}
        if fit_kwargs.get("validation_data") is not None:
            shared.update(validation_data=fit_kwargs["validation_data"], eval_every=_EVAL_EVERY)
        result = lr_range_test(model, x, y, **{**shared, **(range_test or {})})
        found = result.suggest_bounds()
        max_lr = found.max_lr
        cycle.setdefault("div_factor", found.max_lr / found.base_lr)
    callback = OneCycleLR(max_lr, **cycle)
    callbacks = [callback, *flatten(fit_kwargs.pop("callbacks", None) or [])]
    history = model.fit(x, y, epochs=epochs, callbacks=callbacks, **fit_kwargs)
    history.range_test = result
    return history


def _cycle_arguments(one_cycle):
    """A copy of `one_cycle`, checked as `OneCycleLR` checks its arguments (so a
    bad one fails before a range test has run)."""
    if one_cycle is None:
        return {}
    if not isinstance(one_cycle, Mapping):
        raise TypeError("`one_cycle` must be a dict of `OneCycleLR` arguments, e.g. "
                        f"{{'pct_start': 0.1}}. Received: one_cycle={one_cycle!r}")
    if "max_lr" in one_cycle:
        raise ValueError("`one_cycle` holds `OneCycleLR`'s other arguments: pass `max_lr` to "
                         f"`fit_one_cycle` itself. Received: one_cycle={one_cycle!r}")
    known = set(inspect.signature(OneCycleLR).parameters) - {"max_lr", "verbose"}
    unknown = sorted(set(one_cycle) - known, key=str)
    if unknown:
        raise TypeError(f"`one_cycle` takes {sorted(known)}; it does not take {unknown}. "
                        f"Received: one_cycle={one_cycle!r}")
    OneCycleLR(1.0, **one_cycle)  # checks the values; the real max_lr comes later
    return dict(one_cycle)
