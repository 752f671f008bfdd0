"""Cyclical learning rates and the LR range test for Keras 3."""

from keras_clr.callbacks import CyclicLR
from keras_clr.schedules import CyclicalLearningRate, OneCycle

__version__ = "0.1.0"

__all__ = ["CyclicLR", "CyclicalLearningRate", "OneCycle", "__version__"]
