"""The backward walk, and grad mode.

``loss.backward()`` walks the tape back from ``loss``: each op's ``backward`` gets the gradient of the loss with
respect to the op's output and returns the gradients with respect to its inputs, which are added into those inputs
(the chain rule, one op at a time). Ops are taken newest first: every op that used a tensor was created after it, so
when a tensor's turn comes, every contribution to its gradient has been added (micrograd sorts the graph
topologically for the same reason; a heap of creation numbers gives that order without a separate pass). Leaves,
tensors made by the user with ``requires_grad=True``, collect their gradient in ``.grad``. Then the arrays the ops
saved are freed, unless ``retain_graph=True``. Both happen only once every op's backward has run: a backward that
raises (``InplaceModificationError``, a bug in an op) leaves every ``.grad`` and the graph as they were.
"""

from __future__ import annotations

import contextlib
import heapq
from collections.abc import Callable
from typing import Any

import numpy as np

from tinygrad_edu.autograd import anomaly, capture, hooks, versions

#: Is the tape recording? ``no_grad()`` turns it off for evaluation and parameter updates.
grad_enabled = True
#: The Tensor class. ``tinygrad_edu.tensor`` defines Tensor on top of this package and hands the class over here
#: (PyTorch's C++ core is given ``torch.Tensor`` the same way), so that nothing here imports it: ``Function.apply``
#: wraps its outputs and the walk the leaves' gradients with it.
Tensor: Any = None
_callbacks: list[Callable[[], None]] | None = None  # while a backward runs: what queue_callback asked to run at its end


class no_grad(contextlib.ContextDecorator):  # noqa: N801 - PyTorch's name
    """Context manager (and decorator) in which ops record nothing on the tape: for evaluation and updates."""

    def __enter__(self) -> no_grad:
        global grad_enabled
        self._previous, grad_enabled = grad_enabled, False
        return self

    def __exit__(self, *exc: object) -> bool:
        global grad_enabled
        grad_enabled = self._previous
        return False


def is_grad_enabled() -> bool:
    """True unless inside ``no_grad()``."""
    return grad_enabled


def queue_callback(callback: Callable[[], None]) -> None:
    """Run ``callback()`` once the backward pass now running has finished, after every gradient is in ``.grad``
    (PyTorch's ``Variable._execution_engine.queue_callback``). Only an op's ``backward`` can call it: data-parallel
    training queues its gradient all-reduce this way (``distributed.DistributedDataParallel``)."""
    if _callbacks is None:
        raise RuntimeError("queue_callback: no backward pass is running; call it from a Function's backward")
    if not callable(callback):
        raise TypeError(f"queue_callback: expected a callable, got {type(callback).__name__}")
    capture.unreplayable("a backward queued a callback (data-parallel gradient averaging): not replayed")
    _callbacks.append(callback)


def queued_callbacks() -> list[Callable[[], None]]:
    """The callbacks queued so far in the backward pass now running (a hook queues itself once per pass)."""
    if _callbacks is None:
        raise RuntimeError("queued_callbacks: no backward pass is running")
    return list(_callbacks)


def backward(root: Any, upstream: Any, retain_graph: bool = False) -> None:
    """Backpropagate ``upstream`` (dL/d root, an array of root's shape) from the op output ``root`` into the
    ``.grad`` of every leaf behind it, then run the callbacks that ops queued on the way."""
    global _callbacks
    outer, _callbacks = _callbacks, []
    try:
        _walk(root, upstream, retain_graph)
        queued = _callbacks
    finally:
        _callbacks = outer
    for callback in queued:
        callback()


def _walk(root: Any, upstream: Any, retain_graph: bool) -> None:
    grads = {id(root): upstream}  # dL/d tensor for the tensors reached but not processed yet
    todo = [(-root._ctx.sequence, root)]  # a heap: the newest op comes out first
    leaf_grads: dict[int, list] = {}  # id(leaf) -> [leaf, its new .grad]: set only once the whole walk succeeded
    walked = []  # the ops whose backward ran: their saved arrays are freed once the whole walk succeeded
    retained = []  # (tensor, gradient) for the non-leaves that retain their gradient (retain_grad)
    tensor_hooks = hooks.active  # empty unless some tensor has a hook (register_hook) or retains its gradient
    last_change = versions.last_change
    while todo:
        node = heapq.heappop(todo)[1]
        ctx = node._ctx
        if ctx.parents is None:
            raise freed_error(ctx)
        if last_change > ctx.sequence:  # some tensor changed in place since this op ran: did the op save it?
            versions.check_saved(ctx, node)
        grad = grads.pop(id(node))
        if tensor_hooks and id(node) in tensor_hooks:  # the whole dL/d(node) is in: its hooks may replace it
            grad = hooks.run(node, grad)
            if id(node) in hooks.retained:
                retained.append((node, grad))
        input_grads = _run_backward(ctx, grad)
        for parent, grad, needed in zip(ctx.parents, input_grads, ctx.needs_input_grad):
            if grad is None or not needed:
                continue
            data = parent._data
            if grad.__class__ is not data.__class__ or grad.shape != data.shape or grad.dtype != data.dtype:
                grad = _fit(ctx, grad, data.shape, data.dtype, parent.backend.xp)
            key = id(parent)
            if parent._ctx is None:  # a leaf: add to its .grad (out of place: grad may be shared), staged
                staged = leaf_grads.get(key)
                if staged is None:
                    so_far = parent._grad
                    hooked = bool(tensor_hooks) and key in tensor_hooks  # hooks see this pass's gradient alone
                    leaf_grads[key] = [parent, grad if so_far is None or hooked else so_far._data + grad, hooked]
                else:
                    staged[1] = staged[1] + grad
            elif key in grads:  # a second path to this tensor: the chain rule adds them
                grads[key] = grads[key] + grad
            else:
                grads[key] = grad
                heapq.heappush(todo, (-parent._ctx.sequence, parent))
        walked.append(ctx)
    # every backward ran without an error: now change state (a failed walk leaves .grad and the graph as they were)
    # (a hooked leaf: its hooks run on this pass's gradient, which is then added to .grad, in PyTorch's order)
    final = [(leaf, hooks.on_leaf(leaf, grad) if hooked else grad) for leaf, grad, hooked in leaf_grads.values()]
    for node, grad in retained:
        node._grad = Tensor._wrap(grad if node._grad is None else node._grad._data + grad, node.backend)
    for leaf, grad in final:
        leaf._grad = Tensor._wrap(grad, leaf.backend)  # (of the leaf's shape and dtype: _fit made sure)
    if not retain_graph:  # free what forward saved, and the links to the inputs (their arrays too)
        for ctx in walked:
            ctx._saved = ctx.parents = None


def _run_backward(ctx: Any, grad: Any) -> tuple:
    """``ctx.backward(ctx, grad)`` as a tuple of one gradient (or None) per input of forward, no array shared by two
    inputs."""
    if ctx.backend.context is None:
        input_grads = ctx.backward(ctx, grad)
    else:
        with ctx.backend.context:  # e.g. CuPy's current GPU
            input_grads = ctx.backward(ctx, grad)
    if input_grads.__class__ is not tuple:
        input_grads = (input_grads,)
    if len(input_grads) != len(ctx.parents):
        input_grads = _one_per_input(ctx, input_grads)
    if len(input_grads) > 1 and len(set(map(id, input_grads))) < len(input_grads):
        input_grads = _unaliased(ctx.xp, input_grads)  # one array returned for two inputs (a + b): copy
    if anomaly.enabled:
        anomaly.check_backward(ctx, input_grads)
    return input_grads


def _fit(ctx: Any, grad: Any, shape: tuple, dtype: Any, xp: Any) -> Any:
    """A gradient as an array of its input's dtype (``xp``: the input's namespace); a gradient of another shape than
    the input's is a bug in the op's backward."""
    if isinstance(grad, np.generic):  # NumPy returns scalars from 0-d results; keep arrays
        grad = np.asarray(grad)
    if grad.shape != shape:
        raise RuntimeError(f"{type(ctx).__name__}.backward returned a gradient of shape {tuple(grad.shape)} for an "
                           f"input of shape {tuple(shape)}")
    return grad if grad.dtype == dtype else xp.astype(grad, dtype)


def _one_per_input(ctx: Any, grads: tuple) -> tuple:
    """Match ``backward``'s gradients to ``forward``'s inputs: trailing ones for non-tensors may be left out."""
    n = len(ctx.parents)
    if len(grads) < n and not any(ctx.needs_input_grad[len(grads):]):
        return grads + (None,) * (n - len(grads))
    if len(grads) > n and all(g is None for g in grads[n:]):
        return grads[:n]
    raise RuntimeError(f"{type(ctx).__name__}.backward returned {len(grads)} gradient(s) for {n} input(s) of forward")


def _unaliased(xp: Any, grads: tuple) -> tuple:
    """The gradients with every array that appears a second time replaced by a copy, so no two inputs share one."""
    seen: set[int] = set()
    out = []
    for g in grads:
        if g is not None and id(g) in seen:
            g = xp.asarray(g, copy=True)
        elif g is not None:
            seen.add(id(g))
        out.append(g)
    return tuple(out)


def freed_error(ctx: Any) -> RuntimeError:
    """The error for an op whose saved arrays a previous backward freed."""
    return RuntimeError(
        f"Trying to backward through {type(ctx).__name__} a second time, but the graph behind it was freed by the "
        "first backward. Call the first backward with retain_graph=True if you need to backward through it twice."
    )
