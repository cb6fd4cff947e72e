"""DFP16 training: the matrix products of every ``nn.Linear`` in 16-bit integers with INT32 accumulation.

Das et al. 2018, "Mixed Precision Training of Convolutional Neural Networks using Integer Operations" (ICLR): the
other mixed-precision recipe of that year, next to Micikevicius et al.'s FP16 (``amp.MasterWeights``,
``amp.GradScaler``). Instead of float16, each operand of a matrix product becomes a Dynamic Fixed Point tensor: int16
mantissas sharing one exponent per tensor (``tinygrad_edu.backend.kernels.dfp16``, which holds the format's
definitions, its rounding and the accuracy contract). The products are INT16 × INT16, summed in INT32 two at a time
(more could overflow) and the chunk sums added in float32; the result is float32 for the next operation. What stays
FP32, as in the paper: the weights the optimizer steps (they are the FP32 master weights, quantized again at every
forward), the bias, batch normalization, activations, the loss. No loss scaling is needed: each gradient tensor gets
its own exponent from its own largest value, so a tensor of small gradients is not flushed the way float16's fixed
range flushes everything below 2^-24 (within a tensor, values below 2^-15 of its largest still round to 0).

One call converts a model and one undoes it::

    from tinygrad_edu.amp import dfp16
    model = dfp16.convert(model)        # every nn.Linear now runs its three products in DFP16 (same Parameters)
    optimizer = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)   # steps the FP32 weights, as in fp32 training
    ...                                 # the training loop of fp32, unchanged
    model = dfp16.revert(model)         # plain nn.Linear again

``convert`` swaps each ``nn.Linear`` (exactly that class: a subclass such as ``DropConnectLinear`` keeps its own
forward) for a ``DFP16Linear`` holding the same Parameter objects, so an optimizer built before or after keeps
stepping them and ``state_dict()`` is unchanged. Its parameters must be float32 (the FP32 master weights): a model
converted to float16 by ``MasterWeights`` is refused. Other devices than the CPU work through host copies: the
integer kernel runs on the CPU.
"""

from __future__ import annotations

from tinygrad_edu.autograd import Function, InputError
from tinygrad_edu.backend.kernels import dfp16 as kernel
from tinygrad_edu.nn.modules.linear import Linear
from tinygrad_edu.nn.modules.module import Module, rebuilt_as
from tinygrad_edu.tensor import Tensor


class DFP16LinearFunction(Function):
    """y = x Wᵀ + b with its three matrix products in DFP16, for x (..., in), W (out, in), b (out,), float32.

    With Q the conversion to DFP16 (each tensor its own shared exponent), X and G the input and the upstream gradient
    flattened to matrices (n, in) and (n, out) over the leading axes::

        X̂ = Q(X)   Ŵ = Q(W)            y  = X̂ Ŵᵀ + b               (forward)
        Ĝ = Q(G)                        dL/dx = Ĝ Ŵ                   (backward)
                                        dL/dW = Ĝᵀ X̂
                                        dL/db = Σ_rows G              (float32, not quantized)

    Each product ``·`` is ``kernels.dfp16.matmul``: INT16 products, INT32 chunks of two, chunk sums added in float32,
    a float32 result. The chain rule treats Q as the identity (the straight-through rule of every quantized training
    scheme, the paper's included): the backward is the LinearFunction's backward evaluated on quantized operands.
    Saved for backward: X̂ and Ŵ as DFP16 (int16, half the bytes of float32), the forward's quantizations reused.

    Checked in ``tests/test_dfp16.py`` against those formulas on the dequantized operands (finite differences cannot
    check it: Q is piecewise constant, so the forward's derivative is 0 almost everywhere).
    """

    @staticmethod
    def forward(ctx, x, weight, bias=None):
        backend = ctx.backend
        x_host = backend.to_host(x)
        x_q = kernel.quantize(x_host.reshape(-1, x_host.shape[-1]), "DFP16LinearFunction: the input")
        w_q = kernel.quantize(backend.to_host(weight), "DFP16LinearFunction: the weight")
        ctx.save_for_backward(x_q, w_q)
        ctx.input_shape = x_host.shape
        y = kernel.matmul(x_q, w_q.T)
        if bias is not None:
            y += backend.to_host(bias)
        return backend.from_host(y.reshape(*x_host.shape[:-1], y.shape[-1]))

    @staticmethod
    def backward(ctx, g):
        backend = ctx.backend
        x_q, w_q = ctx.saved_tensors
        g = ctx.xp.reshape(g, (-1, g.shape[-1]))  # (..., out) -> (n, out): every leading position is a row
        g_q = kernel.quantize(backend.to_host(g), "DFP16LinearFunction.backward: the gradient of the output")
        grad_x = backend.from_host(kernel.matmul(g_q, w_q).reshape(ctx.input_shape)) \
            if ctx.needs_input_grad[0] else None
        grad_w = backend.from_host(kernel.matmul(g_q.T, x_q)) if ctx.needs_input_grad[1] else None
        grad_b = backend.sum_per_channel(g) if len(ctx.needs_input_grad) > 2 and ctx.needs_input_grad[2] else None
        return grad_x, grad_w, grad_b


def dfp16_linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``x @ weight.T + bias`` with the products in DFP16 (``DFP16LinearFunction``); float32 tensors only: x of shape
    (..., in_features), weight (out_features, in_features), bias (out_features,). ``InputError`` names what does not
    fit."""
    for name, t in (("input", x), ("weight", weight), ("bias", bias)):
        if t is None and name == "bias":
            continue
        if not isinstance(t, Tensor):
            raise InputError(f"dfp16_linear: {name} must be a Tensor, got {type(t).__name__}")
        if t.dtype != "float32":
            raise InputError(f"dfp16_linear: {name} is {t.dtype}; DFP16 quantizes float32 tensors (the weight is "
                             "the FP32 master weight)")
    if weight.ndim != 2 or x.ndim == 0 or x.shape[-1] != weight.shape[1]:
        raise InputError(f"dfp16_linear: input of shape {x.shape} does not match weight of shape {weight.shape} "
                         "(expected input (..., in_features) and weight (out_features, in_features))")
    if bias is not None and (bias.ndim != 1 or bias.shape[0] != weight.shape[0]):
        raise InputError(f"dfp16_linear: bias has shape {bias.shape}, expected ({weight.shape[0]},)")
    if bias is None:
        return DFP16LinearFunction.apply(x, weight)
    return DFP16LinearFunction.apply(x, weight, bias)


class DFP16Linear(Linear):
    """``nn.Linear`` whose forward is ``dfp16_linear``: the same parameters and initialization, its matrix products
    in DFP16. Built directly, or from an existing Linear by ``convert`` (sharing its Parameters)."""

    def forward(self, x: Tensor) -> Tensor:
        return dfp16_linear(x, self.weight, self.bias)


def _swap(module: Module, source: type[Module], target: type[Module]) -> Module:
    if type(module) is source:
        return rebuilt_as(module, target)
    for name, child in list(module._modules.items()):
        replacement = _swap(child, source, target)
        if replacement is not child:
            setattr(module, name, replacement)
    return module


def convert(model: Module) -> Module:
    """Return ``model`` with every ``nn.Linear`` replaced by a ``DFP16Linear`` holding the same Parameters (the
    model's own submodules are swapped in place; a bare Linear comes back as a new DFP16Linear). ``TypeError`` before
    any change when a Linear's parameters are not float32, naming the parameter."""
    if not isinstance(model, Module):
        raise TypeError(f"dfp16.convert: model must be a Module, got {type(model).__name__}")
    for path, module in model.named_modules():
        if type(module) is Linear:
            for name, p in module._parameters.items():
                if p is not None and p.dtype != "float32":
                    where = f"{path}.{name}" if path else name
                    raise TypeError(f"dfp16.convert: parameter {where} is {p.dtype}; DFP16 quantizes float32 "
                                    "weights (the FP32 master weights), convert a float32 model")
    return _swap(model, Linear, DFP16Linear)


def revert(model: Module) -> Module:
    """Undo ``convert``: every ``DFP16Linear`` of ``model`` becomes a plain ``nn.Linear`` with the same Parameters."""
    if not isinstance(model, Module):
        raise TypeError(f"dfp16.revert: model must be a Module, got {type(model).__name__}")
    return _swap(model, DFP16Linear, Linear)


__all__ = ["DFP16Linear", "DFP16LinearFunction", "convert", "dfp16_linear", "revert"]
