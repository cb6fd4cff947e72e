"""The registry's machinery: ``Differentiable`` (one entry), ``REGISTRY``, ``register``, ``entries``, the tolerances,
and the meta-test's ``all_functions`` and ``uncovered``. The package (``tinygrad_edu.testing.registry``) imports it
and then the family modules, which register their entries through it: see the package's docstring."""


from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

import tinygrad_edu
from tinygrad_edu.autograd import Function
from tinygrad_edu.gradcheck import GradcheckReport, check_gradients
from tinygrad_edu.tensor import Tensor

__all__ = ["Differentiable", "REGISTRY", "TOLERANCES", "UNREGISTERED", "all_functions", "entries", "register",
           "uncovered"]

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
    "tinygrad_edu.amp.dfp16.DFP16LinearFunction": "its forward quantizes to DFP16, which is piecewise constant at "
    "the scale of a quantization step, so finite differences see 0 or a jump, never its straight-through backward; "
    "tests/test_dfp16.py checks the backward against LinearFunction's formulas on the dequantized operands",
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
    """Every ``Function`` subclass defined in the package (each of its modules, subpackages included, is imported
    first)."""
    for module in pkgutil.walk_packages(tinygrad_edu.__path__, "tinygrad_edu."):
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
