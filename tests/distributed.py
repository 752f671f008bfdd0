"""keras-clr under a distribution, in a fresh process (devices are set before import).

    python -m tests.distributed mirrored       # tf.distribute.MirroredStrategy, 2 logical CPUs
    python -m tests.distributed data_parallel  # JAX keras.distribution.DataParallel, 2 CPUs
    python -m tests.distributed multi_worker   # one MultiWorkerMirroredStrategy worker
                                               # (the caller sets TF_CONFIG)

Prints one JSON object on its last line, which `tests/test_distribution.py` checks:
for each route ("optimizer": the schedule in the optimizer; "callback": `CyclicLR`;
"momentum": `CyclicLR` cycling SGD's momentum) every local replica's probe weight
before and after each step, and the callback's history; for the single-process
scenarios also whether `lr_range_test` left every replica of every variable as it was.
"""

import json
import os
import sys

import numpy as np

STEPS, GLOBAL_BATCH = 12, 4
ROUTES = ("optimizer", "callback", "momentum")
MOMENTA = (0.8, 0.9)


def schedule():
    from keras_clr import CyclicalLearningRate

    return CyclicalLearningRate(1.0, 5.0, 4, mode="triangular2")


def probe(route):
    """The probe model of tests/conftest.py, with the optimizer and callback of `route`."""
    import keras

    from keras_clr import CyclicLR
    from tests.conftest import probe_model

    if route == "optimizer":
        return probe_model(keras.optimizers.SGD(schedule())), []
    if route == "callback":
        return probe_model(keras.optimizers.SGD(0.5)), [CyclicLR(schedule())]
    clr = CyclicLR(schedule(), base_momentum=MOMENTA[0], max_momentum=MOMENTA[1])
    return probe_model(keras.optimizers.SGD(0.5, momentum=MOMENTA[1])), [clr]


def recorder(replica_values):
    """tests/conftest.py's `WeightRecorder`, reading every local replica's probe weight."""
    from tests.conftest import WeightRecorder

    class ReplicaWeights(WeightRecorder):
        def _weight(self):
            return [float(v.ravel()[0]) for v in replica_values(self.model.layers[0].kernel)]

    return ReplicaWeights()


def run_routes(scope, replica_values, train):
    """Trains the probe once per route; `train(model, callbacks)` runs STEPS steps."""
    results = {}
    for route in ROUTES:
        with scope():
            model, callbacks = probe(route)
        weights = recorder(replica_values)
        train(model, [*callbacks, weights])
        history = callbacks[0].history if callbacks else None
        results[route] = {
            "weights": weights.weights,
            "history": None if history is None else history.to_dict("list"),
        }
    return results


def range_test_restores(scope, replica_values, fit_first):
    """Runs `lr_range_test` on a small classifier, after a short fit or, as a user
    starts, before any (`lr_range_test` then builds the optimizer, outside the
    scope); True if every replica of every variable is restored, and the
    optimizer variables it built are zero on both replicas."""
    import keras

    from keras_clr import lr_range_test

    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 4)).astype("float32")
    y = rng.integers(0, 3, 256)
    with scope():
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"),
                                  keras.layers.Dense(3, activation="softmax")])
        model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy",
                      metrics=["accuracy"])
    if fit_first:
        model.fit(x, y, batch_size=16, verbose=0)
    variables = [*model.variables, *model.optimizer.variables]
    before = [[np.array(r, copy=True) for r in replica_values(v)] for v in variables]
    result = lr_range_test(model, x, y, start_lr=1e-4, end_lr=1.0, mode="exponential",
                           num_steps=30, batch_size=16)
    after = [list(replica_values(v)) for v in variables]
    restored = all(
        len(a) == len(b) == 2 and all(np.array_equal(x, y) for x, y in zip(a, b))
        for a, b in zip(after, before)
    )
    known = {id(v) for v in variables}
    built = [v for v in model.optimizer.variables if id(v) not in known]  # Adam's moments
    restored &= fit_first != bool(built) and all(
        len(replicas) == 2 and not any(np.any(r) for r in replicas)
        for replicas in map(replica_values, built)
    )
    return {"restored": restored, "rows": len(result.history), "stop": result.stop_reason}


def fit_probe(model, callbacks):
    from tests.conftest import probe_data

    model.fit(*probe_data(STEPS, GLOBAL_BATCH), batch_size=GLOBAL_BATCH, shuffle=False,
              verbose=0, callbacks=callbacks)


def mirrored():
    os.environ["KERAS_BACKEND"] = "tensorflow"
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])

    def replica_values(variable):
        return [t.numpy() for t in variable.value.values]

    return {
        "replicas": strategy.num_replicas_in_sync,
        "routes": run_routes(strategy.scope, replica_values, fit_probe),
        "range_test": range_test_restores(strategy.scope, replica_values, fit_first=True),
        "range_test_first": range_test_restores(strategy.scope, replica_values, fit_first=False),
    }


def data_parallel():
    os.environ["KERAS_BACKEND"] = "jax"
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
    import contextlib

    import jax
    import keras

    distribution = keras.distribution.DataParallel(devices=jax.devices("cpu"))
    keras.distribution.set_distribution(distribution)

    def replica_values(variable):
        return [np.asarray(shard.data) for shard in variable.value.addressable_shards]

    return {
        "replicas": len(distribution.device_mesh.devices.ravel()),
        "routes": run_routes(contextlib.nullcontext, replica_values, fit_probe),
        "range_test": range_test_restores(contextlib.nullcontext, replica_values, fit_first=True),
        "range_test_first": range_test_restores(contextlib.nullcontext, replica_values,
                                                fit_first=False),
    }


def multi_worker():
    """One worker; Keras 3.15's `fit` fails under this strategy (keras-team/keras#20585),
    so a custom loop trains, calling the callbacks' hooks as `fit` would."""
    os.environ["KERAS_BACKEND"] = "tensorflow"
    import keras
    import tensorflow as tf

    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    local_batch = GLOBAL_BATCH // strategy.num_replicas_in_sync

    def train(model, callbacks):
        @tf.function
        def step():
            def replica_step():
                with tf.GradientTape() as tape:
                    # Per-sample outputs, summed and divided by the global batch.
                    loss = tf.reduce_sum(model(tf.ones((local_batch, 1)))) / GLOBAL_BATCH
                variables = model.trainable_variables
                model.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))

            strategy.run(replica_step)

        hooks = keras.callbacks.CallbackList(callbacks, model=model)
        hooks.on_train_begin()
        hooks.on_epoch_begin(0)
        for batch in range(STEPS):
            hooks.on_train_batch_begin(batch)
            step()
            hooks.on_train_batch_end(batch, {})
        hooks.on_epoch_end(0, {})
        hooks.on_train_end()

    def replica_values(variable):
        return [t.numpy() for t in strategy.experimental_local_results(variable.value)]

    return {
        "replicas": strategy.num_replicas_in_sync,
        "routes": run_routes(strategy.scope, replica_values, train),
    }


SCENARIOS = {"mirrored": mirrored, "data_parallel": data_parallel, "multi_worker": multi_worker}

if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    print(json.dumps(SCENARIOS[sys.argv[1]]()))
