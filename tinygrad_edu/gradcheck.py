"""Gradient checking: compare a backward pass with central finite differences.

For an op ``y = f(x)`` and a random upstream gradient ``u`` (never an implicit sum of the outputs: the sum of a
batch-normalized output does not depend on its input, so a summed check would pass a wrong batchnorm backward),
the scalar ``L(x) = <u, f(x)>`` has gradient ``dL/dx = J(x)ᵀ u``, which is exactly what ``backward(u)`` computes.
Its numerical estimate, element by element, is

    dL/dx_i ≈ (L(x + ε e_i) - L(x - ε e_i)) / (2 ε)         (error O(ε²), evaluated in float64)

The analytic pass runs in the inputs' own dtype and device; the numerical pass in float64 on the same device. The
random generator is reseeded before every evaluation, so stochastic ops (dropout) draw the same mask each time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from tinygrad_edu.backend import manual_seed
from tinygrad_edu.tensor import Tensor, no_grad


class GradcheckError(AssertionError):
    """The analytic gradient of an input differs from its finite-difference estimate."""


def gradcheck(
    fn: Callable[..., Tensor | Sequence[Tensor]],
    inputs: Tensor | Sequence[Any],
    *,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    seed: int = 0,
) -> bool:
    """Check ``fn``'s gradients with respect to every input tensor that requires grad.

    Returns True, or raises ``GradcheckError`` naming the input, its worst elements (index, analytic, numeric,
    absolute and relative error) and the tolerances. An element passes when
    ``|analytic - numeric| <= atol + rtol * |numeric|``.
    """
    inputs = (inputs,) if isinstance(inputs, Tensor) else tuple(inputs)
    checked = [i for i, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input tensor has requires_grad=True, so there is nothing to check")
    rng = np.random.default_rng(seed)

    # analytic: backward(u) through the op in its own dtype and on its own device
    leaves = [Tensor(x).requires_grad_(True) if i in checked else x for i, x in enumerate(inputs)]
    manual_seed(seed)
    outputs = _as_tuple(fn(*leaves))
    upstream = [rng.standard_normal(out.shape) for out in outputs]
    total = None
    for out, u in zip(outputs, upstream):
        if not out.requires_grad:
            continue
        term = (out * Tensor(u, dtype=out.dtype, device=out.device)).sum()
        total = term if total is None else total + term
    if total is not None:
        total.backward()

    # numeric: central differences of L(x) = Σ <u, f(x)> in float64
    wide = [Tensor(x, dtype=np.float64) if i in checked else x for i, x in enumerate(inputs)]

    def loss() -> float:
        manual_seed(seed)
        with no_grad():
            outs = _as_tuple(fn(*wide))
        return sum(float(np.sum(o.numpy().astype(np.float64) * u)) for o, u in zip(outs, upstream))

    for i in checked:
        analytic = leaves[i].grad.numpy().astype(np.float64) if leaves[i].grad is not None else np.zeros(inputs[i].shape)
        numeric = np.zeros(inputs[i].shape)
        data = wide[i].data
        for flat in range(numeric.size):
            index = tuple(int(k) for k in np.unravel_index(flat, numeric.shape))
            original = float(data[index])
            data[index] = original + eps
            plus = loss()
            data[index] = original - eps
            minus = loss()
            data[index] = original
            numeric[index] = (plus - minus) / (2 * eps)
        _compare(i, inputs[i], analytic, numeric, atol, rtol)
    return True


def _as_tuple(out: Any) -> tuple[Tensor, ...]:
    return tuple(out) if isinstance(out, (tuple, list)) else (out,)


def _compare(position: int, x: Tensor, analytic: np.ndarray, numeric: np.ndarray, atol: float, rtol: float) -> None:
    error = np.abs(analytic - numeric)
    bad = error > atol + rtol * np.abs(numeric)
    if not bad.any():
        return
    relative = error / np.maximum(np.abs(numeric), np.finfo(np.float64).tiny)
    worst = np.argsort(-(error - (atol + rtol * np.abs(numeric))), axis=None)[:5]
    rows = []
    for flat in worst:
        idx = np.unravel_index(flat, analytic.shape)
        if not bad[idx]:
            break
        rows.append(
            f"  index {tuple(int(k) for k in idx)}: analytic {analytic[idx]:.8g}, numeric {numeric[idx]:.8g}, "
            f"abs err {error[idx]:.3g}, rel err {relative[idx]:.3g}"
        )
    raise GradcheckError(
        f"gradcheck: gradient of input {position} (shape {x.shape}, dtype {x.dtype}, device {x.device}) is wrong "
        f"at {int(bad.sum())} of {bad.size} element(s); tolerances atol={atol:g}, rtol={rtol:g}. Worst:\n"
        + "\n".join(rows)
    )
