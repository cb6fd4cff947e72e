"""The registry of every differentiable function in the project, with inputs on which its gradient can be checked.

Each entry (a ``Differentiable``) names one public differentiable operation, a function ``fn`` of Tensors that runs
it (several variants at once, as a tuple of outputs, where the op has options), a ``make_inputs(rng)`` that draws
random float64 inputs of random small shapes on which central differences are meaningful, and the ``Function``
subclasses the entry exercises. Two users read it:

* the command line, ``tinygrad-edu gradcheck [NAME ...]``, which gradchecks the entries in a chosen dtype and on a
  chosen device and prints a table (``tinygrad_edu.cli``);
* the meta-test, ``tests/test_registry.py``, which fails when some ``Function`` subclass of the package is listed in
  no entry's ``functions``, and gradchecks every entry on every test device.

**A new layer or op adds an entry here, or the meta-test fails**: one ``register(name, fn, make_inputs, functions,
note)`` call in the section where it belongs, below.

What ``make_inputs`` guarantees, so that a correct backward passes in float64 with relative errors below 1e-7
(typically ~1e-10; see ``TOLERANCES`` for the round-off floor of the central differences):

* sides of 1 to 4 (size-1 axes included), broadcasting pairs where the op broadcasts;
* moderate values (mostly |x| <= 1.5), so the checked scalar <u, f(x)> and its round-off stay small;
* values away from kinks, ties and poles: log, sqrt, division and negative powers get inputs >= 0.2; relu, abs and
  clip inputs lie at least 0.05 from their kinks; maximum/minimum pairs and max/min reductions have no ties (gaps
  >= 0.04, so they survive rounding to float16 too);
* non-differentiable arguments (axes, integer targets, masks, indices) are fixed inside ``fn`` or derived from the
  input shapes, so an entry reads as a line of math.

Not registered: ``ToDevice`` (``Tensor.to(device)``) needs two devices; it is gradchecked between "cpu" and
"strict" in ``tests/test_ops_gradients.py``. ``Cast`` is registered as a round trip through another float dtype; its
inputs lie on a grid of float32-exact values and the entry's own ``eps`` is a power of two, so the perturbed inputs
are float32-exact too and the central difference stays exact (a step of 1e-6 would be rounded away by float32).
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import os
import pkgutil
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

import tinygrad_edu
from tinygrad_edu import ops
from tinygrad_edu.autograd import Function
from tinygrad_edu.distributed.parallel import _GradientSink
from tinygrad_edu.functions import concatenate, maximum, minimum, split, stack, where
from tinygrad_edu.gradcheck import GradcheckReport, check_gradients
from tinygrad_edu.nn import functional as F
from tinygrad_edu.tensor import Tensor

__all__ = [
    "Differentiable", "REGISTRY", "TOLERANCES", "UNREGISTERED", "all_functions", "entries", "register", "uncovered",
]

#: How entries are checked, per dtype of the analytic pass: ``check_gradients``' eps, atol and rtol.
#:
#: * eps: the numerical pass always runs in float64 (``check_gradients`` upcasts the inputs), so the step does not
#:   depend on the dtype checked. 1e-5 rather than the library's default 1e-6: a central difference errs by the
#:   truncation |f'''| eps^2 / 6 plus the round-off ulp(L) / (2 eps) of the checked scalar L = <u, f(x)>, least
#:   near eps = cbrt(3 ulp) ~ 1e-5 for O(1) inputs. At 1e-6 the round-off (~1e-9 for L ~ 10) is ten times larger,
#:   and the relative error of small gradient components climbs past 1e-7 in 3% of the checks instead of 0.3%.
#: * float64: the library's default tolerances. Measured relative errors of correct entries: median ~1e-10, the
#:   worst ~1e-6, always a gradient component ~1e-4 (a small upstream component) against the ~1e-11 round-off
#:   floor. Wrong gradients err by O(1).
#: * float32 and float16: the analytic pass runs in the low precision, the numerical pass in float64, so the error
#:   measured is the rounding of the backward pass itself: a few roundings per element (unit roundoff 6e-8 and
#:   4.9e-4), plus cancellation where unbroadcasting or a matmul sums up to 64 terms of up to ~40 (1 / b^2 at
#:   b = 0.2). Over 500 (float32) and 1000 (float16) seeds of every entry, the worst error was 7% (float32) and 34%
#:   (float16) of the tolerance below: correct functions pass with a margin, while a wrong formula, or a float32
#:   backward that silently computes in float16, does not.
TOLERANCES: dict[str, dict[str, float]] = {
    "float64": {"eps": 1e-5, "atol": 1e-5, "rtol": 1e-3},
    "float32": {"eps": 1e-5, "atol": 1e-4, "rtol": 1e-4},
    "float16": {"eps": 1e-5, "atol": 2e-2, "rtol": 2e-2},
}


@dataclass(frozen=True)
class Differentiable:
    """One differentiable operation and how to check its gradient.

    ``fn(*tensors)`` returns a Tensor (or a tuple of Tensors: each gets its own random upstream gradient);
    ``make_inputs(rng)`` returns the float64 arrays to differentiate with respect to, one per argument of ``fn``;
    ``functions`` are the ``Function`` subclasses the entry exercises. ``eps``, where set, is the finite-difference
    step the entry needs instead of the checker's default (only ``cast`` sets it).
    """

    name: str
    fn: Callable[..., Tensor | tuple[Tensor, ...]]
    make_inputs: Callable[[np.random.Generator], list[np.ndarray]]
    functions: tuple[type[Function], ...]
    note: str = ""
    eps: float | None = None

    def tensors(self, rng: np.random.Generator, dtype: Any = np.float64, device: str | None = None) -> list[Tensor]:
        """Fresh inputs from ``rng`` as leaves of ``dtype`` on ``device`` that require grad."""
        return [Tensor(a.astype(dtype), requires_grad=True, device=device) for a in self.make_inputs(rng)]

    def options(self, dtype: Any = np.float64) -> dict[str, float]:
        """eps, atol and rtol for checking this entry in ``dtype``: ``TOLERANCES``, with the entry's own eps."""
        options = dict(TOLERANCES[np.dtype(dtype).name])
        if self.eps is not None:
            options["eps"] = self.eps
        return options

    def check(self, seed: int, dtype: Any = np.float64, device: str | None = None) -> tuple[list[Tensor], GradcheckReport]:
        """Draw inputs with ``default_rng(seed)`` and check their gradients: the inputs, and the report."""
        inputs = self.tensors(np.random.default_rng(seed), dtype, device)
        return inputs, check_gradients(self.fn, inputs, seed=seed, **self.options(dtype))


REGISTRY: dict[str, Differentiable] = {}

#: Function subclasses that no entry can exercise, and why (the meta-test accepts exactly these).
UNREGISTERED: dict[str, str] = {
    "tinygrad_edu.ops.conversion.ToDevice": "needs two devices; gradchecked between 'cpu' and 'strict' in "
    "tests/test_ops_gradients.py",
    "tinygrad_edu.nn.functional.batch_norm.FusedBatchNormFunction": "needs a backend with fused float16 kernels "
    "(CUDA); checked against the float64 closed form on a GPU in tests/test_cuda_kernels.py",
}


def register(
    name: str,
    fn: Callable[..., Any],
    make_inputs: Callable[[np.random.Generator], list[np.ndarray]],
    functions: Iterable[type[Function]],
    note: str = "",
    eps: float | None = None,
) -> Differentiable:
    """Add an entry to ``REGISTRY`` (names are unique) and return it."""
    if name in REGISTRY:
        raise ValueError(f"register: an entry named {name!r} already exists")
    functions = tuple(functions)
    for f in functions:
        if not (isinstance(f, type) and issubclass(f, Function)):
            raise TypeError(f"register({name!r}): functions must be Function subclasses, got {f!r}")
    entry = Differentiable(name, fn, make_inputs, functions, note, eps)
    REGISTRY[name] = entry
    return entry


def entries(names: Sequence[str] | None = None) -> list[Differentiable]:
    """The entries named (all of them, in registration order, for None or an empty list); ValueError on unknown names."""
    if not names:
        return list(REGISTRY.values())
    unknown = [n for n in names if n not in REGISTRY]
    if unknown:
        raise ValueError(
            f"unknown function name(s): {', '.join(unknown)}. Valid names: {', '.join(REGISTRY)}"
        )
    return [REGISTRY[n] for n in dict.fromkeys(names)]


def all_functions() -> list[type[Function]]:
    """Every ``Function`` subclass defined in the package (each of its modules is imported first)."""
    # the package's own folder (its __path__ may also hold the checkout root, for kernels/: see __init__), and the
    # kernels subpackage wherever it lives
    folders = [(os.path.dirname(tinygrad_edu.__file__), "tinygrad_edu.")]
    kernels = importlib.util.find_spec("tinygrad_edu.backend.kernels")
    if kernels is not None and kernels.submodule_search_locations:
        folders += [(folder, "tinygrad_edu.backend.kernels.") for folder in kernels.submodule_search_locations]
    for folder, prefix in folders:
        for module in pkgutil.walk_packages([folder], prefix):
            if module.name.rsplit(".", 1)[-1] == "__main__":
                continue
            try:
                importlib.import_module(module.name)
            except ModuleNotFoundError as exc:  # an optional third-party dependency (CuPy ...): not ours to cover
                if (exc.name or "").startswith("tinygrad_edu"):
                    raise
    found, todo = [], [Function]
    while todo:
        for sub in todo.pop().__subclasses__():
            if sub not in found:
                found.append(sub)
                todo.append(sub)
    return sorted((f for f in found if f.__module__.startswith("tinygrad_edu")), key=_qualified)


def uncovered(registry: dict[str, Differentiable] | None = None) -> list[str]:
    """Qualified names of the package's Function subclasses that no entry lists (``UNREGISTERED`` excepted).

    A base class with subclasses (``_Extremum``) is covered when all of its subclasses are: it is never applied
    itself.
    """
    registry = REGISTRY if registry is None else registry
    listed = {f for entry in registry.values() for f in entry.functions}
    functions = all_functions()

    def covered(f: type[Function]) -> bool:
        if f in listed or _qualified(f) in UNREGISTERED:
            return True
        subs = [s for s in f.__subclasses__() if s in functions]
        return bool(subs) and all(covered(s) for s in subs)

    return [_qualified(f) for f in functions if not covered(f)]


def _qualified(f: type) -> str:
    return f"{f.__module__}.{f.__qualname__}"


# ----------------------------------------------------------------------------------------------------------------
# drawing inputs
# ----------------------------------------------------------------------------------------------------------------
def _shape(rng: np.random.Generator, min_dims: int = 1, max_dims: int = 3, min_side: int = 1) -> tuple[int, ...]:
    """A shape of ``min_dims`` to ``max_dims`` axes with sides ``min_side`` to 4 (size 1 included)."""
    ndim = int(rng.integers(min_dims, max_dims + 1))
    return tuple(int(n) for n in rng.integers(min_side, 5, size=ndim))


def _broadcast_pair(rng: np.random.Generator, max_dims: int = 3) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Two shapes that broadcast together: some axes size 1 in one of them, leading axes missing from one."""
    full = _shape(rng, 1, max_dims)
    a = tuple(1 if rng.random() < 0.3 else n for n in full)
    b = tuple(1 if rng.random() < 0.3 else n for n in full)
    if rng.random() < 0.5:  # one operand lacks leading axes (possibly all: a 0-d tensor)
        drop = int(rng.integers(1, len(full) + 1))
        a, b = (a[drop:], b) if rng.random() < 0.5 else (a, b[drop:])
    return a, b


def _uniform(rng: np.random.Generator, shape: tuple[int, ...], low: float = -1.5, high: float = 1.5) -> np.ndarray:
    return np.asarray(rng.uniform(low, high, size=shape), dtype=np.float64)


def _away_from(rng: np.random.Generator, shape: tuple[int, ...], kink: float = 0.0, margin: float = 0.05,
               reach: float = 1.5) -> np.ndarray:
    """Values in [kink - reach, kink - margin] or [kink + margin, kink + reach], either side equally likely."""
    magnitude = rng.uniform(margin, reach, size=shape)
    return np.asarray(kink + np.where(rng.random(size=shape) < 0.5, -magnitude, magnitude), dtype=np.float64)


def _distinct(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Values 0.06 ± 0.01 apart or more (a shuffled ladder with jitter): a max or min over any axes never ties."""
    size = math.prod(shape)
    rungs = rng.permutation(size) - (size - 1) / 2
    return np.asarray((rungs * 0.06 + rng.uniform(-0.01, 0.01, size=size)).reshape(shape), dtype=np.float64)


def _separated_pair(rng: np.random.Generator) -> list[np.ndarray]:
    """A broadcasting pair whose elements differ by 0.06 or more wherever they meet: maximum/minimum never tie.

    a = 0.2 k ± 0.02 and b = 0.2 k + 0.1 ± 0.02 (k integers): a - b is at least 0.06 from every multiple of 0.2.
    """
    shape_a, shape_b = _broadcast_pair(rng)
    a = 0.2 * rng.integers(-8, 9, size=shape_a) + rng.uniform(-0.02, 0.02, size=shape_a)
    b = 0.2 * rng.integers(-8, 9, size=shape_b) + 0.1 + rng.uniform(-0.02, 0.02, size=shape_b)
    return [np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)]


def _one(draw: Callable[..., np.ndarray], **shape_options: Any) -> Callable[[np.random.Generator], list[np.ndarray]]:
    """make_inputs for a function of one tensor: a random shape, then ``draw(rng, shape)``."""
    return lambda rng: [draw(rng, _shape(rng, **shape_options))]


def _same_shape(count: int, draw: Callable[..., np.ndarray] = _uniform, **shape_options: Any,
                ) -> Callable[[np.random.Generator], list[np.ndarray]]:
    """make_inputs for a function of ``count`` tensors of one random shape."""

    def make_inputs(rng: np.random.Generator) -> list[np.ndarray]:
        shape = _shape(rng, **shape_options)
        return [draw(rng, shape) for _ in range(count)]

    return make_inputs


def _pair(draw_a: Callable[..., np.ndarray] = _uniform,
          draw_b: Callable[..., np.ndarray] = _uniform) -> Callable[[np.random.Generator], list[np.ndarray]]:
    """make_inputs for a broadcasting binary op."""

    def make_inputs(rng: np.random.Generator) -> list[np.ndarray]:
        shape_a, shape_b = _broadcast_pair(rng)
        return [draw_a(rng, shape_a), draw_b(rng, shape_b)]

    return make_inputs


def _positive(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Inputs of log, sqrt, division and negative powers: in [0.2, 2], away from the pole at 0."""
    return _uniform(rng, shape, 0.2, 2.0)


def _base(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Bases of tensor ** tensor: in [0.4, 0.75] or [1.25, 2]. Away from 1, where d(a^b)/db = a^b log(a) vanishes
    (tiny gradients drown in round-off), and from 0, where a^(b-1) blows up (float16 sums of large terms cancel)."""
    return np.where(rng.random(shape) < 0.5, _uniform(rng, shape, 0.4, 0.75), _uniform(rng, shape, 1.25, 2.0))


def _pattern(x: Tensor, shape: tuple[int, ...] | None = None) -> Tensor:
    """A fixed boolean checkerboard of ``shape`` (default: x's) on x's device: a mask that needs no drawing."""
    shape = x.shape if shape is None else shape
    return Tensor(np.indices(shape).sum(axis=0) % 2 == 0 if shape else np.array(True), device=x.device)


def _indices(x: Tensor, values: list[int]) -> Tensor:
    return Tensor(np.array(values, dtype=np.int64), device=x.device)


def _side(rng: np.random.Generator) -> int:
    return int(rng.integers(1, 5))


def _two_or_more_rows(rng: np.random.Generator) -> list[np.ndarray]:
    """One array of 1 to 3 axes whose first axis has 2 to 4 elements (an unbiased variance over it is finite)."""
    return [_uniform(rng, (int(rng.integers(2, 5)),) + _shape(rng, 0, 2))]


def _with_ones(rng: np.random.Generator) -> list[np.ndarray]:
    """One array with about half of its axes of size 1 (to expand)."""
    return [_uniform(rng, tuple(1 if rng.random() < 0.5 else n for n in _shape(rng)))]


def _differ_in_last_axis(rng: np.random.Generator) -> list[np.ndarray]:
    """Three arrays of one shape but for the size of the last axis (to concatenate along it)."""
    lead = _shape(rng, 0, 2)
    return [_uniform(rng, lead + (_side(rng),)) for _ in range(3)]


def _matmul_2d(rng: np.random.Generator) -> list[np.ndarray]:
    m, k, n = _side(rng), _side(rng), _side(rng)
    return [_uniform(rng, (m, k)), _uniform(rng, (k, n))]


def _matmul_batched(rng: np.random.Generator) -> list[np.ndarray]:
    """(..., m, k) @ (..., k, n) with broadcast batch axes: (2, 1, m, k) @ (3, k, n), (b, m, k) @ (k, n) ..."""
    m, k, n = _side(rng), _side(rng), _side(rng)
    batch_a, batch_b = _broadcast_pair(rng, max_dims=2)
    if not batch_a and not batch_b:
        batch_a = (_side(rng),)
    return [_uniform(rng, batch_a + (m, k)), _uniform(rng, batch_b + (k, n))]


def _matmul_1d(rng: np.random.Generator) -> list[np.ndarray]:
    """A 1-D operand on either side or both: (k,) @ (k, n), (m, k) @ (k,), (k,) @ (k,), (b, m, k) @ (k,), ..."""
    m, k, n, b = _side(rng), _side(rng), _side(rng), _side(rng)
    a_shape, b_shape = [((k,), (k, n)), ((m, k), (k,)), ((k,), (k,)), ((b, m, k), (k,)), ((k,), (b, k, n))][
        int(rng.integers(5))
    ]
    return [_uniform(rng, a_shape), _uniform(rng, b_shape)]


# ----------------------------------------------------------------------------------------------------------------
# the entries: arithmetic
# ----------------------------------------------------------------------------------------------------------------
register("add", lambda a, b: (a + b, a + 1.5, 2.0 + b), _pair(), (ops.Add,),
         "broadcasting pair; tensor + scalar, scalar + tensor")
register("sub", lambda a, b: (a - b, a - 0.5, 2.0 - b), _pair(), (ops.Sub,),
         "broadcasting pair; tensor - scalar, scalar - tensor")
register("mul", lambda a, b: (a * b, a * -3.0, 0.5 * b), _pair(), (ops.Mul,),
         "broadcasting pair; tensor * scalar, scalar * tensor")
register("div", lambda a, b: (a / b, a / 4.0, 1.0 / b), _pair(_uniform, _positive), (ops.Div,),
         "broadcasting pair, denominators in [0.2, 2]; tensor / scalar, scalar / tensor")
register("pow", lambda x: (x**2, x**3.0, x**0.5, x**-1.5, x**0), _one(_positive), (ops.Pow,),
         "tensor ** scalar for exponents 2, 3.0, 0.5, -1.5, 0; base in [0.2, 2]")
register("pow_tensor", lambda a, b: a**b, _pair(_base), (ops.Pow,),
         "tensor ** tensor, broadcasting; base in [0.4, 0.75] or [1.25, 2], exponent in [-1.5, 1.5]")
register("rpow", lambda x: (2.0**x, 0.5**x), _one(_uniform), (ops.Pow,), "scalar ** tensor: 2 ** x, 0.5 ** x")
register("neg", lambda x: -x, _one(_uniform, min_dims=0), (ops.Neg,), "-x, 0-d inputs included")
register("matmul", lambda a, b: a @ b, _matmul_2d, (ops.MatMul,), "(m, k) @ (k, n)")
register("matmul_batched", lambda a, b: a @ b, _matmul_batched, (ops.MatMul,),
         "(..., m, k) @ (..., k, n) with broadcast batch axes")
register("matmul_1d", lambda a, b: a @ b, _matmul_1d, (ops.MatMul,),
         "a 1-D operand: vector @ matrix, matrix @ vector, vector @ vector, batched @ vector, vector @ batched")

# ----------------------------------------------------------------------------------------------------------------
# elementwise functions
# ----------------------------------------------------------------------------------------------------------------
register("exp", lambda x: x.exp(), _one(_uniform, min_dims=0), (ops.Exp,), "x in [-1.5, 1.5]")
register("log", lambda x: x.log(), _one(_positive, min_dims=0), (ops.Log,), "x in [0.2, 2]")
register("sqrt", lambda x: x.sqrt(), _one(_positive, min_dims=0), (ops.Sqrt,), "x in [0.2, 2]")
register("tanh", lambda x: x.tanh(), _one(_uniform, min_dims=0), (ops.Tanh,), "x in [-1.5, 1.5]")
register("sigmoid", lambda x: x.sigmoid(), _one(lambda rng, s: _uniform(rng, s, -3.0, 3.0), min_dims=0),
         (ops.Sigmoid,), "x in [-3, 3]: both branches of the stable formula")
register("relu", lambda x: (x.relu(), F.relu(x)), _one(_away_from, min_dims=0), (ops.Relu,),
         "Tensor.relu and F.relu; |x| in [0.05, 1.5]")
register("abs", lambda x: x.abs(), _one(_away_from, min_dims=0), (ops.Abs,), "|x| in [0.05, 1.5]")
register(
    "clip",
    lambda x: (x.clip(-0.5, 0.8), x.clip(min=-0.5), x.clamp(max=0.8)),
    _one(lambda rng, shape: np.where(rng.random(shape) < 0.5, _away_from(rng, shape, -0.5, reach=1.0),
                                     _away_from(rng, shape, 0.8, reach=1.0))),
    (ops.Clip,),
    "bounds [-0.5, 0.8], min only, max only; x at least 0.05 from both bounds",
)
register("where", lambda a, b: where(_pattern(a, np.broadcast_shapes(a.shape, b.shape)), a, b), _pair(),
         (ops.Where,), "broadcasting pair, a fixed checkerboard condition")
register("maximum", lambda a, b: (maximum(a, b), a.maximum(0.5)), _separated_pair, (ops.Maximum,),
         "broadcasting pair without ties (gaps >= 0.06); tensor and scalar 0.5")
register("minimum", lambda a, b: (minimum(a, b), minimum(-0.4, b)), _separated_pair, (ops.Minimum,),
         "broadcasting pair without ties (gaps >= 0.06); scalar -0.4 and tensor")

# ----------------------------------------------------------------------------------------------------------------
# reductions
# ----------------------------------------------------------------------------------------------------------------
def _ends(x: Tensor) -> tuple[int, ...]:
    """The first and the last axis (one axis for a 1-D tensor)."""
    return tuple(sorted({0, x.ndim - 1}))


register("sum", lambda x: (x.sum(), x.sum(axis=0, keepdims=True), x.sum(axis=-1), x.sum(axis=_ends(x))),
         _one(_uniform), (ops.Sum,), "all axes, axis 0 with keepdims, last axis, first and last axes")
register("mean", lambda x: (x.mean(), x.mean(axis=0, keepdims=True), x.mean(axis=-1), x.mean(axis=_ends(x))),
         _one(_uniform), (ops.Mean,), "all axes, axis 0 with keepdims, last axis, first and last axes")
register("max", lambda x: (x.max(), x.max(axis=0), x.max(axis=-1, keepdims=True)), _one(_distinct), (ops.Max,),
         "all axes, axis 0, last axis with keepdims; distinct values (gaps >= 0.04)")
register("min", lambda x: (x.min(), x.min(axis=0), x.min(axis=-1, keepdims=True)), _one(_distinct), (ops.Min,),
         "all axes, axis 0, last axis with keepdims; distinct values (gaps >= 0.04)")
register(
    "var",
    lambda x: (x.var(), x.var(axis=0, keepdims=True), x.var(axis=-1, correction=0)),
    _two_or_more_rows,
    (ops.Var,),
    "all axes, axis 0 with keepdims (unbiased: axis 0 has 2 to 4 elements), last axis with correction=0",
)

# ----------------------------------------------------------------------------------------------------------------
# movement
# ----------------------------------------------------------------------------------------------------------------
register("reshape", lambda x: (x.reshape(-1), x.reshape(tuple(reversed(x.shape))), x.flatten(), x.unsqueeze(0),
                               x.squeeze()),
         _one(_uniform), (ops.Reshape,), "reshape(-1), reversed shape, flatten, unsqueeze, squeeze")
register("permute", lambda x: (x.permute(tuple(range(1, x.ndim)) + (0,)), x.transpose(0, -1), x.T),
         _one(_uniform, min_dims=2, max_dims=4), (ops.Permute,), "a cyclic permute, transpose(0, -1), .T")
register("expand", lambda x: x.expand((2,) + tuple(3 if n == 1 else n for n in x.shape)), _with_ones,
         (ops.Expand,), "size-1 axes grow to 3, a new leading axis of 2")
register("getitem", lambda x: (x[0], x[:, ::2], x[::-1, None, ..., -1:], x[x.shape[0] // 2 :, ..., 0]),
         _one(_uniform, min_dims=2), (ops.GetItem,), "basic indexing: integers, slices with steps, None, ...")


def _integer_arrays(x: Tensor) -> tuple[Tensor, ...]:
    """Integer-array indexing, every index with repeats (their gradients must add up, a scatter-add)."""
    first, last = x.shape[0] - 1, x.shape[-1] - 1
    return (
        x[_indices(x, [first, 0, first])],  # along axis 0
        x[..., _indices(x, [0, 0, last])],  # along the last axis
        x[tuple(_indices(x, [0, n - 1, 0]) for n in x.shape)],  # one array per axis: elements
        x.reshape(-1)[_indices(x, [[0, x.numel() - 1], [0, 0]])],  # a 2-D index into a 1-D tensor
    )


register("getitem_array", _integer_arrays, _one(_uniform, min_dims=2), (ops.GetItem, ops.Reshape),
         "integer-array indices with repeats: along axis 0, along the last axis, one per axis, a 2-D index")
register("getitem_mask", lambda x: x[_pattern(x)], _one(_uniform), (ops.GetItem,), "a boolean mask of x's shape")


register(
    "concatenate",
    lambda a, b, c: (concatenate([a, b, c], axis=-1), concatenate([a, a], axis=0)),
    _differ_in_last_axis,
    (ops.Concatenate,),
    "three tensors along the last axis; one tensor twice along axis 0",
)
register("stack", lambda a, b: (stack([a, b]), stack([a, b, a], axis=-1)), _same_shape(2, min_dims=0),
         (ops.Reshape, ops.Concatenate), "along a new first axis; along a new last axis with a repeat")
register("split", lambda x: (*split(x, 2, axis=-1), *x.split([1, x.shape[0] - 1], axis=0)), _two_or_more_rows,
         (ops.GetItem,), "chunks of 2 along the last axis; sections [1, n - 1] along axis 0")
register("pad", lambda x: x.pad(tuple((i % 2, (i + 1) % 3) for i in range(x.ndim))), _one(_uniform), (ops.Pad,),
         "zero padding (before, after) = (i % 2, (i + 1) % 3) on axis i")


def _round_trip(x: Tensor) -> Tensor:
    """x cast to another float dtype and back: float64 -> float32 -> float64, float32 -> float64 -> float32, ..."""
    return x.astype(np.float32 if x.dtype == np.float64 else np.float64).astype(x.dtype)


register(
    "cast",
    _round_trip,
    lambda rng: [np.asarray(rng.integers(-256, 257, size=_shape(rng, 0)) / 64, dtype=np.float64)],
    (ops.Cast,),
    "astype to another float dtype and back; inputs k/64 (|k| <= 256) and eps 2^-12 keep every value float32-exact",
    eps=2.0**-12,
)

# ----------------------------------------------------------------------------------------------------------------
# layers and losses
# ----------------------------------------------------------------------------------------------------------------
def _linear_inputs(bias: bool) -> Callable[[np.random.Generator], list[np.ndarray]]:
    """x (..., in) with 0 to 2 leading axes, W (out, in), and b (out,) if ``bias``."""

    def make_inputs(rng: np.random.Generator) -> list[np.ndarray]:
        n_in, n_out = _side(rng), _side(rng)
        arrays = [_uniform(rng, _shape(rng, 0, 2) + (n_in,)), _uniform(rng, (n_out, n_in))]
        return arrays + [_uniform(rng, (n_out,))] if bias else arrays

    return make_inputs


register("linear", lambda x, w, b: F.linear(x, w, b), _linear_inputs(True), (F.LinearFunction,),
         "F.linear(x, W, b), x of shape (in,), (n, in) or (n, m, in)")
register("linear_nobias", lambda x, w: F.linear(x, w), _linear_inputs(False), (F.LinearFunction,),
         "F.linear(x, W) without bias")


def _cross_entropy(logits: Tensor) -> tuple[Tensor, ...]:
    n, classes = logits.shape
    target = Tensor(np.arange(n) % classes, device=logits.device)  # a fixed target: 0, 1, 2, ... mod C
    return tuple(F.cross_entropy(logits, target, reduction=r) for r in ("mean", "sum", "none"))


register("cross_entropy", _cross_entropy, lambda rng: [_uniform(rng, _shape(rng, 2, 2), -3.0, 3.0)],
         (F.CrossEntropy,), "logits (N, C) in [-3, 3], target i mod C; reductions mean, sum, none")
register(
    "mse_loss",
    lambda a, b: tuple(F.mse_loss(a, b, reduction=r) for r in ("mean", "sum", "none")),
    _same_shape(2, lambda rng, shape: _uniform(rng, shape, -1.0, 1.0), min_dims=0),
    (F.MSELoss,),
    "input and target in [-1, 1], both differentiated; reductions mean, sum, none",
)


# ----------------------------------------------------------------------------------------------------------------
# ReLU variants and maxout
# ----------------------------------------------------------------------------------------------------------------
register("leaky_relu", lambda x: (F.leaky_relu(x), F.leaky_relu(x, 0.2), F.leaky_relu(x, negative_slope=-0.5)),
         _one(_away_from, min_dims=0), (F.LeakyRelu,), "slopes 0.01 (default), 0.2, -0.5; |x| in [0.05, 1.5]")


def _prelu_inputs(rng: np.random.Generator) -> list[np.ndarray]:
    """x of 0 to 4 axes away from the kink, one slope per channel (C,) (C = axis 1, or 1) and one shared (1,)."""
    x = _away_from(rng, _shape(rng, 0, 4))
    channels = x.shape[1] if x.ndim >= 2 else 1
    return [x, _uniform(rng, (channels,), -0.5, 1.0), _uniform(rng, (1,), -0.5, 1.0)]


register("prelu", lambda x, a, b: (F.prelu(x, a), F.prelu(x, b)), _prelu_inputs, (F.PRelu,),
         "x (|x| in [0.05, 1.5]) and both slopes differentiated: per channel (C,) on axis 1, shared (1,)")
register("crelu", lambda x: (F.crelu(x), F.crelu(x, dim=0), F.crelu(x, dim=-1)),
         _one(_away_from, min_dims=2), (F.CRelu,), "dim 1 (default), 0 and -1; |x| in [0.05, 1.5]")
register("elu", lambda x: (F.elu(x), F.elu(x, alpha=0.5), F.elu(x, 2.0)), _one(_away_from, min_dims=0),
         (F.Elu,), "alpha 1 (default), 0.5, 2 (a kink at 0 unless alpha = 1); |x| in [0.05, 1.5]")


def _maxout_inputs(rng: np.random.Generator) -> list[np.ndarray]:
    """x of shape (n, 2 or 4) or (n, 2 or 4, 2 or 4), distinct values (no ties)."""
    even = lambda: 2 * int(rng.integers(1, 3))  # noqa: E731
    shape = (_side(rng), even()) + ((even(),) if rng.random() < 0.5 else ())
    return [_distinct(rng, shape)]


register(
    "maxout",
    lambda x: (F.maxout(x, 2), F.maxout(x, x.shape[1]), F.maxout(x, x.shape[0], dim=0), F.maxout(x, 2, dim=-1),
               F.maxout(x, 1)),
    _maxout_inputs,
    (F.MaxoutFunction,),
    "pieces 2 on axis 1 (default), one group of all of axis 1, one group of all of axis 0, pieces 2 on the last "
    "axis, pieces 1 (identity); distinct values (gaps >= 0.04)",
)


# ----------------------------------------------------------------------------------------------------------------
# layer norm, weight norm, the dropout family
# ----------------------------------------------------------------------------------------------------------------
def _spread_groups(rng: np.random.Generator, shape: tuple[int, ...], k: int) -> np.ndarray:
    """Values whose groups over the trailing ``k`` axes are well spread (std >= 0.4 for two or more elements): a
    shuffled ladder of step 0.8 per group, jitter ±0.1, and a random offset per group. Layer norm's σ stays far
    above sqrt(eps), so its curvature (~1/σ³) leaves central differences accurate."""
    lead, group = shape[: len(shape) - k], shape[len(shape) - k :]
    m = math.prod(group)
    rungs = np.stack([rng.permutation(m) for _ in range(math.prod(lead))]) - (m - 1) / 2
    x = 0.8 * rungs + rng.uniform(-0.1, 0.1, size=rungs.shape) + rng.uniform(-0.5, 0.5, size=(rungs.shape[0], 1))
    return np.asarray(x.reshape(shape), dtype=np.float64)


def _layer_norm_inputs(affine: bool) -> Callable[[np.random.Generator], list[np.ndarray]]:
    """x of 1 to 3 axes with well-spread groups over its last two axes (hence over its last one too), and, if
    ``affine``, weight and bias of x's trailing 1 or 2 axes. The last axis has 3 or 4 elements: in a group of 2,
    x̂ = ±1 up to eps and dx ~ eps / σ³ is so small that round-off dominates its relative error."""

    def make_inputs(rng: np.random.Generator) -> list[np.ndarray]:
        shape = _shape(rng, 0, 2) + (int(rng.integers(3, 5)),)
        x = _spread_groups(rng, shape, min(2, len(shape)))
        if not affine:
            return [x]
        group = shape[-int(rng.integers(1, min(2, len(shape)) + 1)) :]
        return [x, _uniform(rng, group), _uniform(rng, group)]

    return make_inputs


register(
    "layer_norm",
    lambda x, w, b: (F.layer_norm(x, w.shape, w, b), F.layer_norm(x, w.shape, w), F.layer_norm(x, w.shape, None, b)),
    _layer_norm_inputs(True),
    (F.LayerNormFunction,),
    "weight and bias of x's trailing 1 or 2 axes; also weight only, bias only; groups well spread (std >= 0.4)",
)
register(
    "layer_norm_noaffine",
    lambda x: (F.layer_norm(x, x.shape[-1]), F.layer_norm(x, x.shape[-2:], eps=1e-3)),
    _layer_norm_inputs(False),
    (F.LayerNormFunction,),
    "no weight or bias: over the last axis; over the last two axes with eps 1e-3",
)


def _weight_norm_inputs(rng: np.random.Generator) -> list[np.ndarray]:
    """v of 2 or 3 axes with |v| in [0.3, 1.5] (every norm >= 0.3), and g for dim 0, the last dim, the whole v."""
    shape = _shape(rng, 2, 3)
    g_first = (shape[0],) + (1,) * (len(shape) - 1)
    g_last = (1,) * (len(shape) - 1) + (shape[-1],)
    return [_away_from(rng, shape, margin=0.3), _uniform(rng, g_first), _uniform(rng, g_last), _uniform(rng, ())]


register(
    "weight_norm",
    lambda v, g0, g1, g: (F.weight_norm(v, g0, 0), F.weight_norm(v, g1, v.ndim - 1), F.weight_norm(v, g, None)),
    _weight_norm_inputs,
    (F.WeightNormFunction,),
    "g * v / |v| over all axes but dim 0, but the last dim, over all axes (dim None); |v| in [0.3, 1.5]",
)
register(
    "dropout",
    lambda x: (F.dropout(x, 0.3), F.dropout(x, 0.5, training=True)),
    _one(_uniform),
    (F.DropoutFunction,),
    "training mode, p = 0.3 and 0.5; masks held fixed by reseeding before every evaluation",
)
register(
    "dropout2d",
    lambda x: (F.dropout2d(x, 0.3), F.dropout2d(x, 0.5)),
    _one(_uniform, min_dims=3, max_dims=4),
    (F.Dropout2dFunction,),
    "x (N, C, L) or (N, C, H, W), training mode, p = 0.3 and 0.5; one mask per channel, held fixed by reseeding",
)
register(
    "dropconnect_linear",
    lambda x, w, b: (F.dropconnect_linear(x, w, b, p=0.3), F.dropconnect_linear(x, w, p=0.5)),
    _linear_inputs(True),
    (F.DropConnectLinearFunction,),
    "x of shape (in,), (n, in) or (n, m, in), training mode; with bias p = 0.3, without p = 0.5; weight masks "
    "held fixed by reseeding",
)


# ----------------------------------------------------------------------------------------------------------------
# batch normalization
# ----------------------------------------------------------------------------------------------------------------
def _batch_norm_inputs(rng: np.random.Generator) -> list[np.ndarray]:
    """x (N, C), (N, C, L) or (N, C, H, W) of at most 64 elements with M >= 3 values per channel (batch and spatial
    positions), γ and β (C,).

    Each channel of x is a shuffled ladder of M values spanning [-1, 1], scaled by 0.5 to 1.5 and shifted by -1 to
    1: its variance is never small (no blow-up of 1/σ). M >= 3, because with M = 2 every x̂ is ±1 and dL/dx shrinks
    to O(ε), below the round-off floor of the relative error.
    """
    ndim = int(rng.integers(2, 5))
    shape = _shape(rng, ndim, ndim)
    while not (3 <= math.prod(shape) // shape[1] and math.prod(shape) <= 64):  # small sums: small round-off
        shape = _shape(rng, ndim, ndim)
    channels, count = shape[1], math.prod(shape) // shape[1]
    ladders = np.stack([rng.permutation(np.linspace(-1.0, 1.0, count)) for _ in range(channels)])
    ladders = ladders * rng.uniform(0.5, 1.5, (channels, 1)) + rng.uniform(-1.0, 1.0, (channels, 1))
    x = np.moveaxis(ladders.reshape((channels, shape[0]) + shape[2:]), 0, 1)
    return [np.ascontiguousarray(x), _away_from(rng, (channels,), margin=0.5), _uniform(rng, (channels,))]


def _running_stats(x: Tensor) -> tuple[Tensor, Tensor]:
    """Fixed running mean in [-0.5, 0.5] and running variance in [0.5, 2] per channel (float32 for float16 x)."""
    channels = x.shape[1]
    dtype = np.float32 if x.dtype == np.float16 else x.dtype
    return (Tensor(np.linspace(-0.5, 0.5, channels), dtype=dtype, device=x.device),
            Tensor(np.linspace(0.5, 2.0, channels), dtype=dtype, device=x.device))


register(
    "batch_norm",
    lambda x, w, b: (F.batch_norm(x, *_running_stats(x), w, b, training=True, momentum=0.2),
                     F.batch_norm(x, None, None, training=True)),
    _batch_norm_inputs,
    (F.BatchNormFunction,),
    "training mode, x (N, C), (N, C, L) or (N, C, H, W) with >= 3 values per channel, γ and β differentiated; "
    "with running statistics updated and without, affine and not",
)
register(
    "batch_norm_eval",
    lambda x, w, b: (F.batch_norm(x, *_running_stats(x), w, b), F.batch_norm(x, *_running_stats(x))),
    _batch_norm_inputs,
    (F.BatchNormEvalFunction,),
    "evaluation mode with fixed running statistics (mean in [-0.5, 0.5], variance in [0.5, 2]); affine and not",
)
register(
    "batch_norm_staged",
    lambda x, w, b: (F.batch_norm_staged(x, w, b), F.batch_norm_staged(x, eps=1e-3)),
    _batch_norm_inputs,
    (F.BatchNormStagedFunction,),
    "the slides' node-by-node backward (training mode), affine, and not affine with eps 1e-3",
)
register(
    "sync_batch_norm",
    lambda x, w, b: (F.SyncBatchNormFunction.apply(x, w, b, running_mean=_running_stats(x)[0].data, momentum=0.2),
                     F.SyncBatchNormFunction.apply(x, 1.0, 0.0)),
    _batch_norm_inputs,
    (F.SyncBatchNormFunction,),
    "synchronized batchnorm in a world of one process (the all-reduces return their input); across 2 and 4 MPI "
    "processes it is gradchecked in tests/test_distributed.py",
)


# ----------------------------------------------------------------------------------------------------------------
# convolution
# ----------------------------------------------------------------------------------------------------------------
def _conv2d_inputs(rng: np.random.Generator) -> list[np.ndarray]:
    """x (N, C, H, W) with N 1-2, C 1-3, H and W 3-4; W (O, C, K, K) with O 1-3 and K 1-3; b (O,). Convolution is
    bilinear (no kinks), so any moderate values do."""
    n, c, o, k = int(rng.integers(1, 3)), int(rng.integers(1, 4)), int(rng.integers(1, 4)), int(rng.integers(1, 4))
    h, w = (int(v) for v in rng.integers(3, 5, size=2))
    return [_uniform(rng, (n, c, h, w)), _uniform(rng, (o, c, k, k), -1.0, 1.0), _uniform(rng, (o,))]


register("conv2d", lambda x, w, b: (F.conv2d(x, w, b), F.conv2d(x, w)), _conv2d_inputs, (F.Conv2dFunction,),
         "F.conv2d(x, W, b) and without bias; stride 1, no padding; x (N, C, 3-4, 3-4), kernels 1-3")
register(
    "conv2d_options",
    lambda x, w, b: (F.conv2d(x, w, b, stride=2, padding=1), F.conv2d(x, w, padding=(2, 1), dilation=2),
                     F.conv2d(x, w, b, stride=(1, 2), padding=(0, 1)), F.conv2d(x, w, padding="same", dilation=(1, 2))),
    _conv2d_inputs,
    (F.Conv2dFunction,),
    "stride 2 with padding 1; dilation 2 with padding (2, 1); stride (1, 2) with padding (0, 1); 'same' padding",
)


# ----------------------------------------------------------------------------------------------------------------
# pooling
# ----------------------------------------------------------------------------------------------------------------
def _pool_inputs(draw: Callable[..., np.ndarray]) -> Callable[[np.random.Generator], list[np.ndarray]]:
    """make_inputs for pooling: x (N, C, H, W) with N 1-2, C 1-2, H and W 2-4 (every kernel in the entries fits)."""
    def make(rng: np.random.Generator) -> list[np.ndarray]:
        n, c = (int(v) for v in rng.integers(1, 3, size=2))
        h, w = (int(v) for v in rng.integers(2, 5, size=2))
        return [draw(rng, (n, c, h, w))]
    return make


register(
    "max_pool2d",
    lambda x: (F.max_pool2d(x, 2), F.max_pool2d(x, 2, stride=1, padding=1), F.max_pool2d(x, 3, stride=2, padding=1),
               F.max_pool2d(x, 2, stride=1, padding=1, dilation=2)),
    _pool_inputs(_distinct),
    (F.MaxPool2dFunction,),
    "x (N, C, 2-4, 2-4) without ties (values >= 0.04 apart); kernel 2; kernel 2 stride 1 padding 1 (overlapping "
    "windows); kernel 3 stride 2 padding 1; kernel 2 stride 1 padding 1 dilation 2",
)
register(
    "avg_pool2d",
    lambda x: (F.avg_pool2d(x, 2), F.avg_pool2d(x, 2, stride=1, padding=1),
               F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False), F.avg_pool2d(x, (2, 1), (1, 2))),
    _pool_inputs(_uniform),
    (F.AvgPool2dFunction,),
    "x (N, C, 2-4, 2-4); kernel 2; kernel 2 stride 1 padding 1; kernel 3 stride 2 padding 1 without counting the "
    "padding; kernel (2, 1) stride (1, 2)",
)


# ----------------------------------------------------------------------------------------------------------------
# softmax
# ----------------------------------------------------------------------------------------------------------------
register(
    "softmax",
    lambda x: (F.softmax(x, dim=-1), F.softmax(x, dim=0), F.softmax(x.transpose(0, -1), dim=-1)),
    _one(_uniform),
    (F.SoftmaxFunction,),
    "along the last axis, the first, and the last of a transposed (non-contiguous) view; x of 1-3 axes, sides 1-4 "
    "(size-1 axes: softmax 1, gradient 0), values in [-1.5, 1.5] (smooth everywhere: ties of the max cancel)",
)
register(
    "log_softmax",
    lambda x: (F.log_softmax(x, dim=-1), F.log_softmax(x, dim=0), F.log_softmax(x.transpose(0, -1), dim=-1)),
    _one(_uniform),
    (F.LogSoftmaxFunction,),
    "along the last axis, the first, and the last of a transposed (non-contiguous) view; as softmax's",
)


# ----------------------------------------------------------------------------------------------------------------
# data parallel
# ----------------------------------------------------------------------------------------------------------------
register(
    "ddp_gradient_sink",
    lambda x: _GradientSink.apply(x, reducer=None),
    _one(_uniform),
    (_GradientSink,),
    "DistributedDataParallel's identity on the model's outputs (its backward queues the gradient all-reduce; "
    "without a reducer, as here, it is the identity)",
)
