"""``Tensor``: an n-dimensional array on a device, and a node of the tape (which is ``tinygrad_edu.autograd``).

The surface a user calls, with PyTorch's names: construction and conversion, the operators (from the tables at the
end), in-place updates, math, reductions and shapes. A method checks its arguments (``arguments.py``), then applies
one op of ``tinygrad_edu.ops`` (the math alone); methods composed of several ops are in ``composite.py``.
"""

from __future__ import annotations

import math
import operator
from typing import Any

import numpy as np

from tinygrad_edu import arguments, composite, dtypes, ops
from tinygrad_edu.autograd import capture, engine, hooks, versions
from tinygrad_edu.autograd.function import Function, device_mismatch
from tinygrad_edu.backend import Backend, backend_of, get_backend, get_default_device


class Tensor:
    """An n-dimensional array on a device, and the node of the tape that produced it.

    ``Tensor(data, requires_grad=False, dtype=None, device=None)`` copies ``data`` (a list, scalar, NumPy array,
    backend array or Tensor) onto ``device`` (default: the default device). Python floats become float32, Python
    ints int64; arrays keep their dtype, as in ``torch.tensor``.
    """

    __slots__ = ("_data", "backend", "requires_grad", "_grad", "_ctx", "_versions", "__weakref__")
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
            dtypes.check_supported("Tensor", backend.numpy_dtype(host_or_array.dtype))
            array = backend.xp.asarray(host_or_array, copy=True)
            if dtype is not None:
                array = backend.xp.astype(array, backend.dtype(np.dtype(dtype)))
        else:
            array = backend.asarray(dtypes.host_array(host_or_array, dtype))
        self._data, self._versions, self.backend, self._grad = array, None, backend, None
        self._ctx: Function | None = None
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    @staticmethod
    def _wrap(array: Any, backend: Backend, requires_grad: bool = False) -> Tensor:
        """Wrap an array of ``backend`` without copying."""
        t = Tensor.__new__(Tensor)
        t._data, t.backend, t.requires_grad, t._grad, t._ctx, t._versions = array, backend, requires_grad, None, None, None
        return t

    # -- the values, and their version (see tinygrad_edu.autograd.versions) ------------------------------------------
    def _set_data(self, array: Any) -> None:
        if getattr(self, "_versions", False) is False:  # a subclass's __init__ (Parameter) sets the first value
            self._data, self._versions = array, None
            return
        replaced, self._data = self._data, array
        versions.bump(self, replaced)
        capture.changed_in_place(".data assignment")  # an op may have saved the replaced array: remember which one it was

    data = property(operator.attrgetter("_data"), _set_data, doc="""The backend array holding the values; assigning
        one is an in-place change: a pending backward that saved this tensor refuses to run (InplaceModificationError).""")

    @property
    def _version(self) -> int:
        """How many times the values were changed in place (PyTorch's ``Tensor._version``)."""
        return 0 if self._versions is None else self._versions.version

    #: ``t._bump_version()``: record an in-place change, after writing into ``.data`` (``versions.bump(t)`` itself)
    _bump_version = versions.bump

    # -- properties ----------------------------------------------------------------------------------------------
    shape = property(lambda self: tuple(self._data.shape), doc="The shape, a tuple of ints.")
    ndim = property(lambda self: self._data.ndim, doc="The number of dimensions.")

    def size(self, dim: int | None = None) -> tuple[int, ...] | int:
        """The shape, or the size of axis ``dim`` (PyTorch's ``size``; ``numel()`` counts the elements)."""
        return self.shape if dim is None else self.shape[dim]

    def numel(self) -> int:
        """The number of elements."""
        return math.prod(self._data.shape)

    def dim(self) -> int:
        """The number of dimensions (PyTorch's ``dim()``; ``ndim`` is the same as a property)."""
        return self._data.ndim

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

    def _set_grad(self, value: Tensor | None) -> None:
        self._grad = capture.assigned_grad(None if value is None else arguments.grad(self, value))

    grad = property(operator.attrgetter("_grad"), _set_grad, doc="""dL/d(self) after ``backward`` (leaves), or None;
        assigning refuses anything but None or a Tensor of this tensor's shape, dtype and device (as PyTorch).""")

    @property
    def grad_fn(self) -> Function | None:
        """The context of the op that produced this tensor, or None for a leaf."""
        return self._ctx

    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        """Set ``requires_grad`` in place; only floating-point tensors can require grad."""
        if requires_grad and not dtypes.is_floating(self.dtype):
            raise TypeError(f"only floating-point tensors can require grad; this tensor has dtype {self.dtype}. "
                            "Convert it first, e.g. t.float().")
        self.requires_grad = bool(requires_grad)
        return self

    # -- conversion ----------------------------------------------------------------------------------------------
    def numpy(self) -> np.ndarray:
        """The values as a NumPy array in host memory (a copy for device tensors)."""
        capture.read_on_host("numpy(), item(), tolist(), bool(), float() or int()")
        return self.backend.to_host(self._data)

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        """``np.asarray(t)`` for a CPU tensor; a device tensor refuses, since the copy to the host must be explicit."""
        capture.read_on_host("np.asarray(tensor)")
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
        """The values as nested Python lists of Python numbers (a number for a 0-d tensor)."""
        return self.numpy().tolist()

    def detach(self) -> Tensor:
        """A tensor sharing this one's data (and version counter), cut from the tape (no grad)."""
        t = Tensor._wrap(self._data, self.backend, False)
        t._versions = versions.shared(self)
        return t

    def to(self, device: Any = None, dtype: Any = None) -> Tensor:
        """This tensor on ``device`` and/or of ``dtype``: ``to("cuda")``, ``to(tg.float64)``, ``to("cpu", dtype)``,
        ``to(other)`` (other's device and dtype), as PyTorch. Differentiable; returns ``self`` if nothing changes."""
        device, dtype = arguments.device_and_dtype(device, dtype)
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
        if not self.backend.has_dtype(dtype):  # float16 and bfloat16 on "strict", bfloat16 on CUDA
            raise TypeError(f"astype: device {self.device!r} has no {dtype}")
        if not dtypes.is_floating(dtype):
            return Tensor._wrap(self.backend.xp.astype(self._data, self.backend.dtype(dtype)), self.backend)
        return ops.Cast.apply(self, dtype)

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
    register_hook, retain_grad = hooks.register, hooks.retain  # (PyTorch's; see tinygrad_edu.autograd.hooks)
    retains_grad = property(hooks.retains, doc="True after retain_grad() on a non-leaf.")
    def backward(self, grad: Any = None, retain_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) · grad into the ``.grad`` of every leaf that requires grad.

        ``grad`` (the upstream gradient) may be omitted only for a one-element tensor, where it is 1. The arrays the
        graph saved are freed afterwards unless ``retain_graph=True``.
        """
        if not self.requires_grad:
            raise RuntimeError("backward(): this tensor does not require grad and has no grad_fn")
        upstream = arguments.upstream(grad, self)
        capture.backward(self, grad, retain_graph)
        if self._ctx is None:  # a leaf: its gradient is the upstream gradient
            self._grad = Tensor._wrap(hooks.on_leaf(self, upstream), self.backend)  # (its hooks, if any, first)
            return
        engine.backward(self, upstream, retain_graph)

    # -- operators (the arithmetic ones are generated from _BINARY_OPS below) -------------------------------------
    def __neg__(self) -> Tensor:
        """``-self``; ``neg()`` is the same."""
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
        arguments.inplace_result(name, new, self, engine.grad_enabled)
        capture.changed_in_place(name)
        self._data[...] = new if new.dtype == self._data.dtype else self.backend.xp.astype(new, self._data.dtype)
        versions.bump(self)
        return self

    def _inplace_operand(self, name: str, other: Any, alpha: float = 1) -> Any:
        """The array (or Python number) of ``other``, times ``alpha``."""
        if isinstance(other, Tensor) and other.backend is not self.backend:
            raise device_mismatch(name, (self, other))
        other = _operand(other, self)
        other = other._data if isinstance(other, Tensor) else other
        return other * alpha if alpha != 1 else other

    def add_(self, other: Any, alpha: float = 1) -> Tensor:
        """In place: self ← self + alpha·other (``torch.Tensor.add_``); bumps the version."""
        return self._inplace("add_", self._data + self._inplace_operand("add_", other, alpha))

    def sub_(self, other: Any, alpha: float = 1) -> Tensor:
        """In place: self ← self − alpha·other; bumps the version."""
        return self._inplace("sub_", self._data - self._inplace_operand("sub_", other, alpha))

    def mul_(self, other: Any) -> Tensor:
        """In place: self ← self · other; bumps the version."""
        return self._inplace("mul_", self._data * self._inplace_operand("mul_", other))

    def div_(self, other: Any) -> Tensor:
        """In place: self ← self / other; bumps the version."""
        return self._inplace("div_", self._data / self._inplace_operand("div_", other))

    def clamp_(self, min: Any = None, max: Any = None) -> Tensor:  # noqa: A002 - PyTorch's names
        """In place: clamp to [min, max] (Python numbers); bumps the version."""
        arguments.bounds("clamp_", min, max)
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
        return self._inplace("copy_", arguments.broadcast_source("copy_", src, self)) if hasattr(src, "shape") \
            else self.fill_(src)

    # -- math (the one-input functions are generated from _UNARY_OPS below) ---------------------------------------
    def clip(self, min: Any = None, max: Any = None) -> Tensor:  # noqa: A002 - PyTorch's names
        """Clamp to [min, max] (Python numbers; for tensor bounds use ``maximum``/``minimum``); the gradient passes
        where min <= x <= max."""
        arguments.bounds("clip", min, max, hint="; for tensor bounds use maximum()/minimum()")
        return ops.Clip.apply(self, min=min, max=max)

    clamp = clip

    def maximum(self, other: Any) -> Tensor:
        """Elementwise maximum; at ties each input gets half the gradient."""
        return promoted(ops.Maximum, self, _operand(other, self))

    def minimum(self, other: Any) -> Tensor:
        """Elementwise minimum; at ties each input gets half the gradient."""
        return promoted(ops.Minimum, self, _operand(other, self))

    def where(self, condition: Any, other: Any) -> Tensor:
        """``self`` where ``condition`` (a bool tensor) else ``other``: ``torch.where(condition, self, other)``."""
        return composite.where(_operand(condition, self, scalars=False), self, _operand(other, self))

    # -- reductions (and max, min, amax, amin, argmax, argmin, std, prod, norm, all, any: see _COMPOSITE) -------
    def sum(self, dim: arguments.Dims = None, keepdim: bool | None = None, *, dtype: Any = None,
            axis: arguments.Dims = None, keepdims: bool | None = None) -> Tensor:
        """Σ over ``dim`` (an int, a tuple, or None: all), reduced dims kept with size 1 if ``keepdim`` (NumPy's
        ``axis``/``keepdims`` are aliases). bool sums in int64, float16/bfloat16 in float32; ``dtype`` casts first."""
        kwargs = arguments.reduction("sum", self.ndim, dim, keepdim, axis, keepdims)
        x = self.astype(dtype) if dtype is not None else self.long() if self.dtype == np.bool_ else self
        return ops.Sum.apply(x, **kwargs)

    def mean(self, dim: arguments.Dims = None, keepdim: bool | None = None, *, dtype: Any = None,
             axis: arguments.Dims = None, keepdims: bool | None = None) -> Tensor:
        """The mean over ``dim`` (an int, a tuple, or None), as ``sum``; floating-point tensors only, as PyTorch (cast
        first, or pass ``dtype``). Differentiable: dL/dx = g / n broadcast back."""
        kwargs = arguments.reduction("mean", self.ndim, dim, keepdim, axis, keepdims)
        return ops.Mean.apply(composite.floating("Mean", self, dtype), **kwargs)

    def var(self, dim: arguments.Dims = None, keepdim: bool | None = None, *, correction: float | None = None,
            unbiased: bool | None = None, axis: arguments.Dims = None, keepdims: bool | None = None) -> Tensor:
        """Σ(x - mean)² / (n - correction) over ``dim``; PyTorch's default ``correction=1`` (``correction=0`` or the
        older ``unbiased=False``: biased); NaN if n <= correction. Positionally ``var(dim, keepdim)``, not PyTorch's
        older ``var(dim, unbiased)``."""
        kwargs = arguments.reduction("var", self.ndim, dim, keepdim, axis, keepdims)
        return ops.Var.apply(composite.floating("Var", self), correction=arguments.correction("var", correction,
                                                                                               unbiased), **kwargs)

    # -- shape (and t, expand_as, repeat, chunk, masked_fill: see _COMPOSITE) ------------------------------------
    def reshape(self, *shape: Any) -> Tensor:
        """The same elements in another shape (one size may be -1); ``view`` is the same, for any layout."""
        return ops.Reshape.apply(self, shape=arguments.shape_arg(shape, self))

    view = reshape

    def permute(self, *dims: Any) -> Tensor:
        """The dims reordered: ``permute(2, 0, 1)`` or ``permute((2, 0, 1))``."""
        return ops.Permute.apply(self, dims=arguments.permutation(arguments.varargs(dims), self.ndim))

    def transpose(self, dim0: int = -2, dim1: int = -1) -> Tensor:
        """Swap two axes (default: the last two, as ``.T`` on a matrix)."""
        return self if self.ndim < 2 else self.permute(arguments.swapped(dim0, dim1, self.shape))

    @property
    def T(self) -> Tensor:
        return self.permute(tuple(reversed(range(self.ndim))))

    def expand(self, *shape: Any) -> Tensor:
        """A broadcast view: size-1 dims (and new leading ones) grow, -1 keeps a size; the gradient sums back."""
        return ops.Expand.apply(self, shape=arguments.expand_shape(arguments.varargs(shape), self))

    def flatten(self, start_dim: int = 0, end_dim: int = -1) -> Tensor:
        """The dims from ``start_dim`` to ``end_dim`` (included) merged into one (a 0-d tensor becomes 1-d)."""
        return self.reshape(arguments.flattened(start_dim, end_dim, self.shape))

    def unsqueeze(self, dim: int | None = None, *, axis: int | None = None) -> Tensor:
        """A size-1 dim inserted at ``dim`` (counted in the result; ``axis`` is NumPy's spelling)."""
        return self.reshape(arguments.unsqueezed(arguments.one_dim("unsqueeze", dim, axis), self.shape))

    def squeeze(self, dim: arguments.Dims = None, *, axis: arguments.Dims = None) -> Tensor:
        """Without the size-1 dims among ``dim`` (an int or a tuple; None: all of them); others are kept."""
        return self.reshape(arguments.squeezed(arguments.spelling("squeeze", dim, axis)[0], self.shape))

    def pad(self, pad_width: Any) -> Tensor:
        """Zero-pad; ``pad_width`` is ``((before, after), ...)`` per axis, as ``numpy.pad``."""
        return ops.Pad.apply(self, pad_width=arguments.pad_width(pad_width, self.ndim))

    def split(self, split_size_or_sections: int | list[int], dim: int | None = None, *,
              axis: int | None = None) -> tuple[Tensor, ...]:
        """Split into views along ``dim`` (default 0; ``axis`` is NumPy's spelling), pieces of ``split_size`` (an int;
        the last may be smaller) or of the given sizes (a list); each piece's gradient goes into its slice."""
        dim = arguments.one_dim("split", dim, axis, default=0)
        return tuple(self[index] for index in arguments.split_indices(split_size_or_sections, dim, self.shape))


# -- the operators, from tables ---------------------------------------------------------------------------------------
#: ``a + b`` is ``Add.apply(a, b)`` and ``2 + a`` is ``Add.apply(2, a)``, after dtype promotion (``promoted``).
_BINARY_OPS = {"add": ops.Add, "sub": ops.Sub, "mul": ops.Mul, "truediv": ops.Div, "pow": ops.Pow}
#: ``t.exp()`` is ``Exp.apply(t)``.
_UNARY_OPS = {"exp": ops.Exp, "log": ops.Log, "sqrt": ops.Sqrt, "tanh": ops.Tanh, "sigmoid": ops.Sigmoid,
              "relu": ops.Relu, "abs": ops.Abs}
#: ``a < b`` (and ``a.lt(b)``) is a boolean tensor from ``xp.less``; comparisons are not differentiable.
_COMPARISONS = {"lt": "less", "le": "less_equal", "gt": "greater", "ge": "greater_equal", "eq": "equal",
                "ne": "not_equal"}
#: PyTorch's method names of the operators: ``a.add(b)`` is ``a + b``, ``a.div(b)`` is ``a / b`` ...
_OPERATOR_METHODS = {"add": "__add__", "sub": "__sub__", "mul": "__mul__", "div": "__truediv__", "pow": "__pow__",
                     "neg": "__neg__", **{name: f"__{name}__" for name in _COMPARISONS}}
#: ``t.half()`` is ``t.astype(float16)``: differentiable between floating dtypes, no gradient to int or bool.
_CASTS = {"half": np.float16, "bfloat16": dtypes.bfloat16, "float": np.float32, "double": np.float64,
          "long": np.int64, "int": np.int32, "bool": np.bool_}
#: ``t.amax(1)`` is ``composite.amax(t, 1)``: the methods composed of several ops, or of none (see composite.py).
_COMPOSITE = (composite.max, composite.min, composite.amax, composite.amin, composite.argmax, composite.argmin,
              composite.std, composite.prod, composite.norm, composite.all, composite.any, composite.masked_fill,
              composite.clamp_min, composite.clamp_max, composite.t, composite.expand_as, composite.repeat,
              composite.chunk, composite.clone, composite.contiguous)


def _binary(op: type[Function], reflected: bool) -> Any:
    def operator_method(self: Tensor, other: Any) -> Tensor:
        other = _operand(other, self)
        return promoted(op, other, self) if reflected else promoted(op, self, other)
    operator_method.__doc__ = (op.__doc__ or "").split("\n")[0] + " (broadcasting, after dtype promotion)"
    return operator_method


def _unary(op: type[Function]) -> Any:
    def method(self: Tensor) -> Tensor:
        return op.apply(self)
    method.__doc__ = (op.__doc__ or "").split("\n")[0]
    return method


def _comparison(name: str) -> Any:
    def comparison(self: Tensor, other: Any) -> Tensor:
        return self._compare(other, name)
    comparison.__doc__ = f"Elementwise ``{name}``, broadcasting: a bool tensor, not differentiable."
    return comparison


def _cast(dtype: Any) -> Any:
    def cast(self: Tensor) -> Tensor:
        return self.astype(dtype)
    cast.__doc__ = f"``astype({np.dtype(dtype).name})``: differentiable to a floating dtype, no gradient otherwise."
    return cast


for _name, _op in _BINARY_OPS.items():
    setattr(Tensor, f"__{_name}__", _binary(_op, reflected=False))
    setattr(Tensor, f"__r{_name}__", _binary(_op, reflected=True))
for _name, _op in _UNARY_OPS.items():
    setattr(Tensor, _name, _unary(_op))
for _name, _xp_name in _COMPARISONS.items():
    setattr(Tensor, f"__{_name}__", _comparison(_xp_name))
for _name, _operator in _OPERATOR_METHODS.items():
    setattr(Tensor, _name, getattr(Tensor, _operator))
for _name, _dtype in _CASTS.items():
    setattr(Tensor, _name, _cast(_dtype))
for _function in _COMPOSITE:
    setattr(Tensor, _function.__name__, _function)
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
    arguments.matmul_shapes(a.shape, b.shape)
    return promoted(ops.MatMul, a, b)


def _operand(value: Any, like: Tensor, scalars: bool = True) -> Any:
    """The other operand of a binary op: Tensors and Python numbers pass through, arrays become tensors."""
    if isinstance(value, Tensor):
        return value
    if scalars and isinstance(value, np.generic) and value.ndim == 0:
        value = value.item()  # a NumPy scalar acts as the Python number it holds
    if scalars and isinstance(value, (int, float, bool)):
        return value
    return Tensor(value, device=like.device)
