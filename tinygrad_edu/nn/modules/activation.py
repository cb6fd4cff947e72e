"""Activation modules, thin wrappers over ``tinygrad_edu.nn.functional``."""

from __future__ import annotations

import numpy as np

from tinygrad_edu.backend import get_backend
from tinygrad_edu.nn.functional._activation_args import check_number
from tinygrad_edu.nn.functional.crelu import crelu
from tinygrad_edu.nn.functional.elu import elu
from tinygrad_edu.nn.functional.leaky_relu import leaky_relu
from tinygrad_edu.nn.functional.log_softmax import log_softmax
from tinygrad_edu.nn.functional.prelu import prelu
from tinygrad_edu.nn.functional.softmax import softmax
from tinygrad_edu.nn.modules.module import Module, Parameter
from tinygrad_edu.ops import Relu
from tinygrad_edu.tensor import Tensor


class ReLU(Module):
    """``max(x, 0)`` elementwise."""

    def forward(self, x: Tensor) -> Tensor:
        return Relu.apply(x)


class Tanh(Module):
    def forward(self, x: Tensor) -> Tensor:
        return x.tanh()


class Sigmoid(Module):
    def forward(self, x: Tensor) -> Tensor:
        return x.sigmoid()


class LeakyReLU(Module):
    """``x`` where x > 0, ``negative_slope * x`` elsewhere (``torch.nn.LeakyReLU``; Maas et al. 2013)."""

    def __init__(self, negative_slope: float = 0.01):
        super().__init__()
        self.negative_slope = check_number("LeakyReLU", "negative_slope", negative_slope)

    def forward(self, x: Tensor) -> Tensor:
        return leaky_relu(x, self.negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}"


class PReLU(Module):
    """Leaky ReLU with a learned slope (``torch.nn.PReLU``; He et al. 2015): ``weight`` holds ``num_parameters``
    slopes, all ``init`` at first: 1 (shared by every element) or C (one per channel, axis 1 of the input).

    As in PyTorch, the slopes should not be decayed by weight decay (it pulls them to 0, i.e. to ReLU).
    """

    def __init__(self, num_parameters: int = 1, init: float = 0.25, device: str | None = None, dtype=None):
        super().__init__()
        if isinstance(num_parameters, bool) or not isinstance(num_parameters, int) or num_parameters < 1:
            raise ValueError(f"PReLU: num_parameters must be a positive int, got {num_parameters!r}")
        self.num_parameters = num_parameters
        self.init = check_number("PReLU", "init", init)
        backend = get_backend(device)
        slopes = np.full(num_parameters, self.init, dtype=np.dtype(dtype or "float32"))
        self.weight = Parameter(Tensor._wrap(backend.from_host(slopes), backend))

    def forward(self, x: Tensor) -> Tensor:
        return prelu(x, self.weight)

    def extra_repr(self) -> str:
        return f"num_parameters={self.num_parameters}"


class CReLU(Module):
    """``concat(relu(x), relu(-x))`` along ``dim``, which doubles (Shang et al. 2016; PyTorch has no CReLU)."""

    def __init__(self, dim: int = 1):
        super().__init__()
        if isinstance(dim, bool) or not isinstance(dim, int):
            raise TypeError(f"CReLU: dim must be an int, got {type(dim).__name__}")
        self.dim = dim

    def forward(self, x: Tensor) -> Tensor:
        return crelu(x, self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class ELU(Module):
    """``x`` where x > 0, ``alpha * (exp(x) - 1)`` elsewhere (``torch.nn.ELU``; Clevert et al. 2016)."""

    def __init__(self, alpha: float = 1.0):
        super().__init__()
        self.alpha = check_number("ELU", "alpha", alpha)

    def forward(self, x: Tensor) -> Tensor:
        return elu(x, self.alpha)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}"


def _optional_dim(layer: str, dim: int | None) -> int | None:
    if dim is not None and (isinstance(dim, bool) or not isinstance(dim, int)):
        raise TypeError(f"{layer}: dim must be an int or None, got {type(dim).__name__}")
    return dim


class Softmax(Module):
    """``exp(x) / Σ exp(x)`` along ``dim`` (``torch.nn.Softmax``); ``dim=None`` is PyTorch's deprecated implicit
    choice (axis 0 for 0-, 1- and 3-d inputs, else 1), which warns."""

    def __init__(self, dim: int | None = None):
        super().__init__()
        self.dim = _optional_dim("Softmax", dim)

    def forward(self, x: Tensor) -> Tensor:
        return softmax(x, self.dim, _stacklevel=5)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class LogSoftmax(Module):
    """``x - log Σ exp(x)`` along ``dim`` (``torch.nn.LogSoftmax``); ``dim=None`` as in ``Softmax``."""

    def __init__(self, dim: int | None = None):
        super().__init__()
        self.dim = _optional_dim("LogSoftmax", dim)

    def forward(self, x: Tensor) -> Tensor:
        return log_softmax(x, self.dim, _stacklevel=5)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"
