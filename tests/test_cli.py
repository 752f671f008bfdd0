import hashlib
import os
import subprocess
import sys

import keras
import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_digits

from keras_clr import cli, demo


def run(capsys, *argv):
    status = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def assert_usage_error(capsys, fragment, *argv):
    status, out, err = run(capsys, *argv)
    assert status == 2
    assert err.count("\n") == 1 and err.startswith("keras-clr: error: "), err
    assert fragment in err
    assert "Traceback" not in err + out


# ---------------------------------------------------------------------------
# demo

def test_demo_writes_table_plots_and_csvs(capsys, tmp_path, monkeypatch):
    tiny = demo.Budget(epochs=2, half_cycle_epochs=1, fixed_grid=(0.03, 0.1), range_test_epochs=2)
    monkeypatch.setattr(demo, "QUICK", tiny)
    status, out, _ = run(capsys, "demo", "--quick", "--out", tmp_path, "--seed", 1)
    assert status == 0
    assert "suggested base_lr=" in out and "[4/4]" in out
    for policy in ("| fixed |", "| triangular2 |", "| 1cycle |"):
        assert policy in out
    for name in ("range_test.png", "schedules.png", "accuracy.png", "curves.csv",
                 "range_test.csv", "summary.csv"):
        assert (tmp_path / name).stat().st_size > 0
    curves = pd.read_csv(tmp_path / "curves.csv")
    assert set(curves["policy"]) == {"fixed", "triangular2", "1cycle"}
    assert len(curves) == 3 * tiny.epochs


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

@pytest.mark.parametrize(
    "argv",
    [
        ["--mode", "triangular2", "--base-lr", "0.001", "--max-lr", "0.006", "--step-size",
         "200", "--steps", "1200"],
        ["--mode", "exp_range", "--gamma", "0.999", "--base-lr", "0.001", "--max-lr", "0.006",
         "--step-size", "200", "--step-size-down", "100"],
        ["--one-cycle", "--max-lr", "0.1", "--total-steps", "500", "--three-phase",
         "--base-momentum", "0.85", "--max-momentum", "0.95"],
    ],
)
def test_plot_schedule_writes_a_png(capsys, tmp_path, argv):
    out = tmp_path / "sub" / "schedule.png"
    status, stdout, _ = run(capsys, "plot-schedule", *argv, "--out", out)
    assert status == 0 and f"wrote {out}" in stdout
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["--base-lr", "0.1", "--max-lr", "0.5", "--step-size", "0"], "--step-size: expected a "
         "positive integer, got '0'"),
        (["--base-lr", "x", "--max-lr", "0.5", "--step-size", "5"], "--base-lr: expected"),
        (["--base-lr", "0.1", "--max-lr", "inf", "--step-size", "5"], "--max-lr: expected"),
        (["--base-lr", "0.1", "--max-lr", "0.5", "--step-size", "5", "--mode", "cosine"],
         "--mode must be one of 'triangular'"),
        (["--base-lr", "0.5", "--max-lr", "0.1", "--step-size", "5"],
         "--max-lr must be greater than --base-lr"),
        (["--max-lr", "0.5", "--step-size", "5"], "needs --base-lr and --step-size"),
        (["--one-cycle", "--max-lr", "0.5"], "--one-cycle needs --total-steps"),
        (["--one-cycle", "--max-lr", "0.5", "--total-steps", "100", "--anneal-strategy", "x"],
         "--anneal-strategy must be one of"),
        (["--one-cycle", "--max-lr", "0.5", "--total-steps", "100", "--base-momentum", "0.8"],
         "both --base-momentum and --max-momentum"),
    ],
)
def test_plot_schedule_bad_input(capsys, tmp_path, argv, fragment):
    assert_usage_error(capsys, fragment, "plot-schedule", *argv, "--out", tmp_path / "a.png")


def test_missing_required_option_and_unknown_command(capsys, tmp_path):
    assert_usage_error(capsys, "--out", "plot-schedule", "--max-lr", "0.1")
    assert_usage_error(capsys, "invalid choice: 'train'", "train")


# ---------------------------------------------------------------------------
# range-test

@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    folder = tmp_path_factory.mktemp("range")
    x, y = load_digits(return_X_y=True)
    np.savez(folder / "digits.npz", images=(x / 16).astype("float32"), labels=y)
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((64,)), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(10)]
    )
    (folder / "notes.txt").write_text("not an npz archive")
    model.save(folder / "uncompiled.keras")
    model.compile(keras.optimizers.SGD(0.01, momentum=0.9),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    model.save(folder / "model.keras")
    return folder


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_range_test_prints_bounds_and_leaves_the_model_file_alone(capsys, saved, tmp_path):
    before = digest(saved / "model.keras")
    status, out, err = run(
        capsys, "range-test", "--model", saved / "model.keras", "--data", saved / "digits.npz",
        "--x", "images", "--y", "labels", "--start-lr", "1e-4", "--end-lr", "10",
        "--epochs", "5", "--val-split", "0.2", "--out", tmp_path,
    )
    assert status == 0, err
    first = out.splitlines()[0]
    base, top = (float(part.split("=")[1]) for part in first.split()[:2])
    assert first.startswith("base_lr=") and 1e-4 < base < top < 10
    history = pd.read_csv(tmp_path / "range_test.csv")
    assert {"learning_rate", "loss", "accuracy", "val_accuracy"} <= set(history.columns)
    assert (tmp_path / "range_test.png").stat().st_size > 0
    assert digest(saved / "model.keras") == before


@pytest.mark.parametrize(
    "changes, fragment",
    [
        ({"--model": "missing.keras"}, "--model: no such file: "),
        ({"--data": "missing.npz"}, "--data: no such file: "),
        ({"--x": "pixels"}, "has no key 'pixels'; its keys are images, labels"),
        ({"--model": "uncompiled.keras"}, "is not compiled"),
        ({"--data": "notes.txt"}, "--data: cannot read"),
        ({"--model": "digits.npz"}, "--model: cannot load"),
        ({"--start-lr": "-1"}, "--start-lr: expected a number > 0, got '-1'"),
        ({"--end-lr": "1e-6"}, "--end-lr (1e-06) must exceed --start-lr"),
        ({"--mode": "cosine"}, "--mode must be exponential or linear, got 'cosine'"),
        ({"--val-split": "1.5"}, "--val-split: expected a number between 0 and 1"),
        ({"--batch-size": "0"}, "--batch-size: expected a positive integer"),
    ],
)
def test_range_test_bad_input(capsys, saved, tmp_path, changes, fragment):
    options = {"--model": "model.keras", "--data": "digits.npz", "--x": "images",
               "--y": "labels", **changes}
    argv = ["range-test"]
    for option, value in options.items():
        is_file = option in ("--model", "--data")
        argv += [option, saved / value if is_file else value]
    assert_usage_error(capsys, fragment, *argv, "--out", tmp_path)


# ---------------------------------------------------------------------------
# The installed command

def test_console_script_help_and_bad_input_from_a_shell(tmp_path):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    command = [sys.executable, "-m", "keras_clr"]
    for sub in ("demo", "plot-schedule", "range-test"):
        shown = subprocess.run([*command, sub, "--help"], capture_output=True, text=True,
                               env=env, timeout=120)
        assert shown.returncode == 0 and "example" in shown.stdout
    bad = subprocess.run([*command, "range-test", "--model", tmp_path / "no.keras", "--data",
                          tmp_path / "no.npz", "--out", tmp_path], capture_output=True,
                         text=True, env=env, timeout=120)
    assert bad.returncode == 2
    assert "Traceback" not in bad.stderr
    assert bad.stderr.strip().splitlines()[-1] == (
        f"keras-clr: error: --model: no such file: {tmp_path / 'no.keras'}"
    )
