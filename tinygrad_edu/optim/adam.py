"""Adam (Kingma & Ba 2015) with L2 weight decay and AMSGrad, and AdamW (decoupled weight decay)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tinygrad_edu.optim.optimizer import Optimizer, scaled


class Adam(Optimizer):
    r"""PyTorch's Adam (``torch.optim.Adam``). For each parameter p with gradient g, at step t = 1, 2, ...:

        d ← g + λ·p                               (weight_decay λ: an L2 penalty, added to the gradient)
        m ← m + (1 − β1)·(d − m)                  (= β1·m + (1 − β1)·d, a moving average of the gradients)
        v ← β2·v + (1 − β2)·d²                    (a moving average of their squares)
        v̂ ← max(v̂, v)  (amsgrad),  else v̂ = v   (Reddi et al. 2018: the denominator never shrinks)
        p ← p − η/(1 − β1^t) · m / (√v̂ / √(1 − β2^t) + ε)

    m and v start at 0, so early on they are biased towards 0 by the factors 1 − β1^t and 1 − β2^t (the weight
    a moving average started at 0 has put on the data so far); dividing by them is the bias correction. The
    division by √v̂ gives every coordinate its own step, about η·sign(m) where the gradient is consistent. This
    is the order of operations of PyTorch's single-tensor implementation (``lerp_``, ``addcmul_``,
    ``sqrt() / √(1 − β2^t) + ε``, ``addcdiv_``), so both agree to rounding (PyTorch's vectorized kernels may
    fuse a multiply-add where this does two operations).

    In place: the state (``exp_avg`` m, ``exp_avg_sq`` v, ``max_exp_avg_sq`` v̂) is allocated once at the
    first step, then updated with ``*=``, ``+=`` and item assignment; p is updated with ``-=``. The array API
    has no ``out=``, so each parameter's step allocates temporaries the size of p: the array ``work`` (reused
    for (1 − β2)·d·d, then d − m, then the quotient m / denominator) and the denominator (from ``sqrt``); with
    weight_decay also d = g + λ·p, and with amsgrad the result of ``maximum`` (copied into v̂). The last two are
    freed before the denominator is allocated, so at most two temporaries are alive at once.
    """

    _state_keys = ("step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq")
    _required_state_keys = ("step", "exp_avg", "exp_avg_sq")
    _decoupled = False  # AdamW: the weight decay shrinks p directly instead of entering the gradient

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, amsgrad: bool = False):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad))

    def _check_group(self, group: dict[str, Any]) -> None:
        super()._check_group(group)
        betas = group["betas"]
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"{type(self).__name__}: betas must be a pair (beta1, beta2), got {betas!r}")
        for i, beta in enumerate(betas):
            self._check_number(group, "betas", low=0.0, high=1.0, label=f"betas[{i}]", value=beta)
        self._check_number(group, "eps", low=0.0)
        self._check_number(group, "weight_decay", low=0.0)

    def step(self) -> None:  # works on the arrays (.data), so nothing is recorded on the tape
        todo = self._check_grads()  # all of them first: a bad one must not leave the others half updated
        for group, params in zip(self.param_groups, todo):
            lr, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
            weight_decay, amsgrad = group["weight_decay"], group["amsgrad"]
            for p, g, w in params:  # g is the user's gradient: read, never written; w is p's array
                xp = p.backend.xp
                state = self.state.get(p)
                if not state:  # first step: the state, allocated once
                    state = self.state[p] = {"step": 0, "exp_avg": xp.zeros_like(w), "exp_avg_sq": xp.zeros_like(w)}
                if amsgrad and "max_exp_avg_sq" not in state:
                    state["max_exp_avg_sq"] = xp.zeros_like(w)
                m, v = state["exp_avg"], state["exp_avg_sq"]
                state["step"] = t = state["step"] + 1

                d = g
                if weight_decay and self._decoupled:  # AdamW: p ← p·(1 − η·λ)
                    w *= 1 - lr * weight_decay
                elif weight_decay:  # d ← g + λ·p
                    d = scaled(weight_decay, w)
                    d += g
                work = scaled(1 - beta2, d)  # v ← β2·v + (1 − β2)·d·d
                work *= d
                v *= beta2
                v += work
                work[...] = d  # m ← m + (1 − β1)·(d − m)
                work -= m
                work *= 1 - beta1
                m += work
                del d  # done with d: the L2 one (g + λ·p) is freed here, before the denominator is allocated

                if amsgrad:  # v̂ ← max(v̂, v)
                    v_hat = state["max_exp_avg_sq"]
                    v_hat[...] = xp.maximum(v_hat, v)
                else:
                    v_hat = v
                denominator = xp.sqrt(v_hat)  # √v̂ / √(1 − β2^t) + ε
                denominator /= (1 - beta2**t) ** 0.5
                denominator += eps
                work[...] = m  # p ← p − η/(1 − β1^t) · m / denominator
                work /= denominator
                work *= lr / (1 - beta1**t)
                w -= work


class AdamW(Adam):
    r"""PyTorch's AdamW (Loshchilov & Hutter 2019): Adam with decoupled weight decay.

    The decay shrinks the parameter itself, p ← p·(1 − η·λ), before the Adam step on the plain gradient g
    (d = g). In Adam the L2 term λ·p enters the gradient and is then divided by √v̂ like the rest of it, so
    parameters with large gradients are barely decayed; here every parameter decays at the same rate η·λ.
    The default weight_decay is PyTorch's 1e-2. The shrinking is in place (no temporary).
    """

    _decoupled = True

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2, amsgrad: bool = False):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad)
