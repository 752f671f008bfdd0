"""Per-step cost of each way to cycle the LR, as ratios to a constant LR.

    python benchmarks/overhead.py [--backends tensorflow,jax,torch] [--repeats 7] [--quick]

One process per backend; in it every variant trains the same model on the
same data, repetitions interleaved (A B C ... A B C ...), and each cell is the
median over repetitions of (time per step / constant-LR time per step), both
measured in the same repetition, with the range over repetitions in brackets.
Time per step is steady state: from the start of batch `steps // 10` to
train end, so compilation and once-per-fit set-up (the callback's retrace)
are excluded; the "fit" rows give whole-fit ratios (set-up included) for the
callback.
Variants: constant LR; `CyclicalLearningRate` in the optimizer; the
`CyclicLR` callback; the callback with momentum cycling; a naive callback
that evaluates the schedule with `keras.ops` and assigns it each batch (what
older Keras CLR code does); the range test's per-batch recording.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

MODELS = {
    # name: (input width, hidden widths, batch size, steps per timed fit)
    "tiny MLP, batch 8": (16, (32,), 8, 2000),
    "medium MLP, batch 256": (512, (1024, 1024), 256, 150),
}
QUICK_STEPS = 40
VARIANTS = ("constant", "schedule", "callback", "callback+momentum", "naive callback",
            "range test", "callback (fit)", "callback+momentum (fit)")


def worker(backend, repeats, quick):
    os.environ["KERAS_BACKEND"] = backend
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import numpy as np

    from keras_clr import CyclicalLearningRate, CyclicLR, RangeTestCallback

    class NaiveCyclicLR(keras.callbacks.Callback):
        """Evaluates the schedule as a tensor and assigns it before each batch."""

        def __init__(self, schedule):
            super().__init__()
            self.schedule = schedule

        def on_train_batch_begin(self, batch, logs=None):
            optimizer = self.model.optimizer
            optimizer.learning_rate.assign(self.schedule(optimizer.iterations))

    class StepTimer(keras.callbacks.Callback):
        """Seconds per step from batch `start` to train end (batch-begin hook only,
        so Keras keeps dispatching batch-end callbacks asynchronously)."""

        def __init__(self, start):
            super().__init__()
            self.start = start

        def on_train_batch_begin(self, batch, logs=None):
            if batch == self.start:
                self.began = time.perf_counter()

        def on_train_end(self, logs=None):
            steps = self.params["steps"] - self.start
            self.per_step = (time.perf_counter() - self.began) / steps

    rows = []
    for model_name, (width, hidden, batch_size, steps) in MODELS.items():
        if quick:  # smoke test: the tiny model only, a few steps
            if model_name != next(iter(MODELS)):
                continue
            steps = QUICK_STEPS
        rng = np.random.default_rng(0)
        x = rng.normal(size=(steps * batch_size, width)).astype("float32")
        y = rng.normal(size=(steps * batch_size, 1)).astype("float32")
        for steps_per_execution in (1, 32):
            schedule = CyclicalLearningRate(1e-4, 1e-3, max(2, steps // 4))

            def build(learning_rate, shape=(width, hidden, steps_per_execution)):
                return build_mlp(learning_rate, *shape)

            setups = {
                "constant": (build(1e-4), []),
                "schedule": (build(schedule), []),
                "callback": (build(1e-4), [CyclicLR(schedule)]),
                "callback+momentum": (build(1e-4), [CyclicLR(schedule, base_momentum=0.85,
                                                             max_momentum=0.95)]),
                "naive callback": (build(1e-4), [NaiveCyclicLR(schedule)]),
                "range test": (build(1e-4), [RangeTestCallback(1e-6, 1e-5, stop_factor=1e9)]),
            }
            times = {name: [] for name in setups}
            fit_times = {name: [] for name in setups}
            status = {}
            for name, (model, callbacks) in setups.items():  # warm-up: compile, refusals
                try:
                    model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0, shuffle=False,
                              callbacks=callbacks)
                except ValueError as error:
                    status[name] = "refused" if "steps_per_execution" in str(error) \
                        else f"error: {error}"
            runnable = [name for name in setups if name not in status]
            if "constant" not in runnable:
                continue
            for _ in range(repeats):
                for name in runnable:
                    model, callbacks = setups[name]
                    timer = StepTimer(steps_per_execution * max(1, steps // 10 //
                                                                steps_per_execution))
                    start = time.perf_counter()
                    model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0, shuffle=False,
                              callbacks=[*callbacks, timer])
                    fit_times[name].append(time.perf_counter() - start)
                    times[name].append(timer.per_step)

            ms_per_step = round(1000 * statistics.median(times["constant"]), 3)
            for name in setups:
                rows.append({"backend": backend, "model": model_name,
                             "steps_per_execution": steps_per_execution, "variant": name,
                             "ratio": median_ratio(times, status, name),
                             "constant_ms_per_step": ms_per_step})
            for name in ("callback", "callback+momentum"):
                rows.append({"backend": backend, "model": model_name,
                             "steps_per_execution": steps_per_execution,
                             "variant": f"{name} (fit)",
                             "ratio": median_ratio(fit_times, status, name),
                             "constant_ms_per_step": ms_per_step})
    versions = {"keras": keras.__version__, "backend": backend}
    if backend == "tensorflow":
        import tensorflow as tf
        versions["tensorflow"] = tf.__version__
    elif backend == "jax":
        import jax
        versions["jax"] = jax.__version__
    else:
        import torch
        versions["torch"] = torch.__version__
    print(json.dumps({"rows": rows, "versions": versions}))


def build_mlp(learning_rate, width, hidden, steps_per_execution):
    import keras

    keras.utils.set_random_seed(0)
    layers = [keras.layers.Dense(h, activation="relu") for h in hidden]
    model = keras.Sequential([keras.Input((width,)), *layers, keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(learning_rate, momentum=0.9), "mse",
                  steps_per_execution=steps_per_execution)
    return model


def median_ratio(samples, status, name):
    """Median over repetitions of a variant's time over the constant LR's, and their range."""
    if name in status:
        return status[name]
    ratios = [t / b for t, b in zip(samples[name], samples["constant"])]
    median = round(statistics.median(ratios), 3)
    return median if len(ratios) == 1 else f"{median} ({min(ratios):.2f}-{max(ratios):.2f})"


def table(rows):
    """One Markdown table per model: variants down, backend x spe across."""
    columns = sorted({(r["backend"], r["steps_per_execution"]) for r in rows})
    out = []
    for model_name in MODELS:
        selected = [r for r in rows if r["model"] == model_name]
        if not selected:
            continue
        cell = {(r["variant"], r["backend"], r["steps_per_execution"]): r for r in selected}
        header = ["variant"] + [f"{b}, spe={s}" for b, s in columns]
        title = (f"**{model_name}** (ratio to constant LR; median of repeats, their range "
                 "in brackets)")
        lines = [title, "",
                 "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for variant in VARIANTS:
            values = [str(cell.get((variant, b, s), {}).get("ratio", "n/a")) for b, s in columns]
            lines.append(f"| {variant} | " + " | ".join(values) + " |")
        base = [str(cell.get(("constant", b, s), {}).get("constant_ms_per_step", "n/a"))
                for b, s in columns]
        lines.append("| *constant, ms/step* | " + " | ".join(base) + " |")
        out.append("\n".join(lines))
    return "\n\n".join(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="tensorflow,jax,torch")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help=f"tiny model, {QUICK_STEPS} "
                        "steps a fit (smoke test; the ratios mean nothing)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args.worker, args.repeats, args.quick)
    rows, versions = [], []
    for backend in args.backends.split(","):
        command = [sys.executable, __file__, "--worker", backend, "--repeats", str(args.repeats)]
        result = subprocess.run(command + (["--quick"] if args.quick else []),
                                capture_output=True, text=True)
        if result.returncode != 0:
            print(f"{backend}: failed\n{result.stderr[-2000:]}", file=sys.stderr)
            return 1
        report = json.loads(result.stdout.strip().splitlines()[-1])
        rows += report["rows"]
        versions.append(report["versions"])
    print(table(rows))
    print(f"\n{os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, Python "
          f"{platform.python_version()}; " + "; ".join(
              ", ".join(f"{k} {v}" for k, v in sorted(v.items())) for v in versions))
    return 0


if __name__ == "__main__":
    sys.exit(main())
