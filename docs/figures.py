"""Remakes the figures under docs/images/ from the committed code.

    python docs/figures.py

Here: policies.png and range_test.png. The benchmark figures (tta_mnist1d_*.png,
range_test_mnist1d_sgd.png) are copied from the --out folder of
`python benchmarks/time_to_accuracy.py` (see docs/benchmarks.md).
"""

import os
import pathlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import matplotlib

matplotlib.use("Agg")  # a script, not the library: safe to pick the backend here
import matplotlib.pyplot as plt
from sklearn.datasets import load_digits

from keras_clr import CyclicalLearningRate, OneCycle, lr_range_test
from keras_clr.plotting import plot_schedule

IMAGES = pathlib.Path(__file__).parent / "images"


def policies():
    figure, axes = plt.subplots(2, 2, figsize=(12, 6.5), layout="constrained")
    schedules = [
        CyclicalLearningRate(0.001, 0.006, 200, mode="triangular"),
        CyclicalLearningRate(0.001, 0.006, 200, mode="triangular2"),
        CyclicalLearningRate(0.001, 0.006, 200, mode="exp_range", gamma=0.9985),
        OneCycle(0.006, 1200),
    ]
    for schedule, ax in zip(schedules, axes.flat):
        plot_schedule(schedule, 1200, ax=ax, base_momentum=0.85, max_momentum=0.95)
    figure.savefig(IMAGES / "policies.png", dpi=90)


def range_test():
    keras.utils.set_random_seed(0)
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype("float32")
    model = keras.Sequential(
        [keras.Input((64,)), keras.layers.Dense(64, activation="relu"), keras.layers.Dense(10)]
    )
    model.compile(
        optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    # The defaults (300 steps from 1e-7 to 10), with validation accuracy every 15 steps
    # for the right panel and for the rule on it below.
    result = lr_range_test(model, x[:1400], y[:1400], batch_size=32, seed=0, verbose=0,
                           validation_data=(x[1400:], y[1400:]), eval_every=15)
    ax = result.plot()  # the training loss and validation accuracy, bounds on both
    ax.figure.savefig(IMAGES / "range_test.png", dpi=90)
    print(result)
    print(result.suggest_bounds())
    for metric, method in (("val_accuracy", None), ("accuracy", None), ("loss", "valley"),
                           ("loss", "steepest"), ("loss", "minimum")):
        print(result.suggest_bounds(metric=metric, method=method))


if __name__ == "__main__":
    IMAGES.mkdir(exist_ok=True)
    policies()
    range_test()
