"""Porting a script from the classic Keras 2 `CyclicLR` callback: change one import.

    python examples/migrate_from_keras_clr.py [--smoke]

The classic callback (bckenstler's `clr_callback.py`) takes `base_lr=0.001,
max_lr=0.006, step_size=2000., mode='triangular', gamma=1., scale_fn=None,
scale_mode='cycle'`. `keras_clr.CyclicLR` takes the same names, so

    -from clr_callback import CyclicLR
    +from keras_clr import CyclicLR

is the whole diff for a script that passes them by keyword. This script checks
that the learning rates agree with the classic formula, then trains with the
callback. Differences to know about when porting:

- The bounds are keyword-only: `CyclicLR(0.001, 0.006, 2000.)` is an error,
  since the first positional argument is a schedule.
- Contradictory arguments the classic callback silently ignored are errors:
  `gamma` with a mode other than `'exp_range'`, and `scale_mode='cycle'` with
  `mode='exp_range'` (which scales by iterations).
- `step_size` must be a whole number of steps (`2000.` is fine, `2000.5` is not).
- `clr.history` is a pandas DataFrame (`step`, `learning_rate`), not a dict with
  `'lr'` and `'iterations'` lists; the step comes from the optimizer, so there
  are no `clr_iterations`/`trn_iterations` counters and no `_reset()`.
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
from sklearn.datasets import load_digits

from keras_clr import CyclicLR

CLASSIC_ARGS = {"base_lr": 0.001, "max_lr": 0.006, "step_size": 2000.0}
MODES = {"triangular": 1.0, "triangular2": 1.0, "exp_range": 0.99994}  # mode: gamma
STEPS = [0, 1000, 2000, 3000, 4000, 10**6 + 123]


def classic_lr(iteration, base_lr, max_lr, step_size, mode="triangular", gamma=1.0):
    """The classic callback's LR at `iteration`, from its published formula, in float64."""
    iteration = np.float64(iteration)
    cycle = np.floor(1 + iteration / (2 * step_size))
    x = np.abs(iteration / step_size - 2 * cycle + 1)
    if mode == "triangular":
        scale = 1.0
    elif mode == "triangular2":
        scale = 1 / 2.0 ** (cycle - 1)
    else:  # exp_range
        scale = gamma**iteration
    return base_lr + (max_lr - base_lr) * np.maximum(0.0, 1 - x) * scale


def compare():
    print(f"{'mode':<12} {'step':>8} {'classic':>20} {'keras_clr':>20} {'rel. diff':>9}")
    for mode, gamma in MODES.items():
        gamma_arg = {"gamma": gamma} if mode == "exp_range" else {}
        clr = CyclicLR(**CLASSIC_ARGS, mode=mode, **gamma_arg)
        for step in STEPS:
            expected = classic_lr(step, **CLASSIC_ARGS, mode=mode, gamma=gamma)
            got = float(clr.schedule.values(step))
            diff = abs(got - expected) / expected
            print(f"{mode:<12} {step:>8} {expected:>20.15g} {got:>20.15g} {diff:>9.1e}")
            assert diff <= 1e-12, (mode, step, expected, got)
    print("all values agree to 1e-12 relative\n")


def train(smoke):
    x, y = load_digits(return_X_y=True)
    x = x.astype("float32") / 16.0
    batch_size, epochs = 64, (1 if smoke else 4)
    steps_per_epoch = -(-int(len(x) * 0.8) // batch_size)
    # The classic call, unchanged but for the import (bounds sized for this small run).
    clr = CyclicLR(base_lr=0.01, max_lr=0.1, step_size=steps_per_epoch, mode="triangular")
    model = keras.Sequential(
        [keras.Input((64,)), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(10)]
    )
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=0.01, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    history = model.fit(
        x, y, batch_size=batch_size, epochs=epochs, validation_split=0.2, verbose=0,
        callbacks=[clr],
    )
    lrs = clr.history["learning_rate"]  # classic: clr.history["lr"]
    print(f"trained {len(lrs)} steps, LR between {lrs.min():.3g} and {lrs.max():.3g}; "
          f"val_accuracy after {epochs} epochs: {history.history['val_accuracy'][-1]:.3f}")


def main(smoke=False):
    keras.utils.set_random_seed(0)
    print("-from clr_callback import CyclicLR\n+from keras_clr import CyclicLR\n")
    compare()
    train(smoke)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="one epoch, for tests")
    main(parser.parse_args().smoke)
