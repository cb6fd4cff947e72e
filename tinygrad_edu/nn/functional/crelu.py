"""The concatenated ReLU as one op (Shang, Sohn, Almeida and Lee 2016, "Understanding and improving convolutional
neural networks via concatenated rectified linear units"): keep both the positive and the negative part of x."""

from __future__ import annotations

from tinygrad_edu import arguments
from tinygrad_edu.autograd import Function
from tinygrad_edu.nn.functional._activation_args import check_dim, check_float
from tinygrad_edu.tensor import Tensor


class CRelu(Function):
    """y = concat(relu(x), relu(-x)) along axis ``dim``, which doubles in size: y₁ = max(x, 0), y₂ = max(-x, 0).

    With g = dL/dy split into its halves g₁ (of y₁) and g₂ (of y₂):

        dL/dx = g₁·[x > 0] - g₂·[x < 0]

    At the kink x = 0 both halves are 0 and so is dL/dx (relu'(0) = 0 in each half, as PyTorch's relu). Exactly one
    half is nonzero at each x ≠ 0, so ‖y‖ = ‖x‖: the norm of the signal is kept forward, and, as each g entry
    reaches at most one x, backward too (‖dL/dx‖ <= ‖g‖). Forward saves x for the two masks.
    """

    @staticmethod
    def forward(ctx, x, dim=1):
        xp = ctx.xp
        ctx.save_for_backward(x)
        ctx.dim = dim % x.ndim
        return xp.concat([xp.maximum(x, 0.0), xp.maximum(-x, 0.0)], axis=ctx.dim)

    @staticmethod
    def backward(ctx, g):
        xp = ctx.xp
        (x,) = ctx.saved_tensors
        n, before = x.shape[ctx.dim], (slice(None),) * ctx.dim
        g1, g2 = g[before + (slice(0, n), ...)], g[before + (slice(n, 2 * n), ...)]
        return xp.where(x > 0, g1, 0.0) - xp.where(x < 0, g2, 0.0)


def crelu(input: Tensor, dim: int | None = None, *, axis: int | None = None) -> Tensor:  # noqa: A002 - PyTorch's name
    """``concat(relu(x), relu(-x))`` along ``dim`` (default 1, the channel axis; ``axis`` is NumPy's spelling, not
    both), which doubles that axis. PyTorch has no crelu; the name and the default follow Shang et al. and
    TensorFlow's ``tf.nn.crelu`` (whose default axis is -1, the channel axis of NHWC)."""
    dim, _ = arguments.spelling("crelu", dim, axis)
    check_float("crelu", "input", input)
    return CRelu.apply(input, dim=check_dim("crelu", 1 if dim is None else dim, input.shape))
