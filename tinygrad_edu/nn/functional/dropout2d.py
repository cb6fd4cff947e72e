"""Channel dropout as one op (Tompson et al. 2015, "Efficient object localization using convolutional networks",
their SpatialDropout): neighbouring pixels of a feature map are strongly correlated, so dropping single pixels
barely regularizes; dropping whole channels does."""

from __future__ import annotations

from tinygrad_edu.nn.functional.dropout import check_float_input, check_p
from tinygrad_edu.tensor import Function, InputError, Tensor


class Dropout2dFunction(Function):
    """y = x ⊙ m / (1 - p) for x (N, C, H, W) or (N, C, L), with ONE m[n, c] ~ Bernoulli(1 - p) per channel of
    each sample, of shape (N, C, 1, 1) or (N, C, 1) and broadcast over the spatial axes: a channel is kept whole
    (scaled by 1 / (1 - p)) or zeroed whole.

        dx = dy ⊙ m / (1 - p)         (m broadcast over the spatial axes, as in forward)

    Forward draws m once from the backend's seeded generator and saves it (N·C numbers, not one per element).
    """

    @staticmethod
    def forward(ctx, x, p=0.5):
        backend = ctx.backend
        if x.ndim not in (3, 4):
            raise InputError(
                f"dropout2d: expected an input of shape (N, C, H, W) or (N, C, L), got shape {tuple(x.shape)} "
                f"({x.ndim}-D)"
            )
        shape = tuple(x.shape[:2]) + (1,) * (x.ndim - 2)
        mask = backend.bernoulli(shape, 1 - p, backend.numpy_dtype(x.dtype))
        ctx.save_for_backward(mask)
        ctx.scale = 1 / (1 - p)
        return x * mask * ctx.scale

    @staticmethod
    def backward(ctx, dy):
        (mask,) = ctx.saved_tensors
        return dy * mask * ctx.scale


def dropout2d(input: Tensor, p: float = 0.5, training: bool = True) -> Tensor:  # noqa: A002 - PyTorch's name
    """Zero whole channels with probability ``p`` and scale the kept ones by 1 / (1 - p) in training; the input
    itself when ``training`` is False or p == 0 (``torch.nn.functional.dropout2d``). A 3-D input is (N, C, L), as
    in PyTorch; other ranks raise (PyTorch warns that they will)."""
    p = check_p("dropout2d", p)
    check_float_input("dropout2d", input)
    if input.ndim not in (3, 4):
        raise InputError(
            f"dropout2d: expected an input of shape (N, C, H, W) or (N, C, L), got shape {input.shape} "
            f"({input.ndim}-D)"
        )
    if not training or p == 0:
        return input
    return Dropout2dFunction.apply(input, p=p)
