"""Batch normalization (Ioffe & Szegedy 2015), with its backward pass written out three ways for study.

``batch_norm`` is PyTorch's ``torch.nn.functional.batch_norm``: for x of shape (N, C), (N, C, L) or (N, C, H, W)
the statistics are taken per channel c (axis 1) over the M = N·L or N·H·W values of all the other axes.

* ``BatchNormFunction`` (training mode): the closed-form backward, the one to use;
* ``BatchNormEvalFunction`` (evaluation mode): with fixed running statistics the layer is a per-channel affine map,
  and its backward a per-channel scale;
* ``BatchNormStagedFunction`` (``batch_norm_staged``): the backward of the course's slides 90-96, node by node
  (∂L/∂x̂, ∂L/∂σ², ∂L/∂μ, then ∂L/∂x), for reading beside the slides;
* ``batch_norm_composed``: the same forward from primitive tensor ops, differentiated by the tape;
* ``FusedBatchNormFunction``: float16 input on a backend with fused kernels (CUDA), the closed form in two kernels.

One notation throughout: x̂ for the normalized input, μ and σ² for the batch mean and (biased) variance, σ̃ =
sqrt(σ² + ε), M for the values per channel, γ and β for the scale and shift (the slides write z, m, v and B). The
tests check that the three training-mode gradients agree to 1e-10 in float64. The public functions check the inputs
and hand the Functions x, γ and β in one dtype: float16 and bfloat16 input is normalized in float32 (statistics, x̂ and
every reduction; Micikevicius et al. 2018) and the output rounded to the input's dtype once.
"""

from __future__ import annotations

import math
from numbers import Real
from typing import Any

import numpy as np

from tinygrad_edu.autograd import Function, InputError
from tinygrad_edu.dtypes import accumulate_dtype, is_floating, is_low_precision
from tinygrad_edu.tensor import Tensor


def per_channel(xp: Any, v: Any, x: Any) -> Any:
    """A (C,) vector shaped to broadcast along axis 1 of x: as is for (N, C), (1, C, 1, 1) for (N, C, H, W). A
    Python number (γ = 1, β = 0 without affine parameters) stays as it is."""
    if x.ndim == 2 or not hasattr(v, "shape"):
        return v
    return xp.reshape(v, (1, x.shape[1]) + (1,) * (x.ndim - 2))


# ----------------------------------------------------------------------------------------------------------------
# training mode: the closed form
# ----------------------------------------------------------------------------------------------------------------
class BatchNormFunction(Function):
    """Batch normalization in training mode (Ioffe & Szegedy 2015, Algorithm 1; course slides 84-96).

    Per channel, over its M values x_i (i runs over the batch and the spatial positions):

        μ = (1/M) Σ x_i      σ² = (1/M) Σ (x_i - μ)²  (biased)      σ̃ = sqrt(σ² + ε)
        x̂_i = (x_i - μ) / σ̃                                            y_i = γ x̂_i + β

    Backward, with dy_i = ∂L/∂y_i:

        dβ = Σ dy_i          dγ = Σ dy_i x̂_i
        dx_i = γ/(M σ̃) · (M dy_i - Σ dy - x̂_i Σ dy x̂)  =  γ/σ̃ · (dy_i - x̂_i dγ/M - dβ/M)

    Where dx comes from: x_i reaches L through x̂_i directly (γ dy_i / σ̃), through μ (every x̂_j moves by -1/(M σ̃):
    the -Σ dy term), and through σ² (∂σ²/∂x_i = 2(x_i - μ)/M, ∂x̂_j/∂σ² = -x̂_j/(2σ̃²): the -x̂_i Σ dy x̂ term). The
    staged version below keeps these three paths apart. dx sums to zero over each channel (and is orthogonal to x̂,
    up to O(ε)).

    γ and β are (C,) arrays, or the numbers 1 and 0 for a layer without them. Saved for backward: x̂, 1/σ̃ (C values)
    and γ. The running statistics, when given (arrays, passed by keyword:
    not inputs of the tape), are updated in place, as in PyTorch:
        running_mean ← (1 - momentum) running_mean + momentum μ
        running_var  ← (1 - momentum) running_var  + momentum σ² M/(M - 1)    (the unbiased variance)
    """

    @staticmethod
    def forward(ctx, x, gamma, beta, *, running_mean=None, running_var=None, momentum=0.1, eps=1e-5):
        xp, Σ = ctx.xp, ctx.backend.sum_per_channel  # Σ over all axes but the channel axis 1: a (C,) vector
        M = math.prod(x.shape) // x.shape[1]
        mu = Σ(x) / M
        x_hat = x - per_channel(xp, mu, x)  # x - μ: normalized in place two lines down
        var = Σ(x_hat * x_hat) / M
        inv_std = 1 / xp.sqrt(var + eps)
        x_hat *= per_channel(xp, inv_std, x)  # x̂ = (x - μ)/σ̃
        ctx.save_for_backward(x_hat, inv_std, gamma)
        update_running_stats(xp, running_mean, running_var, momentum, mu, var, M)
        y = per_channel(xp, gamma, x) * x_hat
        y += per_channel(xp, beta, x)  # y = γ x̂ + β
        return y

    @staticmethod
    def backward(ctx, dy):
        xp, Σ = ctx.xp, ctx.backend.sum_per_channel
        x_hat, inv_std, gamma = ctx.saved_tensors
        M = math.prod(dy.shape) // dy.shape[1]
        d_beta = Σ(dy)
        d_gamma = Σ(dy * x_hat)
        dx = x_hat * per_channel(xp, d_gamma / -M, dy)  # dx = γ/σ̃ · (dy - x̂ dγ/M - dβ/M), in place:
        dx += dy
        dx -= per_channel(xp, d_beta / M, dy)
        dx *= per_channel(xp, gamma * inv_std, dy)
        return dx, d_gamma, d_beta


def update_running_stats(xp: Any, running_mean: Any, running_var: Any, momentum: float, mu: Any, var: Any,
                         M: int) -> None:
    """In place, when given (the caller's buffers change, as in PyTorch):
        running_mean ← (1 - momentum) running_mean + momentum μ
        running_var  ← (1 - momentum) running_var  + momentum σ² M/(M - 1)    (the unbiased variance)"""
    for running, value in ((running_mean, momentum * mu), (running_var, (momentum * M / (M - 1)) * var)):
        if running is not None:
            running *= 1 - momentum
            running += value if value.dtype == running.dtype else xp.astype(value, running.dtype)


# ----------------------------------------------------------------------------------------------------------------
# evaluation mode: a per-channel affine map
# ----------------------------------------------------------------------------------------------------------------
class BatchNormEvalFunction(Function):
    """Batch normalization in evaluation mode, with the running statistics μ̂, σ̂² (slide 86):

        y = γ (x - μ̂)/sqrt(σ̂² + ε) + β = scale · x + shift,   scale = γ/sqrt(σ̂² + ε),  shift = β - μ̂ · scale

    μ̂ and σ̂² are constants here (not computed from x), so the backward is that of an affine map:

        dx = scale · dy          dγ = Σ dy x̂  with x̂ = (x - μ̂)/sqrt(σ̂² + ε)          dβ = Σ dy

    Saved for backward: scale (C values); x, μ̂ and 1/sqrt(σ̂² + ε) only when γ needs a gradient.
    """

    @staticmethod
    def forward(ctx, x, gamma, beta, *, running_mean, running_var, eps=1e-5):
        xp = ctx.xp
        mu = per_channel(xp, running_mean, x)
        inv_std = 1 / xp.sqrt(per_channel(xp, running_var, x) + eps)
        scale = per_channel(xp, gamma, x) * inv_std
        if ctx.needs_input_grad[1]:  # a copy of μ̂: the caller's buffer, which a later training step updates in place
            ctx.save_for_backward(scale, x, xp.asarray(mu, copy=True), inv_std)
        else:
            ctx.save_for_backward(scale)
        y = x - mu
        y *= scale
        y += per_channel(xp, beta, x)  # y = (x - μ̂) · scale + β
        return y

    @staticmethod
    def backward(ctx, dy):
        Σ = ctx.backend.sum_per_channel
        scale, *x_and_stats = ctx.saved_tensors
        dx = dy * scale if ctx.needs_input_grad[0] else None
        d_gamma = None
        if x_and_stats:
            x, mu, inv_std = x_and_stats
            d_gamma = Σ(dy * ((x - mu) * inv_std))
        return dx, d_gamma, Σ(dy) if ctx.needs_input_grad[2] else None


# ----------------------------------------------------------------------------------------------------------------
# training mode, staged: the slides' derivation node by node (for study; BatchNormFunction is the one to use)
# ----------------------------------------------------------------------------------------------------------------
class BatchNormStagedFunction(Function):
    """Batch normalization in training mode, its backward in the stages of the course's slides 90-96.

    Forward, per channel, over the M values x_i of the batch (and spatial positions):
        μ = (1/M) Σ x_i      σ² = (1/M) Σ (x_i - μ)²      x̂_i = (x_i - μ)/sqrt(σ² + ε)      y_i = γ x̂_i + β
    Backward, each node's gradient from the ones after it (the slides write z, m, v and B for x̂, μ, σ² and M):
        ∂L/∂γ = Σ ∂L/∂y_i x̂_i          ∂L/∂β = Σ ∂L/∂y_i                                    (slide 91)
        ∂L/∂x̂_i = γ ∂L/∂y_i                                                                  (slide 93)
        ∂L/∂σ² = -½ (σ² + ε)^(-3/2) Σ ∂L/∂x̂_i (x_i - μ)                                       (slide 94)
        ∂L/∂μ = -(σ² + ε)^(-1/2) Σ ∂L/∂x̂_i     (the path μ → σ² adds ∂L/∂σ² · (-2/M) Σ (x_i - μ) = 0)
        ∂L/∂x_i = ∂L/∂x̂_i (σ² + ε)^(-1/2) + (2/M) ∂L/∂σ² (x_i - μ) + (1/M) ∂L/∂μ             (slide 95)
    Substituting the stages into the last line gives BatchNormFunction's closed form.
    Saved for backward: x - μ, σ² and γ.
    """

    @staticmethod
    def forward(ctx, x, gamma, beta, eps=1e-5):
        xp, axes = ctx.xp, (0,) + tuple(range(2, x.ndim))
        mu = xp.mean(x, axis=axes, keepdims=True)
        x_mu = x - mu
        var = xp.mean(x_mu * x_mu, axis=axes, keepdims=True)
        x_hat = x_mu / xp.sqrt(var + eps)
        ctx.save_for_backward(x_mu, var, gamma)
        ctx.eps = eps
        return per_channel(xp, gamma, x) * x_hat + per_channel(xp, beta, x)

    @staticmethod
    def backward(ctx, dL_dy):
        xp = ctx.xp
        x_mu, var, gamma = ctx.saved_tensors
        eps, axes, C = ctx.eps, (0,) + tuple(range(2, x_mu.ndim)), x_mu.shape[1]
        M = math.prod(x_mu.shape) // C
        x_hat = x_mu / xp.sqrt(var + eps)
        dL_dgamma = xp.reshape(xp.sum(dL_dy * x_hat, axis=axes), (C,))
        dL_dbeta = xp.reshape(xp.sum(dL_dy, axis=axes), (C,))
        dL_dx_hat = per_channel(xp, gamma, x_mu) * dL_dy
        dL_dvar = -0.5 * (var + eps) ** -1.5 * xp.sum(dL_dx_hat * x_mu, axis=axes, keepdims=True)
        dL_dmu = -((var + eps) ** -0.5) * xp.sum(dL_dx_hat, axis=axes, keepdims=True)
        dL_dx = dL_dx_hat * (var + eps) ** -0.5 + (2 / M) * dL_dvar * x_mu + (1 / M) * dL_dmu
        return dL_dx, dL_dgamma, dL_dbeta


# ----------------------------------------------------------------------------------------------------------------
# float16 on a backend with fused kernels (CUDA): the closed form in two kernels
# ----------------------------------------------------------------------------------------------------------------
class FusedBatchNormFunction(Function):
    """``BatchNormFunction``'s closed form for float16 x in the backend's fused kernels (``kernels/batchnorm_fp16.cu``):
    statistics and sums in float32, x read once per pass. Saves x (float16) rather than a float32 x̂, which the
    backward kernel recomputes from μ and 1/σ̃. γ and β (float32 or absent) get float32 gradients, cast back."""

    @staticmethod
    def forward(ctx, x, gamma=None, beta=None, *, running_mean=None, running_var=None, momentum=0.1, eps=1e-5):
        y, mu, var, inv_std = ctx.backend.kernel("batch_norm_fp16_forward")(x, gamma, beta, eps)
        ctx.save_for_backward(x, mu, inv_std, gamma)
        ctx.dtypes = tuple(None if a is None else a.dtype for a in (gamma, beta))
        update_running_stats(ctx.xp, running_mean, running_var, momentum, mu, var, math.prod(x.shape) // x.shape[1])
        return y

    @staticmethod
    def backward(ctx, dy):
        x, mu, inv_std, gamma = ctx.saved_tensors
        dx, d_gamma, d_beta = ctx.backend.kernel("batch_norm_fp16_backward")(x, dy, mu, inv_std, gamma)
        gamma_dtype, beta_dtype = ctx.dtypes
        return (dx, None if gamma_dtype is None else ctx.xp.astype(d_gamma, gamma_dtype),
                None if beta_dtype is None else ctx.xp.astype(d_beta, beta_dtype))


# ----------------------------------------------------------------------------------------------------------------
# the public functions
# ----------------------------------------------------------------------------------------------------------------
def batch_norm(
    input: Tensor,  # noqa: A002 - PyTorch's name
    running_mean: Tensor | None,
    running_var: Tensor | None,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Tensor:
    """Batch normalization over axis 1 of ``input`` (N, C, ...), as ``torch.nn.functional.batch_norm``.

    ``training=True``: normalize with the batch's mean and biased variance per channel, and update ``running_mean``
    and ``running_var`` in place when given (``running ← (1 - momentum) running + momentum · batch statistic``, the
    variance unbiased). ``training=False``: normalize with ``running_mean`` and ``running_var``. Then ``y = weight ·
    x̂ + bias`` per channel when those are given. float16 and bfloat16 inputs: statistics in float32, output in the
    input's dtype.
    """
    check_inputs("batch_norm", input, weight, bias, eps, running_mean, running_var)
    if training:
        if isinstance(momentum, bool) or not isinstance(momentum, Real):
            raise TypeError(f"batch_norm: momentum must be a number, got {momentum!r}")
        check_more_than_one_value("batch_norm", input)
        if input.numel() == 0:  # an empty batch has no statistics: the running ones stay as they are (PyTorch)
            running_mean = running_var = None
        stats = dict(running_mean=_data(running_mean), running_var=_data(running_var), momentum=float(momentum),
                     eps=float(eps))
        if input.dtype == np.float16 and input.backend.kernel("batch_norm_fp16_forward") is not None:
            return FusedBatchNormFunction.apply(input, weight, bias, **stats)
        return in_compute_dtype(BatchNormFunction, input, weight, bias, **stats)
    if running_mean is None or running_var is None:
        raise InputError("batch_norm: running_mean and running_var are required when training=False (evaluation "
                         "normalizes with them); pass training=True to use the batch's statistics")
    compute = compute_dtype(input)
    return in_compute_dtype(BatchNormEvalFunction, input, weight, bias, eps=float(eps),
                            running_mean=running_mean.astype(compute).data,
                            running_var=running_var.astype(compute).data)


def batch_norm_staged(input: Tensor, weight: Tensor | None = None, bias: Tensor | None = None,  # noqa: A002
                      eps: float = 1e-5) -> Tensor:
    """Training-mode batch normalization whose backward follows the slides stage by stage (for study): the same
    values and gradients as ``batch_norm(input, None, None, weight, bias, training=True, eps=eps)``."""
    check_inputs("batch_norm_staged", input, weight, bias, eps)
    check_more_than_one_value("batch_norm_staged", input)
    return in_compute_dtype(BatchNormStagedFunction, input, weight, bias, eps=float(eps))


def batch_norm_composed(input: Tensor, weight: Tensor | None = None, bias: Tensor | None = None,  # noqa: A002
                        eps: float = 1e-5) -> Tensor:
    """Training-mode batch normalization built from primitive tensor ops (mean, -, *, +, sqrt, /): its backward is
    the tape's, op by op. The reference the hand-derived backwards are tested and benchmarked against."""
    check_inputs("batch_norm_composed", input, weight, bias, eps)
    check_more_than_one_value("batch_norm_composed", input)
    axes, shape = (0,) + tuple(range(2, input.ndim)), (1, input.shape[1]) + (1,) * (input.ndim - 2)
    mean = input.mean(axis=axes, keepdims=True)
    centered = input - mean
    var = (centered * centered).mean(axis=axes, keepdims=True)
    y = centered / (var + eps).sqrt()
    if weight is not None:
        y = y * weight.reshape(shape)
    if bias is not None:
        y = y + bias.reshape(shape)
    return y


# ----------------------------------------------------------------------------------------------------------------
# what the public functions do before the math: dtypes, and the checks at the door
# ----------------------------------------------------------------------------------------------------------------
def compute_dtype(x: Tensor) -> np.dtype:
    """The dtype normalization computes in: float32 for low-precision x (float16 or bfloat16 storage, FP32 statistics),
    else x's own (``dtypes.accumulate_dtype``)."""
    return accumulate_dtype(x.dtype)


def in_compute_dtype(function: type[Function], x: Tensor, weight: Tensor | None, bias: Tensor | None,
                     **options: Any) -> Tensor:
    """``function.apply(x, γ, β, **options)`` with x, γ and β cast (differentiably) to ``compute_dtype(x)``, and the
    output cast back to x's dtype: each input gets its gradient in its own dtype. γ = 1 and β = 0 where absent."""
    dtype, same = x.dtype, x._data.dtype
    if not is_low_precision(dtype) and (weight is None or weight._data.dtype == same) and (bias is None or bias._data.dtype == same):
        return function.apply(x, 1.0 if weight is None else weight, 0.0 if bias is None else bias, **options)  # no cast
    compute = compute_dtype(x)
    gamma = 1.0 if weight is None else weight.astype(compute)
    beta = 0.0 if bias is None else bias.astype(compute)
    return function.apply(x.astype(compute), gamma, beta, **options).astype(dtype)


def check_inputs(op: str, x: Any, weight: Any, bias: Any, eps: Any, running_mean: Any = None,
                 running_var: Any = None) -> None:
    """TypeError/InputError naming the op and the argument, for anything batch normalization cannot take."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: input must be a Tensor, got {type(x).__name__}")
    shape = x.shape
    if not is_floating(x.dtype):
        raise TypeError(f"{op}: input must be floating point, got dtype {x.dtype}")
    if len(shape) < 2:
        raise InputError(f"{op}: expected input of shape (N, C, ...) with at least 2 axes, got shape {shape}")
    channels = shape[1:2]
    named = (("weight", weight), ("bias", bias), ("running_mean", running_mean), ("running_var", running_var))
    for name, t in named:
        if t is None:
            continue
        if not isinstance(t, Tensor):
            raise TypeError(f"{op}: {name} must be a Tensor or None, got {type(t).__name__}")
        if t.shape != channels:
            raise InputError(f"{op}: {name} has shape {t.shape}, expected ({shape[1]},) for input of shape {shape} "
                             f"({shape[1]} channels on axis 1)")
        if not is_floating(t.dtype):
            raise TypeError(f"{op}: {name} must be floating point, got dtype {t.dtype}")
        if t.backend is not x.backend:
            raise RuntimeError(f"{op}: expected all tensors on one device, got input on {x.device} and {name} on "
                               f"{t.device}. Move them with .to(device).")
    if isinstance(eps, bool) or not isinstance(eps, Real) or not eps > 0:
        raise InputError(f"{op}: eps must be a positive number, got {eps!r}")


def check_more_than_one_value(op: str, x: Tensor) -> None:
    """PyTorch's rule: one value per channel has no variance to normalize with."""
    if x.numel() == x.shape[1]:
        raise InputError(f"{op}: Expected more than 1 value per channel when training, got input size {x.shape}")


def _data(t: Tensor | None) -> Any:
    """The array of a running statistic (updated in place by the op), or None."""
    return None if t is None else t.data
