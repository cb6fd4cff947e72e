"""Entries of ``tinygrad_edu.nn.functional.softmax`` and ``log_softmax``, along several axes and on a
non-contiguous view.
"""

from __future__ import annotations

from tinygrad_edu.nn import functional as F
from tinygrad_edu.testing.registry._core import register
from tinygrad_edu.testing.registry._inputs import _one, _uniform

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
