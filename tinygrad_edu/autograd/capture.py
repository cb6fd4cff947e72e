"""Recording a call for replay (``tinygrad_edu.jit``): what the rest of the engine tells the recorder.

While ``tinygrad_edu.jit`` captures a call, ``recording`` is a ``Recording`` and the engine reports to it:

* ``Function.apply`` reports every op: its class, its context, its inputs and its output (``Recording.op``), and on
  NumPy runs its forward (and so its backward) traced: the array calls it makes are noted (``lowering.py``);
* ``Tensor.backward`` reports the backward pass it starts (``Recording.backward``);
* methods marked ``@host_call`` (an optimizer's ``step`` and ``zero_grad``, the loss scaler's and the master weights'
  methods, batchnorm's batch count) are recorded as one call each, to be called again at every replay; the ops they
  run inside are not recorded;
* whatever a replay could not repeat faithfully reports ``unreplayable(reason)``: a value read back to the host
  (``item()``, ``numpy()``, ``bool(t)``) on which Python may branch, an in-place change outside an optimizer, a
  branch drawn on the host (stochastic depth), a gradient callback (data parallel). The jit then runs that function
  eagerly and warns with the reason.

When nothing is captured (always, outside ``jit``) each hook costs one test of ``recording is None``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np

from tinygrad_edu.autograd import lowering

#: the Recording of the call being captured, or None (the usual case)
recording: Recording | None = None


class Recording:
    """What one eager call did, in order: ``program`` holds ("op", ...), ("backward", ...) and ("host", ...) entries."""

    def __init__(self) -> None:
        self.program: list[tuple] = []
        self.errstates: list[dict] = []  # NumPy's floating-point error handling at each entry (np.errstate blocks)
        self.ambient = np.geterr()  # ... and the caller's, around the call
        self.reasons: list[str] = []  # why this call cannot be replayed (empty: it can)
        self.modules: dict[int, Any] = {}  # id -> a module whose forward ran (its training flag is a guard)
        self.paused = 0  # > 0 inside a host call: its ops are its own business
        self.traces: dict[int, lowering.Trace] = {}  # id(ctx) -> the array calls of that op (see lowering.py)

    def forward(self, cls: type, ctx: Any) -> Callable:
        """The forward ``Function.apply`` runs: on NumPy, traced (``lowering.traced_forward``), else the op's own."""
        if self.paused or not cls.lowerable or not lowering.traceable(ctx.backend):
            return cls.forward
        return functools.partial(lowering.traced_forward, cls, self.traces)

    def close(self) -> None:
        """The capture ended: the traced contexts get their real arrays back."""
        errors = []
        for trace in self.traces.values():  # (every one, even after an error)
            try:
                lowering.untrace(trace)
            except Exception as exc:  # noqa: BLE001 - raised below, once all are done
                errors.append(exc)
        if errors:
            raise errors[0]

    def op(self, cls: type, ctx: Any, args: tuple, kwargs: dict, result: Any) -> None:
        if not self.paused:
            self.program.append(("op", cls, ctx, args, kwargs, result))
            self.errstates.append(np.geterr())

    def backward(self, root: Any, grad: Any, retain_graph: bool) -> None:
        if not self.paused:
            self.program.append(("backward", root, grad, retain_graph))
            self.errstates.append(np.geterr())

    def module(self, module: Any) -> None:
        if not self.paused:
            self.modules[id(module)] = module


def unreplayable(reason: str) -> None:
    """Tell the recorder (if one runs, outside a host call) that this call cannot be replayed, and why."""
    if recording is not None and not recording.paused and reason not in recording.reasons:
        recording.reasons.append(reason)


def read_on_host(how: str) -> None:
    """A tensor's values were read back to the host (``how``): Python may branch on them."""
    if recording is not None:
        unreplayable(f"a tensor's values were read on the host ({how}): Python may branch on them")


def changed_in_place(how: str) -> None:
    """A tensor was changed in place (``how``) outside a host call: no op records it."""
    if recording is not None:
        unreplayable(f"a tensor was changed in place outside an optimizer ({how})")


def assigned_grad(value: Any) -> Any:
    """``t.grad = value`` outside a host call (``Module.zero_grad`` is one): state no op records. Returns value."""
    if recording is not None:
        unreplayable("a .grad was assigned outside an optimizer's zero_grad (Python state is not replayed)")
    return value


def backward(root: Any, grad: Any, retain_graph: bool) -> None:
    """``root.backward(grad)`` starts."""
    if recording is not None:
        if grad is not None and not hasattr(grad, "_data"):
            unreplayable("backward() was given an upstream gradient that is not a tensor")
        recording.backward(root, grad, retain_graph)


def host_call(method: Callable) -> Callable:
    """Mark a method that changes state with its own Python code (an optimizer step): a captured call records one
    call of it, and every replay calls it again at the same place, with the same arguments."""

    @functools.wraps(method)
    def recorded(*args: Any, **kwargs: Any) -> Any:
        rec = recording
        if rec is None or rec.paused:
            return method(*args, **kwargs)
        rec.program.append(("host", method, args, kwargs))
        rec.errstates.append(np.geterr())
        rec.paused += 1
        try:
            return method(*args, **kwargs)
        finally:
            rec.paused -= 1

    recorded.__host_call__ = True
    return recorded


def host_methods(cls: type, *names: str) -> None:
    """Make the methods ``names`` that ``cls`` defines itself host calls (from a base class's ``__init_subclass__``:
    every optimizer's ``step``, every scheduler's)."""
    for name in names:
        method = cls.__dict__.get(name)
        if method is not None and not getattr(method, "__host_call__", False):
            setattr(cls, name, host_call(method))
