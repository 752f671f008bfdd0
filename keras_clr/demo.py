"""`keras-clr demo`: what the range test and CLR buy on data that ships with the install.

On scikit-learn's digits (8x8 images, 10 classes; bundled, never downloaded):
an LR range test with the library's defaults suggests `lr`, `base_lr` and
`max_lr`; then the same model trains for the same number of steps with the
best fixed LR of a small grid (picked on validation accuracy), with the
suggested fixed `lr`, with CLR (triangular2) and with 1cycle (`OneCycleLR`,
momentum cycled), as `fit_one_cycle` would.
"""

import dataclasses
import pathlib
import time

import keras
import numpy as np
import pandas as pd

from keras_clr.callbacks import OneCycleLR
from keras_clr.plotting import plot_schedule
from keras_clr.range_test import lr_range_test
from keras_clr.schedules import CyclicalLearningRate


@dataclasses.dataclass(frozen=True)
class Budget:
    epochs: int  # training budget of every policy
    half_cycle_epochs: int  # CLR step_size, in epochs; epochs is a whole number of cycles
    fixed_grid: tuple  # fixed LRs tried, each a full run
    range_test_steps: int = None  # None: lr_range_test's default


FULL = Budget(epochs=40, half_cycle_epochs=4, fixed_grid=(0.003, 0.01, 0.03, 0.1, 0.3))
QUICK = Budget(epochs=12, half_cycle_epochs=3, fixed_grid=(0.01, 0.03, 0.1))
BATCH_SIZE = 32


def load_digits_splits(seed):
    """Train / validation / test splits of digits (60/20/20, stratified)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype("float32")
    y = y.astype("int32")
    x_train, x_rest, y_train, y_rest = train_test_split(
        x, y, test_size=0.4, stratify=y, random_state=seed
    )
    x_val, x_test, y_val, y_test = train_test_split(
        x_rest, y_rest, test_size=0.5, stratify=y_rest, random_state=seed
    )
    return {"train": (x_train, y_train), "val": (x_val, y_val), "test": (x_test, y_test)}


def build_model(learning_rate, seed, momentum=0.9):
    """The same initial weights for every policy: a 64-64-10 MLP, SGD + momentum."""
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [keras.Input((64,)), keras.layers.Dense(64, activation="relu"), keras.layers.Dense(10)]
    )
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=learning_rate, momentum=momentum),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def train(model, data, epochs, callbacks=()):
    """Fits and returns (per-epoch curves, final test accuracy, seconds)."""
    start = time.perf_counter()
    history = model.fit(
        *data["train"], batch_size=BATCH_SIZE, epochs=epochs, validation_data=data["val"],
        callbacks=list(callbacks), verbose=0,
    )
    seconds = time.perf_counter() - start
    curves = pd.DataFrame(history.history)[["loss", "accuracy", "val_loss", "val_accuracy"]]
    steps_per_epoch = int(np.ceil(len(data["train"][0]) / BATCH_SIZE))
    curves.insert(0, "step", steps_per_epoch * np.arange(1, epochs + 1))
    test_accuracy = model.evaluate(*data["test"], verbose=0, return_dict=True)["accuracy"]
    return curves, test_accuracy, seconds


def steps_to_reach(curves, target):
    """First step (at an epoch end) whose validation accuracy reaches `target`."""
    reached = curves[curves["val_accuracy"] >= target - 1e-9]
    return int(reached["step"].iloc[0]) if len(reached) else None


def run_demo(out_dir, quick=False, seed=0, log=print):
    """Runs the demo, writes PNGs and CSVs into `out_dir`, returns the summary table."""
    budget = QUICK if quick else FULL
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = load_digits_splits(seed)
    steps_per_epoch = int(np.ceil(len(data["train"][0]) / BATCH_SIZE))
    total_steps = budget.epochs * steps_per_epoch

    log("[1/4] LR range test with the defaults: exponential sweep 1e-7 -> 10 over "
        f"{budget.range_test_steps or 'the default'} steps, stopped when the loss diverges")
    sweep = lr_range_test(build_model(0.01, seed), *data["train"], batch_size=BATCH_SIZE,
                          num_steps=budget.range_test_steps, seed=seed, verbose=0)
    bounds = sweep.suggest_bounds()
    log(f"      suggested lr={bounds.lr:.4g} base_lr={bounds.base_lr:.4g} "
        f"max_lr={bounds.max_lr:.4g} ({bounds.method} rule on {bounds.metric}, "
        f"{len(sweep.history)} steps, {sweep.stop_reason})")

    runs = {}
    log(f"[2/4] fixed LR: {len(budget.fixed_grid)}-point grid "
        f"{list(budget.fixed_grid)}, {budget.epochs} epochs each")
    grid = {}
    for lr in budget.fixed_grid:
        grid[lr] = train(build_model(lr, seed), data, budget.epochs)
        curves, _, seconds = grid[lr]
        log(f"      lr={lr:g}: final val_accuracy={curves['val_accuracy'].iloc[-1]:.4f} "
            f"({seconds:.1f} s)")
    best_lr = max(grid, key=lambda lr: grid[lr][0]["val_accuracy"].iloc[-1])
    runs["fixed"] = (f"lr={best_lr:g} (best of grid)", *grid[best_lr])
    target = runs["fixed"][1]["val_accuracy"].iloc[-1]
    log(f"      best fixed lr={best_lr:g}: final val_accuracy={target:.4f} (the target)")

    log(f"[3/4] the suggestion: fixed lr, CLR triangular2 and 1cycle, {budget.epochs} epochs "
        "each")
    runs["suggested lr"] = (f"lr={bounds.lr:.3g}",
                            *train(build_model(bounds.lr, seed), data, budget.epochs))
    step_size = budget.half_cycle_epochs * steps_per_epoch
    clr = CyclicalLearningRate(bounds.base_lr, bounds.max_lr, step_size, mode="triangular2")
    runs["triangular2"] = (
        f"{bounds.base_lr:.3g}-{bounds.max_lr:.3g}, step_size={step_size}",
        *train(build_model(clr, seed), data, budget.epochs),
    )
    one_cycle = OneCycleLR(bounds.max_lr, div_factor=bounds.max_lr / bounds.base_lr)
    runs["1cycle"] = (
        f"max_lr={bounds.max_lr:.3g}, momentum 0.95-0.85",
        *train(build_model(bounds.base_lr, seed), data, budget.epochs, [one_cycle]),
    )

    log("[4/4] writing the table, CSVs and plots")
    summary = pd.DataFrame(
        [
            {
                "policy": name,
                "lr_or_bounds": setting,
                "steps_to_target": steps_to_reach(curves, target) or "not reached",
                "final_val_accuracy": round(float(curves["val_accuracy"].iloc[-1]), 4),
                "final_test_accuracy": round(float(test_accuracy), 4),
                "wall_time_s": round(seconds, 1),
            }
            for name, (setting, curves, test_accuracy, seconds) in runs.items()
        ]
    )
    summary.attrs.update(target=target, total_steps=total_steps,
                         range_test_steps=len(sweep.history),
                         grid_steps=len(budget.fixed_grid) * total_steps)
    curves = pd.concat([c.assign(policy=n) for n, (_, c, _, _) in runs.items()])
    curves.to_csv(out_dir / "curves.csv", index=False)
    sweep.history.to_csv(out_dir / "range_test.csv", index=False)
    summary.to_csv(out_dir / "summary.csv", index=False)
    _plots(out_dir, sweep, runs, target, {"triangular2": clr, "1cycle": one_cycle.schedule},
           best_lr, total_steps)
    return summary


def _plots(out_dir, sweep, runs, target, schedules, best_lr, total_steps):
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 4), layout="constrained")
    sweep.plot(ax=figure.subplots())
    figure.savefig(out_dir / "range_test.png", dpi=90)

    figure = Figure(figsize=(7, 4), layout="constrained")
    ax = figure.subplots()
    ax.plot([0, total_steps], [best_lr, best_lr], label=f"fixed ({best_lr:g})")
    for name, schedule in schedules.items():
        plot_schedule(schedule, total_steps, ax=ax, label=name)
    ax.set_yscale("log")
    ax.set_title("learning-rate schedules", fontsize=10)
    ax.legend(fontsize=8)
    figure.savefig(out_dir / "schedules.png", dpi=90)

    figure = Figure(figsize=(7, 4), layout="constrained")
    ax = figure.subplots()
    for name, (_, curves, _, _) in runs.items():
        ax.plot(curves["step"], curves["val_accuracy"], label=name)
    ax.axhline(target, color="grey", linestyle=":", label=f"target {target:.3f}")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("validation accuracy")
    ax.set_ylim(max(0.0, target - 0.3), 1.0)
    ax.legend(fontsize=8)
    figure.savefig(out_dir / "accuracy.png", dpi=90)


def format_summary(summary):
    """The summary as a Markdown table, with the costs of tuning below it."""
    lines = [list(summary.columns), ["---"] * summary.shape[1], *summary.values.tolist()]
    table = "\n".join("| " + " | ".join(map(str, line)) + " |" for line in lines)
    attrs = summary.attrs
    return (
        f"{table}\n\nsteps to target: first epoch end whose validation accuracy reaches the "
        f"best fixed LR's final {attrs['target']:.4f}; budget {attrs['total_steps']} steps "
        f"per policy.\ntuning cost: range test {attrs['range_test_steps']} steps vs fixed-LR "
        f"grid {attrs['grid_steps']} steps."
    )
