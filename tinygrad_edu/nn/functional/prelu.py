"""The parametric ReLU as one op (He, Zhang, Ren and Sun 2015, "Delving deep into rectifiers: surpassing
human-level performance on ImageNet classification"): leaky ReLU whose negative slope is learned, one shared
slope or one per channel."""

from __future__ import annotations

from tinygrad_edu.autograd import Function, InputError
from tinygrad_edu.dtypes import is_low_precision
from tinygrad_edu.nn.functional._activation_args import check_float
from tinygrad_edu.tensor import Tensor


class PRelu(Function):
    """y = x for x > 0, a·x otherwise, with a learned slope a: one shared (``weight`` of shape (1,)) or one per
    channel (``weight`` of shape (C,), channel axis 1 of x, broadcast over every other axis). With g = dL/dy:

        dL/dx = g where x > 0,  a·g where x <= 0
        dL/da = Σ g·x over the elements where x <= 0      (per channel: summed over every axis but axis 1)

    (He et al., eq. 4: da sums over every position its slope is used at.) At the kink x = 0, dL/dx is a·g (``x > 0``
    is false there), as in PyTorch; x = 0 adds 0 to dL/da either way. float16 and bfloat16 inputs: the sum for dL/da
    is accumulated in float32, then rounded to the weight's dtype.
    """

    @staticmethod
    def forward(ctx, x, weight):
        xp = ctx.xp
        if weight.size == 1:  # one slope, broadcast everywhere
            shape = (1,) * x.ndim
        else:  # (C,) -> (1, C, 1, ..., 1): one slope per channel of axis 1
            shape = (1, x.shape[1]) + (1,) * (x.ndim - 2)
        a = xp.reshape(weight, shape)
        positive = x > 0
        ctx.save_for_backward(x, a, positive)
        ctx.weight_shape = tuple(weight.shape)
        return xp.where(positive, x, a * x)

    @staticmethod
    def backward(ctx, g):
        xp = ctx.xp
        x, a, positive = ctx.saved_tensors
        grad_x = xp.where(positive, g, a * g) if ctx.needs_input_grad[0] else None
        grad_a = None
        if ctx.needs_input_grad[1]:
            gx = xp.where(positive, 0.0, g * x)  # g·x where x <= 0
            if is_low_precision(gx.dtype):
                gx = xp.astype(gx, xp.float32)
            axes = tuple(i for i in range(x.ndim) if a.shape[i] == 1)  # every axis the slope is broadcast along
            grad_a = xp.reshape(xp.astype(xp.sum(gx, axis=axes), a.dtype), ctx.weight_shape)
        return grad_x, grad_a


def prelu(input: Tensor, weight: Tensor) -> Tensor:  # noqa: A002 - PyTorch's name
    """``x`` where x > 0, ``weight * x`` elsewhere (``torch.nn.functional.prelu``): ``weight`` has 1 element (one
    slope) or C, the size of axis 1 of the input (one slope per channel; a 0-d or 1-d input has C = 1)."""
    if not isinstance(weight, Tensor):
        raise TypeError(f"prelu: weight must be a Tensor, got {type(weight).__name__}")
    check_float("prelu", "input", input)
    check_float("prelu", "weight", weight)
    if weight.dtype != input.dtype:
        raise TypeError(f"prelu: input and weight must have the same dtype, got {input.dtype} and {weight.dtype}")
    channels = input.shape[1] if input.ndim >= 2 else 1
    if weight.ndim > 1 or weight.numel() not in (1, channels):
        raise InputError(
            f"prelu: weight of shape {weight.shape} does not fit input of shape {input.shape}: expected "
            f"one slope, shape (1,), or one per channel (axis 1 of the input), shape ({channels},)"
        )
    return PRelu.apply(input, weight)
