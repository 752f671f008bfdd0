"""1cycle with momentum cycled inversely, through the `CyclicLR` callback.

    python examples/one_cycle_momentum.py [--smoke]
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
from sklearn.datasets import load_digits

from keras_clr import CyclicLR, OneCycle


def main(smoke=False):
    keras.utils.set_random_seed(0)
    x, y = load_digits(return_X_y=True)
    x = x.astype("float32") / 16.0
    batch_size, epochs = 64, (1 if smoke else 12)
    steps_per_epoch = -(-int(len(x) * 0.8) // batch_size)
    # One cycle over the whole run: warm up from max_lr/25 to max_lr over the
    # first 30% of the steps while momentum falls from 0.95 to 0.85, then anneal
    # the LR to max_lr/25e4 while momentum climbs back to 0.95.
    clr = CyclicLR(
        OneCycle(max_lr=0.3, total_steps=epochs * steps_per_epoch),
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
    rows = clr.history  # one row per optimizer step
    every = max(1, len(rows) // 6)
    shown = {*range(0, len(rows), every), rows.learning_rate.idxmax(), len(rows) - 1}
    print(rows.iloc[sorted(shown)].to_string(index=False))
    print(f"val_accuracy after {epochs} epochs: {history.history['val_accuracy'][-1]:.3f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="one epoch, for tests")
    main(parser.parse_args().smoke)
