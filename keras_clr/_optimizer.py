"""What the callbacks need from a compiled model's optimizer, checked once."""

import keras
from keras import ops


def settable_learning_rate(model, caller):
    """Returns `(optimizer, lr_variable)` for a callback that sets the LR per batch.

    Unwraps `LossScaleOptimizer`. Raises a `ValueError` that says what to do
    instead when the LR cannot be set exactly before every step.
    """
    steps_per_execution = getattr(model, "steps_per_execution", 1) or 1
    if steps_per_execution > 1:
        raise ValueError(
            f"{caller} sets the LR between batches, but with "
            f"steps_per_execution={steps_per_execution} Keras runs several steps "
            "per batch call, which would hold one LR for all of them. Pass the "
            "schedule to the optimizer instead "
            "(`keras.optimizers.SGD(learning_rate=schedule)`), or compile with "
            "steps_per_execution=1."
        )
    optimizer = getattr(model.optimizer, "inner_optimizer", model.optimizer)
    learning_rate = optimizer.learning_rate
    if not isinstance(learning_rate, keras.Variable):
        # Name what the optimizer was built with (the property evaluates it).
        learning_rate = getattr(optimizer, "_learning_rate", learning_rate)
        raise ValueError(
            f"{caller} cannot set the learning rate of an optimizer created with "
            "a schedule or a callable as its `learning_rate`. Create the "
            "optimizer with a float `learning_rate` (and, for a cyclical "
            "schedule, either keep the callback or pass the schedule to the "
            f"optimizer and drop the callback). Received: learning_rate={learning_rate!r}"
        )
    return optimizer, learning_rate


def current_step(model):
    """The optimizer's update count as a Python int (the schedule's step).

    Pass `Callback.model`: on JAX, reading it syncs the training state into
    the model's variables, without which they read as empty mid-epoch.
    """
    optimizer = getattr(model.optimizer, "inner_optimizer", model.optimizer)
    return int(ops.convert_to_numpy(optimizer.iterations))
