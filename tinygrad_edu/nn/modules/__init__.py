from tinygrad_edu.nn.modules.activation import ReLU, Sigmoid, Tanh
from tinygrad_edu.nn.modules.container import Sequential
from tinygrad_edu.nn.modules.linear import Linear
from tinygrad_edu.nn.modules.module import Module, Parameter

__all__ = ["Linear", "Module", "Parameter", "ReLU", "Sequential", "Sigmoid", "Tanh"]
