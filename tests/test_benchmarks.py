"""Smoke runs of the benchmark scripts with tiny budgets, so they cannot rot.

Their numbers mean nothing at this size: the published tables come from full
runs (docs/benchmarks.md gives the commands).
"""

import importlib.util
import os
import pathlib
import subprocess
import sys

import pandas as pd
import pytest

BENCHMARKS = pathlib.Path(__file__).resolve().parent.parent / "benchmarks"
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}


def run(*argv, env=ENV):
    result = subprocess.run([sys.executable, *map(str, argv)], capture_output=True, text=True,
                            env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def benchmark(name):
    """A benchmark script as a module of this process (no second TensorFlow start-up)."""
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_main(capsys, name, *argv):
    assert benchmark(name).main([str(a) for a in argv]) == 0
    return capsys.readouterr().out


def test_overhead_smoke():
    out = run(BENCHMARKS / "overhead.py", "--quick", "--repeats", "1",
              "--backends", "tensorflow")
    assert "| callback+momentum |" in out and "tensorflow, spe=32" in out
    assert "| callback | " in out and "refused" in out


# Pinned to TensorFlow: at these tiny budgets, whether a range test finds bounds
# depends on the backend's numerics, and these tests check the scripts.
@pytest.mark.backends("tensorflow")
def test_time_to_accuracy_smoke(capsys, tmp_path):
    out = run_main(capsys, "time_to_accuracy", "--tasks", "digits", "--optimizers", "sgd",
                   "--seeds", "1", "--epochs", "1", "--out", tmp_path)
    assert "**digits, sgd**" in out and "Targets:" in out
    frame = pd.read_csv(tmp_path / "time_to_accuracy.csv")
    assert set(frame["policy"]) == {"fixed", "step decay", "triangular", "triangular2",
                                    "exp_range", "1cycle"}
    assert (tmp_path / "tta_digits_sgd.png").exists()


@pytest.mark.backends("tensorflow")
def test_suggestions_smoke(capsys, tmp_path):
    # One rule keeps it short (each rule adds training runs); the peers' rules are pure
    # functions, checked on a synthetic sweep below.
    out = run_main(capsys, "suggestions", "--quick", "--tasks", "moons_mlp", "--seeds", "1",
                   "--rules", "ours", "--out", tmp_path)
    for title in ("## Summary over all task-seeds", "## Targets", "### moons_mlp"):
        assert title in out
    assert "| ours | 1 |" in out
    assert set(pd.read_csv(tmp_path / "rules.csv")["rule"]) == {"ours"}
    for name in ("suggestions.md", "task_seeds.csv", "suggestions_moons_mlp.png"):
        assert (tmp_path / name).exists()
    assert list((tmp_path / "cache" / "moons_mlp" / "seed0").glob("sweep_*.csv"))


def test_suggestion_rules_on_a_synthetic_sweep():
    import numpy as np

    from keras_clr import RangeTestResult

    suggestions = benchmark("suggestions")
    lrs = np.geomspace(1e-7, 10.0, 100)
    loss = 2.3 - 2.0 / (1 + (1e-2 / lrs) ** 2) + 50 * lrs**2
    loss += np.random.default_rng(0).normal(0, 0.01, 100)
    accuracy = 1.0 - loss / 2.5
    history = pd.DataFrame({"step": range(100), "learning_rate": lrs, "loss": loss,
                            "accuracy": accuracy})
    result = RangeTestResult(history, "exponential", 1e-7, 10.0)
    clean = 2.3 - 2.0 / (1 + (1e-2 / lrs) ** 2) + 50 * lrs**2
    lowest = lrs[np.argmin(clean)]  # about 0.045
    for name, rule in suggestions.RULES.items():
        suggestion = rule.suggest(result)
        # Every rule picks a single LR on the falling part, below the curve's lowest point.
        assert 1e-3 < suggestion.lr < lowest, (name, suggestion)
        assert 0 < suggestion.base_lr < suggestion.max_lr <= 1.5 * lowest, (name, suggestion)
    ours = suggestions.RULES["ours"].suggest(result)
    assert lowest / 2 < ours.max_lr < 2 * lowest, "the default's peak is at the lowest loss"
