"""What the callbacks need from a compiled model's optimizer, checked once."""

import keras
from keras import ops


def inner_optimizer(model):
    """The optimizer that applies the updates (inside a `LossScaleOptimizer`)."""
    return getattr(model.optimizer, "inner_optimizer", model.optimizer)


def learning_rate_variable(model, caller):
    """Returns `(optimizer, lr_variable)`, unwrapping `LossScaleOptimizer`.

    Raises a `ValueError` that says what to do instead when the optimizer was
    built with a schedule or a callable, whose LR nothing else may drive.
    """
    optimizer = inner_optimizer(model)
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


def refuse_multi_step_execution(model, caller):
    """Raises when Keras runs several steps per batch call (`steps_per_execution`)."""
    steps_per_execution = getattr(model, "steps_per_execution", 1) or 1
    if steps_per_execution > 1:
        raise ValueError(
            f"{caller} records one row per step, but with "
            f"steps_per_execution={steps_per_execution} Keras reports only every "
            f"{steps_per_execution}th step to callbacks. Compile with "
            "steps_per_execution=1 for the range test."
        )


def current_step(model):
    """The optimizer's update count as a Python int (the schedule's step).

    Pass `Callback.model`: on JAX, reading it syncs the training state into
    the model's variables, without which they read as empty mid-epoch.
    """
    optimizer = inner_optimizer(model)
    return int(ops.convert_to_numpy(optimizer.iterations))


def raw_step(model):
    """The optimizer's batch count: `iterations` times the accumulation steps."""
    optimizer = inner_optimizer(model)
    return int(ops.convert_to_numpy(getattr(optimizer, "_iterations", optimizer.iterations)))
