"""Lowering an op to its array calls, for ``tinygrad_edu.jit``: what a NumPy op's forward and backward actually call.

While the jit captures a call, ``Function.apply`` runs the forward of an op on the NumPy backend with *traced*
arrays: a ``Traced`` stands for one array (or NumPy scalar), hands every operation on to the real one, and notes it
on the op's ``Trace`` as one call: the function (``numpy.matmul``, ``operator.iadd``, ``ndarray.reshape``...), its
arguments with the traced ones as slot numbers, and the slot of its result. ``ctx.xp`` is a ``Namespace`` that does
the same for the calls the op makes through it (``xp.arange``, ``xp.asarray``: calls without a traced argument, which
NumPy would not report). The op's backward, run by the engine, is traced the same way, starting from the gradient
and the arrays the forward saved. A replay then makes exactly these calls, written out one per line
(``t3 = matmul(t0, t2)``): the op *lowered* to the array code it is made of, with no Function, context or check in
between. Every call gets the same arguments as in the eager run, so it gives the same bits.

An op is not lowered (the replay calls its whole ``forward`` and ``backward`` instead) when its trace shows that the
calls could differ from one call to the next:

* it reads a traced value on the host (``bool``, ``float``, ``item()``, ``np.asarray`` outside ``xp``): Python may
  branch on it; or the memory layout (``strides``, ``flags``): the calls may depend on it;
* a call gets an array from elsewhere (a random draw of the backend's generator, a buffer the backend reuses):
  the replay would use this draw again; only the backend's cached vectors of ones (read-only) may appear;
* its result is not one of the traced values, or it changes NumPy's error handling (``np.errstate``);
* and, checked by the jit, the two captured calls traced different calls.
"""

from __future__ import annotations

import copy
import math
import operator
import re
from typing import Any

import numpy as np

#: attributes that are the same for every array of one shape and dtype: read directly (constants of the capture)
_CONSTANT_ATTRIBUTES = frozenset({"shape", "ndim", "dtype", "size", "itemsize", "nbytes", "device"})
#: attributes that depend on the memory layout or expose the memory: reading them stops the lowering of the op
_LAYOUT_ATTRIBUTES = frozenset({"strides", "flags", "base", "ctypes", "data", "__array_interface__",
                                "__array_struct__", "__array_priority__"})


class Trace:
    """The array calls of one op's forward and backward, in order.

    ``calls``: ``(slot, fn, args, kwargs, form)``, ``slot`` the number of the result (None for a call that returns
    nothing: ``a[i] = v``); ``args``/``kwargs`` hold ``Traced`` values where the op passed traced ones; ``form`` is
    how the replay writes the call ("call", "method", "getattr", an operator's symbol...). ``inputs``: slot -> where
    the value comes from: ``("pos", i)`` the i-th array of forward, ``("kw", name)`` an array given as an option,
    ``("grad",)`` the gradient backward gets. ``reason``: why this op cannot be lowered (None: it can).
    """

    def __init__(self, backend: Any):
        self.calls: list[tuple] = []
        self.inputs: dict[int, tuple] = {}
        self.sizes: dict[int, int] = {}  # slot -> bytes of its value (the replay frees large ones after last use)
        self.shapes: dict[int, tuple] = {}  # slot -> the shape of a call's result
        self.out: int | None = None  # the slot forward returned
        self.results: tuple | None = None  # backward's results: a slot, or None, per input
        self.forward_calls = 0  # calls[:forward_calls] are the forward's, the rest the backward's
        self.forward_slots = 0  # slots below this number are the forward's
        self.out_class: type | None = None  # the class of forward's result (ndarray, or a NumPy scalar)
        self.result_meta: tuple = ()  # (class, shape, dtype) of each backward result (None for None)
        self.aliased = False  # two of backward's results were one array
        self.reason: str | None = None
        self.closed = False
        self.ctx: Any = None  # the op's context
        self._count = 0
        self._ones = getattr(backend, "_ones_cache", {})  # the backend's read-only vectors of ones
        self._errstate = np.geterr()
        self.namespace = Namespace(self)

    # -- recording --------------------------------------------------------------------------------------------------
    def stop(self, reason: str) -> None:
        """This op cannot be lowered (the first reason is kept)."""
        if self.reason is None:
            self.reason = reason

    def value(self, real: Any, where: tuple | None = None) -> Any:
        """``real`` as a traced value with a new slot (``where``: an input's origin)."""
        t = Traced(real, self._count, self)
        if where is not None:
            self.inputs[t.slot] = where
        self.sizes[t.slot] = getattr(real, "nbytes", 0)
        self._count += 1
        return t

    @property
    def slots(self) -> int:
        """How many slots so far."""
        return self._count

    def call(self, fn: Any, args: tuple, kwargs: dict, form: Any = "call") -> Any:
        """Call ``fn`` on the real values of ``args`` and ``kwargs``, note the call, and return its result traced."""
        if self.closed:  # a traced value kept after the capture (an op stored it outside its context): compute only
            return fn(*_real(args), **_real(kwargs))
        try:
            result = fn(*_real(args), **_real(kwargs))
        except BaseException:
            self.stop(f"a call raised ({_name(fn)}): the op may catch it and branch")
            raise
        args, kwargs = _snapshot(args), _snapshot(kwargs)  # (a list changed later must not change the call)
        self._check_arguments((args, kwargs))
        self.check_errstate()
        why = _value_shaped(fn, args, kwargs, form)
        if why is not None:
            self.stop(f"{why} gives a result whose shape depends on the values")
        if result is None:
            self.calls.append((None, fn, args, kwargs, form))
            return None
        if not isinstance(result, (np.ndarray, np.generic)):
            if _has_traced((args, kwargs)):  # a Python value computed from traced values: Python may branch on it
                self.stop(f"{_name(fn)} returned a {type(result).__name__} computed from its arrays")
            return result
        traced = self.value(result)
        self.shapes[traced.slot] = result.shape  # (compared between the two captures)
        self.calls.append((traced.slot, fn, args, kwargs, form))
        return traced

    def check_errstate(self) -> None:
        if np.geterr() != self._errstate:
            self.stop("it changes NumPy's error handling (np.errstate)")

    def read(self, t: Traced, how: str) -> Any:
        """A traced value read on the host: the op may branch on it, so it is not lowered."""
        self.stop(f"it reads an array on the host ({how})")
        return t.value

    def _check_arguments(self, values: Any) -> None:
        for v in _leaves(values):
            if isinstance(v, Traced):
                if v.trace is not self:
                    self.stop("it uses an array traced in another op")
            elif isinstance(v, np.ndarray) and not any(v is ones for ones in self._ones.values()):
                self.stop("a call gets an array made outside the traced calls (a random draw, a reused buffer)")

    def finish(self, out: Any) -> Any:
        """The forward's result: its slot is noted; the real array is returned."""
        if isinstance(out, Traced) and out.trace is self:
            self.out, self.out_class = out.slot, type(out.value)
            return out.value
        self.stop("forward returned a value made outside the traced calls")
        return _real(out)


class Namespace:
    """``ctx.xp`` while an op is traced: NumPy, whose functions are called through ``Trace.call`` (so that creation
    functions such as ``xp.arange`` are noted too). Types (``xp.float32``) and constants are NumPy's own."""

    def __init__(self, trace: Trace):
        self._trace = trace

    def __getattr__(self, name: str) -> Any:
        attr = getattr(np, name)
        if name == "errstate":
            self._trace.stop("it changes NumPy's error handling (np.errstate)")
            return attr
        if isinstance(attr, type) or not callable(attr):
            return attr
        return _Call(attr, self._trace)


class _Call:
    """A NumPy function (or ufunc) seen through ``Namespace``: calls go through ``Trace.call``, and so do a ufunc's
    methods (``xp.add.at``, ``xp.add.reduce``); its other attributes (``nin``, ``__name__``) are the function's."""

    def __init__(self, fn: Any, trace: Trace):
        self._fn, self._trace = fn, trace

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._trace.call(self._fn, args, kwargs)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._fn, name)
        if isinstance(self._fn, np.ufunc) and callable(attr) and not isinstance(attr, type):
            return _Call(attr, self._trace)
        return attr


class Traced:
    """One traced array (or NumPy scalar) of an op: ``value`` is the real one, ``slot`` its number in ``trace``."""

    __slots__ = ("value", "slot", "trace")
    __hash__ = None  # type: ignore[assignment]  # (as ndarray)

    def __init__(self, value: Any, slot: int, trace: Trace):
        self.value, self.slot, self.trace = value, slot, trace

    # NumPy's protocols: a function or ufunc given a traced argument comes here
    def __array_ufunc__(self, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
        return self.trace.call(ufunc if method == "__call__" else getattr(ufunc, method), inputs, kwargs)

    def __array_function__(self, func: Any, types: Any, args: tuple, kwargs: dict) -> Any:
        return self.trace.call(func, args, kwargs)

    def __kernel_call__(self, kernel: Any, args: tuple) -> Any:  # (backend.base.kernel_call: a compiled kernel)
        return self.trace.call(kernel, args, {})

    def __getattr__(self, name: str) -> Any:  # attributes and methods (reshape, astype, sum, T...)
        if name in _CONSTANT_ATTRIBUTES:
            return getattr(self.value, name)
        if name in ("__array_struct__", "__array_interface__"):  # NumPy reading the memory: it falls back to
            self.trace.read(self, "numpy.asarray")                  # __array__, which keeps ml_dtypes' dtypes
            raise AttributeError(name)
        if name in _LAYOUT_ATTRIBUTES or name.startswith("__"):
            return getattr(self.trace.read(self, name), name)
        attr = getattr(type(self.value), name)
        if isinstance(attr, property) or not callable(attr) or name in ("T", "mT", "real", "imag"):
            return self.trace.call(getattr, (self, name), {}, "getattr")
        return lambda *args, **kwargs: self.trace.call(attr, (self, *args), kwargs, ("method", name))

    def __getitem__(self, index: Any) -> Any:
        return self.trace.call(operator.getitem, (self, index), {}, "getitem")

    def __setitem__(self, index: Any, value: Any) -> None:
        self.trace.call(operator.setitem, (self, index, value), {}, "setitem")

    def __len__(self) -> int:
        return len(self.value)  # (the shape's first axis: a constant)

    # the host reads the values: not lowered
    def __bool__(self) -> bool:
        return bool(self.trace.read(self, "bool()"))

    def __float__(self) -> float:
        return float(self.trace.read(self, "float()"))

    def __int__(self) -> int:
        return int(self.trace.read(self, "int()"))

    def __index__(self) -> int:
        return operator.index(self.trace.read(self, "an index"))

    def __complex__(self) -> complex:
        return complex(self.trace.read(self, "complex()"))

    def __iter__(self) -> Any:
        return iter(self.trace.read(self, "iteration"))

    def __round__(self, ndigits: Any = None) -> Any:
        return round(self.trace.read(self, "round()"), ndigits)

    def __floor__(self) -> Any:
        return math.floor(self.trace.read(self, "math.floor"))

    def __ceil__(self) -> Any:
        return math.ceil(self.trace.read(self, "math.ceil"))

    def __trunc__(self) -> Any:
        return math.trunc(self.trace.read(self, "math.trunc"))

    def __format__(self, spec: str) -> str:
        return format(self.trace.read(self, "format()"), spec)

    def __contains__(self, item: Any) -> bool:
        return item in self.trace.read(self, "in")

    def __divmod__(self, other: Any) -> Any:
        return self.trace.call(divmod, (self, other), {})  # (a tuple of arrays: not lowered)

    def __rdivmod__(self, other: Any) -> Any:
        return self.trace.call(divmod, (other, self), {})

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return np.asarray(self.trace.read(self, "numpy.asarray"), dtype=dtype)

    def __repr__(self) -> str:
        return f"Traced(slot {self.slot}, {self.value!r})"

    def __copy__(self) -> Any:
        return self.trace.call(np.copy, (self,), {})

    def __deepcopy__(self, memo: dict) -> Any:
        return self.__copy__()


def _operator(fn: Any, symbol: str, reflected: bool = False) -> Any:
    if reflected:
        return lambda self, other: self.trace.call(fn, (other, self), {}, symbol)
    return lambda self, other: self.trace.call(fn, (self, other), {}, symbol)


for _name_, _symbol in [("add", "+"), ("sub", "-"), ("mul", "*"), ("truediv", "/"), ("floordiv", "//"),
                        ("mod", "%"), ("pow", "**"), ("matmul", "@"), ("and", "&"), ("or", "|"), ("xor", "^"),
                        ("lshift", "<<"), ("rshift", ">>")]:
    _fn = getattr(operator, _name_ if _name_ not in ("and", "or") else _name_ + "_")
    setattr(Traced, f"__{_name_}__", _operator(_fn, _symbol))
    setattr(Traced, f"__r{_name_}__", _operator(_fn, _symbol, reflected=True))
    setattr(Traced, f"__i{_name_}__", _operator(getattr(operator, f"i{_name_}"), "inplace"))
for _name_, _symbol in [("lt", "<"), ("le", "<="), ("gt", ">"), ("ge", ">="), ("eq", "=="), ("ne", "!=")]:
    setattr(Traced, f"__{_name_}__", _operator(getattr(operator, _name_), _symbol))
for _name_, _symbol in [("neg", "-"), ("pos", "+"), ("abs", "abs"), ("invert", "~")]:
    setattr(Traced, f"__{_name_}__", (lambda fn, s: lambda self: self.trace.call(fn, (self,), {}, ("unary", s)))(
        getattr(operator, _name_), _symbol))


def same(a: Trace, b: Trace) -> bool:
    """The two traces made the same calls: the same functions, on the same slots and the same constants."""
    return (a.reason is None and b.reason is None and a.inputs == b.inputs and a.out == b.out and a.shapes == b.shapes
            and a.results == b.results and a.forward_calls == b.forward_calls and len(a.calls) == len(b.calls)
            and all(x[0] == y[0] and (x[1] is y[1] or x[1] == y[1]) and x[4] == y[4]  # (np.add.reduce: equal)
                    and same_value(x[2:4], y[2:4], _same_argument)
                    for x, y in zip(a.calls, b.calls)))


def same_value(a: Any, b: Any, leaf: Any) -> bool:
    """``a`` and ``b`` are the same value: ``leaf(a, b)`` decides where it can (True or False, None: undecided), else
    tuples, lists, dicts and slices are compared item by item, other values of one type with ``==``."""
    decided = leaf(a, b)
    if decided is not None:
        return decided
    if type(a) is not type(b):
        return False
    if isinstance(a, (tuple, list)):
        return len(a) == len(b) and all(same_value(x, y, leaf) for x, y in zip(a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same_value(a[k], b[k], leaf) for k in a)
    if isinstance(a, slice):
        return same_value((a.start, a.stop, a.step), (b.start, b.stop, b.step), leaf)
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001 - values without a usable ==
        return a is b


def _same_argument(a: Any, b: Any) -> bool | None:
    """``same_value``'s leaves for two traces' calls: traced values by slot, arrays (the backend's vectors of ones)
    by identity, floats exactly (0.0 == -0.0, and NaN != NaN)."""
    if isinstance(a, Traced) or isinstance(b, Traced):
        return isinstance(a, Traced) and isinstance(b, Traced) and a.slot == b.slot
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return a is b
    if type(a) is type(b) and isinstance(a, (float, np.floating)):
        return bool(a == b and np.signbit(a) == np.signbit(b) or (a != a and b != b))
    return None


def _map(value: Any, leaf: Any) -> Any:
    """``value`` rebuilt through tuples (named ones too), lists, dicts and slices, ``leaf`` applied to the rest."""
    if isinstance(value, tuple):
        items = [_map(v, leaf) for v in value]
        return tuple(items) if value.__class__ is tuple else type(value)(*items)
    if isinstance(value, list):
        return [_map(v, leaf) for v in value]
    if isinstance(value, dict):
        return {k: _map(v, leaf) for k, v in value.items()}
    if isinstance(value, slice):
        return slice(*(_map(v, leaf) for v in (value.start, value.stop, value.step)))
    return leaf(value)


def _snapshot(value: Any) -> Any:
    """Lists, dicts and sets inside a call's arguments copied, so that the call keeps the values it was made with
    (their leaves, traced values and arrays, are kept as they are)."""
    return _map(value, lambda v: copy.copy(v) if isinstance(v, (set, bytearray)) else v)


#: NumPy functions (and methods) whose result's shape depends on the values of their input: the op might read that
#: shape as a constant of the capture
_VALUE_SHAPED = frozenset({"nonzero", "flatnonzero", "argwhere", "unique", "unique_values", "unique_counts",
                           "unique_inverse", "unique_all", "compress", "extract", "trim_zeros", "bincount",
                           "setdiff1d", "intersect1d", "union1d", "setxor1d", "delete", "insert", "histogram",
                           "histogram_bin_edges", "histogram2d", "histogramdd"})


def _value_shaped(fn: Any, args: tuple, kwargs: dict, form: Any) -> str | None:
    """What makes this call's result shape depend on values (None: its shape follows from the shapes alone)."""
    name = _name(fn)
    if name in _VALUE_SHAPED or (name == "where" and len(args) + len(kwargs) == 1):
        return name
    if name == "repeat" and _has_traced((args[1:], kwargs)):
        return "repeat with computed counts"
    if form in ("getitem", "setitem"):
        index = args[1] if isinstance(args[1], tuple) else (args[1],)
        if any(isinstance(v, (Traced, np.ndarray)) and v.dtype == np.bool_ for v in _leaves(index)):
            return "indexing with a mask" if form == "getitem" else None
        if any(isinstance(i, slice) and _has_traced(i) for i in index):
            return "a slice with a computed bound"
        return None
    if not isinstance(fn, np.ufunc) and getattr(fn, "__self__", None).__class__ is not np.ufunc and any(
            isinstance(v, Traced) and isinstance(v.value, np.generic) and v.value.dtype.kind in "biu"
            for v in _leaves((args, kwargs))):  # a computed integer as a size or a count: np.zeros(n), reshape(n)
        return f"{name} given a computed integer"
    return None


def slots_used(calls: list) -> set[int]:
    """The slots the calls read."""
    return {v.slot for call in calls for v in _leaves(call[2:4]) if isinstance(v, Traced)}


def source(value: Any, names: dict[int, str], constant: Any) -> str:
    """``value`` (an argument of a call) as Python source: a traced value by its name in ``names``, literals as
    themselves, other objects through ``constant(prefix, object)`` (which returns a global's name)."""
    if isinstance(value, Traced):
        return names[value.slot]
    if value.__class__ is tuple:
        return "(" + "".join(source(v, names, constant) + ", " for v in value) + ")"
    if value.__class__ is list:
        return "[" + ", ".join(source(v, names, constant) for v in value) + "]"
    if value.__class__ is dict and all(isinstance(k, str) for k in value):
        return "{" + ", ".join(f"{k!r}: {source(v, names, constant)}" for k, v in value.items()) + "}"
    if value.__class__ is slice:
        return f"slice({', '.join(source(v, names, constant) for v in (value.start, value.stop, value.step))})"
    if value is None or value is Ellipsis or value.__class__ in (bool, int, str) or (
            value.__class__ is float and np.isfinite(value)):
        return repr(value)
    if isinstance(value, tuple):  # a named tuple holding traced values
        return f"{constant('T', type(value))}(" + ", ".join(source(v, names, constant) for v in value) + ")"
    return constant(identifier(value), value)


def _name(fn: Any) -> str:
    return getattr(fn, "__name__", type(fn).__name__)


def identifier(value: Any) -> str:
    """A readable prefix for the replay's name of ``value``: a function's name, else its type's (``matmul_``)."""
    name = getattr(value, "__name__", None) if callable(value) and not isinstance(value, np.ndarray) else None
    owner = getattr(value, "__self__", None)
    if isinstance(owner, np.ufunc):  # np.add.reduce: add_reduce
        name = f"{owner.__name__}_{name}"
    return re.sub(r"\W", "_", name or type(value).__name__) + "_"


def _leaves(value: Any) -> Any:
    """The values inside nested tuples, lists, dicts and slices."""
    if isinstance(value, (tuple, list)):
        for v in value:
            yield from _leaves(v)
    elif isinstance(value, dict):
        for v in value.values():
            yield from _leaves(v)
    elif isinstance(value, slice):
        yield from _leaves((value.start, value.stop, value.step))
    else:
        yield value


def _has_traced(value: Any) -> bool:
    return any(isinstance(v, Traced) for v in _leaves(value))


def _real(value: Any) -> Any:
    """``value`` with every traced value replaced by its real one (through tuples, lists, dicts and slices)."""
    if value.__class__ is Traced:
        return value.value
    return _map(value, _real_leaf)


def _real_leaf(value: Any) -> Any:
    return value.value if value.__class__ is Traced else value


# ------------------------------------------------------------------------------------------------------------------
# tracing one op (called by Function.apply and, through the context, by the engine's backward walk)
# ------------------------------------------------------------------------------------------------------------------
def traceable(backend: Any) -> bool:
    """Ops of this backend can be lowered: its arrays are NumPy's (the protocols ``Traced`` relies on)."""
    return backend.xp is np


def traced_forward(cls: type, traces: dict, ctx: Any, /, *arrays: Any, **kwargs: Any) -> Any:
    """Run ``cls.forward(ctx, *arrays, **kwargs)`` on traced arrays, keep its ``Trace`` in ``traces[id(ctx)]``, and
    make the context trace its backward too. Returns the real result."""
    trace = traces[id(ctx)] = Trace(ctx.backend)
    trace.ctx = ctx
    traced = [trace.value(a, ("pos", i)) if isinstance(a, np.ndarray) else a for i, a in enumerate(arrays)]
    options = {k: trace.value(v, ("kw", k)) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
    xp, ctx.xp = ctx.xp, trace.namespace
    try:
        out = cls.forward(ctx, *traced, **options)
    finally:
        ctx.xp = xp
    trace.check_errstate()
    trace.forward_calls, trace.forward_slots = len(trace.calls), trace.slots
    # the engine calls ctx.backward(ctx, g): an attribute of the instance comes before the class's staticmethod
    ctx.backward = lambda ctx, *grads: _traced_backward(cls, trace, ctx, grads)
    return trace.finish(out)


def _traced_backward(cls: type, trace: Trace, ctx: Any, grads: tuple) -> Any:
    if trace.results is not None or len(grads) != 1:
        trace.stop("its backward runs more than once in the step")
    traced = [trace.value(g, ("grad",)) if isinstance(g, np.ndarray) else g for g in grads]
    xp, ctx.xp = ctx.xp, trace.namespace
    try:
        results = cls.backward(ctx, *traced)
    finally:
        ctx.xp = xp
    trace.check_errstate()
    as_tuple = results if results.__class__ is tuple else (results,)
    real = [r.value for r in as_tuple if isinstance(r, Traced)]
    trace.aliased = len({id(r) for r in real}) < len(real)  # one array for two inputs: the engine copies it
    slots = []
    for r in as_tuple:
        if r is None:
            slots.append(None)
        elif isinstance(r, Traced) and r.trace is trace:
            slots.append(r.slot)
        else:
            trace.stop("backward returned an array made outside the traced calls")
            slots.append(None)
    if trace.results is None:
        trace.results = tuple(slots)
        trace.result_meta = tuple((type(r.value), r.value.shape, r.value.dtype) if isinstance(r, Traced) else None
                                  for r in as_tuple)
    return _real(results)


def untrace(trace: Trace) -> None:
    """After the capture: the op's context holds real arrays again and runs its class's backward (the op may run
    eagerly, or be replayed as a whole call when it was not lowered)."""
    ctx = trace.ctx
    ctx.__dict__.pop("backward", None)
    for key, value in list(ctx.__dict__.items()):
        if key != "parents":
            setattr(ctx, key, _real(value))
    trace.closed = True  # (a traced value an op kept elsewhere goes on computing, and notes nothing)
