"""Functional layers: ``F.linear(x, W, b)``, ``F.relu(x)``, losses ... (names and semantics of PyTorch's)."""

from tinygrad_edu.nn.functional.linear import LinearFunction, linear
from tinygrad_edu.nn.functional.loss import CrossEntropy, MSELoss, cross_entropy, mse_loss
from tinygrad_edu.ops import Relu
from tinygrad_edu.tensor import Tensor


def relu(x: Tensor) -> Tensor:
    """``max(x, 0)``; its gradient is 1 where x > 0 and 0 elsewhere (0 at x = 0)."""
    return Relu.apply(x)


__all__ = ["CrossEntropy", "LinearFunction", "MSELoss", "cross_entropy", "linear", "mse_loss", "relu"]
