"""Matrix product with NumPy's ``matmul`` semantics: batch axes broadcast, 1-D operands promoted and dropped.

For Z = A B (per batch element) with upstream gradient G = dL/dZ:

    dL/dA = G Bᵀ        dL/dB = Aᵀ G

then each is summed over the batch axes it was broadcast along. The product itself goes through the backend's
kernel hook (``backend.matmul``), which accumulates float16 and bfloat16 operands in float32.
"""

from __future__ import annotations

from tinygrad_edu.autograd import Function
from tinygrad_edu.ops.broadcast import unbroadcast


def batch_shape(a_shape, b_shape):
    """Broadcast the batch axes of two matmul operands, or None if they do not broadcast."""
    out = []
    for i in range(1, max(len(a_shape), len(b_shape)) + 1):
        m = a_shape[-i] if i <= len(a_shape) else 1
        n = b_shape[-i] if i <= len(b_shape) else 1
        if m != n and m != 1 and n != 1:
            return None
        out.append(max(m, n))
    return tuple(reversed(out))


class MatMul(Function):
    """Z = A @ B;  dL/dA = G Bᵀ,  dL/dB = Aᵀ G (summed over broadcast batch axes)."""

    @staticmethod
    def forward(ctx, a, b):
        xp = ctx.xp
        # promote 1-D operands to matrices: (K,) @ ... is (1, K) @ ..., ... @ (K,) is ... @ (K, 1)
        a2 = xp.reshape(a, (1, a.shape[0])) if a.ndim == 1 else a
        b2 = xp.reshape(b, (b.shape[0], 1)) if b.ndim == 1 else b
        batch = batch_shape(a2.shape[:-2], b2.shape[:-2])  # the Tensor's @ checked that the shapes fit
        ctx.save_for_backward(a2, b2)
        ctx.a_shape, ctx.b_shape = tuple(a.shape), tuple(b.shape)
        ctx.z2_shape = batch + (a2.shape[-2], b2.shape[-1])
        return ctx.backend.matmul(a, b)

    @staticmethod
    def backward(ctx, g):
        xp = ctx.xp
        a2, b2 = ctx.saved_tensors
        g2 = xp.reshape(g, ctx.z2_shape)
        grad_a = grad_b = None
        if ctx.needs_input_grad[0]:
            da = ctx.backend.matmul(g2, xp.matrix_transpose(b2))
            grad_a = xp.reshape(unbroadcast(xp, da, a2.shape), ctx.a_shape)
        if ctx.needs_input_grad[1]:
            db = ctx.backend.matmul(xp.matrix_transpose(a2), g2)
            grad_b = xp.reshape(unbroadcast(xp, db, b2.shape), ctx.b_shape)
        return grad_a, grad_b
