"""Stochastic gradient descent with momentum (heavy ball or Nesterov) and weight decay."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tinygrad_edu.optim.optimizer import Optimizer


class SGD(Optimizer):
    """PyTorch's SGD. For each parameter p with gradient g:

        g ← g + weight_decay · p
        b ← g (first step),  b ← momentum · b + (1 - dampening) · g (later steps)
        g ← g + momentum · b (nesterov)  or  g ← b (momentum > 0)
        p ← p - lr · g
    """

    def __init__(self, params: Iterable[Any], lr: float, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False):
        if lr < 0 or momentum < 0 or weight_decay < 0:
            raise ValueError(f"SGD: lr, momentum and weight_decay must be >= 0, got {lr}, {momentum}, {weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("SGD: nesterov momentum needs momentum > 0 and dampening = 0")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov))

    def step(self) -> None:  # works on the arrays (.data), so nothing is recorded on the tape
        for group in self.param_groups:
            lr, momentum, wd = group["lr"], group["momentum"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad.data
                if wd:
                    g = g + wd * p.data
                if momentum:
                    state = self.state.setdefault(id(p), {})
                    buf = state.get("momentum_buffer")
                    if buf is None:
                        buf = state["momentum_buffer"] = p.backend.xp.asarray(g, copy=True)
                    else:
                        buf *= momentum
                        buf += (1 - group["dampening"]) * g
                    g = g + momentum * buf if group["nesterov"] else buf
                p.data -= lr * g
