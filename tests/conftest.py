import gc
import os
import re

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import matplotlib
import numpy as np
import pytest
from keras import ops

matplotlib.use("Agg")  # tests only, whatever their order: the package never picks a backend


def keras_at_least(*version):
    """Whether the installed Keras is at least `version`, e.g. `keras_at_least(3, 8)`.

    CI's floor job (.ci/floor) runs the suite under the oldest supported release.
    """
    installed = tuple(int(part) for part in re.findall(r"\d+", keras.version())[: len(version)])
    return installed >= version



@keras.saving.register_keras_serializable(package="keras_clr_tests")
def per_sample_output(y_true, y_pred):
    """A loss equal to the output: with input 1 its gradient is exactly 1."""
    return ops.squeeze(y_pred, axis=-1)


def probe_model(optimizer, **compile_kwargs):
    """One weight, constant gradient 1: plain SGD moves it by exactly -lr."""
    model = keras.Sequential(
        [keras.Input((1,)), keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros")]
    )
    model.compile(optimizer=optimizer, loss=per_sample_output, **compile_kwargs)
    return model


# The probe's float32 weight grows to a few units, so one step's delta is known
# to about ulp(weight) ~ 5e-7 absolute.
PROBE_TOLERANCE = dict(rtol=1e-5, atol=2e-6)


def probe_data(steps, batch_size=4):
    x = np.ones((steps * batch_size, 1), "float32")
    return x, np.zeros_like(x)


def sgd_momentum_deltas(lrs, momenta):
    """Keras SGD with constant gradient 1: v = m * v - lr; w += v."""
    velocity, deltas = 0.0, []
    for lr, momentum in zip(lrs, momenta):
        velocity = momentum * velocity - lr
        deltas.append(velocity)
    return np.array(deltas)


class WeightRecorder(keras.callbacks.Callback):
    """The probe's weight after every step, starting with the weight before."""

    def on_train_begin(self, logs=None):
        self.weights = [self._weight()]

    def on_train_batch_end(self, batch, logs=None):
        self.weights.append(self._weight())

    def _weight(self):
        return float(self.model.layers[0].kernel.numpy()[0, 0])

    @property
    def deltas(self):
        return np.diff(self.weights)

    def assert_learning_rates(self, expected):
        """With plain SGD on the probe, step t moved the weight by -lr_t."""
        np.testing.assert_allclose(-self.deltas, expected, **PROBE_TOLERANCE)


def pytest_runtest_setup(item):
    marker = item.get_closest_marker("backends")
    if marker is not None and keras.backend.backend() not in marker.args:
        pytest.skip(f"runs under the {' and '.join(marker.args)} backend only")


@pytest.fixture(autouse=True)
def _fresh_keras_session():
    # Fresh global state (layer names, graph) for each test. The garbage collection that
    # recent Keras releases add here walks every object alive (~0.6 s a test, half the
    # suite's time); the one after the test below walks only this test's.
    try:
        keras.utils.clear_session(free_memory=False)
    except TypeError:  # older Keras: no argument, and no garbage collection
        keras.utils.clear_session()
    yield
    # Keras on TensorFlow keeps each fitted model's traced graphs alive (clear_session does
    # not free them), so the heap grows by some 100k objects a test, and the interpreter's
    # automatic full collections, which walk all of it, took a third of the TensorFlow
    # suite's time. Collect this test's garbage now, then freeze the survivors out of later
    # collections: each one then walks only one test's objects. Anything frozen that dies
    # later (a module fixture's model) is not freed; the suite peaks near 1.5 GB.
    gc.collect()
    gc.freeze()
