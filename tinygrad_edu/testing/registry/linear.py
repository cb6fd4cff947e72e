"""Entries of ``tinygrad_edu.nn.functional.linear``: ``F.linear`` with and without bias."""

from __future__ import annotations

from tinygrad_edu.nn import functional as F
from tinygrad_edu.testing.registry._core import register
from tinygrad_edu.testing.registry._inputs import _linear_inputs

register("linear", lambda x, w, b: F.linear(x, w, b), _linear_inputs(True), (F.LinearFunction,),
         "F.linear(x, W, b), x of shape (in,), (n, in) or (n, m, in)")
register("linear_nobias", lambda x, w: F.linear(x, w), _linear_inputs(False), (F.LinearFunction,),
         "F.linear(x, W) without bias")
