"""Version counters: in-place changes of a tensor that an op saved for its backward are caught, not silently used.

Every in-place change of a tensor's values (``add_``, ``mul_``, ..., an optimizer's ``step()``, ``nn.init``,
assignment to ``.data``) bumps the tensor's version (PyTorch's ``Tensor._version``) and notes *when* it happened, a
tick of ``clock``, the clock that also numbers the ops as they are created. Views (``reshape``, ``permute``,
``expand``, indexing, ``detach``) share the counter of the tensor they view, since they share its memory.

Before running an op's backward, the walk asks ``check_saved``: did a tensor whose array the op saved change after
the op ran? If so the saved array no longer holds what the forward saw, the gradient would be wrong, and
``InplaceModificationError`` is raised instead. When no tensor changed since the op ran (``last_change`` is older
than the op), the walk skips the check: one comparison.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from tinygrad_edu.autograd import anomaly

#: One clock for two kinds of events: the creation of an op on the tape, and an in-place change of a tensor.
clock = itertools.count()
#: The tick of the latest in-place change of any tensor (-1: none yet).
last_change = -1


class InplaceModificationError(RuntimeError):
    """Raised by ``backward`` when a tensor an op saved for its backward was modified in place after the forward.

    Every tensor has a version counter (``t._version``), bumped by each in-place change of its values (``add_``,
    ``mul_``, ..., an optimizer's ``step()``, ``nn.init``, assignment to ``.data``); views (``reshape``,
    ``permute``, ``expand``, indexing, ``detach``) share the counter of the tensor they view. ``backward`` compares
    before running the op's backward, since the saved array would now hold other values: a wrong gradient.
    """


@dataclass(slots=True)
class VersionCounter:
    """How often, and when, a tensor (and its views, which share this object) was changed in place."""

    version: int = 0  #: the number of in-place changes so far
    changed_at: int = -1  #: the tick of the latest change (-1: never changed)
    changed_before: int = -1  #: the tick of the change before it
    replaced: int = 0  #: id() of the array that the latest ``.data`` assignment replaced (0: none)


def shared(tensor: Any) -> VersionCounter:
    """The version counter of ``tensor``, created on first use, for a view of it to share."""
    counter = tensor._versions
    if counter is None:
        counter = tensor._versions = VersionCounter()
    return counter


def bump(tensor: Any, replaced: Any = None) -> None:
    """Record an in-place change of ``tensor`` now; ``replaced`` is the array a ``.data`` assignment replaced (an op
    may have saved that one)."""
    global last_change
    last_change = now = next(clock)
    counter = tensor._versions
    if counter is None:  # (shared(tensor), inlined: every optimizer step calls this once per parameter)
        counter = tensor._versions = VersionCounter()
    counter.version += 1
    counter.changed_before, counter.changed_at = counter.changed_at, now
    counter.replaced = 0 if replaced is None else id(replaced)


def bump_all(tensors: Any) -> None:
    """``bump`` for several tensors changed in place at once (an optimizer step), at one tick."""
    global last_change
    last_change = now = next(clock)
    for tensor in tensors:
        counter = tensor._versions
        if counter is None:
            counter = tensor._versions = VersionCounter()
        counter.version += 1
        counter.changed_before, counter.changed_at, counter.replaced = counter.changed_at, now, 0


def check_saved(ctx: Any, output: Any) -> None:
    """Raise if an input of the op ``ctx`` (or its ``output``) whose array it saved changed in place after it ran."""
    saved = {id(v) for v in (ctx._saved or ())}
    if not saved:
        return
    for k, t in itertools.chain(((-1, output),), enumerate(ctx.parents)):
        counter = getattr(t, "_versions", None)
        if counter is None or counter.changed_at < ctx.sequence:
            continue  # never changed, or not since the op ran
        if id(t._data) not in saved and counter.replaced not in saved:
            continue  # changed, but the op did not save it (nor the array a .data assignment replaced)
        now = counter.version
        expected = f"version {now - 1}" if counter.changed_before < ctx.sequence else f"a version <= {now - 2}"
        what = "output 0" if k < 0 else f"input {k}"
        raise InplaceModificationError(
            f"one of the variables needed for gradient computation has been modified by an inplace operation: "
            f"[{type(ctx).__name__} {what} of shape {t.shape}, dtype {t.dtype}] is at version {now}; expected "
            f"{expected}. It was saved by the forward and changed in place before this backward (e.g. "
            "optimizer.step() or an in-place op like add_() between the forward and loss.backward()): run "
            "backward before changing it, or compute a new tensor out of place." + anomaly.created_hint(ctx)
        )
