"""The `keras-clr` command (also `python -m keras_clr`): demo, plot-schedule, range-test.

Bad input exits with status 2 and one line on stderr, never a traceback, and
is found before any long work starts. `--help` imports neither Keras nor
TensorFlow. While a command runs, what native code writes to stderr
(TensorFlow's log lines at import and at its first op) is held back and shown
only if the command fails unexpectedly; `KERAS_CLR_DEBUG=1` shows it as it
comes, and the traceback of an unexpected error.
"""

import argparse
import contextlib
import functools
import math
import os
import pathlib
import re
import sys
import tempfile
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

PROG = "keras-clr"
DEBUG_VARIABLE = "KERAS_CLR_DEBUG"
MAX_STEPS = 10**12  # the largest step count an option takes
MAX_SWEEP_STEPS = 100_000  # the longest range test
DEFAULT_SWEEP_STEPS = 300  # without --epochs (lr_range_test's default)
EVALUATIONS_PER_SWEEP = 50  # with --val-split
DEMO_OUTPUTS = ("range_test.png", "schedules.png", "accuracy.png", "curves.csv",
                "range_test.csv", "summary.csv")
RANGE_TEST_OUTPUTS = ("range_test.csv", "range_test.png")
CLR_OPTIONS = ("mode", "base_lr", "step_size", "step_size_down", "gamma")
ONE_CYCLE_OPTIONS = ("total_steps", "pct_start", "div_factor", "final_div_factor",
                     "anneal_strategy", "three_phase")


class UsageError(Exception):
    """Bad input from the command line: reported in one line, exit status 2."""


class _HelpFormatter(argparse.HelpFormatter):
    """Wraps descriptions; keeps the lines of an "example(s):" epilog as they are."""

    def _fill_text(self, text, width, indent):
        if text.startswith("example"):
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        command = self.prog.removeprefix(PROG).strip()  # "" or the subcommand
        raise UsageError(f"{command}: {message}" if command else message)


def _integer(text):
    """An int, also written as an integral float: "100", "1e6"."""
    try:
        return int(text)
    except ValueError:
        value = float(text)
        if not value.is_integer():
            raise
        return int(value)


def _number(kind, test, expected):
    def parse(text):
        try:
            value = kind(text)
            valid = math.isfinite(value) and test(value)
        except (ValueError, OverflowError):
            valid = False
        if not valid:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value

    return parse


positive_float = _number(float, lambda v: v > 0, "a number > 0")
non_negative_float = _number(float, lambda v: v >= 0, "a number >= 0")
positive_int = _number(_integer, lambda v: v > 0, "a positive integer")
step_count = _number(_integer, lambda v: 0 < v <= MAX_STEPS, "a positive integer up to 1e12")
fraction = _number(float, lambda v: 0 < v < 1, "a number between 0 and 1")
momentum_value = _number(float, lambda v: 0 <= v < 1, "a momentum in [0, 1)")
random_seed = _number(_integer, lambda v: 0 <= v < 2**32, "an integer from 0 to 2**32 - 1")


def path_option(text):
    """A path; an empty one (an unset shell variable) would mean the current folder."""
    if not text.strip():
        raise argparse.ArgumentTypeError(f"expected a path, got {text!r}")
    return pathlib.Path(text)


def build_parser():
    parser = _Parser(prog=PROG, description="Cyclical learning rates and the LR range test "
                     "for Keras 3.", epilog=f"Set {DEBUG_VARIABLE}=1 to see TensorFlow's own "
                     "log lines and the traceback of an unexpected error.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                     parser_class=_Parser)
    _add_demo(commands)
    _add_plot_schedule(commands)
    _add_range_test(commands)
    return parser


def _add_demo(commands):
    demo = commands.add_parser(
        "demo", formatter_class=_HelpFormatter,
        help="range test, then fixed LR vs CLR vs 1cycle on bundled digits data",
        description="On scikit-learn's bundled digits data: run the LR range test, print the "
        "suggested bounds, train the same model with the best fixed LR of a small grid, "
        "with the suggested fixed LR, with CLR (triangular2) and with 1cycle for the same "
        "number of steps, print a table and write plots and CSVs.",
        epilog="example: keras-clr demo --quick --out out/demo",
    )
    demo.add_argument("--quick", action="store_true",
                      help="smaller budget: 12 epochs per policy, a 3-point grid")
    demo.add_argument("--out", type=path_option, default=pathlib.Path("out/demo"),
                      help="output folder (default: out/demo)")
    demo.add_argument("--seed", type=random_seed, default=0, help="random seed (default: 0)")


def _add_plot_schedule(commands):
    plot = commands.add_parser(
        "plot-schedule", formatter_class=_HelpFormatter,
        help="draw a schedule into an image file",
        description="Draw a CyclicalLearningRate (or, with --one-cycle, a OneCycle) "
        "schedule into an image file: PNG, PDF, SVG or any format matplotlib writes, "
        "chosen by the extension of --out.",
        epilog="examples:\n"
        "  keras-clr plot-schedule --mode triangular2 --base-lr 0.001 --max-lr 0.006 "
        "--step-size 2000 --steps 12000 --out clr.png\n"
        "  keras-clr plot-schedule --mode exp_range --gamma 0.9999 --base-lr 0.001 "
        "--max-lr 0.006 --step-size 2000 --out exp_range.svg\n"
        "  keras-clr plot-schedule --one-cycle --max-lr 0.1 --total-steps 5000 "
        "--base-momentum 0.85 --max-momentum 0.95 --out 1cycle.png",
    )
    plot.add_argument("--max-lr", type=positive_float, required=True, help="peak LR")
    plot.add_argument("--out", type=path_option, required=True,
                      help="image file to write; its extension picks the format")
    plot.add_argument("--steps", type=step_count,
                      help="steps to draw (default: 3 cycles, or --total-steps); beyond "
                      "100000 steps the curve is sampled, which shows up to 1000 cycles")
    plot.add_argument("--base-momentum", type=momentum_value,
                      help="also draw momentum cycled from this ...")
    plot.add_argument("--max-momentum", type=momentum_value, help="... to this, in [0, 1)")
    clr = plot.add_argument_group("cyclical schedule (CyclicalLearningRate)")
    clr.add_argument("--mode", help="triangular, triangular2 or exp_range (default: "
                     "triangular)")
    clr.add_argument("--base-lr", type=non_negative_float, help="lower bound (required)")
    clr.add_argument("--step-size", type=step_count, help="steps per half cycle (required)")
    clr.add_argument("--step-size-down", type=step_count,
                     help="steps down (default: --step-size)")
    clr.add_argument("--gamma", type=fraction,
                     help="exp_range's decay per step, in (0, 1) (required for exp_range)")
    one_cycle = plot.add_argument_group("1cycle (OneCycle)")
    one_cycle.add_argument("--one-cycle", action="store_true", help="draw OneCycle")
    one_cycle.add_argument("--total-steps", type=step_count, help="length (required)")
    one_cycle.add_argument("--pct-start", type=fraction, help="warm-up share (default: 0.3)")
    one_cycle.add_argument("--div-factor", type=positive_float,
                           help="initial LR = max LR / this (default: 25)")
    one_cycle.add_argument("--final-div-factor", type=positive_float,
                           help="final LR = initial LR / this (default: 1e4)")
    one_cycle.add_argument("--anneal-strategy", help="cos or linear (default: cos)")
    one_cycle.add_argument("--three-phase", action="store_true", default=None,
                           help="return to the initial LR before annealing")


def _add_range_test(commands):
    from keras_clr.bounds import METHODS

    test = commands.add_parser(
        "range-test", formatter_class=_HelpFormatter,
        help="run the LR range test on a saved model and arrays",
        description="Run the LR range test on a saved, compiled Keras model and arrays from "
        "an .npz file; print the suggested bounds; write range_test.csv and "
        "range_test.png. The model file is never modified.",
        epilog="examples:\n"
        "  keras-clr range-test --model model.keras --data train.npz --x images --y labels "
        "--val-split 0.2 --out out/range-test\n"
        "  keras-clr range-test --model model.keras --custom-objects my_layers.py "
        "--data train.npz --metric loss --method steepest --out out/range-test",
    )
    test.add_argument("--model", type=path_option, required=True,
                      help="a compiled model saved as .keras (or legacy .h5)")
    test.add_argument("--custom-objects", metavar="MODULE", action="append",
                      help="import this module (a dotted name or a .py file) first, so that "
                      "the custom objects it registers with "
                      "keras.saving.register_keras_serializable load; repeatable")
    test.add_argument("--data", type=path_option, required=True,
                      help="an .npz file (np.savez) with the inputs and targets")
    test.add_argument("--x", default="x", help="key of the inputs in --data (default: x)")
    test.add_argument("--y", default="y", help="key of the targets in --data (default: y)")
    test.add_argument("--out", type=path_option, required=True, help="output folder")
    sweep = test.add_argument_group("sweep")
    sweep.add_argument("--start-lr", type=non_negative_float, default=1e-7,
                       help="default: 1e-7; 0 only with --mode linear")
    sweep.add_argument("--end-lr", type=positive_float, default=10.0, help="default: 10")
    sweep.add_argument("--mode", default="exponential", choices=("exponential", "linear"),
                       metavar="MODE", help="exponential or linear (default: exponential)")
    sweep.add_argument("--epochs", type=positive_int,
                       help=f"epochs to sweep over, at most {MAX_SWEEP_STEPS} steps in all "
                       f"(default: {DEFAULT_SWEEP_STEPS} steps)")
    sweep.add_argument("--batch-size", type=positive_int, default=32, help="default: 32")
    sweep.add_argument("--val-split", type=fraction,
                       help="hold out this share of the rows, shuffled by --seed, and read "
                       "its accuracy/loss")
    sweep.add_argument("--seed", type=random_seed, default=0,
                       help="seeds Keras and the --val-split shuffle (default: 0)")
    sweep.add_argument("--repeats", type=positive_int, default=1,
                       help="sweeps from the same start, read by their median curve; the "
                       "spread of their own suggestions is printed (default: 1; at most "
                       f"{MAX_SWEEP_STEPS} steps over all sweeps)")
    reading = test.add_argument_group("bounds")
    reading.add_argument("--metric", help="recorded column to read the bounds from "
                         "(default: loss)")
    reading.add_argument("--method", choices=METHODS, metavar="METHOD",
                         help=f"rule: {', '.join(METHODS)} (default: accuracy for an "
                         "accuracy metric, else lowest_loss)")


def main(argv=None):
    debug = bool(os.environ.get(DEBUG_VARIABLE))
    with _NativeStderr(held=not debug) as native_stderr:
        try:
            args = build_parser().parse_args(argv)
            return COMMANDS[args.command](args)
        except UsageError as error:
            _error(_one_line(error))
            return 2
        except KeyboardInterrupt:
            _error("interrupted")
            return 130
        except Exception as error:  # a bug, or an environment problem: still one line
            if debug:
                raise
            if isinstance(error, ImportError):  # TensorFlow's own lines may say why
                native_stderr.replay()
            _error(f"unexpected {type(error).__name__}: {_keras_message(error)} (set "
                   f"{DEBUG_VARIABLE}=1 to see the traceback)")
            return 1


def _error(message):
    print(f"{PROG}: error: {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def _warnings_as_lines(category):
    """Shows each distinct `category` warning raised inside as one line on
    stderr, `keras-clr: warning: ...`, as the command's other messages; other
    warnings pass on as usual."""
    caught = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield
    finally:  # the usual warning machinery is back: pass the others on to it
        shown = set()
        for warning in caught:
            message = _one_line(warning.message)
            if not issubclass(warning.category, category):
                warnings.warn_explicit(warning.message, warning.category, warning.filename,
                                       warning.lineno)
            elif message not in shown:
                shown.add(message)
                print(f"{PROG}: warning: {message}", file=sys.stderr)


def _one_line(error):
    return " ".join(str(error).split())


class _NativeStderr:
    """Holds back what native code writes to file descriptor 2.

    TensorFlow logs a few lines through absl when it is imported and when it
    runs its first op (oneDNN, CPU features, CUDA drivers), whatever
    TF_CPP_MIN_LOG_LEVEL says. While held, descriptor 2 goes into a temporary
    file; Python's `sys.stderr` (this command's messages, warnings) keeps
    writing to the terminal.
    """

    def __init__(self, held=True):
        self.held = held

    def __enter__(self):
        if not self.held:
            return self
        sys.stderr.flush()
        self._terminal = os.dup(2)
        self._file = tempfile.TemporaryFile()
        os.dup2(self._file.fileno(), 2)
        self._python_stderr = sys.stderr
        if _writes_to_descriptor_2(sys.stderr):
            sys.stderr = os.fdopen(os.dup(self._terminal), "w", buffering=1,
                                   encoding=sys.stderr.encoding, errors="backslashreplace")
        return self

    def replay(self):
        """Writes what was held so far to the terminal."""
        if self.held:
            self._file.seek(0)
            text = self._file.read()
            while text:
                text = text[os.write(self._terminal, text):]

    def __exit__(self, *exc_info):
        if self.held:
            sys.stderr.flush()
            sys.stderr = self._python_stderr
            os.dup2(self._terminal, 2)
            os.close(self._terminal)
            self._file.close()


def _writes_to_descriptor_2(stream):
    try:
        return stream.fileno() == 2
    except (AttributeError, OSError, ValueError):  # a test's capture, a closed stream
        return False


# ---------------------------------------------------------------------------
# demo

def run_demo(args):
    _check_writable(args.out, DEMO_OUTPUTS, "--out")
    log = functools.partial(print, flush=True)
    log("loading Keras ...")
    _import_keras()
    _make_folder(args.out, "--out")
    from keras_clr import demo

    summary = demo.run_demo(args.out, quick=args.quick, seed=args.seed, log=log)
    print()
    print(demo.format_summary(summary))
    print(f"\nwrote {args.out}/: {' '.join(DEMO_OUTPUTS)}")
    return 0


# ---------------------------------------------------------------------------
# plot-schedule

def plot_schedule(args):
    _check_momenta(args)
    _check_schedule_options(args)
    _check_image_file(args.out)
    _check_writable(args.out.parent, [args.out.name], "--out")
    _import_keras()
    schedule = _schedule(args)
    steps = args.steps or _default_steps(schedule)
    from matplotlib.figure import Figure

    from keras_clr import plotting

    figure = Figure(figsize=(8, 4), layout="constrained")
    try:
        plotting.plot_schedule(schedule, steps, ax=figure.subplots(),
                               base_momentum=args.base_momentum,
                               max_momentum=args.max_momentum)
    except ValueError as error:
        raise UsageError(_as_option(error)) from None
    _save(figure, args.out, "--out")
    print(f"wrote {args.out}")
    return 0


def _check_momenta(args):
    if (args.base_momentum is None) != (args.max_momentum is None):
        given = "--base-momentum" if args.max_momentum is None else "--max-momentum"
        raise UsageError(f"give both --base-momentum and --max-momentum, or neither "
                         f"(only {given} was given)")
    if args.max_momentum is not None and args.base_momentum > args.max_momentum:
        raise UsageError(f"--base-momentum ({args.base_momentum:g}) must not exceed "
                         f"--max-momentum ({args.max_momentum:g})")


def _check_schedule_options(args):
    """Refuses options of the other kind of schedule rather than ignoring them."""
    if args.one_cycle:
        stray, required = CLR_OPTIONS, ("total_steps",)
        why = "--one-cycle needs --total-steps"
    else:
        stray, required = ONE_CYCLE_OPTIONS, ("base_lr", "step_size")
        why = "a cyclical schedule needs --base-lr and --step-size (or pass --one-cycle)"
    for name in stray:
        if getattr(args, name) is not None:
            kind = "a cyclical schedule" if args.one_cycle else "--one-cycle"
            raise UsageError(f"{_option(name)} applies only to {kind}; remove it")
    if any(getattr(args, name) is None for name in required):
        raise UsageError(why)
    if args.mode == "exp_range" and args.gamma is None:
        raise UsageError("--mode exp_range needs --gamma, the amplitude's decay per step, "
                         "in (0, 1) (e.g. 0.9999)")
    if args.gamma is not None and args.mode != "exp_range":
        raise UsageError(f"--gamma applies only to --mode exp_range. Received: --mode "
                         f"{args.mode or 'triangular'}")


def _check_image_file(path):
    from matplotlib.backend_bases import FigureCanvasBase

    formats = sorted(set(FigureCanvasBase.get_supported_filetypes()) - {"pgf"})  # pgf: LaTeX
    extension = path.suffix.lower().removeprefix(".")
    if extension not in formats:
        raise UsageError(f"--out must end in an image format matplotlib writes: "
                         f"{', '.join('.' + f for f in formats)}. Received: --out {path}")


def _schedule(args):
    from keras_clr.schedules import CyclicalLearningRate, OneCycle

    given = {name: getattr(args, name) for name in (*CLR_OPTIONS, *ONE_CYCLE_OPTIONS)
             if getattr(args, name) is not None}
    try:
        if args.one_cycle:
            return OneCycle(args.max_lr, **given)
        return CyclicalLearningRate(max_lr=args.max_lr, **given)
    except (ValueError, TypeError) as error:
        raise UsageError(_as_option(error)) from None


def _default_steps(schedule):
    """Three cycles of a cyclical schedule, all of a 1cycle."""
    if hasattr(schedule, "total_steps"):
        return schedule.total_steps
    return 3 * (schedule.step_size + schedule.step_size_down)


def _as_option(error):
    """Names the option rather than the Python argument: `step_size` -> --step-size,
    step_size=0 -> --step-size 0, mode='cos' -> --mode cos."""
    text = _one_line(error)
    for name in ("max_lr", "steps", *CLR_OPTIONS, *ONE_CYCLE_OPTIONS):
        text = text.replace(f"`{name}`", _option(name))
        text = re.sub(rf"\b{name}=('?)([^',]*)\1", rf"{_option(name)} \2", text)
    return text


def _option(name):
    return "--" + name.replace("_", "-")


# ---------------------------------------------------------------------------
# range-test

def range_test(args):
    _check_sweep_options(args)
    _check_writable(args.out, RANGE_TEST_OUTPUTS, "--out")
    x, y = _load_arrays(args.data, args.x, args.y)
    labels = y
    (x, y), validation = _split(x, y, args.val_split, args.seed)
    num_steps = _sweep_length(args, len(x))
    if args.repeats * num_steps > MAX_SWEEP_STEPS:
        raise UsageError(f"--repeats {args.repeats} sweeps of {num_steps} steps make "
                         f"{args.repeats * num_steps} steps; range-test sweeps at most "
                         f"{MAX_SWEEP_STEPS} steps in all")
    _check_model_file(args.model)
    _import_keras(args.seed)
    _import_custom_objects(args.custom_objects or [])
    model = _load_model(args.model)
    _check_class_labels(model, labels)
    if args.epochs is not None:  # --epochs counts batches; the sweep counts updates
        from keras_clr._optimizer import inner_optimizer
        from keras_clr.range_test import sweep_updates

        num_steps = sweep_updates(num_steps, inner_optimizer(model))
    _check_metric(args.metric, _recorded_metrics(model, x, y, args.batch_size), validation)
    sweep = _sweep_arguments(args, num_steps, validation)
    return _run_range_test(args, model, x, y, sweep)


def _check_sweep_options(args):
    if args.start_lr == 0 and args.mode == "exponential":
        raise UsageError("--start-lr 0 needs --mode linear: an exponential sweep multiplies "
                         "the LR by the same factor each step, so it cannot start from 0")
    if not args.end_lr > args.start_lr:
        raise UsageError(f"--end-lr ({args.end_lr:g}) must exceed --start-lr "
                         f"({args.start_lr:g})")


def _load_arrays(path, x_key, y_key):
    import zipfile

    import numpy as np

    if _first_bytes(path, "--data", 6) == b"\x93NUMPY":
        raise UsageError(f"--data: {path} is a .npy file, which holds one array; save the "
                         "inputs and targets together with np.savez(path, x=..., y=...)")
    if not zipfile.is_zipfile(path):
        raise UsageError(f"--data: {path} is not a valid .npz file (a zip of arrays, as "
                         "np.savez writes); was it cut short, or is it another kind of file?")
    try:
        with np.load(path, allow_pickle=False) as arrays:
            missing = [key for key in (x_key, y_key) if key not in arrays.files]
            if missing:
                raise UsageError(f"--data: {path} has no key {missing[0]!r}; its keys are "
                                 f"{', '.join(arrays.files)} (choose with --x and --y)")
            x, y = (_array(arrays, key, path) for key in (x_key, y_key))
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as error:
        raise UsageError(f"--data: cannot read {path} as .npz: {_one_line(error)}") from None
    if len(x) != len(y):
        raise UsageError(f"--data: {x_key!r} has {len(x)} rows but {y_key!r} has {len(y)}")
    return x, y


def _array(arrays, key, path):
    try:
        array = arrays[key]
    except ValueError as error:
        if "allow_pickle" not in str(error):
            raise
        raise UsageError(f"--data: {key!r} in {path} is an array of Python objects; save "
                         "numbers (e.g. x.astype('float32'))") from None
    if array.dtype.kind not in "biuf":
        raise UsageError(f"--data: {key!r} in {path} holds {array.dtype} values; save "
                         "numbers (e.g. x.astype('float32'))")
    if array.ndim == 0 or len(array) == 0:
        raise UsageError(f"--data: {key!r} in {path} has no rows (shape {array.shape})")
    return array


def _split(x, y, val_split, seed):
    """((x, y) to sweep on, held-out (x, y) or None): a shuffled, seeded split."""
    if val_split is None:
        return (x, y), None
    import numpy as np

    held_out = int(round(len(x) * val_split))
    if not 0 < held_out < len(x):
        raise UsageError(f"--val-split {val_split:g} of {len(x)} rows leaves no rows on one "
                         "side")
    order = np.random.default_rng(seed).permutation(len(x))
    kept, held = order[held_out:], order[:held_out]
    return (x[kept], y[kept]), (x[held], y[held])


def _sweep_length(args, rows):
    if args.epochs is None:
        return DEFAULT_SWEEP_STEPS
    per_epoch = math.ceil(rows / args.batch_size)
    steps = args.epochs * per_epoch
    if steps > MAX_SWEEP_STEPS:
        raise UsageError(f"--epochs {args.epochs} makes a sweep of {steps} steps ({per_epoch} "
                         f"per epoch); range-test sweeps at most {MAX_SWEEP_STEPS} steps")
    return steps


def _check_file(path, option):
    if path.is_dir():
        raise UsageError(f"{option}: {path} is a folder, not a file")
    if not path.is_file():
        raise UsageError(f"{option}: no such file: {path}")


def _first_bytes(path, option, count):
    _check_file(path, option)
    try:
        with path.open("rb") as file:
            return file.read(count)
    except OSError as error:
        raise UsageError(f"{option}: cannot read {path}: {error.strerror}") from None


def _check_model_file(path):
    import zipfile

    signature = _first_bytes(path, "--model", 8)
    suffix = path.suffix.lower()
    if suffix == ".keras":
        try:
            with zipfile.ZipFile(path) as archive:
                valid = "config.json" in archive.namelist()
        except (zipfile.BadZipFile, OSError):
            valid = False
    elif suffix in (".h5", ".hdf5"):
        valid = signature == b"\x89HDF\r\n\x1a\n"
    else:
        raise UsageError(f"--model: {path} is not a .keras (or legacy .h5) model file")
    if not valid:
        raise UsageError(f"--model: {path} is not a valid {suffix} file (as model.save "
                         "writes); was it cut short, or is it another kind of file?")


def _import_keras(seed=None):
    """Imports Keras (and seeds it); a backend it cannot import is named by the user's
    KERAS_BACKEND, so that is bad input (status 2), not an unexpected error."""
    try:
        import keras
    except (ImportError, ValueError) as error:
        backend = os.environ.get("KERAS_BACKEND")
        if not backend:
            raise  # a broken installation
        raise UsageError(f"KERAS_BACKEND={backend}: Keras cannot run on it: "
                         f"{_keras_message(error)}") from None
    if seed is not None:
        keras.utils.set_random_seed(seed)


def _import_custom_objects(modules):
    import importlib
    import runpy

    for module in modules:
        is_file = module.endswith(".py") or os.sep in module
        if is_file:
            _check_file(pathlib.Path(module), "--custom-objects")
        try:
            if is_file:
                runpy.run_path(module)
            else:
                importlib.import_module(module)
        except Exception as error:  # whatever the user's module raises
            raise UsageError(f"--custom-objects: importing {module} failed: "
                             f"{type(error).__name__}: {_one_line(error)}") from None


def _load_model(path):
    import logging

    import keras

    absl = logging.getLogger("absl")  # the legacy loader logs through it
    level = absl.level
    try:
        absl.setLevel(logging.ERROR)
        with warnings.catch_warnings():
            # A model saved before its first fit has an unbuilt optimizer; Keras
            # warns that it skips the (empty) optimizer state. Nothing is lost.
            warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
            model = keras.models.load_model(path)
    except Exception as error:  # any failure to read the file is the user's input
        message = _keras_message(error)
        if "Could not locate" in message:
            message += " Pass the module that registers it with --custom-objects MODULE."
        raise UsageError(f"--model: cannot load {path}: {message}") from None
    finally:
        absl.setLevel(level)
    if not getattr(model, "compiled", False) or model.optimizer is None:
        raise UsageError(f"--model: {path} is not compiled; save it after model.compile(...)")
    if path.suffix.lower() in (".h5", ".hdf5"):
        # Keras' legacy loader marks the optimizer built with none of its state
        # variables, so no fit could run; compiling afresh from the saved
        # configuration builds it anew (the sweep starts from a fresh state anyway).
        model.compile_from_config(model.get_compile_config())
    return model


def _check_class_labels(model, y):
    """Sparse class labels must index the model's output units.

    TensorFlow and torch raise on a label out of range; JAX quietly scores it, so the sweep
    would record nonsense. Checked for a single-output model with a sparse categorical loss.
    """
    import numpy as np

    loss = model.loss
    if isinstance(loss, (list, tuple, dict)) and len(loss) == 1:  # one output's loss
        loss = next(iter(loss.values())) if isinstance(loss, dict) else loss[0]
    name = loss if isinstance(loss, str) else getattr(loss, "name", None) or getattr(
        loss, "__name__", "")
    try:
        outputs = model.outputs or []
    except (AttributeError, ValueError):  # a subclassed or unbuilt model
        outputs = []
    if "sparse_categorical" not in str(name) or len(outputs) != 1 or y.dtype.kind not in "iuf":
        return
    classes = outputs[0].shape[-1]
    if classes is None or y.size == 0:
        return
    if y.ndim > 1 and y.shape[1:] != (1,):
        raise UsageError(f"--data does not fit --model: the labels (--y) have shape "
                         f"{y.shape}, but its sparse categorical loss takes one whole "
                         f"label per row, 0 to {classes - 1}")
    ignored = loss.get_config().get("ignore_class") if hasattr(loss, "get_config") else None
    labels = y[y != ignored] if ignored is not None else y
    if labels.size == 0:
        return
    low, high = labels.min(), labels.max()
    if low < 0 or high > classes - 1:
        raise UsageError(f"--data does not fit --model: the labels (--y) run from {low:g} to "
                         f"{high:g}, but the model's {classes} output units take whole "
                         f"labels 0 to {classes - 1}")
    fractional = labels[labels != np.round(labels)]
    if fractional.size:
        raise UsageError(f"--data does not fit --model: the labels (--y) hold fractions (e.g. "
                         f"{fractional.flat[0]:g}), but the model's {classes} output units take "
                         f"whole labels 0 to {classes - 1}")


def _recorded_metrics(model, x, y, batch_size):
    """The names the sweep will record, from one evaluated batch.

    It also finds data the model cannot take before the sweep starts.
    """
    try:
        scores = model.evaluate(x[:batch_size], y[:batch_size], batch_size=batch_size,
                                verbose=0, return_dict=True)
    except Exception as error:  # shapes, dtypes, label ranges: the model and data disagree
        raise UsageError(f"--data does not fit --model: {_keras_message(error)}") from None
    return list(scores)


def _check_metric(metric, names, validation):
    choices = [*names, *(f"val_{name}" for name in names if validation is not None)]
    if metric is not None and metric not in choices:
        hint = "" if validation is not None else " (val_* columns need --val-split)"
        raise UsageError(f"--metric must be one of the recorded columns {', '.join(choices)}"
                         f"{hint}. Received: --metric {metric}")


def _sweep_arguments(args, num_steps, validation):
    """The keyword arguments of `lr_range_test`, from the options."""
    sweep = dict(start_lr=args.start_lr, end_lr=args.end_lr, mode=args.mode,
                 batch_size=args.batch_size, num_steps=num_steps, epochs=args.epochs,
                 repeats=args.repeats, seed=args.seed, verbose=0)
    if validation is not None:
        sweep.update(validation_data=validation,
                     eval_every=max(1, num_steps // EVALUATIONS_PER_SWEEP))
    return sweep


def _run_range_test(args, model, x, y, sweep):
    from matplotlib.figure import Figure

    from keras_clr.bounds import ShallowCurveWarning
    from keras_clr.range_test import lr_range_test

    try:
        result = lr_range_test(model, x, y, **sweep)
    except ValueError as error:
        raise UsageError(_keras_message(error)) from None
    _make_folder(args.out, "--out")
    result.history.to_csv(args.out / "range_test.csv", index=False)
    figure = Figure(figsize=(11, 4), layout="constrained")
    ended = result.ended
    wrote = f"wrote {args.out / 'range_test.csv'} and {args.out / 'range_test.png'}"
    with _warnings_as_lines(ShallowCurveWarning):
        result.plot(ax=figure, metric=args.metric, method=args.method)
        _save(figure, args.out / "range_test.png", "--out")
        try:
            bounds = result.suggest_bounds(metric=args.metric, method=args.method)
        except ValueError as error:
            print(wrote)
            print(f"{PROG}: no bounds suggested ({ended}): {_one_line(error)}", file=sys.stderr)
            return 1
    print(bounds.describe(ended, digits=6))
    if result.repeats > 1:
        spread = result.suggestion_spread(metric=args.metric, method=args.method)["max_lr"]
        print(f"max_lr of each sweep: {', '.join(f'{v:.3g}' for v in spread)}")
    print(wrote)
    return 0


# ---------------------------------------------------------------------------
# Output files and Keras' messages

def _check_writable(folder, names, option):
    """Raises unless `names` can be written into `folder` (made if missing); writes nothing."""
    existing = folder
    while not existing.exists() and existing != existing.parent:  # False under a file too
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"{option}: cannot write into {folder}: {existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"{option}: cannot write into {folder}: {existing} is not writable")
    for name in names:
        path = folder / name
        if path.is_dir():
            raise UsageError(f"{option}: {path} is a folder; remove it or choose another "
                             f"{option}")
        if path.exists() and not os.access(path, os.W_OK):
            raise UsageError(f"{option}: {path} is not writable")


def _make_folder(folder, option):
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(f"{option}: cannot create {folder}: {error.strerror}") from None


def _save(figure, path, option):
    _make_folder(path.parent, option)
    try:
        figure.savefig(path, dpi=90)
    except OSError as error:
        raise UsageError(f"{option}: cannot write {path}: {error.strerror}") from None


_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_BOLD = re.compile(r"\x1b\[1m(.*?)\x1b\[0m", re.DOTALL)
# Lines of a TensorFlow op error that say where it happened, not what.
_WHERE = re.compile(r'\s*(Graph execution error:|Detected at node|File "|<stack traces|\[\[)')


def _keras_message(error):
    """What a Keras or TensorFlow error says is wrong, on one line.

    Keras prints the message of a layer's error in bold between the layer's
    name and its arguments; a deserialization error ends with the inner
    error and the whole config; a TensorFlow op error lists the frames of
    the op.
    """
    text = str(error)
    bold = _BOLD.findall(text)
    if bold:
        text = " ".join(bold)
    text = text.rpartition("Exception encountered: ")[2]
    text = text.partition(" Full object config:")[0]
    lines = _ANSI_ESCAPE.sub("", text).splitlines()
    return " ".join(" ".join(line for line in lines if not _WHERE.match(line)).split())


COMMANDS = {"demo": run_demo, "plot-schedule": plot_schedule, "range-test": range_test}


if __name__ == "__main__":
    sys.exit(main())
