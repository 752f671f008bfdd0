"""The LR range test: sweep the LR over one short run, record per-batch curves.

`RangeTestCallback` drives the sweep inside any `model.fit`;
`lr_range_test()` runs it on a model and puts the model back exactly as it was;
`RangeTestResult` holds the curves and turns them into bounds, a schedule and
a plot.
"""

import math

import keras
import numpy as np
import pandas as pd

from keras_clr import _checks, bounds
from keras_clr._in_graph import InstalledSchedule
from keras_clr._optimizer import (
    current_step,
    learning_rate_variable,
    raw_step,
    refuse_multi_step_execution,
)
from keras_clr.schedules import CyclicalLearningRate

SWEEP_MODES = ("linear", "exponential")
ACCURACY_METRICS = (
    "accuracy",
    "acc",
    "sparse_categorical_accuracy",
    "categorical_accuracy",
    "binary_accuracy",
)
# Without `epochs` or `num_steps`, a sweep takes this many steps (as fastai's
# `lr_find`): enough for a curve, cheap enough to run before every training.
DEFAULT_NUM_STEPS = 100


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
    """The curves of one sweep, and what to make of them.

    Attributes:
        history: pandas DataFrame, one row per step: `step`, `learning_rate`,
            `loss`, each compiled metric for that batch alone, and `val_*`
            columns on the steps where validation data was evaluated.
        mode: `"linear"` or `"exponential"`.
        start_lr: The sweep's first LR.
        end_lr: The sweep's last LR.
        num_steps: Steps planned for the sweep.
        stop_reason: `"finished"`, `"diverged"` (smoothed loss past
            `stop_factor` x its best), `"nan"` (loss NaN or infinite) or
            `"fit ended"` (`fit` ran out of data or was stopped by another
            callback first).
    """

    def __init__(self, history, mode, start_lr, end_lr, num_steps=None,
                 stop_reason="finished"):
        self.history = history
        self.mode = mode
        self.start_lr = start_lr
        self.end_lr = end_lr
        self.num_steps = len(history) if num_steps is None else num_steps
        self.stop_reason = stop_reason

    def __repr__(self):
        return (
            f"RangeTestResult({len(self.history)} of {self.num_steps} steps, {self.mode} "
            f"sweep {self.start_lr:g} -> {self.end_lr:g}, {self.stop_reason})"
        )

    def default_metric(self):
        """Held-out accuracy, else training accuracy, else val_loss, else loss."""
        columns = [c for c in self.history.columns if self.history[c].notna().sum() >= 5]
        for prefix in ("val_", ""):
            for name in ACCURACY_METRICS:
                if prefix + name in columns:
                    return prefix + name
        return "val_loss" if "val_loss" in columns else "loss"

    def suggest_bounds(self, metric=None, method=None, window=None):
        """Suggests `base_lr` and `max_lr` from one curve of the sweep.

        Args:
            metric: Column to read. Defaults to `default_metric()`.
            method: `"accuracy"` (Smith's rule: start and end of the rise)
                for accuracy metrics, or a loss rule: `"valley"`,
                `"steepest"`, `"minimum"`. Defaults to `"accuracy"` for
                accuracy metrics and `"valley"` otherwise.
            window: Width of the centered moving average. Defaults to about
                5% of the points.

        Returns:
            `keras_clr.bounds.Bounds(base_lr, max_lr, method, metric)`.

        Raises:
            ValueError: Unknown metric or method, or a curve too short, flat
                or noisy to read (the message says which).
        """
        metric = self.default_metric() if metric is None else metric
        if metric not in self.history.columns or metric in ("step", "learning_rate"):
            names = [c for c in self.history.columns if c not in ("step", "learning_rate")]
            raise ValueError(
                f"Argument `metric` must be one of the recorded columns {names}. "
                f"Received: metric={metric!r}"
            )
        if method is None:
            method = "accuracy" if _is_accuracy(metric) else "valley"
        _checks.one_of("method", method, bounds.METHODS)
        return bounds.suggest(
            self.history["learning_rate"].to_numpy(),
            self.history[metric].to_numpy(),
            method,
            metric,
            window=window,
            log_scale=self.mode == "exponential",
        )

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
                adjusted with `bounds._replace(max_lr=...)`).
            **kwargs: Other `CyclicalLearningRate` arguments (`gamma`, ...).

        Examples:
            >>> # result.schedule("triangular2", step_size=step_size_for(steps_per_epoch))
        """
        if bounds is None:
            bounds = self.suggest_bounds(metric=metric, method=method)
        return CyclicalLearningRate(bounds.base_lr, bounds.max_lr, step_size, mode=mode, **kwargs)

    def plot(self, ax=None, metric=None, method=None):
        """Plots the sweep with the suggested bounds marked; returns the first Axes.

        Two panels side by side: `metric` (the curve the bounds are read
        from) and the training loss, with the same bounds marked (one panel
        when `metric` is the loss). The raw per-batch values are drawn
        faintly, the smoothed curve on top; the x-axis is logarithmic for
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
            The `Axes` of the `metric` panel; the loss panel, if drawn, is
            `ax.figure.axes[1]`.
        """
        from keras_clr import plotting

        metric = self.default_metric() if metric is None else metric
        ended = f"{len(self.history)} of {self.num_steps} steps, {self.stop_reason}"
        try:
            suggestion, note = self.suggest_bounds(metric=metric, method=method), ended
        except ValueError as error:
            suggestion, note = None, f"{ended}; no bounds: {error}"
        panels = [metric] if metric == "loss" else [metric, "loss"]
        axes = plotting.panel_axes(ax, len(panels))
        for panel, panel_ax, panel_note in zip(panels, axes, [note, None]):
            plotting.plot_range_test(self.history, panel, suggestion, ax=panel_ax,
                                     log_x=self.mode == "exponential", note=panel_note)
        return axes[0]


def _reset_metrics_in_each_step(model):
    """Shadows `model.train_step` so that each step starts from fresh metrics.

    The logs of every batch then hold that batch's own loss and metrics (of
    any kind, sample weights included), for nothing measurable per step.
    Resetting the metrics from the host before each batch instead costs two
    eager writes per metric on TensorFlow and a sync of the whole training
    state on JAX. Returns a function that puts the model's own step back.
    """
    own_attribute = model.__dict__.get("train_step")  # one set on the instance, if any
    train_step = model.train_step
    if keras.backend.backend() == "jax":  # a stateless step: metrics are in `state`

        def step(state, data):
            *others, metrics_values = state
            mapping = list(zip(model.metrics_variables, metrics_values))
            with keras.StatelessScope(state_mapping=mapping) as scope:
                model.reset_metrics()
            fresh = []
            for variable, value in mapping:
                reset = scope.get_current_value(variable)
                fresh.append(value if reset is None else reset)
            return train_step((*others, fresh), data)
    else:

        def step(data):
            model.reset_metrics()
            return train_step(data)

    model.train_step = step

    def restore():
        if own_attribute is None:
            del model.train_step
        else:
            model.train_step = own_attribute

    return restore


def _is_accuracy(metric):
    return metric.removeprefix("val_") in ACCURACY_METRICS


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
        end_lr: Last LR, > `start_lr`.
        num_steps: Steps in the sweep, >= 2. Defaults to the whole `fit`
            (epochs x steps per epoch).
        mode: `"linear"` or `"exponential"`. Defaults to `"linear"`.
        stop_factor: Divergence threshold, > 1. Defaults to 4.
        validation_data: Held-out data, as for `fit`, evaluated every
            `eval_every` steps into `val_*` columns.
        eval_every: Evaluate `validation_data` every this many steps (and at
            the last step).

    Examples:
        >>> sweep = RangeTestCallback(start_lr=1e-4, end_lr=1.0, mode="exponential")
        >>> # model.fit(x, y, epochs=2, callbacks=[sweep])
        >>> # sweep.result.suggest_bounds(); sweep.result.plot()
    """

    def __init__(
        self,
        start_lr,
        end_lr,
        num_steps=None,
        mode="linear",
        stop_factor=4.0,
        validation_data=None,
        eval_every=None,
    ):
        super().__init__()
        self.mode = _checks.one_of("mode", mode, SWEEP_MODES)
        if mode == "exponential":
            self.start_lr = _checks.positive_number("start_lr", start_lr)
        else:
            self.start_lr = _checks.non_negative_number("start_lr", start_lr)
        self.end_lr = _checks.positive_number("end_lr", end_lr)
        _checks.greater("end_lr", self.end_lr, "start_lr", self.start_lr)
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
        self.validation_data = validation_data
        self.eval_every = eval_every
        self._rows = []
        self._num_steps, self._stop_reason = num_steps, "fit ended"

    @property
    def history(self):
        """The recorded rows as a pandas DataFrame (see `RangeTestResult`)."""
        return pd.DataFrame(self._rows)

    @property
    def result(self):
        """The sweep so far as a `RangeTestResult`."""
        return RangeTestResult(self.history, self.mode, self.start_lr, self.end_lr,
                               self._num_steps, self._stop_reason)

    def on_train_begin(self, logs=None):
        refuse_multi_step_execution(self.model, "RangeTestCallback")
        if keras.config.is_nnx_enabled():
            # Keras' NNX step calls `type(model).train_step`, past the per-step
            # metric reset: the rows would silently hold running means.
            raise ValueError(
                "RangeTestCallback does not support Keras' NNX mode (it resets the "
                "metrics inside the train step). Run the range test with NNX disabled. "
                "Received: keras.config.is_nnx_enabled()=True"
            )
        optimizer, _ = learning_rate_variable(self.model, "RangeTestCallback")
        num_steps = self.num_steps
        if num_steps is None:
            steps, epochs = self.params.get("steps"), self.params.get("epochs")
            if not steps:
                raise ValueError(
                    "RangeTestCallback cannot tell how many steps this `fit` has "
                    "(the data has no length): pass `num_steps`."
                )
            num_steps = max(2, steps * epochs)
        self._lrs = sweep_learning_rates(self.start_lr, self.end_lr, num_steps, self.mode)
        self._num_steps, self._stop_reason = num_steps, "fit ended"
        self._first_step = current_step(self.model)
        # Each batch's step is counted here: reading it from the optimizer
        # costs an eager op per batch on TensorFlow and a full state sync on
        # JAX. A LossScaleOptimizer can skip an update (non-finite gradient),
        # which holds the sweep back, so through one the step is read.
        self._batches = raw_step(self.model)
        self._accumulation = optimizer.gradient_accumulation_steps or 1
        self._reads_step = optimizer is not self.model.optimizer
        self._restore_train_step = _reset_metrics_in_each_step(self.model)  # traced next
        self._installed = InstalledSchedule(self.model, optimizer, _sweep_fn(
            self.start_lr, self.end_lr, num_steps, self.mode, self._first_step))
        self._rows = []
        self._smoothed_loss, self._best_loss = 0.0, math.inf
        # An EMA as wide as the bounds' moving average (~5% of the sweep): a
        # fixed 0.98 would lag ~50 steps and let short sweeps run far past
        # divergence.
        self._beta = 1.0 - 2.0 / (bounds.default_window(num_steps) + 1)

    def on_train_batch_begin(self, batch, logs=None):
        if self._reads_step:
            step = current_step(self.model)
        else:
            step = self._batches // self._accumulation
        self._batches += 1
        self._index = min(step - self._first_step, len(self._lrs) - 1)

    def on_train_batch_end(self, batch, logs=None):
        logs = logs or {}
        row = {"step": self._index, "learning_rate": float(self._lrs[self._index])}
        row.update({k: float(v) for k, v in logs.items() if k != "learning_rate"})
        last = self._index + 1 >= len(self._lrs)
        if self.eval_every and (self._index % self.eval_every == 0 or last):
            row.update(self._evaluate())
        self._rows.append(row)
        reason = self._stop_reason_for(row.get("loss", math.nan))
        if reason is None and last:
            reason = "finished"
        if reason is not None:
            self._stop_reason = reason
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        self.remove_sweep()

    def remove_sweep(self):
        """Gives the optimizer back its plain LR (the sweep's last) and the model
        its own train step. Idempotent."""
        installed, self._installed = getattr(self, "_installed", None), None
        if installed is not None:
            last = self._rows[-1]["learning_rate"] if self._rows else self.start_lr
            self._restore_train_step()
            installed.remove(last)

    def _evaluate(self):
        data = self.validation_data
        if isinstance(data, tuple):
            scores = self.model.evaluate(*data, verbose=0, return_dict=True)
        else:
            scores = self.model.evaluate(data, verbose=0, return_dict=True)
        return {f"val_{k}": float(v) for k, v in scores.items()}

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
    start_lr,
    end_lr,
    epochs=None,
    num_steps=None,
    mode="linear",
    stop_factor=4.0,
    eval_every=None,
    **fit_kwargs,
):
    """Runs an LR range test on `model` and leaves the model exactly as it was.

    The sweep runs through `model.fit(x, y, **fit_kwargs)` (arrays, `tf.data`,
    `PyDataset`; `batch_size`, `callbacks`, `shuffle`, `verbose` ... pass
    through). Afterwards the model's variables, every optimizer variable
    (iterations, momenta, Adam moments, loss-scale state) and the LR are
    restored bit for bit from a copy in memory, whether the sweep finished,
    diverged, hit NaN, or was stopped by an exception or Ctrl-C.

    Args:
        model: A built, compiled Keras model whose optimizer has a float
            learning rate.
        x: Training inputs, as for `fit` (arrays, `tf.data`, `PyDataset`).
        y: Training targets, as for `fit`.
        start_lr: The sweep's first LR.
        end_lr: The sweep's last LR.
        epochs: Epochs to sweep over. Defaults to enough epochs for
            `num_steps`.
        num_steps: Steps in the sweep. Defaults to all steps of `epochs`,
            or to 100 when neither is given.
        mode: `"linear"` (Smith's test) or `"exponential"` (fastai's).
        stop_factor: Stop when the smoothed loss exceeds this many times its
            best value. Defaults to 4.
        eval_every: With `validation_data=...` among `fit_kwargs`, evaluate it
            every this many steps into `val_*` columns (instead of once per
            epoch). Smith's test reads held-out accuracy.
        **fit_kwargs: Passed to `model.fit`. `verbose` defaults to 0.

    Returns:
        A `RangeTestResult`.

    Raises:
        ValueError: Bad sweep arguments, a model that is not compiled or not
            built, or an optimizer built with a schedule.

    Examples:
        >>> # result = lr_range_test(model, x, y, start_lr=1e-4, end_lr=1.0,
        >>> #                        mode="exponential", batch_size=64)
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
    if epochs is not None:
        epochs = _checks.positive_int("epochs", epochs)
    if epochs is None:
        num_steps = DEFAULT_NUM_STEPS if num_steps is None else num_steps
        epochs = math.ceil(_checks.positive_int("num_steps", num_steps)
                           / _steps_per_epoch(x, fit_kwargs))
    validation_data = fit_kwargs.pop("validation_data", None) if eval_every else None
    sweep = RangeTestCallback(
        start_lr, end_lr, num_steps=num_steps, mode=mode, stop_factor=stop_factor,
        validation_data=validation_data, eval_every=eval_every,
    )
    refuse_multi_step_execution(model, "lr_range_test")
    learning_rate_variable(model, "lr_range_test")
    fit_kwargs.setdefault("verbose", 0)
    fit_kwargs["callbacks"] = [sweep, *(fit_kwargs.get("callbacks") or [])]
    if not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)  # so all its state can be saved
    saved = [(v, np.array(v.numpy(), copy=True)) for v in _state_variables(model)]
    try:
        model.fit(x, y, epochs=epochs, **fit_kwargs)
    finally:
        sweep.remove_sweep()  # Keras skips on_train_end when fit raises
        for variable, value in saved:
            variable.assign(value)
        model.stop_training = False
    return sweep.result


def _state_variables(model):
    unique = {}
    for variable in [*model.variables, *model.optimizer.variables]:
        unique.setdefault(id(variable), variable)
    return list(unique.values())


def _steps_per_epoch(x, fit_kwargs):
    """Batches per epoch, from `steps_per_epoch` or the data's length."""
    if fit_kwargs.get("steps_per_epoch"):
        return fit_kwargs["steps_per_epoch"]
    first = keras.tree.flatten(x)[0] if x is not None else None
    if hasattr(first, "shape"):  # arrays: samples / batch_size
        samples = len(first)
        split = fit_kwargs.get("validation_split") or 0.0
        samples = math.ceil(samples * (1.0 - split))
        return math.ceil(samples / (fit_kwargs.get("batch_size") or 32))
    try:
        return len(x)  # tf.data with known cardinality, PyDataset: batches
    except TypeError:
        raise ValueError(
            "lr_range_test cannot tell how many batches an epoch of `x` has: pass "
            "`epochs` or `steps_per_epoch`."
        ) from None
