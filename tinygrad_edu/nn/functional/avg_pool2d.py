"""2-D average pooling (``torch.nn.functional.avg_pool2d``): the mean of each kh × kw window."""

from __future__ import annotations

from typing import Any

from tinygrad_edu.autograd import Function
from tinygrad_edu.nn.functional._pooling import check_input, cropped, geometry, padded, window
from tinygrad_edu.nn.functional.batch_norm import compute_dtype
from tinygrad_edu.tensor import Tensor


class AvgPool2dFunction(Function):
    """x (N, C, H, W) or (C, H, W), zero-padded by (ph, pw); window (r, c) holds the positions
    (r·sh + i, c·sw + j), i < kh, j < kw:

        y[r, c] = (1 / D[r, c]) Σ_{i, j} x[r·sh + i, c·sw + j]

    with D[r, c] = kh·kw (``count_include_pad=True``, PyTorch's default: padded zeros count), or the number of
    positions of the window inside the input (``count_include_pad=False``). y is linear in x, so

        dL/dx[u, v] = Σ_{(r, c) : window (r, c) holds (u, v)} g[r, c] / D[r, c]

    each output's g / D spread evenly over its window, overlapping windows adding up (col2im over kernel offsets).
    ``avg_pool2d`` hands float16 and bfloat16 input over in float32 (the sums and the backward) and rounds y to the
    input's dtype once.
    Forward saves D.
    """

    @staticmethod
    def forward(ctx, x, kernel=(2, 2), stride=(2, 2), padding=(0, 0), out=(1, 1), count_include_pad=True):
        xp = ctx.xp
        x_pad = padded(xp, x, padding, 0.0)
        kh, kw = kernel
        total = None
        for k in range(kh * kw):
            v = x_pad[window(k // kw, k % kw, stride, (1, 1), out)]
            total = v if total is None else total + v
        if count_include_pad:
            D = xp.asarray(float(kh * kw), dtype=x.dtype, device=x.device)
        else:  # the same sums over an indicator of the input's positions
            inside = padded(xp, xp.ones(tuple(x.shape[-2:]), dtype=x.dtype, device=x.device), padding, 0.0)
            D = sum(inside[window(k // kw, k % kw, stride, (1, 1), out)] for k in range(kh * kw))
        ctx.save_for_backward(D)
        ctx.kernel, ctx.stride, ctx.padding, ctx.out = kernel, stride, padding, out
        ctx.padded_shape = tuple(x_pad.shape)
        return total / D

    @staticmethod
    def backward(ctx, g):
        xp = ctx.xp
        (D,) = ctx.saved_tensors
        kh, kw = ctx.kernel
        share = g / D  # g / D, once per output
        dx_pad = xp.zeros(ctx.padded_shape, dtype=g.dtype, device=g.device)
        for k in range(kh * kw):  # scatter-add over kernel offsets (col2im)
            index = window(k // kw, k % kw, ctx.stride, (1, 1), ctx.out)
            dx_pad[index] = dx_pad[index] + share
        return cropped(dx_pad, ctx.padding)


def avg_pool2d(input: Tensor, kernel_size: Any, stride: Any = None, padding: Any = 0,  # noqa: A002 - PyTorch's name
               *, count_include_pad: bool = True) -> Tensor:
    """Mean over kh × kw windows of x (N, C, H, W) or (C, H, W), as ``torch.nn.functional.avg_pool2d`` (with
    ``ceil_mode=False``, no ``divisor_override``). ``stride`` defaults to ``kernel_size``; ``padding`` (at most half
    the kernel) pads with zeros, which count in the divisor unless ``count_include_pad=False``. The gradient spreads
    g / (kh·kw) over each window; overlapping windows add up.
    """
    check_input("avg_pool2d", input)
    if not isinstance(count_include_pad, bool):
        raise TypeError(f"avg_pool2d: count_include_pad must be a bool, got {type(count_include_pad).__name__}")
    k, s, p, _, out = geometry("avg_pool2d", input.shape, kernel_size, stride, padding)
    compute = compute_dtype(input)  # float16, bfloat16: summed in float32, by differentiable casts
    y = AvgPool2dFunction.apply(input.astype(compute), kernel=k, stride=s, padding=p, out=out,
                                count_include_pad=count_include_pad)
    return y.astype(input.dtype)
