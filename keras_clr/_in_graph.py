"""A per-step learning rate (and momentum) installed into a model for one `fit`.

The callbacks do not write the learning rate from the host between batches:
a per-batch variable write measured 1.5x a constant-LR step on a tiny model
(TensorFlow), needs a full state sync per step on JAX, and cannot reach the
steps inside one `steps_per_execution` call. Instead, from train begin to
train end:

- the model's train step is shadowed on the instance: before the model's own
  step it writes `lr_fn(optimizer.iterations)` into the optimizer's LR
  variable, inside the compiled step, and it adds the LR that step used (and
  the momentum) to the step's logs, so every callback, in any order, and the
  epoch logs see the value each update used (optionally it also resets the
  metrics first: the range test's per-batch rows). The optimizer itself is
  not changed: its `learning_rate` is its own variable, holding the LR of the
  last update, whatever reads it;
- a cycled momentum (`momentum` or `beta_1`) is the step's own tensor while
  the step is traced (a `StepValue`, which compares as a float for the
  optimizer's `if self.momentum > 0:`), and a `LiveFloat` the rest of the
  time: a float to Python (`get_config`, JSON, a checkpoint saved mid-fit),
  whose tensor value serves training loops other than `fit`'s. On torch,
  which runs eagerly, the owner sets a plain float per batch;
- where the schedule cannot be traced (a `scale_fn` written with NumPy) or
  the training loop is not `fit`'s (a custom loop driving the callbacks), the
  owner writes the LR variable from the host before each batch instead.

Keras skips `on_train_end` when `fit` raises (Ctrl-C, an error in a callback,
bad data), so the installation is recorded on the model, not only on the
callback that made it, and `model.make_train_function` is shadowed by a guard:
Keras calls it at the start of every `fit` (and `train_on_batch`), so if an
installation is still there then, the fit that made it has ended, and the
guard removes it before the new fit builds its step.

The Keras hooks this relies on, each checked on Keras 3.0.5, 3.3, 3.6, 3.9 and
3.15 (TensorFlow; JAX and torch on 3.0.5, 3.6, 3.9 and 3.15):
`make_train_function(force=True)` builds its step from an instance
`model.train_step` (JAX: the stateless `(state, data) -> (logs, state)`);
`fit` and `train_on_batch` call `model.make_train_function()` first, once;
extra keys in a step's logs reach the batch callbacks (and, from 3.3, the
epoch logs); a float subclass's `__tf_tensor__`/`__jax_array__` in a traced
TF/JAX step (`LiveFloat`); `_get_metrics_result_or_logs` (3.3+).
"""

import contextlib

import keras
import numpy as np
from keras import ops

from keras_clr._optimizer import (
    flatten,
    inner_optimizer,
    sibling_callbacks,
    sync_host_state,
    update_count,
)

MOMENTUM_ATTRIBUTES = ("momentum", "beta_1")
_RECORD = "_keras_clr_installation"  # the model's attribute holding the installation
# Keras 3.3-3.15: `fit` makes its epoch logs with this method; with a step that
# logs more than the metrics, it returns the last step's logs.
EPOCH_LOGS = "_get_metrics_result_or_logs"


class _Computed:
    """Arithmetic and tensor conversion on `self._tensor()`, the value a step uses."""

    def __tf_tensor__(self, dtype=None, name=None):
        value = self._tensor()
        return value if dtype is None else ops.cast(value, dtype)

    def __jax_array__(self):
        return self._tensor()

    def __add__(self, other):
        return self._tensor() + other

    def __radd__(self, other):
        return other + self._tensor()

    def __sub__(self, other):
        return self._tensor() - other

    def __rsub__(self, other):
        return other - self._tensor()

    def __mul__(self, other):
        return self._tensor() * other

    def __rmul__(self, other):
        return other * self._tensor()

    def __truediv__(self, other):
        return self._tensor() / other

    def __rtruediv__(self, other):
        return other / self._tensor()

    def __pow__(self, other):
        return self._tensor() ** other

    def __rpow__(self, other):
        return other ** self._tensor()

    def __neg__(self):
        return -self._tensor()


class LiveFloat(_Computed, float):
    """A float whose tensor value is `value_fn()`, evaluated when the step runs.

    The momentum for training loops other than `fit`'s, which trace the
    optimizer's update themselves: it works where the optimizer computes with
    the value or converts it through TensorFlow (`__tf_tensor__`); JAX
    converts any float subclass as a plain float.
    """

    def __new__(cls, value, value_fn):
        live = super().__new__(cls, value)
        live.value_fn = value_fn
        return live

    def _tensor(self):
        return self.value_fn()

    @property
    def dtype(self):
        """Keras' type promotion reads `x.dtype`, else `type(x)`, which it does not know
        for a float subclass (`variable * momentum` in RMSprop and Nadam on TensorFlow)."""
        return keras.config.floatx()


class StepValue(_Computed):
    """A hyper-parameter while `fit`'s step is traced: compares as its float
    (`if self.momentum > 0:`), computes and converts as the step's tensor.

    Not a float, so that every conversion, JAX's included, takes the tensor.
    """

    def __init__(self, value, tensor):
        self._value, self._step_tensor = float(value), tensor

    def _tensor(self):
        return self._step_tensor

    @property
    def dtype(self):
        return self._step_tensor.dtype

    def __float__(self):
        return self._value

    def __bool__(self):
        return bool(self._value)

    def __eq__(self, other):
        return self._value == other

    def __ne__(self, other):
        return self._value != other

    def __lt__(self, other):
        return self._value < other

    def __le__(self, other):
        return self._value <= other

    def __gt__(self, other):
        return self._value > other

    def __ge__(self, other):
        return self._value >= other

    __hash__ = None

    def __repr__(self):
        return f"StepValue({self._value!r})"


def momentum_attribute(optimizer):
    """The name of the optimizer's momentum hyper-parameter, or raises."""
    for attribute in MOMENTUM_ATTRIBUTES:
        if isinstance(getattr(optimizer, attribute, None), float):
            return attribute
    raise TypeError(
        "Momentum cycling needs an optimizer with a float `momentum` (SGD, "
        "RMSprop) or `beta_1` (Adam family). Received: optimizer="
        f"{type(optimizer).__name__}"
    )


def installation_of(model):
    """The installation on `model`, or None."""
    return model.__dict__.get(_RECORD)


def remove_stale(model):
    """Removes an installation left by a `fit` that raised. Returns whether one was."""
    installation = installation_of(model)
    if installation is None:
        return False
    installation.remove()
    return True


class Installation:
    """Installs a per-step LR (and momentum) into `model` until `remove()`.

    Args:
        model: The model being fit.
        owner: The callback that installs (named in errors).
        lr_fn: `step tensor -> LR tensor`, traced into the step. None: the
            owner sets the LR from the host before each batch
            (`set_learning_rate`).
        momentum_fn: Optional `(step, learning_rate) -> momentum`, traced into
            the step (on torch the owner sets it per batch, `set_momentum`).
        host_momentum: With `momentum_fn`, `step -> momentum` as a float: the
            momentum of the first step, and the one left after the last.
        reset_metrics: Reset the metrics before each step, so that the logs
            hold each batch's own values.
    """

    def __init__(self, model, owner, lr_fn, momentum_fn=None, host_momentum=None,
                 reset_metrics=False):
        self._model, self.owner = model, owner
        self._optimizer = optimizer = inner_optimizer(model)
        self._variable = optimizer.learning_rate
        self._lr_fn, self._momentum_fn, self._host_momentum = lr_fn, momentum_fn, host_momentum
        self._attribute = None
        if momentum_fn is not None:
            self._attribute = momentum_attribute(optimizer)
            self._own_momentum = getattr(optimizer, self._attribute)
            if self._attribute == "momentum" and self._own_momentum == 0 and optimizer.built:
                raise ValueError(
                    f"{type(optimizer).__name__} was built with momentum=0, so it has "
                    "no momentum slots to cycle. Create it with a momentum > 0 (e.g. "
                    "`momentum=max_momentum`) before the first `fit`. Received: "
                    "momentum=0"
                )
        self.eager_momentum = keras.backend.backend() == "torch"
        self._first_step = int(ops.convert_to_numpy(update_count(optimizer)))
        self._own_lr = float(ops.convert_to_numpy(self._variable))  # put back if no step runs
        self._own = {name: model.__dict__.get(name)
                     for name in ("train_step", "make_train_function", EPOCH_LOGS)}
        self._make_train_function = model.make_train_function
        model.__dict__[_RECORD] = self  # first, so that `remove()` undoes whatever follows
        try:
            model.train_step = self._step(model.train_step, reset_metrics)
            model.make_train_function = self._guard
            if hasattr(model, EPOCH_LOGS):
                model.__dict__[EPOCH_LOGS] = python_epoch_logs(getattr(model, EPOCH_LOGS))
            if momentum_fn is not None:
                first = host_momentum(self._first_step)
                if self.eager_momentum:
                    self.set_momentum(first)
                else:
                    setattr(optimizer, self._attribute, LiveFloat(first, self._momentum))
            self._make_train_function(force=True)
        except BaseException:
            self.remove()
            raise

    def _momentum(self):
        return self._momentum_fn(update_count(self._optimizer), self._variable)

    def _values(self):
        """`{"learning_rate": ..., "momentum": ...}` of the coming update (tensors)."""
        if self._lr_fn is None:
            learning_rate = ops.convert_to_tensor(self._variable)
        else:
            learning_rate = ops.cast(self._lr_fn(update_count(self._optimizer)),
                                     self._variable.dtype)
        values = {"learning_rate": learning_rate}
        if self._momentum_fn is not None:
            values["momentum"] = self._momentum_fn(update_count(self._optimizer), learning_rate)
        return values

    def _step(self, train_step, reset_metrics):
        model, variable = self._model, self._variable
        if keras.backend.backend() == "jax":  # stateless: (state, data) -> (logs, state)
            optimizer_variables = model.optimizer.variables
            index = next(i for i, v in enumerate(optimizer_variables) if v is variable)

            def jax_step(state, data):
                trainable, non_trainable, optimizer_values, metrics_values = state
                with keras.StatelessScope(
                    state_mapping=list(zip(optimizer_variables, optimizer_values))
                ):
                    values = self._values()
                optimizer_values = list(optimizer_values)
                optimizer_values[index] = values["learning_rate"]
                if reset_metrics:
                    metrics_values = _reset(model, metrics_values)
                with self._momentum_in_step(values):
                    logs, state = train_step(
                        (trainable, non_trainable, optimizer_values, metrics_values), data
                    )
                return _with(logs, values), state

            return jax_step

        def step(data):
            values = self._values()
            if self._lr_fn is not None:
                variable.assign(values["learning_rate"] + _zero_after(data))
            if reset_metrics:
                model.reset_metrics()
            with self._momentum_in_step(values):
                logs = train_step(data)
            return _with(logs, values)

        return step

    @contextlib.contextmanager
    def _momentum_in_step(self, values):
        """The optimizer's momentum is this step's tensor while the step is traced."""
        if self._momentum_fn is None or self.eager_momentum:
            yield
            return
        own = getattr(self._optimizer, self._attribute)
        setattr(self._optimizer, self._attribute, StepValue(own, values["momentum"]))
        try:
            yield
        finally:
            setattr(self._optimizer, self._attribute, own)

    def _guard(self, force=False):
        """`model.make_train_function` while installed: a new fit has begun."""
        self.remove()
        return self._model.make_train_function(force=force)

    def set_learning_rate(self, value):
        """Host route: the LR of the coming step (syncs JAX's training state first)."""
        sync_host_state(self._model)
        self._variable.assign(value)

    def set_momentum(self, value):
        """Eager backends only: the momentum of the coming step."""
        setattr(self._optimizer, self._attribute, float(value))

    def check_learning_rate(self, expected, caller, peak=0.0):
        """Raises if something other than the installation wrote the LR variable
        since an update used `expected` (read between epochs); `peak` is the
        schedule's largest LR, where known."""
        if expected is None:  # no update yet
            return
        actual = float(ops.convert_to_numpy(self._variable))
        # Before Keras 3.3 `expected` is the host's float64 value of a schedule the
        # step computed in float32: a few ulps apart, ulps of the peak where an
        # anneal ends far below it (1cycle's linear end: 0.6% of its last LR). Any
        # other writer changes the LR by far more than this tolerance.
        tolerance = 1e-4 * abs(expected) + 8 * float(np.finfo("float32").eps) * float(peak)
        if abs(actual - expected) > tolerance:
            raise ValueError(
                f"{caller} sets the learning rate of every step, but another callback "
                f"set `optimizer.learning_rate` to {actual:.6g} during this `fit` (the "
                f"last update used {expected:.6g}); the next step would overwrite it. "
                "Remove the other callback that sets the learning rate."
            )

    def steps_done(self):
        """Updates applied since the installation (reads the optimizer's step)."""
        return int(ops.convert_to_numpy(update_count(self._optimizer))) - self._first_step

    def remove(self):
        """Puts the model's own step and plain values back. Idempotent.

        The LR variable and the momentum keep the values of the last update
        (or their own, when no step ran).
        """
        model = self._model
        if model.__dict__.get(_RECORD) is not self:
            return
        sync_host_state(model)  # JAX: the state of a fit that raised, back in the variables
        steps = self.steps_done()
        del model.__dict__[_RECORD]
        for name, own in self._own.items():
            if own is None:
                model.__dict__.pop(name, None)
            else:
                model.__dict__[name] = own
        if steps == 0:  # the owner may have set the first step's LR from the host
            self._variable.assign(self._own_lr)
        if self._attribute is not None:
            last = self._first_step + steps - 1
            momentum = self._host_momentum(last) if steps > 0 else self._own_momentum
            setattr(self._optimizer, self._attribute, float(momentum))
        model.train_function = None  # the next fit builds its own step


def python_epoch_logs(epoch_logs):
    """Wraps Keras' epoch-logs method to return Python floats.

    Keras 3.6 passes the last step's logs to the epoch callbacks as tensors
    (History then holds tensors and CSVLogger raises); other releases convert
    them. Arrays that are not scalars stay NumPy arrays.
    """

    def python_logs(logs):
        converted = dict(epoch_logs(logs))
        for name, value in converted.items():
            if ops.is_tensor(value):
                value = ops.convert_to_numpy(value)
                converted[name] = float(value) if np.ndim(value) == 0 else value
        return converted

    return python_logs


def _zero_after(data):
    """TensorFlow: 0.0, computed from the batch, so that adding it makes an
    assignment wait for the batch.

    A compiled TF step runs its ops in data-flow order: an assignment that does
    not depend on the batch also runs in the call that finds the data exhausted
    (data of unknown length), for a step that never happens. (`minimum`, not
    `* 0`: TF's optimizer folds a product with zero into a constant.)
    """
    if keras.backend.backend() != "tensorflow":
        return 0.0
    leaves = [leaf for leaf in flatten(data) if leaf is not None]
    try:
        first = ops.cast(ops.reshape(leaves[0], (-1,))[:1], "float32")
        return ops.minimum(ops.sum(ops.cast(ops.isfinite(first), "float32")), 0.0)
    except Exception:  # a string, ragged or sparse input: no such dependency
        return 0.0


def _with(logs, values):
    """The step's logs with the LR (and momentum) it used; a custom step's
    logs of another structure stay as they are."""
    return {**logs, **values} if isinstance(logs, dict) else logs


def _reset(model, metrics_values):
    """JAX: the metrics' values after `reset_metrics()`, without touching the model."""
    mapping = list(zip(model.metrics_variables, metrics_values))
    with keras.StatelessScope(state_mapping=mapping) as scope:
        model.reset_metrics()
    fresh = []
    for variable, value in mapping:
        reset = scope.get_current_value(variable)
        fresh.append(value if reset is None else reset)
    return fresh


# Keras' callbacks that write `optimizer.learning_rate` between steps: next to
# an installation, every write would be overwritten by the next step.
LR_WRITERS = (keras.callbacks.ReduceLROnPlateau, keras.callbacks.LearningRateScheduler)


def claim(model, callback, caller):
    """Makes way for `callback` to install into `model`, or raises.

    Refuses Keras' LR-writing callbacks and a second keras-clr installation in
    the same `fit`; removes one left by a `fit` that raised.
    """
    siblings = sibling_callbacks(callback) or []
    for other in siblings:
        if isinstance(other, LR_WRITERS):
            raise ValueError(
                f"{caller} sets the learning rate of every step, so "
                f"{type(other).__name__} in the same `fit` would have no effect. "
                f"Remove one of them (to shrink the cycle over time, use "
                "mode='triangular2' or mode='exp_range'). Received: callbacks=[..., "
                f"{type(callback).__name__}, {type(other).__name__}, ...]"
            )
    existing = installation_of(model)
    if existing is not None and existing.owner is not callback and existing.owner in siblings:
        raise ValueError(
            f"{caller} and {type(existing.owner).__name__} cannot run in the same `fit`: "
            "both set the learning rate of every step. Run them in separate fits. "
            f"Received: callbacks=[..., {type(existing.owner).__name__}, "
            f"{type(callback).__name__}, ...]"
        )
    remove_stale(model)
