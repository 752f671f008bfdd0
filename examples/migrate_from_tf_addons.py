"""Porting from TensorFlow Addons' `CyclicalLearningRate` schedules to keras_clr.

    python examples/migrate_from_tf_addons.py [--smoke]

TensorFlow Addons (`tfa.optimizers.CyclicalLearningRate` and its subclasses) is
no longer maintained and does not support Keras 3. Its schedules map one to one
onto `keras_clr.CyclicalLearningRate`, which goes in the optimizer the same way.
TFA computed the LR in float32 with the step cast to float32, so its cycle
position drifts once the step passes 2**24; keras_clr does the cycle arithmetic
on integers. This script prints the mapping, compares the two at a few steps
(TFA's formula is re-implemented here in NumPy; tensorflow_addons is not
needed) and trains a small model with the ported schedule.
"""

import argparse
import math
import os
from fractions import Fraction

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
from sklearn.datasets import load_digits

from keras_clr import CyclicalLearningRate

MAPPING = [
    ("tfa.optimizers.CyclicalLearningRate(...)", "keras_clr.CyclicalLearningRate(...)"),
    ("  initial_learning_rate", "  base_lr"),
    ("  maximal_learning_rate", "  max_lr"),
    ("  step_size", "  step_size"),
    ("  scale_fn, scale_mode", "  scale_fn, scale_mode (a registered function)"),
    ("  name", "  name"),
    ("TriangularCyclicalLearningRate(...)", 'CyclicalLearningRate(..., mode="triangular")'),
    ("Triangular2CyclicalLearningRate(...)", 'CyclicalLearningRate(..., mode="triangular2")'),
    ("ExponentialCyclicalLearningRate(..., gamma=g)",
     'CyclicalLearningRate(..., mode="exp_range", gamma=g)'),
]
STEPS = [0, 1000, 2**24 + 1001, 2**31 + 1999]


def cyclical_lr(step, base_lr, max_lr, step_size, mode="triangular", gamma=1.0, dtype="float64"):
    """The CLR formula with every operation in `dtype`.

    `"float32"` is how TFA evaluated it (the step cast to float32 too),
    `"float64"` the same in double precision, and `"exact"` uses rational
    arithmetic, rounded to a float64 only at the end.
    """
    f = Fraction if dtype == "exact" else np.dtype(dtype).type
    step, base_lr, max_lr, step_size = f(step), f(base_lr), f(max_lr), f(step_size)
    one, two = f(1), f(2)
    cycle = f(math.floor(one + step / (two * step_size)))
    x = abs(step / step_size - two * cycle + one)
    if mode == "triangular":
        scale = one
    elif mode == "triangular2":
        scale = one / two ** (cycle - one)
    else:  # exp_range: scaled by the step ("iterations")
        scale = f(gamma) ** step
    lr = base_lr + (max_lr - base_lr) * max(f(0), one - x) * scale
    return float(lr) if dtype == "exact" else lr


def print_mapping():
    width = max(len(tfa) for tfa, _ in MAPPING)
    print(f"{'TensorFlow Addons':<{width}}    keras_clr")
    for tfa, ours in MAPPING:
        print(f"{tfa:<{width}} -> {ours}")
    print()


def check_modes():
    """Each TFA class and its keras_clr twin, against the formula in float64."""
    steps = np.arange(0, 12_001, 250)
    print("max relative difference to the float64 formula, steps 0..12000:")
    for mode, gamma in [("triangular", 1.0), ("triangular2", 1.0), ("exp_range", 0.9999)]:
        kwargs = {"gamma": gamma} if mode == "exp_range" else {}
        schedule = CyclicalLearningRate(
            base_lr=0.1, max_lr=0.5, step_size=2000, mode=mode, **kwargs
        )
        exact = np.array([cyclical_lr(s, 0.1, 0.5, 2000, mode, gamma) for s in steps])
        tfa = np.array([cyclical_lr(s, 0.1, 0.5, 2000, mode, gamma, "float32") for s in steps])
        ours = np.max(np.abs(schedule.values(steps) - exact) / exact)
        theirs = np.max(np.abs(tfa - exact) / exact)
        print(f"  {mode:<12} keras_clr {ours:.1e}   TFA float32 {theirs:.1e}")
        assert ours <= 1e-12, (mode, ours)
    print()


def compare_large_steps():
    schedule = CyclicalLearningRate(base_lr=0.1, max_lr=0.5, step_size=2000, mode="triangular")
    print("triangular, base_lr=0.1, max_lr=0.5, step_size=2000")
    print(f"{'step':>10} {'TFA float32':>12} {'exact float64':>14} "
          f"{'keras_clr graph':>16} {'keras_clr host':>15}")
    for step in STEPS:
        tfa = float(cyclical_lr(step, 0.1, 0.5, 2000, dtype="float32"))
        exact = cyclical_lr(step, 0.1, 0.5, 2000, dtype="exact")
        host = float(schedule.values(step))  # float64 NumPy, for plots and tables
        assert abs(host - exact) <= 1e-12 * exact, (step, host, exact)
        if keras.backend.backend() == "jax" and step >= 2**31:
            # JAX counts optimizer steps in int32: such a step cannot occur there.
            print(f"{step:>10} {tfa:>12.7g} {exact:>14.7g} {'(int32 on JAX)':>16} {host:>15.7g}")
            continue
        graph = float(schedule(step))  # what the optimizer sees, in the backend's floatx
        print(f"{step:>10} {tfa:>12.7g} {exact:>14.7g} {graph:>16.7g} {host:>15.7g}")
        assert abs(graph - exact) <= 1e-6 * exact, (step, graph, exact)
    naive64 = float(cyclical_lr(step, 0.1, 0.5, 2000, dtype="float64"))
    print(f"at step 2**31+1999 the formula is off by {tfa - exact:+.2g} in float32 "
          f"(TFA) and {naive64 - exact:+.2g} in float64; keras_clr by {host - exact:+.2g}\n")
    assert abs(tfa - exact) > 1e-3


def train(smoke):
    x, y = load_digits(return_X_y=True)
    x = x.astype("float32") / 16.0
    batch_size, epochs = 64, (1 if smoke else 8)
    steps_per_epoch = -(-int(len(x) * 0.8) // batch_size)
    # Was: tfa.optimizers.Triangular2CyclicalLearningRate(
    #          initial_learning_rate=0.01, maximal_learning_rate=0.2, step_size=...)
    schedule = CyclicalLearningRate(
        base_lr=0.01, max_lr=0.2, step_size=2 * steps_per_epoch, mode="triangular2"
    )
    model = keras.Sequential(
        [keras.Input((64,)), keras.layers.Dense(64, activation="relu"), keras.layers.Dense(10)]
    )
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=schedule, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    history = model.fit(
        x, y, batch_size=batch_size, epochs=epochs, validation_split=0.2, verbose=0
    )
    print(f"trained with the ported schedule: val_accuracy after {epochs} epochs: "
          f"{history.history['val_accuracy'][-1]:.3f}")


def main(smoke=False):
    keras.utils.set_random_seed(0)
    print_mapping()
    check_modes()
    compare_large_steps()
    train(smoke)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="one epoch, for tests")
    main(parser.parse_args().smoke)
