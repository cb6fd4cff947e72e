r"""Learning-rate schedules, as ``torch.optim.lr_scheduler``: ``StepLR``, ``CosineAnnealingWarmRestarts``,
``OneCycleLR``.

A scheduler holds an optimizer and rewrites the ``"lr"`` of each of its parameter groups. As in PyTorch, building
it already applies the value of step 0 (and stores each group's starting lr as ``"initial_lr"``); then call
``optimizer.step()`` and ``scheduler.step()`` once per epoch (StepLR, CosineAnnealingWarmRestarts) or once per
mini-batch (OneCycleLR). ``get_last_lr()`` returns the lrs last applied, one per group; ``state_dict()`` /
``load_state_dict()`` save and restore the counters.

The course notes (/work/shared/seeds/004_b3e767863c47c52e.txt) describe the two cyclic schedules: *1-cycle
training* goes "from small to large, to small again", the large rates of the middle keeping the optimizer out of
narrow minima; *cosine annealing* starts large, decreases quickly to a minimum and then jumps back up — a "warm
restart" from the good weights found so far, unlike a cold restart from new random numbers.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

from tinygrad_edu.autograd import capture
from tinygrad_edu.optim.optimizer import Optimizer

__all__ = ["LRScheduler", "StepLR", "CosineAnnealingWarmRestarts", "OneCycleLR"]


def _check_int(name: str, arg: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"{name}: {arg} must be an int >= {low}, got {value!r}")
    return int(value)


def _check_real(name: str, arg: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{name}: {arg} must be a finite real number, got {value!r}")
    return float(value)


class LRScheduler:
    """Base class: subclasses implement ``get_lr()``, the lr of each group at step ``self.last_epoch``."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # every step() is a host call: tinygrad_edu.jit records one call of it and replays it as Python
        super().__init_subclass__(**kwargs)
        capture.host_methods(cls, "step")

    def __init__(self, optimizer: Optimizer, last_epoch: int = -1):
        name = type(self).__name__
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{name}: optimizer must be an Optimizer, got {type(optimizer).__name__}")
        self.optimizer = optimizer
        if last_epoch == -1:
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
        else:
            for i, group in enumerate(optimizer.param_groups):
                if "initial_lr" not in group:
                    raise KeyError(f"{name}: param 'initial_lr' is not specified in param_groups[{i}] when resuming "
                                   f"an optimizer (last_epoch={last_epoch})")
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = last_epoch
        self._initial_step()

    def _initial_step(self) -> None:
        self.step()

    def get_lr(self) -> list[float]:
        raise NotImplementedError

    def get_last_lr(self) -> list[float]:
        """The lrs last applied, one per parameter group."""
        return list(self._last_lr)

    @capture.host_call
    def step(self) -> None:
        """Advance one step (epoch or batch, as the schedule counts) and write the new lrs into the optimizer."""
        self.last_epoch += 1
        self._apply(self.get_lr())

    def _apply(self, lrs: list[float]) -> None:
        for group, lr in zip(self.optimizer.param_groups, lrs):
            group["lr"] = lr
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def state_dict(self) -> dict[str, Any]:
        """Everything but the optimizer (as PyTorch)."""
        return {k: v for k, v in self.__dict__.items() if k != "optimizer"}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.__dict__.update(state_dict)


class StepLR(LRScheduler):
    """η_t = η₀·γ^⌊t/step_size⌋: the lr is multiplied by ``gamma`` every ``step_size`` steps (epochs)."""

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1, last_epoch: int = -1):
        self.step_size = _check_int("StepLR", "step_size", step_size, 1)
        self.gamma = _check_real("StepLR", "gamma", gamma)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        return [base * self.gamma ** (self.last_epoch // self.step_size) for base in self.base_lrs]


class CosineAnnealingWarmRestarts(LRScheduler):
    r"""SGDR (Loshchilov and Hutter 2017, "SGDR: stochastic gradient descent with warm restarts"):

        η_t = η_min + (η₀ − η_min)·(1 + cos(π·T_cur/T_i))/2

    T_cur counts the epochs since the last restart, T_i is the length of the current cycle: T_0 first, then
    multiplied by ``T_mult`` at each restart. At a restart (T_cur reaches T_i) the lr jumps back to η₀ — the
    course notes' warm restart (004_b3e767863c47c52e.txt, "Cosine annealing"). ``step(epoch)`` also takes a
    fractional epoch, to step once per batch: ``scheduler.step(epoch + i / iters)``.
    """

    def __init__(self, optimizer: Optimizer, T_0: int, T_mult: int = 1, eta_min: float = 0.0,  # noqa: N803
                 last_epoch: int = -1):
        name = "CosineAnnealingWarmRestarts"
        self.T_0 = _check_int(name, "T_0", T_0, 1)
        self.T_i = self.T_0
        self.T_mult = _check_int(name, "T_mult", T_mult, 1)
        self.eta_min = _check_real(name, "eta_min", eta_min)
        self.T_cur = last_epoch
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        c = (1 + math.cos(math.pi * self.T_cur / self.T_i)) / 2
        return [self.eta_min + (base - self.eta_min) * c for base in self.base_lrs]

    def step(self, epoch: float | None = None) -> None:
        """Without ``epoch``: one epoch further (restart when T_cur reaches T_i). With it: jump to that (possibly
        fractional) epoch, finding its cycle in closed form (as PyTorch)."""
        if epoch is None and self.last_epoch < 0:
            epoch = 0
        if epoch is None:
            epoch = self.last_epoch + 1
            self.T_cur = self.T_cur + 1
            if self.T_cur >= self.T_i:
                self.T_cur = self.T_cur - self.T_i
                self.T_i = self.T_i * self.T_mult
        else:
            epoch = _check_real("CosineAnnealingWarmRestarts.step", "epoch", epoch)
            if epoch < 0:
                raise ValueError(f"CosineAnnealingWarmRestarts.step: expected a non-negative epoch, got {epoch}")
            if epoch >= self.T_0:
                if self.T_mult == 1:
                    self.T_cur = epoch % self.T_0
                else:  # cycles T_0, T_0·m, T_0·m², ...: n full cycles end at T_0·(mⁿ − 1)/(m − 1)
                    n = int(math.log(epoch / self.T_0 * (self.T_mult - 1) + 1, self.T_mult))
                    self.T_cur = epoch - self.T_0 * (self.T_mult**n - 1) / (self.T_mult - 1)
                    self.T_i = self.T_0 * self.T_mult**n
            else:
                self.T_i = self.T_0
                self.T_cur = epoch
        self.last_epoch = math.floor(epoch)
        self._apply(self.get_lr())


class OneCycleLR(LRScheduler):
    r"""The 1-cycle policy (Smith and Topin 2019, "Super-convergence"; course notes 004_b3e767863c47c52e.txt,
    "1-cycle training"), as ``torch.optim.lr_scheduler.OneCycleLR``; step it once per mini-batch.

    Over ``total_steps`` steps the lr goes up from ``max_lr/div_factor`` to ``max_lr`` during the first
    ``pct_start`` of the steps (the phase ends at step pct_start·total_steps − 1), then down to
    ``max_lr/(div_factor·final_div_factor)`` at step total_steps − 1, along a half cosine
    (``anneal_strategy="cos"``: η = end + (start − end)·(1 + cos(π·p))/2, p the fraction of the phase done) or a
    straight line ("linear"). With ``three_phase=True`` the lr comes back to ``max_lr/div_factor`` symmetrically
    before the final annealing. Momentum cycles the other way (``cycle_momentum``, as PyTorch's default): from
    ``max_momentum`` down to ``base_momentum`` while the lr rises, and back; for Adam/AdamW the first beta cycles.
    Stepping past ``total_steps`` raises ValueError. ``max_lr`` may be a list, one per parameter group.
    """

    def __init__(self, optimizer: Optimizer, max_lr: float | list[float], total_steps: int,
                 pct_start: float = 0.3, anneal_strategy: str = "cos", cycle_momentum: bool = True,
                 base_momentum: float = 0.85, max_momentum: float = 0.95, div_factor: float = 25.0,
                 final_div_factor: float = 1e4, three_phase: bool = False, last_epoch: int = -1):
        name = "OneCycleLR"
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{name}: optimizer must be an Optimizer, got {type(optimizer).__name__}")
        groups = optimizer.param_groups
        self.total_steps = _check_int(name, "total_steps", total_steps, 1)
        pct_start = _check_real(name, "pct_start", pct_start)
        if not 0 <= pct_start <= 1:
            raise ValueError(f"{name}: pct_start must be in [0, 1], got {pct_start}")
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(f"{name}: anneal_strategy must be 'cos' or 'linear', got {anneal_strategy!r}")
        self.anneal_strategy = anneal_strategy
        div_factor = _check_real(name, "div_factor", div_factor)
        final_div_factor = _check_real(name, "final_div_factor", final_div_factor)
        max_lrs = list(max_lr) if isinstance(max_lr, (list, tuple)) else [max_lr] * len(groups)
        if len(max_lrs) != len(groups):
            raise ValueError(f"{name}: expected {len(groups)} values for max_lr (one per group), got {len(max_lrs)}")
        max_lrs = [_check_real(name, "max_lr", v) for v in max_lrs]
        end = float(pct_start * self.total_steps) - 1
        if three_phase:
            self._phases = [
                dict(end_step=end, start_lr="initial_lr", end_lr="max_lr", start_m="max_momentum", end_m="base_momentum"),
                dict(end_step=float(2 * pct_start * self.total_steps) - 2, start_lr="max_lr", end_lr="initial_lr",
                     start_m="base_momentum", end_m="max_momentum"),
                dict(end_step=self.total_steps - 1, start_lr="initial_lr", end_lr="min_lr",
                     start_m="max_momentum", end_m="max_momentum"),
            ]
        else:
            self._phases = [
                dict(end_step=end, start_lr="initial_lr", end_lr="max_lr", start_m="max_momentum", end_m="base_momentum"),
                dict(end_step=self.total_steps - 1, start_lr="max_lr", end_lr="min_lr",
                     start_m="base_momentum", end_m="max_momentum"),
            ]
        self.cycle_momentum = bool(cycle_momentum)
        if self.cycle_momentum:
            if not all("momentum" in g or "betas" in g for g in groups):
                raise ValueError(f"{name}: optimizer must support momentum or betas with cycle_momentum enabled")
            self._use_beta1 = "betas" in groups[0]
            base_momentum = _check_real(name, "base_momentum", base_momentum)
            max_momentum = _check_real(name, "max_momentum", max_momentum)
        if last_epoch == -1:
            for group, lr in zip(groups, max_lrs):
                group["initial_lr"] = lr / div_factor
                group["max_lr"] = lr
                group["min_lr"] = group["initial_lr"] / final_div_factor
                if self.cycle_momentum:
                    if self._use_beta1:
                        group["betas"] = (max_momentum, *group["betas"][1:])
                    else:
                        group["momentum"] = max_momentum
                    group["max_momentum"] = max_momentum
                    group["base_momentum"] = base_momentum
        super().__init__(optimizer, last_epoch)

    @staticmethod
    def _anneal(strategy: str, start: float, end: float, pct: float) -> float:
        if strategy == "cos":
            return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    def get_lr(self) -> list[float]:
        step = self.last_epoch
        if step > self.total_steps:
            raise ValueError(f"OneCycleLR: tried to step {step} times; the total number of steps is "
                             f"{self.total_steps}")
        lrs = []
        for group in self.optimizer.param_groups:
            start_step = 0.0
            for i, phase in enumerate(self._phases):
                end_step = phase["end_step"]
                if step <= end_step or i == len(self._phases) - 1:
                    pct = (step - start_step) / (end_step - start_step)
                    lr = self._anneal(self.anneal_strategy, group[phase["start_lr"]], group[phase["end_lr"]], pct)
                    if self.cycle_momentum:
                        m = self._anneal(self.anneal_strategy, group[phase["start_m"]], group[phase["end_m"]], pct)
                    break
                start_step = phase["end_step"]
            lrs.append(lr)
            if self.cycle_momentum:
                if self._use_beta1:
                    group["betas"] = (m, *group["betas"][1:])
                else:
                    group["momentum"] = m
        return lrs
