import keras
import numpy as np
import pandas as pd
import pytest

from keras_clr import CyclicalLearningRate, CyclicLR, OneCycle, OneCycleLR
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
    history = model.fit(
        *probe_data(steps, batch_size), batch_size=batch_size, shuffle=False, verbose=0,
        callbacks=[*callbacks, recorder], **kwargs,
    )
    return recorder, history


def test_each_step_uses_the_schedules_lr():
    clr = CyclicLR(base_lr=1.0, max_lr=5.0, step_size=4)
    recorder, _ = fit(probe_model(keras.optimizers.SGD(0.5)), 20, [clr])
    expected = [1, 2, 3, 4, 5, 4, 3, 2, 1, 2, 3, 4, 5, 4, 3, 2, 1, 2, 3, 4]
    recorder.assert_learning_rates(expected)
    assert clr.history["learning_rate"].tolist() == expected
    assert clr.history["step"].tolist() == list(range(20))


def test_takes_any_keras_schedule():
    schedule = keras.optimizers.schedules.ExponentialDecay(0.5, decay_steps=3, decay_rate=0.5)
    recorder, _ = fit(probe_model(keras.optimizers.SGD(0.1)), 8, [CyclicLR(schedule)])
    expected = [float(schedule(step)) for step in range(8)]
    recorder.assert_learning_rates(expected)


class _EpochLogsWithoutLR(keras.callbacks.Callback):
    """Epoch logs as Keras before 3.3 passes them: the metrics only."""

    def on_epoch_end(self, epoch, logs=None):
        logs.pop("learning_rate", None)


@pytest.mark.parametrize("anneal_strategy", ["cos", "linear"])
def test_a_deep_anneal_read_back_from_the_host_is_not_taken_for_another_writer(
        anneal_strategy):
    # Without the LR in the epoch logs, CyclicLR checks the variable against the host's
    # float64 value; the step's float32 linear anneal to max_lr / 2.5e5 lands 0.6% off
    # its last LR (ulps of the peak), which once raised "another callback set ...".
    schedule = OneCycle(0.25, 24, anneal_strategy=anneal_strategy)
    model = probe_model(keras.optimizers.SGD(0.1))
    fit(model, 24, [_EpochLogsWithoutLR(), CyclicLR(schedule)], epochs=2)
    final = float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))
    assert final == pytest.approx(schedule.final_lr, rel=2e-2)

    class Halve(keras.callbacks.Callback):  # a real second writer is still caught
        def on_epoch_end(self, epoch, logs=None):
            self.model.optimizer.learning_rate.assign(self.model.optimizer.learning_rate / 2)

    with pytest.raises(ValueError, match="another callback set `optimizer.learning_rate`"):
        fit(probe_model(keras.optimizers.SGD(0.1)), 24,
            [_EpochLogsWithoutLR(), CyclicLR(schedule), Halve()], epochs=2)


def test_second_fit_and_initial_epoch_continue_the_cycle():
    schedule = CyclicalLearningRate(0.1, 0.9, 5, mode="triangular2")
    model = probe_model(keras.optimizers.SGD(0.5))
    clr = CyclicLR(schedule)
    fit(model, 7, [clr], epochs=1)
    recorder, _ = fit(model, 7, [clr], epochs=3, initial_epoch=1)
    recorder.assert_learning_rates(schedule.values(np.arange(7, 21)))
    assert clr.history["step"].tolist() == list(range(7, 21)), "history restarts with each fit"


class CrashAt(keras.callbacks.Callback):
    def __init__(self, step):
        super().__init__()
        self.step = step

    def on_train_batch_begin(self, batch, logs=None):
        if int(self.model.optimizer.iterations.numpy()) == self.step:
            raise RuntimeError("simulated crash")


def test_one_cycle_with_initial_epoch_continues_that_many_epochs_into_the_cycle():
    model = probe_model(keras.optimizers.SGD(0.1))
    recorder, _ = fit(model, 4, [OneCycleLR(1.0, cycle_momentum=False)], epochs=4,
                      initial_epoch=2)
    # As the uninterrupted 4-epoch run's epochs 3 and 4: updates 8 to 15 of 16.
    recorder.assert_learning_rates(OneCycle(1.0, 16).values(np.arange(8, 16)))


def test_resume_with_backup_and_restore(tmp_path):
    schedule = CyclicalLearningRate(0.1, 0.9, 4, mode="triangular2")
    model = probe_model(keras.optimizers.SGD(0.5))
    backup = keras.callbacks.BackupAndRestore(str(tmp_path / "backup"))
    with pytest.raises(RuntimeError, match="simulated crash"):
        fit(model, 5, [CyclicLR(schedule), backup, CrashAt(13)], epochs=4)
    # A new process would rebuild the model: weights and iterations come from the backup.
    model = probe_model(keras.optimizers.SGD(0.5))
    clr = CyclicLR(schedule)
    recorder, _ = fit(model, 5, [clr, backup], epochs=4)
    # Keras 3.0's BackupAndRestore restores the weights and iterations but not
    # the epoch (3.1 added that), so the resumed fit runs all 4 epochs there.
    end = 20 if keras_at_least(3, 1) else 30
    assert clr.history["step"].tolist() == list(range(10, end)), "resumed at epoch 3"
    recorder.assert_learning_rates(schedule.values(np.arange(10, end)))


def test_through_loss_scale_optimizer():
    schedule = OneCycle(0.5, 12)
    optimizer = keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(0.1))
    recorder, _ = fit(probe_model(optimizer), 12, [CyclicLR(schedule)])
    recorder.assert_learning_rates(schedule.values(np.arange(12)))


@pytest.mark.parametrize("route", ["callback", "optimizer"])
def test_an_overflow_step_skipped_by_loss_scaling_does_not_advance_the_schedule(route):
    schedule = CyclicalLearningRate(1.0, 5.0, 4)
    inner = keras.optimizers.SGD(0.5 if route == "callback" else schedule)
    optimizer = keras.optimizers.LossScaleOptimizer(inner)
    callbacks = [CyclicLR(schedule)] if route == "callback" else []
    x, y = probe_data(10)
    x[12:16] = np.inf  # batch 3: non-finite gradient, so no update
    recorder = WeightRecorder()
    probe_model(optimizer).fit(x, y, batch_size=4, shuffle=False, verbose=0,
                               callbacks=[*callbacks, recorder])
    # Update t uses schedule(t); the skipped batch applies nothing and the
    # next batch is update 3.
    expected = [1, 2, 3, 0, 4, 5, 4, 3, 2, 1]
    recorder.assert_learning_rates(expected)
    assert int(inner.iterations.numpy()) == 9
    assert float(optimizer.dynamic_scale.numpy()) == 2.0**14, "the scale halved once"
    if callbacks:
        assert callbacks[0].history["step"].tolist() == list(range(9))


def test_gradient_accumulation_follows_the_update_count():
    schedule = CyclicalLearningRate(0.1, 0.5, 2)
    model = probe_model(keras.optimizers.SGD(0.1, gradient_accumulation_steps=2))
    clr = CyclicLR(schedule)
    recorder, _ = fit(model, 8, [clr])
    assert clr.history["step"].tolist() == [0, 1, 2, 3], "one row per applied update"
    applied = -recorder.deltas[1::2]
    np.testing.assert_allclose(applied, schedule.values(np.arange(4)), **PROBE_TOLERANCE)


@pytest.mark.parametrize("scale_fn", [None, lambda cycle: 1 / (2.0 ** (cycle - 1))],
                         ids=["in_graph", "host_route"])
def test_a_fit_that_applies_no_update_ends_cleanly_with_the_optimizers_own_lr(scale_fn):
    # 2 batches of a 4-batch accumulation: the fit applies no update.
    model = probe_model(keras.optimizers.SGD(0.3, gradient_accumulation_steps=4))
    if scale_fn is None:
        clr = CyclicLR(CyclicalLearningRate(0.1, 0.5, 2))
    else:
        clr = CyclicLR(base_lr=0.1, max_lr=0.5, step_size=2, scale_fn=scale_fn)
    fit(model, 2, [clr])
    assert clr.history.empty
    assert float(model.optimizer.learning_rate.numpy()) == pytest.approx(0.3)


@pytest.mark.backends("tensorflow", "jax")  # Keras' torch backend refuses steps_per_execution > 1
def test_every_step_of_a_multi_step_execution_gets_its_own_lr():
    schedule = CyclicalLearningRate(0.1, 0.9, 3, mode="triangular2")
    model = probe_model(keras.optimizers.SGD(0.1), steps_per_execution=4)
    clr = CyclicLR(schedule)
    recorder, _ = fit(model, 12, [clr])
    lrs = schedule.values(np.arange(12))
    # Batch hooks fire once per 4 steps: each recorded delta is 4 steps' LRs.
    np.testing.assert_allclose(-recorder.deltas, lrs.reshape(3, 4).sum(axis=1),
                               **PROBE_TOLERANCE)
    assert clr.history["step"].tolist() == list(range(12))


def test_refuses_an_optimizer_built_with_a_schedule():
    schedule = CyclicalLearningRate(0.1, 0.5, 2)
    model = probe_model(keras.optimizers.SGD(schedule))
    with pytest.raises(ValueError, match="created with a schedule.*float `learning_rate`"):
        fit(model, 4, [CyclicLR(base_lr=0.1, max_lr=0.5, step_size=2)])


# ---------------------------------------------------------------------------
# Momentum

@pytest.mark.parametrize(
    "schedule",
    [CyclicalLearningRate(0.1, 0.5, 3, mode="triangular2"), OneCycle(0.5, 16, three_phase=True)],
    ids=["clr", "one_cycle"],
)
def test_sgd_momentum_is_cycled_and_used_by_the_compiled_step(schedule):
    clr = CyclicLR(schedule, base_momentum=0.8, max_momentum=0.95)
    model = probe_model(keras.optimizers.SGD(0.1, momentum=0.9))
    recorder, _ = fit(model, 16, [clr])
    momenta = schedule.momentum_values(np.arange(16), 0.8, 0.95)
    np.testing.assert_allclose(clr.history["momentum"], momenta)
    expected = sgd_momentum_deltas(schedule.values(np.arange(16)), momenta)
    np.testing.assert_allclose(recorder.deltas, expected, **PROBE_TOLERANCE)
    constant = sgd_momentum_deltas(schedule.values(np.arange(16)), [0.9] * 16)
    assert np.abs(recorder.deltas - constant).max() > 1e-3, "the test can tell the difference"


def test_momentum_cycling_retraces_a_model_fit_before():
    model = probe_model(keras.optimizers.SGD(0.1, momentum=0.9))
    fit(model, 4, [])
    schedule = CyclicalLearningRate(0.1, 0.5, 3)
    clr = CyclicLR(schedule, base_momentum=0.5, max_momentum=0.9)
    recorder, _ = fit(model, 6, [clr])
    # Velocity carried over from the first fit: v0 = sum of 4 steps of -0.1 with m=0.9.
    velocity = sgd_momentum_deltas([0.1] * 4, [0.9] * 4)[-1]
    deltas = []
    momenta = schedule.momentum_values(np.arange(4, 10), 0.5, 0.9)
    np.testing.assert_allclose(clr.history["momentum"], momenta)
    for lr, momentum in zip(schedule.values(np.arange(4, 10)), momenta):
        velocity = momentum * velocity - lr
        deltas.append(velocity)
    np.testing.assert_allclose(recorder.deltas, deltas, **PROBE_TOLERANCE)


def test_adam_beta_1_is_cycled_and_used():
    schedule = CyclicalLearningRate(0.01, 0.05, 3)
    clr = CyclicLR(schedule, base_momentum=0.6, max_momentum=0.9)
    model = probe_model(keras.optimizers.Adam(0.01, beta_2=0.999, epsilon=1e-7))
    recorder, _ = fit(model, 9, [clr])
    m = v = 0.0
    expected = []
    momenta = schedule.momentum_values(np.arange(9), 0.6, 0.9)
    np.testing.assert_allclose(clr.history["momentum"], momenta)
    for step, (lr, beta_1) in enumerate(zip(schedule.values(np.arange(9)), momenta)):
        t = step + 1
        m += (1 - beta_1) * (1.0 - m)
        v += (1 - 0.999) * (1.0 - v)
        alpha = lr * np.sqrt(1 - 0.999**t) / (1 - beta_1**t)
        expected.append(-alpha * m / (np.sqrt(v) + 1e-7))
    np.testing.assert_allclose(recorder.deltas, expected, rtol=1e-4, atol=1e-6)


def test_momentum_cycling_leaves_a_saveable_optimizer(tmp_path):
    model = probe_model(keras.optimizers.SGD(0.1, momentum=0.9))
    variables_before = len(model.optimizer.variables)
    clr = CyclicLR(base_lr=0.1, max_lr=0.5, step_size=3, base_momentum=0.8, max_momentum=0.9)
    fit(model, 5, [clr])
    assert type(model.optimizer.momentum) is float
    assert model.optimizer.momentum == pytest.approx(clr.history["momentum"].iloc[-1])
    model.build((None, 1))
    assert len(model.optimizer.variables) == variables_before + 1  # the velocity slot only
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert loaded.optimizer.get_config()["momentum"] == pytest.approx(0.9 - 0.1 * 2 / 3)  # step 4
    np.testing.assert_array_equal(
        loaded.optimizer.variables[-1].numpy(), model.optimizer.variables[-1].numpy()
    )


def test_momentum_needs_slots():
    model = probe_model(keras.optimizers.SGD(0.1))
    fit(model, 2, [])
    clr = CyclicLR(base_lr=0.1, max_lr=0.5, step_size=3, base_momentum=0.8, max_momentum=0.9)
    with pytest.raises(ValueError, match="built with momentum=0"):
        fit(model, 2, [clr])


# ---------------------------------------------------------------------------
# Logs

def test_learning_rate_reaches_history_and_csv_logger(tmp_path):
    clr = CyclicLR(base_lr=0.1, max_lr=0.5, step_size=2, base_momentum=0.85, max_momentum=0.95)
    csv = keras.callbacks.CSVLogger(str(tmp_path / "log.csv"))
    batch_logs = []
    spy = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: batch_logs.append(dict(logs))
    )
    _, history = fit(probe_model(keras.optimizers.SGD(0.1, momentum=0.9)), 3,
                     [clr, csv, spy], epochs=2)
    # Steps 0-2 and 3-5: the last LR of each epoch is schedule(2) and schedule(5).
    assert history.history["learning_rate"] == pytest.approx([0.5, 0.3])
    assert history.history["momentum"] == pytest.approx([0.85, 0.9])
    assert pd.read_csv(tmp_path / "log.csv")["learning_rate"].tolist() == pytest.approx([0.5, 0.3])
    assert [logs["learning_rate"] for logs in batch_logs] == pytest.approx(
        [0.1, 0.3, 0.5, 0.3, 0.1, 0.3]
    )
    assert list(clr.history.columns) == ["step", "learning_rate", "momentum"]


# ---------------------------------------------------------------------------
# Bad input

@pytest.mark.parametrize(
    "kwargs, error, fragment",
    [
        (dict(), ValueError, "needs a `schedule` or `base_lr`"),
        (dict(schedule=0.01), TypeError, "schedule=0.01"),
        (dict(schedule=OneCycle(0.1, 10), base_lr=0.1), ValueError, "not both"),
        (dict(schedule=OneCycle(0.1, 10), mode="triangular2"), ValueError, "not both"),
        (dict(base_lr=0.1, max_lr=0.5), TypeError, "step_size=None"),
        (dict(base_lr=0.5, max_lr=0.1, step_size=3), ValueError, "max_lr=0.1, base_lr=0.5"),
        (dict(base_lr=0.1, max_lr=0.5, step_size=3, mode="cos"), ValueError, "mode='cos'"),
        (dict(schedule=OneCycle(0.1, 10), base_momentum=0.8), ValueError, "max_momentum=None"),
        (dict(schedule=OneCycle(0.1, 10), base_momentum=0.95, max_momentum=0.85), ValueError,
         "base_momentum=0.95, max_momentum=0.85"),
        (dict(schedule=OneCycle(0.1, 10), base_momentum=-0.1, max_momentum=0.9), ValueError,
         "base_momentum=-0.1"),
        (dict(schedule=OneCycle(0.1, 10), base_momentum=0.8, max_momentum=1.0), ValueError,
         "max_momentum=1.0"),
        (dict(schedule=keras.optimizers.schedules.CosineDecay(0.1, 10), base_momentum=0.8,
              max_momentum=0.9), TypeError, "CosineDecay"),
        (dict(schedule=OneCycle(0.1, 10), verbose="loud"), ValueError, "verbose='loud'"),
    ],
)
def test_bad_arguments(kwargs, error, fragment):
    with pytest.raises(error, match=fragment):
        CyclicLR(**kwargs)


def test_classic_keras_clr_arguments_port_unchanged():
    classic = CyclicLR(base_lr=0.001, max_lr=0.006, step_size=2000.0, mode="exp_range",
                       gamma=0.99994)
    assert classic.schedule.get_config()["step_size"] == 2000
    assert classic.schedule.values(2000) == pytest.approx(0.001 + 0.005 * 0.99994**2000)


class SetByHand(keras.callbacks.Callback):
    """The oracle: an eager model whose LR and momentum are set before each step."""

    def __init__(self, schedule, attribute, base, top):
        super().__init__()
        self.schedule, self.attribute, self.base, self.top = schedule, attribute, base, top

    def on_train_batch_begin(self, batch, logs=None):
        optimizer = self.model.optimizer
        step = int(keras.ops.convert_to_numpy(optimizer.iterations))
        optimizer.learning_rate.assign(self.schedule.values(step))
        setattr(optimizer, self.attribute,
                float(self.schedule.momentum_values(step, self.base, self.top)))


MOMENTUM_OPTIMIZERS = {
    "SGD": lambda: keras.optimizers.SGD(0.1, momentum=0.9),
    "RMSprop": lambda: keras.optimizers.RMSprop(0.1, momentum=0.9),
    "Adam": lambda: keras.optimizers.Adam(0.1),
    "AdamW": lambda: keras.optimizers.AdamW(0.1),
    "Nadam": lambda: keras.optimizers.Nadam(0.1),
    "Adamax": lambda: keras.optimizers.Adamax(0.1),
}  # (Lion's update is the gradient's sign: on the probe, beta_1 changes nothing)


@pytest.mark.parametrize("name", MOMENTUM_OPTIMIZERS)
def test_momentum_cycling_matches_setting_it_by_hand_for_every_keras_optimizer(name):
    schedule = OneCycle(0.5, 12)
    attribute = "momentum" if name in ("SGD", "RMSprop") else "beta_1"
    clr = CyclicLR(schedule, base_momentum=0.8, max_momentum=0.95)
    recorder, _ = fit(probe_model(MOMENTUM_OPTIMIZERS[name]()), 12, [clr])
    oracle = probe_model(MOMENTUM_OPTIMIZERS[name](), run_eagerly=True)
    expected, _ = fit(oracle, 12, [SetByHand(schedule, attribute, 0.8, 0.95)])
    np.testing.assert_allclose(recorder.weights, expected.weights, rtol=1e-5, atol=1e-6)
    constant, _ = fit(probe_model(MOMENTUM_OPTIMIZERS[name]()), 12, [CyclicLR(schedule)])
    assert not np.allclose(constant.weights, expected.weights), "momentum matters here"
