"""Time to accuracy: fixed LR, step decay and keras-clr policies, same budget.

    python benchmarks/time_to_accuracy.py [--tasks mnist1d,digits[,synthetic]]
        [--optimizers adam,sgd]
        [--seeds 5] [--epochs N] [--out DIR] [--base-divisors 4] [--pct-starts 0.1,0.45]
        [--final-div-factors 1] [--momentum-spreads 0] [--anneal-strategies linear]

The paper's Table 1 in miniature. For each task (MNIST-1D with the MNIST-1D
paper's small CNN; digits with a 64-unit MLP; by request, `synthetic`: 10
classes from scikit-learn's `make_classification` with a 128-128 MLP),
optimizer (Adam; SGD with momentum 0.9) and seed:
- fixed LR: each point of a 5-point log grid is a full run; the best final
  validation accuracy picks the LR (the grid's total steps are its tuning cost);
- step decay: the chosen fixed LR, divided by 10 at 50% and 75% of the budget;
- keras-clr: one rule for every task, optimizer and seed. `lr_range_test`
  with its defaults (an exponential sweep from 1e-7 to 10 over 300 steps,
  stopped when the loss diverges; seeded) and its default rule (`max_lr` at
  the lowest training loss, `base_lr = max_lr / 25`) pick the bounds; the
  sweep's steps count as tuning cost.
  Then triangular, triangular2, exp_range and 1cycle train for the same
  budget, with half a cycle of about 4 epochs (Smith recommends 2-10) rounded
  so that the budget ends at a cycle end, and with momentum (SGD) or beta_1
  (Adam) cycled inversely to the LR, 0.95 at the LR's trough and 0.85 at its
  peak (Smith 2018, "A disciplined approach...": the cyclical policies as
  well as 1cycle).
  With `--base-divisors d,...`, every policy also trains from `base_lr =
  max_lr / d` (rows "<policy> (max_lr/d)"; same peak and sweep), to measure
  where the cycle's lower bound belongs (Smith 2017 puts it at 1/3 to 1/4 of
  `max_lr` for the triangular policies; the library's is 1/25).
  With `--pct-starts p,...`, 1cycle also trains warming up for a share p of
  the budget (rows "1cycle (pct_start p)"; `OneCycle`'s default, PyTorch's,
  is 0.3), to measure whether another shape of the cycle does better.
  `--final-div-factors f,...` (rows "1cycle (final_div_factor f)": it ends at
  its start / f, not / 1e4) and `--momentum-spreads s,...` (rows "1cycle
  (momentum 0.9 +- s)", 0 a constant 0.9, not 0.85-0.95) measure two more, and
  `--anneal-strategies linear` (rows "1cycle (anneal linear)") a straight
  warm-up and anneal instead of `OneCycle`'s default cosine.
Test accuracy is measured at every epoch end (as Keras' validation pass on
the test split; the validation split is only read to pick the fixed LR).
"steps to target" is the first epoch end whose test accuracy reaches the best
fixed LR's final test accuracy (same seed), plus the range test's steps for
keras-clr policies. The table's mean is over the seeds that reached it (the
"reached" column counts them); the check of the "half the fixed LR's steps"
target counts a policy only if it reached the target on every seed.
"""

import argparse
import dataclasses
import inspect
import math
import os
import pathlib
import platform
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import pandas as pd

from keras_clr import CyclicalLearningRate, CyclicLR, OneCycle, lr_range_test
from keras_clr.bounds import BASE_BELOW_PEAK
from keras_clr.demo import load_digits_splits
from keras_clr.schedules import ANNEAL_STRATEGIES


@dataclasses.dataclass(frozen=True)
class Task:
    name: str
    epochs: int
    batch_size: int
    grids: dict  # optimizer -> fixed-LR grid


GRIDS = {"adam": (1e-4, 3e-4, 1e-3, 3e-3, 1e-2), "sgd": (1e-3, 3e-3, 1e-2, 3e-2, 1e-1)}
TASKS = {
    "mnist1d": Task("mnist1d", 48, 100, GRIDS),
    "digits": Task("digits", 40, 32, GRIDS),
    # SGD's grid a half decade up: on seed 0, 0.1 is best of the usual grid, 0.3 diverges.
    "synthetic": Task("synthetic", 40, 100, {**GRIDS, "sgd": (3e-3, 1e-2, 3e-2, 1e-1, 3e-1)}),
}
DEFAULT_TASKS = "mnist1d,digits"  # the published tables; synthetic is asked for by name
CLR_POLICIES = ("triangular", "triangular2", "exp_range", "1cycle")
# The keras-clr rule, the same for every task, optimizer and seed (see the module docstring).
HALF_CYCLE_EPOCHS = 4  # step_size: Smith (2017) recommends 2-10 epochs
MOMENTA = (0.85, 0.95)  # momentum / beta_1 at the LR's peak and trough (Smith, 2018)
_ONE_CYCLE_DEFAULTS = inspect.signature(OneCycle).parameters
DEFAULT_PCT_START = _ONE_CYCLE_DEFAULTS["pct_start"].default  # 0.3
DEFAULT_FINAL_DIV_FACTOR = _ONE_CYCLE_DEFAULTS["final_div_factor"].default  # 1e4
DEFAULT_ANNEAL = _ONE_CYCLE_DEFAULTS["anneal_strategy"].default  # "cos"
FIXED_MOMENTUM = 0.9  # of the fixed-LR runs and the sweeps
DEFAULT_MOMENTUM_SPREAD = 0.05  # MOMENTA is FIXED_MOMENTUM +- 0.05


def load(task, seed):
    """(train, val, test) arrays; mnist1d is generated locally, never downloaded."""
    if task == "digits":
        data = load_digits_splits(seed)
        return data["train"], data["val"], data["test"]
    if task == "synthetic":
        return synthetic_splits(seed)
    from mnist1d.data import get_dataset_args, make_dataset

    data = make_dataset(get_dataset_args())  # 4000 train / 1000 test, fixed generator seed
    x, y = data["x"][..., None].astype("float32"), data["y"].astype("int32")
    order = np.random.default_rng(seed).permutation(len(x))
    val, train = order[:500], order[500:]
    test = (data["x_test"][..., None].astype("float32"), data["y_test"].astype("int32"))
    return (x[train], y[train]), (x[val], y[val]), test


def synthetic_splits(seed):
    """4000 / 500 / 1000 examples of one fixed 10-class problem (40 features, 20
    informative), split by `seed`, standardized with the training split's statistics."""
    from sklearn.datasets import make_classification

    x, y = make_classification(n_samples=5500, n_features=40, n_informative=20,
                               n_redundant=10, n_classes=10, n_clusters_per_class=2,
                               class_sep=1.5, flip_y=0.01, random_state=0)
    order = np.random.default_rng(seed).permutation(len(x))
    test, val, train = order[:1000], order[1000:1500], order[1500:]
    mean, std = x[train].mean(axis=0), x[train].std(axis=0)
    x, y = ((x - mean) / std).astype("float32"), y.astype("int32")
    return (x[train], y[train]), (x[val], y[val]), (x[test], y[test])


def build(task, optimizer_name, learning_rate, seed, momentum=FIXED_MOMENTUM):
    keras.utils.set_random_seed(seed)
    if task == "digits":
        layers = [keras.Input((64,)), keras.layers.Dense(64, activation="relu")]
    elif task == "synthetic":
        layers = [keras.Input((40,)), keras.layers.Dense(128, activation="relu"),
                  keras.layers.Dense(128, activation="relu")]
    else:  # the MNIST-1D paper's small CNN
        layers = [keras.Input((40, 1))] + [
            keras.layers.Conv1D(25, 5, strides=2, padding="same", activation="relu")
            for _ in range(3)
        ] + [keras.layers.Flatten()]
    model = keras.Sequential([*layers, keras.layers.Dense(10)])
    if optimizer_name == "adam":
        optimizer = keras.optimizers.Adam(learning_rate, beta_1=momentum)
    else:
        optimizer = keras.optimizers.SGD(learning_rate, momentum=momentum)
    model.compile(optimizer, keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return model


def train(model, data, task, callbacks=()):
    """Test accuracy at every epoch end (Keras' own validation pass, cheap), the
    final validation accuracy (for picking the fixed LR) and wall seconds."""
    train_data, val, test = data
    start = time.perf_counter()
    history = model.fit(*train_data, batch_size=task.batch_size, epochs=task.epochs,
                        validation_data=test, verbose=0, callbacks=list(callbacks))
    seconds = time.perf_counter() - start
    return {"val": model.evaluate(*val, verbose=0, return_dict=True)["accuracy"],
            "test": np.array(history.history["val_accuracy"]), "seconds": seconds}


def run(task, optimizer_name, seed, log, divisors=(), shapes=()):
    """Every run of one task, optimizer and seed; `shapes` holds 1cycle variants, each a
    (row label, {`OneCycle` argument or "momentum_spread": value})."""
    data = load(task.name, seed)
    steps_per_epoch = -(-len(data[0][0]) // task.batch_size)
    budget = task.epochs * steps_per_epoch
    runs = {}
    grid = {lr: train(build(task.name, optimizer_name, lr, seed), data, task)
            for lr in task.grids[optimizer_name]}
    best = max(grid, key=lambda lr: grid[lr]["val"])
    runs["fixed"] = dict(grid[best], setting=f"{best:g}", tuning=len(grid) * budget)
    decay = keras.optimizers.schedules.PiecewiseConstantDecay(
        [budget // 2, 3 * budget // 4], [best, best / 10, best / 100])
    runs["step decay"] = dict(train(build(task.name, optimizer_name, decay, seed), data, task),
                              setting=f"{best:g} /10 /100", tuning=len(grid) * budget)
    sweep = lr_range_test(build(task.name, optimizer_name, 1e-3, seed), *data[0],
                          batch_size=task.batch_size, seed=seed, verbose=0)
    cost = len(sweep.history)
    try:
        bounds = sweep.suggest_bounds()
    except ValueError as error:  # reported, not hidden: this seed has no keras-clr rows
        log(f"  {task.name}/{optimizer_name}/seed {seed}: range test gave no bounds: {error}")
        bounds, variants = None, ()
    else:
        # (policy, divisor of the base or None, 1cycle's shape): the defaults first
        variants = [(policy, divisor, ("", {})) for divisor in (None, *divisors)
                    for policy in CLR_POLICIES]
        variants += [("1cycle", None, shape) for shape in shapes]
    cycles = max(1, round(task.epochs / (2 * HALF_CYCLE_EPOCHS)))
    step_size = max(1, budget // (2 * cycles))  # the budget ends at a cycle end
    for policy, divisor, (label, shape) in variants:
        base_lr = bounds.base_lr if divisor is None else bounds.max_lr / divisor
        name = policy + ("" if divisor is None else f" (max_lr/{divisor:g})") + label
        shape = dict(shape)
        spread = shape.pop("momentum_spread", DEFAULT_MOMENTUM_SPREAD)
        if policy == "1cycle":
            schedule = OneCycle(bounds.max_lr, budget, div_factor=bounds.max_lr / base_lr,
                                **shape)
        else:
            gamma = 0.1 ** (1 / budget) if policy == "exp_range" else 1.0  # amplitude /10
            schedule = CyclicalLearningRate(base_lr, bounds.max_lr, step_size, policy, gamma)
        low, high = MOMENTA
        if spread != DEFAULT_MOMENTUM_SPREAD:
            low, high = FIXED_MOMENTUM - spread, FIXED_MOMENTUM + spread
        callback = (CyclicLR(schedule, base_momentum=low, max_momentum=high) if low < high
                    else CyclicLR(schedule))  # a constant momentum
        model = build(task.name, optimizer_name, float(schedule.values(0)), seed, high)
        runs[name] = dict(train(model, data, task, [callback]), tuning=cost, clr=True,
                          setting=f"{base_lr:.3g}-{bounds.max_lr:.3g}")
    target = runs["fixed"]["test"][-1]
    rows = []
    for policy, result in runs.items():
        reached = np.nonzero(result["test"] >= target - 1e-9)[0]
        clr = result.get("clr", False)
        rows.append({"task": task.name, "optimizer": optimizer_name, "seed": seed,
                     "policy": policy, "keras_clr": clr, "setting": result["setting"],
                     "steps_to_target": (reached[0] + 1) * steps_per_epoch + clr * cost
                     if len(reached) else np.nan,
                     "final_test": result["test"][-1], "best_test": result["test"].max(),
                     "seconds": result["seconds"], "tuning_steps": result["tuning"],
                     "budget": budget, "curve": result["test"].tolist(),
                     "steps_per_epoch": steps_per_epoch})
    if bounds is not None:
        log(f"  {task.name}/{optimizer_name}/seed {seed}: target {target:.4f}, bounds "
            f"{bounds.base_lr:.3g}-{bounds.max_lr:.3g} ({bounds.method} on {bounds.metric})")
    return rows, sweep


def summarize(frame):
    """Mean ± std over seeds, per task, optimizer and policy, as Markdown."""
    out = []
    for (task, optimizer), group in frame.groupby(["task", "optimizer"], sort=False):
        budget = int(group["budget"].iloc[0])
        lines = [f"**{task}, {optimizer}** ({group['seed'].nunique()} seeds, budget {budget} "
                 "steps; mean ± std over the seeds each policy ran)", "",
                 "| policy | LR / bounds (seed 0) | steps to target | reached | final test acc "
                 "| best test acc | tuning steps | wall s |", "|---|---|---|---|---|---|---|---|"]
        for policy, rows in group.groupby("policy", sort=False):
            steps = rows["steps_to_target"]
            reached = f"{steps.notna().sum()}/{len(rows)}"
            steps_text = (f"{steps.mean():.0f} ± {steps.std(ddof=0):.0f}" if steps.notna().any()
                          else "not reached")
            lines.append(
                f"| {policy} | {rows['setting'].iloc[0]} | {steps_text} | {reached} "
                f"| {rows['final_test'].mean():.4f} ± {rows['final_test'].std(ddof=0):.4f} "
                f"| {rows['best_test'].mean():.4f} ± {rows['best_test'].std(ddof=0):.4f} "
                f"| {rows['tuning_steps'].mean():.0f} | {rows['seconds'].mean():.1f} |")
        out.append("\n".join(lines))
    return "\n\n".join(out)


def check_targets(frame):
    """The issue's targets, one line each, per task and optimizer.

    "Half": a keras-clr policy's mean steps to target (range test included) are
    at most half the fixed LR's mean steps to its own final accuracy, and the
    policy reached the target on every seed (a seed it missed, or where the
    range test gave no bounds, fails it: a mean over the seeds that got there
    would flatter a policy that often does not).
    """
    lines = []
    for (task, optimizer), group in frame.groupby(["task", "optimizer"], sort=False):
        seeds = group["seed"].nunique()
        by_policy = group.groupby("policy", sort=False)
        mean = by_policy[["steps_to_target", "final_test", "tuning_steps"]].mean()
        reached = by_policy["steps_to_target"].count()
        fixed_steps = mean.loc["fixed", "steps_to_target"]  # to reach its own final accuracy
        clr = mean.loc[group.loc[group["keras_clr"], "policy"].unique()]
        if clr.empty:
            lines.append(f"- {task}/{optimizer}: no range test gave bounds")
            continue
        half = clr[(clr["steps_to_target"] <= fixed_steps / 2)
                   & (reached[clr.index] == seeds)]
        accurate = clr[(clr["final_test"] >= mean.loc["fixed", "final_test"])
                       & (clr["final_test"] >= mean.loc["step decay", "final_test"])]
        ratio = clr["tuning_steps"].iloc[0] / mean.loc["fixed", "tuning_steps"]
        lines.append(
            f"- {task}/{optimizer}: reach the fixed LR's final accuracy in <= 1/2 its "
            f"{fixed_steps:.0f} steps (<= {fixed_steps / 2:.0f}, on all {seeds} seeds): "
            f"{', '.join(half.index) or 'none'}; final accuracy >= fixed and step decay: "
            f"{', '.join(accurate.index) or 'none'}; tuning cost ratio {ratio:.3f} "
            f"({'meets' if ratio <= 0.2 else 'misses'} <= 1/5)")
    return "\n".join(lines)


def plot(frame, sweeps, out):
    from matplotlib.figure import Figure

    for (task, optimizer), group in frame.groupby(["task", "optimizer"], sort=False):
        figure = Figure(figsize=(7, 4), layout="constrained")
        ax = figure.subplots()
        colours, variants = {}, {}  # a "<policy> (...)" row: its policy's colour, broken
        for policy, rows in group.groupby("policy", sort=False):
            curves = np.array(rows["curve"].tolist())
            steps = rows["steps_per_epoch"].iloc[0] * np.arange(1, curves.shape[1] + 1)
            family = policy.split(" (")[0]
            style = "-"
            if family != policy:
                variants[family] = variants.get(family, -1) + 1
                style = ("--", ":", "-.")[variants[family] % 3]
            ax.plot(steps, curves.mean(axis=0), style,
                    color=colours.setdefault(family, f"C{len(colours)}"), label=policy)
        ax.set_ylim(max(0.0, group["final_test"].min() - 0.15), 1.0)
        ax.set_xlabel("optimizer step")
        ax.set_ylabel("test accuracy (mean over seeds)")
        ax.set_title(f"{task}, {optimizer}", fontsize=10)
        ax.legend(fontsize=8)
        figure.savefig(out / f"tta_{task}_{optimizer}.png", dpi=80)
        figure = Figure(figsize=(7, 4), layout="constrained")
        sweeps[(task, optimizer)].plot(ax=figure.subplots())
        figure.savefig(out / f"range_test_{task}_{optimizer}.png", dpi=80)


def numbers(parser, text, option):
    """A comma-separated list of numbers; else exit naming the option."""
    try:
        return [float(value) for value in text.split(",") if value]
    except ValueError:
        parser.error(f"{option}: expected numbers separated by commas, got {text!r}")


def names(parser, text, option, choices, required=True):
    """A comma-separated list of names from `choices`, each once (none only where not
    `required`); else exit naming the option."""
    chosen = [name.strip() for name in text.split(",") if name.strip()]
    if (any(name not in choices for name in chosen) or len(set(chosen)) < len(chosen)
            or (required and not chosen)):
        parser.error(f"{option}: expected names from {', '.join(choices)}, each once, "
                     f"separated by commas; got {text!r}")
    return chosen


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default=DEFAULT_TASKS, help=f"any of {', '.join(TASKS)}")
    parser.add_argument("--optimizers", default="adam,sgd", help=f"any of {', '.join(GRIDS)}")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epochs", type=int, help="override every task's budget (smoke runs)")
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("out/bench"))
    parser.add_argument("--base-divisors", default="",
                        help="also train every policy from max_lr / d, for each d: 4,10")
    parser.add_argument("--pct-starts", default="",
                        help="also train 1cycle warming up for these shares of the budget")
    parser.add_argument("--final-div-factors", default="",
                        help="also train 1cycle ending at its start over these: 1,100")
    parser.add_argument("--momentum-spreads", default="",
                        help="also train 1cycle with momentum 0.9 +- these (0: constant)")
    parser.add_argument("--anneal-strategies", default="",
                        help="also train 1cycle annealing this way: linear")
    args = parser.parse_args(argv)
    tasks = names(parser, args.tasks, "--tasks", TASKS)
    optimizers = names(parser, args.optimizers, "--optimizers", GRIDS)
    divisors = numbers(parser, args.base_divisors, "--base-divisors")
    if any(d <= 1 or d == BASE_BELOW_PEAK for d in divisors):
        parser.error(f"--base-divisors: each must be > 1 (a base below the peak) and not "
                     f"{BASE_BELOW_PEAK:g} (the default, always run); got {args.base_divisors}")
    pct_starts = numbers(parser, args.pct_starts, "--pct-starts")
    if any(not 0 < p < 1 or p == DEFAULT_PCT_START for p in pct_starts):
        parser.error(f"--pct-starts: each must be in (0, 1) and not {DEFAULT_PCT_START:g} "
                     f"(the default, always run); got {args.pct_starts}")
    final_divs = numbers(parser, args.final_div_factors, "--final-div-factors")
    if any(not 0 < f < math.inf or f == DEFAULT_FINAL_DIV_FACTOR for f in final_divs):
        parser.error(f"--final-div-factors: each must be finite, > 0 and not "
                     f"{DEFAULT_FINAL_DIV_FACTOR:g} (the default, always run); got "
                     f"{args.final_div_factors}")
    spreads = numbers(parser, args.momentum_spreads, "--momentum-spreads")
    if any(not 0 <= m < 1 - FIXED_MOMENTUM or m == DEFAULT_MOMENTUM_SPREAD for m in spreads):
        parser.error(f"--momentum-spreads: each must be in [0, {1 - FIXED_MOMENTUM:g}) and not "
                     f"{DEFAULT_MOMENTUM_SPREAD:g} (the default, always run); got "
                     f"{args.momentum_spreads}")
    anneals = names(parser, args.anneal_strategies, "--anneal-strategies", ANNEAL_STRATEGIES,
                    required=False)
    if DEFAULT_ANNEAL in anneals:
        parser.error(f"--anneal-strategies: not {DEFAULT_ANNEAL} (the default, always run); "
                     f"got {args.anneal_strategies}")
    shapes = [*[(f" (pct_start {p:g})", {"pct_start": p}) for p in pct_starts],
              *[(f" (final_div_factor {f:g})", {"final_div_factor": f}) for f in final_divs],
              *[(f" (momentum 0.9 +- {m:g})", {"momentum_spread": m}) for m in spreads],
              *[(f" (anneal {a})", {"anneal_strategy": a}) for a in anneals]]
    args.out.mkdir(parents=True, exist_ok=True)
    rows, sweeps, started = [], {}, time.perf_counter()
    for name in tasks:
        task = TASKS[name]
        if args.epochs:
            task = dataclasses.replace(task, epochs=args.epochs)
        for optimizer_name in optimizers:
            for seed in range(args.seeds):
                new_rows, sweep = run(task, optimizer_name, seed, log=print,
                                      divisors=divisors, shapes=shapes)
                rows += new_rows
                sweeps.setdefault((name, optimizer_name), sweep)
    frame = pd.DataFrame(rows)
    frame.drop(columns="curve").to_csv(args.out / "time_to_accuracy.csv", index=False)
    plot(frame, sweeps, args.out)
    print()
    print(summarize(frame))
    print("\nTargets:")
    print(check_targets(frame))
    print(f"\n{os.cpu_count()} CPUs, Python {platform.python_version()}, keras "
          f"{keras.__version__} ({keras.backend.backend()}), total "
          f"{time.perf_counter() - started:.0f} s; plots in {args.out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
