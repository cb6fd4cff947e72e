"""tinygrad_edu: a from-scratch autograd engine for learning how deep networks are trained.

    from tinygrad_edu import Tensor, Function, no_grad, gradcheck, set_default_device

Tensors live on a device (``"cpu"`` with NumPy, ``"cuda"`` with CuPy); ``TINYGRAD_EDU_DEVICE=cuda`` moves a whole
program to the GPU. The package in layers, each built on the ones before it:

* core: ``backend/`` (devices and their array namespaces), ``autograd/`` (the tape), ``ops/`` (the primitive ops),
  ``tensor.py`` (the Tensor), with ``composite.py``, ``dtypes.py``, ``functions.py``, ``creation.py``, ``arguments.py``;
* library: ``nn/`` (layers: functional, modules, init), ``optim/``, ``amp/`` (mixed precision), ``distributed/``,
  ``serialization.py`` (checkpoints);
* tools: ``gradcheck.py``, ``testing/`` (Hypothesis strategies and the registry of differentiable ops);
* apps: ``cli.py``, ``train.py``, ``datasets.py``, ``examples/``, and the benchmarks (``tinygrad-edu bench``).
"""

from tinygrad_edu import amp, autograd, datasets, distributed
from tinygrad_edu.autograd import (
    AnomalyError,
    Function,
    InplaceModificationError,
    InputError,
    detect_anomaly,
    is_anomaly_enabled,
    is_grad_enabled,
    no_grad,
    set_detect_anomaly,
)
from tinygrad_edu.backend import (
    DeviceUnavailableError,
    cuda_is_available,
    get_backend,
    get_default_device,
    get_rng_state,
    manual_seed,
    set_default_device,
    set_rng_state,
)
from tinygrad_edu.composite import amax, amin, argmax, argmin, chunk
from tinygrad_edu.creation import (
    arange,
    full,
    full_like,
    ones,
    ones_like,
    rand,
    rand_like,
    randn,
    randn_like,
    zeros,
    zeros_like,
)
from tinygrad_edu.dtypes import bfloat16, bool_, float16, float32, float64, int32, int64
from tinygrad_edu.functions import cat, concatenate, maximum, minimum, split, stack, where
from tinygrad_edu.gradcheck import (
    GradcheckError,
    GradcheckReport,
    NonDifferentiablePointError,
    check_gradients,
    gradcheck,
    gradcheck_module,
)
from tinygrad_edu.jit import JitError, JitWarning, jit  # (tg.jit is the decorator; the module is tinygrad_edu.jit)
from tinygrad_edu.serialization import CheckpointError, load, save
from tinygrad_edu.tensor import Tensor

__version__ = "0.1.0"

__all__ = [
    "AnomalyError", "CheckpointError", "DeviceUnavailableError", "Function", "GradcheckError", "GradcheckReport",
    "InplaceModificationError", "InputError", "JitError", "JitWarning", "NonDifferentiablePointError", "Tensor", "amax", "amin", "amp",
    "arange", "argmax", "argmin", "autograd", "bfloat16", "bool_", "cat", "check_gradients", "chunk", "concatenate",
    "cuda_is_available", "datasets", "detect_anomaly", "distributed", "float16", "float32", "float64", "full",
    "full_like", "get_backend", "get_default_device", "get_rng_state", "gradcheck", "gradcheck_module", "int32",
    "int64", "is_anomaly_enabled", "is_grad_enabled", "jit", "load", "manual_seed", "maximum", "minimum", "no_grad", "ones",
    "ones_like", "rand", "rand_like", "randn", "randn_like", "save", "set_default_device", "set_detect_anomaly",
    "set_rng_state", "split", "stack", "where", "zeros", "zeros_like",
]
