"""``Tensor``: an n-dimensional array on a device, and a node of the tape.

This file is the surface a user calls: construction and conversion, the operators (generated from the tables at the
end), in-place updates, math, reductions and shapes. A method that computes checks its arguments here and then
applies one op of ``tinygrad_edu.ops``, whose ``forward`` and ``backward`` are the math alone. The tape itself (the
``Function`` base class, the backward walk, version counters, anomaly detection) is ``tinygrad_edu.autograd``.
"""

from __future__ import annotations

import math
import operator
from typing import Any

import numpy as np

from tinygrad_edu import arguments, dtypes, ops
from tinygrad_edu.autograd import engine, versions
from tinygrad_edu.autograd.function import Function, InputError, device_mismatch
from tinygrad_edu.backend import Backend, backend_of, get_backend, get_default_device
from tinygrad_edu.ops.matmul import batch_shape


class Tensor:
    """An n-dimensional array on a device, and the node of the tape that produced it.

    ``Tensor(data, requires_grad=False, dtype=None, device=None)`` copies ``data`` (a list, scalar, NumPy array,
    backend array or Tensor) onto ``device`` (default: the default device). Python floats become float32, Python
    ints int64; arrays keep their dtype, as in ``torch.tensor``.
    """

    __slots__ = ("_data", "backend", "requires_grad", "grad", "_ctx", "_versions", "__weakref__")
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
            backend = backend_of(data) or get_backend(get_default_device())
        if backend.owns(host_or_array):
            array = backend.xp.asarray(host_or_array, copy=True)
            if dtype is not None:
                array = backend.xp.astype(array, backend.dtype(np.dtype(dtype)))
        else:
            array = backend.asarray(dtypes.host_array(host_or_array, dtype))
        self._data, self._versions, self.backend = array, None, backend
        self.grad: Tensor | None = None
        self._ctx: Function | None = None
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    @staticmethod
    def _wrap(array: Any, backend: Backend, requires_grad: bool = False) -> Tensor:
        """Wrap an array of ``backend`` without copying."""
        t = Tensor.__new__(Tensor)
        t._data, t.backend, t.requires_grad, t.grad, t._ctx, t._versions = array, backend, requires_grad, None, None, None
        return t

    # -- the values, and their version (see tinygrad_edu.autograd.versions) ------------------------------------------
    def _set_data(self, array: Any) -> None:
        if getattr(self, "_versions", False) is False:  # a subclass's __init__ (Parameter) sets the first value
            self._data, self._versions = array, None
            return
        replaced, self._data = self._data, array
        versions.bump(self, replaced)  # an op may have saved the replaced array: remember which one it was

    data = property(operator.attrgetter("_data"), _set_data, doc="""The backend array holding the values.

        Assigning a new array counts as an in-place change (the version goes up): a pending backward that saved
        this tensor then refuses to run (see ``InplaceModificationError``).""")

    @property
    def _version(self) -> int:
        """How many times the values were changed in place (PyTorch's ``Tensor._version``)."""
        return 0 if self._versions is None else self._versions.version

    def _bump_version(self) -> None:
        """Record an in-place change of the values: call it after writing into ``.data`` (optimizers, init)."""
        versions.bump(self)

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
            raise TypeError(f"only floating-point tensors can require grad; this tensor has dtype {self.dtype}. "
                            "Convert it first, e.g. t.float().")
        self.requires_grad = bool(requires_grad)
        return self

    # -- conversion ----------------------------------------------------------------------------------------------
    def numpy(self) -> np.ndarray:
        """The values as a NumPy array in host memory (a copy for device tensors)."""
        return self.backend.to_host(self._data)

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        """``np.asarray(t)`` for a CPU tensor; a device tensor refuses, since the copy to the host must be explicit."""
        if self.backend.name != "cpu":
            raise TypeError(f"can't convert a tensor on device {self.device!r} to a NumPy array implicitly: "
                            "call .numpy() to copy it to the host")
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
        t._versions = versions.shared(self)
        return t

    def to(self, device: str | None = None, dtype: Any = None) -> Tensor:
        """This tensor on ``device`` and/or of ``dtype`` (differentiable; returns ``self`` if nothing changes)."""
        out = self
        if device is not None and get_backend(device) is not self.backend:
            out = ops.ToDevice.apply(out, get_backend(device))
        return out if dtype is None else out.astype(dtype)

    def astype(self, dtype: Any) -> Tensor:
        """Cast to ``dtype``: differentiable between floating dtypes (the gradient is cast back); a cast to an integer
        or boolean dtype has no gradient, as in PyTorch."""
        dtype = np.dtype(dtype)
        if dtype == self.dtype:
            return self
        if dtype.kind != "f":
            return Tensor._wrap(self.backend.xp.astype(self._data, self.backend.dtype(dtype)), self.backend)
        return ops.Cast.apply(self, dtype)

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
        if grad is None:
            if self.numel() != 1:
                raise RuntimeError(
                    f"backward(): grad can be created implicitly only for one-element outputs; this tensor has shape "
                    f"{self.shape}. Pass grad= (an array or Tensor of that shape), or reduce it first (e.g. .sum())."
                )
            upstream = self.backend.xp.ones_like(self._data)
        else:
            if isinstance(grad, Tensor) and grad.backend is not self.backend:
                raise RuntimeError(f"backward(): grad is on {grad.device} but the tensor is on {self.device}")
            upstream = (self.backend.xp.asarray(grad._data, copy=True) if isinstance(grad, Tensor)
                        else self.backend.asarray(grad, self.dtype))
            if tuple(upstream.shape) != self.shape:
                raise ValueError(f"backward(): grad has shape {tuple(upstream.shape)}, the tensor has shape {self.shape}")
        if self._ctx is None:  # a leaf: its gradient is the upstream gradient
            self.grad = Tensor._wrap(upstream if self.grad is None else self.grad._data + upstream, self.backend)
            return
        engine.backward(self, upstream, retain_graph)

    # -- operators (the arithmetic ones are generated from _BINARY_OPS below) -------------------------------------
    def __neg__(self) -> Tensor:
        if self.dtype == np.bool_:
            raise TypeError("Neg: negation of a bool tensor is not supported; use logical_not (~) or cast first")
        return ops.Neg.apply(self)

    def __matmul__(self, other: Any) -> Tensor:
        return _matmul(self, _operand(other, self, scalars=False))

    def __rmatmul__(self, other: Any) -> Tensor:
        return _matmul(_operand(other, self, scalars=False), self)

    def matmul(self, other: Any) -> Tensor:
        return self @ other

    def __getitem__(self, index: Any) -> Tensor:
        return ops.GetItem.apply(self, index=arguments.index(index, self))

    def _compare(self, other: Any, name: str) -> Tensor:
        """A tensor of booleans, never on the tape (``<``, ``==``, ... from _COMPARISONS below)."""
        other = _operand(other, self)
        if isinstance(other, Tensor):
            if other.backend is not self.backend:
                raise device_mismatch(name, (self, other))
            other = other._data
        return Tensor._wrap(getattr(self.backend.xp, name)(self._data, other), self.backend)

    # -- in place: change the values, bump the version, record nothing on the tape -----------------------------------
    def _inplace(self, name: str, new: Any) -> Tensor:
        """Write ``new`` (an array) into this tensor's array and bump its version (the body of every ``op_``)."""
        if self.requires_grad and engine.grad_enabled:
            kind = "a leaf" if self._ctx is None else "an op's output"
            raise RuntimeError(
                f"{name}: this tensor ({kind}, shape {self.shape}) requires grad, and in-place changes are not "
                "recorded on the tape. Wrap a parameter update in `with no_grad():`, or compute out of place "
                f"(e.g. y = x + 1 instead of x.add_(1))."
            )
        if tuple(new.shape) != self.shape:
            raise RuntimeError(f"{name}: the result has shape {tuple(new.shape)}, which does not fit in place into "
                               f"this tensor of shape {self.shape}")
        if self.dtype.kind != "f" and self.backend.numpy_dtype(new.dtype).kind == "f":
            raise TypeError(f"{name}: a floating result can't be written in place into a tensor of dtype {self.dtype}")
        self._data[...] = new if new.dtype == self._data.dtype else self.backend.xp.astype(new, self._data.dtype)
        versions.bump(self)
        return self

    def _inplace_operand(self, name: str, other: Any) -> Any:
        if isinstance(other, Tensor):
            if other.backend is not self.backend:
                raise device_mismatch(name, (self, other))
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
        _check_bounds("clamp_", min, max)
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
        src = self._inplace_operand("copy_", src)
        if not hasattr(src, "shape"):
            return self.fill_(src)
        try:
            src = self.backend.xp.broadcast_to(src, self._data.shape)
        except ValueError as exc:
            raise RuntimeError(f"copy_: source of shape {tuple(src.shape)} does not broadcast to this tensor's shape "
                               f"{self.shape}") from exc
        return self._inplace("copy_", src)

    # -- math (the one-input functions are generated from _UNARY_OPS below) ---------------------------------------
    def clip(self, min: Any = None, max: Any = None) -> Tensor:  # noqa: A002 - PyTorch's names
        """Clamp to [min, max] (Python numbers; for tensor bounds use ``maximum``/``minimum``); the gradient passes
        where min <= x <= max."""
        _check_bounds("clip", min, max, hint="; for tensor bounds use maximum()/minimum()")
        return ops.Clip.apply(self, min=min, max=max)

    clamp = clip

    def maximum(self, other: Any) -> Tensor:
        return promoted(ops.Maximum, self, _operand(other, self))

    def minimum(self, other: Any) -> Tensor:
        return promoted(ops.Minimum, self, _operand(other, self))

    # -- reductions ----------------------------------------------------------------------------------------------
    def sum(self, axis: Any = None, keepdims: bool = False) -> Tensor:
        return ops.Sum.apply(self, axis=arguments.axes(axis, self.ndim), keepdims=keepdims)

    def mean(self, axis: Any = None, keepdims: bool = False) -> Tensor:
        return ops.Mean.apply(self, axis=arguments.axes(axis, self.ndim), keepdims=keepdims)

    def max(self, axis: Any = None, keepdims: bool = False) -> Tensor:
        """Largest value; tied maxima share the gradient equally."""
        return self._extremum(ops.Max, axis, keepdims)

    def min(self, axis: Any = None, keepdims: bool = False) -> Tensor:
        """Smallest value; tied minima share the gradient equally."""
        return self._extremum(ops.Min, axis, keepdims)

    def _extremum(self, op: type[Function], axis: Any, keepdims: bool) -> Tensor:
        if self.numel() == 0:
            raise InputError(f"{op.__name__}: cannot reduce an empty tensor of shape {self.shape}")
        return op.apply(self, axis=arguments.axes(axis, self.ndim), keepdims=keepdims)

    def var(self, axis: Any = None, keepdims: bool = False, correction: int = 1) -> Tensor:
        """Variance with PyTorch's default ``correction=1`` (unbiased); ``correction=0`` is the biased variance."""
        if self.dtype.kind != "f":
            raise TypeError(f"Var: needs a floating-point tensor, got dtype {self.dtype}")
        return ops.Var.apply(self, axis=arguments.axes(axis, self.ndim), keepdims=keepdims, correction=correction)

    # -- shape ---------------------------------------------------------------------------------------------------
    def reshape(self, *shape: Any) -> Tensor:
        return ops.Reshape.apply(self, shape=arguments.shape_arg(shape, self))

    view = reshape

    def permute(self, *dims: Any) -> Tensor:
        return ops.Permute.apply(self, dims=arguments.permutation(arguments.varargs(dims), self.ndim))

    def transpose(self, dim0: int = -2, dim1: int = -1) -> Tensor:
        """Swap two axes (default: the last two, as ``.T`` on a matrix)."""
        return self if self.ndim < 2 else self.permute(arguments.swapped(dim0, dim1, self.shape))

    @property
    def T(self) -> Tensor:
        return self.permute(tuple(reversed(range(self.ndim))))

    def expand(self, *shape: Any) -> Tensor:
        return ops.Expand.apply(self, shape=arguments.expand_shape(arguments.varargs(shape), self))

    def flatten(self, start_dim: int = 0, end_dim: int = -1) -> Tensor:
        return self.reshape(arguments.flattened(start_dim, end_dim, self.shape))

    def unsqueeze(self, dim: int) -> Tensor:
        return self.reshape(arguments.unsqueezed(dim, self.shape))

    def squeeze(self, dim: int | None = None) -> Tensor:
        return self.reshape(arguments.squeezed(dim, self.shape))

    def pad(self, pad_width: Any) -> Tensor:
        """Zero-pad; ``pad_width`` is ``((before, after), ...)`` per axis, as ``numpy.pad``."""
        return ops.Pad.apply(self, pad_width=arguments.pad_width(pad_width, self.ndim))

    def split(self, split_size_or_sections: int | list[int], axis: int = 0) -> tuple[Tensor, ...]:
        """Split into views along ``axis``, chunks of ``split_size`` (an int) or of the given sizes (a list); each
        piece's backward writes into its slice of the input's gradient."""
        return tuple(self[index] for index in arguments.split_indices(split_size_or_sections, axis, self.shape))


# -- the operators, from tables ---------------------------------------------------------------------------------------
#: ``a + b`` is ``Add.apply(a, b)`` and ``2 + a`` is ``Add.apply(2, a)``, after dtype promotion (``promoted``).
_BINARY_OPS = {"add": ops.Add, "sub": ops.Sub, "mul": ops.Mul, "truediv": ops.Div, "pow": ops.Pow}
#: ``t.exp()`` is ``Exp.apply(t)``.
_UNARY_OPS = {"exp": ops.Exp, "log": ops.Log, "sqrt": ops.Sqrt, "tanh": ops.Tanh, "sigmoid": ops.Sigmoid,
              "relu": ops.Relu, "abs": ops.Abs}
#: ``a < b`` is a boolean tensor from ``xp.less``; comparisons are not differentiable and record nothing.
_COMPARISONS = {"lt": "less", "le": "less_equal", "gt": "greater", "ge": "greater_equal", "eq": "equal",
                "ne": "not_equal"}


def _binary(op: type[Function], reflected: bool) -> Any:
    def operator_method(self: Tensor, other: Any) -> Tensor:
        other = _operand(other, self)
        return promoted(op, other, self) if reflected else promoted(op, self, other)
    return operator_method


def _unary(op: type[Function]) -> Any:
    def method(self: Tensor) -> Tensor:
        return op.apply(self)
    method.__doc__ = (op.__doc__ or "").split("\n")[0]
    return method


def _comparison(name: str) -> Any:
    return lambda self, other: self._compare(other, name)


for _name, _op in _BINARY_OPS.items():
    setattr(Tensor, f"__{_name}__", _binary(_op, reflected=False))
    setattr(Tensor, f"__r{_name}__", _binary(_op, reflected=True))
for _name, _op in _UNARY_OPS.items():
    setattr(Tensor, _name, _unary(_op))
for _name, _xp_name in _COMPARISONS.items():
    setattr(Tensor, f"__{_name}__", _comparison(_xp_name))
engine.Tensor = Tensor  # the tape wraps op outputs and gradients as Tensors (see autograd/engine.py)


# -- helpers of the surface -------------------------------------------------------------------------------------------
def promoted(op: type[Function], *operands: Any, **kwargs: Any) -> Tensor:
    """``op.apply(*operands)`` with the operands converted to one dtype by the promotion rule (``dtypes.py``)."""
    if len(operands) == 2 and dtypes.same_floating(*operands):  # the common case, kept fast
        return op.apply(*operands, **kwargs)
    converted, compute, out = dtypes.promote(op.__name__, operands)
    result = op.apply(*converted, **kwargs)
    return result if compute == out else result.astype(out)


def _matmul(a: Tensor, b: Tensor) -> Tensor:
    """``a @ b``, its shapes checked here (NumPy's matmul semantics; see ``ops/matmul.py``)."""
    if a.ndim == 0 or b.ndim == 0:
        raise InputError("MatMul: both operands must be tensors with at least one dimension; use * for scalars")
    if (a.shape[-1] != (b.shape[0] if b.ndim == 1 else b.shape[-2])
            or batch_shape(a.shape[:-2], b.shape[:-2]) is None):
        raise InputError(f"MatMul: shapes {a.shape} and {b.shape} are not aligned: "
                         f"(..., M, K) @ (..., K, N) needs equal K and broadcastable batch axes")
    return promoted(ops.MatMul, a, b)


def _check_bounds(name: str, low: Any, high: Any, hint: str = "") -> None:
    for which, bound in (("min", low), ("max", high)):
        if bound is not None and not isinstance(bound, (int, float)):
            raise TypeError(f"{name}: {which} must be a Python number or None, got {type(bound).__name__}{hint}")
    if low is not None and high is not None and low > high:
        raise InputError(f"{name}: min ({low}) is greater than max ({high})")


def _operand(value: Any, like: Tensor, scalars: bool = True) -> Any:
    """The other operand of a binary op: Tensors and Python numbers pass through, arrays become tensors."""
    if isinstance(value, Tensor):
        return value
    if scalars and isinstance(value, np.generic) and value.ndim == 0:
        value = value.item()  # a NumPy scalar acts as the Python number it holds
    if scalars and isinstance(value, (int, float, bool)):
        return value
    return Tensor(value, device=like.device)
