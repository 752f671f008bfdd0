"""The `keras-clr` command (also `python -m keras_clr`): demo, plot-schedule, range-test.

Bad input exits with status 2 and one line on stderr, never a traceback.
"""

import argparse
import math
import os
import pathlib
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

PROG = "keras-clr"


class UsageError(Exception):
    """Bad input from the command line: reported in one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        command = self.prog.removeprefix(PROG).strip()  # "" or the subcommand
        raise UsageError(f"{command}: {message}" if command else message)


def _number(kind, test, expected):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if not (math.isfinite(value) and test(value)):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value

    return parse


positive_float = _number(float, lambda v: v > 0, "a number > 0")
non_negative_float = _number(float, lambda v: v >= 0, "a number >= 0")
positive_int = _number(int, lambda v: v > 0, "a positive integer")
fraction = _number(float, lambda v: 0 < v < 1, "a number between 0 and 1")


def build_parser():
    parser = _Parser(prog=PROG, description="Cyclical learning rates and the LR range test "
                     "for Keras 3.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                     parser_class=_Parser)

    demo = commands.add_parser(
        "demo", help="range test, then fixed LR vs CLR vs 1cycle on bundled digits data",
        description="On scikit-learn's bundled digits data: run the LR range test, print the "
        "suggested bounds, train the same model with the best fixed LR of a small grid, "
        "with CLR (triangular2) and with 1cycle for the same number of steps, print a "
        "table and write plots and CSVs.",
        epilog="example: keras-clr demo --quick --out out/demo",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    demo.add_argument("--quick", action="store_true", help="smaller budget (under 2 minutes)")
    demo.add_argument("--out", type=pathlib.Path, default=pathlib.Path("out/demo"),
                      help="output folder (default: out/demo)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")

    plot = commands.add_parser(
        "plot-schedule", help="draw a schedule into a PNG",
        description="Draw a CyclicalLearningRate (or, with --one-cycle, a OneCycle) "
        "schedule into a PNG.",
        epilog="examples:\n"
        "  keras-clr plot-schedule --mode triangular2 --base-lr 0.001 --max-lr 0.006 "
        "--step-size 2000 --steps 12000 --out clr.png\n"
        "  keras-clr plot-schedule --one-cycle --max-lr 0.1 --total-steps 5000 "
        "--base-momentum 0.85 --max-momentum 0.95 --out 1cycle.png",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    plot.add_argument("--one-cycle", action="store_true", help="draw OneCycle instead of CLR")
    plot.add_argument("--mode", default="triangular",
                      help="triangular, triangular2 or exp_range (default: triangular)")
    plot.add_argument("--base-lr", type=non_negative_float, help="CLR lower bound")
    plot.add_argument("--max-lr", type=positive_float, required=True, help="peak LR")
    plot.add_argument("--step-size", type=positive_int, help="CLR steps per half cycle")
    plot.add_argument("--step-size-down", type=positive_int, help="CLR steps down (default: "
                      "--step-size)")
    plot.add_argument("--gamma", type=positive_float, default=1.0, help="exp_range decay")
    plot.add_argument("--steps", type=positive_int,
                      help="steps to draw (default: 3 cycles, or --total-steps)")
    plot.add_argument("--total-steps", type=positive_int, help="OneCycle length")
    plot.add_argument("--pct-start", type=fraction, default=0.3, help="OneCycle warm-up share")
    plot.add_argument("--div-factor", type=positive_float, default=25.0)
    plot.add_argument("--final-div-factor", type=positive_float, default=1e4)
    plot.add_argument("--anneal-strategy", default="cos", help="cos or linear")
    plot.add_argument("--three-phase", action="store_true")
    plot.add_argument("--base-momentum", type=non_negative_float,
                      help="also draw momentum cycled from this ...")
    plot.add_argument("--max-momentum", type=non_negative_float, help="... to this")
    plot.add_argument("--out", type=pathlib.Path, required=True, help="PNG file to write")

    test = commands.add_parser(
        "range-test", help="run the LR range test on a saved model and arrays",
        description="Run the LR range test on a saved, compiled Keras model and arrays from "
        "an .npz file; print the suggested bounds; write range_test.csv and "
        "range_test.png. The model file is never modified.",
        epilog="example: keras-clr range-test --model model.keras --data train.npz "
        "--x images --y labels --val-split 0.2 --out out/range-test",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    test.add_argument("--model", type=pathlib.Path, required=True, help="a .keras model file")
    test.add_argument("--data", type=pathlib.Path, required=True, help="an .npz file")
    test.add_argument("--x", default="x", help="key of the inputs in --data (default: x)")
    test.add_argument("--y", default="y", help="key of the targets in --data (default: y)")
    test.add_argument("--start-lr", type=positive_float, default=1e-5, help="default: 1e-5")
    test.add_argument("--end-lr", type=positive_float, default=10.0, help="default: 10")
    test.add_argument("--mode", default="exponential",
                      help="exponential or linear (default: exponential)")
    test.add_argument("--epochs", type=positive_int, help="epochs to sweep over "
                      "(default: as many as 100 steps take)")
    test.add_argument("--batch-size", type=positive_int, default=32, help="default: 32")
    test.add_argument("--val-split", type=fraction,
                      help="hold out this share of the rows and read its accuracy/loss")
    test.add_argument("--out", type=pathlib.Path, required=True, help="output folder")
    return parser


def main(argv=None):
    try:
        args = build_parser().parse_args(argv)
        return COMMANDS[args.command](args)
    except UsageError as error:
        print(f"{PROG}: error: {_one_line(error)}", file=sys.stderr)
        return 2


def _one_line(error):
    return " ".join(str(error).split())


def run_demo(args):
    from keras_clr.demo import format_summary, run_demo

    summary = run_demo(args.out, quick=args.quick, seed=args.seed)
    print()
    print(format_summary(summary))
    print(f"\nwrote {args.out}/: range_test.png schedules.png accuracy.png curves.csv "
          "range_test.csv summary.csv")
    return 0


def plot_schedule(args):
    from matplotlib.figure import Figure

    from keras_clr import plotting
    from keras_clr.schedules import CyclicalLearningRate, OneCycle

    if (args.base_momentum is None) != (args.max_momentum is None):
        raise UsageError("give both --base-momentum and --max-momentum, or neither")
    try:
        if args.one_cycle:
            if args.total_steps is None:
                raise UsageError("--one-cycle needs --total-steps")
            schedule = OneCycle(args.max_lr, args.total_steps, args.pct_start, args.div_factor,
                                args.final_div_factor, args.anneal_strategy, args.three_phase)
            steps = args.steps or args.total_steps
        else:
            if args.base_lr is None or args.step_size is None:
                raise UsageError("a cyclical schedule needs --base-lr and --step-size "
                                 "(or pass --one-cycle)")
            schedule = CyclicalLearningRate(args.base_lr, args.max_lr, args.step_size,
                                            args.mode, args.gamma,
                                            step_size_down=args.step_size_down)
            steps = args.steps or 3 * (schedule.step_size + schedule.step_size_down)
        if args.max_momentum is not None and args.base_momentum > args.max_momentum:
            raise UsageError("--base-momentum must not exceed --max-momentum")
    except (ValueError, TypeError) as error:
        raise UsageError(_as_option(error)) from None
    _writable(args.out, "--out")
    figure = Figure(figsize=(8, 4), layout="constrained")
    plotting.plot_schedule(schedule, steps, ax=figure.subplots(),
                           base_momentum=args.base_momentum, max_momentum=args.max_momentum)
    figure.savefig(args.out, dpi=90)
    print(f"wrote {args.out}")
    return 0


def range_test(args):
    import numpy as np

    if args.mode not in ("exponential", "linear"):
        raise UsageError(f"--mode must be exponential or linear, got {args.mode!r}")
    if not args.end_lr > args.start_lr:
        raise UsageError(f"--end-lr ({args.end_lr:g}) must exceed --start-lr "
                         f"({args.start_lr:g})")
    for path, option in ((args.model, "--model"), (args.data, "--data")):
        if not path.is_file():
            raise UsageError(f"{option}: no such file: {path}")
    try:
        arrays = np.load(args.data, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise UsageError(f"--data: cannot read {args.data} as .npz: {error}") from None
    with arrays:
        missing = [key for key in (args.x, args.y) if key not in arrays.files]
        if missing:
            raise UsageError(f"--data: {args.data} has no key {missing[0]!r}; its keys are "
                             f"{', '.join(arrays.files)} (choose with --x and --y)")
        x, y = arrays[args.x], arrays[args.y]
    if len(x) != len(y):
        raise UsageError(f"--data: {args.x!r} has {len(x)} rows but {args.y!r} has {len(y)}")
    model = _load_model(args.model)
    fit_kwargs = {}
    if args.val_split:
        split = int(round(len(x) * (1 - args.val_split)))
        if split < 1 or split >= len(x):
            raise UsageError(f"--val-split {args.val_split:g} leaves no rows on one side")
        x, y, fit_kwargs["validation_data"] = x[:split], y[:split], (x[split:], y[split:])
    _writable(args.out / "range_test.csv", "--out")
    return _run_range_test(args, model, x, y, fit_kwargs)


def _run_range_test(args, model, x, y, fit_kwargs):
    from matplotlib.figure import Figure

    from keras_clr.range_test import lr_range_test

    steps = 100 if args.epochs is None else None
    eval_every = max(1, (steps or 100) // 50) if "validation_data" in fit_kwargs else None
    try:
        result = lr_range_test(model, x, y, start_lr=args.start_lr, end_lr=args.end_lr,
                               epochs=args.epochs, num_steps=steps, mode=args.mode,
                               batch_size=args.batch_size, eval_every=eval_every,
                               **fit_kwargs)
    except ValueError as error:
        raise UsageError(_one_line(error)) from None
    result.history.to_csv(args.out / "range_test.csv", index=False)
    figure = Figure(figsize=(7, 4), layout="constrained")
    result.plot(ax=figure.subplots())
    figure.savefig(args.out / "range_test.png", dpi=90)
    try:
        bounds = result.suggest_bounds()
    except ValueError as error:
        print(f"{PROG}: no bounds suggested: {_one_line(error)}", file=sys.stderr)
        return 1
    print(f"base_lr={bounds.base_lr:.6g} max_lr={bounds.max_lr:.6g} "
          f"({bounds.method} rule on {bounds.metric}, {len(result.history)} steps)")
    print(f"wrote {args.out}/range_test.csv and {args.out}/range_test.png")
    return 0


def _load_model(path):
    import warnings

    import keras

    try:
        with warnings.catch_warnings():
            # A model saved before its first fit has an unbuilt optimizer; Keras
            # warns that it skips the (empty) optimizer state. Nothing is lost.
            warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
            model = keras.models.load_model(path)
    except Exception as error:  # any failure to read the file is the user's input
        raise UsageError(f"--model: cannot load {path}: {_one_line(error)[:300]}") from None
    if not getattr(model, "compiled", False) or model.optimizer is None:
        raise UsageError(f"--model: {path} is not compiled; save it after model.compile(...)")
    return model


def _writable(path, option):
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(f"{option}: cannot create {path.parent}: {error.strerror}") from None


def _as_option(error):
    """Names the option rather than the Python argument: `step_size` -> --step-size."""
    text = _one_line(error)
    for name in ("base_lr", "max_lr", "step_size_down", "step_size", "mode", "gamma",
                 "total_steps", "pct_start", "div_factor", "final_div_factor",
                 "anneal_strategy"):
        text = text.replace(f"`{name}`", "--" + name.replace("_", "-"))
    return text


COMMANDS = {"demo": run_demo, "plot-schedule": plot_schedule, "range-test": range_test}


if __name__ == "__main__":
    sys.exit(main())
