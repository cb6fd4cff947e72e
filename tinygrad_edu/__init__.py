"""tinygrad_edu: a from-scratch autograd engine for learning how deep networks are trained.

    from tinygrad_edu import Tensor, Function, no_grad, gradcheck, set_default_device

Tensors live on a device (``"cpu"`` with NumPy, ``"cuda"`` with CuPy); ``TINYGRAD_EDU_DEVICE=cuda`` moves a whole
program to the GPU.
"""

import os as _os

import numpy as _np

from tinygrad_edu import amp, autograd, datasets, distributed
from tinygrad_edu.autograd import detect_anomaly, is_anomaly_enabled, set_detect_anomaly
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
from tinygrad_edu.creation import arange, full, ones, ones_like, rand, randn, zeros, zeros_like
from tinygrad_edu.gradcheck import (
    GradcheckError,
    GradcheckReport,
    NonDifferentiablePointError,
    check_gradients,
    gradcheck,
    gradcheck_module,
)
from tinygrad_edu.serialization import CheckpointError, load, save
from tinygrad_edu.tensor import (
    AnomalyError,
    Function,
    InplaceModificationError,
    InputError,
    Tensor,
    cat,
    concatenate,
    is_grad_enabled,
    maximum,
    minimum,
    no_grad,
    split,
    stack,
    where,
)

float16 = _np.dtype("float16")
float32 = _np.dtype("float32")
float64 = _np.dtype("float64")
int32 = _np.dtype("int32")
int64 = _np.dtype("int64")
bool_ = _np.dtype("bool")

__version__ = "0.1.0"

__all__ = [
    "DeviceUnavailableError", "Function", "amp", "autograd", "detect_anomaly", "set_detect_anomaly",
    "is_anomaly_enabled", "AnomalyError", "InplaceModificationError", "GradcheckError", "InputError", "GradcheckReport", "NonDifferentiablePointError", "Tensor", "arange", "bool_", "cat", "check_gradients", "concatenate",
    "cuda_is_available", "datasets", "distributed", "float16", "float32", "float64", "full", "get_backend", "get_default_device", "gradcheck", "gradcheck_module",
    "int32", "int64", "is_grad_enabled", "manual_seed", "maximum", "minimum", "no_grad", "ones", "ones_like", "rand",
    "randn", "set_default_device", "CheckpointError", "get_rng_state", "load", "save", "set_rng_state", "split", "stack", "where", "zeros", "zeros_like",
]

# kernels/ sits at the repository root and is installed as the subpackage tinygrad_edu.kernels. When the package is
# imported straight from a source checkout that was not installed in editable mode, find the kernels there.
_checkout_root = _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__)))
if not _os.path.isdir(_os.path.join(__path__[0], "kernels")) and _os.path.isfile(
    _os.path.join(_checkout_root, "kernels", "__init__.py")
):
    __path__.append(_checkout_root)
