import hashlib
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_digits

from keras_clr import cli, demo

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(capsys, *argv):
    status = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def assert_usage_error(capsys, fragment, *argv):
    status, out, err = run(capsys, *argv)
    assert status == 2, err
    assert err.count("\n") == 1 and err.startswith("keras-clr: error: "), err
    assert fragment in err
    assert "Traceback" not in err + out
    return err


# ---------------------------------------------------------------------------
# demo

def test_demo_writes_table_plots_and_csvs_and_says_what_it_does(capsys, tmp_path, monkeypatch):
    tiny = demo.Budget(epochs=2, half_cycle_epochs=1, fixed_grid=(0.03, 0.1), range_test_steps=100)
    monkeypatch.setattr(demo, "QUICK", tiny)
    status, out, _ = run(capsys, "demo", "--quick", "--out", tmp_path, "--seed", 1)
    assert status == 0
    phases = [line.split()[0] for line in out.splitlines() if line.startswith(("[", "load"))]
    assert phases == ["loading", "[1/4]", "[2/4]", "[3/4]", "[4/4]"]
    assert "suggested lr=" in out and "lr=0.03: final val_accuracy=" in out
    for policy in ("| fixed |", "| suggested lr |", "| triangular2 |", "| 1cycle |"):
        assert policy in out
    for name in cli.DEMO_OUTPUTS:
        assert (tmp_path / name).stat().st_size > 0
    curves = pd.read_csv(tmp_path / "curves.csv")
    assert set(curves["policy"]) == {"fixed", "suggested lr", "triangular2", "1cycle"}
    assert len(curves) == 4 * tiny.epochs


def test_demo_checks_its_output_folder_first(capsys, tmp_path):
    (tmp_path / "file").write_text("")
    assert_usage_error(capsys, f"--out: cannot write into {tmp_path / 'file' / 'demo'}: "
                       f"{tmp_path / 'file'} is a file", "demo", "--out", tmp_path / "file/demo")
    (tmp_path / "out" / "summary.csv").mkdir(parents=True)
    assert_usage_error(capsys, "summary.csv is a folder", "demo", "--out", tmp_path / "out")
    assert_usage_error(capsys, "--seed: expected an integer from 0", "demo", "--seed", "-1")


def test_steps_to_reach():
    curves = pd.DataFrame({"step": [10, 20, 30], "val_accuracy": [0.5, 0.9, 0.8]})
    assert demo.steps_to_reach(curves, 0.85) == 20
    assert demo.steps_to_reach(curves, 0.95) is None


def test_demo_splits_are_disjoint_and_stratified():
    data = demo.load_digits_splits(seed=0)
    sizes = [len(data[part][0]) for part in ("train", "val", "test")]
    assert sum(sizes) == 1797 and sizes[0] > 1000
    assert set(np.unique(data["test"][1])) == set(range(10))


# ---------------------------------------------------------------------------
# plot-schedule

PLOTS = [
    (["--mode", "triangular2", "--base-lr", "0.001", "--max-lr", "0.006", "--step-size",
      "200", "--steps", "1200"], "schedule.png", b"\x89PNG\r\n\x1a\n"),
    (["--mode", "exp_range", "--gamma", "0.999", "--base-lr", "0.001", "--max-lr", "0.006",
      "--step-size", "200", "--step-size-down", "100"], "schedule.pdf", b"%PDF"),
    (["--one-cycle", "--max-lr", "0.1", "--total-steps", "500", "--three-phase",
      "--base-momentum", "0.85", "--max-momentum", "0.95"], "schedule.svg", b"<?xml"),
    # 6e9 steps of 3 cycles: drawn from a sample, no 48 GB array
    (["--base-lr", "0.001", "--max-lr", "0.006", "--step-size", "1e9"], "long.png",
     b"\x89PNG"),
]


def test_plot_schedule_writes_the_format_of_the_extension(capsys, tmp_path):
    for argv, name, magic in PLOTS:
        out = tmp_path / "sub" / name
        status, stdout, err = run(capsys, "plot-schedule", *argv, "--out", out)
        assert status == 0 and stdout == f"wrote {out}\n" and err == "", argv
        assert out.read_bytes().startswith(magic), argv


BAD_SCHEDULES = [
    (["--base-lr", "0.1", "--max-lr", "0.5", "--step-size", "0"],
     "argument --step-size: expected a positive integer up to 1e12, got '0'"),
    (["--base-lr", "x", "--max-lr", "0.5", "--step-size", "5"], "--base-lr: expected"),
    (["--base-lr", "0.1", "--max-lr", "inf", "--step-size", "5"], "--max-lr: expected"),
    (["--base-lr", "0.1", "--max-lr", "0.5", "--step-size", "5", "--steps", "1e13"],
     "--steps: expected a positive integer up to 1e12, got '1e13'"),
    (["--base-lr", "0.1", "--max-lr", "0.5", "--step-size", "5", "--mode", "cosine"],
     "Argument --mode must be one of 'triangular'"),
    (["--base-lr", "0.5", "--max-lr", "0.1", "--step-size", "5"],
     "Argument --max-lr must be greater than --base-lr. Received: --max-lr 0.1, --base-lr 0.5"),
    (["--max-lr", "0.5", "--step-size", "5"], "needs --base-lr and --step-size"),
    (["--base-lr", "0.1", "--max-lr", "0.5", "--step-size", "5", "--mode", "exp_range"],
     "--mode exp_range needs --gamma"),
    (["--base-lr", "0.1", "--max-lr", "0.5", "--step-size", "5", "--gamma", "0.99"],
     "--gamma applies only to --mode exp_range. Received: --mode triangular"),
    (["--base-lr", "0.1", "--max-lr", "0.5", "--step-size", "5", "--mode", "exp_range",
      "--gamma", "1"], "--gamma: expected a number between 0 and 1, got '1'"),
    (["--base-lr", "0.1", "--max-lr", "0.5", "--step-size", "5", "--total-steps", "9"],
     "--total-steps applies only to --one-cycle; remove it"),
    (["--base-lr", "0.1", "--max-lr", "0.5", "--step-size", "200", "--steps", "1e10"],
     "Argument --steps spans 2.5e+07 cycles of 400 steps"),
    (["--one-cycle", "--max-lr", "0.5"], "--one-cycle needs --total-steps"),
    (["--one-cycle", "--max-lr", "0.5", "--total-steps", "100", "--base-lr", "0.1"],
     "--base-lr applies only to a cyclical schedule"),
    (["--one-cycle", "--max-lr", "0.5", "--total-steps", "100", "--anneal-strategy", "x"],
     "Argument --anneal-strategy must be one of"),
    (["--one-cycle", "--max-lr", "0.5", "--total-steps", "100", "--base-momentum", "0.8"],
     "both --base-momentum and --max-momentum"),
    (["--one-cycle", "--max-lr", "0.5", "--total-steps", "100", "--base-momentum", "0.8",
      "--max-momentum", "1.5"], "--max-momentum: expected a momentum in [0, 1), got '1.5'"),
    (["--one-cycle", "--max-lr", "0.5", "--total-steps", "100", "--base-momentum", "0.95",
      "--max-momentum", "0.85"], "--base-momentum (0.95) must not exceed --max-momentum"),
]


def test_plot_schedule_bad_input(capsys, tmp_path):
    for argv, fragment in BAD_SCHEDULES:
        assert_usage_error(capsys, fragment, "plot-schedule", *argv, "--out", tmp_path / "a.png")
    assert list(tmp_path.iterdir()) == []


def test_plot_schedule_wants_an_image_extension(capsys, tmp_path):
    for name in ("x.txt", "noext"):
        err = assert_usage_error(capsys, "--out must end in an image format matplotlib writes: ",
                                 "plot-schedule", "--one-cycle", "--max-lr", "0.1",
                                 "--total-steps", "100", "--out", tmp_path / name)
        assert ".png" in err and ".svg" in err
        assert err.endswith(f"Received: --out {tmp_path / name}\n")
    assert list(tmp_path.iterdir()) == []


def test_plot_schedule_checks_where_it_writes(capsys, tmp_path):
    (tmp_path / "file").write_text("")
    (tmp_path / "dir.png").mkdir()
    options = ["plot-schedule", "--one-cycle", "--max-lr", "0.1", "--total-steps", "100"]
    assert_usage_error(capsys, f"{tmp_path / 'file'} is a file", *options, "--out",
                       tmp_path / "file" / "a.png")
    assert_usage_error(capsys, f"--out: {tmp_path / 'dir.png'} is a folder", *options, "--out",
                       tmp_path / "dir.png")


def test_missing_required_option_and_unknown_command(capsys):
    assert_usage_error(capsys, "--out", "plot-schedule", "--max-lr", "0.1")
    # An unset shell variable: the current folder is not what was meant.
    assert_usage_error(capsys, "argument --out: expected a path, got ''", "plot-schedule",
                       "--max-lr", "0.1", "--out", "")
    assert_usage_error(capsys, "invalid choice: 'train'", "train")


# ---------------------------------------------------------------------------
# range-test

@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    folder = tmp_path_factory.mktemp("range")
    x, y = load_digits(return_X_y=True)
    x = (x / 16).astype("float32")
    np.savez(folder / "digits.npz", images=x, labels=y)
    np.save(folder / "images.npy", x)
    np.savez(folder / "empty.npz", x=x[:0], y=y[:0])
    np.savez(folder / "objects.npz", x=np.array([{"a": 1}, None], dtype=object), y=y[:2])
    np.savez(folder / "strings.npz", x=np.array(["a", "b"]), y=y[:2])
    np.savez(folder / "short.npz", x=x, y=y[:-1])
    np.savez(folder / "features.npz", x=x[:, :10], y=y)
    np.savez(folder / "labels.npz", x=x, y=y + 10)
    np.savez(folder / "halves.npz", x=x, y=y - 0.5)
    np.savez(folder / "fractions.npz", x=x, y=y * 0.5)
    np.savez(folder / "zeros.npz", x=np.zeros_like(x), y=y)  # nothing to learn
    np.savez(folder / "onebad.npz", x=x, y=np.where(np.arange(len(y)) == 7, 10, y))
    (folder / "notes.txt").write_text("not an npz archive")
    (folder / "text.keras").write_text("not a model")
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((64,)), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(10)]
    )
    model.save(folder / "uncompiled.keras")
    model.compile(keras.optimizers.SGD(0.01, momentum=0.9),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    model.save(folder / "model.keras")
    model.save(folder / "legacy.h5")
    data = (folder / "model.keras").read_bytes()
    (folder / "truncated.keras").write_bytes(data[: len(data) // 2])
    (folder / "archive.keras").write_bytes((folder / "digits.npz").read_bytes())
    (folder / "D" / "range_test.csv").mkdir(parents=True)
    return folder


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def range_test_argv(saved, out, **changes):
    options = {"--model": "model.keras", "--data": "digits.npz", "--x": "images",
               "--y": "labels", **changes}
    argv = ["range-test"]
    for option, value in options.items():
        is_file = option in ("--model", "--data") and value != "missing"
        argv += [option, saved / value if is_file else value]
    return [*argv, "--out", out]


def test_range_test_is_seeded_and_leaves_the_model_file_alone(capsys, saved, tmp_path):
    before = digest(saved / "model.keras")
    tables = []
    for name in ("a", "b"):
        status, out, err = run(capsys, *range_test_argv(saved, tmp_path / name),
                               "--val-split", "0.2", "--seed", "7", "--start-lr", "1e-4")
        assert status == 0 and err == "", err
        first = out.splitlines()[0]
        base, top = (float(part.split("=")[1]) for part in first.split()[:2])
        assert first.startswith("base_lr=") and 1e-4 < base < top < 10
        assert "(lowest_loss rule on loss; " in first and " of 300 steps, " in first
        assert (tmp_path / name / "range_test.png").stat().st_size > 0
        tables.append(pd.read_csv(tmp_path / name / "range_test.csv"))
    assert {"learning_rate", "loss", "accuracy", "val_accuracy"} <= set(tables[0].columns)
    pd.testing.assert_frame_equal(*tables)  # same seed, same split, same sweep
    assert digest(saved / "model.keras") == before


def test_range_test_runs_on_a_legacy_h5_model(capsys, caplog, saved, tmp_path):
    # Keras' h5 loader leaves the optimizer built with no state variables, so a
    # fit on the loaded model raised "Unknown variable"; the loader's absl log
    # line reached the terminal too (through logging's last-resort handler).
    before = digest(saved / "legacy.h5")
    status, out, err = run(capsys, *range_test_argv(saved, tmp_path, **{"--model": "legacy.h5"}))
    assert status == 0 and err == "", err
    assert [r.getMessage() for r in caplog.records if r.name == "absl"] == []
    assert out.startswith("base_lr=")
    assert digest(saved / "legacy.h5") == before


@pytest.mark.parametrize("mode, start_lr", [("exponential", 1e-4), ("linear", 0.0)])
def test_range_test_epochs_under_gradient_accumulation_sweep_the_whole_range(
        capsys, tmp_path, saved, mode, start_lr):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(10)])
    model.compile(keras.optimizers.SGD(0.01, gradient_accumulation_steps=3),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.save(tmp_path / "accumulating.keras")
    status, out, err = run(capsys, *range_test_argv(
        saved, tmp_path / "out", **{"--model": tmp_path / "accumulating.keras"}),
        "--epochs", "3", "--batch-size", "100", "--mode", mode, "--start-lr", str(start_lr),
        "--end-lr", "1e-2")
    # 3 epochs of 18 batches are 18 updates of 3 batches each: the sweep reaches end_lr
    # (linearly from 0 too, which the library allows, so the CLI does too).
    # (Whether this short sweep yields bounds, exit 0 or 1, is not the point here.)
    assert status in (0, 1) and "18 of 18 steps, finished" in out + err, err
    lrs = pd.read_csv(tmp_path / "out" / "range_test.csv")["learning_rate"]
    ninth = start_lr * 100 ** (9 / 17) if mode == "exponential" else 1e-2 * 9 / 17
    assert lrs.iloc[0] == pytest.approx(start_lr, rel=1e-6)  # 0 exactly, linear
    assert lrs.iloc[3 * 9] == pytest.approx(ninth, rel=1e-5)  # the 10th update's 3 batches
    assert lrs.iloc[-1] == pytest.approx(1e-2, rel=1e-5)


def test_range_test_without_bounds_exits_1_and_still_writes_its_outputs(capsys, saved,
                                                                       tmp_path):
    status, out, err = run(capsys, *range_test_argv(
        saved, tmp_path, **{"--data": "zeros.npz", "--x": "x", "--y": "y"}),
        "--end-lr", "1e-3")
    assert status == 1
    assert err.count("\n") == 1 and err.startswith("keras-clr: no bounds suggested ("), err
    assert "no clear drop" in err and "Traceback" not in out + err
    assert len(pd.read_csv(tmp_path / "range_test.csv")) == 300
    assert (tmp_path / "range_test.png").stat().st_size > 0


def test_range_test_repeats_report_each_sweeps_max_lr_and_another_seed_differs(capsys, saved,
                                                                               tmp_path):
    frames = {}
    for seed in ("7", "8"):
        status, out, err = run(capsys, *range_test_argv(saved, tmp_path / seed), "--repeats",
                               "2", "--seed", seed, "--start-lr", "1e-4")
        assert status == 0, err
        spread = [line for line in out.splitlines() if line.startswith("max_lr of each sweep: ")]
        assert len(spread) == 1 and len(spread[0].split(": ")[1].split(", ")) == 2, out
        frames[seed] = pd.read_csv(tmp_path / seed / "range_test.csv")
        assert sorted(set(frames[seed]["repeat"])) == [0, 1]
    assert not np.allclose(frames["7"]["loss"].iloc[:50], frames["8"]["loss"].iloc[:50])


def test_range_test_reads_the_metric_and_method_asked_for(capsys, saved, tmp_path):
    status, out, err = run(capsys, *range_test_argv(saved, tmp_path, **{"--metric": "loss"}),
                           "--method", "steepest")
    assert status == 0, err
    assert "(steepest rule on loss; " in out.splitlines()[0]


def test_val_split_holds_out_a_shuffled_seeded_slice():
    x, y = np.arange(100).reshape(50, 2), np.arange(50)
    (kept, kept_y), (held, held_y) = cli._split(x, y, 0.2, seed=0)
    assert len(held) == 10 and len(kept) == 40
    assert sorted([*kept_y, *held_y]) == list(range(50))
    assert sorted(held_y) != list(range(40, 50))  # not the last rows
    np.testing.assert_array_equal(cli._split(x, y, 0.2, seed=0)[1][1], held_y)
    assert list(cli._split(x, y, 0.2, seed=1)[1][1]) != list(held_y)


BAD_RANGE_TESTS = [
    ({"--model": "missing"}, "--model: no such file: missing"),
    ({"--model": "D"}, "/D is a folder, not a file"),
    ({"--repeats": "1000"}, "--repeats 1000 sweeps of 300 steps make 300000 steps; range-test "
     "sweeps at most 100000 steps in all"),
    ({"--data": "missing"}, "--data: no such file: missing"),
    ({"--x": "pixels"}, "has no key 'pixels'; its keys are images, labels"),
    ({"--data": "images.npy"}, "images.npy is a .npy file, which holds one array; save "
     "the inputs and targets together with np.savez(path, x=..., y=...)"),
    ({"--data": "notes.txt", "--x": "x", "--y": "y"},
     "notes.txt is not a valid .npz file (a zip of arrays, as np.savez writes)"),
    ({"--data": "empty.npz", "--x": "x", "--y": "y"}, "has no rows (shape (0, 64))"),
    ({"--data": "objects.npz", "--x": "x", "--y": "y"},
     "is an array of Python objects; save numbers"),
    ({"--data": "strings.npz", "--x": "x", "--y": "y"}, "holds <U1 values; save numbers"),
    ({"--data": "short.npz", "--x": "x", "--y": "y"}, "'x' has 1797 rows but 'y' has 1796"),
    ({"--model": "uncompiled.keras"}, "is not compiled"),
    ({"--model": "text.keras"}, "text.keras is not a valid .keras file (as model.save "
     "writes); was it cut short, or is it another kind of file?"),
    ({"--model": "truncated.keras"}, "truncated.keras is not a valid .keras file"),
    ({"--model": "archive.keras"}, "archive.keras is not a valid .keras file"),
    ({"--model": "digits.npz"}, "digits.npz is not a .keras (or legacy .h5) model file"),
    ({"--data": "features.npz", "--x": "x", "--y": "y"}, "--data does not fit --model: "
     "Input 0 "),  # Keras' own wording follows; it changed between releases
    ({"--data": "labels.npz", "--x": "x", "--y": "y"}, "--data does not fit --model: the "
     "labels (--y) run from 10 to 19, but the model's 10 output units take whole labels 0 to 9"),
    ({"--data": "halves.npz", "--x": "x", "--y": "y"}, "the labels (--y) run from -0.5 to 8.5"),
    ({"--data": "fractions.npz", "--x": "x", "--y": "y"}, "the labels (--y) hold fractions "
     "(e.g. 0.5), but the model's 10 output units take whole labels 0 to 9"),
    ({"--y": "images"}, "the labels (--y) have shape (1797, 64), but its sparse categorical "
     "loss takes one whole label per row, 0 to 9"),
    ({"--data": "onebad.npz", "--x": "x", "--y": "y", "--val-split": "0.5"},
     "the labels (--y) run from 0 to 10"),  # checked on every row, held out or not
    ({"--start-lr": "-1"}, "--start-lr: expected a number >= 0, got '-1'"),
    ({"--start-lr": "0"}, "--start-lr 0 needs --mode linear: an exponential sweep"),
    ({"--end-lr": "1e-8"}, "--end-lr (1e-08) must exceed --start-lr"),
    ({"--mode": "cosine"}, "argument --mode: invalid choice: 'cosine'"),
    ({"--val-split": "1.5"}, "--val-split: expected a number between 0 and 1"),
    ({"--val-split": "0.0001"}, "--val-split 0.0001 of 1797 rows leaves no rows on one "
     "side"),
    ({"--batch-size": "0"}, "--batch-size: expected a positive integer"),
    ({"--epochs": "100000000000"}, "--epochs 100000000000 makes a sweep of 5700000000000 "
     "steps (57 per epoch); range-test sweeps at most 100000 steps"),
    ({"--metric": "auc"}, "--metric must be one of the recorded columns accuracy, loss "
     "(val_* columns need --val-split). Received: --metric auc"),
    ({"--method": "best"}, "argument --method: invalid choice: 'best' (choose from "),
    ({"--custom-objects": "no_such_module"}, "--custom-objects: importing no_such_module "
     "failed: ModuleNotFoundError: No module named 'no_such_module'"),
]


@pytest.mark.parametrize("wrap", [lambda loss: [loss], lambda loss: {"logits": loss}],
                         ids=["list", "dict"])
def test_the_label_check_reads_a_single_output_loss_given_in_a_list_or_dict(wrap):
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(3, name="logits")(inputs))
    model.compile("sgd", wrap(keras.losses.SparseCategoricalCrossentropy(from_logits=True)))
    cli._check_class_labels(model, np.array([0, 1, 2]))
    with pytest.raises(cli.UsageError, match="labels \\(--y\\) run from 0 to 3, but the "
                       "model's 3 output units"):
        cli._check_class_labels(model, np.array([0, 3]))


def test_the_label_check_reads_the_shape_before_masking_an_ignored_class():
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(3)(inputs))
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True,
                                                                    ignore_class=-1))
    cli._check_class_labels(model, np.array([0, -1, 2]))
    with pytest.raises(cli.UsageError, match="the labels \\(--y\\) have shape \\(2, 2\\)"):
        cli._check_class_labels(model, np.array([[0, -1], [2, 1]]))


def test_range_test_bad_input(capsys, saved, tmp_path):
    for changes, fragment in BAD_RANGE_TESTS:
        assert_usage_error(capsys, fragment, *range_test_argv(saved, tmp_path / "out", **changes))
    assert not (tmp_path / "out").exists()


def test_range_test_checks_its_outputs_before_the_sweep(capsys, saved):
    assert_usage_error(capsys, f"--out: {saved / 'D' / 'range_test.csv'} is a folder",
                       *range_test_argv(saved, saved / "D"))


CUSTOM_LAYER = """
import keras

@keras.saving.register_keras_serializable(package="keras_clr_cli_tests")
class Twice(keras.layers.Layer):
    def call(self, x):
        return 2 * x
"""


def test_range_test_loads_custom_objects_from_a_module(capsys, saved, tmp_path, monkeypatch):
    module = tmp_path / "my_layers.py"
    module.write_text(CUSTOM_LAYER)
    namespace = {}
    exec(compile(CUSTOM_LAYER, str(module), "exec"), namespace)
    model = keras.Sequential([keras.Input((64,)), namespace["Twice"](), keras.layers.Dense(10)])
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.save(tmp_path / "custom.keras")
    # As in a fresh process: the class is not registered until the module runs.
    monkeypatch.delitem(keras.saving.get_custom_objects(), "keras_clr_cli_tests>Twice")
    argv = range_test_argv(saved, tmp_path / "out", **{"--model": tmp_path / "custom.keras"})
    err = assert_usage_error(capsys, "Could not locate class 'Twice'. Make sure custom classes",
                             *argv)
    assert err.rstrip().endswith("Pass the module that registers it with --custom-objects "
                                 "MODULE.") and "Full object config" not in err
    status, out, err = run(capsys, *argv, "--custom-objects", module)
    assert status == 0 and err == "" and out.startswith("base_lr=")


# ---------------------------------------------------------------------------
# Messages, unexpected errors, native stderr

def test_keras_messages_keep_what_is_wrong_on_one_line():
    layer = ValueError("Exception encountered when calling Sequential.call().\n\n\x1b[1mInput 0 "
                       "of layer 'dense' is incompatible with the layer: expected axis -1 of "
                       "input shape to have value 64\x1b[0m\n\nArguments received by "
                       "Sequential.call():\n  • inputs=tf.Tensor(shape=(None, 5))")
    assert cli._keras_message(layer) == ("Input 0 of layer 'dense' is incompatible with the "
                                         "layer: expected axis -1 of input shape to have value 64")
    op = RuntimeError('Graph execution error:\n\nDetected at node loss defined at (most recent '
                      'call last):\n  File "x.py", line 1, in <module>\n\nReceived a label value '
                      'of 7 which is outside the valid range of [0, 3).  Label values: 7 7\n\t '
                      '[[{{node loss}}]] [Op:__inference_step_595]')
    assert cli._keras_message(op) == ("Received a label value of 7 which is outside the valid "
                                      "range of [0, 3). Label values: 7 7")
    nested = TypeError("<class 'Sequential'> could not be deserialized properly.\n\nconfig={'a': "
                       "1}.\n\nException encountered: Could not locate class 'Twice'. Make sure "
                       "... Full object config: {'module': 'my_layers'}")
    assert cli._keras_message(nested) == "Could not locate class 'Twice'. Make sure ..."


def broken_command(error):
    def command(args):
        os.write(2, b"I0000 native log line\n")
        raise error

    return command


def test_an_unexpected_error_is_one_line_with_status_1(capfd, monkeypatch):
    monkeypatch.setitem(cli.COMMANDS, "demo", broken_command(RuntimeError("boom\n  at x")))
    monkeypatch.delenv(cli.DEBUG_VARIABLE, raising=False)
    assert cli.main(["demo"]) == 1
    assert capfd.readouterr().err == (
        "keras-clr: error: unexpected RuntimeError: boom at x (set KERAS_CLR_DEBUG=1 to see "
        "the traceback)\n"
    )
    monkeypatch.setenv(cli.DEBUG_VARIABLE, "1")
    with pytest.raises(RuntimeError, match="boom"):
        cli.main(["demo"])
    assert capfd.readouterr().err == "I0000 native log line\n"  # shown as it comes


def test_native_stderr_is_held_back_unless_an_import_fails(capfd, monkeypatch):
    monkeypatch.delenv(cli.DEBUG_VARIABLE, raising=False)
    monkeypatch.setitem(cli.COMMANDS, "demo", broken_command(cli.UsageError("bad")))
    assert cli.main(["demo"]) == 2
    assert capfd.readouterr().err == "keras-clr: error: bad\n"
    monkeypatch.setitem(cli.COMMANDS, "demo", broken_command(ImportError("no tensorflow")))
    assert cli.main(["demo"]) == 1
    assert capfd.readouterr().err.splitlines() == [
        "I0000 native log line",
        "keras-clr: error: unexpected ImportError: no tensorflow (set KERAS_CLR_DEBUG=1 to "
        "see the traceback)",
    ]
    monkeypatch.setitem(cli.COMMANDS, "demo", broken_command(KeyboardInterrupt()))
    assert cli.main(["demo"]) == 130
    assert capfd.readouterr().err == "keras-clr: error: interrupted\n"


# ---------------------------------------------------------------------------
# The installed command, from a shell

HELP_IMPORTS = textwrap.dedent("""
    import sys, time
    start = time.perf_counter()
    import keras_clr
    from keras_clr import cli
    for argv in (["--help"], ["demo", "-h"], ["plot-schedule", "-h"], ["range-test", "-h"]):
        try:
            cli.main(argv)
        except SystemExit as exit:
            assert exit.code == 0, argv
    heavy = {"keras", "tensorflow", "jax", "torch", "matplotlib", "pandas"} & set(sys.modules)
    assert "step_size_for" in dir(keras_clr) and "TYPE_CHECKING" not in dir(keras_clr)
    print("heavy:", sorted(heavy), file=sys.stderr)
""")


def test_help_imports_neither_keras_nor_tensorflow():
    shown = subprocess.run([sys.executable, "-c", HELP_IMPORTS], capture_output=True, text=True,
                           cwd=ROOT, timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert shown.stderr == "heavy: []\n"
    assert "range-test" in shown.stdout and "--custom-objects MODULE" in shown.stdout


def test_console_script_stderr_is_one_line_from_a_shell(saved, tmp_path):
    """Four commands in one shell: --help, bad data (no Keras), a bad model (Keras imported),
    a backend Keras cannot import."""
    script = textwrap.dedent(f"""
        run() {{ "{sys.executable}" -m keras_clr "$@" >"$out.out" 2>"$out.err"
                 echo $? >"$out.rc"; }}
        out={tmp_path}/help run --help
        out={tmp_path}/npy run range-test --model {saved}/model.keras --data {saved}/images.npy \\
            --out {tmp_path}/o
        out={tmp_path}/model run range-test --model {saved}/uncompiled.keras \\
            --data {saved}/digits.npz --x images --y labels --out {tmp_path}/o
        export KERAS_BACKEND=foo
        out={tmp_path}/backend run plot-schedule --one-cycle --max-lr 0.1 --total-steps 100 \\
            --out {tmp_path}/x.png
    """)
    env = {key: value for key, value in os.environ.items() if key != cli.DEBUG_VARIABLE}
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # as a user's shell: cli.py sets it
    subprocess.run(["bash", "-c", script], cwd=ROOT, env=env, timeout=180, check=True)

    def result(name):
        return tuple((tmp_path / f"{name}.{part}").read_text() for part in ("rc", "out", "err"))

    rc, out, err = result("help")
    assert rc == "0\n" and "usage: keras-clr" in out and err == ""
    for name, message in (
        ("npy", f"--data: {saved}/images.npy is a .npy file, which holds one array"),
        ("model", f"--model: {saved}/uncompiled.keras is not compiled"),
        ("backend", "KERAS_BACKEND=foo: Keras cannot run on it: "),
    ):
        rc, out, err = result(name)
        assert rc == "2\n" and out == ""
        assert err.startswith(f"keras-clr: error: {message}") and err.count("\n") == 1, err


def test_shallow_curve_warnings_become_one_line_each_and_others_pass_on(capsys):
    import warnings

    from keras_clr.bounds import ShallowCurveWarning

    with pytest.warns(UserWarning, match="unrelated"):
        with cli._warnings_as_lines(ShallowCurveWarning):
            for _ in range(2):  # plot() and suggest_bounds() read the same curve
                warnings.warn("The 'loss' curve fell only 9%\n(from 2.3)", ShallowCurveWarning,
                              stacklevel=1)
            warnings.warn("unrelated", UserWarning, stacklevel=1)
    expected = "keras-clr: warning: The 'loss' curve fell only 9% (from 2.3)\n"
    assert capsys.readouterr().err == expected
