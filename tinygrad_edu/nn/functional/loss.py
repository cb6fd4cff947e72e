"""Losses, each one op with its gradient in closed form (float16 and bfloat16 inputs are computed in float32, rounded
once)."""

from __future__ import annotations

import numpy as np

from tinygrad_edu.autograd import Function, InputError
from tinygrad_edu.dtypes import is_low_precision
from tinygrad_edu.tensor import Tensor

REDUCTIONS = ("mean", "sum", "none")


def _upstream(xp, g, reduction, n):
    """dL/d(per-sample loss) from dL/d(reduced loss)."""
    return g / n if reduction == "mean" else g


def _cast(xp, x, dtype):
    """``x`` in ``dtype`` (float16 and bfloat16 losses are computed in float32 and rounded once at the end)."""
    return x if x.dtype == dtype else xp.astype(x, dtype)


def _check_reduction(op, reduction):
    if reduction not in REDUCTIONS:
        raise ValueError(f"{op}: reduction must be one of {REDUCTIONS}, got {reduction!r}")


class CrossEntropy(Function):
    """ℓᵢ = -log softmax(zᵢ)[tᵢ] = logsumexp(zᵢ) - zᵢ[tᵢ] for logits z (N, C) and class indices t (N,).

    dℓᵢ/dzᵢ = softmax(zᵢ) - onehot(tᵢ). The softmax subtracts each row's max first, so it never overflows.
    """

    @staticmethod
    def forward(ctx, logits, target, reduction="mean"):
        xp = ctx.xp
        n, classes = logits.shape
        z = xp.astype(logits, xp.float32) if is_low_precision(logits.dtype) else logits
        onehot = xp.astype(xp.arange(classes, device=logits.device)[None, :] == target[:, None], z.dtype)
        shifted = z - xp.max(z, axis=1, keepdims=True)
        exp = xp.exp(shifted)
        sum_exp = xp.sum(exp, axis=1, keepdims=True)
        log_sum_exp = xp.log(sum_exp)  # (N, 1)
        if reduction == "none":
            loss = log_sum_exp[:, 0] - xp.sum(shifted * onehot, axis=1)
        else:  # Σᵢ ℓᵢ = Σᵢ logsumexp(zᵢ) - Σᵢ zᵢ[tᵢ]: two whole-array sums, cheaper than a sum per row
            loss = xp.sum(log_sum_exp) - xp.sum(shifted * onehot)
            loss = loss / n if reduction == "mean" else loss
        ctx.save_for_backward(exp / sum_exp, onehot)
        ctx.reduction, ctx.n, ctx.dtype = reduction, n, logits.dtype
        return _cast(xp, loss, logits.dtype)

    @staticmethod
    def backward(ctx, g):
        xp = ctx.xp
        softmax, onehot = ctx.saved_tensors
        g = _cast(xp, _upstream(xp, g, ctx.reduction, ctx.n), softmax.dtype)
        g = g[:, None] if ctx.reduction == "none" else g
        return _cast(xp, (softmax - onehot) * g, ctx.dtype), None


class MSELoss(Function):
    """ℓ = d² elementwise, d = a - b (then the mean over its n elements, the sum, or none: ``reduction``);
    dℓ/da = 2 d,  dℓ/db = -2 d. a and b come in one dtype: ``mse_loss`` hands float16 and bfloat16 over in float32."""

    @staticmethod
    def forward(ctx, a, b, reduction="mean"):
        xp = ctx.xp
        d = a - b
        ctx.save_for_backward(d)
        ctx.reduction, ctx.n = reduction, d.size
        squared = d * d
        if reduction != "none":
            squared = xp.sum(squared) / ctx.n if reduction == "mean" else xp.sum(squared)
        return squared

    @staticmethod
    def backward(ctx, g):
        (d,) = ctx.saved_tensors
        grad_a = 2 * d * _upstream(ctx.xp, g, ctx.reduction, ctx.n)
        return (grad_a if ctx.needs_input_grad[0] else None, -grad_a if ctx.needs_input_grad[1] else None)


def cross_entropy(logits: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    """Softmax cross-entropy of ``logits`` (N, C) against integer class indices ``target`` (N,)."""
    _check_reduction("cross_entropy", reduction)
    if not isinstance(target, Tensor):
        target = Tensor(target, device=logits.device)
    if target.dtype.kind not in "iu":
        raise TypeError(f"cross_entropy: target must hold integer class indices, got dtype {target.dtype}")
    if logits.ndim != 2 or target.ndim != 1 or target.shape[0] != logits.shape[0]:
        raise InputError(f"cross_entropy: expected logits (N, C) and target (N,), got {tuple(logits.shape)} and "
                         f"{target.shape}")
    classes, xp, t = logits.shape[1], target.backend.xp, target.data
    # the class indices must lie in [0, C): one boolean from the device (PyTorch's CUDA kernel asserts on the device)
    if target.numel() and not bool(target.backend.to_host(xp.all((t >= 0) & (t < classes)))):
        raise InputError(f"cross_entropy: target values must be in [0, {classes}), got values outside")
    return CrossEntropy.apply(logits, target, reduction=reduction)


def mse_loss(input: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:  # noqa: A002
    """Mean squared error (``reduction="mean"``), or its sum, or the elementwise squares (``"none"``)."""
    _check_reduction("mse_loss", reduction)
    if not isinstance(target, Tensor):
        target = Tensor(target, dtype=input.dtype, device=input.device)
    if tuple(input.shape) != target.shape:
        raise InputError(f"mse_loss: input shape {tuple(input.shape)} and target shape {target.shape} differ")
    dtype = input.dtype  # of the result
    if is_low_precision(input.dtype) or is_low_precision(target.dtype):  # a - b and the sums in float32 (or wider)
        compute = np.promote_types(np.result_type(input.dtype, target.dtype), np.float32)
        input, target = input.astype(compute), target.astype(compute)
    return MSELoss.apply(input, target, reduction=reduction).astype(dtype)
