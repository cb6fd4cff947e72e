"""``Dropout``, ``Dropout2d`` and ``DropConnectLinear``: random masks in training (``.train()``), none in evaluation
(``.eval()``)."""

from __future__ import annotations

from tinygrad_edu.autograd import InputError
from tinygrad_edu.nn.functional.dropconnect import dropconnect_linear
from tinygrad_edu.nn.functional.dropout import check_p, dropout
from tinygrad_edu.nn.functional.dropout2d import dropout2d
from tinygrad_edu.nn.modules.linear import Linear
from tinygrad_edu.nn.modules.module import Module
from tinygrad_edu.tensor import Tensor


def _p(layer: str, p: float) -> float:
    try:
        return check_p(layer, p)
    except InputError as exc:  # a constructor raises ValueError, as PyTorch's
        raise ValueError(str(exc)) from None


class Dropout(Module):
    """Inverted dropout (``torch.nn.Dropout``): in training each element is zeroed with probability ``p`` and the
    rest scaled by 1 / (1 - p); in evaluation the input passes unchanged."""

    def __init__(self, p: float = 0.5):
        super().__init__()
        self.p = _p("Dropout", p)

    def forward(self, x: Tensor) -> Tensor:
        return dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Dropout2d(Module):
    """Channel dropout (``torch.nn.Dropout2d``, Tompson et al. 2015): for x (N, C, H, W) or (N, C, L), whole
    channels are zeroed with probability ``p`` in training, the kept ones scaled by 1 / (1 - p)."""

    def __init__(self, p: float = 0.5):
        super().__init__()
        self.p = _p("Dropout2d", p)

    def forward(self, x: Tensor) -> Tensor:
        return dropout2d(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class DropConnectLinear(Linear):
    """A Linear layer with DropConnect (Wan et al. 2013): in training every forward call draws a mask of the
    weight's shape, each weight kept with probability 1 - p and scaled by 1 / (1 - p); in evaluation it is the plain
    Linear layer. ``weight`` and ``bias`` start as PyTorch's Linear (uniform in ±1/sqrt(in_features))."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, p: float = 0.5,
                 device: str | None = None, dtype=None):
        self_p = _p("DropConnectLinear", p)  # checked before anything is built
        super().__init__(in_features, out_features, bias, device, dtype)
        self.p = self_p

    def forward(self, x: Tensor) -> Tensor:
        return dropconnect_linear(x, self.weight, self.bias, self.p, self.training)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, p={self.p}"
