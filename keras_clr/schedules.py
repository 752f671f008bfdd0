"""Cyclical learning-rate schedules: `CyclicalLearningRate` and `OneCycle`.

Each schedule is a pure function of the optimizer step, written once over a
small array namespace: `keras.ops` (traced inside the optimizer's train step)
or NumPy in float64 (the cheap host path used by `CyclicLR`, plots and tests);
on PyTorch, whose optimizer runs eagerly, a single CPU step takes the host path too.
Cycle arithmetic is done on integers before any cast to float, so the value at
step 2**31 + 7 is as exact as the value at step 7.
"""

import json
import math
import types

import keras
import numpy as np
from keras import ops

from keras_clr import _checks
from keras_clr._optimizer import function_code

MODES = ("triangular", "triangular2", "exp_range")
SCALE_MODES = ("cycle", "iterations")
ANNEAL_STRATEGIES = ("cos", "linear")
_NATURAL_SCALE_MODE = {
    "triangular": "cycle",
    "triangular2": "cycle",
    "exp_range": "iterations",
}

_HOST_OPS = types.SimpleNamespace(
    cast=lambda x, dtype: np.asarray(x).astype(dtype),
    float="float64",
    int="int64",
    where=np.where,
    minimum=np.minimum,
    mod=np.mod,
    power=np.power,
    exp=np.exp,
    cos=np.cos,
)


# The same over Python scalars (float64): ~10x faster than NumPy on a single
# step, which is what the callbacks evaluate for their logs every batch.
_SCALAR_OPS = types.SimpleNamespace(
    cast=lambda x, dtype: int(x) if dtype.startswith("int") else float(x),
    float="float64",
    int="int64",
    where=lambda condition, a, b: a if condition else b,
    minimum=min,
    mod=lambda a, b: a % b,
    power=lambda a, b: a**b,
    exp=math.exp,
    cos=math.cos,
)


def _graph_ops():
    """The same namespace over `keras.ops`, in the backend's float and step types."""
    return types.SimpleNamespace(
        cast=ops.cast,
        float=keras.backend.floatx(),
        int=_step_dtype(),
        where=ops.where,
        minimum=ops.minimum,
        mod=ops.mod,
        power=ops.power,
        exp=ops.exp,
        cos=ops.cos,
    )


def _step_dtype():
    """int64, but int32 on JAX without x64: its steps are int32 there, and a cast
    to int64 would only warn and truncate."""
    if keras.backend.backend() == "jax":
        import jax

        if not jax.config.jax_enable_x64:
            return "int32"
    return "int64"


def _step_count(name, value):
    """A positive number of steps that the step counter holds, two of them
    (a cycle) included: int64, or int32 on JAX without x64."""
    value = _checks.positive_int(name, value)
    limit = int(np.iinfo(_step_dtype()).max) // 2
    if value > limit:
        raise ValueError(f"Argument `{name}` must be at most {limit} steps, half the range of "
                         f"the {_step_dtype()} step counter. Received: {name}={value}")
    return value


def _eager_host_step(step):
    """An integer step as a Python int where reading it is free, else None.

    PyTorch runs the optimizer eagerly: there, a dozen `keras.ops` calls cost
    ~70 us per step (5% of a 1.5 ms CPU step), Python floats ~8 us. Only a
    single step held on the CPU and outside `torch.compile` qualifies (reading
    a GPU step would wait for the device).
    """
    if keras.backend.backend() != "torch":
        return None
    import torch

    value = getattr(step, "value", step)  # a keras.Variable holds a torch tensor
    is_compiling = getattr(torch.compiler, "is_compiling", None)  # torch >= 2.3
    if (
        isinstance(value, torch.Tensor)
        and value.device.type == "cpu"
        and value.numel() == 1
        and not value.is_floating_point()
        and is_compiling is not None
        and not is_compiling()
    ):
        return int(value)
    return None


def _host_steps(steps):
    """`steps` for `values`/`momentum_values`: a finite number or array of them."""
    array = np.asarray(steps)
    if array.dtype.kind not in "iuf":
        raise TypeError(f"Argument `steps` must be a step number or an array of them. "
                        f"Received: steps={steps!r}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"Argument `steps` must be finite. Received: steps={steps!r}")
    return steps


class _StepSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Shared plumbing: one `_curve` formula, evaluated on two array paths.

    Subclasses define `_curve(xp, step, *levels)` and the levels it runs
    between for the learning rate and for the inversely cycled momentum.
    """

    def __call__(self, step):
        return self._tensor_curve(step, self._lr_levels())

    def momentum(self, step, base_momentum, max_momentum):
        """Momentum cycled inversely to the LR at `step`, as a tensor (see
        `momentum_values`)."""
        return self._tensor_curve(step, self._momentum_levels(base_momentum, max_momentum))

    def _tensor_curve(self, step, levels):
        host_step = _eager_host_step(step)
        if host_step is not None:
            return ops.convert_to_tensor(self._host_curve(host_step, levels),
                                         keras.backend.floatx())
        return self._curve(_graph_ops(), step, *levels)

    def values(self, steps):
        """Learning rates for a step or an array of steps, as float64 NumPy.

        The host-side twin of `schedule(step)`: no tensors, no tracing. Use it
        for plots and tables, e.g. `schedule.values(np.arange(1000))`.

        Raises:
            TypeError: `steps` that are not numbers.
            ValueError: `steps` that are NaN or infinite.
        """
        return self._host_curve(_host_steps(steps), self._lr_levels())

    def momentum_values(self, steps, base_momentum, max_momentum):
        """Momentum cycled inversely to the learning rate, as float64 NumPy.

        Momentum is `max_momentum` where the LR is lowest and `base_momentum`
        where it peaks: the sequence of PyTorch's `CyclicLR(cycle_momentum=True)`
        and `OneCycleLR`.

        Raises:
            TypeError, ValueError: Bad `steps` (as in `values`), or momenta
                not in `0 <= base_momentum <= max_momentum < 1`.
        """
        base_momentum, max_momentum = _checks.momentum_range(base_momentum, max_momentum)
        return self._host_curve(_host_steps(steps), self._momentum_levels(base_momentum,
                                                                          max_momentum))

    def _host_curve(self, steps, levels):
        if np.ndim(steps) == 0:
            return np.float64(self._curve(_SCALAR_OPS, steps, *levels))
        return self._curve(_HOST_OPS, steps, *levels)


@keras.saving.register_keras_serializable(package="keras_clr")
class CyclicalLearningRate(_StepSchedule):
    """A learning rate that cycles between two bounds (Smith, 2017).

    With `cycle = 1 + step // (step_size + step_size_down)` and the position
    in the cycle rising linearly from 0 to 1 over `step_size` steps and
    falling back over `step_size_down` steps (`height`):

        lr = base_lr + (max_lr - base_lr) * height * scale
        triangular:  scale = 1
        triangular2: scale = 1 / 2**(cycle - 1)   (amplitude halves every cycle)
        exp_range:   scale = gamma**step          (amplitude decays every step)

    Leslie N. Smith, "Cyclical Learning Rates for Training Neural Networks",
    WACV 2017. Values equal PyTorch's `torch.optim.lr_scheduler.CyclicLR` for
    the same arguments (its `step_size_up` is `step_size`).

    Args:
        base_lr: Lowest learning rate of the cycle, >= 0 (used at step 0).
        max_lr: Peak learning rate, > `base_lr`. The peak actually reached
            is lower when the amplitude is scaled down.
        step_size: Optimizer steps from `base_lr` up to `max_lr` (half a
            cycle). The paper recommends 2-10 epochs' worth of steps.
        mode: `"triangular"`, `"triangular2"` or `"exp_range"`. Leave it
            at the default with a `scale_fn` (giving both is an error).
            Defaults to `"triangular"`.
        gamma: Per-step amplitude decay for `"exp_range"`, in (0, 1].
            Defaults to 1.0.
        scale_fn: Optional custom amplitude multiplier: a callable taking a
            float tensor (the 1-based cycle number or the global step, per
            `scale_mode`) and returning a tensor. Inside an optimizer it is
            traced into the train step: write it with `keras.ops` or plain
            arithmetic (the `CyclicLR` callback also takes NumPy or `math`,
            evaluated on the host). Registered with
            `keras.saving.register_keras_serializable()`, the schedule saves
            and loads in safe mode; a lambda or other unregistered function
            is saved as its code, as Keras saves a `Lambda` layer's
            function, so `load_model` then needs `safe_mode=False`.
        scale_mode: What `scale_fn` receives: `"cycle"` or `"iterations"`.
            Defaults to `"cycle"` for `scale_fn` and to the paper's choice
            for built-in modes (cycle for triangular/triangular2,
            iterations for exp_range); a conflicting value is an error.
        step_size_down: Steps from `max_lr` back to `base_lr`. Defaults to
            `step_size` (a symmetric triangle).
        name: Optional name of the schedule.

    Raises:
        ValueError: An argument is out of range or arguments contradict.
        TypeError: An argument has the wrong type.

    Examples:
        >>> schedule = CyclicalLearningRate(base_lr=1.0, max_lr=5.0, step_size=4)
        >>> schedule.values(np.arange(10)).tolist()
        [1.0, 2.0, 3.0, 4.0, 5.0, 4.0, 3.0, 2.0, 1.0, 2.0]
        >>> optimizer = keras.optimizers.SGD(learning_rate=schedule)
    """

    _saved_with_model = True  # False for `CyclicLR`'s own schedule, never saved

    def __init__(
        self,
        base_lr,
        max_lr,
        step_size,
        mode="triangular",
        gamma=1.0,
        scale_fn=None,
        scale_mode=None,
        step_size_down=None,
        name=None,
    ):
        super().__init__()
        self.base_lr = _checks.non_negative_number("base_lr", base_lr)
        self.max_lr = _checks.positive_number("max_lr", max_lr)
        _checks.greater("max_lr", self.max_lr, "base_lr", self.base_lr)
        self.step_size = _step_count("step_size", step_size)
        if step_size_down is None:
            self.step_size_down = self.step_size
        else:
            self.step_size_down = _step_count("step_size_down", step_size_down)
        self.mode = _checks.one_of("mode", mode, MODES)
        self.gamma = _checks.fraction("gamma", gamma, high_open=False)
        if scale_fn is not None and not callable(scale_fn):
            raise TypeError(
                "Argument `scale_fn` must be a callable or None. "
                f"Received: scale_fn={scale_fn!r}"
            )
        # A schedule can land in a saved model, and Keras truncates the target
        # file before it serializes: what cannot be saved is refused up front.
        if self._saved_with_model:
            serialize_scale_fn(scale_fn)
        self.scale_fn = scale_fn
        self.scale_mode = self._resolve_scale_mode(scale_mode)
        if self.gamma != 1.0 and (scale_fn is not None or mode != "exp_range"):
            raise ValueError(
                "Argument `gamma` only applies to mode='exp_range' without a "
                f"`scale_fn`. Received: gamma={gamma!r}, mode={mode!r}"
            )
        self.name = name

    def _resolve_scale_mode(self, scale_mode):
        if scale_mode is not None:
            _checks.one_of("scale_mode", scale_mode, SCALE_MODES)
        if self.scale_fn is not None:
            if self.mode != "triangular":
                raise ValueError(
                    "Pass either a built-in `mode` or a custom `scale_fn`, not "
                    f"both. Received: mode={self.mode!r}, scale_fn={self.scale_fn!r}"
                )
            return scale_mode or "cycle"
        natural = _NATURAL_SCALE_MODE[self.mode]
        if scale_mode not in (None, natural):
            raise ValueError(
                f"Argument `scale_mode` conflicts with mode={self.mode!r}, which "
                f"scales by {natural!r}. Pass a custom `scale_fn` to scale by "
                f"{scale_mode!r}. Received: scale_mode={scale_mode!r}"
            )
        return natural

    def _lr_levels(self):
        return self.base_lr, self.max_lr

    def _momentum_levels(self, base_momentum, max_momentum):
        return max_momentum, base_momentum

    def _curve(self, xp, step, low, high):
        step = xp.cast(step, xp.int)
        period = self.step_size + self.step_size_down
        position = xp.cast(xp.mod(step, period), xp.float)  # exact integer arithmetic
        height = xp.where(
            position <= self.step_size,
            position / self.step_size,
            (period - position) / self.step_size_down,
        )
        return low + (high - low) * height * self._scale(xp, step, period)

    def _scale(self, xp, step, period):
        if self.mode == "triangular" and self.scale_fn is None:
            return 1.0
        # The tensor's own `//` keeps the step's integer type (int64, or int32 on
        # JAX without x64; Keras' torch `ops.floor_divide` returns int32, which
        # wraps past 2**31 cycles).
        cycle_index = step // period  # 0-based
        if self.scale_fn is not None:
            x = cycle_index + 1 if self.scale_mode == "cycle" else step
            return xp.cast(self.scale_fn(xp.cast(x, xp.float)), xp.float)
        if self.mode == "triangular2":
            return xp.power(0.5, xp.cast(cycle_index, xp.float))
        # exp_range: gamma**step as exp(step * log(gamma)) with the log taken in
        # float64, since rounding gamma itself to float32 would cost ~step ulps.
        return xp.exp(xp.cast(step, xp.float) * math.log(self.gamma))

    def get_config(self):
        return {
            "base_lr": self.base_lr,
            "max_lr": self.max_lr,
            "step_size": self.step_size,
            "mode": self.mode,
            "gamma": self.gamma,
            "scale_fn": serialize_scale_fn(self.scale_fn),
            "scale_mode": self.scale_mode,
            "step_size_down": self.step_size_down,
            "name": self.name,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if config.get("scale_fn") is not None:
            config["scale_fn"] = keras.saving.deserialize_keras_object(config["scale_fn"])
        return cls(**config)


def serialize_scale_fn(scale_fn):
    """A `scale_fn` as plain JSON values, or raises if it cannot be saved.

    A registered function or object is saved by name and loads in safe mode.
    Any other Python function (a lambda, a local `def`) is saved as its code,
    as Keras saves a `Lambda` layer's function: `load_model` then needs
    `safe_mode=False`, and says so itself.
    """
    if scale_fn is None:
        return None
    target = scale_fn if isinstance(scale_fn, types.FunctionType) else type(scale_fn)
    registered_name = keras.saving.get_registered_name(target)
    if keras.saving.get_registered_object(registered_name) is target:
        return keras.saving.serialize_keras_object(scale_fn)
    if isinstance(scale_fn, types.FunctionType):
        config = {"class_name": "__lambda__", "config": {"value": function_code(scale_fn)}}
        try:
            json.dumps(config)
        except TypeError:
            pass
        else:
            return config
    raise ValueError(
        f"Argument `scale_fn` cannot be saved with the schedule. Received: scale_fn={scale_fn!r}. "
        "Pass a function (ideally named, with plain values in its closure) or a class "
        "with `get_config` decorated with `@keras.saving.register_keras_serializable()`."
    )


@keras.saving.register_keras_serializable(package="keras_clr")
class OneCycle(_StepSchedule):
    """The 1cycle schedule (Smith, 2018): one cycle up and down, then anneal.

    The LR warms up from `max_lr / div_factor` to `max_lr` over the first
    `pct_start * total_steps` steps, then anneals down to
    `max_lr / div_factor / final_div_factor` at step `total_steps - 1` and
    holds that value afterwards. With `three_phase=True` it first returns
    symmetrically to the initial LR, then anneals to the final one.

    Leslie N. Smith, "A disciplined approach to neural network
    hyper-parameters: Part 1", 2018. Values equal PyTorch's
    `torch.optim.lr_scheduler.OneCycleLR` for the same arguments.

    Args:
        max_lr: Peak learning rate, > 0.
        total_steps: Number of optimizer steps in the cycle, a positive
            integer (usually `epochs * steps_per_epoch`).
        pct_start: Fraction of `total_steps` spent warming up, in (0, 1).
            Defaults to 0.3.
        div_factor: Initial LR is `max_lr / div_factor`, > 0. Defaults to 25.
        final_div_factor: Final LR is `initial_lr / final_div_factor`, > 0.
            Defaults to 1e4.
        anneal_strategy: `"cos"` or `"linear"`. Defaults to `"cos"`.
        three_phase: Whether to add the symmetric return phase. Defaults to
            False.
        name: Optional name of the schedule.

    Raises:
        ValueError: An argument is out of range, or a phase would be empty.
        TypeError: An argument has the wrong type.

    Examples:
        >>> schedule = OneCycle(max_lr=0.1, total_steps=100)
        >>> lrs = schedule.values(np.arange(100))
        >>> round(float(lrs[0]), 6), round(float(lrs.max()), 6), float(lrs[-1])
        (0.004, 0.1, 4e-07)
    """

    def __init__(
        self,
        max_lr,
        total_steps,
        pct_start=0.3,
        div_factor=25.0,
        final_div_factor=1e4,
        anneal_strategy="cos",
        three_phase=False,
        name=None,
    ):
        super().__init__()
        self.max_lr = _checks.positive_number("max_lr", max_lr)
        self.total_steps = _step_count("total_steps", total_steps)
        self.pct_start = _checks.fraction("pct_start", pct_start)
        self.div_factor = _checks.positive_number("div_factor", div_factor)
        self.final_div_factor = _checks.positive_number("final_div_factor", final_div_factor)
        self.anneal_strategy = _checks.one_of(
            "anneal_strategy", anneal_strategy, ANNEAL_STRATEGIES
        )
        if not isinstance(three_phase, bool):
            raise TypeError(
                f"Argument `three_phase` must be a bool. Received: three_phase={three_phase!r}"
            )
        self.three_phase = three_phase
        self.name = name
        self._phase_ends = self._check_phases()

    def _check_phases(self):
        warmup = self.pct_start * self.total_steps
        ends = [warmup - 1, self.total_steps - 1]
        if self.three_phase:
            ends.insert(1, 2 * warmup - 2)
        starts = [0.0] + ends[:-1]
        if any(end <= start for start, end in zip(starts, ends)):
            raise ValueError(
                "Arguments `pct_start` and `total_steps` leave a phase of the "
                "cycle with no steps: each phase needs `pct_start * total_steps` "
                "> 1 (and, with three_phase, pct_start < 0.5). Received: "
                f"pct_start={self.pct_start!r}, total_steps={self.total_steps!r}"
            )
        return ends

    @property
    def initial_lr(self):
        """The LR at step 0: `max_lr / div_factor`."""
        return self.max_lr / self.div_factor

    @property
    def final_lr(self):
        """The LR from step `total_steps - 1` on: `initial_lr / final_div_factor`."""
        return self.initial_lr / self.final_div_factor

    def _lr_levels(self):
        return self.initial_lr, self.max_lr, self.final_lr

    def _momentum_levels(self, base_momentum, max_momentum):
        return max_momentum, base_momentum, max_momentum

    def _curve(self, xp, step, start, peak, end):
        step = xp.minimum(xp.cast(step, xp.float), self.total_steps - 1)
        targets = [(start, peak), (peak, end)]
        if self.three_phase:
            targets = [(start, peak), (peak, start), (start, end)]
        value, begin, pieces = None, 0.0, []
        for phase_end, (a, b) in zip(self._phase_ends, targets):
            pct = (step - begin) / (phase_end - begin)
            pieces.append((phase_end, self._anneal(xp, a, b, pct)))
            begin = phase_end
        value = pieces[-1][1]
        for phase_end, phase_value in reversed(pieces[:-1]):
            value = xp.where(step <= phase_end, phase_value, value)
        return value

    def _anneal(self, xp, start, end, pct):
        if self.anneal_strategy == "linear":
            return start + (end - start) * pct
        return end + (start - end) / 2.0 * (xp.cos(math.pi * pct) + 1.0)

    def get_config(self):
        return {
            "max_lr": self.max_lr,
            "total_steps": self.total_steps,
            "pct_start": self.pct_start,
            "div_factor": self.div_factor,
            "final_div_factor": self.final_div_factor,
            "anneal_strategy": self.anneal_strategy,
            "three_phase": self.three_phase,
            "name": self.name,
        }


def step_size_for(steps_per_epoch, epochs=4):
    """`step_size` (steps per half cycle) worth `epochs` epochs.

    Smith (2017) recommends 2-10 epochs per half cycle; 4 is a middle choice.

    Args:
        steps_per_epoch: Optimizer steps per epoch, a positive integer.
        epochs: Epochs per half cycle, > 0. Defaults to 4.

    Returns:
        The `step_size`, a positive int.

    Examples:
        >>> step_size_for(steps_per_epoch=391, epochs=4)
        1564
    """
    steps_per_epoch = _checks.positive_int("steps_per_epoch", steps_per_epoch)
    epochs = _checks.positive_number("epochs", epochs)
    return max(1, round(steps_per_epoch * epochs))
