"""``tinygrad-edu explain NAME``: where a registered op's forward and backward live, its math, and its gradient
checked live, analytic next to numeric, on a small input (``--source``: the code of forward and backward too)."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from tinygrad_edu.testing.registry import REGISTRY

ROOT = Path(__file__).resolve().parents[2]  # the checkout (or site-packages): locations are shown relative to it


def where(function: Any) -> str:
    """``path:line`` of a function or class, relative to the package's parent folder."""
    path = Path(inspect.getsourcefile(function)).resolve()
    line = inspect.getsourcelines(function)[1]
    try:
        path = path.relative_to(ROOT)
    except ValueError:
        pass
    return f"{path}:{line}"


def explain(name: str, source: bool = False, seed: int = 0, shown: int = 6) -> str:
    """The text ``tinygrad-edu explain NAME`` prints. ``KeyError`` (listing the known names) for an unknown one."""
    if name not in REGISTRY:
        raise KeyError(f"unknown name {name!r}; known names: {', '.join(REGISTRY)}")
    entry = REGISTRY[name]
    out = [f"{entry.name}: {entry.note}" if entry.note else entry.name, ""]
    for function in entry.functions:
        out.append(f"{function.__module__}.{function.__qualname__}")
        out.append(f"  forward   {where(function.forward)}")
        out.append(f"  backward  {where(function.backward)}")
        doc = inspect.getdoc(function)
        if doc:
            out += ["", *("    " + line if line else "" for line in doc.splitlines())]
        if source:
            for part in (function.forward, function.backward):
                out += ["", *("    " + line.rstrip() if line.strip() else "" for line in
                              inspect.getsource(part).splitlines())]
        out.append("")
    _, report = entry.check(seed)
    options = entry.options()
    out.append(f"gradient check, float64, seed {seed}: L = Σ <u, f(x)> for a random upstream u; numeric = central "
               f"difference (eps {options['eps']:g}); an element passes when |analytic - numeric| <= "
               f"{options['atol']:g} + {options['rtol']:g} |numeric|")
    for r in report.inputs:
        out.append(f"  {r.name}, shape {r.shape}: max abs error {r.max_abs_error:.2e}, max rel error "
                   f"{r.max_rel_error:.2e}")
        out.append(f"    {'index':<14} {'analytic':>14} {'numeric':>14} {'difference':>11}")
        for index, analytic, numeric in r.compared[:shown]:
            out.append(f"    {str(index):<14} {analytic:>14.8f} {numeric:>14.8f} {analytic - numeric:>11.2e}")
        if len(r.compared) > shown:
            out.append(f"    ... {len(r.compared) - shown} more")
    out.append(f"verdict: {'passed' if report.passed else 'FAILED'}")
    if not report.passed:
        out.append(report.describe())
    return "\n".join(out)

