"""The lifecycle of an installed schedule, in the workflows users create.

An interrupted `fit` (Ctrl-C in a notebook, an error in any callback), other
callbacks that set or log the LR, fits that run no step, data of unknown
length, custom loops and old scripts' NumPy scale functions. Each runs on the
probe model (one weight, gradient 1: plain SGD moves it by exactly -lr).
"""

import contextlib
import functools

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from keras_clr import CyclicalLearningRate, CyclicLR, RangeTestCallback, lr_range_test
from keras_clr.plotting import describe
from tests.conftest import (
    PROBE_TOLERANCE,
    WeightRecorder,
    keras_at_least,
    probe_data,
    probe_model,
    sgd_momentum_deltas,
)


class InterruptAt(keras.callbacks.Callback):
    """Raises `error` after the update that brings the step to `step` (mid-epoch)."""

    def __init__(self, step, error=KeyboardInterrupt):
        super().__init__()
        self.step, self.error = step, error

    def on_train_batch_end(self, batch, logs=None):
        if int(keras.ops.convert_to_numpy(self.model.optimizer.iterations)) == self.step:
            raise self.error()


def fit(model, steps, callbacks=(), batch_size=4, **kwargs):
    recorder = WeightRecorder()
    history = model.fit(*probe_data(steps, batch_size), batch_size=batch_size, shuffle=False,
                        verbose=0, callbacks=[*callbacks, recorder], **kwargs)
    return recorder, history


def interrupted(model, callback, step=5):
    """Fits 4 epochs of 3 steps with `callback`, interrupted mid-epoch 2."""
    with pytest.raises(KeyboardInterrupt):
        fit(model, 3, [callback, InterruptAt(step)], epochs=4)


SCHEDULE = CyclicalLearningRate(0.1, 0.9, 4, mode="triangular2")


def test_after_an_interrupted_fit_a_plain_fit_uses_the_optimizers_own_lr_and_momentum():
    model = probe_model(keras.optimizers.SGD(0.3, momentum=0.9))
    interrupted(model, CyclicLR(SCHEDULE, base_momentum=0.8, max_momentum=0.95))
    # As if that fit had ended normally: the values of its last update (step 4).
    optimizer = model.optimizer
    lr, momentum = SCHEDULE.values(4), SCHEDULE.momentum_values(4, 0.8, 0.95)
    assert float(optimizer.learning_rate.numpy()) == pytest.approx(lr)
    velocity = model.optimizer.variables[-1].numpy().item()
    recorder, history = fit(model, 4)
    expected, v = [], velocity
    for _ in range(4):
        v = momentum * v - lr
        expected.append(v)
    np.testing.assert_allclose(recorder.deltas, expected, **PROBE_TOLERANCE)
    assert type(optimizer.momentum) is float and optimizer.momentum == pytest.approx(momentum)
    assert "learning_rate" not in history.history
    assert not {"train_step", "make_train_function"} & set(vars(model))


def test_after_an_interrupted_fit_the_next_cyclic_fit_continues_the_cycle():
    model = probe_model(keras.optimizers.SGD(0.3))
    interrupted(model, CyclicLR(SCHEDULE))
    clr = CyclicLR(SCHEDULE)
    recorder, _ = fit(model, 6, [clr])
    recorder.assert_learning_rates(SCHEDULE.values(np.arange(5, 11)))
    assert clr.history["step"].tolist() == list(range(5, 11))


def test_after_an_interrupted_fit_the_range_test_measures_and_restores_the_model():
    model = probe_model(keras.optimizers.SGD(0.3, momentum=0.9))
    interrupted(model, CyclicLR(SCHEDULE, base_momentum=0.8, max_momentum=0.95))
    before = [v.numpy().copy() for v in [*model.variables, *model.optimizer.variables]]
    result = lr_range_test(model, *probe_data(10), start_lr=0.1, end_lr=1.0, num_steps=10,
                           batch_size=4, shuffle=False)
    assert result.stop_reason == "finished"
    after = [v.numpy() for v in [*model.variables, *model.optimizer.variables]]
    for old, new in zip(before, after):
        np.testing.assert_array_equal(old, new)
    assert type(model.optimizer.momentum) is float


def test_an_interrupted_users_range_test_callback_leaves_plain_training_behind():
    model = probe_model(keras.optimizers.SGD(0.3))
    sweep = RangeTestCallback(start_lr=0.1, end_lr=1.0, num_steps=12)
    interrupted(model, sweep)
    assert len(sweep.history) == 5
    assert float(model.optimizer.learning_rate.numpy()) == pytest.approx(
        sweep.history["learning_rate"].iloc[-1])
    recorder, _ = fit(model, 3)
    recorder.assert_learning_rates([sweep.history["learning_rate"].iloc[-1]] * 3)
    sweep.remove_sweep()  # still safe to call


def test_on_train_end_is_safe_when_fit_failed_before_train_begin():
    clr = CyclicLR(SCHEDULE)
    model = probe_model(keras.optimizers.SGD(0.3))
    with pytest.raises(Exception):  # noqa: B017 (the backends raise different errors)
        model.fit("not data", callbacks=[clr], verbose=0)
    clr.on_train_end()
    RangeTestCallback(0.1, 1.0).remove_sweep()
    assert "_keras_clr_installation" not in vars(model) and "train_step" not in vars(model)
    assert clr.history.empty
    recorder, _ = fit(model, 3)  # plain training, with the optimizer's own LR
    recorder.assert_learning_rates([0.3] * 3)


@pytest.mark.backends("tensorflow", "jax")  # torch sets a plain momentum: no LiveFloat
def test_an_installation_that_fails_half_way_leaves_the_model_as_it_was(monkeypatch):
    import keras_clr._in_graph

    def failing(*args):
        raise RuntimeError("cannot make the momentum")

    monkeypatch.setattr(keras_clr._in_graph, "LiveFloat", failing)  # after the step is shadowed
    monkeypatch.setattr(keras_clr._in_graph, "StepValue", failing)
    model = probe_model(keras.optimizers.SGD(0.3, momentum=0.9))
    clr = CyclicLR(SCHEDULE, base_momentum=0.8, max_momentum=0.95)
    with pytest.raises(RuntimeError, match="cannot make the momentum"):
        fit(model, 3, [clr])
    assert not {"train_step", "make_train_function"} & set(vars(model))
    assert type(model.optimizer.momentum) is float and model.optimizer.momentum == 0.9
    monkeypatch.undo()
    recorder, _ = fit(model, 3, epochs=1)
    np.testing.assert_allclose(recorder.deltas, sgd_momentum_deltas([0.3] * 3, [0.9] * 3),
                               **PROBE_TOLERANCE)


def test_an_error_in_another_callback_is_recovered_from_like_ctrl_c():
    model = probe_model(keras.optimizers.SGD(0.3))
    with pytest.raises(RuntimeError):
        fit(model, 3, [CyclicLR(SCHEDULE), InterruptAt(2, RuntimeError)], epochs=2)
    x, y = probe_data(2)
    model.train_on_batch(x[:4], y[:4])
    model.train_on_batch(x[4:], y[4:])
    assert float(model.layers[0].kernel.numpy()[0, 0]) == pytest.approx(
        -SCHEDULE.values(np.arange(2)).sum() - 2 * SCHEDULE.values(1), rel=1e-5)


class RaiseAtFirstBatch(keras.callbacks.Callback):
    def on_train_batch_begin(self, batch, logs=None):
        raise RuntimeError("before any update")


def test_a_fit_that_fails_before_its_first_update_leaves_the_optimizers_own_values():
    model = probe_model(keras.optimizers.SGD(0.3, momentum=0.9))
    with pytest.raises(RuntimeError, match="before any update"):
        fit(model, 3, [CyclicLR(SCHEDULE, base_momentum=0.8, max_momentum=0.95),
                       RaiseAtFirstBatch()])
    recorder, _ = fit(model, 2)
    np.testing.assert_allclose(recorder.deltas, [-0.3, 0.9 * -0.3 - 0.3], **PROBE_TOLERANCE)


# ---------------------------------------------------------------------------
# Other callbacks that set or log the LR


@pytest.mark.parametrize("other", [
    keras.callbacks.ReduceLROnPlateau(monitor="loss", patience=0),
    keras.callbacks.LearningRateScheduler(lambda epoch, lr: lr * 0.5),
], ids=["ReduceLROnPlateau", "LearningRateScheduler"])
@pytest.mark.parametrize("first", [True, False], ids=["listed_first", "listed_last"])
def test_keras_lr_callbacks_are_refused_by_name_before_anything_changes(other, first):
    model = probe_model(keras.optimizers.SGD(0.3))
    clr = CyclicLR(SCHEDULE)
    callbacks = [other, clr] if first else [clr, other]
    name = type(other).__name__
    with pytest.raises(ValueError, match=f"CyclicLR sets the learning rate.*{name}"):
        fit(model, 3, callbacks, epochs=2)
    assert int(model.optimizer.iterations.numpy()) == 0
    assert float(model.optimizer.learning_rate.numpy()) == pytest.approx(0.3)
    with pytest.raises(ValueError, match=f"RangeTestCallback sets.*{name}"):
        lr_range_test(model, *probe_data(4), start_lr=0.1, end_lr=1.0, batch_size=4,
                      callbacks=[other])


def test_two_keras_clr_callbacks_in_one_fit_are_refused():
    model = probe_model(keras.optimizers.SGD(0.3))
    with pytest.raises(ValueError, match="cannot run in the same `fit`"):
        fit(model, 3, [CyclicLR(SCHEDULE), RangeTestCallback(0.1, 1.0)])


class WriteLearningRate(keras.callbacks.Callback):
    """An old script's own LR callback: sets the LR at every epoch end."""

    def on_epoch_end(self, epoch, logs=None):
        self.model.optimizer.learning_rate = 0.05


def test_any_other_write_of_the_learning_rate_is_an_error_not_ignored():
    model = probe_model(keras.optimizers.SGD(0.3))
    with pytest.raises(ValueError, match="another callback set `optimizer.learning_rate` to 0.05"):
        fit(model, 3, [CyclicLR(SCHEDULE), WriteLearningRate()], epochs=3)


def tensorboard_scalars(log_dir, tag):
    """The values written under `tag`, in the order written (Keras 3.0 writes every
    batch summary at step 0)."""
    values = []
    for path in sorted(log_dir.glob("train/events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            values += [float(tf.make_ndarray(v.tensor)) for v in event.summary.value
                       if v.tag == tag]
    return values


@pytest.mark.parametrize("tensorboard_first", [True, False], ids=["tb_first", "tb_last"])
def test_every_logger_records_the_lr_each_update_used(tmp_path, tensorboard_first):
    clr = CyclicLR(SCHEDULE, base_momentum=0.8, max_momentum=0.95)
    board = keras.callbacks.TensorBoard(str(tmp_path / "tb"), update_freq="batch")
    csv = keras.callbacks.CSVLogger(str(tmp_path / "log.csv"))
    batch_logs = []
    spy = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: batch_logs.append(dict(logs)))
    loggers = [board, spy, csv]
    callbacks = [*loggers, clr] if tensorboard_first else [clr, *loggers]
    model = probe_model(keras.optimizers.SGD(0.3, momentum=0.9))
    recorder, history = fit(model, 3, callbacks, epochs=3)
    used = SCHEDULE.values(np.arange(9))  # step t's update used schedule(t)
    velocity_lrs = -np.diff(recorder.weights)
    momenta = SCHEDULE.momentum_values(np.arange(9), 0.8, 0.95)
    np.testing.assert_allclose(recorder.deltas, sgd_momentum_deltas(used, momenta),
                               **PROBE_TOLERANCE)
    assert velocity_lrs.size == 9
    np.testing.assert_allclose([logs["learning_rate"] for logs in batch_logs], used, rtol=1e-6)
    np.testing.assert_allclose([logs["momentum"] for logs in batch_logs], momenta, rtol=1e-6)
    epoch_lrs = used[[2, 5, 8]]  # each epoch's last update
    np.testing.assert_allclose(history.history["learning_rate"], epoch_lrs, rtol=1e-6)
    if keras_at_least(3, 3) or not tensorboard_first:
        # Keras < 3.3 puts only the metrics into the epoch logs: CyclicLR adds the LR
        # in its own `on_epoch_end`, which a CSVLogger listed before it does not see.
        np.testing.assert_allclose(pd.read_csv(tmp_path / "log.csv")["learning_rate"],
                                   epoch_lrs, rtol=1e-6)
    np.testing.assert_allclose(tensorboard_scalars(tmp_path / "tb", "batch_learning_rate"),
                               used, rtol=1e-6)
    np.testing.assert_allclose(tensorboard_scalars(tmp_path / "tb", "epoch_learning_rate"),
                               epoch_lrs, rtol=1e-6)


def test_a_model_saved_during_fit_holds_the_lr_of_the_last_update_before_the_save(tmp_path):
    import json
    import zipfile

    checkpoint = keras.callbacks.ModelCheckpoint(str(tmp_path / "epoch{epoch}.keras"))
    model = probe_model(keras.optimizers.SGD(0.3))
    fit(model, 3, [CyclicLR(SCHEDULE), checkpoint], epochs=3)
    saved = []
    for epoch in (1, 2, 3):
        with zipfile.ZipFile(tmp_path / f"epoch{epoch}.keras") as archive:
            config = json.loads(archive.read("config.json"))
        saved.append(config["compile_config"]["optimizer"]["config"]["learning_rate"])
    assert all(isinstance(value, float) for value in saved), saved  # never the schedule
    np.testing.assert_allclose(saved, SCHEDULE.values([2, 5, 8]), rtol=1e-6)


def test_with_the_schedule_in_the_optimizer_tensorboard_logs_keras_own_next_lr(tmp_path):
    # The FAQ's statement for the route where keras-clr runs no code during `fit`:
    # the updates equal the callback route's, and Keras' TensorBoard alone logs an
    # LR, `optimizer.learning_rate` after the epoch, the schedule at the next step.
    board = keras.callbacks.TensorBoard(str(tmp_path / "tb"))
    model = probe_model(keras.optimizers.SGD(SCHEDULE))
    recorder, history = fit(model, 3, [board], epochs=3)
    recorder.assert_learning_rates(SCHEDULE.values(np.arange(9)))
    assert "learning_rate" not in history.history
    np.testing.assert_allclose(tensorboard_scalars(tmp_path / "tb", "epoch_learning_rate"),
                               SCHEDULE.values([3, 6, 9]), rtol=1e-6)


@pytest.mark.parametrize("fit_kwargs", [dict(epochs=0), dict(epochs=2, initial_epoch=2)],
                         ids=["epochs_0", "finished_resumed_job"])
def test_a_fit_that_runs_no_step_changes_nothing(fit_kwargs):
    # Keras 3.0's JAX trainer itself raises UnboundLocalError on a fit that runs no epoch;
    # with CyclicLR that fit must raise the same, and still change nothing.
    try:
        fit(probe_model(keras.optimizers.SGD(0.3)), 3, **fit_kwargs)
        keras_raises = contextlib.nullcontext()
    except UnboundLocalError:
        keras_raises = pytest.raises(UnboundLocalError)
    model = probe_model(keras.optimizers.SGD(0.3, momentum=0.9))
    clr = CyclicLR(SCHEDULE, base_momentum=0.8, max_momentum=0.95)
    with keras_raises:
        fit(model, 3, [clr], **fit_kwargs)
    assert float(model.optimizer.learning_rate.numpy()) == pytest.approx(0.3)
    if isinstance(keras_raises, contextlib.nullcontext):
        assert type(model.optimizer.momentum) is float and model.optimizer.momentum == 0.9
        assert clr.history.empty
    recorder, _ = fit(model, 3, epochs=1)  # the optimizer's own LR and momentum, as before
    np.testing.assert_allclose(recorder.deltas, sgd_momentum_deltas([0.3] * 3, [0.9] * 3),
                               **PROBE_TOLERANCE)


# ---------------------------------------------------------------------------
# Data of unknown length, custom loops, old scripts


def test_range_test_rows_follow_the_lr_used_on_data_of_unknown_length():
    x, y = probe_data(5)
    data = tf.data.Dataset.from_tensor_slices((x, y)).filter(lambda a, b: True).batch(4)
    sweep = RangeTestCallback(start_lr=0.1, end_lr=1.4, num_steps=14)
    recorder = WeightRecorder()
    probe_model(keras.optimizers.SGD(0.01)).fit(data, epochs=4, verbose=0,
                                                callbacks=[sweep, recorder])
    history = sweep.history
    recorder.assert_learning_rates(history["learning_rate"])  # each row: the LR it used
    lrs = np.linspace(0.1, 1.4, 14)
    np.testing.assert_allclose(history["learning_rate"], lrs[history["step"]], rtol=1e-6)
    assert history["step"].is_monotonic_increasing and history["step"].iloc[-1] == 13
    assert sweep.result.stop_reason == "finished"
    # On TensorFlow, Keras counts the call that finds the data exhausted as a step
    # (`iterations` runs one ahead per epoch), so the sweep skips a step there.
    assert len(history) >= 14 - (3 if keras.backend.backend() == "tensorflow" else 0)


@pytest.mark.backends("tensorflow")
def test_a_custom_training_loop_driving_the_callbacks_gets_each_steps_lr():
    model = probe_model(keras.optimizers.SGD(0.3))
    model.optimizer.build(model.trainable_variables)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(model(tf.ones((1, 1))))
        grads = tape.gradient(loss, model.trainable_variables)
        model.optimizer.apply_gradients(zip(grads, model.trainable_variables))

    clr, recorder, seen = CyclicLR(SCHEDULE), WeightRecorder(), []
    spy = keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: seen.append(logs))
    hooks = keras.callbacks.CallbackList([clr, recorder, spy], model=model)
    hooks.on_train_begin()
    hooks.on_epoch_begin(0)
    for batch in range(10):
        hooks.on_train_batch_begin(batch)
        step()
        hooks.on_train_batch_end(batch, {})
    hooks.on_epoch_end(0, {})
    hooks.on_train_end()
    recorder.assert_learning_rates(SCHEDULE.values(np.arange(10)))
    np.testing.assert_allclose([logs["learning_rate"] for logs in seen],
                               SCHEDULE.values(np.arange(10)))


def test_the_callback_takes_a_scale_fn_that_could_not_be_saved():
    # A schedule refuses it, as it may be saved with a model; the callback never is.
    decay = functools.partial(np.power, 0.5)  # 0.5 ** cycle: half triangular2's scale
    clr = CyclicLR(base_lr=0.1, max_lr=0.9, step_size=2, scale_fn=decay, scale_mode="cycle")
    model = probe_model(keras.optimizers.SGD(0.3))
    recorder, _ = fit(model, 8, [clr], epochs=1)
    halving = CyclicalLearningRate(0.1, 0.9, 2, mode="triangular2")
    recorder.assert_learning_rates(halving.values(np.arange(8)) / 2 + 0.05)
    with pytest.raises(ValueError, match="`scale_fn` cannot be saved"):
        CyclicalLearningRate(0.1, 0.9, 2, scale_fn=decay)
    assert describe(clr.schedule).startswith("CyclicalLearningRate(")


def test_classic_keras_clr_numpy_scale_fn_works_in_the_callback():
    # The classic Keras CLR README's custom policy, written with NumPy.
    clr = CyclicLR(base_lr=0.1, max_lr=0.9, step_size=2, base_momentum=0.8, max_momentum=0.95,
                   scale_fn=lambda x: 0.5 * (1 + np.sin(x * np.pi / 2.0)), scale_mode="cycle")
    model = probe_model(keras.optimizers.SGD(0.3, momentum=0.9))
    recorder, history = fit(model, 12, [clr], epochs=1)
    lrs = clr.schedule.values(np.arange(12))
    momenta = clr.schedule.momentum_values(np.arange(12), 0.8, 0.95)
    np.testing.assert_allclose(recorder.deltas, sgd_momentum_deltas(lrs, momenta),
                               **PROBE_TOLERANCE)
    assert len(set(np.round(lrs, 6))) > 3, "the scale function shapes the cycle"
    assert history.history["learning_rate"] == pytest.approx([lrs[-1]])
