r"""Weight initialization, as ``torch.nn.init``: functions that overwrite a tensor's values IN PLACE and return it.

Every function writes into the tensor's own array (``tensor.data[...] = new``): the Parameter object, and the array
object it holds, stay the same, so a model or an optimizer that refers to them sees the new values. Random values
come from the generator of the tensor's backend (``tinygrad_edu.manual_seed`` seeds them all), drawn on its device.
Nothing is recorded on the tape.

Why the scale matters (course notes /work/shared/seeds/004_b3e767863c47c52e.txt, "Scaling of parameters at
initialization"): a layer a = Σ_j x_j w_j over n inputs with independent zero-mean weights of variance σ² has
Var(a) = n·σ²·E[x²]. After a ReLU of a zero-mean symmetric a, E[relu(a)²] = Var(a)/2 (half of the mass is cut to 0).
So the second moment that feeds the next layer is multiplied by n·σ²/2 per layer, and stays constant when

    σ = sqrt(2/n)          (He, Zhang, Ren and Sun 2015, "Delving deep into rectifiers")

The notes reach the same σ; two slips on the way do not change it: ⟨b⟩ = s/sqrt(2π) (not s/2) and ⟨b²⟩ = s²/2
(printed n_h·σ/2), with s² = n·σ². The quantity that propagates is the second moment E[b²] = n·σ²/2, not Var(b),
since the next layer's weights have mean 0. Without the factor 2 (Glorot and Bengio 2010, for tanh: gain 1) the
signal of a deep ReLU network shrinks by 2 per layer; with σ = 1 it grows by n/2 per layer (``tests/test_init.py``
measures both through 20 layers).

Functions: ``calculate_gain``, ``calculate_fan_in_and_fan_out``, ``uniform_``, ``normal_``, ``zeros_``, ``ones_``,
``constant_``, ``xavier_uniform_``, ``xavier_normal_``, ``kaiming_uniform_``, ``kaiming_normal_``, ``orthogonal_``,
and two that initialize whole models from the course slides (002_..., slides 127-135): ``lsuv_`` (Mishkin and
Matas) and ``looks_linear_`` (Balduzzi et al., for CReLU networks).
"""

from __future__ import annotations

import math
import numbers
import warnings
from typing import Any

import numpy as np

from tinygrad_edu.autograd import InputError, no_grad
from tinygrad_edu.dtypes import is_floating
from tinygrad_edu.tensor import Tensor

__all__ = [
    "calculate_gain", "calculate_fan_in_and_fan_out", "uniform_", "normal_", "zeros_", "ones_", "constant_",
    "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_", "orthogonal_", "lsuv_",
    "looks_linear_",
]


# -- helpers --------------------------------------------------------------------------------------------------------
def _check_tensor(name: str, tensor: Any) -> Tensor:
    if not isinstance(tensor, Tensor):
        raise TypeError(f"init.{name}: tensor must be a Tensor, got {type(tensor).__name__}")
    if not is_floating(tensor.dtype):
        raise TypeError(f"init.{name}: tensor must have a floating dtype, got {tensor.dtype}")
    return tensor


def _check_real(name: str, arg: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise TypeError(f"init.{name}: {arg} must be a finite real number, got {value!r}")
    return float(value)


def _write(tensor: Tensor, array: Any) -> Tensor:
    """Copy ``array`` (same shape, tensor's backend) into the tensor's own array, in place."""
    xp = tensor.backend.xp
    tensor.data[...] = xp.astype(array, tensor.data.dtype)
    tensor._bump_version()  # an in-place change: a pending backward that saved the tensor must refuse to run
    return tensor


def _draw_uniform(tensor: Tensor, low: float, high: float) -> Tensor:
    return _write(tensor, tensor.backend.uniform(tensor.shape, low, high, tensor.dtype))


def _draw_normal(tensor: Tensor, mean: float, std: float) -> Tensor:
    return _write(tensor, tensor.backend.normal(tensor.shape, mean, std, tensor.dtype))


# -- gain and fans --------------------------------------------------------------------------------------------------
def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """The factor by which an init scales σ to make up for what ``nonlinearity`` does to the second moment.

    As ``torch.nn.init.calculate_gain``: linear, conv*, sigmoid -> 1; tanh -> 5/3; relu -> sqrt(2) (the factor 2 of
    He et al., see the module docstring); leaky_relu with slope a (``param``, default 0.01) -> sqrt(2/(1 + a²));
    selu -> 3/4.
    """
    linear_fns = ["linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d"]
    if nonlinearity in linear_fns or nonlinearity == "sigmoid":
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif isinstance(param, bool) or not isinstance(param, numbers.Real):
            raise ValueError(f"init.calculate_gain: negative_slope {param!r} is not a valid number")
        else:
            slope = float(param)
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"init.calculate_gain: unsupported nonlinearity {nonlinearity!r}")


def calculate_fan_in_and_fan_out(tensor: Tensor) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight, as PyTorch: shape (out, in, *kernel) -> (in·k, out·k), k = prod(kernel).

    A Linear weight (out_features, in_features) gives (in_features, out_features); a Conv2d weight
    (out_channels, in_channels, kh, kw) gives (in_channels·kh·kw, out_channels·kh·kw). Fewer than 2 dims: an error.
    """
    shape = tuple(tensor.shape)
    if len(shape) < 2:
        raise InputError(f"init: fan in and fan out can not be computed for a tensor with fewer than 2 dimensions, "
                         f"got shape {shape}")
    receptive_field = math.prod(shape[2:])
    return shape[1] * receptive_field, shape[0] * receptive_field


_calculate_fan_in_and_fan_out = calculate_fan_in_and_fan_out  # PyTorch's (private) name


def _fan(name: str, tensor: Tensor, mode: str) -> int:
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"init.{name}: mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = calculate_fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


# -- simple fills ------------------------------------------------------------------------------------------------------
def uniform_(tensor: Tensor, a: float = 0.0, b: float = 1.0) -> Tensor:
    """Fill with samples of U(a, b)."""
    _check_tensor("uniform_", tensor)
    a, b = _check_real("uniform_", "a", a), _check_real("uniform_", "b", b)
    if a > b:
        raise InputError(f"init.uniform_: needs a <= b, got a={a}, b={b}")
    return _draw_uniform(tensor, a, b)


def normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0) -> Tensor:
    """Fill with samples of N(mean, std²)."""
    _check_tensor("normal_", tensor)
    mean, std = _check_real("normal_", "mean", mean), _check_real("normal_", "std", std)
    if std < 0:
        raise InputError(f"init.normal_: std must be >= 0, got {std}")
    return _draw_normal(tensor, mean, std)


def constant_(tensor: Tensor, val: float) -> Tensor:
    """Fill with ``val``."""
    _check_tensor("constant_", tensor)
    tensor.data[...] = _check_real("constant_", "val", val)
    tensor._bump_version()
    return tensor


def zeros_(tensor: Tensor) -> Tensor:
    """Fill with 0."""
    return constant_(tensor, 0.0)


def ones_(tensor: Tensor) -> Tensor:
    """Fill with 1."""
    return constant_(tensor, 1.0)


# -- scaled by the fans -----------------------------------------------------------------------------------------------
def xavier_uniform_(tensor: Tensor, gain: float = 1.0) -> Tensor:
    """Glorot and Bengio (2010): U(-a, a), a = gain·sqrt(6/(fan_in + fan_out)), so σ = gain·sqrt(2/(fan_in + fan_out))."""
    _check_tensor("xavier_uniform_", tensor)
    gain = _check_real("xavier_uniform_", "gain", gain)
    fan_in, fan_out = calculate_fan_in_and_fan_out(tensor)
    a = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return _draw_uniform(tensor, -a, a)


def xavier_normal_(tensor: Tensor, gain: float = 1.0) -> Tensor:
    """Glorot and Bengio (2010): N(0, σ²), σ = gain·sqrt(2/(fan_in + fan_out))."""
    _check_tensor("xavier_normal_", tensor)
    gain = _check_real("xavier_normal_", "gain", gain)
    fan_in, fan_out = calculate_fan_in_and_fan_out(tensor)
    return _draw_normal(tensor, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)))


def kaiming_uniform_(tensor: Tensor, a: float = 0, mode: str = "fan_in", nonlinearity: str = "leaky_relu") -> Tensor:
    """He et al. (2015): U(-b, b) with b = sqrt(3)·σ, σ = gain/sqrt(fan) (the uniform of standard deviation σ).

    ``gain = calculate_gain(nonlinearity, a)``: sqrt(2) for "relu", the σ = sqrt(2/n) derived in the course notes
    (004_b3e767863c47c52e.txt, see the module docstring). ``mode="fan_in"`` keeps the forward signal's second moment,
    ``"fan_out"`` the backward gradient's. ``a``: the negative slope of a leaky ReLU (PyTorch's default, a = 0 with
    "leaky_relu", is the ReLU's gain sqrt(2)).
    """
    _check_tensor("kaiming_uniform_", tensor)
    a = _check_real("kaiming_uniform_", "a", a)
    std = calculate_gain(nonlinearity, a) / math.sqrt(_fan("kaiming_uniform_", tensor, mode))
    bound = math.sqrt(3.0) * std
    return _draw_uniform(tensor, -bound, bound)


def kaiming_normal_(tensor: Tensor, a: float = 0, mode: str = "fan_in", nonlinearity: str = "leaky_relu") -> Tensor:
    """He et al. (2015): N(0, σ²) with σ = gain/sqrt(fan), sqrt(2/fan_in) for a ReLU network.

    The derivation (course notes 004_b3e767863c47c52e.txt, "Scaling of parameters at initialization"): a ReLU keeps
    half of the second moment of its zero-mean input, n inputs of weight variance σ² multiply it by n·σ², so
    n·σ²/2 = 1 keeps it constant layer after layer: σ = sqrt(2/n). Arguments as ``kaiming_uniform_``.
    """
    _check_tensor("kaiming_normal_", tensor)
    a = _check_real("kaiming_normal_", "a", a)
    std = calculate_gain(nonlinearity, a) / math.sqrt(_fan("kaiming_normal_", tensor, mode))
    return _draw_normal(tensor, 0.0, std)


def _orthogonal_host(backend: Any, rows: int, cols: int) -> np.ndarray:
    """A (rows, cols) matrix with orthonormal rows (rows <= cols) or columns (rows >= cols), Haar-distributed.

    QR of a Gaussian matrix A = QR; multiplying Q's columns by sign(diag(R)) makes the factorization unique (R with
    a positive diagonal), and Q then follows the uniform (Haar) distribution on the orthogonal matrices (Mezzadri
    2007); without it NumPy's sign convention would bias Q. The Gaussian comes from the tensor's backend generator;
    the QR runs on the host (NumPy): init is not a hot path, and the array API has no QR.
    """
    flat = backend.to_host(backend.normal((rows, cols), 0.0, 1.0, np.float64))
    if rows < cols:
        flat = flat.T
    q, r = np.linalg.qr(flat)
    q = q * np.sign(np.diag(r))  # sign correction (a zero diagonal entry has probability 0)
    return q.T if rows < cols else q


def orthogonal_(tensor: Tensor, gain: float = 1) -> Tensor:
    """Saxe, McClelland and Ganguli (2014): a (semi-)orthogonal matrix times ``gain``, as ``torch.nn.init.orthogonal_``.

    The tensor is seen as a matrix (rows = shape[0], cols = the product of the other dims): its rows are orthonormal
    when rows <= cols (W·Wᵀ = I), its columns when rows >= cols (Wᵀ·W = I). An orthogonal map keeps every norm, so
    a deep linear network so initialized neither explodes nor vanishes.
    """
    _check_tensor("orthogonal_", tensor)
    gain = _check_real("orthogonal_", "gain", gain)
    if tensor.ndim < 2:
        raise InputError(f"init.orthogonal_: only tensors with 2 or more dimensions are supported, got shape "
                         f"{tuple(tensor.shape)}")
    rows = tensor.shape[0]
    cols = tensor.numel() // rows if rows else 0
    if rows == 0 or cols == 0:
        return tensor
    q = gain * _orthogonal_host(tensor.backend, rows, cols)
    return _write(tensor, tensor.backend.from_host(q.reshape(tensor.shape)))


# -- whole models -----------------------------------------------------------------------------------------------------
def _weighted_layers(model: Any) -> list[Any]:
    """Modules with a ``weight`` Parameter of 2 or more dims (Linear, DropConnectLinear, convolutions), in
    registration order; normalization layers (1-D weights) and activations are left out."""
    from tinygrad_edu.nn.modules.module import Parameter

    return [m for m in model.modules()
            if isinstance(getattr(m, "_parameters", {}).get("weight"), Parameter) and m.weight.ndim >= 2]


class _Captured(Exception):
    """Raised by a patched ``forward`` to stop the model's forward once the wanted output is in hand."""


def _output_of(model: Any, layer: Any, batch: Tensor) -> Tensor:
    """The output of ``layer`` when ``model`` runs on ``batch``: a forward hook made by patching the layer's
    ``forward`` for one call (Modules have no hooks); the rest of the model's forward is skipped."""
    captured: list[Tensor] = []
    original = layer.forward

    def hooked(*args: Any, **kwargs: Any) -> Any:
        captured.append(original(*args, **kwargs))
        raise _Captured

    object.__setattr__(layer, "forward", hooked)
    try:
        model(batch)
    except _Captured:
        pass
    finally:
        object.__delattr__(layer, "forward")
    if not captured:
        raise InputError(f"init.lsuv_: the forward of the model never calls its layer {type(layer).__name__} "
                         f"(call every Linear/Conv layer through layer(x))")
    return captured[0]


def _variance(y: Tensor) -> float:
    xp = y.backend.xp
    data = y.data if y.dtype.itemsize >= 4 else xp.astype(y.data, xp.float32)  # float16, bfloat16: statistics in float32
    return float(y.backend.to_host(xp.var(data)))


def lsuv_(model: Any, batch: Tensor, tol: float = 0.1, max_iter: int = 10) -> Any:
    """Layer-sequential unit-variance init (Mishkin and Matas 2016, "All you need is a good init"; slide 128 of
    the course, 002_f6a64beb83c69062.txt).

    1. ``orthogonal_`` on the weight of every layer with a weight of 2 or more dims (Linear, convolutions);
    2. layer by layer, in the order the forward calls them, run the model on ``batch`` and rescale the layer's
       weight by 1/sqrt(v), v the variance of the layer's output (over all its elements), until |v − 1| < tol or
       ``max_iter`` rescalings.

    Supported models: any Module whose forward calls each weighted layer once through ``layer(x)`` — an
    ``nn.Sequential`` of layers, nested Sequentials, or a custom forward. The output of a layer is captured by
    patching its ``forward`` for one call (Modules have no forward hooks here), and the rest of the forward is then
    skipped. Biases are left as they are (the paper rescales weights only): with a zero bias one rescaling gives
    v = 1 exactly; a bias whose own spread exceeds the target can keep v from reaching 1, which gives a warning.
    The model runs in evaluation mode (dropout off, batchnorm's running statistics untouched) and without the tape;
    its modes are restored afterwards. Returns the model.
    """
    from tinygrad_edu.nn.modules.module import Module

    if not isinstance(model, Module):
        raise TypeError(f"init.lsuv_: model must be a Module, got {type(model).__name__}")
    if not isinstance(batch, Tensor):
        raise TypeError(f"init.lsuv_: batch must be a Tensor, got {type(batch).__name__}")
    tol = _check_real("lsuv_", "tol", tol)
    if tol <= 0:
        raise InputError(f"init.lsuv_: tol must be > 0, got {tol}")
    if isinstance(max_iter, bool) or not isinstance(max_iter, numbers.Integral) or max_iter < 1:
        raise InputError(f"init.lsuv_: max_iter must be an int >= 1, got {max_iter!r}")
    layers = _weighted_layers(model)
    if not layers:
        raise InputError(f"init.lsuv_: {type(model).__name__} has no layer with a 2-D or larger weight")
    modes = {m: m.training for m in model.modules()}
    model.eval()
    try:
        with no_grad():
            order = _forward_order(model, layers, batch)
            for layer in layers:
                orthogonal_(layer.weight)
            for layer in order:
                for _ in range(max_iter):
                    v = _variance(_output_of(model, layer, batch))
                    if abs(v - 1.0) < tol:
                        break
                    if not v > 0 or not math.isfinite(v):
                        raise InputError(f"init.lsuv_: the output of {type(layer).__name__} has variance {v} on the "
                                         f"batch, which cannot be rescaled to 1")
                    layer.weight.data[...] = layer.weight.data * (1.0 / math.sqrt(v))
                    layer.weight._bump_version()
                else:
                    v = _variance(_output_of(model, layer, batch))
                    if abs(v - 1.0) >= tol:
                        warnings.warn(f"init.lsuv_: {type(layer).__name__}'s output variance is {v:.4g} after "
                                      f"{max_iter} rescalings (tol {tol})", RuntimeWarning, stacklevel=2)
    finally:
        for m, training in modes.items():
            object.__setattr__(m, "training", training)
    return model


def _forward_order(model: Any, layers: list[Any], batch: Tensor) -> list[Any]:
    """The layers in the order the model's forward calls them (one forward with every layer's forward patched)."""
    order: list[Any] = []
    for layer in layers:
        original = layer.forward

        def recorder(*args: Any, _layer: Any = layer, _original: Any = original, **kwargs: Any) -> Any:
            if _layer not in order:
                order.append(_layer)
            return _original(*args, **kwargs)

        object.__setattr__(layer, "forward", recorder)
    try:
        model(batch)
    finally:
        for layer in layers:
            object.__delattr__(layer, "forward")
    missing = [type(m).__name__ for m in layers if m not in order]
    if missing:
        raise InputError(f"init.lsuv_: the forward of the model never calls its layers {missing}")
    return order


def _looks_linear_weight(weight: Tensor) -> Tensor:
    """W̃ = [W, −W] along dim 1 (the input dim), W orthogonal of shape (out, in/2, *kernel)."""
    if weight.ndim < 2 or weight.shape[1] % 2:
        raise InputError(f"init.looks_linear_: the weight of a layer fed by a CReLU needs an even input dim "
                         f"(dim 1), got shape {tuple(weight.shape)}")
    n = weight.shape[1] // 2
    half_shape = (weight.shape[0], n) + tuple(weight.shape[2:])
    w = _orthogonal_host(weight.backend, half_shape[0], math.prod(half_shape[1:])).reshape(half_shape)
    return _write(weight, weight.backend.from_host(np.concatenate([w, -w], axis=1)))


def looks_linear_(model_or_weight: Any) -> Any:
    r"""Looks-linear init for CReLU networks (Balduzzi et al. 2017, "The shattered gradients problem: if resnets
    are the answer, then what is the question?"; slides 129-135 of the course, 002_f6a64beb83c69062.txt).

    A layer fed by a CReLU of width 2n gets the mirrored weight W̃ = [W, −W] (two blocks along its input dim, with
    W orthogonal of width n), matching the layout of ``F.crelu(x, dim=1)``, which concatenates relu(x) and relu(−x)
    along dim 1 (the slides interleave the two halves instead, W̃_{j,2q−1} = −W̃_{j,2q} = W_{j,q}: the same idea in
    another order). Since relu(x) − relu(−x) = x,

        W̃·crelu(x) = W·relu(x) − W·relu(−x) = W·x

    so a CReLU network so initialized computes exactly a linear map at initialization (the product of its
    orthogonal matrices): no shattering of gradients at the start, and training bends it away from linear.

    ``model_or_weight``:

    * a weight Tensor (out, 2n) or (out, 2n, *kernel): filled with [W, −W] in place;
    * an ``nn.Sequential`` (nested ones are flattened): every layer with a 2-D or larger weight that comes right
      after a ``CReLU`` (dim 1, or -1 before a Linear) gets [W, −W]; every other such layer gets ``orthogonal_``;
      the biases of all of them are set to 0 (a nonzero bias would make the map affine, not linear).

    Returns what it was given.
    """
    from tinygrad_edu.nn.modules.activation import CReLU
    from tinygrad_edu.nn.modules.container import Sequential
    from tinygrad_edu.nn.modules.linear import Linear

    if isinstance(model_or_weight, Tensor):
        _check_tensor("looks_linear_", model_or_weight)
        with no_grad():
            return _looks_linear_weight(model_or_weight)
    if not isinstance(model_or_weight, Sequential):
        raise TypeError(f"init.looks_linear_: expected a weight Tensor or an nn.Sequential, got "
                        f"{type(model_or_weight).__name__}")

    def flatten(seq: Sequential) -> list[Any]:
        out: list[Any] = []
        for m in seq:
            out += flatten(m) if isinstance(m, Sequential) else [m]
        return out

    modules = flatten(model_or_weight)
    weighted = set(_weighted_layers(model_or_weight))
    plan = []  # (layer, mirrored?): every layer is checked before any weight is written
    previous = None
    for m in modules:
        if m in weighted:
            mirrored = isinstance(previous, CReLU)
            if mirrored:
                if not (previous.dim == 1 or (previous.dim == -1 and isinstance(m, Linear))):
                    raise InputError(f"init.looks_linear_: a CReLU with dim={previous.dim} feeds "
                                     f"{type(m).__name__}; the mirrored init needs the CReLU to concatenate "
                                     f"along the layer's input dim (dim=1)")
                if m.weight.shape[1] % 2:
                    raise InputError(f"init.looks_linear_: {type(m).__name__} after a CReLU has an odd input width "
                                     f"{m.weight.shape[1]} (weight {m.weight.shape}); [W, -W] needs an even one")
            plan.append((m, mirrored))
        previous = m
    with no_grad():
        for m, mirrored in plan:
            _looks_linear_weight(m.weight) if mirrored else orthogonal_(m.weight)
            if getattr(m, "bias", None) is not None:
                zeros_(m.bias)
    return model_or_weight
