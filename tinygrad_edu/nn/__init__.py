"""Layers: ``tinygrad_edu.nn.functional`` (functions) and the ``Module`` classes that hold their parameters."""

from tinygrad_edu.nn import functional
from tinygrad_edu.nn.modules import Linear, Module, Parameter, ReLU, Sequential, Sigmoid, Tanh

__all__ = ["Linear", "Module", "Parameter", "ReLU", "Sequential", "Sigmoid", "Tanh", "functional"]
