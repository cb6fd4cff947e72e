"""Hooks on tensors, with the names and semantics of PyTorch's ``Tensor.register_hook`` and ``retain_grad``.

``t.register_hook(fn)``: during ``backward``, ``fn(grad)`` is called with dL/dt (a Tensor) once every path's
contribution to it has been added up, before it flows on; a hook that returns a Tensor replaces the gradient (the ones
after it see the replacement). On a leaf the hooks run on the gradient of this backward pass before it is added to
``.grad``. ``t.retain_grad()``: a non-leaf keeps its gradient in ``.grad`` (added up over backward passes, as a
leaf's). Both return quickly when unused: the engine asks ``active`` (a dict, empty until a hook is registered).

The tables are weak: a hook does not keep its tensor (nor, through it, the graph) alive.
"""

from __future__ import annotations

import itertools
import weakref
from collections.abc import Callable
from typing import Any

from tinygrad_edu.autograd import capture

#: id(tensor) -> {handle id: hook}; empty while no tensor has a hook or retains its gradient. Keyed by identity
#: (a Tensor's == is elementwise), and weak: a weakref callback drops a collected tensor's entry
active: dict[int, dict] = {}
#: id(tensor) of the non-leaves that retain their gradient (each also has an entry in ``active``)
retained: set[int] = set()
_watch: dict[int, weakref.ref] = {}
_ids = itertools.count()
#: bumped by every registration (tensor or module hook): a program captured by ``tinygrad_edu.jit`` before it is stale
generation = 0


def registered() -> None:
    """Note a new hook (see ``generation``)."""
    global generation
    generation += 1


class RemovableHandle:
    """What ``register_*hook`` returns: ``handle.remove()`` (or leaving a ``with handle:`` block) unregisters the hook;
    removing twice is harmless."""

    def __init__(self, hooks: dict):
        self._hooks = hooks  # the dict the hook was put in (a tensor's, or a module's)
        self.id = next(_ids)

    def remove(self) -> None:
        self._hooks.pop(self.id, None)

    def __enter__(self) -> RemovableHandle:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.remove()


def register(tensor: Any, hook: Callable) -> RemovableHandle:
    """``tensor.register_hook(hook)``."""
    if not callable(hook):
        raise TypeError(f"register_hook: expected a callable, got {type(hook).__name__}")
    if not tensor.requires_grad:
        raise RuntimeError("cannot register a hook on a tensor that doesn't require gradient")
    registered()
    capture.unreplayable("a hook was registered during the step")
    hooks = _entry(tensor)
    handle = RemovableHandle(hooks)
    hooks[handle.id] = hook
    return handle


def retain(tensor: Any) -> None:
    """``tensor.retain_grad()``."""
    if not tensor.requires_grad:
        raise RuntimeError("can't retain_grad on Tensor that has requires_grad=False")
    if tensor._ctx is None:  # a leaf keeps its gradient anyway
        return
    registered()
    capture.unreplayable("retain_grad() was called during the step")
    _entry(tensor)
    retained.add(id(tensor))


def _entry(tensor: Any) -> dict:
    """The tensor's hook table, created with a weak reference that removes it when the tensor is collected."""
    key = id(tensor)
    if key not in _watch:
        _watch[key] = weakref.ref(tensor, lambda _, key=key: _forget(key))
        active[key] = {}
    return active[key]


def _forget(key: int) -> None:
    active.pop(key, None)
    retained.discard(key)
    _watch.pop(key, None)


def retains(tensor: Any) -> bool:
    return id(tensor) in retained


def run(tensor: Any, grad: Any) -> Any:
    """The tensor's hooks on ``grad`` (an array) in registration order; returns the gradient that flows on."""
    hooks = active.get(id(tensor))
    if not hooks:
        return grad
    capture.unreplayable("a tensor hook ran (Python callbacks are not replayed)")
    Tensor = type(tensor)
    for hook in list(hooks.values()):
        result = hook(Tensor._wrap(grad, tensor.backend))
        if result is not None:
            if not isinstance(result, Tensor) or tuple(result._data.shape) != tuple(grad.shape):
                raise RuntimeError(f"hook {getattr(hook, '__qualname__', hook)!r} returned "
                                   f"{type(result).__name__ if not isinstance(result, Tensor) else result.shape}, "
                                   f"expected None or a Tensor of shape {tuple(grad.shape)}")
            grad = result._data if result._data.dtype == grad.dtype else tensor.backend.xp.astype(result._data,
                                                                                                    grad.dtype)
    return grad


def on_leaf(leaf: Any, grad: Any) -> Any:
    """A leaf's new ``.grad`` array: its hooks on this backward pass's gradient, added to the ``.grad`` it has."""
    grad = run(leaf, grad)
    return grad if leaf._grad is None else leaf._grad._data + grad
