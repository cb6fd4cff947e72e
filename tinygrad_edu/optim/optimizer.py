"""``Optimizer``: the base of the update rules; holds parameter groups and per-parameter state."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tinygrad_edu.tensor import Tensor


class Optimizer:
    """Base class, as ``torch.optim.Optimizer``: ``params`` is an iterable of tensors or of dicts (groups)."""

    def __init__(self, params: Iterable[Any], defaults: dict[str, Any]):
        params = list(params)
        if not params:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        self.defaults = defaults
        self.param_groups: list[dict[str, Any]] = []
        for group in groups:
            group = {**defaults, **group, "params": list(group["params"])}
            for p in group["params"]:
                if not isinstance(p, Tensor) or not p.requires_grad:
                    raise TypeError(f"{type(self).__name__}: can only optimize tensors that require grad, got {p!r:.60}")
            self.param_groups.append(group)
        self.state: dict[int, dict[str, Any]] = {}

    def zero_grad(self) -> None:
        """Forget the gradients (set ``.grad`` to None), before the next backward."""
        for group in self.param_groups:
            for p in group["params"]:
                p.grad = None

    def step(self) -> None:
        raise NotImplementedError
