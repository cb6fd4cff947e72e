"""Tensor and the tape: ``Function``, its context, ``backward`` and ``no_grad``.

How the tape works, in four sentences:

1. Every differentiable op is a ``Function`` subclass with ``forward(ctx, *arrays)`` and ``backward(ctx, grad)``
   side by side; ``Op.apply(*tensors)`` runs ``forward`` on the tensors' arrays and returns a new ``Tensor``.
2. When an input requires grad, ``apply`` keeps the context ``ctx`` on the output (``out._ctx``); ``ctx.parents``
   points back to the inputs, so the outputs and their contexts form a graph (the tape).
3. ``loss.backward()`` walks that graph back from ``loss``, newest op first, and calls each op's ``backward`` with
   the gradient of the loss with respect to the op's output; the returned gradients are added into the op's inputs
   (the chain rule, one op at a time). Newest first guarantees that a tensor's gradient is complete, summed over
   every op that used it, before its own op is reached.
4. Leaves (tensors made by the user with ``requires_grad=True``) collect their gradient in ``.grad``; after the
   walk, the arrays the ops saved are freed, unless ``retain_graph=True``.

Two safety nets. In-place changes (``add_``, ``optimizer.step()``, ``nn.init``, ``t.data = ...``) bump the tensor's
version and note when they happened (a number from the same counter as the ops' creation numbers); ``backward``
refuses to run an op created before such a change if the op saved the changed tensor (``InplaceModificationError``):
its saved array no longer holds what the forward saw. When nothing changed since an op ran, the check is one
comparison. Under ``tinygrad_edu.autograd.detect_anomaly()`` every op also checks its output and its gradients for
NaN/Inf and raises ``AnomalyError`` naming the line of the user's code that created the op.

Inside ``forward`` and ``backward`` values are plain arrays of the backend's namespace ``ctx.xp`` (NumPy, CuPy,
array_api_strict), so a backward pass is ordinary array math and is not itself recorded on the tape.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import math
import operator
import os
import traceback
from collections.abc import Sequence
from typing import Any

import numpy as np

from tinygrad_edu import arguments
from tinygrad_edu.backend import Backend, get_backend, get_default_device

_grad_enabled = True
_anomaly_enabled = False  # detect_anomaly() (tinygrad_edu.autograd): check every op's outputs and gradients
_last_inplace = -1  # the creation number (from _sequence) of the latest in-place change of any tensor
_sequence = itertools.count()  # creation numbers of recorded ops: backward runs them newest first
_backward_callbacks: list | None = None  # while a backward runs: what queue_callback asked to run at its end


class no_grad(contextlib.ContextDecorator):
    """Context manager (and decorator) in which ops record nothing on the tape: for evaluation and updates."""

    def __enter__(self):
        global _grad_enabled
        self._previous, _grad_enabled = _grad_enabled, False
        return self

    def __exit__(self, *exc):
        global _grad_enabled
        _grad_enabled = self._previous
        return False


class InputError(ValueError):
    """Raised by an op that checked its own inputs; its message already names the op, and passes through as is."""


class InplaceModificationError(RuntimeError):
    """Raised by ``backward`` when a tensor an op saved for its backward was modified in place after the forward.

    Every tensor has a version counter (``t._version``), bumped by each in-place change of its values (``add_``,
    ``mul_``, ..., an optimizer's ``step()``, ``nn.init``, assignment to ``.data``); views (``reshape``,
    ``permute``, ``expand``, indexing, ``detach``) share the counter of the tensor they view. ``save_for_backward``
    records the version of each saved input (and of the output, when the forward saves it); ``backward`` compares
    before running the op's backward, since the saved array would now hold other values: a wrong gradient.
    """


class AnomalyError(RuntimeError):
    """Raised under ``detect_anomaly()`` by the first op whose forward output or backward gradient holds NaN/Inf."""


def is_grad_enabled() -> bool:
    """True unless inside ``no_grad()``."""
    return _grad_enabled


# ----------------------------------------------------------------------------------------------------------------
# Function: one differentiable op, and the context its forward and backward share
# ----------------------------------------------------------------------------------------------------------------
class Function:
    """Base class of differentiable ops, used as in ``torch.autograd.Function``.

    Subclass it and write two static methods side by side::

        class Square(Function):
            @staticmethod
            def forward(ctx, x):               # x: an array of ctx.xp
                ctx.save_for_backward(x)
                return x * x

            @staticmethod
            def backward(ctx, grad):           # grad: dL/d(output), same shape as the output
                (x,) = ctx.saved_tensors
                return 2 * x * grad            # dL/dx, one gradient per input of forward

        y = Square.apply(t)

    ``backward`` returns one gradient per positional input of ``forward`` (a tuple when there are several; ``None``
    for inputs that are not tensors or need no gradient: see ``ctx.needs_input_grad``). A gradient must have the
    shape of its input. The instance passed as ``ctx`` carries ``ctx.xp`` (the array namespace), ``ctx.backend``,
    ``ctx.needs_input_grad`` and any attribute the forward sets on it.
    """

    # set on the context (an instance of the subclass) by apply()
    backend: Backend  #: the backend of the inputs
    xp: Any  #: its array namespace (``numpy``, ``array_api_compat.cupy``, ``array_api_strict``)
    needs_input_grad: tuple[bool, ...]  #: for each input of forward: is it a tensor that requires grad?
    parents: tuple[Any, ...]  #: the inputs of forward, tensors and others
    sequence: int  #: creation number: an op is created after every op whose output it uses
    _created_at: Any = None  #: under detect_anomaly(): the user's stack when the op was created
    _view: bool = False  #: True for ops whose output may share memory with input 0: it shares its version counter

    @staticmethod
    def forward(ctx: Function, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    @staticmethod
    def backward(ctx: Function, *grads: Any) -> Any:
        raise NotImplementedError

    # -- the context API -----------------------------------------------------------------------------------------
    def save_for_backward(self, *values: Any) -> None:
        """Keep arrays for ``backward``; they are freed after the backward pass."""
        self._saved = values

    @property
    def saved_tensors(self) -> tuple[Any, ...]:
        """What ``forward`` passed to ``save_for_backward``, as arrays."""
        saved = self._saved
        if saved is None:
            raise _freed_error(self)
        return saved

    # -- running the op ------------------------------------------------------------------------------------------
    @classmethod
    def apply(cls, *args: Any, **kwargs: Any) -> Tensor:
        """Run ``forward`` on the arrays of ``args`` and return its result as a Tensor, recorded on the tape."""
        backend = None
        arrays, needs = [], []
        for a in args:
            if isinstance(a, Tensor):
                if a.backend is not backend:
                    if backend is not None:
                        raise _device_mismatch(cls.__name__, args)
                    backend = a.backend
                arrays.append(a._data)
                needs.append(a.requires_grad)
            else:
                arrays.append(a)
                needs.append(False)
        if backend is None:
            raise TypeError(f"{cls.__name__}.apply needs at least one Tensor argument")
        ctx = cls.__new__(cls)
        ctx.backend, ctx.xp, ctx.needs_input_grad, ctx._saved = backend, backend.xp, tuple(needs), ()
        try:
            if backend.context is None:
                out = cls.forward(ctx, *arrays, **kwargs)
            else:
                with backend.context:  # e.g. CuPy's current GPU
                    out = cls.forward(ctx, *arrays, **kwargs)
        except InputError:
            raise
        except ValueError as exc:  # from the array library (e.g. shapes that do not broadcast): name op and inputs
            raise _library_error(cls.__name__, arrays, exc) from exc
        if isinstance(out, Tensor):
            out = out._data
        elif isinstance(out, np.generic):  # NumPy returns scalars from 0-d results; keep arrays
            out = np.asarray(out)
        result = Tensor.__new__(Tensor)
        result._data, result.backend, result.grad = out, ctx.backend, None  # forward may move the result (ToDevice)
        result._version_cell = _shared_cell(args[0]) if cls._view else None
        if _grad_enabled and True in needs:
            ctx.parents, ctx.sequence = args, next(_sequence)
            result.requires_grad, result._ctx = True, ctx
        else:
            result.requires_grad, result._ctx = False, None
        if _anomaly_enabled:
            ctx._created_at = _user_stack()
            _check_forward(cls.__name__, ctx, arrays, out)
        return result


# ----------------------------------------------------------------------------------------------------------------
# Tensor
# ----------------------------------------------------------------------------------------------------------------
class Tensor:
    """An n-dimensional array on a device, and the node of the tape that produced it.

    ``Tensor(data, requires_grad=False, dtype=None, device=None)`` copies ``data`` (a list, scalar, NumPy array,
    backend array or Tensor) onto ``device`` (default: the default device). Python floats become float32, Python
    ints int64; arrays keep their dtype, as in ``torch.tensor``.
    """

    __slots__ = ("_data", "backend", "requires_grad", "grad", "_ctx", "_version_cell", "__weakref__")
    __array_priority__ = 1000  # numpy_array + tensor calls Tensor.__radd__

    def __init__(self, data: Any, requires_grad: bool = False, dtype: Any = None, device: str | None = None):
        backend = get_backend(device) if device is not None else None
        if isinstance(data, Tensor):
            if backend is None:
                backend = data.backend
            host_or_array = data._data if backend is data.backend else data.numpy()
        else:
            host_or_array = data
        if backend is None:
            backend = _backend_of(data) or get_backend(get_default_device())
        if backend.owns(host_or_array):
            array = backend.xp.asarray(host_or_array, copy=True)
            if dtype is not None:
                array = backend.xp.astype(array, backend.dtype(np.dtype(dtype)))
        else:
            host = _host_array(host_or_array, dtype)
            array = backend.asarray(host)
        self._data = array
        self._version_cell: list | None = None  # see _bump_version; shared with views; None: version 0, not shared
        self.backend = backend
        self.grad: Tensor | None = None
        self._ctx: Function | None = None
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    @staticmethod
    def _wrap(array: Any, backend: Backend, requires_grad: bool = False) -> Tensor:
        """Wrap an array of ``backend`` without copying."""
        t = Tensor.__new__(Tensor)
        t._data, t.backend, t.requires_grad, t.grad, t._ctx = array, backend, requires_grad, None, None
        t._version_cell = None
        return t

    # -- the values, and their version -----------------------------------------------------------------------------
    def _set_data(self, array: Any) -> None:
        if getattr(self, "_version_cell", False) is False:  # a subclass's __init__ (Parameter) sets the first value
            self._data, self._version_cell = array, None
            return
        replaced, self._data = self._data, array
        self._bump_version(replaced)  # an op may have saved the replaced array: remember which one it was

    data = property(operator.attrgetter("_data"), _set_data, doc="""The backend array holding the values.

        Assigning a new array counts as an in-place change (the version goes up): a pending backward that saved
        this tensor then refuses to run (see ``InplaceModificationError``). The getter is C code (attrgetter):
        reading ``.data`` costs about as much as reading a plain attribute.""")

    @property
    def _version(self) -> int:
        """How many times the values were changed in place (PyTorch's ``Tensor._version``)."""
        cell = self._version_cell
        return 0 if cell is None else cell[0]

    def _bump_version(self, replaced: Any = None) -> None:
        """Record an in-place change of the values: call it after writing into ``.data`` (optimizers, init).

        The version counter ``_version_cell`` is a list ``[version, when, before, replaced]``: ``when`` is the
        creation number (``_sequence``, shared with the ops) of the latest change, ``before`` that of the change
        before it, ``replaced`` the id of the array the latest ``.data`` assignment replaced (0: none).
        ``backward`` compares ``when`` with an op's own creation number: a change after the op ran may have
        altered what it saved.
        """
        global _last_inplace
        _last_inplace = when = next(_sequence)
        cell = self._version_cell
        if cell is None:
            self._version_cell = [1, when, -1, 0 if replaced is None else id(replaced)]
            return
        if len(cell) == 1:  # a counter made for a view, never changed yet
            cell += [when, -1, 0]
        cell[0] += 1
        cell[1], cell[2], cell[3] = when, cell[1], 0 if replaced is None else id(replaced)

    # -- properties ----------------------------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self._data.shape)

    @property
    def ndim(self) -> int:
        return self._data.ndim

    def size(self, dim: int | None = None) -> tuple[int, ...] | int:
        """The shape, or the size of axis ``dim`` (PyTorch's ``size``; ``numel()`` counts the elements)."""
        return self.shape if dim is None else self.shape[dim]

    def numel(self) -> int:
        """The number of elements."""
        return math.prod(self._data.shape)

    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self._data.shape[0]

    @property
    def dtype(self) -> np.dtype:
        """The element type, as a NumPy dtype (``tinygrad_edu.float32`` is ``numpy.dtype('float32')``)."""
        return self.backend.numpy_dtype(self._data.dtype)

    @property
    def device(self) -> str:
        """The device string: ``"cpu"``, ``"cuda:0"``, ..."""
        return self.backend.name

    @property
    def is_leaf(self) -> bool:
        """True for tensors not produced by a recorded op (their ``.grad`` is filled by ``backward``)."""
        return self._ctx is None

    @property
    def grad_fn(self) -> Function | None:
        """The context of the op that produced this tensor, or None for a leaf."""
        return self._ctx

    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        """Set ``requires_grad`` in place; only floating-point tensors can require grad."""
        if requires_grad and self.dtype.kind != "f":
            raise TypeError(
                f"only floating-point tensors can require grad; this tensor has dtype {self.dtype}. "
                "Convert it first, e.g. t.float()."
            )
        self.requires_grad = bool(requires_grad)
        return self

    # -- conversion ----------------------------------------------------------------------------------------------
    def numpy(self) -> np.ndarray:
        """The values as a NumPy array in host memory (a copy for device tensors)."""
        return self.backend.to_host(self._data)

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        """``np.asarray(t)`` for a CPU tensor; a device tensor refuses, since the copy to the host must be explicit."""
        if self.backend.name != "cpu":
            raise TypeError(
                f"can't convert a tensor on device {self.device!r} to a NumPy array implicitly: "
                "call .numpy() to copy it to the host"
            )
        return np.array(self._data, dtype=dtype, copy=copy) if copy is not None else np.asarray(self._data, dtype=dtype)

    def item(self) -> float | int | bool:
        """The value of a one-element tensor as a Python number."""
        if self.numel() != 1:
            raise ValueError(f"item(): only one-element tensors can be converted to a Python number, got shape {self.shape}")
        return self.numpy().reshape(()).item()

    def tolist(self) -> Any:
        return self.numpy().tolist()

    def detach(self) -> Tensor:
        """A tensor sharing this one's data (and version counter), cut from the tape (no grad)."""
        t = Tensor._wrap(self._data, self.backend, False)
        t._version_cell = _shared_cell(self)
        return t

    def to(self, device: str | None = None, dtype: Any = None) -> Tensor:
        """This tensor on ``device`` and/or of ``dtype`` (differentiable; returns ``self`` if nothing changes)."""
        out = self
        if device is not None and get_backend(device) is not self.backend:
            out = _ops.ToDevice.apply(out, get_backend(device))
        if dtype is not None:
            out = out.astype(dtype)
        return out

    def astype(self, dtype: Any) -> Tensor:
        """Cast to ``dtype``: differentiable between floating dtypes (the gradient is cast back); a cast to an integer
        or boolean dtype has no gradient, as in PyTorch."""
        dtype = np.dtype(dtype)
        if dtype == self.dtype:
            return self
        if dtype.kind != "f":
            return Tensor._wrap(self.backend.xp.astype(self._data, self.backend.dtype(dtype)), self.backend)
        return _ops.Cast.apply(self, dtype)

    def half(self) -> Tensor:
        return self.astype(np.float16)

    def float(self) -> Tensor:
        return self.astype(np.float32)

    def double(self) -> Tensor:
        return self.astype(np.float64)

    def cpu(self) -> Tensor:
        return self.to("cpu")

    def cuda(self, index: int = 0) -> Tensor:
        return self.to(f"cuda:{index}")

    def __repr__(self) -> str:
        grad = ", requires_grad=True" if self.requires_grad else ""
        values = np.array2string(self.numpy(), separator=", ", prefix="Tensor(")
        return f"Tensor({values}, dtype={self.dtype}, device={self.device!r}{grad})"

    def __bool__(self) -> bool:
        if self.numel() != 1:
            raise ValueError(f"the truth value of a tensor with shape {self.shape} is ambiguous")
        return bool(self.item())

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    __hash__ = object.__hash__

    # -- autograd ------------------------------------------------------------------------------------------------
    def backward(self, grad: Any = None, retain_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) · grad into the ``.grad`` of every leaf that requires grad.

        ``grad`` (the upstream gradient) may be omitted only for a one-element tensor, where it is 1. The arrays the
        graph saved are freed afterwards unless ``retain_graph=True``.
        """
        if not self.requires_grad:
            raise RuntimeError("backward(): this tensor does not require grad and has no grad_fn")
        xp = self.backend.xp
        if grad is None:
            if self.numel() != 1:
                raise RuntimeError(
                    f"backward(): grad can be created implicitly only for one-element outputs; this tensor has shape "
                    f"{self.shape}. Pass grad= (an array or Tensor of that shape), or reduce it first (e.g. .sum())."
                )
            upstream = xp.ones_like(self._data)
        else:
            if isinstance(grad, Tensor) and grad.backend is not self.backend:
                raise RuntimeError(f"backward(): grad is on {grad.device} but the tensor is on {self.device}")
            upstream = xp.asarray(grad._data, copy=True) if isinstance(grad, Tensor) else self.backend.asarray(grad, self.dtype)
            if tuple(upstream.shape) != self.shape:
                raise ValueError(f"backward(): grad has shape {tuple(upstream.shape)}, the tensor has shape {self.shape}")
        if self._ctx is None:  # a leaf: its gradient is the upstream gradient
            self.grad = Tensor._wrap(upstream if self.grad is None else self.grad._data + upstream, self.backend)
            return
        global _backward_callbacks
        outer, _backward_callbacks = _backward_callbacks, []
        try:
            self._run_backward(upstream, retain_graph)
            callbacks = _backward_callbacks
        finally:
            _backward_callbacks = outer
        for callback in callbacks:  # queued by ops' backward (queue_callback): e.g. the data-parallel all-reduce
            callback()

    def _run_backward(self, upstream: Any, retain_graph: bool) -> None:
        # Walk the graph from the output, always taking next the op created last among those still to do (a heap
        # of creation numbers): every op that used a tensor was created after it, so by the time a tensor's turn
        # comes, all the gradient contributions it will receive have been added into grads[id(tensor)].
        grads = {id(self): upstream}
        todo = [(-self._ctx.sequence, self)]
        anomaly, last_inplace = _anomaly_enabled, _last_inplace
        while todo:
            node = heapq.heappop(todo)[1]
            ctx = node._ctx
            if ctx.parents is None:
                raise _freed_error(ctx)
            if last_inplace > ctx.sequence:  # a tensor changed in place since this op ran: did the op save it?
                _check_versions(ctx, node)
            g = grads.pop(id(node))
            if ctx.backend.context is None:
                input_grads = ctx.backward(ctx, g)
            else:
                with ctx.backend.context:
                    input_grads = ctx.backward(ctx, g)
            if input_grads.__class__ is not tuple:
                input_grads = (input_grads,)
            if len(input_grads) != len(ctx.parents):
                input_grads = _one_per_input(ctx, input_grads)
            if len(input_grads) > 1 and len(set(map(id, input_grads))) < len(input_grads):
                input_grads = _unaliased(ctx.xp, input_grads)  # one array returned for two inputs (a + b): copy
            if anomaly:
                _check_backward(ctx, input_grads)
            for parent, pg, needed in zip(ctx.parents, input_grads, ctx.needs_input_grad):
                if pg is None or not needed:
                    continue
                if isinstance(pg, np.generic):  # NumPy returns scalars from 0-d results; keep arrays
                    pg = np.asarray(pg)
                if pg.shape != parent._data.shape:
                    raise RuntimeError(
                        f"{type(ctx).__name__}.backward returned a gradient of shape {tuple(pg.shape)} for an input "
                        f"of shape {parent.shape}"
                    )
                if pg.dtype != parent._data.dtype:
                    pg = parent.backend.xp.astype(pg, parent._data.dtype)
                if parent._ctx is None:  # a leaf: add into .grad (out of place: pg may be shared)
                    grad_so_far = parent.grad
                    parent.grad = Tensor._wrap(pg if grad_so_far is None else grad_so_far._data + pg, parent.backend)
                elif id(parent) in grads:  # a second path to this tensor: the chain rule adds them
                    grads[id(parent)] = grads[id(parent)] + pg
                else:
                    grads[id(parent)] = pg
                    heapq.heappush(todo, (-parent._ctx.sequence, parent))
            if not retain_graph:  # free what forward saved, and the links to the inputs (their arrays too)
                ctx._saved = ctx.parents = None

    # -- operators -----------------------------------------------------------------------------------------------
    def __add__(self, other):
        return _ops.Add.apply(self, _operand(other, self))

    def __radd__(self, other):
        return _ops.Add.apply(_operand(other, self), self)

    def __sub__(self, other):
        return _ops.Sub.apply(self, _operand(other, self))

    def __rsub__(self, other):
        return _ops.Sub.apply(_operand(other, self), self)

    def __mul__(self, other):
        return _ops.Mul.apply(self, _operand(other, self))

    def __rmul__(self, other):
        return _ops.Mul.apply(_operand(other, self), self)

    def __truediv__(self, other):
        return _ops.Div.apply(self, _operand(other, self))

    def __rtruediv__(self, other):
        return _ops.Div.apply(_operand(other, self), self)

    def __pow__(self, other):
        return _ops.Pow.apply(self, _operand(other, self))

    def __rpow__(self, other):
        return _ops.Pow.apply(_operand(other, self), self)

    def __neg__(self):
        return _ops.Neg.apply(self)

    def __matmul__(self, other):
        return _ops.MatMul.apply(self, _operand(other, self, scalars=False))

    def __rmatmul__(self, other):
        return _ops.MatMul.apply(_operand(other, self, scalars=False), self)

    def __getitem__(self, index):
        return _ops.GetItem.apply(self, index=arguments.index(index, self))

    # comparisons: tensors of booleans, never on the tape
    def _compare(self, other, name):
        other = _operand(other, self)
        if isinstance(other, Tensor):
            if other.backend is not self.backend:
                raise _device_mismatch(name, (self, other))
            other = other._data
        return Tensor._wrap(getattr(self.backend.xp, name)(self._data, other), self.backend)

    def __lt__(self, other):
        return self._compare(other, "less")

    def __le__(self, other):
        return self._compare(other, "less_equal")

    def __gt__(self, other):
        return self._compare(other, "greater")

    def __ge__(self, other):
        return self._compare(other, "greater_equal")

    def __eq__(self, other):  # type: ignore[override]
        return self._compare(other, "equal")

    def __ne__(self, other):  # type: ignore[override]
        return self._compare(other, "not_equal")

    # -- in place: change the values, bump the version, record nothing on the tape -----------------------------------
    def _inplace(self, name: str, new: Any) -> Tensor:
        """Write ``new`` (an array) into this tensor's array and bump its version (the body of every ``op_``)."""
        if self.requires_grad and _grad_enabled:
            kind = "a leaf" if self._ctx is None else "an op's output"
            raise RuntimeError(
                f"{name}: this tensor ({kind}, shape {self.shape}) requires grad, and in-place changes are not "
                "recorded on the tape. Wrap a parameter update in `with no_grad():`, or compute out of place "
                f"(e.g. y = x + 1 instead of x.add_(1))."
            )
        xp = self.backend.xp
        if tuple(new.shape) != self.shape:
            raise RuntimeError(f"{name}: the result has shape {tuple(new.shape)}, which does not fit in place into "
                               f"this tensor of shape {self.shape}")
        if self.dtype.kind != "f" and self.backend.numpy_dtype(new.dtype).kind == "f":
            raise TypeError(f"{name}: a floating result can't be written in place into a tensor of dtype {self.dtype}")
        if new.dtype != self._data.dtype:
            new = xp.astype(new, self._data.dtype)
        self._data[...] = new
        self._bump_version()
        return self

    def _inplace_operand(self, name: str, other: Any) -> Any:
        if isinstance(other, Tensor):
            if other.backend is not self.backend:
                raise _device_mismatch(name, (self, other))
            return other._data
        other = _operand(other, self)
        return other._data if isinstance(other, Tensor) else other

    def add_(self, other: Any, alpha: float = 1) -> Tensor:
        """In place: self ← self + alpha·other (``torch.Tensor.add_``); bumps the version."""
        other = self._inplace_operand("add_", other)
        return self._inplace("add_", self._data + (other * alpha if alpha != 1 else other))

    def sub_(self, other: Any, alpha: float = 1) -> Tensor:
        """In place: self ← self − alpha·other; bumps the version."""
        other = self._inplace_operand("sub_", other)
        return self._inplace("sub_", self._data - (other * alpha if alpha != 1 else other))

    def mul_(self, other: Any) -> Tensor:
        """In place: self ← self · other; bumps the version."""
        return self._inplace("mul_", self._data * self._inplace_operand("mul_", other))

    def div_(self, other: Any) -> Tensor:
        """In place: self ← self / other; bumps the version."""
        return self._inplace("div_", self._data / self._inplace_operand("div_", other))

    def clamp_(self, min: Any = None, max: Any = None) -> Tensor:  # noqa: A002 - PyTorch's names
        """In place: clamp to [min, max] (Python numbers); bumps the version."""
        for name, bound in (("min", min), ("max", max)):
            if bound is not None and not isinstance(bound, (int, float)):
                raise TypeError(f"clamp_: {name} must be a Python number or None, got {type(bound).__name__}")
        if min is not None and max is not None and min > max:
            raise ValueError(f"clamp_: min ({min}) is greater than max ({max})")
        return self._inplace("clamp_", self.backend.xp.clip(self._data, min, max))

    clip_ = clamp_

    def fill_(self, value: float) -> Tensor:
        """In place: every element ← value; bumps the version."""
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"fill_: value must be a Python number, got {type(value).__name__}")
        return self._inplace("fill_", self.backend.xp.full_like(self._data, value))

    def zero_(self) -> Tensor:
        """In place: every element ← 0; bumps the version."""
        return self.fill_(0)

    def copy_(self, src: Any) -> Tensor:
        """In place: copy ``src``'s values (broadcast to this shape, cast to this dtype); bumps the version."""
        xp = self.backend.xp
        src = self._inplace_operand("copy_", src)
        if not hasattr(src, "shape"):
            return self.fill_(src)
        try:
            src = xp.broadcast_to(src, self._data.shape)
        except ValueError as exc:
            raise RuntimeError(f"copy_: source of shape {tuple(src.shape)} does not broadcast to this tensor's shape "
                               f"{self.shape}") from exc
        return self._inplace("copy_", src)

    # -- math ----------------------------------------------------------------------------------------------------
    def exp(self):
        return _ops.Exp.apply(self)

    def log(self):
        return _ops.Log.apply(self)

    def sqrt(self):
        return _ops.Sqrt.apply(self)

    def tanh(self):
        return _ops.Tanh.apply(self)

    def sigmoid(self):
        return _ops.Sigmoid.apply(self)

    def relu(self):
        return _ops.Relu.apply(self)

    def abs(self):
        return _ops.Abs.apply(self)

    def clip(self, min=None, max=None):  # noqa: A002 - PyTorch's names
        """Clamp to [min, max] (Python numbers; for tensor bounds use ``maximum``/``minimum``); the gradient passes
        where min <= x <= max."""
        for name, bound in (("min", min), ("max", max)):
            if bound is not None and not isinstance(bound, (int, float)):
                raise TypeError(f"clip: {name} must be a Python number or None, got {type(bound).__name__}; "
                                "for tensor bounds use maximum()/minimum()")
        return _ops.Clip.apply(self, min=min, max=max)

    clamp = clip

    def maximum(self, other):
        return _ops.Maximum.apply(self, _operand(other, self))

    def minimum(self, other):
        return _ops.Minimum.apply(self, _operand(other, self))

    # -- reductions ----------------------------------------------------------------------------------------------
    def sum(self, axis=None, keepdims=False):
        return _ops.Sum.apply(self, axis=arguments.axes(axis, self.ndim), keepdims=keepdims)

    def mean(self, axis=None, keepdims=False):
        return _ops.Mean.apply(self, axis=arguments.axes(axis, self.ndim), keepdims=keepdims)

    def max(self, axis=None, keepdims=False):
        """Largest value; tied maxima share the gradient equally."""
        return _ops.Max.apply(self, axis=arguments.axes(axis, self.ndim), keepdims=keepdims)

    def min(self, axis=None, keepdims=False):
        """Smallest value; tied minima share the gradient equally."""
        return _ops.Min.apply(self, axis=arguments.axes(axis, self.ndim), keepdims=keepdims)

    def var(self, axis=None, keepdims=False, correction=1):
        """Variance with PyTorch's default ``correction=1`` (unbiased); ``correction=0`` is the biased variance."""
        return _ops.Var.apply(self, axis=arguments.axes(axis, self.ndim), keepdims=keepdims, correction=correction)

    # -- shape ---------------------------------------------------------------------------------------------------
    def reshape(self, *shape):
        return _ops.Reshape.apply(self, shape=arguments.shape_arg(shape, self))

    view = reshape

    def permute(self, *dims):
        dims = tuple(dims[0]) if len(dims) == 1 and isinstance(dims[0], (tuple, list)) else dims
        return _ops.Permute.apply(self, dims=arguments.permutation(dims, self.ndim))

    def transpose(self, dim0=-2, dim1=-1):
        """Swap two axes (default: the last two, as ``.T`` on a matrix)."""
        if self.ndim < 2:
            return self
        for d in (dim0, dim1):
            if not -self.ndim <= d < self.ndim:
                raise ValueError(f"transpose: axis {d} is out of range for a tensor of shape {self.shape}")
        dims = list(range(self.ndim))
        dims[dim0], dims[dim1] = dims[dim1], dims[dim0]
        return self.permute(dims)

    @property
    def T(self):
        return self.permute(tuple(reversed(range(self.ndim))))

    def expand(self, *shape):
        shape = tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
        return _ops.Expand.apply(self, shape=arguments.expand_shape(shape, self))

    def flatten(self, start_dim=0, end_dim=-1):
        if self.ndim == 0:
            return self.reshape(1)
        start, end = start_dim % self.ndim, end_dim % self.ndim
        shape = self.shape
        return self.reshape(shape[:start] + (int(np.prod(shape[start : end + 1])),) + shape[end + 1 :])

    def unsqueeze(self, dim):
        if not -(self.ndim + 1) <= dim <= self.ndim:
            raise ValueError(f"unsqueeze: axis {dim} is out of range for a tensor of shape {self.shape}")
        dim = dim % (self.ndim + 1)
        return self.reshape(self.shape[:dim] + (1,) + self.shape[dim:])

    def squeeze(self, dim=None):
        if dim is None:
            return self.reshape(tuple(n for n in self.shape if n != 1))
        if not -max(self.ndim, 1) <= dim < max(self.ndim, 1):
            raise ValueError(f"squeeze: axis {dim} is out of range for a tensor of shape {self.shape}")
        if self.ndim == 0:
            return self
        dim = dim % self.ndim
        if self.shape[dim] != 1:
            return self
        return self.reshape(self.shape[:dim] + self.shape[dim + 1 :])

    def pad(self, pad_width):
        """Zero-pad; ``pad_width`` is ``((before, after), ...)`` per axis, as ``numpy.pad``."""
        return _ops.Pad.apply(self, pad_width=arguments.pad_width(pad_width, self.ndim))

    def split(self, split_size_or_sections, axis=0):
        """Split along ``axis`` into chunks of ``split_size`` (an int) or of the given sizes (a list)."""
        return split(self, split_size_or_sections, axis)

    def matmul(self, other):
        return self @ other


# ----------------------------------------------------------------------------------------------------------------
# functions of several tensors
# ----------------------------------------------------------------------------------------------------------------
def concatenate(tensors: Sequence[Tensor], axis: int = 0) -> Tensor:
    """Join tensors along an existing axis (``torch.cat``)."""
    return _ops.Concatenate.apply(*tensors, axis=axis)


cat = concatenate


def stack(tensors: Sequence[Tensor], axis: int = 0) -> Tensor:
    """Join tensors along a new axis."""
    tensors = list(tensors)
    if not tensors:
        raise ValueError("stack: expected a non-empty sequence of tensors")
    axis = axis % (tensors[0].ndim + 1)
    return concatenate([t.unsqueeze(axis) for t in tensors], axis=axis)


def split(tensor: Tensor, split_size_or_sections: int | Sequence[int], axis: int = 0) -> tuple[Tensor, ...]:
    """Split into views along ``axis``; each piece's backward writes into its slice of the input's gradient."""
    n = tensor.shape[axis]
    if isinstance(split_size_or_sections, int):
        if split_size_or_sections <= 0:
            raise ValueError(f"split: split_size must be positive, got {split_size_or_sections}")
        sizes = [min(split_size_or_sections, n - s) for s in range(0, n, split_size_or_sections)]
    else:
        sizes = list(split_size_or_sections)
        if sum(sizes) != n:
            raise ValueError(f"split: sections {sizes} do not add up to the size {n} of axis {axis} of shape {tensor.shape}")
    axis = axis % tensor.ndim
    pieces, start = [], 0
    for size in sizes:
        index = (slice(None),) * axis + (slice(start, start + size),) + (Ellipsis,)
        pieces.append(tensor[index])
        start += size
    return tuple(pieces)


def where(condition: Tensor, x: Any, y: Any) -> Tensor:
    """Elementwise ``x if condition else y`` (``condition`` a boolean tensor); the gradient flows to the chosen branch.

    ``x`` and ``y`` may be tensors or Python numbers; with two numbers the result is a float32 (or int64) tensor.
    """
    if not isinstance(condition, Tensor):
        like = x if isinstance(x, Tensor) else y
        condition = Tensor(condition, device=like.device if isinstance(like, Tensor) else None)
    if condition.dtype != np.bool_:
        raise TypeError(f"where: condition must be a boolean tensor, got dtype {condition.dtype}")
    if not isinstance(x, Tensor) and not isinstance(y, Tensor):
        x = Tensor(x, device=condition.device)
    like = x if isinstance(x, Tensor) else y
    return _ops.Where.apply(condition, _operand(x, like), _operand(y, like))


def maximum(a: Any, b: Any) -> Tensor:
    """Elementwise maximum; at ties each input gets half the gradient."""
    like = a if isinstance(a, Tensor) else b
    return _ops.Maximum.apply(_operand(a, like), _operand(b, like))


def minimum(a: Any, b: Any) -> Tensor:
    """Elementwise minimum; at ties each input gets half the gradient."""
    like = a if isinstance(a, Tensor) else b
    return _ops.Minimum.apply(_operand(a, like), _operand(b, like))


# ----------------------------------------------------------------------------------------------------------------
# helpers of the tape
# ----------------------------------------------------------------------------------------------------------------
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


def _freed_error(ctx: Function) -> RuntimeError:
    return RuntimeError(
        f"Trying to backward through {type(ctx).__name__} a second time, but the graph behind it was freed by the "
        "first backward. Call the first backward with retain_graph=True if you need to backward through it twice."
    )


def _device_mismatch(op: str, args: tuple) -> RuntimeError:
    devices = sorted({a.device for a in args if isinstance(a, Tensor)})
    return RuntimeError(
        f"{op}: expected all tensors on one device, got tensors on {' and '.join(devices)}. Move them with .to(device)."
    )


def _library_error(op: str, arrays: list, exc: ValueError) -> ValueError:
    inputs = " and ".join(f"{tuple(a.shape)} {a.dtype}" if hasattr(a, "shape") else repr(a) for a in arrays)
    return ValueError(f"{op}: cannot apply to inputs {inputs}: {exc}")


def _one_per_input(ctx: Function, grads: tuple) -> tuple:
    """Match ``backward``'s gradients to ``forward``'s inputs: trailing ones for non-tensors may be left out."""
    n = len(ctx.parents)
    if len(grads) < n and not any(ctx.needs_input_grad[len(grads) :]):
        return grads + (None,) * (n - len(grads))
    if len(grads) > n and all(g is None for g in grads[n:]):
        return grads[:n]
    raise RuntimeError(f"{type(ctx).__name__}.backward returned {len(grads)} gradient(s) for {n} input(s) of forward")


# -- version counters (in-place safety) ----------------------------------------------------------------------------
def _shared_cell(tensor: Any) -> list[int] | None:
    """The version counter of ``tensor``, created if needed, to share with a view of it."""
    if not isinstance(tensor, Tensor):
        return None
    cell = tensor._version_cell
    if cell is None:
        cell = tensor._version_cell = [0]  # grows to [version, when, history] at the first change
    return cell


def _check_versions(ctx: Function, node: Tensor) -> None:
    """Raise if an input (or the output ``node``) whose array ``ctx`` saved was changed in place after ``ctx`` ran."""
    saved = {id(v) for v in (ctx._saved or ())}
    if not saved:
        return
    for k, t in itertools.chain(((-1, node),), enumerate(ctx.parents)):
        cell = t._version_cell if isinstance(t, Tensor) else None
        if cell is None or len(cell) == 1 or cell[1] < ctx.sequence:
            continue  # never changed, or not since the op ran
        if id(t._data) not in saved and cell[3] not in saved:
            continue  # changed, but the op did not save it (nor the array a .data assignment replaced)
        now = cell[0]
        expected = f"version {now - 1}" if cell[2] < ctx.sequence else f"a version <= {now - 2}"
        what = "output 0" if k < 0 else f"input {k}"
        raise InplaceModificationError(
            f"one of the variables needed for gradient computation has been modified by an inplace operation: "
            f"[{type(ctx).__name__} {what} of shape {t.shape}, dtype {t.dtype}] is at version {now}; expected "
            f"{expected}. It was saved by the forward and changed in place before this backward (e.g. "
            "optimizer.step() or an in-place op like add_() between the forward and loss.backward()): run "
            "backward before changing it, or compute a new tensor out of place." + _created_hint(ctx)
        )


# -- anomaly detection ----------------------------------------------------------------------------------------------
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def _user_stack(limit: int = 8) -> list:
    """The caller's stack without the frames inside tinygrad_edu, innermost last (at most ``limit`` frames)."""
    frames = [f for f in traceback.extract_stack() if not os.path.abspath(f.filename).startswith(_PACKAGE_DIR)]
    return frames[-limit:]


def _site(ctx: Function) -> str:
    stack = ctx._created_at
    if not stack:
        return "an unknown place (run the forward under detect_anomaly() to record it)"
    f = stack[-1]
    return f"{os.path.basename(f.filename)}:{f.lineno} in {f.name}"


def _created_hint(ctx: Function) -> str:
    return f" The op was created at {_site(ctx)}." if ctx._created_at else ""


def _trace(ctx: Function) -> str:
    if not ctx._created_at:
        return ""
    return "\nTraceback of the forward call that created the op (most recent call last):\n" + "".join(
        traceback.format_list(ctx._created_at)).rstrip()


def _nonfinite(ctx: Function, array: Any) -> str | None:
    """"nan", "inf" or None: what a floating array holds that is not finite (one host bool per check)."""
    if not hasattr(array, "dtype") or ctx.backend.numpy_dtype(array.dtype).kind != "f":
        return None
    xp, to_host = ctx.xp, ctx.backend.to_host
    if bool(to_host(xp.all(xp.isfinite(array)))):
        return None
    return "nan" if bool(to_host(xp.any(xp.isnan(array)))) else "inf"


def _describe(ctx: Function, arrays: Any) -> str:
    """"(3, 2) float32, (2,) float32": shapes and (NumPy) dtypes of the arrays among ``arrays``."""
    described = [f"{tuple(a.shape)} {ctx.backend.numpy_dtype(a.dtype)}" for a in arrays if hasattr(a, "dtype")]
    return ", ".join(described) or "none"


def _check_forward(name: str, ctx: Function, arrays: list, out: Any) -> None:
    bad = _nonfinite(ctx, out)
    if bad is None:
        return
    inputs_bad = any(_nonfinite(ctx, a) for a in arrays)
    raise AnomalyError(
        f"Function '{name}' returned {bad} values in its forward output ({_describe(ctx, [out])}) "
        f"from inputs {_describe(ctx, arrays)}" + (" (some inputs were already not finite)" if inputs_bad else
                                              " (all inputs finite)")
        + f"; created at {_site(ctx)}" + _trace(ctx)
    )


def _check_backward(ctx: Function, grads: tuple) -> None:
    for i, g in enumerate(grads):
        bad = None if g is None else _nonfinite(ctx, g)
        if bad is not None:
            raise AnomalyError(
                f"Function '{type(ctx).__name__}' returned {bad} values in its {i}th output (the gradient for input "
                f"{i}: {_describe(ctx, [g])}) of backward; created at {_site(ctx)}" + _trace(ctx)
            )


def _backend_of(data: Any) -> Backend | None:
    """The backend that owns a device array (e.g. a CuPy array), None for host data."""
    if isinstance(data, (np.ndarray, np.generic, list, tuple, int, float, bool)):
        return None
    module = type(data).__module__.split(".")[0]
    if module == "cupy":
        return get_backend(f"cuda:{data.device.id}")
    if module == "array_api_strict":
        return get_backend("strict")
    return None


def _host_array(data: Any, dtype: Any) -> np.ndarray:
    """Host NumPy array for ``data``, with PyTorch's dtype rules: Python floats -> float32, arrays keep theirs."""
    if dtype is not None:
        return np.array(data, dtype=np.dtype(dtype), copy=True, order="K")
    array = np.array(data, copy=True, order="K")
    if not isinstance(data, (np.ndarray, np.generic)) and array.dtype == np.float64:
        array = array.astype(np.float32)
    if array.dtype == object or array.dtype.kind in "USV":
        raise TypeError(f"Tensor: cannot make a tensor from {type(data).__name__} with dtype {array.dtype}")
    return array


def _operand(value: Any, like: Tensor, scalars: bool = True) -> Any:
    """The other operand of a binary op: Tensors and Python numbers pass through, arrays become tensors."""
    if isinstance(value, Tensor):
        return value
    if scalars and isinstance(value, np.generic) and value.ndim == 0:
        value = value.item()  # a NumPy scalar acts as the Python number it holds
    if scalars and isinstance(value, (int, float, bool)):
        return value
    return Tensor(value, device=like.device)


from tinygrad_edu import ops as _ops  # noqa: E402  (the ops subclass Function, defined above)
