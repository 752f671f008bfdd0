"""Smoke runs of the benchmark scripts with tiny budgets, so they cannot rot.

Their numbers mean nothing at this size: the published tables come from full
runs (docs/benchmarks.md gives the commands).
"""

import os
import pathlib
import subprocess
import sys

import pandas as pd

BENCHMARKS = pathlib.Path(__file__).resolve().parent.parent / "benchmarks"
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}


def run(*argv, env=ENV):
    result = subprocess.run([sys.executable, *map(str, argv)], capture_output=True, text=True,
                            env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_overhead_smoke():
    out = run(BENCHMARKS / "overhead.py", "--quick", "--repeats", "1",
              "--backends", "tensorflow")
    assert "| callback+momentum |" in out and "tensorflow, spe=32" in out
    assert "| callback | " in out and "refused" in out


def test_time_to_accuracy_smoke(tmp_path):
    # Pinned to TensorFlow: at this tiny budget, whether the range test finds
    # bounds depends on the backend's numerics, and this test checks the script.
    out = run(BENCHMARKS / "time_to_accuracy.py", "--tasks", "mnist1d,digits", "--optimizers",
              "sgd", "--seeds", "1", "--epochs", "1", "--out", tmp_path,
              env={**ENV, "KERAS_BACKEND": "tensorflow"})
    assert "**mnist1d, sgd**" in out and "Targets:" in out
    frame = pd.read_csv(tmp_path / "time_to_accuracy.csv")
    assert set(frame["policy"]) == {"fixed", "step decay", "triangular", "triangular2",
                                    "exp_range", "1cycle"}
    assert (tmp_path / "tta_mnist1d_sgd.png").exists()
