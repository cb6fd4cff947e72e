"""Gradient checking: compare a backward pass with finite differences, and say where and why they disagree.

For an op ``y = f(x)`` and a random upstream gradient ``u`` (never an implicit sum of the outputs: the sum of a
batch-normalized output does not depend on its input, so a summed check would pass a wrong batchnorm backward),
the scalar ``L(x) = <u, f(x)>`` has the gradient ``dL/dx = J(x)ᵀ u``, which is exactly what ``backward(u)``
computes. Its numerical estimate, element by element, is the central difference

    dL/dx_i ≈ (L(x + ε e_i) - L(x - ε e_i)) / (2 ε)            error O(ε²)

or, in directional mode (for large inputs, as Chainer does), along a few random unit directions d:
``(L(x + ε d) - L(x - ε d)) / (2 ε) ≈ <dL/dx, d>``.

* The analytic pass runs in the inputs' own dtype and on their device. The numerical pass upcasts the checked
  inputs to float64 and evaluates ``fn`` on the same device (closures over device tensors and the device's random
  generator stay valid there); each ``L`` is brought to the host and the differences are formed in float64.
* The random generator is reseeded before every evaluation, so stochastic ops (dropout) draw the same mask in every
  pass and the check is valid.
* Kinks: where the central difference disagrees, the one-sided differences (L(x + ε e_i) - L(x)) / ε and
  (L(x) - L(x - ε e_i)) / ε are compared. If they differ by far more than smooth curvature explains, the step
  straddles a non-differentiable point (ReLU at 0, a tie in max, a clip bound): that is reported as a kink, not as a
  wrong gradient. At a kink any value between the two one-sided derivatives is a valid (sub)gradient.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tinygrad_edu.autograd import no_grad
from tinygrad_edu.backend import manual_seed
from tinygrad_edu.dtypes import is_floating
from tinygrad_edu.tensor import Tensor


class GradcheckError(AssertionError):
    """The analytic gradient of an input differs from its finite-difference estimate."""


class NonDifferentiablePointError(AssertionError):
    """The analytic and numerical gradients disagree only where the finite difference straddles a kink."""


@dataclass
class Mismatch:
    """One element (or direction) where the analytic gradient and the numerical estimate disagree."""

    index: tuple[int, ...]  # the element; in directional mode, (direction number,)
    analytic: float
    numeric: float
    left: float  # one-sided derivatives: (L(x) - L(x - ε)) / ε and (L(x + ε) - L(x)) / ε
    right: float
    kink: bool  # the one-sided derivatives disagree: the step straddles a non-differentiable point
    nonfinite: bool = False  # the analytic value or the numeric estimate is NaN or infinite: never a pass

    def what(self) -> str:
        """What is wrong with this element, in words."""
        if not self.nonfinite:
            return ""
        if not np.isfinite(self.analytic):
            return f"  NON-FINITE: the analytic gradient (backward) is {self.analytic}"
        return (f"  NON-FINITE: the numeric derivative is {self.numeric}: the output is not finite after a step of "
                "eps from this input")

    @property
    def abs_error(self) -> float:
        return abs(self.analytic - self.numeric)


@dataclass
class InputReport:
    """The comparison for one input tensor."""

    position: int
    shape: tuple[int, ...]
    dtype: str
    device: str
    max_abs_error: float = 0.0
    max_rel_error: float = 0.0
    mismatches: list[Mismatch] = field(default_factory=list)
    name: str = ""  #: how the report names it: "input 0", or a module's parameter name such as "0.weight"
    #: (index, analytic, numeric) of every element compared (element by element checks), in order
    compared: list[tuple[tuple[int, ...], float, float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.name = self.name or f"input {self.position}"

    def summary(self) -> str:
        """One line: the input, its errors and its mismatches."""
        kinks = sum(m.kink for m in self.mismatches)
        found = f"{len(self.mismatches)} mismatch(es), {kinks} at kinks" if self.mismatches else "passed"
        return (f"{self.name} (shape {self.shape}, dtype {self.dtype}, device {self.device}): {found}; max abs error "
                f"{self.max_abs_error:.3g}, max rel error {self.max_rel_error:.3g}")


@dataclass
class GradcheckReport:
    """Everything ``check_gradients`` measured. ``passed``: no mismatch, or mismatches only at kinks whose analytic
    value lies between the one-sided derivatives (with ``kinks="allow"``)."""

    inputs: list[InputReport]
    atol: float
    rtol: float
    directional: bool
    eps: float = 1e-6
    seed: int = 0
    #: where the function's output is NaN or infinite at the inputs given ("output 0 at index (1,) is nan"), else
    #: None: there no finite difference can check a gradient, and the report fails
    nonfinite_output: str | None = None

    @property
    def mismatches(self) -> list[tuple[InputReport, Mismatch]]:
        return [(r, m) for r in self.inputs for m in r.mismatches]

    @property
    def wrong(self) -> list[tuple[InputReport, Mismatch]]:
        """Mismatches that are not explained by a kink (a NaN or infinite value never is)."""
        return [(r, m) for r, m in self.mismatches if not m.kink or m.nonfinite]

    @property
    def max_abs_error(self) -> float:
        return max((r.max_abs_error for r in self.inputs), default=0.0)

    @property
    def max_rel_error(self) -> float:
        return max((r.max_rel_error for r in self.inputs), default=0.0)

    @property
    def passed(self) -> bool:
        return not self.mismatches and self.nonfinite_output is None

    def what(self) -> str:
        """What the numbers are: products with a random upstream gradient, not raw derivatives."""
        compared = ("uᵀJ d along random unit directions d" if self.directional else
                    "the elements of uᵀJ (the gradient of L = <u, f(x)>)")
        return (f"compared: {compared} for a random upstream gradient u (seed {self.seed}); analytic: backward(u), "
                f"numeric: central differences of L with step eps={self.eps:g}; an element fails when |analytic - "
                f"numeric| > atol + rtol·|numeric| (atol={self.atol:g}, rtol={self.rtol:g})")

    def __str__(self) -> str:
        lines = [f"GradcheckReport: {'passed' if self.passed else 'FAILED'}, {len(self.inputs)} input(s) checked; "
                 f"max abs error {self.max_abs_error:.3g}, max rel error {self.max_rel_error:.3g}", self.what()]
        lines += ["  " + r.summary() for r in self.inputs]
        if self.mismatches or self.nonfinite_output:
            lines.append(self.describe())
        return "\n".join(lines)

    __repr__ = __str__

    def describe(self, limit: int = 5) -> str:
        """A readable account of the worst mismatches, per input (non-finite values first)."""
        lines = []
        if self.nonfinite_output is not None:
            lines.append(f"NON-FINITE OUTPUT: {self.nonfinite_output} at the inputs given, so every finite difference "
                         "there is NaN or infinite and no gradient can be checked: choose inputs in the function's "
                         "domain")
        for r in self.inputs:
            if not r.mismatches:
                continue
            where = "direction" if self.directional else "index"
            lines.append(
                f"{r.name} (shape {r.shape}, dtype {r.dtype}, device {r.device}): "
                f"{len(r.mismatches)} mismatch(es), {sum(m.kink for m in r.mismatches)} at kinks; worst:"
            )
            worst_first = sorted(r.mismatches, key=lambda m: (not m.nonfinite, -np.nan_to_num(m.abs_error, nan=np.inf)))
            for m in worst_first[:limit]:
                rel = m.abs_error / (max(abs(m.analytic), abs(m.numeric), self.atol) or 1.0)
                kink = (f"  KINK: one-sided derivatives {m.left:.6g} (left), {m.right:.6g} (right)"
                        if m.kink and not m.nonfinite else "")
                lines.append(
                    f"  {where} {m.index}: analytic {m.analytic:.8g}, numeric {m.numeric:.8g}, "
                    f"abs err {m.abs_error:.3g}, rel err {rel:.3g}{kink}{m.what()}"
                )
        return "\n".join(lines)


def check_gradients(
    fn: Callable[..., Tensor | Sequence[Tensor]],
    inputs: Tensor | Sequence[Any],
    *,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    seed: int = 0,
    directions: int | None = None,
    names: Sequence[str] | None = None,
) -> GradcheckReport:
    """Compare ``fn``'s analytic gradients with finite differences for every input tensor that requires grad.

    An element passes when ``|analytic - numeric| <= atol + rtol * |numeric|``. ``directions=k`` compares along
    ``k`` random directions (jointly over all checked inputs) instead of element by element. ``names`` labels the
    inputs in the report (default "input 0", "input 1", ...). Returns a report; ``gradcheck`` is the same check that
    raises.
    """
    inputs = (inputs,) if isinstance(inputs, Tensor) else tuple(inputs)
    if names is not None and len(names) != len(inputs):
        raise ValueError(f"gradcheck: {len(names)} names for {len(inputs)} inputs")
    checked = [i for i, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input tensor has requires_grad=True, so there is nothing to check")
    rng = np.random.default_rng(seed)

    # analytic: backward(u) through the op, in its own dtype and on its own device
    leaves = [Tensor(x).requires_grad_(True) if i in checked else x for i, x in enumerate(inputs)]
    manual_seed(seed)
    outputs = _as_tuple(fn(*leaves))
    upstream = [rng.standard_normal(out.shape) for out in outputs]
    total = None
    for out, u in zip(outputs, upstream):
        if out.requires_grad:
            term = (out * Tensor(u, dtype=out.dtype, device=out.device)).sum()
            total = term if total is None else total + term
    if total is not None:
        total.backward()
    analytic = {
        i: leaves[i].grad.numpy().astype(np.float64) if leaves[i].grad is not None else np.zeros(inputs[i].shape)
        for i in checked
    }

    # numeric: finite differences of L(x) = Σ <u, f(x)>, the inputs in float64
    wide = [Tensor(x, dtype=np.float64) if i in checked else x for i, x in enumerate(inputs)]

    def outputs() -> list[np.ndarray]:
        manual_seed(seed)
        with no_grad():
            return [o.numpy().astype(np.float64) for o in _as_tuple(fn(*wide))]

    def loss() -> float:
        return sum(float(np.sum(o * u)) for o, u in zip(outputs(), upstream))

    reports = [InputReport(i, inputs[i].shape, str(inputs[i].dtype), inputs[i].device,
                           name=names[i] if names is not None else "") for i in checked]
    at_center = outputs()
    nonfinite = _first_nonfinite(at_center)
    if nonfinite is not None:  # every difference would be NaN: nothing can be checked, and the check fails
        for report in reports:
            bad = ~np.isfinite(analytic[report.position])
            report.mismatches += [Mismatch(tuple(int(k) for k in i), float(analytic[report.position][tuple(i)]),
                                           np.nan, np.nan, np.nan, False, True) for i in np.argwhere(bad)]
        return GradcheckReport(reports, atol, rtol, directions is not None, eps, seed, nonfinite)
    center = sum(float(np.sum(o * u)) for o, u in zip(at_center, upstream))
    if directions is None:
        for report in reports:
            _check_elements(report, wide[report.position], analytic[report.position], loss, center, eps, atol, rtol)
    else:
        _check_directions(reports, wide, analytic, loss, center, eps, atol, rtol, directions, rng)
    return GradcheckReport(reports, atol, rtol, directions is not None, eps, seed)


def gradcheck(
    fn: Callable[..., Tensor | Sequence[Tensor]],
    inputs: Tensor | Sequence[Any],
    *,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    seed: int = 0,
    directions: int | None = None,
    kinks: str = "raise",
    names: Sequence[str] | None = None,
) -> bool:
    """Check ``fn``'s gradients with respect to every input tensor that requires grad; True when they are right.

    Raises ``GradcheckError`` naming the input, its worst elements (index, analytic, numeric, absolute and relative
    error) and the tolerances. Where the only disagreements sit on kinks (non-differentiable points straddled by the
    finite difference), raises ``NonDifferentiablePointError`` instead (``kinks="raise"``), or accepts them when the
    analytic value lies between the one-sided derivatives, i.e. is a valid subgradient (``kinks="allow"``).
    """
    if kinks not in ("raise", "allow"):
        raise ValueError(f"gradcheck: kinks must be 'raise' or 'allow', got {kinks!r}")
    report = check_gradients(fn, inputs, eps=eps, atol=atol, rtol=rtol, seed=seed, directions=directions,
                             names=names)
    if report.passed:
        return True
    tolerances = f"tolerances atol={atol:g}, rtol={rtol:g}, eps={eps:g}"
    if report.nonfinite_output is not None:
        raise GradcheckError(f"gradcheck: the function's output is not finite ({report.nonfinite_output}): no gradient "
                             f"can be checked there ({tolerances}).\n{report.what()}\n" + report.describe())
    if any(m.nonfinite for _, m in report.mismatches):
        raise GradcheckError(f"gradcheck: a gradient is NaN or infinite ({tolerances}).\n{report.what()}\n"
                             + report.describe())
    if report.wrong:
        raise GradcheckError(f"gradcheck: the analytic gradient is wrong ({tolerances}).\n{report.what()}\n"
                             + report.describe())
    if kinks == "allow" and all(_subgradient(m, atol, rtol) for _, m in report.mismatches):
        return True
    raise NonDifferentiablePointError(
        f"gradcheck: analytic and numeric gradients differ only where the finite difference straddles a "
        f"non-differentiable point ({tolerances}). Move the input away from the kink, or pass kinks='allow' to accept "
        f"any value between the one-sided derivatives.\n{report.what()}\n" + report.describe()
    )


def gradcheck_module(module: Any, *inputs: Tensor, **options: Any) -> bool:
    """Check a Module's gradients with respect to its (floating-point) inputs and every parameter.

    The parameters are passed to ``gradcheck`` as inputs of a function that runs the module with them in place, so
    each one is perturbed element by element like an input; a failure names them as ``named_parameters()`` does
    (``0.weight``), and the module's inputs as "input 0", "input 1", ... ``options`` go to ``gradcheck``.

    The check runs the module many times; the module is left as it was found: its buffers (batchnorm's running
    statistics, ``num_batches_tracked``) get their values back, and its parameters are never touched.
    """
    owners = [(owner, name) for _, owner in module.named_modules() for name in owner._parameters]
    names = [f"input {i}" for i in range(len(inputs))] + [
        f"{prefix}.{name}" if prefix else name for prefix, owner in module.named_modules() for name in owner._parameters]
    originals = [getattr(owner, name) for owner, name in owners]
    xs = [Tensor(x).requires_grad_(is_floating(x.dtype)) if isinstance(x, Tensor) else x for x in inputs]

    def run(*args: Any) -> Any:
        values, params = args[: len(xs)], args[len(xs) :]
        try:
            for (owner, name), p in zip(owners, params):
                object.__setattr__(owner, name, p)  # not registered: only this call sees it
            return module(*values)
        finally:
            for (owner, name), p in zip(owners, originals):
                object.__setattr__(owner, name, p)

    params = [Tensor(p).requires_grad_(True) for p in originals]
    buffers = [(b, b.backend.xp.asarray(b.data, copy=True)) for _, b in module.named_buffers() if b is not None]
    try:
        return gradcheck(run, [*xs, *params], names=names, **options)
    finally:  # the forward passes of the check updated them (training mode): put back what they held
        for buffer, values in buffers:
            buffer.data = values


# ----------------------------------------------------------------------------------------------------------------
def _first_nonfinite(outputs: list[np.ndarray]) -> str | None:
    """"output 0 at index (1,) is nan" for the first NaN or infinite element of the outputs, else None."""
    for k, out in enumerate(outputs):
        bad = np.argwhere(~np.isfinite(out))
        if len(bad):
            index = tuple(int(i) for i in bad[0])
            return f"output {k} at index {index} is {out[index]}" + (f" ({len(bad)} elements)" if len(bad) > 1 else "")
    return None


def _as_tuple(out: Any) -> tuple[Tensor, ...]:
    return tuple(out) if isinstance(out, (tuple, list)) else (out,)


def _differences(plus: float, minus: float, center: float, eps: float) -> tuple[float, float, float]:
    """Central, left and right difference quotients."""
    return (plus - minus) / (2 * eps), (center - minus) / eps, (plus - center) / eps


def _is_kink(left: float, right: float, center: float, eps: float, atol: float, rtol: float) -> bool:
    """One-sided derivatives that differ by more than curvature and round-off explain: a kink inside the step."""
    noise = 64 * np.finfo(np.float64).eps * max(abs(center), 1.0) / eps  # round-off of a one-sided quotient
    return abs(right - left) > 10 * (atol + rtol * max(abs(left), abs(right))) + noise


def _subgradient(m: Mismatch, atol: float, rtol: float) -> bool:
    low, high = min(m.left, m.right), max(m.left, m.right)
    slack = atol + rtol * max(abs(low), abs(high))
    return low - slack <= m.analytic <= high + slack


def _record(report: InputReport, index: tuple, analytic: float, central: float, left: float, right: float,
            center: float, eps: float, atol: float, rtol: float) -> None:
    if not (np.isfinite(analytic) and np.isfinite(central)):  # NaN fails every comparison: record it as a failure
        report.max_abs_error = report.max_rel_error = np.inf
        report.mismatches.append(Mismatch(index, analytic, central, left, right, False, True))
        return
    error = abs(analytic - central)
    report.max_abs_error = max(report.max_abs_error, error)
    scale = max(abs(analytic), abs(central), atol)
    report.max_rel_error = max(report.max_rel_error, error / scale if scale > 0 else 0.0)  # 0/0: both exactly 0
    if error > atol + rtol * abs(central):
        kink = _is_kink(left, right, center, eps, atol, rtol)
        report.mismatches.append(Mismatch(index, analytic, central, left, right, kink))


def _check_elements(report, x, grad, loss, center, eps, atol, rtol) -> None:
    data = x.data
    for flat in range(grad.size):
        index = tuple(int(k) for k in np.unravel_index(flat, grad.shape))
        original = float(data[index])
        data[index] = original + eps
        plus = loss()
        data[index] = original - eps
        minus = loss()
        data[index] = original
        central, left, right = _differences(plus, minus, center, eps)
        report.compared.append((index, float(grad[index]), central))
        _record(report, index, float(grad[index]), central, left, right, center, eps, atol, rtol)


def _check_directions(reports, wide, analytic, loss, center, eps, atol, rtol, count, rng) -> None:
    originals = {r.position: wide[r.position].data for r in reports}
    xp = {r.position: wide[r.position].backend for r in reports}
    for k in range(count):
        direction = {r.position: rng.standard_normal(r.shape) for r in reports}
        norm = np.sqrt(sum(float(np.sum(d * d)) for d in direction.values())) or 1.0
        direction = {p: d / norm for p, d in direction.items()}
        expected = sum(float(np.sum(analytic[p] * d)) for p, d in direction.items())
        values = []
        for sign in (1.0, -1.0):
            for p, d in direction.items():
                wide[p].data = originals[p] + xp[p].from_host(sign * eps * d)
            values.append(loss())
        for p in direction:
            wide[p].data = originals[p]
        central, left, right = _differences(values[0], values[1], center, eps)
        _record(reports[0], (k,), expected, central, left, right, center, eps, atol, rtol)
