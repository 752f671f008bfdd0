"""`CyclicLR` drives an optimizer's learning rate (and momentum) from a schedule;
`OneCycleLR` does so with 1cycle over exactly one `fit`."""

import numbers

import keras
import numpy as np
import pandas as pd
from keras import ops

from keras_clr import _checks
from keras_clr._in_graph import Installation, claim
from keras_clr._optimizer import (
    accumulation_steps,
    current_step,
    inner_optimizer,
    learning_rate_variable,
    sync_host_state,
)
from keras_clr.schedules import (
    CyclicalLearningRate,
    OneCycle,
    _step_count,
    serialize_scale_fn,
)


class _CallbackSchedule(CyclicalLearningRate):
    """`CyclicLR`'s own schedule for a `scale_fn` that cannot be saved (as a
    `functools.partial`): the callback itself is never saved."""

    _saved_with_model = False


def _schedule_class(scale_fn):
    try:
        serialize_scale_fn(scale_fn)
    except ValueError:
        return _CallbackSchedule
    return CyclicalLearningRate  # saveable, as when moved into an optimizer


class CyclicLR(keras.callbacks.Callback):
    """Drives the optimizer's learning rate (and momentum) from a schedule.

    Optimizer update `t` uses `schedule(t)`, with `t` read from
    `optimizer.iterations` (never from a private counter), so a second
    `fit`, `initial_epoch` and a run resumed by `BackupAndRestore` continue
    the cycle exactly where it was. For the duration of `fit` the model's
    compiled train step computes the schedule and sets the LR, so there is no
    per-batch write from the host, and every step inside a
    `steps_per_execution` call gets its own LR. At train end the optimizer's
    LR variable (and momentum) hold the last values used; its other config
    and its variables are as they were. Pass any Keras `LearningRateSchedule`, or
    the arguments of `CyclicalLearningRate` with the names of the classic
    Keras `CyclicLR` callback (old scripts port by changing one import).

    With `base_momentum` and `max_momentum`, SGD's `momentum` (or the Adam
    family's `beta_1`) cycles inversely to the LR, as PyTorch's `CyclicLR`
    (`cycle_momentum=True`) and `OneCycleLR` do. The learning rate (and
    momentum) go into `logs` and into `callback.history`.

    The schedule can instead be given to the optimizer itself
    (`SGD(learning_rate=schedule)`). Use the callback when you need momentum
    cycling, LR logging, or an optimizer whose LR stays a plain float
    outside this `fit` (and in the saved model).

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
            here it may be any callable (a lambda, a `functools.partial`, a
            NumPy function), since the callback is never saved.
        scale_mode: `"cycle"` or `"iterations"`, as in `CyclicalLearningRate`.
        step_size_down: Steps from the peak back down. Defaults to
            `step_size`.
        base_momentum: Momentum at the LR's peak, in [0, 1). Give it with
            `max_momentum` to cycle momentum (needs a keras-clr schedule).
        max_momentum: Momentum at the LR's trough, in [base_momentum, 1).
        verbose: 0 is silent; 1 (or more) prints the LR at the end of each
            epoch.

    Raises:
        ValueError: Bad arguments; at train begin, an optimizer built with a
            schedule (or, to cycle momentum, built with `momentum=0`), or
            another callback in the same `fit` that sets the LR
            (`ReduceLROnPlateau`, `LearningRateScheduler`, a second
            keras-clr callback); during `fit`, any other write of the LR.
        TypeError: An argument of the wrong type; at train begin, momentum
            to cycle with an optimizer that has no `momentum` or `beta_1`.

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
            schedule = _schedule_class(scale_fn)(
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
        if not isinstance(verbose, numbers.Integral) or verbose < 0:
            raise ValueError(f"Argument `verbose` must be an int >= 0: 0 is silent, 1 or more "
                             f"prints the LR after each epoch. Received: verbose={verbose!r}")
        self.verbose = verbose
        self._steps = np.arange(0)
        self._offset = 0  # the schedule's step 0 is this optimizer step

    def _lr(self, step):
        """The schedule at optimizer step `step` (a tensor, traced)."""
        return self.schedule(step - self._offset)

    # on_train_batch_end only touches that batch's logs (in custom loops), so
    # Keras may run it on its callback thread without waiting.
    async_safe = True

    @property
    def cycles_momentum(self):
        """Whether this callback cycles the optimizer's momentum."""
        return self.max_momentum is not None

    @property
    def history(self):
        """One row per optimizer update of the last `fit`: step, learning_rate
        and, when cycled, momentum."""
        history = pd.DataFrame({"step": self._steps,
                                "learning_rate": self._host_lr(self._steps)})
        if self.cycles_momentum:
            history["momentum"] = self._momentum_at(self._steps)
        return history

    def _host_lr(self, step):
        """The schedule at optimizer step(s) `step`, as float64 NumPy."""
        return _host_lrs(self.schedule, np.asarray(step) - self._offset)

    def _momentum_at(self, step):
        return self.schedule.momentum_values(np.asarray(step) - self._offset,
                                             self.base_momentum, self.max_momentum)

    def on_train_begin(self, logs=None):
        learning_rate_variable(self.model, "CyclicLR")
        claim(self.model, self, "CyclicLR")
        # A schedule that cannot be traced (a `scale_fn` written with NumPy,
        # as the classic callback allowed) is evaluated on the host, per batch.
        self._host_route = not _traces(self.schedule)
        momentum_fn = host_momentum = None
        if self.cycles_momentum:
            momentum_fn = self._momentum_fn()
            host_momentum = lambda step: float(self._momentum_at(step))  # noqa: E731
        self._installation = Installation(
            self.model, self, None if self._host_route else self._lr,
            momentum_fn, host_momentum,
        )
        self._first_step = None  # read at the first epoch begin, after any restore
        self._first_batch = True
        self._expected_lr = None

    def _momentum_fn(self):
        """`(step, learning_rate) -> momentum` for the compiled step."""
        if not self._host_route:
            return lambda step, learning_rate: self.schedule.momentum(
                step - self._offset, self.base_momentum, self.max_momentum)
        # The host writes only the LR; momentum follows it (same cycle, inverted).
        schedule, base, top = self.schedule, self.base_momentum, self.max_momentum
        span = schedule.max_lr - schedule.base_lr
        return lambda step, learning_rate: top - (top - base) * (
            learning_rate - schedule.base_lr) / span

    def on_epoch_begin(self, epoch, logs=None):
        self._check_learning_rate(self._installation)
        if self._first_step is None:
            self._first_step = current_step(self.model)

    def on_train_batch_begin(self, batch, logs=None):
        installation = self._installation
        # The first batch of each fit is set from the host too: in a custom
        # loop, which never runs the model's train step, that is the only way.
        if self._host_route or self._first_batch or installation.eager_momentum:
            sync_host_state(self.model)
            step = current_step(self.model)
            if self._host_route or self._first_batch:
                installation.set_learning_rate(float(self._host_lr(step)))
            if self.cycles_momentum and installation.eager_momentum:
                installation.set_momentum(self._momentum_at(step))

    def on_train_batch_end(self, batch, logs=None):
        if self._first_batch:
            self._first_batch = False
            if not (logs and "learning_rate" in logs):
                self._host_route = True  # not `fit`'s train step: a custom loop
        if self._host_route and logs is not None and "learning_rate" not in logs:
            self._add_to_logs(logs, current_step(self.model) - 1)

    def _add_to_logs(self, logs, step):
        logs["learning_rate"] = float(self._host_lr(step))
        if self.cycles_momentum:
            logs["momentum"] = float(self._momentum_at(step))

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        if "learning_rate" not in logs:  # a custom loop's own epoch logs
            self._add_to_logs(logs, max(current_step(self.model) - 1, 0))
        self._expected_lr = float(logs["learning_rate"])
        if self.verbose:
            print(f"\nEpoch {epoch + 1}: {type(self).__name__} "
                  f"learning_rate={self._expected_lr:.6g}")

    def on_train_end(self, logs=None):
        """Puts the optimizer's plain LR and momentum back (the last ones used).

        Keras skips this hook when `fit` raises; the next `fit` of the model
        then does it first, so there is nothing to call by hand.
        """
        installation = getattr(self, "_installation", None)
        if installation is None:
            return
        self._installation = None
        end = current_step(self.model)
        first = end if self._first_step is None else self._first_step
        self._steps = np.arange(first, end)
        installation.remove()
        if len(self._steps):  # with none, removing put the optimizer's own LR back
            self._check_learning_rate(installation)

    def _check_learning_rate(self, installation):
        """Raises if another callback wrote the LR since the last update (see
        `Installation.check_learning_rate`; the peak sets its float32 slack)."""
        installation.check_learning_rate(self._expected_lr, "CyclicLR",
                                         getattr(self.schedule, "max_lr", 0.0))


class OneCycleLR(CyclicLR):
    """1cycle over exactly the steps of one `fit`, without counting them by hand.

    At the start of `fit` the callback builds `OneCycle(max_lr, total_steps)`
    with `total_steps` = epochs x steps per epoch (divided by the optimizer's
    `gradient_accumulation_steps`; `steps_per_execution` changes nothing),
    and the cycle starts at this fit's epoch 0, also for a model trained
    before: with `initial_epoch=k` (a resumed run, e.g. by
    `BackupAndRestore`) it continues k epochs in, as the uninterrupted run. As
    PyTorch's `OneCycleLR`, it cycles momentum (or `beta_1`) inversely,
    from `max_momentum` down to `base_momentum` and back.

    Args:
        max_lr: Peak learning rate, > 0.
        pct_start: Fraction of the steps spent warming up. Defaults to 0.3.
        div_factor: The first LR is `max_lr / div_factor`. Defaults to 25.
        final_div_factor: The last LR is `max_lr / div_factor /
            final_div_factor`. Defaults to 1e4.
        anneal_strategy: `"cos"` or `"linear"`. Defaults to `"cos"`.
        three_phase: As in `OneCycle`. Defaults to False.
        cycle_momentum: True, False or `"auto"`: cycle where the optimizer
            has a `beta_1` or a `momentum` > 0. Defaults to `"auto"`.
        base_momentum: Momentum at the LR's peak. Defaults to 0.85.
        max_momentum: Momentum at the start and the end. Defaults to 0.95.
        verbose: As in `CyclicLR`.

    Raises:
        ValueError: Bad arguments; at train begin, data of unknown length
            (pass `steps_per_epoch` to `fit`) or a fit too short for the
            phases.

    Examples:
        >>> one_cycle = OneCycleLR(max_lr=0.05)
        >>> # model.fit(x, y, epochs=10, callbacks=[one_cycle])
    """

    def __init__(self, max_lr, *, pct_start=0.3, div_factor=25.0, final_div_factor=1e4,
                 anneal_strategy="cos", three_phase=False, cycle_momentum="auto",
                 base_momentum=0.85, max_momentum=0.95, verbose=0):
        self._cycle = dict(max_lr=max_lr, pct_start=pct_start, div_factor=div_factor,
                           final_div_factor=final_div_factor, anneal_strategy=anneal_strategy,
                           three_phase=three_phase)
        # Checks every argument now; the real cycle is built when fit starts.
        planned = OneCycle(total_steps=1_000_000, **self._cycle)
        if isinstance(cycle_momentum, (bool, np.bool_)):
            cycle_momentum = bool(cycle_momentum)
        elif cycle_momentum != "auto":  # 1.0 == True, but is no flag
            raise ValueError("Argument `cycle_momentum` must be True, False or 'auto'. "
                             f"Received: cycle_momentum={cycle_momentum!r}")
        if cycle_momentum is True and (base_momentum is None or max_momentum is None):
            raise ValueError(
                "`cycle_momentum=True` cycles between `base_momentum` and `max_momentum`; "
                f"give both. Received: base_momentum={base_momentum!r}, "
                f"max_momentum={max_momentum!r}"
            )
        self.cycle_momentum = cycle_momentum
        super().__init__(planned, base_momentum=base_momentum, max_momentum=max_momentum,
                         verbose=verbose)
        self._momenta = (self.base_momentum, self.max_momentum)

    def on_train_begin(self, logs=None):
        steps, epochs = self.params.get("steps"), self.params.get("epochs")
        if not steps:
            raise ValueError(
                "OneCycleLR builds its cycle from the length of this `fit`, but the data "
                "has no length: pass `steps_per_epoch` to `fit`, or use "
                "`CyclicLR(OneCycle(max_lr, total_steps))`. Received: steps=None"
            )
        optimizer = inner_optimizer(self.model)
        accumulation = accumulation_steps(optimizer)
        self._updates_per_epoch = steps / accumulation
        total_steps = _step_count("total_steps", max(1, steps * epochs // accumulation))
        try:
            self.schedule = OneCycle(total_steps=total_steps, **self._cycle)
        except ValueError as error:  # a fit too short for the phases
            raise ValueError(f"OneCycleLR spans the {total_steps} updates of this fit, too "
                             f"few for its phases: train longer. {error}") from None
        cycle = self.cycle_momentum
        if cycle == "auto":
            cycle = isinstance(getattr(optimizer, "beta_1", None), float) or bool(
                getattr(optimizer, "momentum", 0))
        self.base_momentum, self.max_momentum = self._momenta if cycle else (None, None)
        super().on_train_begin(logs)

    def on_epoch_begin(self, epoch, logs=None):
        if self._first_step is None:  # this fit's first epoch, after any restore
            self._offset = current_step(self.model) - int(epoch * self._updates_per_epoch)
        super().on_epoch_begin(epoch, logs)


def _traces(schedule):
    """Whether `schedule` runs on symbolic tensors (`keras.ops`), so it can be
    compiled into the train step."""
    try:
        schedule(keras.KerasTensor((), dtype="int64"))
    except Exception:  # NumPy, `math`, a Python `if` on the step ...
        return False
    return True


def _host_lrs(schedule, steps):
    """The schedule's LRs for a step or an array of steps, as float64 NumPy."""
    if hasattr(schedule, "values"):
        return schedule.values(steps)
    return np.asarray(ops.convert_to_numpy(schedule(np.asarray(steps))), dtype="float64")


def _check_momenta(schedule, base_momentum, max_momentum):
    base, top = _checks.optional_momentum_range(base_momentum, max_momentum,
                                                "to cycle momentum")
    if base is not None and not hasattr(schedule, "momentum_values"):
        raise TypeError(
            "Momentum cycling follows the shape of a keras-clr schedule "
            "(CyclicalLearningRate or OneCycle). Received: "
            f"schedule={schedule!r}"
        )
    return base, top


