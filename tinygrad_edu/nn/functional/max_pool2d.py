"""2-D max pooling (``torch.nn.functional.max_pool2d``): the max of each kh × kw window, as used for translation
invariance and downsampling in convolutional networks (LeCun et al. 1998; Krizhevsky et al. 2012 overlap windows,
k = 3, s = 2)."""

from __future__ import annotations

import math
from typing import Any

from tinygrad_edu.autograd import Function
from tinygrad_edu.nn.functional._pooling import check_input, cropped, geometry, padded, window
from tinygrad_edu.tensor import Tensor


class MaxPool2dFunction(Function):
    """x (N, C, H, W) or (C, H, W), padded with -inf by (ph, pw). The window of output position (r, c) is the set
    of padded positions (r·sh + i·dh, c·sw + j·dw), i < kh, j < kw:

        y[r, c] = max_{(i, j)} x[r·sh + i·dh, c·sw + j·dw]

    Gradient (g = dL/dy): each g[r, c] goes to the one input the max came from, at the winning offset k*(r, c):

        dL/dx[u, v] = Σ_{(r, c) : (u, v) = position of k*(r, c)} g[r, c]

    a sum, because overlapping windows (s < k) can pick the same input. Computed as col2im: for each offset k, the
    slice of dL/dx at offset k of every window gets ``where(k* == k, g, 0)`` added.

    Tie rule: the FIRST maximal element of a window in row-major order (i, then j) gets all of g[r, c], as
    PyTorch's CPU kernel. Any split among tied elements is a valid subgradient; ``gradcheck`` reports ties as kinks.
    A NaN in a window is its max (the first NaN), as in PyTorch. Forward saves k* (an int index per output), not x.
    """

    @staticmethod
    def forward(ctx, x, kernel=(2, 2), stride=(2, 2), padding=(0, 0), dilation=(1, 1), out=(1, 1)):
        xp = ctx.xp
        x_pad = padded(xp, x, padding, -math.inf)
        # where the real input is: an input of -inf beats the -inf padding around it, as in PyTorch
        inside = padded(xp, xp.ones(x.shape, dtype=xp.bool, device=x.device), padding, False)
        best, k_star, best_inside = None, None, None
        for k in range(kernel[0] * kernel[1]):  # offsets in row-major order: a later offset wins only if larger
            index = window(k // kernel[1], k % kernel[1], stride, dilation, out)
            v, v_inside = x_pad[index], inside[index]
            if best is None:
                best, k_star, best_inside = v, xp.zeros(v.shape, dtype=xp.int64, device=v.device), v_inside
                continue
            better = (v > best) | (xp.isnan(v) & ~xp.isnan(best)) | (v_inside & ~best_inside & (v >= best))
            best = xp.where(better, v, best)
            best_inside = best_inside | v_inside
            k_star = xp.where(better, xp.asarray(k, dtype=xp.int64, device=v.device), k_star)
        ctx.save_for_backward(k_star)
        ctx.kernel, ctx.stride, ctx.padding, ctx.dilation, ctx.out = kernel, stride, padding, dilation, out
        ctx.padded_shape = tuple(x_pad.shape)
        return xp.asarray(best, copy=True)

    @staticmethod
    def backward(ctx, g):
        xp = ctx.xp
        (k_star,) = ctx.saved_tensors
        kh, kw = ctx.kernel
        dx_pad = xp.zeros(ctx.padded_shape, dtype=g.dtype, device=g.device)
        zero = xp.zeros((), dtype=g.dtype, device=g.device)
        for k in range(kh * kw):  # scatter-add over kernel offsets (col2im)
            index = window(k // kw, k % kw, ctx.stride, ctx.dilation, ctx.out)
            dx_pad[index] = dx_pad[index] + xp.where(k_star == k, g, zero)
        return cropped(dx_pad, ctx.padding)


def max_pool2d(input: Tensor, kernel_size: Any, stride: Any = None, padding: Any = 0,  # noqa: A002 - PyTorch's name
               dilation: Any = 1) -> Tensor:
    """Max over kh × kw windows of x (N, C, H, W) or (C, H, W), as ``torch.nn.functional.max_pool2d`` (with
    ``ceil_mode=False``, no ``return_indices``). ``stride`` defaults to ``kernel_size``; ``padding`` (at most half the
    kernel) pads with -inf. Output (N, C, OH, OW), OH = floor((H + 2·ph - dh·(kh - 1) - 1) / sh) + 1. The gradient
    goes to the first maximal element of each window (row-major order); overlapping windows add up.
    """
    check_input("max_pool2d", input)
    k, s, p, d, out = geometry("max_pool2d", input.shape, kernel_size, stride, padding, dilation)
    return MaxPool2dFunction.apply(input, kernel=k, stride=s, padding=p, dilation=d, out=out)
