"""Entries of ``tinygrad_edu.ops.matmul``: ``@`` on matrices, on batches with broadcast batch axes, and with 1-D
operands.
"""

from __future__ import annotations

import numpy as np

from tinygrad_edu import ops
from tinygrad_edu.testing.registry._core import register
from tinygrad_edu.testing.registry._inputs import _broadcast_pair, _side, _uniform


def _matmul_2d(rng: np.random.Generator) -> list[np.ndarray]:
    """(m, k) @ (k, n) with sides 1 to 4."""
    m, k, n = _side(rng), _side(rng), _side(rng)
    return [_uniform(rng, (m, k)), _uniform(rng, (k, n))]


def _matmul_batched(rng: np.random.Generator) -> list[np.ndarray]:
    """(..., m, k) @ (..., k, n) with broadcast batch axes: (2, 1, m, k) @ (3, k, n), (b, m, k) @ (k, n) ..."""
    m, k, n = _side(rng), _side(rng), _side(rng)
    batch_a, batch_b = _broadcast_pair(rng, max_dims=2)
    if not batch_a and not batch_b:
        batch_a = (_side(rng),)
    return [_uniform(rng, batch_a + (m, k)), _uniform(rng, batch_b + (k, n))]


def _matmul_1d(rng: np.random.Generator) -> list[np.ndarray]:
    """A 1-D operand on either side or both: (k,) @ (k, n), (m, k) @ (k,), (k,) @ (k,), (b, m, k) @ (k,), ..."""
    m, k, n, b = _side(rng), _side(rng), _side(rng), _side(rng)
    a_shape, b_shape = [((k,), (k, n)), ((m, k), (k,)), ((k,), (k,)), ((b, m, k), (k,)), ((k,), (b, k, n))][
        int(rng.integers(5))
    ]
    return [_uniform(rng, a_shape), _uniform(rng, b_shape)]


register("matmul", lambda a, b: a @ b, _matmul_2d, (ops.MatMul,), "(m, k) @ (k, n)")
register("matmul_batched", lambda a, b: a @ b, _matmul_batched, (ops.MatMul,),
         "(..., m, k) @ (..., k, n) with broadcast batch axes")
register("matmul_1d", lambda a, b: a @ b, _matmul_1d, (ops.MatMul,),
         "a 1-D operand: vector @ matrix, matrix @ vector, vector @ vector, batched @ vector, vector @ batched")
