"""Mixed-precision training (Micikevicius et al. 2018, "Mixed Precision Training", ICLR 2018).

The paper's three rules, and where each lives in tinygrad_edu:

1. **FP32 master weights** (``MasterWeights``): the model stores and computes in FP16; the optimizer updates FP32
   copies, because an update η·g more than 2^11 times smaller than its weight vanishes when added in FP16.
2. **Loss scaling** (``GradScaler``, PyTorch's ``torch.amp.GradScaler`` with a static mode): multiply the loss by
   S so that small gradients, which FP16 would flush to zero below 2^-24, are shifted into its range; divide by S
   in FP32 before the update; skip the step when a gradient overflowed.
3. **FP32 accumulation** in dot products and large reductions: the float16 matmul kernel (``backend.matmul``,
   ``tinygrad_edu/backend/kernels/``), and the float16 paths of batchnorm, layer norm, softmax and the losses.

``tinygrad_edu.nn.utils.clip_grad_norm_`` clips (after ``GradScaler.unscale_``).
"""

from tinygrad_edu.amp.grad_scaler import GradScaler
from tinygrad_edu.amp.master import DEFAULT_KEEP_FP32, MasterWeights

__all__ = ["DEFAULT_KEEP_FP32", "GradScaler", "MasterWeights"]
