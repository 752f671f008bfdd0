"""Cyclical learning rates, 1cycle and the LR range test for Keras 3."""

from keras_clr.bounds import Bounds
from keras_clr.callbacks import CyclicLR, OneCycleLR
from keras_clr.fitting import fit_one_cycle
from keras_clr.range_test import RangeTestCallback, RangeTestResult, lr_range_test
from keras_clr.schedules import CyclicalLearningRate, OneCycle, step_size_for

__version__ = "0.1.0"

__all__ = [
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
