"""The package's layout is its architecture: layers that import only downwards, no import circle, ops that are math.

Read from the source with ``ast`` (nothing is imported):

* no circle among the package's modules, counting the imports inside functions too (a lazy import that closes a
  circle is still a circle);
* the layers import downwards only: the core (backend, autograd, ops, tensor ...) never imports the library (nn,
  optim, amp, distributed, serialization), the tools (gradcheck, testing) or the apps (cli, train, datasets ...); the
  library never imports tools or apps; the tape (``autograd/``) and the ops never import the Tensor's surface (``tensor.py``), and the
  backends import neither;
* a differentiable op's ``forward`` and ``backward`` raise nothing: the public function or module checks the
  inputs, so the Function is the math alone;
* the files a learner reads first stay short: the Tensor under 500 lines, the backward walk under 200.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "tinygrad_edu"

#: Each module's layer, by the first matching prefix (the longest first). Lower layers come first.
LAYERS = {
    "backend": ["tinygrad_edu.backend"],
    "tape": ["tinygrad_edu.autograd"],
    "ops": ["tinygrad_edu.ops", "tinygrad_edu.arguments", "tinygrad_edu.dtypes"],
    "core": ["tinygrad_edu.tensor", "tinygrad_edu.composite", "tinygrad_edu.functions", "tinygrad_edu.creation"],
    "library": ["tinygrad_edu.nn", "tinygrad_edu.optim", "tinygrad_edu.amp", "tinygrad_edu.distributed",
                "tinygrad_edu.serialization", "tinygrad_edu.jit", "tinygrad_edu.viz", "tinygrad_edu.monitor"],
    "tools": ["tinygrad_edu.gradcheck", "tinygrad_edu.testing"],
    "apps": ["tinygrad_edu.cli", "tinygrad_edu.train", "tinygrad_edu.datasets", "tinygrad_edu.examples",
             "tinygrad_edu.benchmarks", "tinygrad_edu.__main__"],
}
ORDER = list(LAYERS)

#: forward/backward that may raise, and why (checked by name: a new one must be added here with its reason).
RAISING_FUNCTIONS = {
    "SyncBatchNormFunction.forward": "the global count of values per channel is known only after its all-reduce",
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(name: str) -> list[tuple[str, bool]]:
    """(imported module of the package, inside a function?) for every import statement of module ``name``; the
    imports under ``if TYPE_CHECKING:`` do not run and are left out."""
    path, found = MODULES[name], []
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and isinstance(child.test, ast.Name) and child.test.id == "TYPE_CHECKING":
                continue
            nested = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            targets: list[str] = []
            if isinstance(child, ast.Import):
                targets = [a.name for a in child.names]
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:  # relative: from . import x
                    anchor = package.split(".")[: len(package.split(".")) - (child.level - 1)]
                    base = ".".join(anchor + ([base] if base else []))
                submodules = [f"{base}.{a.name}" for a in child.names if f"{base}.{a.name}" in MODULES]
                # "from pkg import submodule" depends on the submodule; "from pkg import name" on pkg itself
                targets = submodules + ([base] if len(submodules) < len(child.names) else [])
            found.extend((t, in_function) for t in targets if t in MODULES and t != name)
            visit(child, nested)

    visit(ast.parse(path.read_text(encoding="utf-8")), False)
    return found


GRAPH = {name: _imports(name) for name in MODULES}


def _layer(name: str) -> str | None:
    matches = [(len(prefix), layer) for layer, prefixes in LAYERS.items() for prefix in prefixes
               if name == prefix or name.startswith(prefix + ".")]
    return max(matches)[1] if matches else None


def _circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles = []
    for root in edges:
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    circles.append(sorted(component))
    return circles


def test_every_module_has_a_layer():
    assert [name for name in MODULES if name != "tinygrad_edu" and _layer(name) is None] == []


@pytest.mark.parametrize("lazy", [False, True], ids=["module-level imports", "with imports inside functions"])
def test_no_import_circle(lazy):
    edges = {name: {t for t, in_function in imports if lazy or not in_function} for name, imports in GRAPH.items()}
    edges = {name: targets - {"tinygrad_edu"} for name, targets in edges.items() if name != "tinygrad_edu"}
    assert _circles(edges) == []


def test_the_circle_checker_finds_a_circle():
    assert _circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_layers_import_only_downwards():
    upward = []
    for name, imports in GRAPH.items():
        layer = _layer(name)
        if layer is None:
            continue
        for target, _ in imports:
            target_layer = _layer(target)
            if target_layer is not None and ORDER.index(target_layer) > ORDER.index(layer):
                upward.append(f"{name} ({layer}) imports {target} ({target_layer})")
    assert upward == []


def test_tape_and_ops_never_import_the_tensor_surface():
    for name, imports in GRAPH.items():
        if _layer(name) in ("backend", "tape", "ops"):
            assert "tinygrad_edu.tensor" not in {t for t, _ in imports}, name


def _function_classes() -> list[tuple[str, ast.ClassDef]]:
    """(module, class) for every class of the package whose bases name a Function subclass."""
    classes = {}
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef):
                classes[node.name] = (name, node, [getattr(b, "id", getattr(b, "attr", "")) for b in node.bases])
    functions = {"Function"}
    changed = True
    while changed:
        changed = False
        for cls, (_, _, bases) in classes.items():
            if cls not in functions and functions & set(bases):
                functions.add(cls)
                changed = True
    return [(classes[c][0], classes[c][1]) for c in sorted(functions - {"Function"}) if c in classes
            and classes[c][0] != "tinygrad_edu.autograd.function"]


def test_ops_forward_and_backward_are_the_math():
    functions = _function_classes()
    assert len(functions) > 40  # the walk found the op library
    raising = []
    for _, cls in functions:
        for method in cls.body:
            if isinstance(method, ast.FunctionDef) and method.name in ("forward", "backward"):
                if any(isinstance(n, ast.Raise) for n in ast.walk(method)):
                    raising.append(f"{cls.name}.{method.name}")
    assert sorted(raising) == sorted(RAISING_FUNCTIONS), "a forward/backward that raises: check the inputs in the " \
        "public function instead (or add it to RAISING_FUNCTIONS with the reason)"


def test_the_files_a_learner_reads_first_stay_short():
    lines = {name: len(MODULES[name].read_text(encoding="utf-8").splitlines())
             for name in ("tinygrad_edu.tensor", "tinygrad_edu.autograd.engine")}
    assert lines["tinygrad_edu.tensor"] < 500, lines
    assert lines["tinygrad_edu.autograd.engine"] < 200, lines
