"""Gradient utilities, as ``torch.nn.utils``: ``clip_grad_norm_``.

Clipping rescales the gradients of a whole model when their joint norm is too large (Pascanu et al. 2013, "On the
difficulty of training recurrent neural networks"): the direction is kept, the length is capped at ``max_norm``.
With loss scaling (``tinygrad_edu.amp.GradScaler``) the gradients must be unscaled first
(``scaler.unscale_(optimizer)``), or the norm compared with ``max_norm`` is the scale times too large.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from tinygrad_edu.dtypes import is_low_precision
from tinygrad_edu.tensor import Tensor


def clip_grad_norm_(parameters: Tensor | Iterable[Tensor], max_norm: float, norm_type: float = 2.0,
                    error_if_nonfinite: bool = False, foreach: bool | None = None) -> Tensor:
    r"""Scale the ``.grad`` of ``parameters`` in place so that their joint norm is at most ``max_norm``.

    As ``torch.nn.utils.clip_grad_norm_``: with gᵢ the gradients (those that are None are skipped),

        total = ‖(‖g₁‖_p, ‖g₂‖_p, ...)‖_p        (the p-norm of all gradients as one vector; p = inf: max |g|)
        c = min(max_norm / (total + 1e-6), 1)      gᵢ ← c · gᵢ

    and returns ``total`` (the norm *before* clipping) as a 0-d Tensor. The multiplication always happens (c = 1
    when the norm is already small), as in PyTorch. Norms are accumulated in float32 for float16 gradients (a sum
    of squares of float16 values overflows at 65504), in the gradients' dtype otherwise. ``error_if_nonfinite``:
    raise RuntimeError when the total is inf or NaN instead of scaling by it. ``foreach`` is accepted for
    PyTorch's signature and ignored. All gradients must be on one device.
    """
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    grads = [p.grad for p in parameters if p.grad is not None]
    if isinstance(max_norm, bool) or not isinstance(max_norm, (int, float)):
        raise TypeError(f"clip_grad_norm_: max_norm must be a number, got {max_norm!r}")
    norm_type = float(norm_type)
    if not grads:
        return Tensor(0.0)
    backend = grads[0].backend
    if any(g.backend is not backend for g in grads):
        raise RuntimeError("clip_grad_norm_: expected every gradient on one device, got "
                           f"{sorted({g.device for g in grads})}")
    xp = backend.xp
    norms = []
    for g in grads:
        a = g.data
        if is_low_precision(a.dtype):
            a = xp.astype(a, xp.float32)
        if norm_type == math.inf:
            norms.append(xp.max(xp.abs(a)) if a.size else xp.zeros((), dtype=a.dtype, device=a.device))
        elif norm_type == 2.0:
            norms.append(xp.sqrt(xp.sum(a * a)))
        else:
            norms.append(xp.sum(xp.abs(a) ** norm_type) ** (1.0 / norm_type))
    dtype = xp.result_type(*norms)
    norms = xp.stack([xp.astype(xp.asarray(n), dtype) for n in norms])
    if norm_type == math.inf:
        total = xp.max(norms)
    elif norm_type == 2.0:
        total = xp.sqrt(xp.sum(norms * norms))
    else:
        total = xp.sum(norms**norm_type) ** (1.0 / norm_type)
    total = xp.asarray(total)
    if error_if_nonfinite and not bool(backend.to_host(xp.isfinite(total))):
        raise RuntimeError(
            f"The total norm of order {norm_type} for gradients from `parameters` is non-finite, so it cannot be "
            "clipped. To disable this error and scale the gradients by the non-finite norm anyway, set "
            "`error_if_nonfinite=False`"
        )
    coef = float(max_norm) / (total + 1e-6)
    coef = xp.where(coef < 1.0, coef, xp.ones_like(coef))  # min(c, 1); a NaN total gives c = NaN, as in PyTorch
    for g in grads:  # out of place: a gradient array may be shared (the Tensor in .grad keeps its identity)
        g.data = g.data * xp.astype(coef, g.data.dtype)
    return Tensor._wrap(total, backend)
