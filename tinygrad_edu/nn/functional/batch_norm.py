"""Batch normalization (Ioffe & Szegedy 2015), with its backward pass written out three ways for study.

``batch_norm`` is PyTorch's ``torch.nn.functional.batch_norm``: for x of shape (N, C), (N, C, L) or (N, C, H, W)
the statistics are taken per channel c (axis 1) over the M = N·L or N·H·W values of all the other axes.

* ``BatchNormFunction`` (training mode): the closed-form backward, the one to use;
* ``BatchNormEvalFunction`` (evaluation mode): with fixed running statistics the layer is a per-channel affine map,
  and its backward a per-channel scale;
* ``BatchNormStagedFunction`` (``batch_norm_staged``): the backward of the course's slides 93-96, node by node
  (∂L/∂x̂, ∂L/∂v, ∂L/∂m, then ∂L/∂x), for reading beside the slides;
* ``batch_norm_composed``: the same forward from primitive tensor ops, differentiated by the tape.

The tests check that the three training-mode gradients agree to 1e-10 in float64. float16 inputs: the statistics
and every reduction run in float32 (x̂ is kept in float32), and the output is rounded to float16 once.
"""

from __future__ import annotations

import math
from numbers import Real

from tinygrad_edu.ops.broadcast import ones_vector
from tinygrad_edu.tensor import Function, InputError, Tensor


# ----------------------------------------------------------------------------------------------------------------
# helpers: axes and dtypes
# ----------------------------------------------------------------------------------------------------------------
def _axes(x) -> tuple[int, ...]:
    """The axes the statistics are taken over: all but the channel axis 1."""
    return (0,) + tuple(range(2, x.ndim))


def _per_channel(xp, v, x):
    """A (C,) vector shaped to broadcast against x along axis 1: as is for (N, C), (1, C, 1, 1) for (N, C, H, W)."""
    return v if x.ndim == 2 else xp.reshape(v, (1, x.shape[1]) + (1,) * (x.ndim - 2))


def _channel_sum(ctx, a):
    """Σ over every axis but axis 1, a (C,) vector: products with vectors of ones, 1ᵀ a for (N, C) (after
    (N, C, L) @ 1 over the positions for more axes). BLAS does them several times faster than xp.sum over axis 0."""
    if a.ndim > 2:
        a = ctx.xp.reshape(a, (a.shape[0], a.shape[1], -1))
        a = ctx.backend.matmul(a, ones_vector(ctx, a.shape[2], a.dtype))
    return ctx.backend.matmul(ones_vector(ctx, a.shape[0], a.dtype), a)


def _compute_dtype(ctx, x):
    """float16 is computed in float32; float32 and float64 in themselves."""
    return ctx.xp.float32 if x.dtype == ctx.backend.float16 else x.dtype


def _cast(xp, a, dtype):
    return a if a.dtype == dtype else xp.astype(a, dtype)


def _count(x) -> int:
    """M, the number of values per channel."""
    return math.prod(x.shape) // x.shape[1]


def _dtypes(x, weight, bias) -> tuple:
    """The dtypes the gradients go back in: x's, and weight's and bias's (None where there is none)."""
    return x.dtype, None if weight is None else weight.dtype, None if bias is None else bias.dtype


def _scale_and_shift(ctx, x_hat, weight, bias, x):
    """y = γ x̂ + β per channel, in x̂'s dtype (a copy of x̂ when there is no γ); returns y and γ (or None)."""
    xp = ctx.xp
    gamma = None if weight is None else _cast(xp, weight, x_hat.dtype)
    y = x_hat * _per_channel(xp, gamma, x) if gamma is not None else xp.asarray(x_hat, copy=True)
    if bias is not None:
        y += _per_channel(xp, _cast(xp, bias, x_hat.dtype), x)
    return y, gamma


def _update_running_stats(xp, running_mean, running_var, momentum, mean, var, M) -> None:
    """In place, as in PyTorch (the caller's buffers change), when given:
        running_mean ← (1 - momentum) running_mean + momentum μ
        running_var  ← (1 - momentum) running_var  + momentum σ² M/(M - 1)    (the unbiased variance)"""
    if running_mean is not None:
        running_mean *= 1 - momentum
        running_mean += _cast(xp, momentum * mean, running_mean.dtype)
    if running_var is not None:
        running_var *= 1 - momentum
        running_var += _cast(xp, (momentum * M / (M - 1)) * var, running_var.dtype)


def _input_gradient(xp, dy, x_hat, inv_std, gamma, sum_dy, sum_dy_x_hat, M):
    """The closed form dx = γ/(M σ̃) · (M dy - Σdy - x̂ Σdy x̂), computed as γ/σ̃ · (dy - Σdy/M - x̂ Σdy x̂/M) in
    place, in x̂'s dtype."""
    dx = x_hat * _per_channel(xp, sum_dy_x_hat / -M, x_hat)
    dx += dy
    dx -= _per_channel(xp, sum_dy / M, x_hat)
    dx *= _per_channel(xp, inv_std if gamma is None else gamma * inv_std, x_hat)
    return dx


# ----------------------------------------------------------------------------------------------------------------
# training mode: the closed form
# ----------------------------------------------------------------------------------------------------------------
class BatchNormFunction(Function):
    """Batch normalization in training mode (Ioffe & Szegedy 2015, Algorithm 1; course slides 84-96).

    Per channel, over its M values x_i (i runs over the batch and the spatial positions):

        μ = (1/M) Σ x_i      σ² = (1/M) Σ (x_i - μ)²  (biased)      inv_std = 1/σ̃ = 1/sqrt(σ² + ε)
        x̂_i = (x_i - μ) · inv_std                                      y_i = γ x̂_i + β

    Backward, with dy_i = ∂L/∂y_i:

        dβ = Σ dy_i          dγ = Σ dy_i x̂_i
        dx_i = γ/(M σ̃) · (M dy_i - Σ dy - x̂_i Σ dy x̂)

    Where dx comes from: x_i reaches L through x̂_i directly (γ dy_i / σ̃), through μ (every x̂_j moves by -1/(M σ̃):
    the -Σ dy term), and through σ² (∂σ²/∂x_i = 2(x_i - μ)/M, ∂x̂_j/∂σ² = -x̂_j/(2σ̃²): the -x̂_i Σ dy x̂ term). The
    staged version below keeps these three paths apart. dx sums to zero over each channel (and is orthogonal to x̂,
    up to O(ε)).

    Saved for backward: x_hat (float32 for a float16 x), inv_std (C values), gamma (or None).
    The running statistics, when given (arrays, passed by keyword: not inputs of the tape), are updated in place:
        running_mean ← (1 - momentum) running_mean + momentum μ
        running_var  ← (1 - momentum) running_var  + momentum σ² M/(M - 1)    (the unbiased variance)
    """

    @staticmethod
    def forward(ctx, x, weight=None, bias=None, *, running_mean=None, running_var=None, momentum=0.1, eps=1e-5):
        if x.dtype == ctx.backend.float16 and hasattr(ctx.backend, "batch_norm_fp16_forward"):  # CUDA, float16
            return _fused_forward(ctx, x, weight, bias, running_mean, running_var, momentum, eps)
        xp = ctx.xp
        dtype, M = _compute_dtype(ctx, x), _count(x)
        xc = _cast(xp, x, dtype)
        mean = _channel_sum(ctx, xc) / M  # (C,), as every per-channel vector here
        x_hat = xc - _per_channel(xp, mean, x)  # centered; normalized in place below
        var = _channel_sum(ctx, x_hat * x_hat) / M  # biased: the one that normalizes
        inv_std = 1 / xp.sqrt(var + eps)
        x_hat *= _per_channel(xp, inv_std, x)
        y, gamma = _scale_and_shift(ctx, x_hat, weight, bias, x)
        ctx.save_for_backward(x_hat, inv_std, gamma)
        ctx.M, ctx.dtypes = M, _dtypes(x, weight, bias)
        _update_running_stats(xp, running_mean, running_var, momentum, mean, var, M)
        return _cast(xp, y, x.dtype)

    @staticmethod
    def backward(ctx, dy):
        if getattr(ctx, "fused", False):
            return _fused_backward(ctx, dy)
        xp = ctx.xp
        x_hat, inv_std, gamma = ctx.saved_tensors
        M, (x_dtype, weight_dtype, bias_dtype) = ctx.M, ctx.dtypes
        dy = _cast(xp, dy, x_hat.dtype)
        sum_dy = _channel_sum(ctx, dy)  # = dβ, (C,)
        sum_dy_x_hat = _channel_sum(ctx, dy * x_hat)  # = dγ
        dx = None
        if ctx.needs_input_grad[0]:  # dx = γ/(M σ̃) · (M dy - Σdy - x̂ Σdy x̂)
            dx = _cast(xp, _input_gradient(xp, dy, x_hat, inv_std, gamma, sum_dy, sum_dy_x_hat, M), x_dtype)
        d_gamma = None if weight_dtype is None else _cast(xp, sum_dy_x_hat, weight_dtype)
        d_beta = None if bias_dtype is None else _cast(xp, sum_dy, bias_dtype)
        return dx, d_gamma, d_beta


def _fused_forward(ctx, x, weight, bias, running_mean, running_var, momentum, eps):
    """float16 on a CUDA backend: the same closed form in fused kernels (kernels/batchnorm_fp16.cu), statistics in
    float32. x (float16) is saved instead of the float32 x̂, which the backward kernel recomputes from μ, inv_std."""
    xp, M = ctx.xp, _count(x)
    y, mean, var, inv_std = ctx.backend.batch_norm_fp16_forward(x, weight, bias, eps)
    ctx.save_for_backward(x, mean, inv_std, weight)
    ctx.fused, ctx.dtypes = True, _dtypes(x, weight, bias)[1:]
    _update_running_stats(xp, running_mean, running_var, momentum, mean, var, M)
    return y


def _fused_backward(ctx, dy):
    xp = ctx.xp
    x, mean, inv_std, weight = ctx.saved_tensors
    weight_dtype, bias_dtype = ctx.dtypes
    dx, d_gamma, d_beta = ctx.backend.batch_norm_fp16_backward(x, _cast(xp, dy, x.dtype), mean, inv_std, weight)
    return (dx if ctx.needs_input_grad[0] else None,
            None if weight_dtype is None else _cast(xp, d_gamma, weight_dtype),
            None if bias_dtype is None else _cast(xp, d_beta, bias_dtype))


# ----------------------------------------------------------------------------------------------------------------
# evaluation mode: a per-channel affine map
# ----------------------------------------------------------------------------------------------------------------
class BatchNormEvalFunction(Function):
    """Batch normalization in evaluation mode, with the running statistics m̂, v̂ (slide 86):

        y = γ (x - m̂)/sqrt(v̂ + ε) + β = scale · x + shift,   scale = γ/sqrt(v̂ + ε),  shift = β - m̂ · scale

    m̂ and v̂ are constants here (not computed from x), so the backward is that of an affine map:

        dx = scale · dy          dγ = Σ dy x̂  with x̂ = (x - m̂)/sqrt(v̂ + ε)          dβ = Σ dy

    Saved for backward: scale (C values); x, m̂ and inv_std only when γ needs a gradient.
    """

    @staticmethod
    def forward(ctx, x, weight=None, bias=None, *, running_mean, running_var, eps=1e-5):
        xp = ctx.xp
        dtype = _compute_dtype(ctx, x)
        mean = _per_channel(xp, _cast(xp, running_mean, dtype), x)
        inv_std = 1 / xp.sqrt(_per_channel(xp, _cast(xp, running_var, dtype), x) + eps)
        scale = inv_std if weight is None else _per_channel(xp, _cast(xp, weight, dtype), x) * inv_std
        y = _cast(xp, x, dtype) - mean
        y *= scale  # y = (x - m̂) · scale, then + β
        if bias is not None:
            y += _per_channel(xp, _cast(xp, bias, dtype), x)
        needs_x_hat = weight is not None and ctx.needs_input_grad[1]
        # copies: running_mean is the caller's buffer, which a later training step updates in place
        ctx.save_for_backward(scale, *((x, xp.asarray(mean, copy=True), inv_std) if needs_x_hat else ()))
        ctx.dtypes = _dtypes(x, weight, bias)
        return _cast(xp, y, x.dtype)

    @staticmethod
    def backward(ctx, dy):
        xp = ctx.xp
        scale, *x_and_stats = ctx.saved_tensors
        x_dtype, weight_dtype, bias_dtype = ctx.dtypes
        dy = _cast(xp, dy, scale.dtype)
        dx = _cast(xp, dy * scale, x_dtype) if ctx.needs_input_grad[0] else None
        d_gamma = d_beta = None
        if x_and_stats:
            x, mean, inv_std = x_and_stats
            x_hat = (_cast(xp, x, scale.dtype) - mean) * inv_std
            d_gamma = _cast(xp, _channel_sum(ctx, dy * x_hat), weight_dtype)
        if bias_dtype is not None and ctx.needs_input_grad[2]:
            d_beta = _cast(xp, _channel_sum(ctx, dy), bias_dtype)
        return dx, d_gamma, d_beta


# ----------------------------------------------------------------------------------------------------------------
# training mode, staged: the slides' derivation node by node (for study; BatchNormFunction is the one to use)
# ----------------------------------------------------------------------------------------------------------------
class BatchNormStagedFunction(Function):
    """Batch normalization in training mode, its backward in the stages of the course's slides 91-95.

    Forward, per channel, over the B values x_b of the batch (and spatial positions):
        m = (1/B) Σ x_b      v = (1/B) Σ (x_b - m)²      z_b = (x_b - m)/sqrt(v + ε)      y_b = γ z_b + β
    Backward, each node's gradient from the ones after it:
        ∂L/∂γ = Σ ∂L/∂y_b z_b          ∂L/∂β = Σ ∂L/∂y_b                                    (slide 91)
        ∂L/∂z_b = γ ∂L/∂y_b                                                                  (slide 93)
        ∂L/∂v = -½ (v + ε)^(-3/2) Σ ∂L/∂z_b (x_b - m)                                        (slide 94)
        ∂L/∂m = -(v + ε)^(-1/2) Σ ∂L/∂z_b        (the path m → v adds ∂L/∂v · (-2/B) Σ (x_b - m) = 0)
        ∂L/∂x_b = ∂L/∂z_b (v + ε)^(-1/2) + (2/B) ∂L/∂v (x_b - m) + (1/B) ∂L/∂m               (slide 95)
    Substituting the stages into the last line gives BatchNormFunction's closed form.
    Saved for backward: the centered x - m, v, gamma (float32 for a float16 x).
    """

    @staticmethod
    def forward(ctx, x, weight=None, bias=None, eps=1e-5):
        xp = ctx.xp
        axes, dtype = _axes(x), _compute_dtype(ctx, x)
        xc = _cast(xp, x, dtype)
        m = xp.mean(xc, axis=axes, keepdims=True)
        x_minus_m = xc - m
        v = xp.mean(x_minus_m * x_minus_m, axis=axes, keepdims=True)
        z = x_minus_m / xp.sqrt(v + eps)
        gamma = None if weight is None else _per_channel(xp, _cast(xp, weight, dtype), x)
        y = z if gamma is None else gamma * z
        if bias is not None:
            y = y + _per_channel(xp, _cast(xp, bias, dtype), x)
        ctx.save_for_backward(x_minus_m, v, gamma)
        ctx.eps, ctx.B = eps, _count(x)
        ctx.dtypes = _dtypes(x, weight, bias)
        return _cast(xp, y, x.dtype)

    @staticmethod
    def backward(ctx, dL_dy):
        xp = ctx.xp
        x_minus_m, v, gamma = ctx.saved_tensors
        eps, B, axes, C = ctx.eps, ctx.B, _axes(x_minus_m), x_minus_m.shape[1]
        x_dtype, weight_dtype, bias_dtype = ctx.dtypes
        dL_dy = _cast(xp, dL_dy, x_minus_m.dtype)
        z = x_minus_m / xp.sqrt(v + eps)
        dL_dgamma = xp.sum(dL_dy * z, axis=axes)
        dL_dbeta = xp.sum(dL_dy, axis=axes)
        dL_dz = dL_dy if gamma is None else gamma * dL_dy
        dL_dv = -0.5 * (v + eps) ** -1.5 * xp.sum(dL_dz * x_minus_m, axis=axes, keepdims=True)
        dL_dm = -((v + eps) ** -0.5) * xp.sum(dL_dz, axis=axes, keepdims=True)
        dL_dx = dL_dz * (v + eps) ** -0.5 + (2 / B) * dL_dv * x_minus_m + (1 / B) * dL_dm
        return (
            _cast(xp, dL_dx, x_dtype),
            None if weight_dtype is None else _cast(xp, xp.reshape(dL_dgamma, (C,)), weight_dtype),
            None if bias_dtype is None else _cast(xp, xp.reshape(dL_dbeta, (C,)), bias_dtype),
        )


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
    x̂ + bias`` per channel when those are given. float16 inputs: statistics in float32, output float16.
    """
    _check_inputs("batch_norm", input, weight, bias, eps, running_mean, running_var)
    if training:
        if isinstance(momentum, bool) or not isinstance(momentum, Real):
            raise TypeError(f"batch_norm: momentum must be a number, got {momentum!r}")
        _check_more_than_one_value("batch_norm", input)
        return BatchNormFunction.apply(input, weight, bias, running_mean=_data(running_mean),
                                       running_var=_data(running_var), momentum=float(momentum), eps=float(eps))
    if running_mean is None or running_var is None:
        raise InputError("batch_norm: running_mean and running_var are required when training=False (evaluation "
                         "normalizes with them); pass training=True to use the batch's statistics")
    return BatchNormEvalFunction.apply(input, weight, bias, running_mean=running_mean.data,
                                       running_var=running_var.data, eps=float(eps))


def batch_norm_staged(input: Tensor, weight: Tensor | None = None, bias: Tensor | None = None,  # noqa: A002
                      eps: float = 1e-5) -> Tensor:
    """Training-mode batch normalization whose backward follows the slides stage by stage (for study): the same
    values and gradients as ``batch_norm(input, None, None, weight, bias, training=True, eps=eps)``."""
    _check_inputs("batch_norm_staged", input, weight, bias, eps)
    _check_more_than_one_value("batch_norm_staged", input)
    return BatchNormStagedFunction.apply(input, weight, bias, eps=float(eps))


def batch_norm_composed(input: Tensor, weight: Tensor | None = None, bias: Tensor | None = None,  # noqa: A002
                        eps: float = 1e-5) -> Tensor:
    """Training-mode batch normalization built from primitive tensor ops (mean, -, *, +, sqrt, /): its backward is
    the tape's, op by op. The reference the hand-derived backwards are tested and benchmarked against."""
    _check_inputs("batch_norm_composed", input, weight, bias, eps)
    _check_more_than_one_value("batch_norm_composed", input)
    axes, shape = _axes(input), (1, input.shape[1]) + (1,) * (input.ndim - 2)
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
# validation at the door
# ----------------------------------------------------------------------------------------------------------------
def _check_inputs(op, x, weight, bias, eps, running_mean=None, running_var=None) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: input must be a Tensor, got {type(x).__name__}")
    shape = x.shape
    if x.dtype.kind != "f":
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
        if t.dtype.kind != "f":
            raise TypeError(f"{op}: {name} must be floating point, got dtype {t.dtype}")
        if t.backend is not x.backend:
            raise RuntimeError(f"{op}: expected all tensors on one device, got input on {x.device} and {name} on "
                               f"{t.device}. Move them with .to(device).")
    if isinstance(eps, bool) or not isinstance(eps, Real) or not eps > 0:
        raise InputError(f"{op}: eps must be a positive number, got {eps!r}")


def _data(t: Tensor | None):
    """The array of a running statistic (updated in place by the op), or None."""
    return None if t is None else t.data


def _check_more_than_one_value(op, x) -> None:
    """PyTorch's rule: one value per channel has no variance to normalize with."""
    if _count(x) == 1:
        raise InputError(f"{op}: Expected more than 1 value per channel when training, got input size {x.shape}")
