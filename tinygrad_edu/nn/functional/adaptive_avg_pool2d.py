"""Global average pooling (Lin, Chen and Yan 2014, "Network in network"; the head of ResNets): the mean of each
channel over H and W, ``adaptive_avg_pool2d(x, 1)``. Composed from the ``Mean`` op (its backward spreads
g / (H·W) over the plane, and it accumulates float16 and bfloat16 in float32): no Function of its own."""

from __future__ import annotations

from typing import Any

from tinygrad_edu.autograd import InputError
from tinygrad_edu.nn.functional._pooling import check_input
from tinygrad_edu.tensor import Tensor


def adaptive_avg_pool2d(input: Tensor, output_size: Any) -> Tensor:  # noqa: A002 - PyTorch's name
    """``torch.nn.functional.adaptive_avg_pool2d`` for ``output_size`` 1 or (1, 1) only (global average pooling):
    x (N, C, H, W) -> (N, C, 1, 1), or (C, H, W) -> (C, 1, 1). Other output sizes raise InputError."""
    check_input("adaptive_avg_pool2d", input)
    if output_size not in (1, (1, 1), [1, 1]) or isinstance(output_size, bool):
        raise InputError(f"adaptive_avg_pool2d: only output_size 1 or (1, 1) (global average pooling) is supported, "
                         f"got {output_size!r}")
    return input.mean(axis=(-2, -1), keepdims=True)


def global_avg_pool2d(input: Tensor) -> Tensor:  # noqa: A002 - PyTorch's name
    """Mean over H and W, the spatial axes dropped: (N, C, H, W) -> (N, C) (``adaptive_avg_pool2d(x, 1)`` flattened)."""
    check_input("global_avg_pool2d", input)
    return input.mean(axis=(-2, -1))
