"""``MasterWeights``: an FP16 (or BF16) model trained through FP32 master copies of its weights.

Why master weights (Micikevicius et al. 2018, "Mixed Precision Training", ICLR, section 3.1). FP16 has 10 stored
mantissa bits: a weight w has neighbours w·(1 ± 2^-10) at best, and adding an update smaller than half of that
gap (|η·g| < |w|·2^-11, i.e. an update 2048 times smaller than the weight) gives back w unchanged. Late in
training, with small learning rates, most updates are that small, so an FP16 weight stops moving even though
the sum of many such updates would matter. Keeping an FP32 copy of every weight (13 more mantissa bits) and
applying the optimizer to it lets the small updates accumulate; the FP16 model is refreshed from it (rounded)
after each step and is what the forward and backward passes read. Gradients computed by the FP16 model are
converted to FP32 for the master's ``.grad`` (exactly: every FP16 value is an FP32 value). The extra FP32 copy
costs memory, but activations, which dominate, are stored in FP16, so the total is still about halved.

Normalization layers stay in FP32 (``keep_fp32``, by default BatchNorm1d/2d and LayerNorm): their functions in
``tinygrad_edu.nn.functional`` take an FP16 input with FP32 γ, β and running statistics, compute the statistics
in FP32 and return FP16 (as PyTorch's cuDNN batchnorm does). Their parameters are then their own masters (the
optimizer steps them directly), and their running statistics, averages of many small per-batch terms, keep FP32
precision. Every other floating-point parameter and buffer of the model becomes FP16.

bfloat16 (``MasterWeights(model, dtype=tg.bfloat16)``): the same scheme with a coarser grid (7 stored mantissa bits:
an update more than 2^8 times smaller than its weight vanishes) but float32's exponent range (smallest normal
2^-126, subnormals down to 2^-133). The master weights matter even more; loss scaling does not: the gradients that
float16 flushes to zero below 2^-24 are far inside bfloat16's range, so ``needs_loss_scaling`` is False and the loop
runs without a ``GradScaler`` (or with ``GradScaler(enabled=master.needs_loss_scaling)``), as PyTorch's bfloat16
autocast does.

Usage, with ``GradScaler`` for the gradients' range (see ``grad_scaler``)::

    model = nn.Sequential(nn.Linear(64, 128), nn.BatchNorm1d(128), nn.ReLU(), nn.Linear(128, 10))
    master = amp.MasterWeights(model)                    # model now FP16 (batchnorm FP32)
    optimizer = optim.SGD(master.parameters(), lr=0.1, momentum=0.9)
    scaler = amp.GradScaler()
    for x, y in batches:
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x.half()).float(), y)
        scaler.scale(loss).backward()
        master.copy_grads_to_master()                    # FP16 grads -> FP32 master grads (still scaled)
        scaler.step(optimizer)                           # unscale, then step (or skip on inf/NaN)
        scaler.update()
        master.copy_master_to_model()                    # FP32 -> FP16, rounded

and in bfloat16, without loss scaling::

    master = amp.MasterWeights(model, dtype=tg.bfloat16)  # model now BF16 (batchnorm FP32)
    for x, y in batches:
        optimizer.zero_grad()
        F.cross_entropy(model(x.astype(master.dtype)).float(), y).backward()
        master.copy_grads_to_master()
        optimizer.step()
        master.copy_master_to_model()
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

import numpy as np

from tinygrad_edu.autograd import capture
from tinygrad_edu.dtypes import float16, is_floating, is_low_precision
from tinygrad_edu.nn.modules.batchnorm import BatchNorm1d, BatchNorm2d
from tinygrad_edu.nn.modules.module import Module, Parameter
from tinygrad_edu.nn.modules.normalization import LayerNorm
from tinygrad_edu.tensor import Tensor

#: Layers whose parameters and buffers stay FP32: they accept an FP16 input with FP32 parameters.
DEFAULT_KEEP_FP32 = (BatchNorm1d, BatchNorm2d, LayerNorm)


class MasterWeights:
    """FP32 master copies of an FP16 (or BF16) model's weights: the optimizer steps the masters, the model computes.

    ``MasterWeights(model, keep_fp32=DEFAULT_KEEP_FP32, master_dtype=float32, *, dtype=float16)`` converts ``model``
    in place: each floating-point parameter and buffer of a module that is not an instance of ``keep_fp32`` gets an
    array of ``dtype``, the low-precision dtype the model computes in (float16, or ``tg.bfloat16``; the Parameter
    objects stay the same, so references to them stay valid), and an FP32 master Parameter holding its original,
    unrounded value. Parameters of the ``keep_fp32`` layers are their own masters. Below, "FP16" reads "``dtype``".

    * ``dtype``: the model's low-precision dtype; feed the model inputs of it (``x.astype(master.dtype)``);
    * ``needs_loss_scaling``: True for float16, whose range flushes small gradients to zero (use a ``GradScaler``);
      False for bfloat16, which has float32's exponent range;
    * ``parameters()`` / ``named_parameters()``: the masters, in the model's order: give them to the optimizer;
    * ``copy_grads_to_master()``: moves each model gradient into its master's ``.grad``, converted to FP32, and
      clears the model's (so ``optimizer.zero_grad()`` alone starts the next step clean). Gradients are not
      unscaled here: ``GradScaler.unscale_``/``step`` does that on the FP32 masters;
    * ``copy_master_to_model()``: rounds each master to FP16 into its model parameter. After a skipped step the
      masters are unchanged, so the model is too, bit for bit;
    * ``zero_grad()``: clears the gradients of model and masters;
    * ``state_dict()`` / ``load_state_dict()``: the model's state with the FP32 master values in place of the FP16
      parameters (a checkpoint that loses nothing); loading writes the masters and refreshes the model.

    Invariant: every FP16 model parameter equals its master rounded to FP16.
    """

    def __init__(self, model: Module, keep_fp32: tuple[type, ...] = DEFAULT_KEEP_FP32, master_dtype: Any = "float32",
                 *, dtype: Any = "float16"):
        if not isinstance(model, Module):
            raise TypeError(f"MasterWeights: model must be a Module, got {type(model).__name__}")
        master_dtype = np.dtype(master_dtype)
        if master_dtype.kind != "f" or master_dtype.itemsize < 4:
            raise TypeError(f"MasterWeights: master_dtype must be float32 or float64, got {master_dtype}")
        try:
            low = np.dtype(dtype)
        except TypeError:
            low = None
        if low is None or not is_low_precision(low):
            raise TypeError(f"MasterWeights: dtype must be a low-precision dtype, float16 or bfloat16, got "
                            f"{low if low is not None else repr(dtype)}")
        dtype = low
        named = list(model.named_parameters())
        for name, p in named:
            if not p.backend.has_dtype(dtype):
                raise TypeError(f"MasterWeights: parameter {name} is on device {p.device!r}, which has no {dtype}")
        kept = {id(p) for m in model.modules() if isinstance(m, keep_fp32) for p in m._parameters.values()}
        self.model, self.keep_fp32, self.dtype = model, tuple(keep_fp32), dtype
        self._model_parameters = [p for _, p in named]  # the model's parameters, in the order of the masters
        self._masters: OrderedDict[str, Parameter] = OrderedDict()
        self._pairs: list[tuple[Parameter, Parameter]] = []  # (FP16 model parameter, its FP32 master)
        # everything checked: now convert the model
        for name, p in named:
            if id(p) in kept:
                self._masters[name] = p
                continue
            xp = p.backend.xp
            master_array = p.data if p.dtype == master_dtype else xp.astype(p.data, p.backend.dtype(master_dtype))
            master = Parameter(Tensor._wrap(master_array, p.backend))  # the original values, unrounded
            p.data, p.grad = xp.astype(p.data, p.backend.dtype(dtype)), None
            self._masters[name] = master
            self._pairs.append((p, master))
        for m in model.modules():
            if isinstance(m, keep_fp32):
                continue
            for b in m._buffers.values():
                if b is not None and is_floating(b.dtype) and b.backend.has_dtype(dtype):
                    b.data = b.backend.xp.astype(b.data, b.backend.dtype(dtype))

    @property
    def needs_loss_scaling(self) -> bool:
        """True when the model's dtype is float16: its gradients below 2^-24 flush to zero unless the loss is scaled
        (``GradScaler``). False for bfloat16, whose exponent range is float32's."""
        return self.dtype == float16

    # -- the masters ---------------------------------------------------------------------------------------------
    def parameters(self) -> Iterator[Parameter]:
        """The FP32 master parameters (for the optimizer), in the order of ``model.parameters()``."""
        yield from self._masters.values()

    def named_parameters(self) -> Iterator[tuple[str, Parameter]]:
        yield from self._masters.items()

    def _check_parameters(self, op: str) -> None:
        """Raise if the model's parameters are no longer the ones the masters were made for (a layer added or
        replaced after ``MasterWeights`` was built would silently never train)."""
        current = [(name, id(p)) for name, p in self.model.named_parameters()]
        known = {name: id(p) for name, p in zip(self._masters, self._model_parameters)}
        changed = [name for name, ident in current if known.get(name) != ident]
        gone = sorted(set(known) - {name for name, _ in current})
        if changed or gone:
            raise RuntimeError(f"MasterWeights.{op}: the model's parameters changed after MasterWeights was built "
                               f"(new or replaced: {changed or 'none'}; removed: {gone or 'none'}): they have no "
                               f"master and would never train. Build MasterWeights once the model is complete.")

    # -- the two copies of a step -----------------------------------------------------------------------------------
    @capture.host_call
    def copy_grads_to_master(self) -> None:
        """Move the model's FP16 gradients into the masters' ``.grad`` as FP32 (exact), clearing the model's."""
        self._check_parameters("copy_grads_to_master")
        for p, master in self._pairs:
            if p.grad is None:
                master.grad = None
                continue
            xp = p.backend.xp
            master.grad = Tensor._wrap(xp.astype(p.grad.data, master.data.dtype), p.backend)
            p.grad = None

    @capture.host_call
    def copy_master_to_model(self) -> None:
        """Round every master to FP16 into its model parameter (the model's next forward reads these)."""
        for p, master in self._pairs:
            p.data = p.backend.xp.astype(master.data, p.data.dtype)

    @capture.host_call
    def zero_grad(self) -> None:
        """Clear the gradients of the model's parameters and of the masters."""
        for p, _ in self._pairs:
            p.grad = None
        for master in self._masters.values():
            master.grad = None

    # -- saving and restoring ---------------------------------------------------------------------------------------
    def state_dict(self) -> OrderedDict[str, np.ndarray]:
        """``model.state_dict()`` with each FP16 parameter replaced by its FP32 master (host copies)."""
        self._check_parameters("state_dict")
        state = self.model.state_dict()
        for name, master in self._masters.items():
            state[name] = master.numpy().copy()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Load parameters into the masters (and the FP32 layers) and buffers into the model, then refresh the FP16
        model from the masters. Names and shapes are checked before anything changes."""
        self._check_parameters("load_state_dict")
        model_state = self.model.state_dict()
        missing, unexpected = sorted(set(model_state) - set(state)), sorted(set(state) - set(model_state))
        if missing or unexpected:
            raise KeyError(f"MasterWeights.load_state_dict: missing keys {missing}, unexpected keys {unexpected}")
        arrays = {}
        for name, current in model_state.items():
            value = np.asarray(state[name].numpy() if isinstance(state[name], Tensor) else state[name])
            if value.shape != current.shape:
                raise ValueError(f"MasterWeights.load_state_dict: {name} has shape {value.shape} in the state, "
                                 f"{current.shape} in the model")
            arrays[name] = value
        buffers = dict(self.model.named_buffers())
        for name, value in arrays.items():
            target = self._masters[name] if name in self._masters else buffers[name]
            target.data = target.backend.asarray(value.astype(target.dtype))
        self.copy_master_to_model()

    def __repr__(self) -> str:
        kind = "FP16" if self.dtype == float16 else "BF16"
        return (f"MasterWeights({len(self._pairs)} {kind} parameters with FP32 masters, "
                f"{len(self._masters) - len(self._pairs)} kept in FP32)")
