"""DropConnect as one op (Wan, Zeiler, Zhang, LeCun and Fergus 2013, "Regularization of neural networks using
DropConnect"): a linear layer whose individual WEIGHTS (connections) are dropped at random, rather than its units."""

from __future__ import annotations

from tinygrad_edu.autograd import Function, InputError
from tinygrad_edu.dtypes import is_low_precision
from tinygrad_edu.nn.functional.dropout import check_float_input, check_p
from tinygrad_edu.nn.functional.linear import linear
from tinygrad_edu.tensor import Tensor


class DropConnectLinearFunction(Function):
    """y = x (W ⊙ M / (1 - p))ᵀ + b, with one mask M ~ Bernoulli(1 - p) of W's shape (out, in) per forward call,
    shared by every row of the batch (E[W ⊙ M / (1 - p)] = W, inverted scaling as in dropout).

    With W̃ = W ⊙ M / (1 - p) the weight actually used, G = dL/dy and X the input flattened to rows (n, in):

        dx = G W̃            dW = (Gᵀ X) ⊙ M / (1 - p)            db = Σ_rows G

    i.e. a linear layer's backward with W̃ for W, and a dropped weight gets no gradient. Forward draws M once from
    the backend's seeded generator and saves x, W̃ and M.
    """

    @staticmethod
    def forward(ctx, x, weight, bias=None, p=0.5):
        backend = ctx.backend
        M = backend.bernoulli(tuple(weight.shape), 1 - p, backend.numpy_dtype(weight.dtype))
        ctx.scale = 1 / (1 - p)
        w_tilde = weight * M * ctx.scale
        ctx.save_for_backward(x, w_tilde, M)
        y = backend.matmul(x, w_tilde.T)
        return y if bias is None else y + bias

    @staticmethod
    def backward(ctx, g):
        xp, backend = ctx.xp, ctx.backend
        x, w_tilde, M = ctx.saved_tensors
        dx = backend.matmul(g, w_tilde) if ctx.needs_input_grad[0] else None
        G, X = xp.reshape(g, (-1, g.shape[-1])), xp.reshape(x, (-1, x.shape[-1]))  # rows: (n, out), (n, in)
        dW = backend.matmul(G.T, X) * M * ctx.scale if ctx.needs_input_grad[1] else None
        db = None
        if len(ctx.needs_input_grad) > 2 and ctx.needs_input_grad[2]:
            rows = xp.astype(G, xp.float32) if is_low_precision(G.dtype) else G  # float16, bfloat16: sum in float32
            db = xp.astype(xp.sum(rows, axis=0), g.dtype)
        return dx, dW, db


def dropconnect_linear(
    input: Tensor,  # noqa: A002 - PyTorch's name for the first argument
    weight: Tensor,
    bias: Tensor | None = None,
    p: float = 0.5,
    training: bool = True,
) -> Tensor:
    """``x @ (W ⊙ M / (1 - p)).T + b`` with a fresh weight mask M ~ Bernoulli(1 - p) per call in training; plain
    ``linear(x, W, b)`` when ``training`` is False or p == 0 (the expected weight: inverted scaling, so nothing
    changes at test time; the paper's Gaussian moment-matching inference is not implemented)."""
    p = check_p("dropconnect_linear", p)
    check_float_input("dropconnect_linear", input)
    if not training or p == 0:
        return linear(input, weight, bias)
    if weight.ndim != 2 or input.ndim == 0 or input.shape[-1] != weight.shape[1]:
        raise InputError(
            f"dropconnect_linear: input of shape {input.shape} does not match weight of shape {tuple(weight.shape)} "
            "(expected input (..., in_features) and weight (out_features, in_features))"
        )
    if bias is not None and (bias.ndim != 1 or bias.shape[0] != weight.shape[0]):
        raise InputError(f"dropconnect_linear: bias has shape {tuple(bias.shape)}, expected ({weight.shape[0]},)")
    if bias is None:
        return DropConnectLinearFunction.apply(input, weight, p=p)
    return DropConnectLinearFunction.apply(input, weight, bias, p=p)
