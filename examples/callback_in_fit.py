"""Cyclical LR and inverse momentum through the `CyclicLR` callback.

    python examples/callback_in_fit.py [--smoke]
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
from sklearn.datasets import load_digits

from keras_clr import CyclicLR


def main(smoke=False):
    keras.utils.set_random_seed(0)  # the same figures on every run
    x, y = load_digits(return_X_y=True)
    x = x.astype("float32") / 16.0
    batch_size, epochs = 64, (1 if smoke else 16)
    steps_per_epoch = -(-int(len(x) * 0.8) // batch_size)
    clr = CyclicLR(
        base_lr=0.01,
        max_lr=0.2,
        step_size=4 * steps_per_epoch,
        mode="triangular2",
        base_momentum=0.85,
        max_momentum=0.95,
    )
    model = keras.Sequential(
        [keras.Input((64,)), keras.layers.Dense(64, activation="relu"), keras.layers.Dense(10)]
    )
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=0.01, momentum=0.95),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    history = model.fit(
        x, y, batch_size=batch_size, epochs=epochs, validation_split=0.2, verbose=0,
        callbacks=[clr],
    )
    print(clr.history.iloc[:: steps_per_epoch].to_string(index=False))
    print(f"val_accuracy after {epochs} epochs: {history.history['val_accuracy'][-1]:.3f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="one epoch, for tests")
    main(parser.parse_args().smoke)
