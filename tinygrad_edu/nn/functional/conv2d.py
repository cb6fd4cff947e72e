"""2-D convolution as one op: im2col, one matrix product, and col2im in the backward.

The convolutional layer is the one of LeCun et al. 1998 ("Gradient-based learning applied to document
recognition", Proc. IEEE 86(11)); computing it as a matrix product over unrolled input patches ("im2col") is the
method of Chellapilla, Puri and Simard 2006 ("High performance convolutional neural networks for document
processing"), which every BLAS-based framework has used since.
"""

from __future__ import annotations

import numbers

from tinygrad_edu.autograd import Function, InputError
from tinygrad_edu.dtypes import is_floating
from tinygrad_edu.ops.broadcast import accumulating_sum
from tinygrad_edu.tensor import Tensor


class Conv2dFunction(Function):
    """y[n, o, u, v] = b[o] + Σ_{c, i, j} W[o, c, i, j] · x_pad[n, c, s·u + d·i, s·v + d·j]

    for x (N, C, H, W) zero-padded to x_pad (N, C, H + pt + pb, W + pl + pr), weight W (C_out, C, KH, KW), stride s,
    dilation d; output (N, C_out, OH, OW) with OH = ⌊(H + pt + pb - d·(KH - 1) - 1) / s⌋ + 1 (OW likewise).

    **As a matrix product (im2col).** Unroll every receptive field into a column: X_col[(c, i, j), (n, u, v)] =
    x_pad[n, c, s·u + d·i, s·v + d·j], a (C·KH·KW, N·OH·OW) matrix built from KH·KW strided slices of x_pad (one
    slice per kernel offset (i, j) holds that offset's pixel for every output position). With W_mat = W reshaped to
    (C_out, C·KH·KW), the whole layer is one product, the sum over (c, i, j) being the inner dimension:

        Y_mat = W_mat X_col + b 1ᵀ            (C_out, N·OH·OW), reshaped to (N, C_out, OH, OW)

    **Backward.** With G = dL/dY_mat (the upstream gradient laid out as Y_mat), the rules of the linear layer:

        dL/dW_mat = G X_colᵀ        (a sum over every sample and output position)
        dL/db     = G 1             (Σ of dL/dy over N, OH, OW)
        dL/dX_col = W_matᵀ G

    **col2im adds.** X_col is not a free matrix: a pixel of x_pad appears in every column whose receptive field
    covers it (up to KH·KW of them, when s < d·K). By the chain rule, its gradient is the SUM of the gradients of
    all its copies. So col2im adds each kernel offset's slice of dL/dX_col back into a zero array shaped as x_pad,
    at the positions the forward read it from (overlapping windows add up), then crops the padding (padding was
    a constant: its gradient is dropped).

    Saved: X_col and W_mat (X_col is the layer's memory cost: KH·KW copies of the input). float16 and
    bfloat16: the matrix products accumulate in float32 (``ctx.backend.matmul``), db sums in float32; outputs keep the
    input's dtype.
    """

    @staticmethod
    def forward(ctx, x, weight, bias=None, stride=(1, 1), padding=(0, 0, 0, 0), dilation=(1, 1)):
        xp = ctx.xp
        (sh, sw), (pt, pb, pl, pr), (dh, dw) = stride, padding, dilation
        (N, C, H, W), (C_out, _, KH, KW) = x.shape, weight.shape
        OH, OW = (H + pt + pb - dh * (KH - 1) - 1) // sh + 1, (W + pl + pr - dw * (KW - 1) - 1) // sw + 1
        # x_pad laid out (C, N, Hp, Wp), so that X_col comes out (C·KH·KW, N·OH·OW) and all products are 2-D
        x_pad = xp.zeros((C, N, H + pt + pb, W + pl + pr), dtype=x.dtype, device=ctx.backend.device)
        x_pad[:, :, pt:pt + H, pl:pl + W] = xp.permute_dims(x, (1, 0, 2, 3))
        # X_col: (C, KH·KW, N, OH, OW), one kernel offset's strided slice of x_pad at a time; the array of the
        # previous step when its backward has freed it (backend.scratch: 9x the input for a 3x3 kernel)
        x_col = ctx.backend.scratch("conv2d.x_col", (C, KH * KW, N, OH, OW), x.dtype)
        for i in range(KH):
            for j in range(KW):
                x_col[:, i * KW + j, ...] = x_pad[:, :, _window(i, dh, sh, OH), _window(j, dw, sw, OW)]
        x_col = xp.reshape(x_col, (C * KH * KW, N * OH * OW))  # rows (c, i, j), cols (n, u, v)
        w_mat = xp.reshape(weight, (C_out, C * KH * KW))
        y_mat = ctx.backend.matmul(w_mat, x_col)  # (C_out, N·OH·OW)
        if bias is not None:
            y_mat += xp.reshape(bias, (C_out, 1))
        ctx.save_for_backward(x_col, w_mat)
        ctx.geometry = (N, C, H, W, C_out, KH, KW, OH, OW)
        ctx.options = (stride, padding, dilation)
        return xp.permute_dims(xp.reshape(y_mat, (C_out, N, OH, OW)), (1, 0, 2, 3))

    @staticmethod
    def backward(ctx, dy):
        xp, backend = ctx.xp, ctx.backend
        x_col, w_mat = ctx.saved_tensors
        N, C, H, W, C_out, KH, KW, OH, OW = ctx.geometry
        (sh, sw), (pt, pb, pl, pr), (dh, dw) = ctx.options
        g = xp.reshape(xp.permute_dims(dy, (1, 0, 2, 3)), (C_out, N * OH * OW))  # G, laid out as Y_mat
        needs = ctx.needs_input_grad
        dx = dweight = dbias = None
        if needs[1]:
            dweight = xp.reshape(backend.matmul(g, xp.matrix_transpose(x_col)), (C_out, C, KH, KW))  # G X_colᵀ
        if len(needs) > 2 and needs[2]:
            dbias = accumulating_sum(xp, g, axis=1)  # G 1, in float32 for float16 and bfloat16
        if needs[0]:
            dx_col = xp.reshape(backend.matmul(xp.matrix_transpose(w_mat), g), (C, KH, KW, N, OH, OW))  # W_matᵀ G
            dx_pad = xp.zeros((C, N, H + pt + pb, W + pl + pr), dtype=dy.dtype, device=backend.device)
            for i in range(KH):  # col2im: overlapping windows add up
                for j in range(KW):
                    dx_pad[:, :, _window(i, dh, sh, OH), _window(j, dw, sw, OW)] += dx_col[:, i, j, ...]
            dx = xp.permute_dims(dx_pad[:, :, pt:pt + H, pl:pl + W], (1, 0, 2, 3))  # crop the padding
        return dx, dweight, dbias


def _window(i: int, d: int, s: int, out: int) -> slice:
    """The rows kernel offset i reads for the out output rows: i·d, i·d + s, ..., i·d + s·(out - 1)."""
    return slice(i * d, i * d + s * (out - 1) + 1, s)


def _check_shapes(x: Tensor, weight: Tensor, bias: Tensor | None, padding, dilation) -> None:
    """InputError unless x (N, C, H, W), weight (C_out, C, KH, KW) and bias (C_out,) fit together, have one dtype,
    and the kernel fits in the padded input."""
    if x.ndim != 4:
        raise InputError(f"conv2d: expected input of shape (N, C, H, W) (4-D), got shape {x.shape} ({x.ndim}-D)")
    _, C, H, W = x.shape
    C_out, C_w, KH, KW = weight.shape
    if C != C_w:
        raise InputError(f"conv2d: input of shape {x.shape} has {C} channels but weight of shape {weight.shape} "
                         f"expects {C_w} (weight is (out_channels, in_channels, kH, kW))")
    if x.dtype != weight.dtype or (bias is not None and bias.dtype != x.dtype):
        raise InputError(f"conv2d: input, weight and bias must have one dtype, got {x.dtype}, {weight.dtype}"
                         + (f", {bias.dtype}" if bias is not None else ""))
    if bias is not None and bias.shape != (C_out,):
        raise InputError(f"conv2d: bias has shape {bias.shape}, expected ({C_out},) (one per output channel)")
    (pt, pb, pl, pr), (dh, dw) = padding, dilation
    for axis, size, k, d, p in (("height", H, KH, dh, pt + pb), ("width", W, KW, dw, pl + pr)):
        span = d * (k - 1) + 1
        if size + p < span:
            raise InputError(f"conv2d: the kernel spans {span} pixels in {axis} (size {k}, dilation {d}), more than "
                             f"the padded input's {size + p} (input shape {x.shape}, padding {p} in all)")


def _pair(name: str, value, minimum: int) -> tuple[int, int]:
    """An int or a pair of ints, each >= minimum, as a pair."""
    values = (value, value) if isinstance(value, numbers.Integral) else value
    if (not isinstance(values, (tuple, list)) or len(values) != 2 or any(
            isinstance(v, bool) or not isinstance(v, numbers.Integral) for v in values)):
        raise TypeError(f"conv2d: {name} must be an int or a pair of ints, got {value!r}")
    if min(values) < minimum:
        what = "positive" if minimum == 1 else "non-negative"
        raise InputError(f"conv2d: {name} must be {what}, got {value!r}")
    return int(values[0]), int(values[1])


def conv2d_arguments(weight_shape, stride, padding, dilation):
    """stride, (top, bottom, left, right) padding and dilation as ints, from PyTorch's forms of the arguments:
    an int, a pair, or for padding 'valid' (none) or 'same' (output size = input size; stride 1 only; an odd
    total goes to the bottom/right, as in PyTorch)."""
    stride, dilation = _pair("stride", stride, 1), _pair("dilation", dilation, 1)
    if isinstance(padding, str):
        if padding == "valid":
            return stride, (0, 0, 0, 0), dilation
        if padding != "same":
            raise InputError(f"conv2d: padding must be an int, a pair, 'valid' or 'same', got {padding!r}")
        if stride != (1, 1):
            raise InputError(f"conv2d: padding='same' needs stride 1, got stride {stride}")
        total = [d * (k - 1) for d, k in zip(dilation, weight_shape[2:])]
        return stride, (total[0] // 2, total[0] - total[0] // 2, total[1] // 2, total[1] - total[1] // 2), dilation
    ph, pw = _pair("padding", padding, 0)
    return stride, (ph, ph, pw, pw), dilation


def conv2d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0,  # noqa: A002
           dilation=1) -> Tensor:
    """2-D convolution (cross-correlation, as in PyTorch) of ``input`` (N, C, H, W) with ``weight``
    (out_channels, C, kH, kW), plus ``bias`` (out_channels,) (``torch.nn.functional.conv2d``, without
    ``groups``). ``stride``, ``padding`` (zeros) and ``dilation`` are ints or (height, width) pairs; padding may
    also be 'valid' or 'same'. Returns (N, out_channels, OH, OW)."""
    for name, t in (("input", input), ("weight", weight), ("bias", bias)):
        if t is not None and (not isinstance(t, Tensor) or not is_floating(t.dtype)):
            what = f"dtype {t.dtype}" if isinstance(t, Tensor) else type(t).__name__
            raise TypeError(f"conv2d: {name} must be a floating-point Tensor, got {what}")
    if weight.ndim != 4:
        raise InputError(f"conv2d: expected weight of shape (out_channels, in_channels, kH, kW) (4-D), got shape "
                         f"{weight.shape}")
    stride, padding, dilation = conv2d_arguments(weight.shape, stride, padding, dilation)
    _check_shapes(input, weight, bias, padding, dilation)
    options = dict(stride=stride, padding=padding, dilation=dilation)
    if bias is None:
        return Conv2dFunction.apply(input, weight, **options)
    return Conv2dFunction.apply(input, weight, bias, **options)
