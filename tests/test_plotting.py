"""Plots: what they say (titles, legends, stop reason), what they draw, nothing clipped."""

import numpy as np
import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from keras_clr import CyclicalLearningRate, OneCycle, RangeTestResult, plotting


def new_axes():
    return Figure(figsize=(8, 4), layout="constrained").subplots()


def legend_labels(ax):
    legends = [a.get_legend() for a in ax.figure.axes if a.get_legend() is not None]
    return [[text.get_text() for text in legend.get_texts()] for legend in legends]


def assert_inside_figure(figure):
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    box = figure.bbox
    for ax in figure.axes:
        for artist in (ax.title, ax.xaxis.label, ax.yaxis.label, ax.get_legend()):
            if artist is not None:
                extent = artist.get_window_extent(canvas.get_renderer())
                assert box.x0 - 1 <= extent.x0 and extent.x1 <= box.x1 + 1, artist
                assert box.y0 - 1 <= extent.y0 and extent.y1 <= box.y1 + 1, artist


# ---------------------------------------------------------------------------
# Schedules

def test_schedule_title_gives_the_arguments():
    schedule = CyclicalLearningRate(0.001, 0.006, 200, mode="triangular2")
    ax = plotting.plot_schedule(schedule, 1200, ax=new_axes())
    assert ax.get_title() == (
        "CyclicalLearningRate(triangular2, base_lr=0.001, max_lr=0.006, step_size=200)"
    )
    assert legend_labels(ax) == []  # one curve: nothing to tell apart


def test_describe_names_what_differs_from_the_defaults():
    exp_range = CyclicalLearningRate(0.001, 0.006, 200, "exp_range", 0.999, step_size_down=100)
    assert plotting.describe(exp_range) == (
        "CyclicalLearningRate(exp_range, base_lr=0.001, max_lr=0.006, step_size=200, "
        "step_size_down=100, gamma=0.999)"
    )
    assert plotting.describe(OneCycle(0.1, 500, anneal_strategy="linear", three_phase=True)) == (
        "OneCycle(max_lr=0.1, total_steps=500, pct_start=0.3, div_factor=25, "
        "final_div_factor=10000, anneal_strategy=linear, three_phase=True)"
    )


def test_lr_and_momentum_share_one_legend_and_nothing_is_clipped():
    ax = new_axes()
    plotting.plot_schedule(OneCycle(0.1, 500), 500, ax=ax, base_momentum=0.85, max_momentum=0.95)
    assert legend_labels(ax) == [["learning rate", "momentum"]]
    assert_inside_figure(ax.figure)


def test_long_schedules_are_sampled():
    steps = 10 * plotting.MAX_POINTS + 7
    ax = plotting.plot_schedule(OneCycle(0.1, steps), steps, ax=new_axes())
    x, y = ax.lines[0].get_data()
    assert len(x) == plotting.MAX_POINTS and (x[0], x[-1]) == (0, steps - 1)
    assert y.max() == pytest.approx(0.1, rel=1e-6)
    # 3 cycles of 2e9 steps each: sampled, and the peaks still show
    clr = CyclicalLearningRate(0.001, 0.006, 10**9)
    ax = plotting.plot_schedule(clr, 6 * 10**9, ax=new_axes())
    assert ax.lines[0].get_ydata().max() == pytest.approx(0.006, rel=1e-3)


def test_too_many_cycles_for_a_sample_is_refused():
    with pytest.raises(ValueError, match=r"`steps` spans 2.5e\+07 cycles of 400 steps"):
        plotting.plot_schedule(CyclicalLearningRate(0.001, 0.006, 200), 10**10, ax=new_axes())


@pytest.mark.parametrize("schedule, steps, momenta, error, fragment", [
    (CyclicalLearningRate(0.001, 0.006, 20), 0, {}, ValueError, "steps=0"),
    (CyclicalLearningRate(0.001, 0.006, 20), "100", {}, TypeError, "steps='100'"),
    (0.01, 100, {}, TypeError, "keras-clr schedule .*Received: schedule=0.01"),
    (OneCycle(0.1, 100), 100, {"base_momentum": 0.85}, ValueError,
     "Give both .*Received: base_momentum=0.85, max_momentum=None"),
], ids=["no_steps", "string_steps", "not_a_schedule", "one_momentum"])
def test_plot_schedule_refuses_bad_input_by_name(schedule, steps, momenta, error, fragment):
    with pytest.raises(error, match=fragment):
        plotting.plot_schedule(schedule, steps, ax=new_axes(), **momenta)


# ---------------------------------------------------------------------------
# Range test

def sweep_result(stop_reason="diverged", accuracy=True):
    lrs = np.geomspace(1e-4, 1.0, 80)
    history = pd.DataFrame({"step": range(80), "learning_rate": lrs,
                            "loss": 2.3 - 2.0 / (1 + (1e-2 / lrs) ** 2) + 50 * lrs**2})
    if accuracy:
        history["accuracy"] = 0.1 + 0.8 / (1 + (1e-2 / lrs) ** 2)
    return RangeTestResult(history, "exponential", 1e-4, 1.0, num_steps=100,
                           stop_reason=stop_reason)


def test_result_plot_draws_the_loss_and_the_accuracy_with_the_same_bounds():
    result = sweep_result()
    figure = Figure(figsize=(11, 4), layout="constrained")
    ax = result.plot(ax=figure)
    assert figure.axes[0] is ax and len(figure.axes) == 2
    bounds = result.suggest_bounds()
    assert ax.get_title() == "LR range test: loss (lowest_loss rule)\n80 of 100 steps, diverged"
    accuracy_ax = figure.axes[1]
    assert accuracy_ax.get_title() == "LR range test: accuracy (lowest_loss rule on loss)"
    for panel in figure.axes:
        marked = sorted(line.get_xdata()[0] for line in panel.lines[2:])
        assert marked == pytest.approx(sorted([bounds.base_lr, bounds.lr, bounds.max_lr]))
        assert panel.get_xscale() == "log"
    assert_inside_figure(figure)
    figure = Figure(figsize=(11, 4), layout="constrained")
    ax = result.plot(ax=figure, metric="accuracy")  # another metric: the loss beside it
    assert [a.get_ylabel() for a in figure.axes] == ["accuracy", "loss"]


def test_a_diverged_loss_tail_does_not_flatten_the_plot():
    lrs = np.geomspace(1e-4, 1.0, 100)
    loss = 2.3 - 2.0 / (1 + (1e-2 / lrs) ** 2)
    loss[-5:] = [10.0, 100.0, 300.0, 600.0, 1000.0]
    accuracy = np.where(loss < 3.0, 0.1 + 0.8 / (1 + (1e-2 / lrs) ** 2), 0.1)
    history = pd.DataFrame({"learning_rate": lrs, "loss": loss, "accuracy": accuracy})
    ax = plotting.plot_range_test(history, "loss", ax=new_axes())
    smoothed = ax.lines[1].get_ydata()
    start, lowest = smoothed[: np.argmin(smoothed) + 1].max(), smoothed.min()
    assert ax.get_ylim()[1] == pytest.approx(start + 0.25 * (start - lowest))
    assert loss.min() - 0.25 < ax.get_ylim()[0] <= loss.min()  # not pushed down either
    # Accuracies, and losses whose tail stays in view, keep matplotlib's own limits.
    top = plotting.plot_range_test(history, "accuracy", ax=new_axes()).get_ylim()[1]
    assert top > accuracy.max()
    mild = history.assign(loss=np.minimum(loss, 3.0))
    assert plotting.plot_range_test(mild, "loss", ax=new_axes()).get_ylim()[1] >= 3.0


def test_result_plot_on_one_axes_or_on_the_loss_draws_one_panel():
    ax = new_axes()
    assert sweep_result().plot(ax=ax, metric="loss", method="valley") is ax
    assert len(ax.figure.axes) == 1
    assert ax.get_title().startswith("LR range test: loss (valley rule)\n80 of 100 steps")
    figure = Figure(layout="constrained")
    sweep_result(accuracy=False).plot(ax=figure)  # the loss and no accuracy: one panel
    assert len(figure.axes) == 1


def test_result_plot_without_ax_opens_a_two_panel_pyplot_figure():
    import matplotlib.pyplot as plt

    ax = sweep_result(stop_reason="finished").plot()
    try:
        assert len(ax.figure.axes) == 2 and "80 of 100 steps, finished" in ax.get_title()
        assert ax.figure.get_layout_engine() is not None  # constrained: nothing clipped
    finally:
        plt.close(ax.figure)


def test_result_plot_says_how_the_sweep_ended_and_why_there_are_no_bounds():
    history = pd.DataFrame({"step": range(6), "learning_rate": np.linspace(0.1, 0.2, 6),
                            "loss": 1.0})
    ax = RangeTestResult(history, "linear", 0.1, 0.2, stop_reason="nan").plot(ax=new_axes())
    assert "6 of 6 steps, nan; no bounds: The 'loss' curve shows no clear drop" in (
        ax.get_title().replace("\n", " ")
    )
    with pytest.raises(ValueError, match="Received: method='best'"):  # a typo is no title
        sweep_result().plot(ax=new_axes(), method="best")
