"""Stochastic gradient descent with momentum (heavy ball or Nesterov) and weight decay."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tinygrad_edu.optim.optimizer import Optimizer, scaled


class SGD(Optimizer):
    r"""PyTorch's SGD (``torch.optim.SGD``). For each parameter p with gradient g, at every step:

        d ← g + λ·p                                        (weight_decay λ: L2 penalty λ/2·|p|²)
        b ← d  (first step),   b ← μ·b + (1 − τ)·d  (later)   (momentum μ, dampening τ)
        d ← d + μ·b  (nesterov)   or   d ← b  (μ > 0)
        p ← p − η·d                                        (lr η)

    Momentum, and the course notes. The notes model training as a particle of mass m in the potential V = the
    loss, slowed by a friction γ·dx/dt: m·x'' + γ·x' = −∇V. With the (scaled, negated) momentum z they
    discretize it as

        z_{t+1} = β·z_t + ∇V(x_t)                     x_{t+1} = x_t − α·z_{t+1}

    which is PyTorch's rule with τ = 0 term by term: the buffer b is z, the gradient g is the force ∇V(x_t),
    the momentum μ is β and the learning rate η is α = Δt²/m. Dividing q_{t+1} = (1 − γΔt/m)·q_t + Δt·∇V by Δt
    gives β = 1 − γΔt/m (the notes print Δt − γ/m, a slip: a decay factor has no units): μ is the fraction of
    the velocity that survives one step of friction, μ = 1 no friction, μ = 0 so much friction that the particle
    stops at once and the rule is plain gradient descent. The position uses the *new* velocity z_{t+1}, so it is
    the semi-implicit (symplectic) Euler step. The notes start at rest, z_0 = 0, so z_1 = ∇V(x_0): exactly
    PyTorch's first step b ← g. Written on positions, p_{t+1} = p_t − η·g_t + μ·(p_t − p_{t−1}): Polyak's heavy
    ball method (1964). Other books keep v = −η·b (v ← μ·v − η·g, p ← p + v, Sutskever et al. 2013): the same
    trajectory while η is constant, different when a schedule changes η (PyTorch's form rescales at once).
    Dampening τ scales the force by (1 − τ) (with τ = μ, b is a moving average of the gradients); Nesterov
    (Sutskever et al. 2013, in PyTorch's form) steps along d + μ·b, the gradient plus the velocity after it.

    In place: the momentum buffer b is allocated once (the first step, a copy of d) and then updated with ``*=``
    and ``+=``; p is updated with ``-=``. The array API has no ``out=``, so a product c·x needs an array to
    live in: each parameter's step allocates at most ONE temporary the size of p (``work``: λ·p, then reused
    for (1 − τ)·d and η·d, by copying into it and scaling in place; see ``optimizer.scaled``). Nesterov subtracts
    η·d and η·μ·b separately, so its rounding differs from PyTorch's p − η·(d + μ·b) in the last bit.
    """

    _state_keys = ("momentum_buffer",)

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False):
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov))

    def _check_group(self, group: dict[str, Any]) -> None:
        for key in ("lr", "momentum", "weight_decay"):
            value = group[key]
            self._check_number(group, key)
            if not value >= 0:
                raise ValueError(f"SGD: lr, momentum and weight_decay must be >= 0, got {key}={value}")
        self._check_number(group, "dampening")
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError(f"SGD: nesterov momentum needs momentum > 0 and dampening = 0, got momentum="
                             f"{group['momentum']}, dampening={group['dampening']}")

    def step(self) -> None:  # works on the arrays (.data), so nothing is recorded on the tape
        todo = self._check_grads()  # all of them first: a bad one must not leave the others half updated
        for group, params in zip(self.param_groups, todo):
            lr, momentum, dampening = group["lr"], group["momentum"], group["dampening"]
            weight_decay, nesterov = group["weight_decay"], group["nesterov"]
            for p, g, w in params:  # g is the user's gradient: read, never written; w is p's array
                work = None  # this step's one temporary for p, allocated by the first product
                d = g
                if weight_decay:  # d ← g + λ·p
                    d = work = scaled(weight_decay, w)
                    work += g
                if momentum:
                    state = self.state.setdefault(p, {})
                    buf = state.get("momentum_buffer")
                    if buf is None:  # first step: b ← d, a copy the state keeps (allocated once)
                        buf = state["momentum_buffer"] = p.backend.xp.asarray(d, copy=True)
                    else:  # b ← μ·b + (1 − τ)·d
                        buf *= momentum
                        if dampening:  # (d is not needed after this: nesterov forbids dampening)
                            work = scaled(1 - dampening, d, work)
                            buf += work
                        else:
                            buf += d
                    if nesterov:  # p ← p − η·d − η·μ·b
                        work = scaled(lr, d, work)
                        w -= work
                        work = scaled(lr * momentum, buf, work)
                        w -= work
                        continue
                    d = buf
                w -= lr * d if work is None else scaled(lr, d, work)  # p ← p − η·d
