"""tinygrad-edu explain: for every registry entry, where forward and backward live (file:line that holds them), its
math, and a live gradient check whose analytic and numeric columns agree."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tinygrad_edu.testing.explain import ROOT, explain
from tinygrad_edu.testing.registry import REGISTRY


@pytest.mark.parametrize("name", list(REGISTRY))
def test_explain_works_for_every_entry(name):
    text = explain(name)
    assert text.endswith("verdict: passed"), text
    locations = re.findall(r"^  (forward|backward)\s+(\S+):(\d+)$", text, flags=re.M)
    assert len(locations) == 2 * len(REGISTRY[name].functions)
    for part, path, line in locations:
        source = (ROOT / path).read_text(encoding="utf-8").splitlines()
        assert any(f"def {part}(" in source[k] for k in range(int(line) - 1, min(int(line) + 2, len(source))))
    rows = re.findall(r"^    \(.*?\)\s+(-?[\d.]+)\s+(-?[\d.]+)\s", text, flags=re.M)
    assert rows and all(abs(float(a) - float(n)) <= 1e-5 + 1e-3 * abs(float(n)) for a, n in rows)


def test_explain_source_prints_forward_and_backward():
    text = explain("batch_norm", source=True)
    assert "def forward(ctx, x, gamma, beta" in text and "def backward(ctx, dy):" in text
    assert "dβ = Σ dy_i" in text  # the math from the docstring


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tinygrad_edu", *args], capture_output=True, text=True,
                          cwd=Path(__file__).parent)


def test_explain_command_and_an_unknown_name():
    result = _cli("explain", "maxout")
    assert result.returncode == 0 and "MaxoutFunction" in result.stdout and "verdict: passed" in result.stdout
    result = _cli("explain", "batchnorm")
    assert result.returncode == 2
    assert "unknown name 'batchnorm'; known names: add, " in result.stderr and "batch_norm" in result.stderr
