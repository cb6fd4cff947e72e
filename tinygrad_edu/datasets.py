"""Data sets generated in code, so that every example runs without a download."""

from __future__ import annotations

import math

import numpy as np


def disc(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The course's 2-D "disc" problem: points uniform in [-1, 1]², class 1 inside the disc of radius sqrt(2/π).

    That radius gives the disc an area of 2, half the square, so the classes are balanced. Returns ``x`` (n, 2)
    float32 and ``y`` (n,) int64.
    """
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.0, 1.0, size=(n, 2)).astype(np.float32)
    y = ((x**2).sum(axis=1) < 2 / math.pi).astype(np.int64)
    return x, y
