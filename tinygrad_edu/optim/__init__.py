"""Optimizers: they update parameters from their ``.grad``, in place, with their state allocated once."""

from tinygrad_edu.optim import lr_scheduler
from tinygrad_edu.optim.adam import Adam, AdamW
from tinygrad_edu.optim.lr_finder import LRFinderResult, lr_finder
from tinygrad_edu.optim.optimizer import Optimizer
from tinygrad_edu.optim.sgd import SGD

__all__ = ["SGD", "Adam", "AdamW", "Optimizer"]
__all__ += ["LRFinderResult", "lr_finder", "lr_scheduler"]
