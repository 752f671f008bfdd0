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

    # 1. The range test: sweep the LR from 1e-4 to 10 over a few epochs and
    #    read held-out accuracy every few steps. The model comes back untouched.
    model = build_model()
    result = keras_clr.lr_range_test(
        model, x_train, y_train, start_lr=1e-4, end_lr=10.0, mode="exponential",
        epochs=(2 if smoke else 8), batch_size=batch_size,
        validation_data=(x_val, y_val), eval_every=(2 if smoke else 5),
    )
    print(result)  # how many of the planned steps ran, and why the sweep stopped
    bounds = result.suggest_bounds()
    print(f"suggested bounds: base_lr={bounds.base_lr:.4g} max_lr={bounds.max_lr:.4g} "
          f"(method={bounds.method!r}, metric={bounds.metric!r})")

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


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="a short sweep and one epoch")
    main(parser.parse_args().smoke)
