"""Leaky ReLU as one op (Maas, Hannun and Ng 2013, "Rectifier nonlinearities improve neural network acoustic
models"): a small slope on the negative side keeps a unit's gradient alive where plain ReLU's would be 0."""

from __future__ import annotations

from tinygrad_edu.autograd import Function
from tinygrad_edu.nn.functional._activation_args import check_float, check_number
from tinygrad_edu.tensor import Tensor


class LeakyRelu(Function):
    """y = x for x > 0, a·x otherwise (a = ``negative_slope``, usually 0.01):

        dy/dx = 1 where x > 0,  a where x <= 0.

    At the kink x = 0 the derivative is taken as a (``x > 0`` is false there), as in PyTorch. The backward needs only
    the sign pattern, so forward saves the boolean mask ``positive = [x > 0]``, not x.
    """

    @staticmethod
    def forward(ctx, x, negative_slope=0.01):
        positive = x > 0
        ctx.save_for_backward(positive)
        ctx.negative_slope = negative_slope
        return ctx.xp.where(positive, x, negative_slope * x)

    @staticmethod
    def backward(ctx, g):
        (positive,) = ctx.saved_tensors
        return ctx.xp.where(positive, g, ctx.negative_slope * g)


def leaky_relu(input: Tensor, negative_slope: float = 0.01) -> Tensor:  # noqa: A002 - PyTorch's name
    """``x`` where x > 0, ``negative_slope * x`` elsewhere (``torch.nn.functional.leaky_relu``). Any slope is
    accepted, as in PyTorch (a > 1 or a < 0 included)."""
    negative_slope = check_number("leaky_relu", "negative_slope", negative_slope)
    check_float("leaky_relu", "input", input)
    return LeakyRelu.apply(input, negative_slope=negative_slope)
