"""Functional layers: ``F.linear(x, W, b)``, ``F.relu(x)``, losses ... (names and semantics of PyTorch's)."""

from tinygrad_edu.nn.functional.adaptive_avg_pool2d import adaptive_avg_pool2d, global_avg_pool2d
from tinygrad_edu.nn.functional.avg_pool2d import AvgPool2dFunction, avg_pool2d
from tinygrad_edu.nn.functional.batch_norm import (
    BatchNormEvalFunction,
    BatchNormFunction,
    BatchNormStagedFunction,
    batch_norm,
    batch_norm_composed,
    batch_norm_staged,
)
from tinygrad_edu.nn.functional.conv2d import Conv2dFunction, conv2d
from tinygrad_edu.nn.functional.crelu import CRelu, crelu
from tinygrad_edu.nn.functional.dropconnect import DropConnectLinearFunction, dropconnect_linear
from tinygrad_edu.nn.functional.dropout import DropoutFunction, dropout
from tinygrad_edu.nn.functional.dropout2d import Dropout2dFunction, dropout2d
from tinygrad_edu.nn.functional.elu import Elu, elu
from tinygrad_edu.nn.functional.layer_norm import LayerNormFunction, layer_norm
from tinygrad_edu.nn.functional.leaky_relu import LeakyRelu, leaky_relu
from tinygrad_edu.nn.functional.linear import LinearFunction, linear
from tinygrad_edu.nn.functional.log_softmax import LogSoftmaxFunction, log_softmax
from tinygrad_edu.nn.functional.loss import CrossEntropy, MSELoss, cross_entropy, mse_loss
from tinygrad_edu.nn.functional.max_pool2d import MaxPool2dFunction, max_pool2d
from tinygrad_edu.nn.functional.maxout import MaxoutFunction, maxout
from tinygrad_edu.nn.functional.prelu import PRelu, prelu
from tinygrad_edu.nn.functional.softmax import SoftmaxFunction, softmax
from tinygrad_edu.nn.functional.swapout import SwapoutFunction, swapout
from tinygrad_edu.nn.functional.sync_batch_norm import SyncBatchNormFunction, sync_batch_norm
from tinygrad_edu.nn.functional.weight_norm import WeightNormFunction, weight_norm
from tinygrad_edu.ops import Relu
from tinygrad_edu.tensor import Tensor


def relu(x: Tensor) -> Tensor:
    """``max(x, 0)``; its gradient is 1 where x > 0 and 0 elsewhere (0 at x = 0)."""
    return Relu.apply(x)


__all__ = ["CrossEntropy", "LinearFunction", "MSELoss", "cross_entropy", "linear", "mse_loss", "relu"]
__all__ += ["CRelu", "Elu", "LeakyRelu", "MaxoutFunction", "PRelu", "crelu", "elu", "leaky_relu", "maxout", "prelu"]
__all__ += ["DropConnectLinearFunction", "Dropout2dFunction", "DropoutFunction", "LayerNormFunction",
            "WeightNormFunction", "dropconnect_linear", "dropout", "dropout2d", "layer_norm", "weight_norm"]
__all__ += ["BatchNormEvalFunction", "BatchNormFunction", "BatchNormStagedFunction", "batch_norm",
            "batch_norm_composed", "batch_norm_staged"]
__all__ += ["Conv2dFunction", "conv2d"]
__all__ += ["AvgPool2dFunction", "MaxPool2dFunction", "adaptive_avg_pool2d", "avg_pool2d", "global_avg_pool2d",
            "max_pool2d"]
__all__ += ["LogSoftmaxFunction", "SoftmaxFunction", "log_softmax", "softmax"]
__all__ += ["SyncBatchNormFunction", "sync_batch_norm"]
__all__ += ["SwapoutFunction", "swapout"]
