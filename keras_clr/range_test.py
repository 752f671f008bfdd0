"""The LR range test: sweep the LR over one short run, record per-batch curves.

`RangeTestCallback` drives the sweep inside any `model.fit`;
`lr_range_test()` runs it on a model and puts the model back exactly as it was;
`RangeTestResult` holds the curves and turns them into bounds, a schedule and
a plot.
"""

import contextlib
import math
import numbers
import sys

import keras
import numpy as np
import pandas as pd

from keras_clr import _checks, bounds
from keras_clr._in_graph import Installation, claim, remove_stale
from keras_clr._optimizer import (
    accumulation_steps,
    build_optimizer,
    current_step,
    flatten,
    inner_optimizer,
    learning_rate_variable,
    nnx_enabled,
    refuse_multi_step_execution,
    restore_jax_sharding_spec,
    sync_host_state,
)
from keras_clr.bounds import Bounds
from keras_clr.schedules import CyclicalLearningRate

SWEEP_MODES = ("linear", "exponential")
ACCURACY_METRICS = (
    "accuracy",
    "acc",
    "sparse_categorical_accuracy",
    "categorical_accuracy",
    "binary_accuracy",
)
# Without `epochs` or `num_steps`, a sweep takes this many steps: on the suite of
# benchmarks/suggestions.py, 300 steps over 1e-7..10 put the default rule's
# bounds much closer to a grid search's than 100 (fastai's `lr_find` default)
# and no worse than 600.
DEFAULT_NUM_STEPS = 300
# Without bounds, an exponential sweep wide enough for any optimizer (fastai's
# range); it stops itself once the loss diverges.
DEFAULT_START_LR = 1e-7
DEFAULT_END_LR = 10.0


def sweep_range(start_lr=None, end_lr=None, mode=None):
    """Checks a sweep's `(start_lr, end_lr, mode)`, filling in the defaults.

    Without bounds the sweep is exponential from 1e-7 to 10. With both bounds
    and no `mode` it is linear (Smith's test, and this function's default
    before the LR bounds became optional).

    Examples:
        >>> sweep_range()
        (1e-07, 10.0, 'exponential')
        >>> sweep_range(0.001, 0.1)
        (0.001, 0.1, 'linear')
    """
    if mode is None:
        mode = "linear" if start_lr is not None and end_lr is not None else "exponential"
    _checks.one_of("mode", mode, SWEEP_MODES)
    if mode == "linear" and (start_lr is None or end_lr is None):
        raise ValueError(
            "A linear sweep needs both bounds, since it spends its steps evenly between "
            "them: pass `start_lr` and `end_lr`, or use mode='exponential'. Received: "
            f"start_lr={start_lr!r}, end_lr={end_lr!r}, mode='linear'"
        )
    start_lr = DEFAULT_START_LR if start_lr is None else start_lr
    end_lr = DEFAULT_END_LR if end_lr is None else end_lr
    if mode == "exponential":
        start_lr = _checks.positive_number("start_lr", start_lr)
    else:
        start_lr = _checks.non_negative_number("start_lr", start_lr)
    end_lr = _checks.positive_number("end_lr", end_lr)
    _checks.greater("end_lr", end_lr, "start_lr", start_lr)
    return start_lr, end_lr, mode


def sweep_learning_rates(start_lr, end_lr, num_steps, mode="linear"):
    """The LR of each of the `num_steps` steps, from `start_lr` to `end_lr`.

    Examples:
        >>> sweep_learning_rates(0.1, 0.5, 5).tolist()
        [0.1, 0.2, 0.30000000000000004, 0.4, 0.5]
        >>> sweep_learning_rates(1e-4, 1.0, 5, "exponential").round(6).tolist()
        [0.0001, 0.001, 0.01, 0.1, 1.0]
    """
    return _sweep(np, np.arange(num_steps) / (num_steps - 1), start_lr, end_lr, mode)


def _sweep(xp, fraction, start_lr, end_lr, mode):
    """The sweep's LR at `fraction` (0 to 1) of the way, over NumPy or `keras.ops`."""
    if mode == "exponential":
        return start_lr * xp.exp(math.log(end_lr / start_lr) * fraction)
    return start_lr + (end_lr - start_lr) * fraction


def _sweep_fn(start_lr, end_lr, num_steps, mode, first_step):
    """`sweep_learning_rates` as a function of the optimizer step, in `keras.ops`."""

    def learning_rate(step):
        index = keras.ops.cast(step - first_step, keras.backend.floatx())
        fraction = keras.ops.minimum(index, num_steps - 1) / (num_steps - 1)
        return _sweep(keras.ops, fraction, start_lr, end_lr, mode)

    return learning_rate


class RangeTestResult:
    """The curves of one or more sweeps, and what to make of them.

    Attributes:
        history: pandas DataFrame, one row per batch: `step` (the sweep step
            whose LR the batch used), `learning_rate`, `loss`, each compiled
            metric for that batch alone, `val_*` columns on the steps where
            validation data was evaluated and, after several sweeps
            (`repeats`), `repeat`. Under gradient accumulation (and after a
            step skipped by a `LossScaleOptimizer`) several rows share a step.
        mode: `"linear"` or `"exponential"`.
        start_lr: The sweep's first LR.
        end_lr: The sweep's last LR.
        num_steps: Steps planned for each sweep.
        stop_reason: Why the (first) sweep stopped: `"finished"`,
            `"diverged"` (smoothed loss past `stop_factor` x its best), `"nan"`
            (loss NaN or infinite) or `"fit ended"` (`fit` ran out of data or
            was stopped by another callback first).
        stop_reasons: One per sweep.
    """

    def __init__(self, history, mode, start_lr, end_lr, num_steps=None,
                 stop_reason="finished", stop_reasons=None):
        self.history = history
        self.mode = mode
        self.start_lr = start_lr
        self.end_lr = end_lr
        self.num_steps = len(history) if num_steps is None else num_steps
        self.stop_reasons = tuple(stop_reasons or (stop_reason,))
        self.stop_reason = self.stop_reasons[0]

    @property
    def repeats(self):
        """The number of sweeps."""
        return len(self.stop_reasons)

    @property
    def ended(self):
        """How the sweep(s) went, e.g. `"268 of 300 steps, diverged"` (sweep steps
        reached: rows that share a step, under gradient accumulation, count once)."""
        if self.repeats == 1:
            return f"{self.history['step'].nunique()} of {self.num_steps} steps, {self.stop_reason}"
        rows = self.history.groupby("repeat")["step"].nunique()
        return (f"{self.repeats} sweeps of {self.num_steps} steps: "
                + ", ".join(f"{n} {reason}" for n, reason in zip(rows, self.stop_reasons)))

    def __repr__(self):
        sweeps = f"{self.repeats} sweeps, " if self.repeats > 1 else ""
        return (
            f"RangeTestResult({sweeps}{len(self.history)} rows of {self.num_steps} steps, "
            f"{self.mode} sweep {self.start_lr:g} -> {self.end_lr:g}, "
            f"{', '.join(self.stop_reasons)})"
        )

    def default_metric(self):
        """The training loss: what the default rule (`"lowest_loss"`) reads.

        Every sweep has it, with or without validation data, one point per
        step; on the suite of `benchmarks/suggestions.py` it also gave better
        bounds than held-out accuracy or loss read every few steps.
        """
        return "loss"

    def curve(self, metric):
        """`(lrs, values)`: one point per sweep step, as the bound rules read it.

        Rows that share a step (gradient accumulation, a skipped update) are
        averaged; over several sweeps, each step's point is their median.
        """
        self._check_metric(metric)
        rows = self.history.dropna(subset=[metric])
        per_step = rows.groupby(["repeat", "step"] if "repeat" in rows else ["step"])
        points = per_step[["learning_rate", metric]].mean()
        if "repeat" in rows:
            points = points.groupby("step").median()
        return points["learning_rate"].to_numpy(), points[metric].to_numpy()

    def _check_metric(self, metric):
        if self.history.empty:
            raise ValueError(f"The sweep recorded no steps ({self.ended}): there is no "
                             f"{metric!r} curve to read. Received: an empty history")
        if metric not in self.history.columns or metric in ("step", "learning_rate", "repeat"):
            names = [c for c in self.history.columns
                     if c not in ("step", "learning_rate", "repeat")]
            raise ValueError(
                f"Argument `metric` must be one of the recorded columns {names}. "
                f"Received: metric={metric!r}"
            )

    def suggest_bounds(self, metric=None, method=None, window=None):
        """Suggests `base_lr` and `max_lr` from one curve of the sweep(s).

        Args:
            metric: Column to read. Defaults to `default_metric()`.
            method: `"lowest_loss"` (the default rule: `max_lr` at the lowest
                smoothed loss, `lr = max_lr / 2.5`, `base_lr = max_lr / 25`),
                `"accuracy"` (Smith's rule: start and end of the rise), or
                another loss rule: `"valley"`, `"steepest"`, `"minimum"`.
                Defaults to `"accuracy"` for accuracy metrics (`accuracy`,
                `val_digit_accuracy`, ...) and `"lowest_loss"` otherwise.
            window: Width of the centered moving average. Defaults to about
                10% of the points for `"lowest_loss"`, 5% for the other rules.

        Returns:
            `keras_clr.bounds.Bounds(base_lr, max_lr, method, metric, lr)`;
            `lr` is a single fixed LR (None for rules that give none).

        Raises:
            ValueError: Unknown metric or method, a curve too short, flat or
                noisy to read, or (`"lowest_loss"`) still falling at the
                sweep's end: the message says which and what to do.

        Warns:
            keras_clr.bounds.ShallowCurveWarning: The loss fell by less than
                a quarter of its level before its lowest point: the model
                barely trained during the sweep and the bounds may be low.
        """
        metric = self.default_metric() if metric is None else metric
        lrs, values = self.curve(metric)
        if method is None:
            method = "accuracy" if _is_accuracy(metric) else "lowest_loss"
        _checks.one_of("method", method, bounds.METHODS)
        return bounds.suggest(lrs, values, method, metric, window=window,
                              log_scale=self.mode == "exponential")

    def suggestion_spread(self, metric=None, method=None):
        """Each sweep's own suggestion, as a DataFrame (one row per `repeat`).

        Columns `repeat`, `base_lr`, `max_lr` (NaN where that sweep's curve was refused)
        and `refused` (the reason, or None): how much the bounds move from
        sweep to sweep.
        """
        metric = self.default_metric() if metric is None else metric
        rows = []
        groups = self.history.groupby("repeat") if "repeat" in self.history else [(0, self.history)]
        for repeat, history in groups:
            single = RangeTestResult(history.drop(columns="repeat", errors="ignore"), self.mode,
                                     self.start_lr, self.end_lr, self.num_steps)
            try:
                found = single.suggest_bounds(metric=metric, method=method)
                rows.append({"repeat": repeat, "base_lr": found.base_lr,
                             "max_lr": found.max_lr, "refused": None})
            except ValueError as error:
                rows.append({"repeat": repeat, "base_lr": np.nan, "max_lr": np.nan,
                             "refused": str(error)})
        return pd.DataFrame(rows)

    def schedule(self, mode="triangular2", *, step_size, metric=None, method=None,
                 bounds=None, **kwargs):
        """A `CyclicalLearningRate` between the suggested bounds.

        Args:
            mode: The policy. Defaults to `"triangular2"`.
            step_size: Steps per half cycle (required). The paper recommends
                2-10 epochs' worth: `step_size_for(steps_per_epoch, epochs=4)`.
            metric: Passed to `suggest_bounds()`.
            method: Passed to `suggest_bounds()`.
            bounds: A `Bounds` to use instead of suggesting (e.g. one you
                adjusted with `bounds._replace(max_lr=...)`), or a
                `(base_lr, max_lr)` pair.
            **kwargs: Other `CyclicalLearningRate` arguments (`gamma`, ...).

        Examples:
            >>> # result.schedule("triangular2", step_size=step_size_for(steps_per_epoch))
        """
        if bounds is None:
            bounds = self.suggest_bounds(metric=metric, method=method)
        try:
            base_lr, max_lr = bounds[:2] if isinstance(bounds, Bounds) else bounds
        except (TypeError, ValueError):
            raise TypeError("Argument `bounds` must be a `Bounds` or a (base_lr, max_lr) "
                            f"pair. Received: bounds={bounds!r}") from None
        return CyclicalLearningRate(base_lr, max_lr, step_size, mode=mode, **kwargs)

    def plot(self, ax=None, metric=None, method=None):
        """Plots the sweep with the suggested bounds marked; returns the first Axes.

        Two panels side by side, with the same bounds marked: `metric` (the
        curve the bounds are read from) and, beside it, the training loss, or
        beside the loss an accuracy (held-out if recorded; one panel when the
        sweep recorded none). The values the rules read (one per sweep step:
        rows of a step averaged, several sweeps' median) are drawn faintly,
        the smoothed curve on top; the x-axis is logarithmic for
        exponential sweeps. The first title says how the sweep ended
        (`stop_reason`) and, when no bounds can be suggested, why.

        Args:
            ax: Where to draw: `None` (a new figure with both panels), a
                matplotlib `Figure` (both panels added to it, e.g. one made
                with `Figure(layout="constrained")` to save without pyplot)
                or an `Axes` (the `metric` panel alone, on it).
            metric: Passed to `suggest_bounds()`. Defaults to
                `default_metric()`.
            method: Passed to `suggest_bounds()`.

        Returns:
            The `Axes` of the `metric` panel; the second panel, if drawn, is
            `ax.figure.axes[1]`.
        """
        from keras_clr import plotting

        metric = self.default_metric() if metric is None else metric
        if method is not None:  # a typo is an error, not a title saying "no bounds"
            _checks.one_of("method", method, bounds.METHODS)
        ended = self.ended
        try:
            suggestion, note = self.suggest_bounds(metric=metric, method=method), ended
        except ValueError as error:
            suggestion, note = None, f"{ended}; no bounds: {error}"
        panels = [metric, *self._companion(metric)]
        axes = plotting.panel_axes(ax, len(panels))
        for panel, panel_ax, panel_note in zip(panels, axes, [note, None]):
            lrs, values = self.curve(panel)  # what the rules read: one point per step
            plotting.plot_range_test(pd.DataFrame({"learning_rate": lrs, panel: values}),
                                     panel, suggestion, ax=panel_ax,
                                     log_x=self.mode == "exponential", note=panel_note)
        return axes[0]

    def _companion(self, metric):
        """The second panel of `plot()`: the loss beside another metric, and an
        accuracy (held-out if recorded) beside the loss, if there is one."""
        if metric != "loss":
            return ["loss"]
        columns = [c for c in self.history.columns if self.history[c].notna().sum() >= 5]
        for name in ("val_accuracy", "accuracy"):
            if name in columns:
                return [name]
        return []


def _is_accuracy(metric):
    """`accuracy`, `val_acc`, `digit_accuracy` (a named output's) ... ."""
    name = metric.removeprefix("val_")
    return any(name == known or name.endswith("_" + known) for known in ACCURACY_METRICS)


def sweep_updates(batches, optimizer):
    """How many updates `batches` batches apply (under gradient accumulation, one
    per `gradient_accumulation_steps` batches): the length of a sweep over them,
    at least 2.

    Examples:
        >>> sweep_updates(100, keras.optimizers.SGD(gradient_accumulation_steps=4))
        25
    """
    return max(2, batches // accumulation_steps(optimizer))


class RangeTestCallback(keras.callbacks.Callback):
    """Sweeps the learning rate during `fit` and records per-batch curves.

    Step `i` of the sweep (counted from the optimizer's step when `fit`
    starts) uses `start_lr + (end_lr - start_lr) * i / (num_steps - 1)`
    (`"linear"`, as in Smith 2017) or the geometric equivalent
    (`"exponential"`, as fastai). Each row of `history` holds the loss and
    metrics of that batch alone: Keras passes running means since the epoch
    began to batch hooks, which smear the curve towards higher LRs, so for
    the duration of `fit` the train step resets the metrics before it
    updates them (the progress bar and epoch logs then show per-batch values
    too).

    The sweep stops early (`model.stop_training`) when the loss is NaN or
    infinite, or when its exponentially smoothed value (over ~5% of the
    sweep) exceeds `stop_factor` times the best so far; the rows up to then
    stay.

    Args:
        start_lr: First LR, finite and >= 0 (> 0 for an exponential sweep).
            Defaults to 1e-7.
        end_lr: Last LR, > `start_lr`. Defaults to 10.
        num_steps: Steps in the sweep (optimizer updates), >= 2. Defaults to
            the whole `fit` (epochs x steps per epoch, divided by the
            optimizer's `gradient_accumulation_steps`).
        mode: `"linear"` or `"exponential"`. Defaults to `"linear"` when both
            bounds are given (Smith's test, and the default before the bounds
            became optional), else `"exponential"`.
        stop_factor: Divergence threshold, > 1. Defaults to 4.
        validation_data: Held-out data, as for `fit` (`(x, y)`,
            `(x, y, sample_weight)` or a dataset), evaluated every
            `eval_every` steps into `val_*` columns.
        eval_every: Evaluate `validation_data` every this many steps (and at
            the sweep's last step, when it runs to the end).

    Examples:
        >>> sweep = RangeTestCallback(start_lr=1e-4, end_lr=1.0, mode="exponential")
        >>> # model.fit(x, y, epochs=2, callbacks=[sweep])
        >>> # sweep.result.suggest_bounds(); sweep.result.plot()
    """

    def __init__(
        self,
        start_lr=None,
        end_lr=None,
        num_steps=None,
        mode=None,
        stop_factor=4.0,
        validation_data=None,
        eval_every=None,
    ):
        super().__init__()
        self.start_lr, self.end_lr, self.mode = sweep_range(start_lr, end_lr, mode)
        if num_steps is not None:
            num_steps = _checks.positive_int("num_steps", num_steps)
            if num_steps < 2:
                raise ValueError(
                    f"Argument `num_steps` must be at least 2. Received: num_steps={num_steps}"
                )
        self.num_steps = num_steps
        self.stop_factor = _checks.real_number("stop_factor", stop_factor)
        if self.stop_factor <= 1:
            raise ValueError(
                f"Argument `stop_factor` must be > 1. Received: stop_factor={stop_factor!r}"
            )
        if eval_every is not None:
            eval_every = _checks.positive_int("eval_every", eval_every)
            if validation_data is None:
                raise ValueError(
                    "Argument `eval_every` needs `validation_data`. Received: "
                    f"eval_every={eval_every}, validation_data=None"
                )
        if isinstance(validation_data, (tuple, list)) and not 1 <= len(validation_data) <= 3:
            raise ValueError(
                "Argument `validation_data` must be (x, y), (x, y, sample_weight) or a "
                f"dataset, as for `fit`. Received: a {type(validation_data).__name__} of "
                f"{len(validation_data)} items"
            )
        self.validation_data = validation_data
        self.eval_every = eval_every
        self._rows = []
        self._num_steps, self._stop_reason = num_steps, "fit ended"

    @property
    def history(self):
        """The recorded rows as a pandas DataFrame (see `RangeTestResult`)."""
        return pd.DataFrame(self._rows, columns=None if self._rows else ["step", "learning_rate"])

    @property
    def result(self):
        """The sweep so far as a `RangeTestResult`."""
        return RangeTestResult(self.history, self.mode, self.start_lr, self.end_lr,
                               self._num_steps, self._stop_reason)

    def on_train_begin(self, logs=None):
        refuse_multi_step_execution(self.model, "RangeTestCallback")
        if nnx_enabled():
            # Keras' NNX step calls `type(model).train_step`, past the per-step
            # metric reset: the rows would silently hold running means.
            raise ValueError(
                "RangeTestCallback does not support Keras' NNX mode (it resets the "
                "metrics inside the train step). Run the range test with NNX disabled. "
                "Received: keras.config.is_nnx_enabled()=True"
            )
        optimizer, _ = learning_rate_variable(self.model, "RangeTestCallback")
        claim(self.model, self, "RangeTestCallback")
        self._accumulation = accumulation_steps(optimizer)
        num_steps = self.num_steps
        if num_steps is None:
            steps, epochs = self.params.get("steps"), self.params.get("epochs")
            if not steps:
                raise ValueError(
                    "RangeTestCallback cannot tell how many steps this `fit` has "
                    "(the data has no length): pass `num_steps`. Received: "
                    f"steps={steps!r}, num_steps=None"
                )
            num_steps = sweep_updates(steps * epochs, optimizer)
        self._lrs = sweep_learning_rates(self.start_lr, self.end_lr, num_steps, self.mode)
        self._num_steps, self._stop_reason = num_steps, "fit ended"
        self._first_step = current_step(self.model)
        # Each row's sweep step is read off the LR its step logged. Whether the
        # batch applied an update is counted here (under gradient accumulation,
        # one batch in k does): reading the step from the optimizer costs an
        # eager op per batch on TensorFlow and a full state sync on JAX. A
        # LossScaleOptimizer can skip an update, so through one it is read.
        self._batches, self._updates, self._evaluated = 0, 0, None
        self._reads_step = optimizer is not self.model.optimizer
        self._installation = Installation(
            self.model, self,
            _sweep_fn(self.start_lr, self.end_lr, num_steps, self.mode, self._first_step),
            reset_metrics=True,
        )
        self._rows = []
        self._smoothed_loss, self._best_loss = 0.0, math.inf
        # An EMA about 5% of the sweep wide (the non-default rules' moving
        # average): a fixed 0.98 would lag ~50 steps and let short sweeps run
        # far past divergence.
        self._beta = 1.0 - 2.0 / (bounds.default_window(num_steps) + 1)
        self._expected_lr = None

    def on_epoch_begin(self, epoch, logs=None):
        self._installation.check_learning_rate(self._expected_lr, "RangeTestCallback")

    def on_train_batch_end(self, batch, logs=None):
        logs = logs or {}
        if "learning_rate" not in logs:
            raise ValueError(
                "RangeTestCallback records what each step of `model.fit` logs, but this "
                "batch's logs hold no `learning_rate`: run it in `fit` (not a custom "
                f"loop) with the model's own train step. Received: logs={logs!r}"
            )
        learning_rate = float(logs["learning_rate"])
        index = self._sweep_index(learning_rate)  # the sweep step this batch used
        if self._reads_step:  # a LossScaleOptimizer may have skipped the update
            updates = current_step(self.model) - self._first_step
            applied, self._updates = updates > self._updates, updates
        else:
            self._batches += 1
            applied = self._batches % self._accumulation == 0
        row = {"step": index, "learning_rate": learning_rate}
        row.update(_scalars(logs))
        done = applied and index >= len(self._lrs) - 1
        block = index // self.eval_every if self.eval_every else None
        if self.eval_every and applied and (block != self._evaluated or done):
            row.update(self._evaluate())
            self._evaluated = block
        self._rows.append(row)
        reason = self._stop_reason_for(row.get("loss", math.nan))
        if reason is None and done:
            reason = "finished"
        if reason is not None:
            self._stop_reason = reason
            self.model.stop_training = True

    def _sweep_index(self, learning_rate):
        """The sweep step whose LR is `learning_rate` (the inverse of `_sweep`)."""
        if self.mode == "exponential":
            fraction = math.log(learning_rate / self.start_lr) / math.log(
                self.end_lr / self.start_lr)
        else:
            fraction = (learning_rate - self.start_lr) / (self.end_lr - self.start_lr)
        return min(max(round(fraction * (len(self._lrs) - 1)), 0), len(self._lrs) - 1)

    def on_epoch_end(self, epoch, logs=None):
        if self._rows:
            self._expected_lr = self._rows[-1]["learning_rate"]

    def on_train_end(self, logs=None):
        self.remove_sweep()

    def remove_sweep(self):
        """Gives the model its own train step back; the optimizer keeps the
        sweep's last LR (its own, if no step ran). Idempotent; after a `fit`
        that raised, the model's next `fit` does this itself."""
        installation, self._installation = getattr(self, "_installation", None), None
        if installation is not None:
            installation.remove()

    def _evaluate(self):
        data = self.validation_data
        if isinstance(data, (tuple, list)):
            x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(tuple(data))
            scores = self.model.evaluate(x, y, sample_weight=sample_weight, verbose=0,
                                         return_dict=True)
        else:
            scores = self.model.evaluate(data, verbose=0, return_dict=True)
        restore_jax_sharding_spec(self.model)
        return {f"val_{k}": v for k, v in _scalars(scores).items()}

    def _stop_reason_for(self, loss):
        if not math.isfinite(loss):
            return "nan"
        beta, count = self._beta, len(self._rows)
        self._smoothed_loss = beta * self._smoothed_loss + (1 - beta) * loss
        smoothed = self._smoothed_loss / (1 - beta**count)
        self._best_loss = min(self._best_loss, smoothed)
        if self._best_loss > 0 and smoothed > self.stop_factor * self._best_loss:
            return "diverged"
        return None


def lr_range_test(
    model,
    x,
    y=None,
    *,
    start_lr=None,
    end_lr=None,
    epochs=None,
    num_steps=None,
    mode=None,
    stop_factor=4.0,
    eval_every=None,
    repeats=1,
    seed=None,
    verbose="auto",
    **fit_kwargs,
):
    """Runs an LR range test on `model` and leaves the model exactly as it was.

    The sweep runs through `model.fit(x, y, **fit_kwargs)` (arrays, `tf.data`,
    `PyDataset`; `batch_size`, `callbacks`, `shuffle`, `sample_weight` ...
    pass through). Afterwards the model's variables, every optimizer
    variable (iterations, momenta, Adam moments, loss-scale state) and the LR
    are restored bit for bit from a copy in memory, whether the sweep
    finished, diverged, hit NaN, or was stopped by an exception or Ctrl-C.

    Args:
        model: A built, compiled Keras model whose optimizer has a float
            learning rate.
        x: Training inputs, as for `fit` (arrays, `tf.data`, `PyDataset`).
        y: Training targets, as for `fit`.
        start_lr: The sweep's first LR. Defaults to 1e-7.
        end_lr: The sweep's last LR. Defaults to 10; the sweep stops by
            itself once the loss diverges.
        epochs: Epochs to sweep over. Defaults to enough epochs for
            `num_steps`.
        num_steps: Steps (optimizer updates) in the sweep. Defaults to all
            steps of `epochs`, or to 300 when neither is given.
        mode: `"linear"` (Smith's test) or `"exponential"` (fastai's).
            Defaults to `"linear"` when both bounds are given (the default
            before the bounds became optional), else `"exponential"`.
        stop_factor: Stop when the smoothed loss exceeds this many times its
            best value. Defaults to 4.
        eval_every: With `validation_data=...` among `fit_kwargs`, evaluate it
            every this many steps into `val_*` columns (instead of once per
            epoch). Smith's test reads held-out accuracy.
        repeats: Sweeps to run, each from the same restored state; the
            suggestion reads their median curve and `suggestion_spread()`
            shows how far the sweeps' own suggestions differ. Defaults to 1.
        seed: With an int, `keras.utils.set_random_seed(seed + i)` before
            sweep `i` (the process-wide Python, NumPy and backend seeds), so
            the same call gives the same curves and bounds. Defaults to None
            (not seeded).
        verbose: As in `fit`: 0 silent, 1 a progress bar (with the LR and
            the loss) and the suggestion at the end. Defaults to `"auto"`:
            1 in a terminal or notebook, else 0.
        **fit_kwargs: Passed to `model.fit` (not `initial_epoch`: the sweep
            starts at its first step).

    Returns:
        A `RangeTestResult`.

    Raises:
        ValueError: Bad sweep arguments, a model that is not compiled or not
            built, data with no batches, `initial_epoch`, or an optimizer
            built with a schedule.

    Examples:
        >>> # result = lr_range_test(model, x, y, batch_size=64)
        >>> # result.suggest_bounds(); result.plot()
    """
    if not getattr(model, "compiled", False) or model.optimizer is None:
        raise ValueError(
            "lr_range_test needs a compiled model: call `model.compile(optimizer, "
            f"loss, metrics)` first. Received: model={model.name!r} (not compiled)"
        )
    if not model.built:
        raise ValueError(
            f"lr_range_test needs a built model so its state can be restored: give "
            f"it an `Input` or call it on a batch first. Received: model={model.name!r}"
        )
    repeats = _checks.positive_int("repeats", repeats)
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)):
        raise TypeError(f"Argument `seed` must be an int or None. Received: seed={seed!r}")
    seed = None if seed is None else int(seed)  # NumPy's ints too
    if seed is not None and not 0 <= seed <= 2**32 - repeats:  # NumPy's seed range
        raise ValueError(f"Argument `seed` must be in [0, 2**32 - repeats] (sweep i uses seed + "
                         f"i). Received: seed={seed}, repeats={repeats}")
    if fit_kwargs.get("batch_size") is not None:
        fit_kwargs["batch_size"] = _checks.positive_int("batch_size", fit_kwargs["batch_size"])
    if fit_kwargs.get("initial_epoch"):
        raise ValueError("lr_range_test sweeps from the first epoch of its own `fit`; "
                         "`initial_epoch` would skip part of the sweep. Received: "
                         f"initial_epoch={fit_kwargs['initial_epoch']!r}")
    verbose = _resolve_verbose(verbose)
    remove_stale(model)  # left by a `fit` that raised: measure the model's own state
    if epochs is not None:
        epochs = _checks.positive_int("epochs", epochs)
    if epochs is None:
        num_steps = DEFAULT_NUM_STEPS if num_steps is None else num_steps
        batches = (_checks.positive_int("num_steps", num_steps)
                   * accumulation_steps(inner_optimizer(model)))
        epochs = math.ceil(batches / _steps_per_epoch(x, fit_kwargs))
    validation_data = fit_kwargs.pop("validation_data", None) if eval_every else None
    sweeps = [
        RangeTestCallback(start_lr, end_lr, num_steps=num_steps, mode=mode,
                          stop_factor=stop_factor, validation_data=validation_data,
                          eval_every=eval_every)
        for _ in range(repeats)
    ]
    refuse_multi_step_execution(model, "lr_range_test")
    learning_rate_variable(model, "lr_range_test")
    callbacks = flatten(fit_kwargs.pop("callbacks", None) or [])  # a list, or one, as for fit
    build_optimizer(model)  # so all its state can be saved
    saved = [(v, np.array(v.numpy(), copy=True)) for v in _state_variables(model)]
    try:
        for repeat, sweep in enumerate(sweeps):
            if seed is not None:
                keras.utils.set_random_seed(seed + repeat)
            model.fit(x, y, epochs=epochs, callbacks=[sweep, *callbacks], verbose=verbose,
                      **fit_kwargs)
            _restore(model, saved)
    except BaseException:
        # The fit's error is the one to report. On JAX, a first step that fails
        # to trace leaves the model's variables empty, so removing the sweep
        # fails until the restore has refilled them.
        with contextlib.suppress(Exception):
            _remove_sweeps(model, sweeps)
        _restore(model, saved)
        with contextlib.suppress(Exception):
            remove_stale(model)
        raise
    _remove_sweeps(model, sweeps)
    _restore(model, saved)
    result = _combine([sweep.result for sweep in sweeps])
    if verbose:
        print(describe_suggestion(result))
    return result


def describe_suggestion(result):
    """One line: the suggested bounds (and single LR), or why there are none."""
    try:
        found = result.suggest_bounds()
    except ValueError as error:
        return f"No bounds suggested: {error}"
    return f"Suggested {found.describe(result.ended)}"


def _resolve_verbose(verbose):
    _checks.one_of("verbose", verbose, ("auto", 0, 1, 2))
    if verbose != "auto":
        return verbose
    interactive = sys.stdout is not None and sys.stdout.isatty()
    return 1 if interactive or "ipykernel" in sys.modules else 0


def _remove_sweeps(model, sweeps):
    sync_host_state(model)  # JAX < 3.10 after an exception: metric variables too
    for sweep in sweeps:
        sweep.remove_sweep()  # Keras skips on_train_end when fit raises


def _restore(model, saved):
    for variable, value in saved:
        variable.assign(value)
    model.stop_training = False


def _combine(results):
    """One `RangeTestResult` from several sweeps (a `repeat` column)."""
    first = results[0]
    if len(results) == 1:
        return first
    history = pd.concat([result.history.assign(repeat=repeat)
                         for repeat, result in enumerate(results)], ignore_index=True)
    return RangeTestResult(history, first.mode, first.start_lr, first.end_lr, first.num_steps,
                           stop_reasons=[result.stop_reason for result in results])


def _state_variables(model):
    """Weights, optimizer state and metric totals (on JAX, a step that fails
    to trace can leave any of them empty)."""
    unique = {}
    for variable in [*model.variables, *model.optimizer.variables, *model.metrics_variables]:
        unique.setdefault(id(variable), variable)
    return list(unique.values())


def _steps_per_epoch(x, fit_kwargs):
    """Batches per epoch, from `steps_per_epoch` or the data's length."""
    if fit_kwargs.get("steps_per_epoch"):
        return fit_kwargs["steps_per_epoch"]
    first = flatten(x)[0] if x is not None else None
    if hasattr(first, "shape"):  # arrays: samples / batch_size
        samples = len(first)
        split = fit_kwargs.get("validation_split") or 0.0
        samples = int(samples * (1.0 - split))  # Keras keeps the floor for training
        batches = math.ceil(samples / (fit_kwargs.get("batch_size") or 32))
    else:
        try:
            batches = len(x)  # tf.data with known cardinality, PyDataset: batches
        except TypeError:
            raise ValueError(
                "lr_range_test cannot tell how many batches an epoch of `x` has: pass "
                f"`epochs` or `steps_per_epoch`. Received: x of type {type(x).__name__}, "
                "with no length"
            ) from None
    if batches < 1:
        raise ValueError(
            "lr_range_test needs training data, but `x` holds no batches (after "
            f"`validation_split`). Received: x with {batches} batches per epoch"
        )
    return batches


def _scalars(logs):
    """The scalar entries of Keras logs as floats; an array-valued metric (e.g.
    `F1Score(average=None)`, one value per class) has no place on a curve."""
    return {name: float(value) for name, value in logs.items()
            if name != "learning_rate" and np.ndim(value) == 0}
