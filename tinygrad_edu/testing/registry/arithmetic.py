"""Entries of ``tinygrad_edu.ops.arithmetic``: ``+``, ``-``, ``*``, ``/`` and ``**`` (between tensors, broadcasting,
and with a scalar on either side), and unary ``-``.
"""

from __future__ import annotations

import numpy as np

from tinygrad_edu import ops
from tinygrad_edu.testing.registry._core import register
from tinygrad_edu.testing.registry._inputs import _one, _pair, _positive, _uniform


def _base(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Bases of tensor ** tensor: in [0.4, 0.75] or [1.25, 2]. Away from 1, where d(a^b)/db = a^b log(a) vanishes
    (tiny gradients drown in round-off), and from 0, where a^(b-1) blows up (float16 sums of large terms cancel)."""
    return np.where(rng.random(shape) < 0.5, _uniform(rng, shape, 0.4, 0.75), _uniform(rng, shape, 1.25, 2.0))


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
