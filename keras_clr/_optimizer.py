"""What the callbacks need from a compiled model, its optimizer and `fit`.

Every private Keras hook keras-clr relies on sits behind one small function
here (or in `_in_graph.py`), with a comment naming what it relies on.
"""

import contextlib
import sys

import keras
from keras import ops

# Keras before 3.7 exports `keras.Variable` as a subclass of the class its
# optimizers create, so their variables are not `keras.Variable` instances;
# their common base is `KerasVariable` there (checked on 3.0.5, 3.3.3, 3.5.0,
# 3.6.0; renamed `Variable` in 3.7, where `keras.Variable` is the class itself).
try:
    from keras.src.backend.common.variables import KerasVariable as _KerasVariable
except ImportError:
    _KerasVariable = keras.Variable


def is_variable(value):
    """Whether `value` is a Keras variable (an optimizer's float LR is one)."""
    return isinstance(value, (keras.Variable, _KerasVariable))


def build_optimizer(model):
    """Builds the model's optimizer if `fit` has not, inside the model's
    `tf.distribute` strategy scope on TensorFlow (the trainer's
    `distribute_strategy`; other backends have none): under a strategy, its
    variables must be created there, one copy per replica."""
    if model.optimizer.built:
        return
    strategy = getattr(model, "distribute_strategy", None)
    scope = strategy.scope() if strategy is not None else contextlib.nullcontext()
    with scope:
        model.optimizer.build(model.trainable_variables)


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
    if not is_variable(learning_rate):
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


def nnx_enabled():
    """`keras.config.is_nnx_enabled()`; False on Keras < 3.11, which has no NNX."""
    is_nnx_enabled = getattr(keras.config, "is_nnx_enabled", None)
    return bool(is_nnx_enabled and is_nnx_enabled())


def accumulation_steps(optimizer):
    """`gradient_accumulation_steps` as an int >= 1 (the option appeared in Keras 3.0.2)."""
    return getattr(optimizer, "gradient_accumulation_steps", None) or 1


def update_count(optimizer):
    """The optimizer's count of applied updates: the step a schedule gets.

    From Keras 3.5, `iterations` is that count and the batch count is
    `_iterations`. Before (checked on 3.0.5 and 3.3.3), there is no
    `_iterations` and `iterations` counts batches under gradient accumulation.
    """
    steps = accumulation_steps(optimizer)
    if steps > 1 and not hasattr(optimizer, "_iterations"):
        return ops.floor_divide(optimizer.iterations, steps)
    return optimizer.iterations


def current_step(model):
    """The optimizer's update count as a Python int (the schedule's step).

    On JAX, pass a model inside `fit` only where its training state has been
    synced (see `sync_host_state`): mid-epoch, its variables are stale.
    """
    return int(ops.convert_to_numpy(update_count(inner_optimizer(model))))


def flatten(structure):
    """`keras.tree.flatten`; Keras 3.0 has no `keras.tree` and uses dm-tree (`tree`)."""
    if hasattr(keras, "tree"):
        return keras.tree.flatten(structure)
    import tree

    return tree.flatten(structure)


def sync_host_state(model):
    """JAX: writes the training state of a running `fit` into the model's
    variables, so the host can read them and the next step reads them back.

    Also after an exception escaped `fit`: Keras before 3.10 leaves the
    variables it took the state from empty (3.10 syncs in a `finally`).
    Relies on the JAX trainer's `jax_state_sync()` (the same on 3.0.5, 3.6,
    3.9, 3.15); a no-op on the other backends and outside `fit`.
    """
    sync = getattr(model, "jax_state_sync", None)
    if sync is not None:
        sync()


def restore_jax_sharding_spec(model):
    """Re-records the training state's sharding spec after an `evaluate` inside `fit`.

    On JAX, Keras 3.9-3.11 end `evaluate` by clearing the spec that the train
    step reads when it is traced, so a step traced later in the same `fit` (the
    smaller last batch of an epoch) fails with "'NoneType' object is not
    subscriptable" (checked on 3.9.2; 3.12 no longer enforces the spec).
    """
    record = getattr(model, "_record_training_state_sharding_spec", None)
    if record is not None and getattr(model, "_trainable_variable_shardings", ()) is None:
        record()


def sibling_callbacks(callback):
    """The callbacks of the `fit` whose hook is calling `callback`, or None.

    Keras' `CallbackList` calls each callback's hooks from its own methods
    (Keras 3.0-3.15): its frame holds the list. A custom loop calling the
    hook directly gives None.
    """
    frame = sys._getframe(1)
    for _ in range(4):
        frame = frame.f_back
        if frame is None:
            return None
        owner = frame.f_locals.get("self")
        if isinstance(owner, keras.callbacks.CallbackList):
            return list(owner.callbacks)
    return None


def function_code(function):
    """A Python function as the code Keras saves for a lambda (`__lambda__`).

    Relies on `keras.src.utils.python_utils.func_dump`, whose output Keras'
    `deserialize_keras_object` loads back only outside safe mode (Keras
    3.0-3.15).
    """
    from keras.src.utils.python_utils import func_dump

    return func_dump(function)
