"""Matplotlib helpers; matplotlib is imported only when one is called.

Each takes `ax=None` (a new figure) and returns the `Axes`; none calls
`plt.show()` or changes the backend.
"""

import numpy as np

from keras_clr.bounds import smooth


def _axes(ax):
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(7, 4))
    return ax


def plot_range_test(history, metric="loss", bounds=None, log_x=False, ax=None, note=None):
    """Draws `metric` against `learning_rate` from a range test's history.

    Args:
        history: DataFrame with `learning_rate` and `metric` columns.
        metric: Column to draw. Defaults to `"loss"`.
        bounds: Optional `Bounds`; its `base_lr` and `max_lr` are marked.
        log_x: Logarithmic LR axis (for exponential sweeps).
        ax: Axes to draw on. Defaults to a new figure.
        note: Optional text for the title (e.g. why no bounds are shown).

    Returns:
        The matplotlib `Axes`.
    """
    ax = _axes(ax)
    rows = history[["learning_rate", metric]].dropna()
    rows = rows[np.isfinite(rows[metric])]
    lrs, values = rows["learning_rate"].to_numpy(), rows[metric].to_numpy()
    ax.plot(lrs, values, color="tab:blue", alpha=0.3, linewidth=1, label=f"{metric} (raw)")
    if len(values):
        ax.plot(lrs, smooth(values), color="tab:blue", linewidth=2, label="smoothed")
    if bounds is not None:
        for value, name, color in ((bounds.base_lr, "base_lr", "tab:green"),
                                   (bounds.max_lr, "max_lr", "tab:red")):
            ax.axvline(value, color=color, linestyle="--", label=f"{name} = {value:.3g}")
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel(metric)
    title = f"LR range test: {metric}"
    if bounds is not None:
        title += f" ({bounds.method} rule)"
    ax.set_title(title if note is None else f"{title}\n{note}", fontsize=10)
    ax.legend(loc="best", fontsize=8)
    return ax


def plot_schedule(schedule, steps, ax=None, base_momentum=None, max_momentum=None,
                  label="learning rate"):
    """Draws a keras-clr schedule's LR (and inverse momentum) over `steps`.

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
    """
    ax = _axes(ax)
    x = np.arange(steps)
    ax.plot(x, schedule.values(x), label=label)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("learning rate")
    ax.set_title(type(schedule).__name__ + _describe(schedule), fontsize=10)
    if max_momentum is not None:
        twin = ax.twinx()
        twin.plot(x, schedule.momentum_values(x, base_momentum, max_momentum),
                  color="tab:orange", label="momentum")
        twin.set_ylabel("momentum")
    return ax


def _describe(schedule):
    mode = getattr(schedule, "mode", None)
    return f" ({mode})" if mode else ""
