"""``GradScaler``: loss scaling with PyTorch's ``torch.amp.GradScaler`` semantics, plus a static mode.

Why scale the loss (Micikevicius et al. 2018, "Mixed Precision Training", ICLR, section 3.2). FP16 has 5 exponent
bits: its smallest positive (subnormal) value is 2^-24 ≈ 6·10^-8, and anything below 2^-25 rounds to 0. The
gradients of a network are often that small, late in training or deep in the network (the paper found about 5%
of a network's activation gradients below 2^-24, flushed to zero), while FP16's top end (65504 ≈ 2^16) is nearly
unused. Multiplying the loss by S multiplies every gradient of the backward pass by S (the chain rule is linear
in the upstream gradient), which shifts their exponents up by log2 S into FP16's range. The gradients are then
divided by S in FP32 (``unscale_``), before anything reads their size: gradient clipping, weight decay, the
update. A power of two only moves exponents, so scaling and unscaling are exact.

Dynamic scaling (PyTorch's rule). Too large an S makes some gradient overflow to inf (or inf - inf = NaN); the
step is then skipped (the optimizer is not called, so weights and optimizer state stay as they were) and S is
halved (``backoff_factor``). After ``growth_interval`` steps in a row without overflow S is doubled
(``growth_factor``), so S hovers just below the largest safe value. The paper used a constant S (8 to 32768,
chosen per model): that is the static mode, ``GradScaler(init_scale=S, dynamic=False)``, which still skips a
step whose gradients overflow but never changes S.

A training step::

    scaler = amp.GradScaler()
    loss = F.cross_entropy(model(x.half()).float(), y)   # the loss in FP32 (see ``scale``)
    scaler.scale(loss).backward()                        # gradients of S·loss
    master.copy_grads_to_master()                        # FP16 model grads -> FP32 master grads (amp.MasterWeights)
    scaler.unscale_(optimizer)                           # optional: only needed before clipping
    nn.utils.clip_grad_norm_(master.parameters(), 1.0)
    scaler.step(optimizer)                               # unscale (if not done) and step, or skip on inf/NaN
    scaler.update()                                      # adjust S
    master.copy_master_to_model()                        # FP32 masters -> FP16 model, rounded
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from tinygrad_edu.autograd import capture
from tinygrad_edu.dtypes import is_floating
from tinygrad_edu.tensor import Tensor

_READY, _UNSCALED, _STEPPED = "ready", "unscaled", "stepped"
#: The scale's range: float32's smallest normal number (the floor a long run of overflows stops at) and largest.
MIN_SCALE, MAX_SCALE = float(np.finfo(np.float32).tiny), float(np.finfo(np.float32).max)


def _float32(value: float) -> float:
    """``value`` rounded to float32, as a Python float (PyTorch keeps the scale in a float32 tensor)."""
    return float(np.float32(value))


class GradScaler:
    """Dynamic (or static) loss scaling, as ``torch.amp.GradScaler``.

    ``GradScaler(init_scale=2.**16, growth_factor=2.0, backoff_factor=0.5, growth_interval=2000, enabled=True,
    *, dynamic=True)``

    * ``scale(outputs)``: ``outputs · S`` (a Tensor, or a list/tuple of them), multiplied in float32;
    * ``unscale_(optimizer)``: divides the gradients of ``optimizer``'s parameters by S in place (a multiply by
      1/S in float32) and records whether any is inf or NaN. At most once per optimizer between two ``update``
      calls; call it before clipping or otherwise reading the gradients;
    * ``step(optimizer)``: ``unscale_`` if it was not called, then ``optimizer.step()`` unless an inf/NaN was
      found (then nothing is touched: weights, momentum, Adam's moments and step count). Returns what
      ``optimizer.step`` returned, or None when skipped;
    * ``update(new_scale=None)``: on overflow (in any optimizer stepped since the last update) S ← S·backoff (never
      below ``MIN_SCALE``, float32's smallest normal number, so that a long run of overflows cannot drive S to 0 for
      good, as PyTorch's can) and the count of good steps restarts; otherwise the count grows and S ← S·growth when it reaches
      ``growth_interval`` (if S·growth is finite in float32), the count restarting. ``new_scale`` sets S instead.

    Static mode (``dynamic=False``): S stays ``init_scale`` forever (``update()`` only forgets the per-step
    records; ``update(new_scale)`` still sets S explicitly); steps with inf/NaN gradients are still skipped,
    as the paper prescribes. This is a separate flag rather than a choice of growth/backoff factors because
    PyTorch's factors must be > 1 and < 1: a constant scale cannot be expressed with them.

    ``enabled=False`` makes every method a pass-through (``scale`` returns its input, ``step`` just steps), so one
    training loop serves both precisions. Unscaling float16 gradients raises ValueError, as in PyTorch: 1/S
    applied in float16 would flush the small gradients that scaling rescued. Give the optimizer FP32 master
    weights (``amp.MasterWeights``). A bfloat16 model needs no scaling (float32's exponent range):
    ``GradScaler(enabled=master.needs_loss_scaling)`` serves both low-precision dtypes.
    """

    def __init__(self, init_scale: float = 2.0**16, growth_factor: float = 2.0, backoff_factor: float = 0.5,
                 growth_interval: int = 2000, enabled: bool = True, *, dynamic: bool = True):
        for name, value in (("init_scale", init_scale), ("growth_factor", growth_factor),
                            ("backoff_factor", backoff_factor)):
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
                raise TypeError(f"GradScaler: {name} must be a finite real number, got {value!r}")
        if isinstance(growth_interval, bool) or not isinstance(growth_interval, numbers.Integral):
            raise TypeError(f"GradScaler: growth_interval must be an int, got {growth_interval!r}")
        self._enabled, self._dynamic = bool(enabled), bool(dynamic)
        if self._enabled:
            if not 0 < _float32(init_scale) < math.inf:
                raise ValueError(f"GradScaler: init_scale must be a positive number that float32 holds (between "
                                 f"{MIN_SCALE:g} and {MAX_SCALE:g}), got {init_scale!r}")
            if self._dynamic and not growth_factor > 1.0:
                raise ValueError(f"GradScaler: The growth factor must be > 1.0, got {growth_factor!r}")
            if self._dynamic and not 0.0 < backoff_factor < 1.0:
                raise ValueError(f"GradScaler: The backoff factor must be in (0, 1), got {backoff_factor!r}")
            if self._dynamic and not growth_interval > 0:
                raise ValueError(f"GradScaler: growth_interval must be > 0, got {growth_interval!r}")
        self._scale_tensors: dict[Any, Tensor] = {}  # backend -> S as a float32 0-d tensor (see _scale_tensor)
        self._scale = _float32(init_scale)
        self._growth_factor, self._backoff_factor = float(growth_factor), float(backoff_factor)
        self._growth_interval = int(growth_interval)
        self._growth_tracker = 0
        self._per_optimizer_states: dict[int, dict[str, Any]] = {}

    # -- scaling -------------------------------------------------------------------------------------------------
    def scale(self, outputs: Any) -> Any:
        """``outputs · S``: a Tensor (or a list/tuple of Tensors, scaled one by one) recorded on the tape.

        The product is taken in float32 (a float16 output is cast first, differentiably), so S·loss itself never
        overflows (a loss of 2 times S = 2^16 would be inf in float16). Backward, the gradient flowing into the
        loss is S, and into the model's float16 tensors S·∂loss/∂(tensor): the gradients the backward pass
        computes in float16 are the true ones times S. Compute the loss in float32 (``model(x).float()``, what
        PyTorch's autocast does): the gradient of a float16 loss with respect to itself is S stored in float16,
        which is inf for S ≥ 65520 (the dynamic scaler then skips one step and halves S).
        """
        if not self._enabled:
            return outputs
        if isinstance(outputs, Tensor):
            if not is_floating(outputs.dtype):
                raise TypeError(f"GradScaler.scale: expected a floating-point loss, got dtype {outputs.dtype}")
            if outputs.dtype.itemsize < 4:
                outputs = outputs.float()
            return outputs * self._scale_tensor(outputs)
        if isinstance(outputs, (list, tuple)):
            return type(outputs)(self.scale(o) for o in outputs)
        raise TypeError(f"GradScaler.scale: outputs must be a Tensor or a list/tuple of Tensors, "
                        f"got {type(outputs).__name__}")

    # S lives in a Python float and, for ``scale``, in a float32 0-d tensor per device, refreshed whenever S changes:
    # a step captured by ``tinygrad_edu.jit`` multiplies by that tensor, so its replays use the current S
    @property
    def _scale(self) -> float:
        return self._scale_value

    @_scale.setter
    def _scale(self, value: float) -> None:
        self._scale_value = value
        for t in self._scale_tensors.values():
            t.data[...] = value  # in place: the captured steps hold these tensors

    def _scale_tensor(self, like: Tensor) -> Tensor:
        t = self._scale_tensors.get(like.backend)
        if t is None:
            t = self._scale_tensors[like.backend] = Tensor(np.float32(self._scale_value), device=like.device)
        return t

    def _state(self, optimizer: Any) -> dict[str, Any]:
        return self._per_optimizer_states.setdefault(id(optimizer), {"stage": _READY, "found_inf": None})

    @capture.host_call
    def unscale_(self, optimizer: Any) -> None:
        """Divide the gradients of ``optimizer``'s parameters by S, in place, and record whether any is inf/NaN.

        The division is a multiplication by 1/S computed in float32 (exact for a power-of-two S). Call it before
        ``clip_grad_norm_`` (or anything that reads gradient sizes); ``step`` calls it when you have not.
        """
        if not self._enabled:
            return
        state = self._state(optimizer)
        if state["stage"] == _UNSCALED:
            raise RuntimeError("unscale_() has already been called on this optimizer since the last update().")
        if state["stage"] == _STEPPED:
            raise RuntimeError("unscale_() is being called after step().")
        grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        for g in grads:
            if g.dtype == np.float16:
                raise ValueError(
                    "GradScaler.unscale_: Attempting to unscale FP16 gradients. Dividing by the scale in float16 "
                    "would flush the small gradients to zero again: give the optimizer FP32 master weights "
                    "(tinygrad_edu.amp.MasterWeights) and copy the model's gradients into them first."
                )
        inv_scale = float(np.float32(1.0 / np.float64(self._scale)))  # PyTorch: scale.double().reciprocal().float()
        found_inf = False
        for g in grads:
            xp = g.backend.xp
            g.data = g.data * inv_scale  # a Python float keeps the array's dtype; out of place (see clip_grad_norm_)
            if not found_inf:  # one check per gradient until the first inf/NaN (each check reads one bool)
                found_inf = not bool(g.backend.to_host(xp.all(xp.isfinite(g.data))))
        state["found_inf"] = found_inf
        state["stage"] = _UNSCALED

    @capture.host_call
    def step(self, optimizer: Any, *args: Any, **kwargs: Any) -> Any:
        """``unscale_(optimizer)`` unless done already, then ``optimizer.step(*args, **kwargs)`` if every gradient
        is finite. A skipped step calls nothing on the optimizer: parameters, momentum buffers, Adam's moments
        and step counts stay bit for bit as they were. Returns ``optimizer.step``'s result, or None if skipped."""
        if not self._enabled:
            return optimizer.step(*args, **kwargs)
        state = self._state(optimizer)
        if state["stage"] == _STEPPED:
            raise RuntimeError("step() has already been called since the last update().")
        if state["stage"] == _READY:
            self.unscale_(optimizer)
        result = None if state["found_inf"] else optimizer.step(*args, **kwargs)
        state["stage"] = _STEPPED
        return result

    @capture.host_call
    def update(self, new_scale: float | Tensor | None = None) -> None:
        """Adjust S for the next iteration (see the class docstring) and forget this iteration's records."""
        if not self._enabled:
            return
        if new_scale is not None:
            if isinstance(new_scale, Tensor):
                if new_scale.numel() != 1 or new_scale.requires_grad:
                    raise ValueError("GradScaler.update: new_scale should be a float or a 1-element Tensor with "
                                     "requires_grad=False")
                new_scale = new_scale.item()
            if isinstance(new_scale, bool) or not isinstance(new_scale, numbers.Real) or not (
                    0 < _float32(new_scale) < math.inf):
                raise ValueError(f"GradScaler.update: new_scale must be a positive number that float32 holds "
                                 f"(between {MIN_SCALE:g} and {MAX_SCALE:g}), got {new_scale!r}")
            self._scale = _float32(new_scale)
        else:
            found = [s["found_inf"] for s in self._per_optimizer_states.values() if s["found_inf"] is not None]
            if not found:
                raise RuntimeError("No inf checks were recorded prior to update.")
            if self._dynamic:
                self._update_scale(any(found))
        self._per_optimizer_states = {}

    def _update_scale(self, found_inf: bool) -> None:
        """PyTorch's ``_amp_update_scale_``, in float32."""
        if found_inf:  # never down to 0: from 0, no growth could ever recover (PyTorch's scale can reach it)
            self._scale = max(_float32(np.float32(self._scale) * np.float32(self._backoff_factor)), MIN_SCALE)
            self._growth_tracker = 0
            return
        successful = self._growth_tracker + 1
        if successful == self._growth_interval:
            with np.errstate(over="ignore"):
                grown = np.float32(self._scale) * np.float32(self._growth_factor)
            if math.isfinite(grown):
                self._scale = float(grown)
            self._growth_tracker = 0
        else:
            self._growth_tracker = successful

    # -- accessors, as PyTorch's -----------------------------------------------------------------------------------
    def get_scale(self) -> float:
        """The current scale S as a Python float (1.0 when disabled)."""
        return self._scale if self._enabled else 1.0

    def is_enabled(self) -> bool:
        return self._enabled

    def is_dynamic(self) -> bool:
        """False in static mode (a constant scale)."""
        return self._dynamic

    def get_growth_factor(self) -> float:
        return self._growth_factor

    def set_growth_factor(self, new_factor: float) -> None:
        self._growth_factor = float(new_factor)

    def get_backoff_factor(self) -> float:
        return self._backoff_factor

    def set_backoff_factor(self, new_factor: float) -> None:
        self._backoff_factor = float(new_factor)

    def get_growth_interval(self) -> int:
        return self._growth_interval

    def set_growth_interval(self, new_interval: int) -> None:
        self._growth_interval = int(new_interval)

    def _get_growth_tracker(self) -> int:
        return self._growth_tracker if self._enabled else 0

    # -- saving and restoring -------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """PyTorch's keys (``scale``, ``growth_factor``, ``backoff_factor``, ``growth_interval``,
        ``_growth_tracker``) plus ``dynamic``; an empty dict when disabled, as in PyTorch."""
        if not self._enabled:
            return {}
        return {"scale": self.get_scale(), "growth_factor": self._growth_factor,
                "backoff_factor": self._backoff_factor, "growth_interval": self._growth_interval,
                "_growth_tracker": self._growth_tracker, "dynamic": self._dynamic}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore what ``state_dict`` saved (also a PyTorch GradScaler's, without ``dynamic``: the current mode
        is kept). Every entry is checked before anything changes."""
        if not self._enabled:
            return
        if len(state_dict) == 0:
            raise RuntimeError("The source state dict is empty, possibly because it was saved from a disabled "
                               "instance of GradScaler.")
        required = ("scale", "growth_factor", "backoff_factor", "growth_interval", "_growth_tracker")
        missing = [k for k in required if k not in state_dict]
        if missing:
            raise KeyError(f"GradScaler.load_state_dict: missing keys {missing}")
        values = {k: state_dict[k] for k in required}
        values = {k: v.item() if isinstance(v, Tensor) or hasattr(v, "item") else v for k, v in values.items()}
        if not float(values["scale"]) > 0 or int(values["_growth_tracker"]) < 0:
            raise ValueError(f"GradScaler.load_state_dict: bad scale or growth tracker in {values}")
        self._scale = _float32(values["scale"])
        self._growth_factor = float(values["growth_factor"])
        self._backoff_factor = float(values["backoff_factor"])
        self._growth_interval = int(values["growth_interval"])
        self._growth_tracker = int(values["_growth_tracker"])
        if "dynamic" in state_dict:
            self._dynamic = bool(state_dict["dynamic"])

    def __repr__(self) -> str:
        mode = "dynamic" if self._dynamic else "static"
        return (f"GradScaler(scale={self.get_scale():g}, {mode}, growth_factor={self._growth_factor:g}, "
                f"backoff_factor={self._backoff_factor:g}, growth_interval={self._growth_interval}, "
                f"enabled={self._enabled})")
