"""Argument checks and window geometry shared by ``max_pool2d`` and ``avg_pool2d``.

A pooling window of size kh × kw slides over the (padded) H × W plane with steps sh, sw. Output size, as PyTorch
(``ceil_mode=False``):

    OH = floor((H + 2·ph - dh·(kh - 1) - 1) / sh) + 1        (dh = dilation, 1 for average pooling)

Window extraction without im2col: for each kernel offset (i, j) the elements at that offset of ALL windows form
one strided slice of the padded input, ``x_pad[..., i·dh : i·dh + sh·(OH-1) + 1 : sh, j·dw : ... : sw]``, an
(N, C, OH, OW) array. Forward reduces over the kh·kw slices; backward adds each slice's gradient back through the
same slice (a scatter-add over kernel offsets, as col2im), so overlapping windows add up.
"""

from __future__ import annotations

import numbers
from typing import Any

from tinygrad_edu.autograd import InputError
from tinygrad_edu.dtypes import is_floating
from tinygrad_edu.tensor import Tensor


def pair(op: str, name: str, value: Any, minimum: int) -> tuple[int, int]:
    """``value`` (an int or a pair of ints) as a pair; TypeError for other types, InputError below ``minimum``."""
    values = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(values) != 2 or any(isinstance(v, bool) or not isinstance(v, numbers.Integral) for v in values):
        raise TypeError(f"{op}: {name} must be an int or a pair of ints, got {value!r}")
    if any(v < minimum for v in values):
        raise InputError(f"{op}: {name} must be at least {minimum}, got {value!r}")
    return int(values[0]), int(values[1])


def check_input(op: str, x: Any) -> None:
    """TypeError unless ``x`` is a floating-point Tensor; InputError unless it is 3-D (C, H, W) or 4-D (N, C, H, W)."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: input must be a Tensor, got {type(x).__name__}")
    if x.ndim not in (3, 4):
        raise InputError(f"{op}: expected a 3-D (C, H, W) or 4-D (N, C, H, W) input, got shape {tuple(x.shape)}")
    if not is_floating(x.dtype):
        raise TypeError(f"{op}: input must be a floating-point tensor, got dtype {x.dtype}")


def geometry(op: str, shape: tuple[int, ...], kernel_size: Any, stride: Any, padding: Any, dilation: Any = 1):
    """(kernel, stride, padding, dilation, output size) as pairs, validated as PyTorch does."""
    k = pair(op, "kernel_size", kernel_size, 1)
    s = k if stride is None or (isinstance(stride, (tuple, list)) and len(stride) == 0) else pair(op, "stride", stride, 1)
    p = pair(op, "padding", padding, 0)
    d = pair(op, "dilation", dilation, 1)
    effective = tuple(di * (ki - 1) + 1 for ki, di in zip(k, d))
    if any(pi > ki // 2 for pi, ki in zip(p, k)):
        raise InputError(f"{op}: padding {p} must be at most half of kernel_size {k} (each window must hold at "
                         "least one element of the input)")
    H, W = shape[-2:]
    out = tuple((n + 2 * pi - e) // si + 1 for n, pi, e, si in zip((H, W), p, effective, s))
    if any(o < 1 for o in out):
        raise InputError(f"{op}: input of shape {tuple(shape)} is too small for kernel_size {k} with padding {p} and "
                         f"dilation {d}: the output would be {out[0]} × {out[1]}; expected H + 2·padding >= "
                         f"{effective[0]} and W + 2·padding >= {effective[1]}")
    return k, s, p, d, out


def window(i: int, j: int, stride: tuple[int, int], dilation: tuple[int, int], out: tuple[int, int]) -> tuple:
    """The index of kernel offset (i, j) in every window of a padded (..., H, W) array: two strided slices."""
    top, left = i * dilation[0], j * dilation[1]
    return (Ellipsis, slice(top, top + stride[0] * (out[0] - 1) + 1, stride[0]),
            slice(left, left + stride[1] * (out[1] - 1) + 1, stride[1]))


def padded(xp: Any, x: Any, padding: tuple[int, int], fill: float) -> Any:
    """``x`` (..., H, W) with ``padding`` rows/columns of ``fill`` on each side of H and W (array-API only)."""
    ph, pw = padding
    if ph == 0 and pw == 0:
        return x
    H, W = x.shape[-2:]
    out = xp.full(tuple(x.shape[:-2]) + (H + 2 * ph, W + 2 * pw), fill, dtype=x.dtype, device=x.device)
    out[..., ph : ph + H, pw : pw + W] = x
    return out


def cropped(x: Any, padding: tuple[int, int]) -> Any:
    """Undo ``padded``: the inner (..., H, W) block."""
    ph, pw = padding
    H, W = x.shape[-2:]
    return x[..., ph : H - ph, pw : W - pw]
