"""Input generators that several families of entries share: random small shapes and broadcasting pairs, values
away from kinks and ties, the ``make_inputs`` of one tensor, of same-shaped tensors and of a broadcasting pair,
and a fixed mask. A generator that one family alone uses lives in that family's module.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from tinygrad_edu.tensor import Tensor


def _shape(rng: np.random.Generator, min_dims: int = 1, max_dims: int = 3, min_side: int = 1) -> tuple[int, ...]:
    """A shape of ``min_dims`` to ``max_dims`` axes with sides ``min_side`` to 4 (size 1 included)."""
    ndim = int(rng.integers(min_dims, max_dims + 1))
    return tuple(int(n) for n in rng.integers(min_side, 5, size=ndim))


def _broadcast_pair(rng: np.random.Generator, max_dims: int = 3) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Two shapes that broadcast together: some axes size 1 in one of them, leading axes missing from one."""
    full = _shape(rng, 1, max_dims)
    a = tuple(1 if rng.random() < 0.3 else n for n in full)
    b = tuple(1 if rng.random() < 0.3 else n for n in full)
    if rng.random() < 0.5:  # one operand lacks leading axes (possibly all: a 0-d tensor)
        drop = int(rng.integers(1, len(full) + 1))
        a, b = (a[drop:], b) if rng.random() < 0.5 else (a, b[drop:])
    return a, b


def _uniform(rng: np.random.Generator, shape: tuple[int, ...], low: float = -1.5, high: float = 1.5) -> np.ndarray:
    """float64 values of ``shape``, uniform in [low, high)."""
    return np.asarray(rng.uniform(low, high, size=shape), dtype=np.float64)


def _away_from(rng: np.random.Generator, shape: tuple[int, ...], kink: float = 0.0, margin: float = 0.05,
               reach: float = 1.5) -> np.ndarray:
    """Values in [kink - reach, kink - margin] or [kink + margin, kink + reach], either side equally likely."""
    magnitude = rng.uniform(margin, reach, size=shape)
    return np.asarray(kink + np.where(rng.random(size=shape) < 0.5, -magnitude, magnitude), dtype=np.float64)


def _distinct(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Values 0.06 ± 0.01 apart or more (a shuffled ladder with jitter): a max or min over any axes never ties."""
    size = math.prod(shape)
    rungs = rng.permutation(size) - (size - 1) / 2
    return np.asarray((rungs * 0.06 + rng.uniform(-0.01, 0.01, size=size)).reshape(shape), dtype=np.float64)


def _one(draw: Callable[..., np.ndarray], **shape_options: Any) -> Callable[[np.random.Generator], list[np.ndarray]]:
    """make_inputs for a function of one tensor: a random shape, then ``draw(rng, shape)``."""
    return lambda rng: [draw(rng, _shape(rng, **shape_options))]


def _same_shape(count: int, draw: Callable[..., np.ndarray] = _uniform, **shape_options: Any,
                ) -> Callable[[np.random.Generator], list[np.ndarray]]:
    """make_inputs for a function of ``count`` tensors of one random shape."""

    def make_inputs(rng: np.random.Generator) -> list[np.ndarray]:
        shape = _shape(rng, **shape_options)
        return [draw(rng, shape) for _ in range(count)]

    return make_inputs


def _pair(draw_a: Callable[..., np.ndarray] = _uniform,
          draw_b: Callable[..., np.ndarray] = _uniform) -> Callable[[np.random.Generator], list[np.ndarray]]:
    """make_inputs for a broadcasting binary op."""

    def make_inputs(rng: np.random.Generator) -> list[np.ndarray]:
        shape_a, shape_b = _broadcast_pair(rng)
        return [draw_a(rng, shape_a), draw_b(rng, shape_b)]

    return make_inputs


def _positive(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Inputs of log, sqrt, division and negative powers: in [0.2, 2], away from the pole at 0."""
    return _uniform(rng, shape, 0.2, 2.0)


def _pattern(x: Tensor, shape: tuple[int, ...] | None = None) -> Tensor:
    """A fixed boolean checkerboard of ``shape`` (default: x's) on x's device: a mask that needs no drawing."""
    shape = x.shape if shape is None else shape
    return Tensor(np.indices(shape).sum(axis=0) % 2 == 0 if shape else np.array(True), device=x.device)


def _side(rng: np.random.Generator) -> int:
    """The size of one axis: 1 to 4."""
    return int(rng.integers(1, 5))


def _two_or_more_rows(rng: np.random.Generator) -> list[np.ndarray]:
    """One array of 1 to 3 axes whose first axis has 2 to 4 elements (an unbiased variance over it is finite)."""
    return [_uniform(rng, (int(rng.integers(2, 5)),) + _shape(rng, 0, 2))]


def _linear_inputs(bias: bool) -> Callable[[np.random.Generator], list[np.ndarray]]:
    """x (..., in) with 0 to 2 leading axes, W (out, in), and b (out,) if ``bias``."""

    def make_inputs(rng: np.random.Generator) -> list[np.ndarray]:
        n_in, n_out = _side(rng), _side(rng)
        arrays = [_uniform(rng, _shape(rng, 0, 2) + (n_in,)), _uniform(rng, (n_out, n_in))]
        return arrays + [_uniform(rng, (n_out,))] if bias else arrays

    return make_inputs
