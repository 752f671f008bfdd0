"""Momentum that a callback can change between steps of a compiled train step.

Keras optimizers hold `momentum` (SGD, RMSprop) and `beta_1` (the Adam family)
as Python floats, which a traced train step bakes in as constants; SGD even
branches on `momentum != 0` while tracing, so a plain variable breaks it.
`LiveFloat` is a float to Python (comparisons, `get_config`, JSON) whose tensor
value and arithmetic read a variable when the step runs, so a per-step write
of that variable reaches the compiled step without touching the optimizer's
variable list or config.
"""

import keras

_BACKENDS = ("tensorflow", "torch")


class LiveFloat(float):
    """A float whose tensor value is a variable, read at run time."""

    def __new__(cls, variable):
        live = super().__new__(cls, float(variable.numpy()))
        live.variable = variable
        return live

    def __tf_tensor__(self, dtype=None, name=None):
        return self.variable.__tf_tensor__(dtype=dtype, name=name)

    def __add__(self, other):
        return self.variable + other

    def __radd__(self, other):
        return other + self.variable

    def __sub__(self, other):
        return self.variable - other

    def __rsub__(self, other):
        return other - self.variable

    def __mul__(self, other):
        return self.variable * other

    def __rmul__(self, other):
        return other * self.variable

    def __truediv__(self, other):
        return self.variable / other

    def __rtruediv__(self, other):
        return other / self.variable

    def __pow__(self, other):
        return self.variable**other

    def __rpow__(self, other):
        return other**self.variable

    def __neg__(self):
        return -self.variable


def momentum_attribute(optimizer):
    """The name of the optimizer's momentum hyper-parameter, or raises."""
    for attribute in ("momentum", "beta_1"):
        if isinstance(getattr(optimizer, attribute, None), float):
            return attribute
    raise TypeError(
        "Momentum cycling needs an optimizer with a float `momentum` (SGD, "
        "RMSprop) or `beta_1` (Adam family). Received: optimizer="
        f"{type(optimizer).__name__}"
    )


class MomentumWriter:
    """Sets an optimizer's momentum for the coming steps; `restore()` ends it.

    On TensorFlow the optimizer gets a `LiveFloat` and the train function is
    retraced once so that it reads it; each `set()` is one variable write.
    On torch (eager) each `set()` stores a plain float.
    """

    def __init__(self, model, optimizer, initial):
        backend = keras.backend.backend()
        if backend not in _BACKENDS:
            raise ValueError(
                "Momentum cycling with the `CyclicLR` callback is not supported "
                f"on the {backend!r} backend yet: its compiled step cannot read "
                "a changed momentum. Supported backends: " + ", ".join(_BACKENDS)
            )
        self._optimizer = optimizer
        self._attribute = momentum_attribute(optimizer)
        current = getattr(optimizer, self._attribute)
        if self._attribute == "momentum" and current == 0 and optimizer.built:
            raise ValueError(
                f"{type(optimizer).__name__} was built with momentum=0, so it "
                "has no momentum slots to cycle. Create it with a momentum > 0 "
                "(e.g. `momentum=max_momentum`) before the first `fit`."
            )
        self._variable = None
        if backend == "tensorflow":
            self._variable = keras.Variable(
                initial, dtype="float32", trainable=False, name=self._attribute
            )
            setattr(optimizer, self._attribute, LiveFloat(self._variable))
            model.make_train_function(force=True)
        else:
            self.set(initial)
        self._value = float(initial)

    def set(self, value):
        self._value = value
        if self._variable is not None:
            self._variable.assign(value)
        else:
            setattr(self._optimizer, self._attribute, value)

    def restore(self):
        """Leaves a plain float holding the last value on the optimizer."""
        setattr(self._optimizer, self._attribute, float(self._value))
