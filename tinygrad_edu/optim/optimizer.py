"""``Optimizer``: the base of the update rules; holds parameter groups and per-parameter state.

As in ``torch.optim``: ``param_groups`` is a list of dicts, each with its ``"params"`` and its own hyper-parameters
(so two groups can have two learning rates); ``state`` maps each parameter (the Tensor itself) to a dict of its
buffers (momentum, moving averages: arrays of the parameter's backend, allocated once at its first step and then
updated in place) and counters (``"step"``: a Python int).

``state_dict()`` / ``load_state_dict()`` save and restore both, in PyTorch's layout::

    {"state": {0: {"step": 3, "exp_avg": ndarray, ...}, 1: {...}},      # parameters numbered in group order
     "param_groups": [{"lr": 0.001, ..., "params": [0, 1]}, ...]}

with the buffers as host NumPy arrays, so a state saved on one device loads on another.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable
from typing import Any

import numpy as np

from tinygrad_edu.autograd import capture, versions
from tinygrad_edu.dtypes import is_floating
from tinygrad_edu.tensor import Tensor


def scaled(c: float, x: Any, work: Any = None) -> Any:
    """``c·x`` without a new array when there is a ``work`` array to write it into.

    The array API has no ``out=`` argument, so ``c * x`` always allocates. An update rule therefore allocates its
    first temporary with ``scaled(c, x)`` and passes it back as ``work`` for the next products: ``x`` is copied
    into it (``work[...] = x``, skipped when ``work`` is ``x``) and scaled in place (``work *= c``). Returns the
    array that holds ``c·x``: ``work`` itself, or the new array.
    """
    if work is None:
        work = c * x
        return work[...] if x.ndim == 0 else work  # NumPy answers 0-d arithmetic with a scalar: [...] makes an array
    if work is not x:
        work[...] = x
    work *= c
    return work


class Optimizer:
    """Base class, as ``torch.optim.Optimizer``: ``params`` is an iterable of tensors or of dicts (groups).

    Subclasses pass their ``defaults`` (hyper-parameter name -> value), implement ``step()``, and extend
    ``_check_group`` to validate their hyper-parameters. ``_state_keys`` names the entries a parameter's state may
    hold (checked by ``load_state_dict``), ``_required_state_keys`` those a non-empty state must hold.
    """

    _state_keys: tuple[str, ...] = ()
    _required_state_keys: tuple[str, ...] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # a subclass's step is a host call: tinygrad_edu.jit records one call of it and replays it as Python
        super().__init_subclass__(**kwargs)
        capture.host_methods(cls, "step")

    def __init__(self, params: Iterable[Any], defaults: dict[str, Any]):
        name = type(self).__name__
        if isinstance(params, (Tensor, dict)) or not isinstance(params, Iterable):
            raise TypeError(f"{name}: params must be an iterable of Tensors or of dicts (parameter groups), "
                            f"got {type(params).__name__}")
        params = list(params)
        if not params:
            raise ValueError(f"{name}: got an empty parameter list")
        self.defaults = dict(defaults)
        self.param_groups: list[dict[str, Any]] = []
        self.state: dict[Tensor, dict[str, Any]] = {}
        for group in params if isinstance(params[0], dict) else [{"params": params}]:
            self.add_param_group(group)

    # -- parameter groups -------------------------------------------------------------------------------------------
    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group of parameters with its own hyper-parameters (the missing ones come from the defaults).

        Everything is checked before the group is added: tensors that require grad, no parameter in two groups,
        valid hyper-parameters.
        """
        name = type(self).__name__
        if not isinstance(param_group, dict) or "params" not in param_group:
            raise TypeError(f"{name}: a parameter group must be a dict with a 'params' entry, got {param_group!r:.60}")
        params = param_group["params"]
        params = [params] if isinstance(params, Tensor) else list(params)
        if not params:
            raise ValueError(f"{name}: got a parameter group without parameters")
        for p in params:
            if not isinstance(p, Tensor) or not p.requires_grad:
                raise TypeError(f"{name}: can only optimize tensors that require grad, got {p!r:.60}")
        seen = {p for group in self.param_groups for p in group["params"]}
        if len(set(params)) != len(params) or seen.intersection(params):
            raise ValueError(f"{name}: some parameters appear more than once (in one group or in two groups)")
        group = {**self.defaults, **param_group, "params": params}
        self._check_group(group)
        self.param_groups.append(group)

    def _check_group(self, group: dict[str, Any]) -> None:
        """Raise ValueError (naming the optimizer and the argument) for a bad hyper-parameter of ``group``."""
        self._check_number(group, "lr", low=0.0)

    def _check_number(self, group: dict[str, Any], key: str, low: float | None = None, high: float | None = None,
                      label: str | None = None, value: Any = None) -> None:
        """``group[key]`` (or ``value``) must be a real number in ``[low, high)``; ``label`` names it in errors."""
        name, label = type(self).__name__, label or key
        value = group[key] if value is None else value
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"{name}: {label} must be a real number, got {value!r}")
        if low is not None and high is not None and not low <= value < high:
            raise ValueError(f"{name}: {label} must be in [{low:g}, {high:g}), got {value}")
        if low is not None and not value >= low:  # also rejects NaN
            raise ValueError(f"{name}: {label} must be >= {low:g}, got {value}")

    # -- gradients and the step -----------------------------------------------------------------------------------
    @capture.host_call
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget the gradients before the next backward: set ``.grad`` to None (default, as PyTorch), or fill the
        existing gradient arrays with zeros in place when ``set_to_none=False``."""
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none or p._grad is None:
                    p._grad = None  # (None is always allowed: no need for the checks of the .grad setter)
                else:
                    p.grad.data[...] = 0

    def step(self) -> None:
        raise NotImplementedError

    def _check_grads(self) -> list[list[tuple[Tensor, Any, Any]]]:
        """Before a step changes anything: every gradient present must fit its parameter (a Tensor of the same
        shape, dtype and device), else a TypeError/ValueError naming the optimizer, the parameter and both shapes
        (dtypes, devices), and nothing is updated. Returns, per group, (p, gradient array, p's array) for each
        parameter with a gradient, and records that these parameters change in place now (``versions.bump_all``:
        a pending backward that saved one of them must refuse to run)."""
        groups, changing = [], []
        for group in self.param_groups:
            todo = []
            for p in group["params"]:
                g = p._grad
                if g is not None:
                    if g.__class__ is not Tensor or g.backend is not p.backend:
                        self._refuse_grad(p, g)  # (the message is built only for a gradient that does not fit)
                    g_data, w = g._data, p._data
                    if g_data.shape != w.shape or g_data.dtype != w.dtype:
                        self._refuse_grad(p, g)
                    todo.append((p, g_data, w))
                    changing.append(p)
            groups.append(todo)
        versions.bump_all(changing)
        return groups

    def _refuse_grad(self, p: Tensor, g: Any) -> None:
        """Raise the error for gradient ``g`` of parameter ``p`` if it does not fit (see ``_check_grads``)."""
        k = next(k for k, q in enumerate(q for group in self.param_groups for q in group["params"]) if q is p)
        where = f"{type(self).__name__}.step: the gradient of parameter {k} (shape {p.shape}, {p.dtype}, on {p.device})"
        if not isinstance(g, Tensor):
            raise TypeError(f"{where} is a {type(g).__name__}, not a Tensor; nothing was updated")
        if g.backend is not p.backend:
            raise ValueError(f"{where} is on {g.device}; nothing was updated")
        if g.shape != p.shape or g.dtype != p.dtype:
            raise ValueError(f"{where} has shape {g.shape} and dtype {g.dtype}; nothing was updated")

    # -- saving and restoring -----------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Host copies of the per-parameter state and the groups' hyper-parameters (parameters as indices)."""
        index: dict[Tensor, int] = {}
        groups = []
        for group in self.param_groups:
            packed = {k: v for k, v in group.items() if k != "params"}
            packed["params"] = [index.setdefault(p, len(index)) for p in group["params"]]
            groups.append(packed)
        state = {  # Tensor(v) copies the array of whichever backend holds it (the model may have moved since)
            index[p]: {k: v if isinstance(v, numbers.Number) else Tensor(v).numpy() for k, v in entry.items()}
            for p, entry in self.state.items() if p in index
        }
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore what ``state_dict()`` saved: hyper-parameters and per-parameter state, cast to each parameter's
        dtype and placed on its device. Everything (groups, parameter counts, names, shapes, values) is checked
        before anything changes, so a bad state leaves the optimizer as it was."""
        name = f"{type(self).__name__}.load_state_dict"
        if not isinstance(state_dict, dict) or set(state_dict) != {"state", "param_groups"}:
            raise ValueError(f"{name}: expected a dict with keys 'state' and 'param_groups', got {state_dict!r:.80}")
        saved_groups = state_dict["param_groups"]
        if not isinstance(saved_groups, (list, tuple)) or not all(
                isinstance(g, dict) and isinstance(g.get("params"), (list, tuple)) for g in saved_groups):
            raise ValueError(f"{name}: param_groups must be a list of dicts, each with a 'params' list of indices, "
                             f"got {saved_groups!r:.80}")
        if not isinstance(state_dict["state"], dict) or not all(
                isinstance(entry, dict) for entry in state_dict["state"].values()):
            raise ValueError(f"{name}: state must be a dict of parameter index -> dict of entries, "
                             f"got {state_dict['state']!r:.80}")
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"{name}: {len(saved_groups)} parameter groups in the state, "
                             f"{len(self.param_groups)} in the optimizer")
        all_saved = [key for saved in saved_groups for key in saved["params"]]
        if len(set(all_saved)) != len(all_saved):
            raise ValueError(f"{name}: some parameter indices appear twice in param_groups: {all_saved}")
        param_of: dict[Any, Tensor] = {}
        new_groups = []
        for i, (saved, group) in enumerate(zip(saved_groups, self.param_groups)):
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(f"{name}: group {i} has {len(saved['params'])} parameters in the state, "
                                 f"{len(group['params'])} in the optimizer")
            param_of.update(zip(saved["params"], group["params"]))
            hyper = {k: v for k, v in saved.items() if k != "params"}
            missing = sorted(set(self.defaults) - set(hyper))
            if missing:
                raise ValueError(f"{name}: group {i} lacks the hyper-parameters {missing}")
            self._check_group({**hyper, "params": group["params"]})
            new_groups.append(hyper)
        new_state: dict[Tensor, dict[str, Any]] = {}
        for key, entry in state_dict["state"].items():
            if key not in param_of:
                raise ValueError(f"{name}: state for parameter {key!r}, which no group lists")
            p = param_of[key]
            unknown = sorted(set(entry) - set(self._state_keys))
            missing = sorted(set(self._required_state_keys) - set(entry)) if entry else []
            if unknown or missing:
                raise ValueError(f"{name}: parameter {key}: unknown state entries {unknown}, missing {missing} "
                                 f"(expected {list(self._state_keys)})")
            restored: dict[str, Any] = {}
            for k, value in entry.items():
                if k == "step":
                    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
                        raise ValueError(f"{name}: parameter {key}: step must be an int >= 0, got {value!r}")
                    restored[k] = int(value)
                    continue
                if value is None or isinstance(value, (str, bytes, dict)):
                    raise ValueError(f"{name}: parameter {key}: {k} must be an array, got {type(value).__name__}")
                host = np.asarray(value.numpy() if isinstance(value, Tensor) else
                                  value if isinstance(value, (np.ndarray, numbers.Number)) else Tensor(value).numpy())
                if host.shape != p.shape:
                    raise ValueError(f"{name}: parameter {key}: {k} has shape {host.shape} in the state, "
                                     f"{p.shape} in the optimizer")
                if not is_floating(host.dtype):
                    raise TypeError(f"{name}: parameter {key}: {k} has dtype {host.dtype} in the state, expected a "
                                    f"floating dtype (the parameter's is {p.dtype})")
                restored[k] = p.backend.asarray(host, dtype=p.dtype)  # a new array: the saved one is not shared
            new_state[p] = restored
        # everything checked and converted: now change the optimizer
        for group, hyper in zip(self.param_groups, new_groups):
            group.update(hyper)
        self.state = new_state

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {v}" for k, v in group.items() if k != "params"]
        return "\n".join(lines + [")"])
