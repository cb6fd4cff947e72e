"""The exponential linear unit as one op (Clevert, Unterthiner and Hochreiter 2016, "Fast and accurate deep network
learning by exponential linear units (ELUs)"): negative outputs that saturate at -α push mean activations
towards zero."""

from __future__ import annotations

from tinygrad_edu.autograd import Function
from tinygrad_edu.nn.functional._activation_args import check_float, check_number
from tinygrad_edu.tensor import Tensor


class Elu(Function):
    """y = x for x > 0, α (eˣ - 1) otherwise:

        dy/dx = 1 where x > 0,  α eˣ = y + α where x <= 0.

    The second form (the paper's) reuses the output: backward needs no exp. At the kink x = 0 the derivative is
    taken as α (``x > 0`` is false there), as in PyTorch; for α = 1 both sides agree and ELU is C¹. The negative
    branch is computed as α·expm1(x), exact for small |x|. Forward saves ``positive = [x > 0]`` and y.
    """

    @staticmethod
    def forward(ctx, x, alpha=1.0):
        xp = ctx.xp
        positive = x > 0
        y = xp.where(positive, x, alpha * xp.expm1(xp.minimum(x, 0.0)))  # min: no overflow in the unused branch
        ctx.save_for_backward(positive, y)
        ctx.alpha = alpha
        return y

    @staticmethod
    def backward(ctx, g):
        positive, y = ctx.saved_tensors
        return ctx.xp.where(positive, g, (y + ctx.alpha) * g)


def elu(input: Tensor, alpha: float = 1.0) -> Tensor:  # noqa: A002 - PyTorch's name
    """``x`` where x > 0, ``alpha * (exp(x) - 1)`` elsewhere (``torch.nn.functional.elu``). Any alpha is accepted,
    as in PyTorch."""
    alpha = check_number("elu", "alpha", alpha)
    check_float("elu", "input", input)
    return Elu.apply(input, alpha=alpha)
