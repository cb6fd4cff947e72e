"""Maxout as one op (Goodfellow, Warde-Farley, Mirza, Courville and Bengio 2013, "Maxout networks"): the max over
groups of ``pieces`` consecutive entries of one axis. After a linear layer (``nn.Maxout``) it is the max of several
affine functions of the input: it can encode ReLU (max(x, 0)), |x| (max(x, -x)), and approximate any convex
function."""

from __future__ import annotations

import numbers

from tinygrad_edu import arguments
from tinygrad_edu.autograd import Function, InputError
from tinygrad_edu.nn.functional._activation_args import check_dim, check_float
from tinygrad_edu.tensor import Tensor


class MaxoutFunction(Function):
    """Axis ``dim`` of size K·p (p = ``pieces``) is cut into K groups of p CONSECUTIVE entries: group k holds the
    entries [k·p, (k+1)·p) (a reshape of that axis to (K, p)). The output has size K on that axis:

        y_k = max_j x_{k·p + j}      (j = 0 .. p-1)

    With g = dL/dy, each g_k goes to the piece that attained the max, the others get 0:

        dL/dx_{k·p + j} = g_k if j = j*(k) else 0,      j*(k) = argmax_j x_{k·p + j}

    Ties: the FIRST maximal piece gets all of g_k (the argmax rule, as max_pool2d in PyTorch). Any split of g_k
    among the tied pieces is a valid subgradient; central differences at a tie measure g_k / 2 each, which
    ``gradcheck`` reports as a kink (NonDifferentiablePointError; passes with kinks="allow"). PyTorch has no maxout;
    the consecutive grouping is that of the paper's z_ij, j ∈ [1, k] and of most implementations. Forward saves the
    index j*, not x.
    """

    @staticmethod
    def forward(ctx, x, pieces=2, dim=1):
        xp = ctx.xp
        axis, p = dim % x.ndim, pieces
        K = x.shape[axis] // p
        groups = xp.reshape(x, tuple(x.shape[:axis]) + (K, p) + tuple(x.shape[axis + 1 :]))  # group k: [k·p, (k+1)·p)
        j_star = xp.argmax(groups, axis=axis + 1, keepdims=True)  # j*(k): the first maximal piece of group k
        ctx.save_for_backward(j_star)
        ctx.axis, ctx.pieces, ctx.x_shape = axis, pieces, tuple(x.shape)
        return xp.max(groups, axis=axis + 1)

    @staticmethod
    def backward(ctx, g):
        xp = ctx.xp
        (j_star,) = ctx.saved_tensors
        axis, pieces = ctx.axis, ctx.pieces
        j = xp.reshape(xp.arange(pieces, device=g.device), (1,) * (axis + 1) + (pieces,) + (1,) * (g.ndim - axis - 1))
        routed = xp.where(j == j_star, xp.expand_dims(g, axis=axis + 1), 0.0)  # g_k at piece j*(k), 0 elsewhere
        return xp.reshape(routed, ctx.x_shape)


def maxout(input: Tensor, pieces: int, dim: int | None = None, *, axis: int | None = None) -> Tensor:  # noqa: A002
    """The max over groups of ``pieces`` consecutive entries of axis ``dim`` (default 1; ``axis`` is NumPy's
    spelling, not both) (group k: entries [k·pieces, (k+1)·pieces)); that axis shrinks from K·pieces to K. The
    gradient goes to the first maximal piece of each group.
    """
    dim, _ = arguments.spelling("maxout", dim, axis)
    dim = 1 if dim is None else dim
    if isinstance(pieces, bool) or not isinstance(pieces, numbers.Integral):
        raise TypeError(f"maxout: pieces must be an int, got {type(pieces).__name__}")
    if pieces < 1:
        raise InputError(f"maxout: pieces must be at least 1, got {pieces}")
    check_float("maxout", "input", input)
    axis = check_dim("maxout", dim, input.shape)
    if input.shape[axis] % pieces:
        raise InputError(
            f"maxout: axis dim={dim} of the input (shape {input.shape}) has size {input.shape[axis]}, which is not "
            f"divisible by pieces={pieces}: expected a multiple of {pieces} (K groups of {pieces} pieces)"
        )
    return MaxoutFunction.apply(input, pieces=int(pieces), dim=axis)
