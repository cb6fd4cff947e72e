"""Layers: ``tinygrad_edu.nn.functional`` (functions) and the ``Module`` classes that hold their parameters."""

from tinygrad_edu.nn import functional, init, utils
from tinygrad_edu.nn.modules import Linear, Module, Parameter, ReLU, Sequential, Sigmoid, Tanh
from tinygrad_edu.nn.modules.activation import ELU, CReLU, LeakyReLU, LogSoftmax, PReLU, Softmax
from tinygrad_edu.nn.modules.batchnorm import BatchNorm1d, BatchNorm2d, SyncBatchNorm
from tinygrad_edu.nn.modules.conv import Conv2d
from tinygrad_edu.nn.modules.dropout import DropConnectLinear, Dropout, Dropout2d
from tinygrad_edu.nn.modules.highway import Highway
from tinygrad_edu.nn.modules.maxout import Maxout
from tinygrad_edu.nn.modules.normalization import LayerNorm, WeightNormLinear
from tinygrad_edu.nn.modules.pooling import AdaptiveAvgPool2d, AvgPool2d, Flatten, MaxPool2d
from tinygrad_edu.nn.modules.residual import (
    ResidualBlock,
    StochasticDepth,
    expected_active_blocks,
    survival_probabilities,
)
from tinygrad_edu.nn.modules.swapout import Swapout, SwapoutBlock, stochastic_inference, swapout_schedule

__all__ = ["Linear", "Module", "Parameter", "ReLU", "Sequential", "Sigmoid", "Tanh", "functional", "init", "utils"]
__all__ += ["CReLU", "ELU", "LeakyReLU", "Maxout", "PReLU"]
__all__ += ["DropConnectLinear", "Dropout", "Dropout2d", "LayerNorm", "WeightNormLinear"]
__all__ += ["BatchNorm1d", "BatchNorm2d", "SyncBatchNorm"]
__all__ += ["Conv2d"]
__all__ += ["AdaptiveAvgPool2d", "AvgPool2d", "Flatten", "Highway", "MaxPool2d", "ResidualBlock", "StochasticDepth",
            "expected_active_blocks", "survival_probabilities"]
__all__ += ["Swapout", "SwapoutBlock", "stochastic_inference", "swapout_schedule"]
__all__ += ["LogSoftmax", "Softmax"]
