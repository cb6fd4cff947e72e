"""Channel dropout as one op (Tompson et al. 2015, "Efficient object localization using convolutional networks",
their SpatialDropout): neighbouring pixels of a feature map are strongly correlated, so dropping single pixels
barely regularizes; dropping whole channels does."""

from __future__ import annotations

from tinygrad_edu.autograd import InputError
from tinygrad_edu.nn.functional.dropout import DropoutFunction, check_float_input, check_p
from tinygrad_edu.tensor import Tensor


class Dropout2dFunction(DropoutFunction):
    """y = x ⊙ m / (1 - p) for x (N, C, H, W) or (N, C, L), with ONE m[n, c] ~ Bernoulli(1 - p) per channel of
    each sample, of shape (N, C, 1, 1) or (N, C, 1) and broadcast over the spatial axes: a channel is kept whole
    (scaled by 1 / (1 - p)) or zeroed whole.

        dx = dy ⊙ m / (1 - p)         (m broadcast over the spatial axes, as in forward)

    It is ``DropoutFunction`` (same forward and backward) with a mask of one value per channel: N·C numbers are drawn
    from the backend's seeded generator and saved, not one per element.
    """

    @staticmethod
    def mask_shape(x) -> tuple[int, ...]:
        """One mask value per channel of each sample: (N, C, 1, 1) or (N, C, 1)."""
        return tuple(x.shape[:2]) + (1,) * (x.ndim - 2)


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
