"""Cyclical learning rates, 1cycle and the LR range test for Keras 3.

The public names are imported on first use, so that `import keras_clr` (and
the `keras-clr` command's `--help`) does not pay for importing Keras.
"""

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

# Where each public name is defined.
_SOURCES = {
    "Bounds": "keras_clr.bounds",
    "CyclicLR": "keras_clr.callbacks",
    "CyclicalLearningRate": "keras_clr.schedules",
    "OneCycle": "keras_clr.schedules",
    "OneCycleLR": "keras_clr.callbacks",
    "RangeTestCallback": "keras_clr.range_test",
    "RangeTestResult": "keras_clr.range_test",
    "fit_one_cycle": "keras_clr.fitting",
    "lr_range_test": "keras_clr.range_test",
    "step_size_for": "keras_clr.schedules",
}

__all__ = [  # a literal list, as linters and type checkers read it
    "Bounds",
    "CyclicLR",
    "CyclicalLearningRate",
    "OneCycle",
    "OneCycleLR",
    "RangeTestCallback",
    "RangeTestResult",
    "__version__",
    "fit_one_cycle",
    "lr_range_test",
    "step_size_for",
]

if TYPE_CHECKING:  # for type checkers and the API docs, which read imports statically
    from keras_clr.bounds import Bounds
    from keras_clr.callbacks import CyclicLR, OneCycleLR
    from keras_clr.fitting import fit_one_cycle
    from keras_clr.range_test import RangeTestCallback, RangeTestResult, lr_range_test
    from keras_clr.schedules import CyclicalLearningRate, OneCycle, step_size_for


def __getattr__(name):
    if name not in _SOURCES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_SOURCES[name]), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__():
    return sorted({*__all__, *(name for name in globals() if name.startswith("__"))})
