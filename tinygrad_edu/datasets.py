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


def digits(test_fraction: float = 0.2, seed: int = 0, standardize: bool = False
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """scikit-learn's bundled 8×8 handwritten digits (1797 images, 10 classes), split into train and test sets.

    Returns ``x_train, x_test, y_train, y_test`` (the order of ``sklearn.model_selection.train_test_split``): ``x``
    float32 of shape (n, 64), the pixels (0..16) divided by 16 into [0, 1], or, with ``standardize=True``,
    centered and scaled per pixel by the training set's mean and standard deviation (pixels constant on the
    training set are only centered); ``y`` int64 class indices. The split is a permutation drawn from ``seed``:
    ``round(test_fraction · 1797)`` images go to the test set. The data ship inside scikit-learn (no download);
    install it with ``pip install "tinygrad_edu[datasets]"``.
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "datasets.digits needs scikit-learn, which is not installed: pip install 'tinygrad_edu[datasets]' "
            "(or pip install scikit-learn)"
        ) from exc
    if isinstance(test_fraction, bool) or not 0 < test_fraction < 1:
        raise ValueError(f"digits: test_fraction must be in (0, 1), got {test_fraction!r}")
    data = load_digits()
    x = (data.data / 16.0).astype(np.float32)
    y = data.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(x))
    n_test = int(round(test_fraction * len(x)))
    if not 0 < n_test < len(x):
        raise ValueError(f"digits: test_fraction={test_fraction} leaves an empty train or test set")
    test, train = order[:n_test], order[n_test:]
    x_train, x_test = x[train], x[test]
    if standardize:
        mean, std = x_train.mean(axis=0), x_train.std(axis=0)
        std[std == 0] = 1.0
        x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
    return x_train.astype(np.float32), x_test.astype(np.float32), y[train], y[test]
