"""Layer normalization as one op (Ba, Kiros and Hinton 2016, "Layer normalization"): each sample is normalized over
its own features, so the statistics do not depend on the rest of the batch (the same computation at training and
at test time, and for a batch of one)."""

from __future__ import annotations

import numbers
from collections.abc import Sequence

from tinygrad_edu.autograd import Function, InputError
from tinygrad_edu.dtypes import is_floating
from tinygrad_edu.nn.functional._activation_args import check_float
from tinygrad_edu.nn.functional.batch_norm import compute_dtype
from tinygrad_edu.tensor import Tensor


class LayerNormFunction(Function):
    """y = γ ⊙ x̂ + β with x̂ = (x - μ) / σ, per group of the M elements of the trailing ``normalized_shape`` axes:

        μ = (1/M) Σ x        σ² = (1/M) Σ (x - μ)²  (biased)        σ = sqrt(σ² + eps)

    γ and β have the shape ``normalized_shape`` and act elementwise (they may be absent). Backward, per group, with
    dx̂ = dy ⊙ γ (the same closed form as batchnorm's, with the feature axes in the role of the batch):

        dx = (1/σ) (dx̂ - mean(dx̂) - x̂ ⊙ mean(dx̂ ⊙ x̂))       (means over the group's M elements)
        dγ = Σ_leading dy ⊙ x̂          dβ = Σ_leading dy          (sums over the leading, batch-like axes)

    The two means are what the group's μ and σ pass back: shifting x moves μ with it (mean term), scaling x scales σ
    (x̂ term). x, γ and β come in one dtype: ``layer_norm`` normalizes float16 and bfloat16 input in float32 and rounds
    the output to the input's dtype once. Forward saves x̂, σ and γ.
    """

    @staticmethod
    def forward(ctx, x, gamma=None, beta=None, normalized_shape=(), eps=1e-5):
        xp, k = ctx.xp, len(normalized_shape)
        ctx.axes, ctx.leading = tuple(range(x.ndim - k, x.ndim)), tuple(range(x.ndim - k))
        mu = xp.mean(x, axis=ctx.axes, keepdims=True)
        x_mu = x - mu
        sigma = xp.sqrt(xp.mean(x_mu * x_mu, axis=ctx.axes, keepdims=True) + eps)
        x_hat = x_mu / sigma
        ctx.save_for_backward(x_hat, sigma, gamma)
        y = x_hat if gamma is None else x_hat * gamma
        return y if beta is None else y + beta

    @staticmethod
    def backward(ctx, dy):
        xp = ctx.xp
        x_hat, sigma, gamma = ctx.saved_tensors
        dx = d_gamma = d_beta = None
        if ctx.needs_input_grad[0]:
            dx_hat = dy if gamma is None else dy * gamma
            mean_dx_hat = xp.mean(dx_hat, axis=ctx.axes, keepdims=True)
            mean_dx_hat_x_hat = xp.mean(dx_hat * x_hat, axis=ctx.axes, keepdims=True)
            dx = (dx_hat - mean_dx_hat - x_hat * mean_dx_hat_x_hat) / sigma
        if ctx.needs_input_grad[1]:
            d_gamma = _sum_leading(xp, dy * x_hat, ctx.leading)
        if ctx.needs_input_grad[2]:
            d_beta = _sum_leading(xp, dy, ctx.leading)
        return dx, d_gamma, d_beta


def _sum_leading(xp, a, leading):
    """Σ over the leading axes (none when the whole input is one group)."""
    return xp.sum(a, axis=leading) if leading else a


def _check(x, weight, bias, normalized_shape):
    """TypeError/InputError naming the layer, the argument, what was expected and what came."""
    if not isinstance(x, Tensor):
        raise TypeError(f"layer_norm: input must be a Tensor, got {type(x).__name__}")
    shape, k = x.shape, len(normalized_shape)
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
    check_float("layer_norm", "input", x)
    for name, a in (("weight", weight), ("bias", bias)):
        if a is not None and not is_floating(a.dtype):
            raise TypeError(f"layer_norm: {name} must be a floating-point tensor, got dtype {a.dtype}")


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
    _check(input, weight, bias, normalized_shape)
    compute = compute_dtype(input)  # float16, bfloat16: normalized in float32, by differentiable casts
    gamma = None if weight is None else weight.astype(compute)
    beta = None if bias is None else bias.astype(compute)
    y = LayerNormFunction.apply(input.astype(compute), gamma, beta, normalized_shape=normalized_shape, eps=float(eps))
    return y.astype(input.dtype)
