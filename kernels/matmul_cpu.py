"""CPU matmul with a wider accumulator than its operands (float16 storage, float32 accumulation).

NumPy's own float16 matmul has no BLAS path. This kernel walks the shared dimension K in blocks: it upcasts one
block of each operand to the accumulation dtype, multiplies the blocks with the float32 BLAS, adds the partial
product into a float32 accumulator, and rounds to the operands' dtype once at the end. No float32 copy of a whole
operand is made, only of one block of K at a time.
"""

from __future__ import annotations

import numpy as np

#: Number of K-columns upcast at a time.
BLOCK_K = 256


def matmul_accumulate(a: np.ndarray, b: np.ndarray, accumulate_dtype=np.float32, block_k: int = BLOCK_K):
    """``a @ b`` (NumPy matmul semantics, batch dims broadcast) accumulated in ``accumulate_dtype``.

    Returns an array of ``a.dtype``. ``a`` is ``(..., M, K)`` or ``(K,)``, ``b`` is ``(..., K, N)`` or ``(K,)``.
    """
    if a.shape[-1] != b.shape[0 if b.ndim == 1 else -2]:
        raise ValueError(f"matmul: shapes {a.shape} and {b.shape} do not align on the shared dimension")
    k = a.shape[-1]
    acc = None
    for start in range(0, max(k, 1), block_k):
        stop = min(start + block_k, k)
        a_block = a[..., start:stop].astype(accumulate_dtype)
        b_block = (b[start:stop] if b.ndim == 1 else b[..., start:stop, :]).astype(accumulate_dtype)
        part = np.matmul(a_block, b_block)
        if acc is None:
            acc = part
        else:
            acc += part
    return np.asarray(acc).astype(a.dtype)
