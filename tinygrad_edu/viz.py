"""``tinygrad_edu.viz``: the tape a forward pass recorded, drawn.

``g = viz.draw(loss, model)`` walks the graph behind ``loss`` (before ``backward``, which frees it) and returns a
``TapeGraph``: one node per recorded op, labelled with its ``Function`` and the memory its saved arrays hold, and
one node per leaf (parameters named by their path in ``model``, ``0.weight``; other inputs by shape); each edge
carries the shape and dtype that flows along it. Ops whose backward is derived by hand for a whole layer
(``nn.functional``: batch norm, linear, conv2d, ...) are filled; the primitives of ``tinygrad_edu.ops`` (add, mul,
reshape, ...) are white, so a composed layer shows up as the chain of primitives the tape records for it.

``g.dot()`` is the DOT text (Graphviz's language); ``g.render("step.svg")`` (or ``.png``) runs Graphviz's ``dot``
when it is on the PATH, and otherwise draws the same graph with matplotlib (``pip install tinygrad_edu[plot]``),
layer by layer from the inputs to the loss, so that ``pip install`` alone gives a picture.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tinygrad_edu.tensor import Tensor

__all__ = ["TapeGraph", "draw"]


@dataclass
class TapeGraph:
    """Nodes ``{id: (label, kind)}`` with kind "op", "hand-derived" or "leaf"; edges ``(source, target, label)``
    from an input to the op that read it; ``saved_bytes`` the tape's saved arrays in all."""

    nodes: dict[str, tuple[str, str]] = field(default_factory=dict)
    edges: list[tuple[str, str, str]] = field(default_factory=list)
    saved_bytes: int = 0
    root: str = ""

    def dot(self) -> str:
        """The graph in the DOT language."""
        style = {"leaf": 'shape=ellipse, style=filled, fillcolor="#e8f0fe"',
                 "hand-derived": 'shape=box, style="filled,rounded", fillcolor="#ffd8a8"',
                 "op": 'shape=box, style=rounded'}
        lines = ["digraph tape {", "  rankdir=BT;", '  node [fontname="Helvetica", fontsize=10];',
                 '  edge [fontname="Helvetica", fontsize=8];',
                 f'  label="the tape behind the loss: {len(self.nodes)} nodes, saved arrays {_bytes(self.saved_bytes)}'
                 ' (filled: backward derived by hand for the whole layer)";']
        for node, (label, kind) in self.nodes.items():
            lines.append(f'  {node} [label="{_escape(label)}", {style[kind]}];')
        for source, target, label in self.edges:
            lines.append(f'  {source} -> {target} [label="{_escape(label)}"];')
        lines.append("}")
        return "\n".join(lines) + "\n"

    def render(self, path: str | Path) -> Path:
        """Write the picture (``.svg`` or ``.png``, by the suffix) or the DOT text (``.dot``); returns the path."""
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix not in (".svg", ".png", ".dot"):
            raise ValueError(f"viz.render: {path.name}: the file name must end in .svg, .png or .dot")
        if suffix == ".dot":
            path.write_text(self.dot(), encoding="utf-8")
            return path
        dot = shutil.which("dot")
        if dot is not None:
            subprocess.run([dot, f"-T{suffix[1:]}", "-o", str(path)], input=self.dot(), text=True, check=True)
            return path
        return self._render_with_matplotlib(path)

    def _render_with_matplotlib(self, path: Path) -> Path:
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError as exc:
            raise ImportError("viz.render: Graphviz's dot is not on the PATH and matplotlib is not installed; "
                              "pip install 'tinygrad_edu[plot]', or write .dot and render it elsewhere") from exc
        xy = self._layout()
        width = max(x for x, _ in xy.values()) + 1
        height = max(y for _, y in xy.values()) + 1
        fig, ax = plt.subplots(figsize=(max(6.0, 1.9 * width), max(4.0, 1.0 * height)))
        for source, target, label in self.edges:
            (x0, y0), (x1, y1) = xy[source], xy[target]
            ax.annotate("", (x1, y1 - 0.18), (x0, y0 + 0.18), arrowprops=dict(arrowstyle="->", color="gray"))
            ax.text((x0 + x1) / 2, (y0 + y1) / 2, label, fontsize=6, color="dimgray", ha="center")
        colors = {"leaf": "#e8f0fe", "hand-derived": "#ffd8a8", "op": "white"}
        for node, (label, kind) in self.nodes.items():
            x, y = xy[node]
            ax.text(x, y, label, ha="center", va="center", fontsize=7,
                    bbox=dict(boxstyle="round", facecolor=colors[kind], edgecolor="black"))
        ax.set_xlim(-0.7, width - 0.3)
        ax.set_ylim(-0.7, height - 0.3)
        ax.set_axis_off()
        ax.set_title(f"the tape behind the loss: {len(self.nodes)} nodes, saved arrays {_bytes(self.saved_bytes)} "
                     "(orange: backward derived by hand for the whole layer)", fontsize=9)
        fig.savefig(path, bbox_inches="tight")
        plt.close(fig)
        return path

    def _layout(self) -> dict[str, tuple[float, float]]:
        """(x, y) per node: an op one row above its highest input, a leaf just below its first reader; within a
        row, nodes ordered by where the nodes that read them sit (top down), one unit apart."""
        inputs: dict[str, list[str]] = {n: [] for n in self.nodes}
        readers: dict[str, list[str]] = {n: [] for n in self.nodes}
        for source, target, _ in self.edges:
            inputs[target].append(source)
            readers[source].append(target)
        level: dict[str, int] = {}

        def of(node: str) -> int:
            if node not in level:
                ops = [i for i in inputs[node] if inputs[i] or not readers[i]]
                level[node] = 1 + max((of(i) for i in ops), default=0) if inputs[node] else 0
            return level[node]

        for node in self.nodes:
            if inputs[node]:
                of(node)
        for node in self.nodes:  # leaves: just below their first reader
            if not inputs[node]:
                level[node] = min((level[r] for r in readers[node]), default=1) - 1
        rows: dict[int, list[str]] = {}
        for node in self.nodes:
            rows.setdefault(level[node], []).append(node)
        x: dict[str, float] = {}
        for lv in sorted(rows, reverse=True):  # the loss's row first; below, each node under its readers
            row = sorted(rows[lv], key=lambda n: (np.mean([x[r] for r in readers[n] if r in x])
                                                  if any(r in x for r in readers[n]) else 0.0))
            start = -(len(row) - 1) / 2
            for i, n in enumerate(row):
                x[n] = start + i
        low = min(x.values())
        return {n: (x[n] - low, float(level[n])) for n in self.nodes}


def draw(root: Tensor, model: Any = None) -> TapeGraph:
    """The graph of the tape behind ``root`` (call it before ``backward``); ``model`` names its parameters and
    buffers as ``named_parameters()`` does."""
    if root._ctx is None:
        raise ValueError("viz.draw: this tensor was not produced by a recorded op (a leaf, or computed under no_grad)")
    if root._ctx.parents is None:
        raise ValueError("viz.draw: the graph was freed by backward(); draw before it, or backward(retain_graph=True)")
    names: dict[int, str] = {}
    if model is not None:
        for name, p in model.named_parameters():
            names.setdefault(id(p), name)
        for name, b in model.named_buffers():
            names.setdefault(id(b), name)
    graph = TapeGraph()
    ids: dict[int, str] = {}
    for tensor in _walk(root):
        node = ids[id(tensor)] = f"n{len(ids)}"
        ctx = tensor._ctx
        if ctx is None or ctx.parents is None:  # a leaf, or an op output whose part of the tape backward freed
            name = names.get(id(tensor), "input" if ctx is None else f"{type(ctx).__name__} output (freed)")
            graph.nodes[node] = (f"{name}\n{_shape(tensor)}", "leaf")
            continue
        saved = sum(int(a.size) * np.dtype(str(a.dtype)).itemsize if hasattr(a, "size") and hasattr(a, "dtype")
                    else 0 for a in (ctx._saved or ()))
        graph.saved_bytes += saved
        kind = "op" if type(ctx).__module__.startswith("tinygrad_edu.ops") else "hand-derived"
        graph.nodes[node] = (f"{type(ctx).__name__}\nsaved {_bytes(saved)}", kind)
        for parent in ctx.parents:
            if isinstance(parent, Tensor) and id(parent) in ids:
                graph.edges.append((ids[id(parent)], node, _shape(parent)))
    graph.root = ids[id(root)]
    return graph


def _walk(root: Tensor) -> Iterator[Tensor]:
    """The tensors behind ``root``, each once: the leaves, then the ops in the order they ran."""
    seen, todo, found = {id(root)}, [root], []
    while todo:
        tensor = todo.pop()
        found.append(tensor)
        if tensor._ctx is not None and tensor._ctx.parents is not None:
            for parent in tensor._ctx.parents:
                if isinstance(parent, Tensor) and id(parent) not in seen:
                    seen.add(id(parent))
                    todo.append(parent)
    leaves = [t for t in found if t._ctx is None or t._ctx.parents is None]
    ops = [t for t in found if t._ctx is not None and t._ctx.parents is not None]
    return iter(leaves + sorted(ops, key=lambda t: t._ctx.sequence))


def _shape(t: Tensor) -> str:
    return f"{list(t.shape)} {t.dtype}"


def _bytes(n: float) -> str:
    units, k = ("B", "KiB", "MiB", "GiB"), 0
    while n >= 1024 and k < len(units) - 1:
        n, k = n / 1024, k + 1
    return f"{n:.0f} B" if k == 0 else f"{n:.1f} {units[k]}"


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
