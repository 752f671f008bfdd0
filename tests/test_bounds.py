import warnings

import numpy as np
import pytest

from keras_clr import bounds
from keras_clr.bounds import accuracy_bounds, loss_bounds, smooth


def sigmoid_accuracy(lrs, center, width, low=0.1, high=0.9):
    return low + (high - low) / (1 + np.exp(-(lrs - center) / width))


def exploding_loss(lrs):
    """Falls around lr=1e-2 (one decade wide), then explodes past ~0.1."""
    return 2.3 - 2.0 / (1 + (1e-2 / lrs) ** 2) + 50 * lrs**2


def test_smooth_is_centered_and_keeps_lines_straight():
    line = np.arange(20, dtype=float)
    np.testing.assert_allclose(smooth(line, 5)[2:-2], line[2:-2])  # no lag
    assert smooth([1.0, 2.0], 1).tolist() == [1.0, 2.0]


def test_accuracy_rule_on_a_sigmoid_matches_the_analytic_points():
    lrs = np.linspace(0.001, 0.1, 400)
    center, width = 0.03, 0.004
    result = accuracy_bounds(lrs, sigmoid_accuracy(lrs, center, width))
    # 10% and 95% of the rise of a logistic curve: center -/+ width * ln(9), ln(19).
    assert result.base_lr == pytest.approx(center - width * np.log(9), abs=0.001)
    assert result.max_lr == pytest.approx(center + width * np.log(19), abs=0.001)
    assert (result.method, result.metric) == ("accuracy", "accuracy")


def test_accuracy_rule_stops_where_the_curve_turns_down():
    lrs = np.linspace(0.001, 0.1, 400)
    tooth = sigmoid_accuracy(lrs, 0.02, 0.003) - sigmoid_accuracy(lrs, 0.06, 0.004, 0, 0.7)
    result = accuracy_bounds(lrs, tooth)
    peak = lrs[np.argmax(tooth)]
    assert 0.01 < result.base_lr < 0.02 < result.max_lr <= peak


def test_noise_barely_moves_the_bounds():
    rng = np.random.default_rng(0)
    lrs = np.linspace(0.001, 0.1, 400)
    clean = accuracy_bounds(lrs, sigmoid_accuracy(lrs, 0.03, 0.004))
    noisy_curve = sigmoid_accuracy(lrs, 0.03, 0.004) + rng.normal(0, 0.08, lrs.size)
    noisy = accuracy_bounds(lrs, noisy_curve)
    assert noisy.base_lr == pytest.approx(clean.base_lr, abs=0.004)
    assert noisy.max_lr == pytest.approx(clean.max_lr, abs=0.006)


@pytest.mark.parametrize("method", bounds.LOSS_METHODS)
def test_loss_rules_on_a_convex_then_exploding_curve(method):
    lrs = np.geomspace(1e-5, 1.0, 300)
    loss = exploding_loss(lrs)
    result = loss_bounds(lrs, loss, method=method)
    lowest = lrs[np.argmin(loss)]
    assert 1e-3 < result.base_lr < 5e-3, "where the loss has fallen 10% of its drop"
    assert result.base_lr < result.max_lr < lowest
    if method == "minimum":
        assert result.max_lr == pytest.approx(lowest / 10, rel=0.05)
    if method == "steepest":  # steepest in log(lr) of the logistic-in-log-lr drop: at 1e-2
        assert result.max_lr == pytest.approx(1e-2, rel=0.1)


def test_nan_tail_is_dropped():
    lrs = np.linspace(0.001, 0.1, 400)
    curve = sigmoid_accuracy(lrs, 0.03, 0.004)
    with_tail = np.concatenate([curve, [np.nan, np.inf, np.nan]])
    lrs_tail = np.concatenate([lrs, [0.11, 0.12, 0.13]])
    assert accuracy_bounds(lrs_tail, with_tail) == accuracy_bounds(lrs, curve)


@pytest.mark.parametrize("rule", [accuracy_bounds, loss_bounds])
def test_flat_or_pure_noise_curve_is_refused(rule):
    rng = np.random.default_rng(1)
    lrs = np.linspace(0.001, 0.1, 300)
    with pytest.raises(ValueError, match="flat or pure noise. Sweep more steps per decade"):
        rule(lrs, np.full(lrs.size, 0.5))
    with pytest.raises(ValueError, match="flat or pure noise"):
        rule(lrs, 0.5 + rng.normal(0, 0.05, lrs.size))


def test_too_short_and_malformed_curves_are_refused():
    with pytest.raises(ValueError, match="3 finite points"):
        accuracy_bounds([0.1, 0.2, 0.3, 0.4], [0.1, 0.2, 0.3, np.nan])
    with pytest.raises(ValueError, match="strictly increasing"):
        accuracy_bounds([0.1, 0.3, 0.2, 0.4, 0.5, 0.6], np.linspace(0, 1, 6))
    with pytest.raises(ValueError, match="equal length"):
        loss_bounds([0.1, 0.2], [1.0])
    with pytest.raises(ValueError, match="method='cliff'"):
        loss_bounds(np.geomspace(1e-4, 1, 50), exploding_loss(np.geomspace(1e-4, 1, 50)),
                    method="cliff")


@pytest.mark.parametrize("window, error, fragment", [
    (0, ValueError, "positive integer. Received: window=0"),
    (2.5, ValueError, "positive integer. Received: window=2.5"),
    ("5", TypeError, "positive integer. Received: window='5'"),
    (51, ValueError, "at most the curve's 50 finite points. Received: window=51"),
])
def test_a_bad_smoothing_window_is_refused_by_name(window, error, fragment):
    lrs = np.geomspace(1e-4, 1, 50)
    for rule in (bounds.lowest_loss_bounds, accuracy_bounds, loss_bounds):
        with pytest.raises(error, match=fragment):
            rule(lrs, exploding_loss(lrs), window=window)
        # as `step_size`, an integral float is an integer
        assert rule(lrs, exploding_loss(lrs), window=5.0) == rule(lrs, exploding_loss(lrs),
                                                                  window=5)


# ---------------------------------------------------------------------------
# The default rule: `lowest_loss`


def test_lowest_loss_puts_max_lr_at_the_smoothed_minimum_and_the_rest_below_it():
    lrs = np.geomspace(1e-7, 10.0, 300)
    loss = exploding_loss(lrs)
    found = bounds.lowest_loss_bounds(lrs, loss)
    assert found.max_lr == pytest.approx(lrs[np.argmin(smooth(loss, 31))])
    assert (found.lr, found.base_lr) == pytest.approx((found.max_lr / 2.5, found.max_lr / 25))
    assert (found.method, found.metric) == ("lowest_loss", "loss")
    assert bounds.suggest(lrs, loss, "lowest_loss", "loss") == found


def test_lowest_loss_on_a_noisy_curve_stays_near_the_clean_answer():
    rng = np.random.default_rng(0)
    lrs = np.geomspace(1e-7, 10.0, 300)
    clean = bounds.lowest_loss_bounds(lrs, exploding_loss(lrs))
    noisy = bounds.lowest_loss_bounds(lrs, exploding_loss(lrs) + rng.normal(0, 0.1, lrs.size))
    assert abs(np.log10(noisy.max_lr / clean.max_lr)) < 0.2  # within 1.6x


@pytest.mark.parametrize("curve", ["constant", "noise", "binary_noise", "flat_then_explodes"])
def test_lowest_loss_refuses_curves_without_a_real_drop(curve):
    rng = np.random.default_rng(3)
    lrs = np.geomspace(1e-7, 10.0, 300)
    loss = {
        "constant": np.full(lrs.size, np.log(10)),  # e.g. inputs that carry nothing
        "noise": 2.3 + rng.normal(0, 0.1, lrs.size),
        "binary_noise": 2.3 + rng.binomial(32, 0.1, lrs.size) / 32,
        "flat_then_explodes": np.where(lrs < 1, 2.3, 2.3 * (1 + 20 * (lrs - 1)))
        + rng.normal(0, 0.1, lrs.size),
    }[curve]
    with pytest.raises(ValueError, match="no clear drop.*flat or pure noise"):
        bounds.lowest_loss_bounds(lrs, loss)


def test_lowest_loss_refuses_a_loss_still_falling_at_the_end_and_all_nan():
    lrs = np.geomspace(1e-7, 1e-2, 300)  # stops before the minimum near 0.04
    with pytest.raises(ValueError, match="still falling at the end.*higher `end_lr`"):
        bounds.lowest_loss_bounds(lrs, exploding_loss(lrs))
    with pytest.raises(ValueError, match="0 finite points"):
        bounds.lowest_loss_bounds(lrs, np.full(lrs.size, np.nan))


def shallow_loss(lrs):
    """The exploding loss with a tenth of its fall: 2.3 down to ~2.1 (9%) before it rises."""
    return 2.3 - 0.2 / (1 + (1e-2 / lrs) ** 2) + 50 * lrs**2


@pytest.mark.parametrize("method", ["lowest_loss", "valley"])
def test_a_shallow_fall_still_gives_bounds_with_a_warning_at_the_callers_line(method):
    lrs = np.geomspace(1e-7, 10.0, 300)
    with pytest.warns(bounds.ShallowCurveWarning, match=r"fell only \d+% .*more steps") as caught:
        found = bounds.suggest(lrs, shallow_loss(lrs), method, "loss")
    assert found.max_lr > found.base_lr > 0
    assert [w.filename for w in caught] == [__file__]  # the user's call, not keras_clr's


def test_a_refused_shallow_curve_is_not_also_warned_about():
    lrs = np.geomspace(1e-7, 1e-2, 300)  # ends before the lowest point
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a warning first would raise instead
        with pytest.raises(ValueError, match="still falling"):
            bounds.lowest_loss_bounds(lrs, shallow_loss(lrs))


def test_the_warning_reaches_the_line_that_asked_a_range_test_result():
    import pandas as pd

    from keras_clr import RangeTestResult

    lrs = np.geomspace(1e-7, 10.0, 300)
    history = pd.DataFrame({"step": range(300), "learning_rate": lrs, "loss": shallow_loss(lrs)})
    with pytest.warns(bounds.ShallowCurveWarning) as caught:
        RangeTestResult(history, "exponential", 1e-7, 10.0).suggest_bounds()
    assert [w.filename for w in caught] == [__file__]


def test_a_deep_fall_gives_no_warning():
    lrs = np.geomspace(1e-7, 10.0, 300)
    loss = exploding_loss(lrs)  # falls 2.3 -> ~0.4, 80%
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for method in bounds.METHODS[:1] + bounds.LOSS_METHODS:
            bounds.suggest(lrs, loss, method, "loss")
    # Either side of the threshold, a quarter of the start level: these curves' smoothed
    # minima lie 26% and 22% below 2.3 (the rise after the fall eats into it).
    falls = {share: 2.3 - share * 2.3 / (1 + (1e-2 / lrs) ** 2) + 50 * lrs**2
             for share in (0.35, 0.3)}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        bounds.lowest_loss_bounds(lrs, falls[0.35])
        assert not caught
        bounds.lowest_loss_bounds(lrs, falls[0.3])
        assert [str(w.message)[:31] for w in caught] == ["The 'loss' curve fell only 22% "]
