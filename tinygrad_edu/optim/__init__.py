"""Optimizers: they update parameters from their ``.grad``."""

from tinygrad_edu.optim.optimizer import Optimizer
from tinygrad_edu.optim.sgd import SGD

__all__ = ["SGD", "Optimizer"]
