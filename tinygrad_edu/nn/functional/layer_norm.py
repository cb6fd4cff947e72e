"""Layer normalization as one op (Ba, Kiros and Hinton 2016, "Layer normalization"): each sample is normalized over
its own features, so the statistics do not depend on the rest of the batch (the same computation at training and
at test time, and for a batch of one)."""

from __future__ import annotations

import numbers
from collections.abc import Sequence

from tinygrad_edu.autograd import Function, InputError
from tinygrad_edu.tensor import Tensor


class LayerNormFunction(Function):
    """y = γ ⊙ x̂ + β with x̂ = (x - μ) / σ, per group of the M elements of the trailing ``normalized_shape`` axes:

        μ = (1/M) Σ x        σ² = (1/M) Σ (x - μ)²  (biased)        σ = sqrt(σ² + eps)

    γ and β have the shape ``normalized_shape`` and act elementwise (they may be absent). Backward, per group, with
    dx̂ = dy ⊙ γ (the same closed form as batchnorm's, with the feature axes in the role of the batch):

        dx = (1/σ) (dx̂ - mean(dx̂) - x̂ ⊙ mean(dx̂ ⊙ x̂))       (means over the group's M elements)
        dγ = Σ_leading dy ⊙ x̂          dβ = Σ_leading dy          (sums over the leading, batch-like axes)

    The two means are what the group's μ and σ pass back: shifting x moves μ with it (mean term), scaling x scales σ
    (x̂ term). float16 inputs are normalized in float32 and the output is rounded to float16 once. Forward saves x̂
    and σ (in the compute dtype) and γ.
    """

    @staticmethod
    def forward(ctx, x, weight=None, bias=None, normalized_shape=(), eps=1e-5):
        xp, backend = ctx.xp, ctx.backend
        _check(ctx, x, weight, bias, normalized_shape)
        k = len(normalized_shape)
        ctx.axes, ctx.leading = tuple(range(x.ndim - k, x.ndim)), tuple(range(x.ndim - k))
        ctx.dtypes = tuple(None if a is None else a.dtype for a in (x, weight, bias))
        compute = xp.float32 if x.dtype == backend.float16 else x.dtype
        x = _cast(xp, x, compute)
        mu = xp.mean(x, axis=ctx.axes, keepdims=True)
        centered = x - mu
        sigma = xp.sqrt(xp.mean(centered * centered, axis=ctx.axes, keepdims=True) + eps)
        xhat = centered / sigma
        gamma = None if weight is None else _cast(xp, weight, compute)
        ctx.save_for_backward(xhat, sigma, gamma)
        y = xhat if gamma is None else xhat * gamma
        if bias is not None:
            y = y + _cast(xp, bias, compute)
        return _cast(xp, y, ctx.dtypes[0])

    @staticmethod
    def backward(ctx, dy):
        xp = ctx.xp
        xhat, sigma, gamma = ctx.saved_tensors
        dy = _cast(xp, dy, xhat.dtype)
        dx = dgamma = dbeta = None
        if ctx.needs_input_grad[0]:
            dxhat = dy if gamma is None else dy * gamma
            mean_dxhat = xp.mean(dxhat, axis=ctx.axes, keepdims=True)
            mean_dxhat_xhat = xp.mean(dxhat * xhat, axis=ctx.axes, keepdims=True)
            dx = _cast(xp, (dxhat - mean_dxhat - xhat * mean_dxhat_xhat) / sigma, ctx.dtypes[0])
        if ctx.needs_input_grad[1]:
            dgamma = _cast(xp, _sum_leading(xp, dy * xhat, ctx.leading), ctx.dtypes[1])
        if ctx.needs_input_grad[2]:
            dbeta = _cast(xp, _sum_leading(xp, dy, ctx.leading), ctx.dtypes[2])
        return dx, dgamma, dbeta


def _cast(xp, a, dtype):
    return a if a.dtype == dtype else xp.astype(a, dtype)


def _sum_leading(xp, a, leading):
    """Σ over the leading axes (none when the whole input is one group)."""
    return xp.sum(a, axis=leading) if leading else a


def _check(ctx, x, weight, bias, normalized_shape):
    """InputError naming the layer, the argument, what was expected and what came."""
    shape, k = tuple(x.shape), len(normalized_shape)
    if k > len(shape) or shape[len(shape) - k :] != normalized_shape:
        raise InputError(
            f"layer_norm: normalized_shape {normalized_shape} does not match the trailing axes of the input of shape "
            f"{shape} (expected an input of shape (*, {', '.join(map(str, normalized_shape))}))"
        )
    for name, a in (("weight", weight), ("bias", bias)):
        if a is not None and tuple(a.shape) != normalized_shape:
            raise InputError(
                f"layer_norm: {name} has shape {tuple(a.shape)}, expected normalized_shape {normalized_shape}"
            )
    for name, a in (("input", x), ("weight", weight), ("bias", bias)):
        if a is not None and ctx.backend.numpy_dtype(a.dtype).kind != "f":
            raise TypeError(f"layer_norm: {name} must be a floating-point tensor, got dtype "
                            f"{ctx.backend.numpy_dtype(a.dtype)}")


def normalized_shape_arg(normalized_shape: int | Sequence[int], op: str = "layer_norm") -> tuple[int, ...]:
    """``normalized_shape`` (an int or a sequence of ints, as in PyTorch) as a non-empty tuple of positive ints."""
    if isinstance(normalized_shape, numbers.Integral) and not isinstance(normalized_shape, bool):
        normalized_shape = (normalized_shape,)
    if not isinstance(normalized_shape, Sequence) or not all(
        isinstance(n, numbers.Integral) and not isinstance(n, bool) for n in normalized_shape
    ):
        raise TypeError(f"{op}: normalized_shape must be an int or a sequence of ints, got {normalized_shape!r}")
    normalized_shape = tuple(int(n) for n in normalized_shape)
    if not normalized_shape or min(normalized_shape) <= 0:
        raise InputError(f"{op}: normalized_shape must be a non-empty sequence of positive sizes, got {normalized_shape}")
    return normalized_shape


def layer_norm(
    input: Tensor,  # noqa: A002 - PyTorch's name
    normalized_shape: int | Sequence[int],
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    eps: float = 1e-5,
) -> Tensor:
    """Normalize over the trailing ``normalized_shape`` axes, then scale by ``weight`` and shift by ``bias``
    elementwise (``torch.nn.functional.layer_norm``; biased variance)."""
    normalized_shape = normalized_shape_arg(normalized_shape)
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not eps >= 0:
        raise InputError(f"layer_norm: eps must be a non-negative number, got {eps!r}")
    return LayerNormFunction.apply(input, weight, bias, normalized_shape=normalized_shape, eps=float(eps))
