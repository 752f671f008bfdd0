"""A schedule computed by the optimizer inside its compiled step, for one `fit`.

The callbacks do not write the learning rate between batches. A per-batch
variable write measured 1.5x a constant-LR step on a tiny model (TF), needs a
full state sync per step on JAX, and cannot reach the steps inside one
`steps_per_execution` call. Instead, from train begin to train end, the
optimizer computes `schedule(optimizer.iterations)` itself, exactly as it
does for a schedule passed to its constructor, and its float hyper-parameters
are left in place, so its config and variable list never change:

- `optimizer._get_current_learning_rate` is shadowed on the instance;
- momentum (`momentum` or `beta_1`) becomes a `LiveFloat`: a float to Python
  (comparisons, `get_config`, JSON), whose tensor value is computed from the
  step when the compiled step runs (`__tf_tensor__`, `__jax_array__`). On
  torch, which runs eagerly, the callback sets a plain float per batch.

The train function is retraced when the schedule is installed and again
when it is removed, so later fits without the callback use the plain values.
"""

import keras

MOMENTUM_ATTRIBUTES = ("momentum", "beta_1")


class LiveFloat(float):
    """A float whose tensor value is `value_fn()`, evaluated when the step runs."""

    def __new__(cls, value, value_fn):
        live = super().__new__(cls, value)
        live.value_fn = value_fn
        return live

    def __tf_tensor__(self, dtype=None, name=None):
        value = self.value_fn()
        return value if dtype is None else keras.ops.cast(value, dtype)

    def __jax_array__(self):
        return self.value_fn()

    def __add__(self, other):
        return self.value_fn() + other

    def __radd__(self, other):
        return other + self.value_fn()

    def __sub__(self, other):
        return self.value_fn() - other

    def __rsub__(self, other):
        return other - self.value_fn()

    def __mul__(self, other):
        return self.value_fn() * other

    def __rmul__(self, other):
        return other * self.value_fn()

    def __truediv__(self, other):
        return self.value_fn() / other

    def __rtruediv__(self, other):
        return other / self.value_fn()

    def __pow__(self, other):
        return self.value_fn() ** other

    def __rpow__(self, other):
        return other ** self.value_fn()

    def __neg__(self):
        return -self.value_fn()


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


class InstalledSchedule:
    """Installs `lr_fn` (and `momentum_fn`) into `optimizer` until `remove()`.

    Args:
        model: The model being fit (its train function is retraced).
        optimizer: The optimizer that applies the updates (unwrapped from a
            `LossScaleOptimizer`).
        lr_fn: `step tensor -> LR tensor`, traced into the step.
        momentum_fn: Optional `step tensor -> momentum tensor`.
        first_momentum: The momentum at the current step (a float).
    """

    def __init__(self, model, optimizer, lr_fn, momentum_fn=None, first_momentum=None):
        self._model, self._optimizer = model, optimizer
        self._attribute = None
        if momentum_fn is not None:
            self._attribute = momentum_attribute(optimizer)
            current = getattr(optimizer, self._attribute)
            if self._attribute == "momentum" and current == 0 and optimizer.built:
                raise ValueError(
                    f"{type(optimizer).__name__} was built with momentum=0, so it has "
                    "no momentum slots to cycle. Create it with a momentum > 0 (e.g. "
                    "`momentum=max_momentum`) before the first `fit`."
                )
        optimizer._get_current_learning_rate = lambda: lr_fn(optimizer.iterations)
        self.eager_momentum = keras.backend.backend() == "torch"
        if momentum_fn is not None:
            if self.eager_momentum:
                self.set_momentum(first_momentum)
            else:
                live = LiveFloat(first_momentum, lambda: momentum_fn(optimizer.iterations))
                setattr(optimizer, self._attribute, live)
        model.make_train_function(force=True)

    def set_momentum(self, value):
        """Eager backends only: the momentum of the coming step."""
        setattr(self._optimizer, self._attribute, float(value))

    def remove(self, last_lr, last_momentum=None):
        """Puts plain values back: the LR variable and momentum hold the last ones."""
        del self._optimizer._get_current_learning_rate
        self._optimizer.learning_rate.assign(last_lr)
        if self._attribute is not None:
            setattr(self._optimizer, self._attribute, float(last_momentum))
        self._model.make_train_function(force=True)
