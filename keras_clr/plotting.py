"""Matplotlib helpers; matplotlib is imported only when one is called.

Each takes `ax=None` (a new figure) and returns the `Axes`; none calls
`plt.show()` or changes the backend.
"""

import textwrap

import numpy as np

from keras_clr import _checks
from keras_clr.bounds import rule_window, smooth

# Up to this many steps a schedule is drawn at every step; beyond, at this
# many evenly spaced steps, which needs cycles of at least
# MIN_POINTS_PER_CYCLE points to show their shape.
MAX_POINTS = 100_000
MIN_POINTS_PER_CYCLE = 100
TITLE_WIDTH = 80  # characters per title line


def _axes(ax):
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(7, 4), layout="constrained")
    return ax


def panel_axes(ax, panels):
    """The Axes to draw `panels` side by side on.

    Args:
        ax: `None` (a new pyplot figure), a matplotlib `Figure` or
            `SubFigure` (the panels are added to it) or an `Axes` (only the
            first panel is drawn, on it).
        panels: Number of panels.

    Returns:
        A list of Axes: `panels` of them, or the one given.
    """
    from matplotlib.figure import FigureBase

    if ax is None:
        import matplotlib.pyplot as plt

        ax = plt.figure(figsize=(5.5 * panels, 4), layout="constrained")
    if isinstance(ax, FigureBase):
        return list(np.atleast_1d(ax.subplots(1, panels)))
    return [ax]


def plot_range_test(history, metric="loss", bounds=None, log_x=False, ax=None, note=None):
    """Draws `metric` against `learning_rate` from a range test's history.

    For a loss (`loss`, `val_loss`, `<output>_loss`) whose diverged tail
    climbs far above where the sweep started, the y-axis stops a quarter of
    the curve's drop above its starting level, so the drop stays readable.

    Args:
        history: DataFrame with `learning_rate` and `metric` columns.
        metric: Column to draw. Defaults to `"loss"`.
        bounds: Optional `Bounds`; its `base_lr`, `max_lr` and `lr` are marked (the
            title names the curve they were read from when it is another).
        log_x: Logarithmic LR axis (for exponential sweeps).
        ax: Axes to draw on. Defaults to a new figure.
        note: Optional text for the title (e.g. how the sweep ended, or why
            no bounds are shown).

    Returns:
        The matplotlib `Axes`.
    """
    ax = _axes(ax)
    rows = history[["learning_rate", metric]].dropna()
    rows = rows[np.isfinite(rows[metric])]
    lrs, values = rows["learning_rate"].to_numpy(), rows[metric].to_numpy()
    ax.plot(lrs, values, color="tab:blue", alpha=0.3, linewidth=1, label=f"{metric} (raw)")
    if len(values):
        # As smoothed as the curve the marked bounds were read from, so that a
        # `max_lr` at the lowest point sits at the bottom of the bold line.
        method = bounds.method if bounds is not None and bounds.metric == metric else None
        smoothed = smooth(values, rule_window(method, len(values)))
        ax.plot(lrs, smoothed, color="tab:blue", linewidth=2, label="smoothed")
        top = _loss_axis_top(metric, values, smoothed)
        if top is not None:
            bottom = min(values.min(), smoothed.min())
            ax.set_ylim(bottom - 0.05 * (top - bottom), top)
    if bounds is not None:
        marks = [(bounds.base_lr, "base_lr", "tab:green", "--"),
                 (bounds.max_lr, "max_lr", "tab:red", "--")]
        if getattr(bounds, "lr", None) is not None:
            marks.append((bounds.lr, "lr", "tab:purple", ":"))
        for value, name, color, style in marks:
            ax.axvline(value, color=color, linestyle=style, label=f"{name} = {value:.3g}")
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel(metric)
    title = f"LR range test: {metric}"
    if bounds is not None:
        read_from = "" if bounds.metric == metric else f" on {bounds.metric}"
        title += f" ({bounds.method} rule{read_from})"
    if note is not None:
        title += "\n" + textwrap.fill(note, TITLE_WIDTH)
    ax.set_title(title, fontsize=10)
    ax.legend(loc="best", fontsize=8)
    return ax


def _loss_axis_top(metric, values, smoothed):
    """Where a loss curve's y-axis should stop, or None to let matplotlib choose."""
    if not (metric.removeprefix("val_") == "loss" or metric.endswith("_loss")):
        return None
    lowest = int(np.argmin(smoothed))
    start = smoothed[: lowest + 1].max()
    top = start + max(0.25 * (start - smoothed[lowest]), 0.05 * abs(start))
    if top <= smoothed[lowest]:  # a curve flat at 0: nothing to keep in view
        return None
    return top if values.max() > top + (top - smoothed[lowest]) else None


def plot_schedule(schedule, steps, ax=None, base_momentum=None, max_momentum=None,
                  label="learning rate"):
    """Draws a keras-clr schedule's LR (and inverse momentum) over `steps`.

    Up to `MAX_POINTS` steps, every step is drawn; beyond, the curve is
    sampled at `MAX_POINTS` evenly spaced steps. The title gives the
    schedule's arguments; a legend appears once two curves share the plot.

    Args:
        schedule: A `CyclicalLearningRate` or `OneCycle`.
        steps: Number of steps to draw, from step 0.
        ax: Axes to draw on. Defaults to a new figure.
        base_momentum: With `max_momentum`, also draw the momentum cycle on
            a second y-axis.
        max_momentum: See `base_momentum`.
        label: Legend label of the LR curve. Defaults to `"learning rate"`.

    Returns:
        The matplotlib `Axes` of the LR curve.

    Raises:
        ValueError: `steps` is not a positive integer or spans more cycles
            than a sampled curve can show (more than `MAX_POINTS /
            MIN_POINTS_PER_CYCLE`), or only one momentum is given.
        TypeError: `schedule` is not a keras-clr schedule.
    """
    if not hasattr(schedule, "momentum_values"):
        raise TypeError("Argument `schedule` must be a keras-clr schedule "
                        f"(CyclicalLearningRate or OneCycle). Received: schedule={schedule!r}")
    _checks.optional_momentum_range(base_momentum, max_momentum, "to draw momentum")
    x = _drawn_steps(schedule, _checks.positive_int("steps", steps))
    ax = _axes(ax)
    ax.plot(x, schedule.values(x), label=label)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("learning rate")
    ax.set_title(textwrap.fill(describe(schedule), TITLE_WIDTH), fontsize=10)
    lines, legend_ax = ax.get_lines(), ax
    if max_momentum is not None:
        legend_ax = ax.twinx()  # drawn above `ax`: the legend goes on it
        legend_ax.plot(x, schedule.momentum_values(x, base_momentum, max_momentum),
                       color="tab:orange", label="momentum")
        legend_ax.set_ylabel("momentum")
        lines = lines + legend_ax.get_lines()
    if len(lines) > 1:
        legend_ax.legend(lines, [line.get_label() for line in lines], fontsize=8)
    return ax


def _drawn_steps(schedule, steps):
    if steps <= MAX_POINTS:
        return np.arange(steps)
    period = getattr(schedule, "step_size", 0) + getattr(schedule, "step_size_down", 0)
    if period and steps / period > MAX_POINTS / MIN_POINTS_PER_CYCLE:
        raise ValueError(
            f"Argument `steps` spans {steps / period:.3g} cycles of {period} steps: beyond "
            f"{MAX_POINTS} steps a schedule is drawn at {MAX_POINTS} points, which show at "
            f"most {MAX_POINTS // MIN_POINTS_PER_CYCLE} cycles. Received: steps={steps}"
        )
    return np.linspace(0, steps - 1, MAX_POINTS).round().astype("int64")


def describe(schedule):
    """The schedule's class and arguments, as in a plot's title.

    Examples:
        >>> from keras_clr import CyclicalLearningRate
        >>> describe(CyclicalLearningRate(0.001, 0.006, 200, mode="triangular2"))
        'CyclicalLearningRate(triangular2, base_lr=0.001, max_lr=0.006, step_size=200)'
    """
    from keras_clr.schedules import CyclicalLearningRate, OneCycle

    if isinstance(schedule, CyclicalLearningRate):
        parts = _clr_arguments(schedule)
    elif isinstance(schedule, OneCycle):
        parts = [f"max_lr={schedule.max_lr:g}", f"total_steps={schedule.total_steps}",
                 f"pct_start={schedule.pct_start:g}", f"div_factor={schedule.div_factor:g}",
                 f"final_div_factor={schedule.final_div_factor:g}",
                 f"anneal_strategy={schedule.anneal_strategy}"]
        if schedule.three_phase:
            parts.append("three_phase=True")
    else:
        parts = []
    name = type(schedule).__name__
    if isinstance(schedule, CyclicalLearningRate) and not schedule._saved_with_model:
        name = "CyclicalLearningRate"  # `CyclicLR`'s own, with a scale_fn it cannot save
    return f"{name}({', '.join(parts)})"


def _clr_arguments(schedule):
    if schedule.scale_fn is None:
        policy = [schedule.mode]
    else:
        name = getattr(schedule.scale_fn, "__name__", type(schedule.scale_fn).__name__)
        policy = [f"scale_fn={name}", f"scale_mode={schedule.scale_mode}"]
    parts = [*policy, f"base_lr={schedule.base_lr:g}", f"max_lr={schedule.max_lr:g}",
             f"step_size={schedule.step_size}"]
    if schedule.step_size_down != schedule.step_size:
        parts.append(f"step_size_down={schedule.step_size_down}")
    if schedule.gamma != 1.0:
        parts.append(f"gamma={schedule.gamma:g}")
    return parts
