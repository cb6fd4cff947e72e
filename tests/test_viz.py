"""tinygrad_edu.viz: the recorded tape as nodes and edges, DOT text, and a picture with or without Graphviz."""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest

import tinygrad_edu as tg
from tinygrad_edu import Tensor, nn, viz
from tinygrad_edu.nn import functional as F


def _small():
    tg.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 3))
    loss = F.cross_entropy(model(Tensor(np.ones((5, 2), np.float32))), Tensor(np.zeros(5, np.int64)))
    return model, loss


def test_nodes_and_edges_of_a_small_graph():
    model, loss = _small()
    graph = viz.draw(loss, model)
    labels = {label.split("\n")[0]: kind for label, kind in graph.nodes.values()}
    assert labels == {"input": "leaf", "0.weight": "leaf", "0.bias": "leaf", "2.weight": "leaf", "2.bias": "leaf",
                      "LinearFunction": "hand-derived", "Relu": "op", "CrossEntropy": "hand-derived"}
    assert len(graph.nodes) == 10  # 2 inputs (x, labels), 4 parameters, 2 Linear, ReLU, cross-entropy
    named = {node: label.split("\n")[0] for node, (label, _) in graph.nodes.items()}
    edges = {(named[a], named[b], label) for a, b, label in graph.edges}
    assert ("0.weight", "LinearFunction", "[4, 2] float32") in edges
    assert ("Relu", "LinearFunction", "[5, 4] float32") in edges
    assert ("LinearFunction", "Relu", "[5, 4] float32") in edges
    assert ("input", "CrossEntropy", "[5] int64") in edges
    assert len(graph.edges) == 9
    assert named[graph.root] == "CrossEntropy"
    # the saved arrays: each Linear saves x and W, ReLU its output, cross-entropy softmax and one-hot (float32)
    assert graph.saved_bytes == 4 * ((10 + 8) + (20 + 12) + 20 + (15 + 15))


def test_dot_text_has_every_node_and_edge():
    model, loss = _small()
    dot = viz.draw(loss, model).dot()
    assert dot.startswith("digraph tape {") and dot.rstrip().endswith("}")
    assert len(re.findall(r"^  n\d+ \[label=", dot, flags=re.M)) == 10
    assert len(re.findall(r"^  n\d+ -> n\d+ \[label=", dot, flags=re.M)) == 9
    assert 'label="0.weight\\n[4, 2] float32"' in dot


@pytest.mark.parametrize("suffix", [".svg", ".png", ".dot"])
def test_render_writes_a_picture_without_graphviz(tmp_path, monkeypatch, suffix):
    monkeypatch.setattr(viz.shutil, "which", lambda name: None)  # as on a machine without Graphviz
    model, loss = _small()
    path = viz.draw(loss, model).render(tmp_path / f"tape{suffix}")
    data = path.read_bytes()
    assert {".svg": b"<svg", ".png": b"\x89PNG", ".dot": b"digraph"}[suffix] in data[:400]
    with pytest.raises(ValueError, match="must end in"):
        viz.draw(loss, model).render(tmp_path / "tape.txt")


def test_a_residual_block_shows_its_shortcut():
    tg.manual_seed(0)
    block = nn.ResidualBlock(2, 2)
    out = block(Tensor(np.ones((2, 2, 4, 4), np.float32))).sum()
    graph = viz.draw(out, block)
    kinds = [label.split("\n")[0] for label, _ in graph.nodes.values()]
    assert kinds.count("Conv2dFunction") == 2 and kinds.count("BatchNormFunction") == 2
    named = {node: label.split("\n")[0] for node, (label, _) in graph.nodes.items()}
    add_inputs = {named[a] for a, b, _ in graph.edges if named[b] == "Add"}
    assert "input" in add_inputs  # the shortcut: x itself goes into the addition


def test_draw_refuses_a_freed_graph_and_a_leaf():
    model, loss = _small()
    loss.backward()
    with pytest.raises(ValueError, match="freed by backward"):
        viz.draw(loss, model)
    with pytest.raises(ValueError, match="not produced by a recorded op"):
        viz.draw(Tensor(np.ones(2)))


def _train(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tinygrad_edu", "train", "--no-progress", "--epochs", "1",
                           "--depth", "2", *args], capture_output=True, text=True, cwd=cwd)


def test_train_draw_graph(tmp_path):
    result = _train("--draw-graph", "step.svg", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "step.svg").read_bytes().startswith((b"<?xml", b"<svg"))
    assert "drew the first training step's tape to step.svg" in result.stdout
    result = _train("--draw-graph", "step.txt", cwd=tmp_path)
    assert result.returncode == 2 and "must end in .svg, .png or .dot" in result.stderr


def test_a_partly_freed_graph_draws_the_freed_part_as_an_input():
    x = Tensor(np.ones(3), requires_grad=True)
    h = x * 2.0
    h.sum().backward()
    graph = viz.draw((h * 3.0).sum())
    labels = [label.split("\n")[0] for label, _ in graph.nodes.values()]
    assert "Mul output (freed)" in labels and "input" not in labels
