"""`OneCycleLR` (1cycle sized by the fit itself) and `fit_one_cycle` (range test -> 1cycle)."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from sklearn.datasets import load_digits

from keras_clr import OneCycle, OneCycleLR, fit_one_cycle, lr_range_test
from tests.conftest import (
    PROBE_TOLERANCE,
    WeightRecorder,
    keras_at_least,
    probe_data,
    probe_model,
    sgd_momentum_deltas,
)


def fit(model, steps, callbacks, batch_size=4, **kwargs):
    recorder = WeightRecorder()
    model.fit(*probe_data(steps, batch_size), batch_size=batch_size, shuffle=False, verbose=0,
              callbacks=[*callbacks, recorder], **kwargs)
    return recorder


def test_the_cycle_spans_exactly_this_fit_from_its_first_step():
    model = probe_model(keras.optimizers.SGD(0.01))
    fit(model, 5, [])  # trained before: the optimizer is at step 5
    callback = OneCycleLR(max_lr=1.0, cycle_momentum=False)
    recorder = fit(model, 6, [callback], epochs=3)
    expected = OneCycle(1.0, total_steps=18).values(np.arange(18))
    recorder.assert_learning_rates(expected)
    assert callback.history["step"].tolist() == list(range(5, 23))
    np.testing.assert_allclose(callback.history["learning_rate"], expected)


def test_gradient_accumulation_counts_updates():
    model = probe_model(keras.optimizers.SGD(0.01, gradient_accumulation_steps=2))
    callback = OneCycleLR(max_lr=1.0, cycle_momentum=False)
    recorder = fit(model, 6, [callback], epochs=2)  # 12 batches, 6 updates
    applied = -recorder.deltas[1::2]
    np.testing.assert_allclose(applied, OneCycle(1.0, 6).values(np.arange(6)), **PROBE_TOLERANCE)


@pytest.mark.backends("tensorflow", "jax")  # Keras' torch backend refuses steps_per_execution > 1
def test_steps_per_execution_counts_every_step():
    model = probe_model(keras.optimizers.SGD(0.01), steps_per_execution=3)
    recorder = fit(model, 6, [OneCycleLR(max_lr=1.0, cycle_momentum=False)], epochs=2)
    lrs = OneCycle(1.0, 12).values(np.arange(12))
    np.testing.assert_allclose(-recorder.deltas, lrs.reshape(4, 3).sum(axis=1),
                               **PROBE_TOLERANCE)


def test_momentum_is_cycled_where_the_optimizer_has_it():
    model = probe_model(keras.optimizers.SGD(0.01, momentum=0.9))
    callback = OneCycleLR(max_lr=0.5)
    recorder = fit(model, 5, [callback], epochs=2)
    schedule = OneCycle(0.5, 10)
    momenta = schedule.momentum_values(np.arange(10), 0.85, 0.95)
    np.testing.assert_allclose(callback.history["momentum"], momenta)
    np.testing.assert_allclose(
        recorder.deltas, sgd_momentum_deltas(schedule.values(np.arange(10)), momenta),
        **PROBE_TOLERANCE)
    plain = probe_model(keras.optimizers.SGD(0.01))  # momentum=0: plain SGD stays plain
    callback = OneCycleLR(max_lr=0.5)
    fit(plain, 5, [callback], epochs=2)
    assert "momentum" not in callback.history and plain.optimizer.momentum == 0.0


def test_verbose_prints_each_epochs_last_learning_rate_under_the_callbacks_name(capsys):
    model = probe_model(keras.optimizers.SGD(0.01))
    fit(model, 5, [OneCycleLR(max_lr=1.0, cycle_momentum=False, verbose=1)], epochs=2)
    lines = [line for line in capsys.readouterr().out.splitlines() if line]
    expected = OneCycle(1.0, 10).values([4, 9])
    assert lines == [f"Epoch {e + 1}: OneCycleLR learning_rate={lr:.6g}"
                     for e, lr in enumerate(expected)]


def test_data_of_unknown_length_needs_steps_per_epoch():
    x, y = probe_data(6)
    data = tf.data.Dataset.from_tensor_slices((x, y)).filter(lambda a, b: True).batch(4)
    with pytest.raises(ValueError, match="pass `steps_per_epoch`"):
        probe_model(keras.optimizers.SGD(0.01)).fit(data, epochs=2, verbose=0,
                                                    callbacks=[OneCycleLR(1.0)])


def test_resumed_run_continues_the_same_cycle(tmp_path):
    class CrashAt(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            if int(keras.ops.convert_to_numpy(self.model.optimizer.iterations)) == 9:
                raise RuntimeError("simulated crash")

    backup = keras.callbacks.BackupAndRestore(str(tmp_path / "backup"))
    model = probe_model(keras.optimizers.SGD(0.01))
    with pytest.raises(RuntimeError):
        fit(model, 4, [OneCycleLR(1.0, cycle_momentum=False), backup, CrashAt()], epochs=4)
    model = probe_model(keras.optimizers.SGD(0.01))  # a new process: state from the backup
    recorder = fit(model, 4, [OneCycleLR(1.0, cycle_momentum=False), backup], epochs=4)
    if keras_at_least(3, 1):
        recorder.assert_learning_rates(OneCycle(1.0, 16).values(np.arange(8, 16)))
    else:  # Keras 3.0 restores the step but not the epoch: a whole new fit, a new cycle
        recorder.assert_learning_rates(OneCycle(1.0, 16).values(np.arange(16)))


@pytest.mark.parametrize("kwargs, fragment", [
    (dict(max_lr=0), "max_lr=0"),
    (dict(max_lr=0.1, pct_start=1.5), "pct_start=1.5"),
    (dict(max_lr=0.1, cycle_momentum="yes"), "cycle_momentum='yes'"),
    (dict(max_lr=0.1, cycle_momentum=1.0), "True, False or 'auto'. Received: cycle_momentum=1.0"),
    (dict(max_lr=0.1, cycle_momentum=True, base_momentum=None, max_momentum=None),
     "give both. Received: base_momentum=None, max_momentum=None"),
    (dict(max_lr=0.1, verbose="loud"), "verbose='loud'"),
    (dict(max_lr=0.1, base_momentum=0.99), "base_momentum=0.99, max_momentum=0.95"),
])
def test_bad_arguments(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        OneCycleLR(**kwargs)


def test_flags_as_numpy_and_keras_write_them_are_accepted():
    assert OneCycleLR(0.1, cycle_momentum=np.True_).cycle_momentum is True
    assert OneCycleLR(0.1, verbose=2).verbose == 2  # any int, as Keras' own callbacks take


def test_a_fit_too_short_for_the_phases_is_named_as_such():
    model = probe_model(keras.optimizers.SGD(0.3))
    with pytest.raises(ValueError, match="spans the 2 updates of this fit, too few for its "
                       "phases: train longer.*total_steps=2"):
        fit(model, 2, [OneCycleLR(1.0, cycle_momentum=False)], epochs=1)


@pytest.fixture(scope="module")
def digits():
    x, y = load_digits(return_X_y=True)
    return (x / 16.0).astype("float32"), y.astype("int32")


def mlp(seed=0):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(32, activation="relu"),
                              keras.layers.Dense(10)])
    model.compile(keras.optimizers.SGD(0.01, momentum=0.9),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return model


def test_fit_one_cycle_finds_max_lr_then_trains_one_cycle(digits):
    x, y = digits
    model = mlp()
    history = fit_one_cycle(model, x[:1200], y[:1200], epochs=3, batch_size=64, verbose=0,
                            validation_data=(x[1200:], y[1200:]), range_test=dict(seed=0))
    found = history.range_test.suggest_bounds()
    steps = 3 * int(np.ceil(1200 / 64))
    expected = OneCycle(found.max_lr, steps, div_factor=found.max_lr / found.base_lr)
    np.testing.assert_allclose(history.history["learning_rate"],
                               expected.values([steps // 3 - 1, 2 * steps // 3 - 1, steps - 1]),
                               rtol=1e-5)
    assert history.history["val_accuracy"][-1] > 0.5, "trained (the quality is benchmarked)"
    evaluated = history.range_test.history.dropna(subset=["val_accuracy"])["step"]
    assert evaluated.tolist()[:3] == [0, 15, 30], "the range test read validation_data"
    assert int(model.optimizer.iterations.numpy()) == steps, "the range test left no trace"


def test_fit_one_cycle_with_max_lr_runs_no_range_test(digits):
    x, y = digits
    history = fit_one_cycle(mlp(), x, y, epochs=1, max_lr=0.1, batch_size=128, verbose=0)
    assert history.range_test is None
    assert history.history["learning_rate"] == pytest.approx([0.1 / 25 / 1e4], rel=1e-4)
    with pytest.raises(ValueError, match=r"Received: max_lr=0.1, range_test=\{'seed': 0\}"):
        fit_one_cycle(mlp(), x, y, epochs=1, max_lr=0.1, range_test={"seed": 0})


def test_fit_one_cycle_shapes_its_cycle_with_one_cycle_arguments(digits):
    x, y = digits
    steps = 2 * int(np.ceil(1200 / 64))
    ends = [steps // 2 - 1, steps - 1]  # the LR logged at each epoch's end
    history = fit_one_cycle(mlp(), x[:1200], y[:1200], epochs=2, batch_size=64, verbose=0,
                            range_test=dict(seed=0), one_cycle={"pct_start": 0.1})
    found = history.range_test.suggest_bounds()  # the suggested base stays with a warm-up
    expected = OneCycle(found.max_lr, steps, pct_start=0.1,
                        div_factor=found.max_lr / found.base_lr)
    np.testing.assert_allclose(history.history["learning_rate"], expected.values(ends),
                               rtol=1e-5)
    model, shape = mlp(), {"div_factor": 5.0, "final_div_factor": 10.0, "cycle_momentum": False}
    history = fit_one_cycle(model, x[:1200], y[:1200], epochs=2, batch_size=64, verbose=0,
                            range_test=dict(seed=0), one_cycle=shape)
    found = history.range_test.suggest_bounds()  # its max_lr, with the div_factor given
    expected = OneCycle(found.max_lr, steps, div_factor=5.0, final_div_factor=10.0)
    np.testing.assert_allclose(history.history["learning_rate"], expected.values(ends),
                               rtol=1e-5)
    assert float(model.optimizer.momentum) == 0.9, "cycle_momentum=False reached the callback"
    assert shape == {"div_factor": 5.0, "final_div_factor": 10.0, "cycle_momentum": False}
    history = fit_one_cycle(mlp(), x[:256], y[:256], epochs=1, max_lr=0.1, batch_size=64,
                            verbose=0, one_cycle={"div_factor": 5.0, "final_div_factor": 10.0})
    assert history.history["learning_rate"] == pytest.approx([0.1 / 5 / 10], rel=1e-4)


@pytest.mark.parametrize("kwargs, error, fragment", [
    (dict(one_cycle="pct_start=0.1"), TypeError, "must be a dict"),
    (dict(one_cycle={"max_lr": 0.1}), ValueError, "pass `max_lr` to `fit_one_cycle` itself"),
    (dict(one_cycle={"pct": 0.1, 1: 2}), TypeError, r"does not take \[1, 'pct'\]"),
    (dict(one_cycle={"verbose": 1}), TypeError, r"does not take \['verbose'\]"),
    (dict(one_cycle={"pct_start": "0.1"}), TypeError, "pct_start='0.1'"),
    (dict(one_cycle={"pct_start": 1.5}), ValueError, "pct_start=1.5"),
    (dict(epochs=0), ValueError, "Received: epochs=0"),
    (dict(epochs=2.5), ValueError, "Received: epochs=2.5"),
    (dict(range_test=[("num_steps", 10)]), TypeError, "`range_test` must be a dict"),
])
def test_fit_one_cycle_refuses_bad_arguments_before_any_training(
        digits, monkeypatch, kwargs, error, fragment):
    import keras_clr.fitting

    def no_range_test(*args, **kwargs):
        raise AssertionError("the range test ran before the arguments were checked")

    monkeypatch.setattr(keras_clr.fitting, "lr_range_test", no_range_test)
    x, y = digits
    model = mlp()
    weights = [w.copy() for w in model.get_weights()]
    with pytest.raises(error, match=fragment):
        fit_one_cycle(model, x, y, batch_size=64, **{"epochs": 1, **kwargs})
    for before, after in zip(weights, model.get_weights()):
        np.testing.assert_array_equal(before, after)
    assert int(keras.ops.convert_to_numpy(model.optimizer.iterations)) == 0


def test_fit_one_cycle_sweeps_only_the_rows_its_fit_trains_on(digits, monkeypatch):
    import keras_clr.fitting

    seen = {}

    def recording_range_test(model, x, y, **kwargs):
        seen.update(kwargs)
        return lr_range_test(model, x, y, **kwargs)

    monkeypatch.setattr(keras_clr.fitting, "lr_range_test", recording_range_test)
    x, y = digits
    fit_one_cycle(mlp(), x[:1200], y[:1200], epochs=1, batch_size=64, verbose=0,
                  validation_split=0.25, range_test=dict(seed=0, num_steps=300))
    assert seen["validation_split"] == 0.25 and seen["batch_size"] == 64


@pytest.mark.parametrize("verbose", [0, 2])
def test_fit_one_cycle_range_test_is_as_verbose_as_the_fit(digits, capsys, verbose):
    x, y = digits
    fit_one_cycle(mlp(), x[:256], y[:256], epochs=1, batch_size=64, verbose=verbose,
                  range_test=dict(seed=0, num_steps=100))
    printed = capsys.readouterr().out
    assert ("Suggested base_lr=" in printed) == bool(verbose), printed
    if not verbose:
        assert printed == ""
