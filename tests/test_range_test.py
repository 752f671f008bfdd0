import keras
import matplotlib
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from sklearn.datasets import load_digits

from keras_clr import (
    CyclicalLearningRate,
    RangeTestCallback,
    RangeTestResult,
    lr_range_test,
    step_size_for,
)
from keras_clr.range_test import describe_suggestion, sweep_learning_rates
from tests.conftest import PROBE_TOLERANCE, WeightRecorder, probe_data, probe_model


@pytest.fixture(scope="module")
def digits():
    x, y = load_digits(return_X_y=True)
    return (x / 16.0).astype("float32"), y.astype("int32")


def mlp(optimizer, stateful_layers=False, metrics=("accuracy",), **compile_kwargs):
    """A small digits classifier; `stateful_layers` adds BatchNorm and Dropout."""
    extra = [keras.layers.BatchNormalization(), keras.layers.Dropout(0.2)]
    model = keras.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Dense(32, activation="relu"),
            *(extra if stateful_layers else []),
            keras.layers.Dense(10),
        ]
    )
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=list(metrics),
        **compile_kwargs,
    )
    return model


def state(model):
    return [v.numpy().copy() for v in [*model.variables, *model.optimizer.variables]]


def assert_same_state(before, model):
    after = state(model)
    assert len(before) == len(after)
    for old, new in zip(before, after):
        np.testing.assert_array_equal(old, new)


# ---------------------------------------------------------------------------
# The sweep itself

def test_sweep_learning_rates_linear_and_exponential():
    np.testing.assert_allclose(sweep_learning_rates(0.0, 1.0, 5), [0, 0.25, 0.5, 0.75, 1.0])
    lrs = sweep_learning_rates(1e-3, 10.0, 5, "exponential")
    np.testing.assert_allclose(lrs, [1e-3, 1e-2, 1e-1, 1.0, 10.0])


def test_callback_sets_each_steps_lr_over_the_whole_fit():
    sweep = RangeTestCallback(start_lr=0.1, end_lr=1.5, mode="linear")
    recorder = WeightRecorder()
    model = probe_model(keras.optimizers.SGD(0.01))
    model.fit(*probe_data(15), batch_size=4, epochs=1, shuffle=False, verbose=0,
              callbacks=[sweep, recorder])
    expected = np.linspace(0.1, 1.5, 15)
    recorder.assert_learning_rates(expected)
    np.testing.assert_allclose(sweep.history["learning_rate"], expected)
    assert sweep.history["step"].tolist() == list(range(15))


def test_callback_stops_fit_at_num_steps():
    sweep = RangeTestCallback(1e-3, 1.0, num_steps=7, mode="exponential")
    model = probe_model(keras.optimizers.SGD(0.01))
    model.fit(*probe_data(10), batch_size=4, epochs=3, verbose=0, callbacks=[sweep])
    assert len(sweep.history) == 7
    assert int(model.optimizer.iterations.numpy()) == 7


def test_rows_hold_each_batchs_own_loss_not_running_means(digits):
    x, y = digits
    model = mlp(keras.optimizers.SGD(0.01))
    expected = [
        model.evaluate(x[i : i + 32], y[i : i + 32], verbose=0, return_dict=True)
        for i in range(0, 32 * 20, 32)
    ]
    # A tiny LR leaves the weights as they were, so each batch's loss is known in advance.
    result = lr_range_test(model, x[: 32 * 20], y[: 32 * 20], start_lr=1e-12, end_lr=1e-11,
                           num_steps=20, batch_size=32, shuffle=False)
    np.testing.assert_allclose(result.history["loss"], [e["loss"] for e in expected], rtol=1e-4)
    np.testing.assert_allclose(
        result.history["accuracy"], [e["accuracy"] for e in expected], atol=1e-6
    )
    running_mean = np.cumsum([e["loss"] for e in expected]) / np.arange(1, 21)
    assert np.abs(result.history["loss"] - running_mean).max() > 0.05, "means would differ"


def test_rows_are_per_batch_across_epochs_a_smaller_last_batch_and_any_metric(digits):
    x, y = digits
    x, y = x[: 32 * 6 + 10], y[: 32 * 6 + 10]  # 7 batches an epoch, the last of 10
    weights = np.random.default_rng(0).uniform(0.2, 2.0, len(x)).astype("float32")
    model = mlp(keras.optimizers.SGD(0.01), metrics=[
        "accuracy",
        keras.metrics.SparseTopKCategoricalAccuracy(k=3, name="top3"),
        keras.metrics.MeanIoU(10, sparse_y_pred=False, name="iou"),  # not a running mean
    ])
    batches = [slice(i, i + 32) for i in range(0, len(x), 32)]
    expected = [model.evaluate(x[b], y[b], sample_weight=weights[b], batch_size=32,
                               verbose=0, return_dict=True) for b in batches]
    sweep = RangeTestCallback(start_lr=1e-12, end_lr=1e-11)  # the weights stay as they are
    model.fit(x, y, sample_weight=weights, batch_size=32, epochs=2, shuffle=False, verbose=0,
              callbacks=[sweep])
    history = sweep.history
    assert history["step"].tolist() == list(range(14))
    for name in ("loss", "accuracy", "top3", "iou"):
        np.testing.assert_allclose(history[name], [e[name] for e in 2 * expected],
                                   rtol=1e-4, atol=1e-6, err_msg=name)
    # The epoch logs show the last batch's values; after `fit` the model is its own again.
    assert model.history.history["loss"][-1] == pytest.approx(expected[-1]["loss"], rel=1e-4)
    assert "train_step" not in vars(model)


def test_while_training_each_row_holds_the_loss_before_its_update():
    # The probe's loss is its weight, which step t moves by -lr_t: row t's loss is
    # -(lr_0 + ... + lr_{t-1}). Three epochs of batches of 4, 4 and 2.
    x = np.ones((10, 1), "float32")
    sweep = RangeTestCallback(start_lr=0.1, end_lr=0.9, num_steps=9)
    probe_model(keras.optimizers.SGD(0.01)).fit(x, np.zeros_like(x), batch_size=4, epochs=3,
                                                shuffle=False, verbose=0, callbacks=[sweep])
    lrs = np.linspace(0.1, 0.9, 9)
    np.testing.assert_allclose(sweep.history["loss"], -np.cumsum([0, *lrs[:-1]]),
                               **PROBE_TOLERANCE)


def test_a_step_skipped_by_loss_scaling_holds_the_sweep_back():
    x, y = probe_data(16)
    x[12:16] = 1e35  # batch 3: finite loss, but the scaled gradient overflows: no update
    sweep = RangeTestCallback(start_lr=0.1, end_lr=1.5, num_steps=15)
    recorder = WeightRecorder()
    optimizer = keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(0.01))
    probe_model(optimizer).fit(x, y, batch_size=4, shuffle=False, verbose=0,
                               callbacks=[sweep, recorder])
    history = sweep.history
    assert history["step"].tolist() == [0, 1, 2, 3, *range(3, 15)]
    assert sweep.result.stop_reason == "finished"
    applied = np.arange(16) != 3
    recorder.assert_learning_rates(np.where(applied, history["learning_rate"], 0.0))
    np.testing.assert_allclose(history["learning_rate"][applied], np.linspace(0.1, 1.5, 15))


def test_a_fit_shorter_than_the_sweep_ends_it_as_fit_ended():
    sweep = RangeTestCallback(start_lr=0.1, end_lr=1.0, num_steps=50)
    recorder = WeightRecorder()
    probe_model(keras.optimizers.SGD(0.01)).fit(*probe_data(10), batch_size=4, shuffle=False,
                                                 verbose=0, callbacks=[sweep, recorder])
    assert sweep.result.stop_reason == "fit ended"
    assert sweep.result.ended == "10 of 50 steps, fit ended"
    recorder.assert_learning_rates(np.linspace(0.1, 1.0, 50)[:10])


@pytest.mark.backends("tensorflow", "jax")  # Keras' torch backend refuses steps_per_execution > 1
def test_steps_per_execution_is_refused_before_anything_changes(digits):
    x, y = digits
    model = mlp(keras.optimizers.SGD(0.01), steps_per_execution=2)
    before = state(model)
    with pytest.raises(ValueError, match="steps_per_execution=2.*steps_per_execution=1"):
        lr_range_test(model, x, y, num_steps=20, verbose=0)
    assert_same_state(before, model)
    with pytest.raises(ValueError, match="steps_per_execution=2"):
        model.fit(x, y, callbacks=[RangeTestCallback(num_steps=20)], verbose=0)
    assert_same_state(before, model)


def test_under_gradient_accumulation_rows_follow_the_update_count():
    sweep = RangeTestCallback(start_lr=0.1, end_lr=0.8, num_steps=8)
    recorder = WeightRecorder()
    model = probe_model(keras.optimizers.SGD(0.01, gradient_accumulation_steps=2))
    model.fit(*probe_data(16), batch_size=4, shuffle=False, verbose=0,
              callbacks=[sweep, recorder])
    history = sweep.history
    assert history["step"].tolist()[:14] == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6]
    np.testing.assert_allclose(history["learning_rate"], np.linspace(0.1, 0.8, 8)[history["step"]])
    # The second batch of each pair applies the update, with its row's LR.
    updates = np.arange(len(history)) % 2 == 1
    recorder.assert_learning_rates(np.where(updates, history["learning_rate"], 0.0))


def test_stops_on_divergence_and_keeps_the_rows(digits):
    x, y = digits
    keras.utils.set_random_seed(0)
    model = mlp(keras.optimizers.SGD(0.01))
    result = lr_range_test(model, x, y, start_lr=1e-3, end_lr=1e6, num_steps=200,
                           mode="exponential", batch_size=16, shuffle=False)
    history = result.history
    assert 10 < len(history) < 200
    losses = history["loss"].to_numpy()
    assert result.stop_reason == "diverged" and np.isfinite(losses).all()
    # The documented rule, recomputed: a debiased EMA about 5% of the sweep wide first
    # exceeds stop_factor (4) times its lowest value on the last row.
    beta = 1 - 2 / (11 + 1)  # a window of 11 = 5% of 200 steps, made odd
    ema = np.zeros(len(losses))
    for i, loss in enumerate(losses):
        ema[i] = beta * (ema[i - 1] if i else 0.0) + (1 - beta) * loss
    debiased = ema / (1 - beta ** np.arange(1, len(losses) + 1))
    over = debiased > 4 * np.minimum.accumulate(debiased)
    assert over[-1] and not over[:-1].any()


def test_array_valued_metrics_are_left_out_of_the_rows(digits):
    x, y = digits
    model = mlp(keras.optimizers.SGD(0.01))
    model.compile(keras.optimizers.SGD(0.01),
                  keras.losses.CategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy", keras.metrics.F1Score(average=None, name="f1")])
    onehot = np.eye(10, dtype="float32")[y]
    result = lr_range_test(model, x[:1400], onehot[:1400], start_lr=1e-3, end_lr=0.5,
                           num_steps=10, batch_size=32, eval_every=5,
                           validation_data=(x[1400:], onehot[1400:]))
    columns = set(result.history.columns)
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= columns
    assert not {"f1", "val_f1"} & columns
    assert len(result.history) == 10


def test_validation_columns_every_k_steps(digits):
    x, y = digits
    model = mlp(keras.optimizers.SGD(0.01))
    result = lr_range_test(model, x[:1400], y[:1400], start_lr=1e-3, end_lr=0.5, num_steps=30,
                           batch_size=32, validation_data=(x[1400:], y[1400:]), eval_every=10)
    evaluated = result.history.dropna(subset=["val_loss"])["step"].tolist()
    assert evaluated == [0, 10, 20, 29]
    assert {"val_loss", "val_accuracy"} <= set(result.history.columns)


@pytest.mark.parametrize("form", ["list", "with_sample_weight"])
def test_validation_data_in_the_other_forms_fit_takes(digits, form):
    x, y = digits
    held_x, held_y = x[1400:], y[1400:]
    weights = (held_y < 5).astype("float32") if form == "with_sample_weight" else None
    data = [held_x, held_y] if form == "list" else (held_x, held_y, weights)
    model = mlp(keras.optimizers.SGD(0.01))
    # LRs so small that the sweep leaves the weights as they are: the first val_loss
    # is the restored model's own.
    result = lr_range_test(model, x[:1400], y[:1400], start_lr=1e-12, end_lr=1e-11,
                           num_steps=4, batch_size=32, validation_data=data, eval_every=2)
    expected = model.evaluate(held_x, held_y, sample_weight=weights, verbose=0,
                              return_dict=True)["loss"]
    assert result.history["val_loss"].iloc[0] == pytest.approx(expected, rel=1e-4)
    if weights is not None:  # and the weights count
        unweighted = model.evaluate(held_x, held_y, verbose=0, return_dict=True)["loss"]
        assert abs(unweighted - expected) > 1e-2 * expected


@pytest.mark.parametrize("kind", ["tf.data", "PyDataset"])
def test_accepts_datasets(kind, digits):
    x, y = digits
    if kind == "tf.data":
        data = tf.data.Dataset.from_tensor_slices((x, y)).batch(64)
    else:
        class Batches(keras.utils.PyDataset):
            def __len__(self):
                return len(x) // 64

            def __getitem__(self, i):
                return x[64 * i : 64 * (i + 1)], y[64 * i : 64 * (i + 1)]

        data = Batches()
    model = mlp(keras.optimizers.SGD(0.01))
    result = lr_range_test(model, data, start_lr=1e-3, end_lr=0.5, num_steps=40, shuffle=False)
    assert len(result.history) == 40


# ---------------------------------------------------------------------------
# Nothing lost: every exit path restores the model and optimizer bit for bit

class RaiseAt(keras.callbacks.Callback):
    def __init__(self, step, error):
        super().__init__()
        self.step, self.error = step, error

    def on_train_batch_end(self, batch, logs=None):
        if batch == self.step:
            raise self.error


def trained_model(digits, optimizer):
    """A model whose optimizer state is far from its initial values."""
    x, y = digits
    model = mlp(optimizer, stateful_layers=True)
    model.fit(x, y, batch_size=64, epochs=1, verbose=0)
    return model


OPTIMIZERS = {
    "adam": lambda: keras.optimizers.Adam(1e-3),
    "sgd_momentum": lambda: keras.optimizers.SGD(0.05, momentum=0.9, nesterov=True),
    "loss_scale": lambda: keras.optimizers.LossScaleOptimizer(keras.optimizers.Adam(1e-3)),
}


@pytest.mark.parametrize("optimizer", OPTIMIZERS, ids=list(OPTIMIZERS))
@pytest.mark.parametrize(
    "ending", ["finished", "diverged", "nan", "exception", "keyboard_interrupt", "bad_input"]
)
def test_model_and_optimizer_are_restored_however_the_test_ends(digits, optimizer, ending):
    x, y = digits
    model = trained_model(digits, OPTIMIZERS[optimizer]())
    before = state(model)
    kwargs = dict(start_lr=1e-4, end_lr=1e-2, num_steps=30, batch_size=32)
    if ending == "diverged":
        kwargs.update(end_lr=1e8, mode="exponential")
    if ending == "nan":  # from batch 5 on, the loss is NaN
        weights = np.where(np.arange(len(x)) >= 32 * 5, np.nan, 1.0).astype("float32")
        kwargs.update(shuffle=False, sample_weight=weights)
    if ending in ("exception", "keyboard_interrupt"):
        error = RuntimeError("boom") if ending == "exception" else KeyboardInterrupt()
        with pytest.raises(type(error)):
            lr_range_test(model, x, y, callbacks=[RaiseAt(7, error)], **kwargs)
    elif ending == "bad_input":  # fails as the first step is traced; on JAX, Keras has
        # emptied the variables by then, and the model's own error must still surface
        with pytest.raises(ValueError, match="expected axis -1 of input shape"):
            lr_range_test(model, x[:, :-1], y, **kwargs)
    else:
        result = lr_range_test(model, x, y, **kwargs)
        assert result.stop_reason == ending and result.num_steps == 30
        if ending == "finished":
            assert len(result.history) == 30
        if ending == "diverged":
            assert len(result.history) < 30
        if ending == "nan":
            assert len(result.history) == 6 and np.isnan(result.history["loss"].iloc[-1])
    assert_same_state(before, model)
    assert not model.stop_training
    # Nothing of the sweep is left on the model: a plain fit runs (a stale shadowed step
    # would raise; the state it starts from is checked just above).
    model.fit(x[:64], y[:64], batch_size=32, verbose=0)


def test_a_train_step_set_on_the_model_itself_is_put_back(digits):
    x, y = digits
    model = mlp(keras.optimizers.SGD(0.01))
    original = model.train_step

    def own_step(*args):  # TF and torch: (data); JAX: (state, data)
        return original(*args)

    model.train_step = own_step
    result = lr_range_test(model, x, y, start_lr=1e-4, end_lr=1.0, num_steps=10)
    assert len(result.history) == 10
    assert model.__dict__["train_step"] is own_step
    plain = mlp(keras.optimizers.SGD(0.01))
    lr_range_test(plain, x, y, start_lr=1e-4, end_lr=1.0, num_steps=10)
    assert "train_step" not in plain.__dict__, "the class's own step again"


def test_nnx_mode_is_refused_before_anything_changes(digits, monkeypatch):
    x, y = digits
    model = trained_model(digits, keras.optimizers.Adam(1e-3))
    before = state(model)
    # raising=False: Keras < 3.11 has no `is_nnx_enabled` to replace.
    monkeypatch.setattr(keras.config, "is_nnx_enabled", lambda: True, raising=False)
    with pytest.raises(ValueError, match="NNX"):
        lr_range_test(model, x, y, start_lr=1e-4, end_lr=1.0, num_steps=10)
    assert_same_state(before, model)
    assert "train_step" not in model.__dict__


def test_unbuilt_optimizer_is_built_first_so_it_can_be_restored(digits):
    x, y = digits
    model = mlp(keras.optimizers.Adam(1e-3))
    assert not model.optimizer.built
    lr_range_test(model, x, y, start_lr=1e-4, end_lr=1.0, num_steps=10)
    assert int(model.optimizer.iterations.numpy()) == 0
    assert all(not np.any(v.numpy()) for v in model.optimizer.variables[2:]), "fresh moments"


# ---------------------------------------------------------------------------
# Result: bounds, schedule, plot

@pytest.fixture(scope="module")
def digits_sweep(digits):
    keras.utils.set_random_seed(0)
    x, y = digits
    model = mlp(keras.optimizers.SGD(0.01, momentum=0.9))
    return lr_range_test(model, x[:1400], y[:1400], start_lr=1e-4, end_lr=10.0, epochs=6,
                         mode="exponential", batch_size=32,
                         validation_data=(x[1400:], y[1400:]), eval_every=10)


def test_real_sweep_suggests_bounds_inside_the_sweep(digits_sweep):
    suggestion = digits_sweep.suggest_bounds()
    assert suggestion.metric == "loss" and suggestion.method == "lowest_loss"
    lrs, loss = digits_sweep.curve("loss")
    assert suggestion.max_lr in lrs and loss[list(lrs).index(suggestion.max_lr)] < loss[0] / 2
    assert suggestion.lr == pytest.approx(suggestion.max_lr / 2.5)
    assert suggestion.base_lr == pytest.approx(suggestion.max_lr / 25)
    # Digits with SGD+momentum: the grids of the demo and the benchmark find the best
    # fixed LR near 0.03-0.1; the lowest loss of this sweep lies a little above.
    assert 0.03 < suggestion.max_lr < 1.0
    by_accuracy = digits_sweep.suggest_bounds(metric="val_accuracy")
    assert by_accuracy.method == "accuracy" and by_accuracy.lr is None
    assert 1e-3 < by_accuracy.base_lr < 2e-2 and 1e-2 < by_accuracy.max_lr < 1.0
    for method in ("valley", "steepest", "minimum"):
        by_loss = digits_sweep.suggest_bounds(metric="loss", method=method)
        assert by_loss.base_lr < by_loss.max_lr


def test_result_schedule_uses_the_bounds(digits_sweep):
    suggestion = digits_sweep.suggest_bounds()
    schedule = digits_sweep.schedule("triangular2", step_size=step_size_for(44, 4))
    assert isinstance(schedule, CyclicalLearningRate)
    assert (schedule.base_lr, schedule.max_lr, schedule.step_size) == (
        suggestion.base_lr, suggestion.max_lr, 176
    )
    adjusted = digits_sweep.schedule(step_size=10, bounds=suggestion._replace(max_lr=0.5))
    assert (adjusted.base_lr, adjusted.max_lr) == (suggestion.base_lr, 0.5)
    by_hand = digits_sweep.schedule(step_size=10, bounds=(0.002, 0.03))
    assert (by_hand.base_lr, by_hand.max_lr) == (0.002, 0.03)
    with pytest.raises(TypeError, match="step_size"):
        digits_sweep.schedule()
    with pytest.raises(TypeError, match="a `Bounds` or a \\(base_lr, max_lr\\) pair"):
        digits_sweep.schedule(step_size=10, bounds=0.03)


def test_plot_marks_the_bounds_on_a_log_axis(digits_sweep):
    ax = digits_sweep.plot()
    suggestion = digits_sweep.suggest_bounds()
    assert ax.get_xscale() == "log"
    marked = sorted(line.get_xdata()[0] for line in ax.lines[2:])
    assert marked == pytest.approx(sorted([suggestion.base_lr, suggestion.lr, suggestion.max_lr]))
    matplotlib.pyplot.close(ax.figure)


def test_plot_says_why_when_there_are_no_bounds():
    history = RangeTestCallback(0.1, 0.2).history
    history = history.assign(step=range(6), learning_rate=np.linspace(0.1, 0.2, 6), loss=1.0)
    ax = RangeTestResult(history, "linear", 0.1, 0.2).plot()
    assert "no bounds" in ax.get_title()
    matplotlib.pyplot.close(ax.figure)


def test_suggest_bounds_names_the_recorded_columns(digits_sweep):
    with pytest.raises(ValueError, match=r"\['accuracy', 'loss'.*metric='auc'"):
        digits_sweep.suggest_bounds(metric="auc")
    with pytest.raises(ValueError, match="method='best'"):
        digits_sweep.suggest_bounds(method="best")


# ---------------------------------------------------------------------------
# Bad input

@pytest.mark.parametrize(
    "kwargs, error, fragment",
    [
        (dict(start_lr=float("nan"), end_lr=1.0), ValueError, "start_lr=nan"),
        (dict(start_lr=0.0, end_lr=float("inf")), ValueError, "end_lr=inf"),
        (dict(start_lr=0.0, end_lr=1.0, mode="exponential"), ValueError, "start_lr=0.0"),
        (dict(start_lr=-1e-3, end_lr=1.0), ValueError, "start_lr=-0.001"),
        (dict(start_lr=1.0, end_lr=0.1), ValueError, "end_lr=0.1, start_lr=1.0"),
        (dict(start_lr=0.1, end_lr=1.0, num_steps=1), ValueError, "num_steps=1"),
        (dict(start_lr=0.1, end_lr=1.0, mode="log"), ValueError, "mode='log'"),
        (dict(start_lr=0.1, end_lr=1.0, stop_factor=1.0), ValueError, "stop_factor=1.0"),
        (dict(start_lr="0.1", end_lr=1.0), TypeError, "start_lr='0.1'"),
        (dict(start_lr=0.1, end_lr=1.0, eval_every=5), ValueError, "validation_data=None"),
        (dict(validation_data=(1, 2, 3, 4)), ValueError, "Received: a tuple of 4 items"),
    ],
)
def test_bad_arguments(kwargs, error, fragment):
    with pytest.raises(error, match=fragment):
        RangeTestCallback(**kwargs)


def test_bad_models_are_refused_before_anything_changes(digits):
    x, y = digits
    uncompiled = keras.Sequential([keras.Input((64,)), keras.layers.Dense(10)])
    with pytest.raises(ValueError, match="compiled model"):
        lr_range_test(uncompiled, x, y, start_lr=1e-3, end_lr=1.0)
    scheduled = mlp(keras.optimizers.SGD(CyclicalLearningRate(0.01, 0.1, 5)))
    with pytest.raises(ValueError, match="created with a schedule"):
        lr_range_test(scheduled, x, y, start_lr=1e-3, end_lr=1.0)
    unbuilt = keras.Sequential([keras.layers.Dense(10)])
    unbuilt.compile(keras.optimizers.SGD(0.01), "mse")
    with pytest.raises(ValueError, match="built model"):
        lr_range_test(unbuilt, x, y, start_lr=1e-3, end_lr=1.0)
    model = mlp(keras.optimizers.SGD(0.01))
    with pytest.raises(ValueError, match="Received: seed=4294967295, repeats=2"):
        lr_range_test(model, x, y, seed=2**32 - 1, repeats=2)
    with pytest.raises(ValueError, match="Received: seed=-1, repeats=1"):
        lr_range_test(model, x, y, seed=-1)
    with pytest.raises(ValueError, match="Received: batch_size=-4"):
        lr_range_test(model, x, y, batch_size=-4)
    with pytest.raises(ValueError, match="`initial_epoch` would skip part of the sweep"):
        lr_range_test(model, x, y, initial_epoch=1)
    with pytest.raises(ValueError, match="Received: verbose='loud'"):
        lr_range_test(model, x, y, verbose="loud")


def test_an_empty_sweep_says_it_recorded_nothing():
    result = RangeTestCallback(start_lr=1e-3, end_lr=1.0, num_steps=10).result
    assert result.ended == "0 of 10 steps, fit ended"
    for read in (result.suggest_bounds, result.plot):
        with pytest.raises(ValueError, match="The sweep recorded no steps"):
            read()


# ---------------------------------------------------------------------------
# Defaults, repeats, seeds, and rows that share a step


def test_without_bounds_the_sweep_is_exponential_over_a_wide_range(digits):
    x, y = digits
    result = lr_range_test(mlp(keras.optimizers.SGD(0.01)), x, y, num_steps=20, verbose=0)
    assert (result.mode, result.start_lr, result.end_lr) == ("exponential", 1e-7, 10.0)
    planned = sweep_learning_rates(1e-7, 10.0, 20, "exponential")
    np.testing.assert_allclose(result.history["learning_rate"], planned[:len(result.history)],
                               rtol=1e-5)  # the LRs the float32 step used
    with pytest.raises(ValueError, match="linear sweep needs both bounds.*end_lr=None"):
        lr_range_test(mlp(keras.optimizers.SGD(0.01)), x, y, start_lr=1e-3, mode="linear")


def test_repeats_with_a_seed_give_the_same_curves_and_bounds_each_call(digits):
    x, y = digits
    model = trained_model(digits, keras.optimizers.SGD(0.01, momentum=0.9))
    before = state(model)
    kwargs = dict(start_lr=1e-4, end_lr=10.0, mode="exponential", num_steps=60, batch_size=32,
                  repeats=3, seed=7, verbose=0)
    first = lr_range_test(model, x, y, **kwargs)
    second = lr_range_test(model, x, y, **kwargs)
    # A NumPy seed is the same seed; one callback instead of a list, as `fit` takes it.
    third = lr_range_test(model, x, y, **{**kwargs, "seed": np.int64(7),
                                          "callbacks": keras.callbacks.TerminateOnNaN()})
    assert_same_state(before, model)
    assert first.repeats == 3 and sorted(set(first.history["repeat"])) == [0, 1, 2]
    pd.testing.assert_frame_equal(first.history, second.history)
    pd.testing.assert_frame_equal(first.history, third.history)
    spread = first.suggestion_spread(metric="loss")
    pd.testing.assert_frame_equal(spread, second.suggestion_spread(metric="loss"))
    assert spread["repeat"].tolist() == [0, 1, 2]
    for repeat, row in spread.iterrows():  # each sweep's own suggestion, found on its own
        alone = first.history[first.history["repeat"] == repeat].drop(columns="repeat")
        alone = RangeTestResult(alone, first.mode, first.start_lr, first.end_lr, first.num_steps)
        try:
            own = alone.suggest_bounds(metric="loss")
        except ValueError as error:
            assert row["refused"] == str(error) and np.isnan(row["max_lr"])
        else:
            assert row["refused"] is None
            assert (row["base_lr"], row["max_lr"]) == (own.base_lr, own.max_lr)
    by_repeat = first.history.groupby("repeat")["loss"]
    assert not np.allclose(by_repeat.get_group(0).iloc[:20], by_repeat.get_group(1).iloc[:20]), (
        "each sweep gets its own seed")
    lrs, median = first.curve("loss")
    step = first.history[first.history["repeat"] == 0]["step"].iloc[10]
    assert median[step] == pytest.approx(np.median([g.iloc[10] for _, g in by_repeat]))
    assert len(lrs) == first.history["step"].nunique()


def test_rows_that_share_a_step_are_averaged_before_any_rule_runs():
    history = pd.DataFrame({"step": [0, 0, 1, 1, 2], "learning_rate": [0.1, 0.1, 0.2, 0.2, 0.3],
                            "loss": [1.0, 3.0, 2.0, 2.0, 5.0]})
    lrs, loss = RangeTestResult(history, "linear", 0.1, 0.3).curve("loss")
    assert lrs.tolist() == [0.1, 0.2, 0.3] and loss.tolist() == [2.0, 2.0, 5.0]


def test_under_gradient_accumulation_lr_range_test_spans_num_steps_updates(digits):
    x, y = digits
    model = mlp(keras.optimizers.SGD(0.01, gradient_accumulation_steps=3))
    result = lr_range_test(model, x, y, start_lr=1e-3, end_lr=1e-1, mode="exponential",
                           num_steps=8, batch_size=32, verbose=0)
    assert result.stop_reason == "finished" and len(result.history) == 24
    assert result.history["step"].tolist() == [i for i in range(8) for _ in range(3)]
    assert result.history["learning_rate"].iloc[-1] == pytest.approx(0.1, rel=1e-6)
    lrs, _ = result.curve("loss")
    assert len(lrs) == 8
    assert result.ended == "8 of 8 steps, finished"  # updates, not the 24 rows


def test_validation_split_counts_training_rows_as_keras_does(digits):
    x, y = digits
    result = lr_range_test(mlp(keras.optimizers.SGD(0.01)), x[:65], y[:65], start_lr=1e-3,
                           end_lr=0.1, num_steps=10, batch_size=32, validation_split=0.01,
                           verbose=0)
    assert result.stop_reason == "finished" and len(result.history) == 10
    with pytest.raises(ValueError, match="no batches"):
        lr_range_test(mlp(keras.optimizers.SGD(0.01)), x[:0], y[:0], verbose=0)


def test_accuracies_of_named_outputs_are_accuracies(digits):
    x, y = digits
    keras.utils.set_random_seed(0)  # the weights too, not only the sweep
    inputs = keras.Input((64,))
    hidden = keras.layers.Dense(32, activation="relu")(inputs)
    model = keras.Model(inputs, {"digit": keras.layers.Dense(10, name="digit")(hidden),
                                 "parity": keras.layers.Dense(2, name="parity")(hidden)})
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(keras.optimizers.SGD(0.01, momentum=0.9), loss={"digit": loss, "parity": loss},
                  metrics={"digit": ["accuracy"], "parity": ["accuracy"]})
    keras.utils.set_random_seed(0)
    result = lr_range_test(model, x, {"digit": y, "parity": y % 2}, start_lr=1e-4, end_lr=10.0,
                           mode="exponential", epochs=4, batch_size=32, verbose=0)
    assert {"digit_accuracy", "parity_accuracy"} <= set(result.history.columns)
    assert result.default_metric() == "loss", "two accuracies: read the total loss"
    assert result.suggest_bounds(metric="digit_accuracy").method == "accuracy"


def test_verbose_prints_the_suggestion(digits, capsys):
    x, y = digits
    keras.utils.set_random_seed(0)
    result = lr_range_test(mlp(keras.optimizers.SGD(0.01)), x, y, num_steps=30, verbose=1,
                           seed=0)
    out = capsys.readouterr().out
    assert "learning_rate" in out, "the progress bar shows the LR"
    assert out.rstrip().splitlines()[-1] == describe_suggestion(result)


def test_a_sweep_with_no_signal_is_refused_with_a_reason(digits):
    x, y = digits
    flat = "no clear drop over the sweep .* it is flat or pure noise"
    keras.utils.set_random_seed(0)
    nothing = np.full_like(x, np.nan)  # the inputs carry nothing: the loss is NaN or flat
    result = lr_range_test(mlp(keras.optimizers.SGD(0.01)), nothing, y, num_steps=40,
                           verbose=0, seed=0)
    # The backends differ on NaN inputs (TensorFlow's relu maps NaN to 0): a NaN loss
    # stops the sweep at once, a finite one is flat.
    nan_loss = result.stop_reason == "nan"
    with pytest.raises(ValueError, match="has 0 finite points" if nan_loss else flat):
        result.suggest_bounds()
    keras.utils.set_random_seed(0)
    constant = np.zeros_like(x)  # one input for every label: nothing to learn beyond priors
    result = lr_range_test(mlp(keras.optimizers.SGD(0.01)), constant, y, start_lr=1e-7,
                           end_lr=1e-3, num_steps=60, verbose=0, seed=0)
    with pytest.raises(ValueError, match=flat):
        result.suggest_bounds()
