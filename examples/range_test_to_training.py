"""From an LR range test to a cyclical schedule: find the bounds, then train.

    python examples/range_test_to_training.py [--smoke]
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
from sklearn.datasets import load_digits

import keras_clr


def build_model():
    model = keras.Sequential(
        [keras.Input((64,)), keras.layers.Dense(64, activation="relu"), keras.layers.Dense(10)]
    )
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=0.01, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def main(smoke=False):
    keras.utils.set_random_seed(0)
    x, y = load_digits(return_X_y=True)
    x = x.astype("float32") / 16.0
    order = np.random.default_rng(0).permutation(len(x))
    split = int(len(x) * 0.8)
    x_train, y_train = x[order[:split]], y[order[:split]]
    x_val, y_val = x[order[split:]], y[order[split:]]
    batch_size, epochs = 64, (1 if smoke else 16)
    steps_per_epoch = -(-len(x_train) // batch_size)

    # 1. The range test with its defaults: an exponential sweep from 1e-7 to 10
    #    (300 steps; shorter for --smoke) that stops once the loss diverges. The
    #    model comes back untouched.
    model = build_model()
    result = keras_clr.lr_range_test(model, x_train, y_train, batch_size=batch_size,
                                     num_steps=(80 if smoke else None), seed=0, verbose=0)
    print(result)  # how many of the planned steps ran, and why the sweep stopped
    bounds = result.suggest_bounds()
    print(f"suggested: lr={bounds.lr:.4g} (a constant LR), base_lr={bounds.base_lr:.4g}, "
          f"max_lr={bounds.max_lr:.4g} (method={bounds.method!r}, metric={bounds.metric!r})")

    # 2. Train between those bounds, half a cycle every 4 epochs, as the paper
    #    recommends. The range test restored the model, so we train it as is.
    schedule = result.schedule(
        "triangular2", step_size=keras_clr.step_size_for(steps_per_epoch, 4)
    )
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=schedule, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    history = model.fit(
        x_train, y_train, batch_size=batch_size, epochs=epochs,
        validation_data=(x_val, y_val), verbose=0,
    )
    print(f"val_accuracy after {epochs} epochs: {history.history['val_accuracy'][-1]:.3f}")
    # keras_clr.fit_one_cycle(model, x_train, y_train, epochs=epochs) does steps 1 and 2 in
    # one call, with 1cycle instead of triangular2.


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="a short sweep and one epoch")
    main(parser.parse_args().smoke)
