import json
import math
import warnings

import keras
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from keras import ops

from keras_clr import CyclicalLearningRate, CyclicLR, OneCycle, schedules
from tests.conftest import WeightRecorder, probe_data, probe_model

# ---------------------------------------------------------------------------
# Oracles written from the papers' formulas, in exact Python integers/floats.

def clr_oracle(step, base, top, up, down=None, mode="triangular", gamma=1.0, scale=None,
               scale_mode="cycle"):
    down = up if down is None else down
    period = up + down
    cycle = 1 + step // period
    position = step % period
    height = position / up if position <= up else (period - position) / down
    if scale is not None:
        factor = scale(cycle if scale_mode == "cycle" else step)
    elif mode == "triangular2":
        factor = 1 / 2 ** (cycle - 1)
    elif mode == "exp_range":
        factor = gamma**step
    else:
        factor = 1.0
    return base + (top - base) * height * factor


def paper_triangular(it, base, top, step_size):
    """Smith (2017), section 3.1, verbatim."""
    cycle = math.floor(1 + it / (2 * step_size))
    x = abs(it / step_size - 2 * cycle + 1)
    return base + (top - base) * max(0, 1 - x)


def one_cycle_oracle(step, max_lr, total, pct=0.3, div=25.0, final_div=1e4, anneal="cos",
                     three_phase=False, levels=None):
    initial = max_lr / div
    start, peak, end = levels or (initial, max_lr, initial / final_div)
    step = min(step, total - 1)
    warm = pct * total
    if three_phase:
        phases = [(warm - 1, start, peak), (2 * warm - 2, peak, start), (total - 1, start, end)]
    else:
        phases = [(warm - 1, start, peak), (total - 1, peak, end)]
    begin = 0.0
    for i, (stop, a, b) in enumerate(phases):
        if step <= stop or i == len(phases) - 1:
            t = (step - begin) / (stop - begin)
            if anneal == "cos":
                return b + (a - b) / 2 * (math.cos(math.pi * t) + 1)
            return a + (b - a) * t
        begin = stop


def graph_values(schedule, steps):
    """The in-graph path, fed an int64 array as the optimizer would."""
    return ops.convert_to_numpy(schedule(np.asarray(steps, dtype="int64"))).astype("float64")


def f32_tolerance(low, high):
    return 4 * float(np.finfo(np.float32).eps) * max(abs(low), abs(high))


@keras.saving.register_keras_serializable(package="keras_clr_tests")
def halve_every_other_cycle(cycle):
    return 1.0 / ops.power(2.0, ops.floor_divide(cycle - 1.0, 2.0))


@keras.saving.register_keras_serializable(package="keras_clr_tests")
class PowerDecay:
    """A scale object with its own config: amplitude * cycle**-power."""

    def __init__(self, power):
        self.power = power

    def __call__(self, cycle):
        return ops.power(cycle, -self.power)

    def get_config(self):
        return {"power": self.power}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


# ---------------------------------------------------------------------------
# CyclicalLearningRate values

def test_hand_checked_triangle():
    schedule = CyclicalLearningRate(base_lr=1.0, max_lr=5.0, step_size=4)
    expected = [1, 2, 3, 4, 5, 4, 3, 2, 1, 2, 3, 4, 5]
    assert schedule.values(np.arange(13)).tolist() == expected
    assert graph_values(schedule, np.arange(13)).tolist() == expected
    assert float(schedule(0)) == 1.0 and float(schedule(4)) == 5.0


def test_triangular_equals_papers_formula():
    schedule = CyclicalLearningRate(0.001, 0.006, step_size=2000)
    steps = np.arange(0, 12001, 37)
    expected = [paper_triangular(s, 0.001, 0.006, 2000) for s in steps]
    np.testing.assert_allclose(schedule.values(steps), expected, rtol=0, atol=1e-15)


def test_triangular2_halves_amplitude_each_cycle():
    schedule = CyclicalLearningRate(0.0, 8.0, step_size=2, mode="triangular2")
    assert schedule.values([2, 6, 10, 14]).tolist() == [8.0, 4.0, 2.0, 1.0]


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(mode="triangular"),
        dict(mode="triangular2"),
        dict(mode="exp_range", gamma=0.999),
        dict(mode="triangular", step_size_down=11),
        dict(mode="triangular2", step_size_down=3),
        dict(mode="exp_range", gamma=0.99, step_size_down=9),
    ],
)
def test_matches_oracle_on_both_paths(kwargs):
    base, top, up = 0.01, 0.3, 5
    schedule = CyclicalLearningRate(base, top, up, **kwargs)
    steps = np.arange(200)
    oracle_kwargs = dict(kwargs)
    down = oracle_kwargs.pop("step_size_down", None)
    expected = [clr_oracle(int(s), base, top, up, down, **oracle_kwargs) for s in steps]
    np.testing.assert_allclose(schedule.values(steps), expected, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(
        graph_values(schedule, steps), expected, rtol=0, atol=f32_tolerance(base, top)
    )


@pytest.mark.parametrize("step", [2**24 + 3, 2**24 + 13, 2**31 + 7, 2**31 + 1999, 10**10 + 1])
@pytest.mark.parametrize("mode", ["triangular", "triangular2"])
def test_exact_at_huge_steps(step, mode):
    schedule = CyclicalLearningRate(0.1, 0.5, step_size=2000, mode=mode)
    expected = clr_oracle(step, 0.1, 0.5, 2000, mode=mode)
    assert schedule.values(step) == pytest.approx(expected, rel=1e-12)
    if keras.backend.backend() == "jax" and step >= 2**31:
        return  # JAX counts optimizer steps in int32: such steps cannot occur there
    assert graph_values(schedule, [step])[0] == pytest.approx(expected, abs=f32_tolerance(0.1, 0.5))


def test_float32_formula_would_fail_at_2_pow_31():
    """Guards the test above: the naive float32 formula is visibly wrong there."""
    step, up = np.float32(2**31 + 1999), np.float32(2000)
    cycle = np.floor(1 + step / (2 * up))
    x = abs(step / up - 2 * cycle + 1)
    naive = 0.1 + 0.4 * max(0.0, 1 - float(x))
    assert abs(naive - clr_oracle(2**31 + 1999, 0.1, 0.5, 2000)) > 0.01


def test_accepts_python_int_numpy_array_and_int64_variable():
    schedule = CyclicalLearningRate(1.0, 5.0, 4)
    assert float(schedule(6)) == 3.0
    assert graph_values(schedule, np.array([[1, 2], [3, 4]])).tolist() == [[2, 3], [4, 5]]
    variable = keras.Variable(5, dtype="int64", trainable=False)
    assert float(schedule(variable)) == 4.0


def test_custom_scale_fn_by_cycle_and_by_iteration():
    by_cycle = CyclicalLearningRate(0.0, 1.0, 2, scale_fn=halve_every_other_cycle)
    assert by_cycle.values([2, 6, 10, 14]).tolist() == [1.0, 1.0, 0.5, 0.5]
    assert graph_values(by_cycle, [2, 6, 10, 14]).tolist() == [1.0, 1.0, 0.5, 0.5]
    by_step = CyclicalLearningRate(
        0.0, 1.0, 2, scale_fn=halve_every_other_cycle, scale_mode="iterations"
    )
    # scale_fn sees the step: at step 2 -> 1/2**floor(1/2) = 1; step 6 -> 1/2**2.
    assert by_step.values([2, 6]).tolist() == [1.0, 0.25]


@pytest.mark.parametrize(
    "kwargs",
    [dict(mode="triangular2"), dict(mode="exp_range", gamma=0.97), dict(step_size_down=4)],
)
def test_matches_pytorch_cycliclr(kwargs):
    torch = pytest.importorskip("torch")
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=0.1, momentum=0.9)
    reference = torch.optim.lr_scheduler.CyclicLR(
        optimizer, 0.01, 0.1, step_size_up=5, base_momentum=0.8, max_momentum=0.9, **kwargs
    )
    lrs, momenta = [], []
    for _ in range(60):
        lrs.append(optimizer.param_groups[0]["lr"])
        momenta.append(optimizer.param_groups[0]["momentum"])
        optimizer.step()
        reference.step()
    ours = CyclicalLearningRate(0.01, 0.1, 5, **kwargs)
    np.testing.assert_allclose(ours.values(np.arange(60)), lrs, rtol=1e-12)
    np.testing.assert_allclose(graph_values(ours, np.arange(60)), lrs, atol=f32_tolerance(0, 0.1))
    np.testing.assert_allclose(ours.momentum_values(np.arange(60), 0.8, 0.9), momenta, rtol=1e-12)


def test_momentum_mirrors_the_lr():
    schedule = CyclicalLearningRate(1.0, 5.0, 4)
    np.testing.assert_allclose(
        schedule.momentum_values(np.arange(9), 0.85, 0.95),
        [0.95, 0.925, 0.9, 0.875, 0.85, 0.875, 0.9, 0.925, 0.95],
    )


@settings(max_examples=25, deadline=None, database=None)  # no examples replayed across runs
@given(
    base=st.floats(0, 1),
    span=st.floats(1e-3, 1),
    up=st.integers(1, 50),
    down=st.integers(1, 50),
    mode=st.sampled_from(["triangular", "triangular2", "exp_range"]),
    start=st.integers(0, 2**40),
)
def test_graph_and_host_paths_agree(base, span, up, down, mode, start):
    gamma = 0.999 if mode == "exp_range" else 1.0
    schedule = CyclicalLearningRate(base, base + span, up, mode, gamma, step_size_down=down)
    if keras.backend.backend() == "jax":
        start %= 2**31 - 1000  # JAX counts steps in int32
    steps = start + np.arange(0, 4 * (up + down), 3)
    if mode == "exp_range":
        steps = steps % 5000  # gamma**step underflows to 0 beyond that: nothing to compare
    np.testing.assert_allclose(
        graph_values(schedule, steps), schedule.values(steps), atol=f32_tolerance(base, base + span)
    )


@pytest.mark.backends("torch")
@pytest.mark.parametrize("schedule", [CyclicalLearningRate(0.1, 0.5, 3, mode="triangular2"),
                                      OneCycle(0.5, 20, three_phase=True)], ids=["clr", "1cycle"])
def test_on_torch_a_cpu_step_is_computed_with_python_floats(schedule, monkeypatch):
    # PyTorch runs the optimizer eagerly: the optimizer's CPU step takes the
    # scalar path (~10x cheaper than a dozen eager ops), with the same values.
    monkeypatch.setattr(schedules, "_graph_ops", None)  # the graph path would now fail
    for step in (0, 4, 13, 2**31 + 7):
        iterations = keras.Variable(step, dtype="int64", trainable=False)
        assert ops.convert_to_numpy(schedule(iterations)).dtype == np.float32
        np.testing.assert_allclose(ops.convert_to_numpy(schedule(iterations)),
                                   schedule.values(step), rtol=1e-7)
        np.testing.assert_allclose(ops.convert_to_numpy(schedule.momentum(iterations, 0.8, 0.9)),
                                   schedule.momentum_values(step, 0.8, 0.9), rtol=1e-7)


# ---------------------------------------------------------------------------
# OneCycle

@pytest.mark.parametrize(
    "kwargs",
    [
        dict(),
        dict(three_phase=True),
        dict(anneal_strategy="linear", pct_start=0.25),
        dict(pct_start=0.45, div_factor=10.0, final_div_factor=100.0, three_phase=True),
    ],
)
def test_one_cycle_matches_oracle(kwargs):
    schedule = OneCycle(0.1, 100, **kwargs)
    steps = np.arange(100)
    oracle_kwargs = {
        {"pct_start": "pct", "div_factor": "div", "final_div_factor": "final_div",
         "anneal_strategy": "anneal"}.get(k, k): v
        for k, v in kwargs.items()
    }
    expected = [one_cycle_oracle(int(s), 0.1, 100, **oracle_kwargs) for s in steps]
    np.testing.assert_allclose(schedule.values(steps), expected, rtol=1e-12, atol=1e-18)
    np.testing.assert_allclose(graph_values(schedule, steps), expected, atol=f32_tolerance(0, 0.1))
    momenta = [one_cycle_oracle(int(s), 0.1, 100, levels=(0.95, 0.85, 0.95), **oracle_kwargs)
               for s in steps]
    np.testing.assert_allclose(schedule.momentum_values(steps, 0.85, 0.95), momenta, rtol=1e-12)


def test_one_cycle_round_numbers_and_hold_past_the_end():
    schedule = OneCycle(max_lr=1.0, total_steps=11, pct_start=0.5, div_factor=2.0,
                        final_div_factor=5.0, anneal_strategy="linear")
    lrs = schedule.values(np.arange(15))
    # PyTorch's phases: warm-up ends at step pct_start * total_steps - 1 = 4.5, the
    # anneal to 0.5 / 5 at step 10.
    assert lrs[0] == 0.5 and lrs[4] == pytest.approx(0.5 + 0.5 * 4 / 4.5)
    assert lrs[5] == pytest.approx(1.0 - 0.9 * 0.5 / 5.5)
    assert lrs.max() <= 1.0
    assert lrs[10] == pytest.approx(0.1) and lrs[10:].tolist() == [lrs[10]] * 5
    assert float(schedule(10**9)) == pytest.approx(0.1)


@pytest.mark.parametrize("kwargs", [dict(), dict(three_phase=True), dict(anneal_strategy="linear")])
def test_one_cycle_matches_pytorch(kwargs):
    torch = pytest.importorskip("torch")
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=0.1, momentum=0.9)
    reference = torch.optim.lr_scheduler.OneCycleLR(optimizer, 0.1, total_steps=50, **kwargs)
    lrs, momenta = [], []
    for step in range(50):
        lrs.append(optimizer.param_groups[0]["lr"])
        momenta.append(optimizer.param_groups[0]["momentum"])
        optimizer.step()
        if step < 49:
            reference.step()
    ours = OneCycle(0.1, 50, **kwargs)
    np.testing.assert_allclose(ours.values(np.arange(50)), lrs, rtol=1e-12)
    np.testing.assert_allclose(ours.momentum_values(np.arange(50), 0.85, 0.95), momenta, rtol=1e-12)


# ---------------------------------------------------------------------------
# The optimizer really uses schedule(t) at step t

@pytest.mark.parametrize(
    "schedule",
    [CyclicalLearningRate(0.1, 0.5, 3, "triangular2"), OneCycle(0.5, 20, three_phase=True)],
    ids=["clr", "one_cycle"],
)
def test_optimizer_step_t_uses_schedule_t(schedule):
    model = probe_model(keras.optimizers.SGD(learning_rate=schedule))
    recorder = WeightRecorder()
    model.fit(*probe_data(20), batch_size=4, shuffle=False, verbose=0, callbacks=[recorder])
    recorder.assert_learning_rates(schedule.values(np.arange(20)))


def test_under_gradient_accumulation_keras_evaluates_at_the_batch_count():
    # Documented in docs/distributed.md: Keras calls the
    # schedule with its batch counter, so update u (batches u*k .. u*k+k-1)
    # uses schedule(u*k + k - 1); the CyclicLR callback uses schedule(u).
    schedule, k = CyclicalLearningRate(1.0, 5.0, 4), 2
    model = probe_model(keras.optimizers.SGD(schedule, gradient_accumulation_steps=k))
    recorder = WeightRecorder()
    model.fit(*probe_data(16), batch_size=4, shuffle=False, verbose=0, callbacks=[recorder])
    np.testing.assert_array_equal(recorder.deltas[0::k], 0.0, "no update mid-group")
    applied = -recorder.deltas[k - 1::k]
    np.testing.assert_allclose(applied, schedule.values(np.arange(8) * k + k - 1))
    assert applied.tolist() == [2, 4, 4, 2, 2, 4, 4, 2]


# ---------------------------------------------------------------------------
# Serialization

ALL_SCHEDULES = [
    CyclicalLearningRate(0.01, 0.1, 7, step_size_down=3, name="asym"),
    CyclicalLearningRate(0.01, 0.1, 7, mode="exp_range", gamma=0.99),
    CyclicalLearningRate(0.0, 0.1, 7, scale_fn=halve_every_other_cycle, scale_mode="iterations"),
    OneCycle(0.3, 1000, pct_start=0.25, anneal_strategy="linear", three_phase=True, name="oc"),
    CyclicalLearningRate(0.0, 0.1, 7, scale_fn=PowerDecay(0.5)),
]


@pytest.mark.parametrize("schedule", ALL_SCHEDULES)
def test_evaluating_at_the_optimizers_step_warns_nothing(schedule):
    # On JAX without x64, a cast to int64 warned (and truncated) on every fit.
    iterations = keras.optimizers.SGD().iterations
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        schedule(iterations)
        schedule.momentum(iterations, 0.85, 0.95)


@pytest.mark.parametrize("schedule", ALL_SCHEDULES)
def test_config_round_trip(schedule):
    config = schedule.get_config()
    rebuilt = type(schedule).from_config(json.loads(json.dumps(config)))
    assert rebuilt.get_config() == config
    steps = np.arange(0, 3000, 7)
    np.testing.assert_array_equal(rebuilt.values(steps), schedule.values(steps))
    restored = keras.optimizers.schedules.deserialize(
        keras.optimizers.schedules.serialize(schedule)
    )
    assert type(restored) is type(schedule) and restored.get_config() == config


def test_config_holds_every_argument():
    import inspect

    for cls in (CyclicalLearningRate, OneCycle):
        arguments = set(inspect.signature(cls).parameters)
        schedule = next(s for s in ALL_SCHEDULES if type(s) is cls)
        assert set(schedule.get_config()) == arguments


@pytest.mark.parametrize("schedule", [ALL_SCHEDULES[2], ALL_SCHEDULES[3]], ids=["clr", "oc"])
def test_saved_model_reloads_and_continues_from_saved_step(schedule, tmp_path):
    model = probe_model(keras.optimizers.SGD(learning_rate=schedule))
    model.fit(*probe_data(9), batch_size=4, shuffle=False, verbose=0)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path, custom_objects=None, compile=True, safe_mode=True)
    assert type(loaded.optimizer.learning_rate) is not float
    assert int(loaded.optimizer.iterations.numpy()) == 9
    recorder = WeightRecorder()
    loaded.fit(*probe_data(6), batch_size=4, shuffle=False, verbose=0, callbacks=[recorder])
    recorder.assert_learning_rates(schedule.values(np.arange(9, 15)))


def test_tf_addons_lambda_scale_fn_saves_and_loads_only_outside_safe_mode(tmp_path):
    # TF Addons' own documented example: `scale_fn=lambda x: 1 / (2.0 ** (x - 1))`.
    schedule = CyclicalLearningRate(0.01, 0.1, 7, scale_fn=lambda x: 1 / (2.0 ** (x - 1)))
    expected = CyclicalLearningRate(0.01, 0.1, 7, mode="triangular2")
    steps = np.arange(60)
    np.testing.assert_allclose(schedule.values(steps), expected.values(steps))
    model = probe_model(keras.optimizers.SGD(learning_rate=schedule))
    model.fit(*probe_data(9), batch_size=4, shuffle=False, verbose=0)
    path = tmp_path / "model.keras"
    model.save(path)
    with pytest.raises(ValueError, match="Requested the deserialization of a.*safe_mode=False"):
        keras.models.load_model(path)  # Keras' own message: safe mode refuses code
    loaded = keras.models.load_model(path, safe_mode=False)
    recorder = WeightRecorder()
    loaded.fit(*probe_data(6), batch_size=4, shuffle=False, verbose=0, callbacks=[recorder])
    recorder.assert_learning_rates(expected.values(np.arange(9, 15)))


def test_a_scale_fn_that_cannot_be_saved_is_refused_before_anything_is_saved():
    class Unregistered:
        def __call__(self, cycle):
            return 1 / cycle

    with pytest.raises(ValueError, match="`scale_fn` cannot be saved.*register_keras_serial"):
        CyclicalLearningRate(0.01, 0.1, 7, scale_fn=Unregistered())
    handle = open(__file__)  # a closure holding something JSON cannot hold
    try:
        with pytest.raises(ValueError, match="`scale_fn` cannot be saved"):
            CyclicalLearningRate(0.01, 0.1, 7, scale_fn=lambda c: 1 / c if handle else 1.0)
    finally:
        handle.close()


def test_a_callbacks_schedule_moved_into_an_optimizer_saves_and_loads(tmp_path):
    schedule = CyclicLR(base_lr=0.01, max_lr=0.1, step_size=7, mode="triangular2").schedule
    model = probe_model(keras.optimizers.SGD(learning_rate=schedule))
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert float(loaded.optimizer.learning_rate) == pytest.approx(0.01)
    reloaded = loaded.optimizer._learning_rate
    assert type(reloaded) is CyclicalLearningRate
    assert reloaded.get_config() == schedule.get_config()
    np.testing.assert_array_equal(reloaded.values(np.arange(30)), schedule.values(np.arange(30)))


# ---------------------------------------------------------------------------
# Bad input: each names the argument and the value

CLR_OK = dict(base_lr=0.01, max_lr=0.1, step_size=10)


@pytest.mark.parametrize(
    "changes, error, fragment",
    [
        (dict(base_lr=-0.1), ValueError, "base_lr=-0.1"),
        (dict(base_lr=float("nan")), ValueError, "base_lr=nan"),
        (dict(max_lr=float("inf")), ValueError, "max_lr=inf"),
        (dict(max_lr="0.1"), TypeError, "max_lr='0.1'"),
        (dict(base_lr=True), TypeError, "base_lr=True"),
        (dict(max_lr=0.01), ValueError, "max_lr=0.01, base_lr=0.01"),
        (dict(max_lr=0.001), ValueError, "`max_lr` must be greater than `base_lr`"),
        (dict(step_size=0), ValueError, "step_size=0"),
        (dict(step_size=2.5), ValueError, "step_size=2.5"),
        (dict(step_size="10"), TypeError, "step_size='10'"),
        (dict(step_size_down=-1), ValueError, "step_size_down=-1"),
        (dict(step_size=2**62), ValueError, "must be at most"),  # int64 overflows; JAX: int32
        (dict(mode="cosine"), ValueError, "mode='cosine'"),
        (dict(mode="exp_range", gamma=0.0), ValueError, "gamma=0.0"),
        (dict(mode="exp_range", gamma=1.5), ValueError, "gamma=1.5"),
        (dict(gamma=0.9), ValueError, "gamma=0.9, mode='triangular'"),
        (dict(scale_mode="epoch"), ValueError, "scale_mode='epoch'"),
        (dict(mode="exp_range", scale_mode="cycle"), ValueError, "scale_mode='cycle'"),
        (dict(mode="triangular2", scale_mode="iterations"), ValueError, "scale_mode='iterations'"),
        (dict(scale_fn=3), TypeError, "scale_fn=3"),
        (dict(scale_fn=halve_every_other_cycle, mode="triangular2"), ValueError,
         "mode='triangular2'"),
    ],
)
def test_clr_bad_arguments(changes, error, fragment):
    with pytest.raises(error, match=fragment.replace("(", r"\(").replace("[", r"\[")):
        CyclicalLearningRate(**{**CLR_OK, **changes})


@pytest.mark.parametrize("call, error, fragment", [
    (lambda s: s.values(None), TypeError, "steps=None"),
    (lambda s: s.values("3"), TypeError, "steps='3'"),
    (lambda s: s.values(np.nan), ValueError, "steps=nan"),
    (lambda s: s.momentum_values(3, 0.95, 0.85), ValueError,
     "base_momentum=0.95, max_momentum=0.85"),
    (lambda s: s.momentum_values(3, -1, 0.9), ValueError, "base_momentum=-1"),
], ids=["none", "string", "nan", "momenta_reversed", "momentum_negative"])
def test_host_values_refuse_bad_steps_and_momenta(call, error, fragment):
    for schedule in (CyclicalLearningRate(**CLR_OK), OneCycle(0.1, 100)):
        with pytest.raises(error, match=fragment):
            call(schedule)


def test_the_step_limit_follows_the_backends_step_counter():
    limit = 2**30 - 1 if schedules._step_dtype() == "int32" else 2**62 - 1
    assert CyclicalLearningRate(0.001, 0.006, step_size=limit).step_size == limit
    with pytest.raises(ValueError, match=f"at most {limit} steps.*step_size={limit + 1}"):
        CyclicalLearningRate(0.001, 0.006, step_size=limit + 1)


def test_integral_float_step_size_is_accepted():
    assert CyclicalLearningRate(0.001, 0.006, step_size=2000.0).step_size == 2000


@pytest.mark.parametrize(
    "changes, error, fragment",
    [
        (dict(max_lr=0), ValueError, "max_lr=0"),
        (dict(total_steps=0), ValueError, "total_steps=0"),
        (dict(total_steps=10.5), ValueError, "total_steps=10.5"),
        (dict(total_steps=2**62), ValueError, "must be at most"),
        (dict(pct_start=0.0), ValueError, "pct_start=0.0"),
        (dict(pct_start=1.0), ValueError, "pct_start=1.0"),
        (dict(div_factor=0), ValueError, "div_factor=0"),
        (dict(final_div_factor=-1), ValueError, "final_div_factor=-1"),
        (dict(anneal_strategy="cosine"), ValueError, "anneal_strategy='cosine'"),
        (dict(three_phase="yes"), TypeError, "three_phase='yes'"),
        (dict(total_steps=3, pct_start=0.3), ValueError, "pct_start=0.3, total_steps=3"),
        (dict(three_phase=True, pct_start=0.6), ValueError, "pct_start=0.6, total_steps=100"),
    ],
)
def test_one_cycle_bad_arguments(changes, error, fragment):
    with pytest.raises(error, match=fragment):
        OneCycle(**{**dict(max_lr=0.1, total_steps=100), **changes})
