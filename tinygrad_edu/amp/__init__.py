"""Mixed-precision training (Micikevicius et al. 2018, "Mixed Precision Training", ICLR 2018).

The paper's three rules, and where each lives in tinygrad_edu:

1. **FP32 master weights** (``MasterWeights``): the model stores and computes in FP16 (or bfloat16:
   ``MasterWeights(model, dtype=tg.bfloat16)``); the optimizer updates FP32 copies, because an update η·g more than
   2^11 times smaller than its weight vanishes when added in FP16 (2^8 in bfloat16).
2. **Loss scaling** (``GradScaler``, PyTorch's ``torch.amp.GradScaler`` with a static mode): multiply the loss by
   S so that small gradients, which FP16 would flush to zero below 2^-24, are shifted into its range; divide by S
   in FP32 before the update; skip the step when a gradient overflowed. bfloat16 has float32's exponent range and
   needs none (``master.needs_loss_scaling`` is False).
3. **FP32 accumulation** in dot products and large reductions: the float16 matmul kernel (``backend.matmul``,
   ``tinygrad_edu/backend/kernels/``), and the float16 paths of batchnorm, layer norm, softmax and the losses.

``tinygrad_edu.nn.utils.clip_grad_norm_`` clips (after ``GradScaler.unscale_``).

The integer alternative (Das et al. 2018, "Mixed Precision Training of Convolutional Neural Networks using Integer
Operations", ICLR): ``amp.dfp16.convert(model)`` runs the three matrix products of every ``nn.Linear`` on INT16
tensors with one shared exponent each (Dynamic Fixed Point), accumulated in INT32 and returned in float32; the
weights stay float32 and are what the optimizer steps, and no loss scaling is needed (``tinygrad_edu/amp/dfp16.py``).
"""

from tinygrad_edu.amp import dfp16
from tinygrad_edu.amp.dfp16 import DFP16Linear, DFP16LinearFunction, dfp16_linear
from tinygrad_edu.amp.grad_scaler import GradScaler
from tinygrad_edu.amp.master import DEFAULT_KEEP_FP32, MasterWeights

__all__ = ["DEFAULT_KEEP_FP32", "DFP16Linear", "DFP16LinearFunction", "GradScaler", "MasterWeights", "dfp16",
           "dfp16_linear"]
