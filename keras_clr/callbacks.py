"""`CyclicLR`: drives an optimizer's learning rate (and momentum) batch by batch."""

import keras
import pandas as pd
from keras import ops

from keras_clr import _checks
from keras_clr._live_momentum import MomentumWriter
from keras_clr._optimizer import current_step, settable_learning_rate
from keras_clr.schedules import CyclicalLearningRate, serialize_scale_fn


class CyclicLR(keras.callbacks.Callback):
    """Sets the optimizer's learning rate from a schedule before every step.

    Before optimizer step `t` (read from `optimizer.iterations`, never from a
    private counter) the learning rate becomes `schedule(t)`, so a second
    `fit`, `initial_epoch` and a run resumed by `BackupAndRestore` continue
    the cycle exactly where it was. Pass any Keras `LearningRateSchedule`, or
    the arguments of `CyclicalLearningRate` with the names of the classic
    Keras `CyclicLR` callback (old scripts port by changing one import).

    With `base_momentum` and `max_momentum`, SGD's `momentum` (or the Adam
    family's `beta_1`) cycles inversely to the LR, as PyTorch's `CyclicLR`
    (`cycle_momentum=True`) and `OneCycleLR` do. The learning rate (and
    momentum) go into `logs` and into `callback.history`.

    The schedule can instead be given to the optimizer itself
    (`SGD(learning_rate=schedule)`): no callback, no per-batch work, and it
    also works with `steps_per_execution > 1`. Use the callback when you need
    momentum cycling, LR logging, or an optimizer whose LR stays a plain
    float outside this `fit`.

    Args:
        schedule: A `keras.optimizers.schedules.LearningRateSchedule`. Give
            either this or `base_lr`, `max_lr` and `step_size`.
        base_lr: Lower bound, as in `CyclicalLearningRate`; used (with
            `max_lr` and `step_size`) when no `schedule` is given.
        max_lr: Upper bound, as in `CyclicalLearningRate`.
        step_size: Steps per half cycle, as in `CyclicalLearningRate`.
        mode: `"triangular"`, `"triangular2"` or `"exp_range"`. Defaults to
            `"triangular"`.
        gamma: `exp_range` decay per step. Defaults to 1.0.
        scale_fn: Custom amplitude function, as in `CyclicalLearningRate`;
            here it may also be a lambda, since the callback is never saved.
        scale_mode: `"cycle"` or `"iterations"`, as in `CyclicalLearningRate`.
        step_size_down: Steps from the peak back down. Defaults to
            `step_size`.
        base_momentum: Momentum at the LR's peak, in [0, 1). Give it with
            `max_momentum` to cycle momentum (needs a keras-clr schedule).
        max_momentum: Momentum at the LR's trough, in [base_momentum, 1).
        verbose: 0 is silent; 1 prints the LR at the end of each epoch.

    Raises:
        ValueError: Bad arguments; at train begin, an optimizer built with a
            schedule, or `steps_per_execution > 1`.
        TypeError: An argument of the wrong type.

    Examples:
        >>> clr = CyclicLR(base_lr=0.001, max_lr=0.006, step_size=2000)
        >>> # model.fit(x, y, callbacks=[clr]); clr.history.tail()
    """

    def __init__(
        self,
        schedule=None,
        *,
        base_lr=None,
        max_lr=None,
        step_size=None,
        mode="triangular",
        gamma=1.0,
        scale_fn=None,
        scale_mode=None,
        step_size_down=None,
        base_momentum=None,
        max_momentum=None,
        verbose=0,
    ):
        super().__init__()
        clr_args_given = (
            any(v is not None for v in (base_lr, max_lr, step_size, scale_fn))
            or any(v is not None for v in (scale_mode, step_size_down))
            or mode != "triangular"
            or gamma != 1.0
        )
        if schedule is None:
            if base_lr is None and max_lr is None and step_size is None:
                raise ValueError(
                    "CyclicLR needs a `schedule` or `base_lr`, `max_lr` and "
                    "`step_size`. Received none of them."
                )
            # The callback is never saved, so it also takes an unregistered scale_fn.
            unsaveable = scale_fn is not None and not _is_registered(scale_fn)
            cls = _UnsavedCyclicalLearningRate if unsaveable else CyclicalLearningRate
            schedule = cls(
                base_lr,
                max_lr,
                step_size,
                mode=mode,
                gamma=gamma,
                scale_fn=scale_fn,
                scale_mode=scale_mode,
                step_size_down=step_size_down,
            )
        elif not isinstance(schedule, keras.optimizers.schedules.LearningRateSchedule):
            raise TypeError(
                "Argument `schedule` must be a keras LearningRateSchedule; pass "
                "bounds as keywords (`base_lr=..., max_lr=..., step_size=...`). "
                f"Received: schedule={schedule!r}"
            )
        elif clr_args_given:
            raise ValueError(
                "Pass either a `schedule` or the arguments of "
                "CyclicalLearningRate (`base_lr`, `max_lr`, `step_size`, ...), "
                f"not both. Received: schedule={schedule!r}"
            )
        self.schedule = schedule
        self.base_momentum, self.max_momentum = _check_momenta(
            schedule, base_momentum, max_momentum
        )
        self.verbose = verbose
        self._rows = []

    @property
    def cycles_momentum(self):
        """Whether this callback cycles the optimizer's momentum."""
        return self.max_momentum is not None

    @property
    def history(self):
        """One row per optimizer step of the last `fit`: step, learning_rate
        and, when cycled, momentum."""
        columns = ["step", "learning_rate"] + (["momentum"] if self.cycles_momentum else [])
        return pd.DataFrame(self._rows, columns=columns)

    def on_train_begin(self, logs=None):
        self._rows = []
        self._optimizer, self._lr_variable = settable_learning_rate(self.model, "CyclicLR")
        self._lr_at = _host_lr(self.schedule)
        self._momentum = None
        if self.cycles_momentum:
            first = self._momentum_at(current_step(self.model))
            self._momentum = MomentumWriter(self.model, self._optimizer, first)

    def _momentum_at(self, step):
        values = self.schedule.momentum_values(step, self.base_momentum, self.max_momentum)
        return float(values)

    def on_train_batch_begin(self, batch, logs=None):
        step = current_step(self.model)
        row = [step, self._lr_at(step)]
        self._lr_variable.assign(row[1])
        if self._momentum is not None:
            row.append(self._momentum_at(step))
            self._momentum.set(row[2])
        self._rows.append(row)

    def _add_to_logs(self, logs):
        if logs is not None and self._rows:
            logs["learning_rate"] = self._rows[-1][1]
            if self._momentum is not None:
                logs["momentum"] = self._rows[-1][2]

    def on_train_batch_end(self, batch, logs=None):
        self._add_to_logs(logs)

    def on_epoch_end(self, epoch, logs=None):
        self._add_to_logs(logs)
        if self.verbose and self._rows:
            print(f"\nEpoch {epoch + 1}: CyclicLR learning_rate={self._rows[-1][1]:.6g}")

    def on_train_end(self, logs=None):
        if self._momentum is not None:
            self._momentum.restore()
            self._momentum = None


class _UnsavedCyclicalLearningRate(CyclicalLearningRate):
    """A schedule with an unregistered `scale_fn`, for the callback only."""

    _saveable = False


def _is_registered(scale_fn):
    try:
        serialize_scale_fn(scale_fn)
    except ValueError:
        return False
    return True


def _host_lr(schedule):
    """A cheap `step -> float` for the schedule: NumPy math where we have it."""
    if hasattr(schedule, "values"):
        return lambda step: float(schedule.values(step))
    return lambda step: float(ops.convert_to_numpy(schedule(step)))


def _check_momenta(schedule, base_momentum, max_momentum):
    if base_momentum is None and max_momentum is None:
        return None, None
    if base_momentum is None or max_momentum is None:
        raise ValueError(
            "Give both `base_momentum` and `max_momentum` to cycle momentum, or "
            f"neither. Received: base_momentum={base_momentum!r}, "
            f"max_momentum={max_momentum!r}"
        )
    base = _checks.fraction("base_momentum", base_momentum, low_open=False)
    top = _checks.fraction("max_momentum", max_momentum, low_open=False)
    if base > top:
        raise ValueError(
            "Argument `base_momentum` must not exceed `max_momentum`. Received: "
            f"base_momentum={base_momentum!r}, max_momentum={max_momentum!r}"
        )
    if not hasattr(schedule, "momentum_values"):
        raise TypeError(
            "Momentum cycling follows the shape of a keras-clr schedule "
            "(CyclicalLearningRate or OneCycle). Received: "
            f"schedule={schedule!r}"
        )
    return base, top


