"""Tensor methods that are compositions of several ops, written as functions of a tensor (``input``).

``tensor.py`` attaches each one to the Tensor from the table at its end (``x.amax(1)`` is ``amax(x, 1)``, as
``torch.amax(x, 1)`` is ``x.amax(1)``). None has a backward of its own: the tape records the ops it applies, and the
gradient flows through them. Where PyTorch's gradient is a choice (ties of a max, the zero vector of a norm), the
composition is chosen so that the gradient is PyTorch's; each docstring says which.

Nothing here imports ``tensor.py`` (it imports this module): the functions take tensors and use their methods, and
wrap the non-differentiable results (indices, booleans) with ``Tensor._wrap`` through the input.
"""

from __future__ import annotations

import math
import numbers
from collections import namedtuple
from typing import TYPE_CHECKING, Any

import numpy as np

from tinygrad_edu import arguments, dtypes, ops
from tinygrad_edu.autograd.function import InputError

if TYPE_CHECKING:
    from tinygrad_edu.tensor import Tensor

#: What ``max(dim=...)`` and ``min(dim=...)`` return, as ``torch.return_types.max`` / ``.min``: a named tuple
#: ``(values, indices)``, unpacked as ``values, indices = x.max(dim=1)``.
MaxResult = namedtuple("max", ["values", "indices"])
MinResult = namedtuple("min", ["values", "indices"])


# -- max and min: values (NumPy's axis) or (values, indices) (PyTorch's dim) ----------------------------------------
def max(input: Tensor, dim: Any = None, keepdim: bool | None = None, *, axis: Any = None,  # noqa: A001
        keepdims: bool | None = None) -> Tensor | MaxResult:
    """The largest value, in one of PyTorch's forms or NumPy's:

    * ``x.max()``: the largest element, a 0-d tensor (``torch.max(x)``);
    * ``x.max(d)`` or ``x.max(dim=d, keepdim=False)``: ``(values, indices)`` along the single dim ``d``, as
      ``torch.max(x, d)``: ``values`` has ``x``'s dtype and is differentiable, ``indices`` is int64 (no gradient);
      at ties the index is that of the FIRST maximal value, and the whole gradient of a value goes to that index
      (PyTorch's rule), so ``_, predicted = logits.max(1)`` works as in PyTorch;
    * ``x.max(axis=a, keepdims=False)``: the values only, NumPy's ``amax`` (``a`` an int or a tuple); tied maxima
      share the gradient equally, as ``amax`` (the same as ``x.amax(a)``);
    * ``x.max(other)``: the elementwise maximum with the tensor ``other`` (``torch.max(x, other)``).

    Passing ``dim`` and ``axis`` together is a TypeError; reducing over an empty dim is an InputError.
    """
    return _extremum("max", input, axis, keepdims, dim, keepdim)


def min(input: Tensor, dim: Any = None, keepdim: bool | None = None, *, axis: Any = None,  # noqa: A001
        keepdims: bool | None = None) -> Tensor | MinResult:
    """The smallest value: ``x.min()``, ``x.min(d)`` or ``x.min(dim=d)`` → ``(values, indices)`` (the index of the
    FIRST minimal value, which gets the whole gradient), ``x.min(axis=a)`` → values only (ties share the gradient, as
    ``amin``), ``x.min(other)`` → the elementwise minimum. See ``max`` for the details, which mirror it."""
    return _extremum("min", input, axis, keepdims, dim, keepdim)


def amax(input: Tensor, dim: arguments.Dims = None, keepdim: bool | None = None, *, axis: arguments.Dims = None,
         keepdims: bool | None = None) -> Tensor:
    """The largest values over ``dim`` (an int, a tuple of ints, or None: every dim), PyTorch's ``amax`` and NumPy's
    ``amax``: values only, in ``x``'s dtype. Differentiable: tied maxima share the gradient equally (PyTorch's rule
    for ``amax``; ``max(dim=)`` instead gives it all to one index). An empty tensor is an InputError."""
    return _values("max", input, **arguments.reduction("amax", input.ndim, dim, keepdim, axis, keepdims), method="amax")


def amin(input: Tensor, dim: arguments.Dims = None, keepdim: bool | None = None, *, axis: arguments.Dims = None,
         keepdims: bool | None = None) -> Tensor:
    """The smallest values over ``dim`` (an int, a tuple, or None: every dim), PyTorch's ``amin``: values only;
    tied minima share the gradient equally."""
    return _values("min", input, **arguments.reduction("amin", input.ndim, dim, keepdim, axis, keepdims), method="amin")


def argmax(input: Tensor, dim: int | None = None, keepdim: bool | None = None, *, axis: int | None = None,
           keepdims: bool | None = None) -> Tensor:
    """The index of the largest value along ``dim`` (a single int), or in the flattened tensor (``dim=None``; with
    ``keepdim=True`` every dim is kept with size 1). int64, not differentiable; at ties the FIRST maximal index, as
    PyTorch (NaN counts as the largest value). bool tensors are compared as 0 and 1."""
    return _arg("argmax", input, dim, keepdim, axis, keepdims)


def argmin(input: Tensor, dim: int | None = None, keepdim: bool | None = None, *, axis: int | None = None,
           keepdims: bool | None = None) -> Tensor:
    """The index of the smallest value along ``dim`` (or in the flattened tensor): int64, no gradient, the FIRST
    minimal index at ties, as PyTorch."""
    return _arg("argmin", input, dim, keepdim, axis, keepdims)


def _extremum(name: str, x: Tensor, axis: Any, keepdims: Any, dim: Any, keepdim: Any) -> Any:
    if hasattr(dim, "backend"):  # max(other): the elementwise maximum
        if keepdim is not None or axis is not None or keepdims is not None:
            raise TypeError(f"{name}(other): the elementwise {name} with a tensor takes no dim or keepdim")
        return x.maximum(dim) if name == "max" else x.minimum(dim)
    if dim is None:  # NumPy's axis, or every dim: values only, ties share the gradient
        return _values(name, x, **arguments.reduction(name, x.ndim, None, keepdim, axis, keepdims))
    if isinstance(dim, (tuple, list)):
        raise TypeError(f"{name}(): dim must be a single int, as in PyTorch, got {dim!r}; for the values over "
                        f"several dims use a{name}(dim) or {name}(axis=...)")
    d = arguments.one_dim(name, dim, axis, x.ndim)
    _, keep = arguments.spelling(name, None, None, keepdim, keepdims)
    _check_not_empty(name, x, (d,) if x.ndim else None)
    indices = _arg("arg" + name, x, d, True, None, None)
    if x.ndim == 0:  # its one element, at index 0, as PyTorch
        return (MaxResult if name == "max" else MinResult)(x.reshape(()), indices.reshape(()))
    xp = x.backend.xp
    if dtypes.is_floating(x.dtype):  # values = Σ_j x_j [j = index]: the gradient reaches the chosen index only
        positions = xp.reshape(xp.arange(x.shape[d], device=x.data.device), (-1,) + (1,) * (x.ndim - d - 1))
        chosen = x._wrap(positions == indices.data, x.backend)
        values = ops.Sum.apply(ops.Where.apply(chosen, x, 0.0), axis=(d,), keepdims=keep)
    else:  # integers and bools have no gradient: the values directly
        values = x._wrap(_reduced(name, x, axis=d, keepdims=keep), x.backend)
    indices = indices if keep else x._wrap(xp.squeeze(indices.data, axis=d), x.backend)
    return (MaxResult if name == "max" else MinResult)(values, indices)


def _values(name: str, x: Tensor, axis: tuple[int, ...] | None, keepdims: bool, method: str = "") -> Tensor:
    """The max (min) over ``axis``, ties sharing the gradient (the op ``Max``/``Min``); bools: any (all)."""
    _check_not_empty(method or name, x, axis)
    if x.dtype == np.bool_:
        return x._wrap(_reduced(name, x, axis=axis, keepdims=keepdims), x.backend)
    return (ops.Max if name == "max" else ops.Min).apply(x, axis=axis, keepdims=keepdims)


def _reduced(name: str, x: Tensor, **kwargs: Any) -> Any:
    """The array of ``x``'s max (min) without the tape: for bools, any (all), which the array API has for them."""
    xp = x.backend.xp
    if x.dtype == np.bool_:
        return (xp.any if name == "max" else xp.all)(x.data, **kwargs)
    return (xp.max if name == "max" else xp.min)(x.data, **kwargs)


def _check_not_empty(name: str, x: Tensor, axis: tuple[int, ...] | None) -> None:
    """A max, min or arg-extremum of nothing has no value: an InputError when a reduced dim has size 0 (PyTorch's
    rule; other dims may be empty, the result is then empty too)."""
    if (x.numel() == 0) if axis is None else 0 in [x.shape[a] for a in axis]:  # (``any`` is this module's)
        raise InputError(f"{name}: cannot reduce over an empty dim: the tensor has shape {x.shape}")


def _arg(name: str, x: Tensor, dim: Any, keepdim: Any, axis: Any, keepdims: Any) -> Tensor:
    dim, keep = arguments.spelling(name, dim, axis, keepdim, keepdims)
    if dim is not None:
        dim = arguments.one_dim(name, dim, None, x.ndim)
    _check_not_empty(name, x, None if dim is None or x.ndim == 0 else (dim,))
    xp, data = x.backend.xp, x.data
    if x.dtype == np.bool_:
        data = xp.astype(data, xp.uint8)
    if dim is None or x.ndim == 0:
        index = getattr(xp, name)(xp.reshape(data, (-1,)))
        index = xp.reshape(index, (1,) * x.ndim if keep else ())
    else:
        index = getattr(xp, name)(data, axis=dim, keepdims=keep)
    return x._wrap(xp.astype(index, xp.int64), x.backend)


# -- other reductions -------------------------------------------------------------------------------------------------
def floating(op: str, x: Tensor, dtype: Any = None) -> Tensor:
    """``x`` (cast to ``dtype`` first when given), which must be floating-point: a TypeError names ``op``."""
    x = x if dtype is None else x.astype(dtype)
    if not dtypes.is_floating(x.dtype):
        raise TypeError(f"{op}: needs a floating-point tensor, got dtype {x.dtype}; cast it first (e.g. .float())")
    return x


def std(input: Tensor, dim: arguments.Dims = None, keepdim: bool | None = None, *, correction: float | None = None,
        unbiased: bool | None = None, axis: arguments.Dims = None, keepdims: bool | None = None) -> Tensor:
    """The standard deviation ``var(...).sqrt()``, with ``var``'s arguments (``correction=1`` by default, i.e. Bessel's
    correction, as PyTorch; ``correction=0`` or ``unbiased=False`` for the biased one). Floating-point tensors only.
    Differentiable; at zero spread the gradient is NaN (0 · ∞), as in PyTorch."""
    dim, keepdim = arguments.spelling("std", dim, axis, keepdim, keepdims)
    return input.var(dim, keepdim, correction=arguments.correction("std", correction, unbiased)).sqrt()


def prod(input: Tensor, dim: arguments.Dims = None, keepdim: bool | None = None, *, dtype: Any = None,
         axis: arguments.Dims = None, keepdims: bool | None = None) -> Tensor:
    """The product over ``dim`` (an int, a tuple, or None: every dim; PyTorch takes one int). bool and integer
    tensors multiply in int64, as PyTorch; ``dtype`` casts first. The product of nothing is 1.

    Differentiable, also through zeros: the product is taken pairwise (x₀x₁, x₂x₃, ... then again, log₂ n rounds
    of ``*``), so dL/dxᵢ = g · Π_{j≠i} xⱼ comes from the multiplications themselves, without dividing by xᵢ.
    """
    kwargs = arguments.reduction("prod", input.ndim, dim, keepdim, axis, keepdims)
    x = input.astype(dtype) if dtype is not None else input.astype(np.int64) if input.dtype.kind in "biu" else input
    reduced = kwargs["axis"] if kwargs["axis"] is not None else tuple(range(x.ndim))
    kept = tuple(i for i in range(x.ndim) if i not in reduced)
    out_shape = tuple(1 if i in reduced else n for i, n in enumerate(x.shape)) if kwargs["keepdims"] else \
        tuple(x.shape[i] for i in kept)
    n = math.prod(x.shape[i] for i in reduced)
    x = x.permute(kept + reduced).reshape(tuple(x.shape[i] for i in kept) + (n,))
    while x.shape[-1] > 1:
        paired = x.shape[-1] // 2 * 2
        products = x[..., 0:paired:2] * x[..., 1:paired:2]
        x = products if paired == x.shape[-1] else ops.Concatenate.apply(products, x[..., paired:], axis=x.ndim - 1)
    return (x.sum(-1) * 0 + 1 if n == 0 else x).reshape(out_shape)


def norm(input: Tensor, p: float | str = "fro", dim: arguments.Dims = None, keepdim: bool | None = None, *,
         dtype: Any = None, axis: arguments.Dims = None, keepdims: bool | None = None) -> Tensor:
    """The vector norm over ``dim`` (an int, a tuple, or None: every element), PyTorch's ``Tensor.norm``:
    ``p="fro"`` or 2 (√Σx², computed in float32 for float16 and bfloat16), 1 (Σ|x|), ``inf`` (max |x|), ``-inf`` (min |x|).
    Floating-point tensors only (``dtype`` casts first); other ``p`` are a ValueError.

    Differentiable with PyTorch's gradients: for p = 2, x / ‖x‖, and 0 for the zero vector (not 0/0); for p = 1,
    sign(x) (0 at 0); for p = ±inf, sign(x) shared among the tied extreme elements.
    """
    kwargs = arguments.reduction("norm", input.ndim, dim, keepdim, axis, keepdims)
    x = floating("norm", input, dtype)
    if p in ("fro", 2):
        wide = x.astype(dtypes.accumulate_dtype(x.dtype))
        squares = ops.Sum.apply(wide * wide, **kwargs)
        zero = squares == 0  # √ at 0 has an infinite slope: take it at 1 there, and output 0 (gradient 0)
        root = ops.Where.apply(zero, 1.0, squares).sqrt()
        return ops.Where.apply(zero, 0.0, root).astype(x.dtype)
    if p == 1:
        return ops.Sum.apply(x.abs(), **kwargs)
    if p in (math.inf, -math.inf):
        return _values("max" if p > 0 else "min", x.abs(), **kwargs, method="norm")
    raise ValueError(f"norm(): p={p!r} is not supported; use 'fro', 2, 1, inf or -inf")


def all(input: Tensor, dim: arguments.Dims = None, keepdim: bool | None = None, *,  # noqa: A001
        axis: arguments.Dims = None, keepdims: bool | None = None) -> Tensor:
    """True where every element over ``dim`` (an int, a tuple, or None: every dim) is nonzero: a bool tensor, not
    differentiable (PyTorch's ``all``)."""
    return input._wrap(input.backend.xp.all(input.data, **arguments.reduction("all", input.ndim, dim, keepdim, axis,
                                                                            keepdims)), input.backend)


def any(input: Tensor, dim: arguments.Dims = None, keepdim: bool | None = None, *,  # noqa: A001
        axis: arguments.Dims = None, keepdims: bool | None = None) -> Tensor:
    """True where some element over ``dim`` is nonzero: a bool tensor, not differentiable (PyTorch's ``any``)."""
    return input._wrap(input.backend.xp.any(input.data, **arguments.reduction("any", input.ndim, dim, keepdim, axis,
                                                                            keepdims)), input.backend)


# -- shapes and copies -----------------------------------------------------------------------------------------------
def t(input: Tensor) -> Tensor:
    """The transpose of a matrix; a 0-d or 1-d tensor as it is; more than 2 dims is a ValueError (PyTorch's ``t``)."""
    return input.transpose(*arguments.matrix_dims("t", input.ndim))


def expand_as(input: Tensor, other: Tensor) -> Tensor:
    """``expand(other.shape)``: a broadcast view; the gradient sums over the copies."""
    return input.expand(other.shape)


def repeat(input: Tensor, *sizes: Any) -> Tensor:
    """Tile: ``sizes[i]`` copies one after another along dim i (more sizes than dims add leading dims), PyTorch's
    ``repeat`` (NumPy's ``tile``, not NumPy's ``repeat``). A reshape, an expand and a reshape, so the gradient sums
    over the copies."""
    interleaved, grown, tiled = arguments.repeated(arguments.varargs(sizes), input.shape)
    return input.reshape(interleaved).expand(grown).reshape(tiled)


def chunk(input: Tensor, chunks: int, dim: int | None = None, *, axis: int | None = None) -> tuple[Tensor, ...]:
    """``chunks`` pieces along ``dim`` (default 0; ``axis`` is NumPy's spelling), each of ceil(size / chunks)
    elements but the last, as PyTorch (so there may be fewer than ``chunks`` pieces); views, as ``split``."""
    dim = arguments.one_dim("chunk", dim, axis, default=0)
    return input.split(arguments.chunk_size(chunks, dim, input.shape), dim)


def clone(input: Tensor) -> Tensor:
    """A copy with its own memory, on the tape (the cast to its own dtype, which copies): dL/dx = g."""
    return ops.Cast.apply(input, input.dtype)


def contiguous(input: Tensor) -> Tensor:
    """``input`` itself: every op here accepts strided arrays, so there is nothing to make contiguous."""
    return input


def clamp_min(input: Tensor, min: float) -> Tensor:  # noqa: A002 - PyTorch's name
    """``clamp(min=min)`` (a Python number): the gradient passes where x >= min."""
    return input.clip(min=min)


def clamp_max(input: Tensor, max: float) -> Tensor:  # noqa: A002 - PyTorch's name
    """``clamp(max=max)`` (a Python number): the gradient passes where x <= max."""
    return input.clip(max=max)


# -- choosing elements ------------------------------------------------------------------------------------------------
def where(condition: Tensor, x: Any, y: Any) -> Tensor:
    """``x`` where ``condition`` else ``y``, broadcast together; ``x`` and ``y`` (tensors or Python numbers) are
    promoted to one dtype. The gradient flows to the branch chosen at each element."""
    if condition.dtype != np.bool_:
        raise TypeError(f"where: condition must be a boolean tensor, got dtype {condition.dtype}")
    if not dtypes.same_floating(x, y):
        (x, y), _, _ = dtypes.promote("Where", (x, y))  # the condition stays bool
    return ops.Where.apply(condition, x, y)


def masked_fill(input: Tensor, mask: Tensor, value: Any) -> Tensor:
    """``value`` where ``mask`` (a bool tensor broadcastable with ``input``) is True, ``input`` elsewhere: PyTorch's
    ``masked_fill``, the same as ``where(mask, value, input)``. ``value`` is a Python number (converted to
    ``input``'s dtype) or a 0-d tensor (cast to it). The gradient reaches ``input`` where the mask is False, and a
    0-d ``value`` tensor gets the sum over the filled positions."""
    if not hasattr(mask, "backend") or mask.dtype != np.bool_:
        raise TypeError(f"masked_fill(): mask must be a boolean tensor, got "
                        f"{f'dtype {mask.dtype}' if hasattr(mask, 'backend') else type(mask).__name__}")
    if hasattr(value, "backend"):
        if value.ndim != 0:
            raise ValueError(f"masked_fill(): value must be a number or a 0-d tensor, got a tensor of shape "
                             f"{value.shape}")
        value = value.astype(input.dtype)
    elif isinstance(value, (numbers.Number, np.generic)):
        value = {"b": bool, "i": int, "u": int}.get(input.dtype.kind, float)(value)
    else:
        raise TypeError(f"masked_fill(): value must be a number or a 0-d tensor, got {type(value).__name__}")
    return ops.Where.apply(mask, value, input)
