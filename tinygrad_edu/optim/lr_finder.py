"""The learning-rate range test (Smith 2017, "Cyclical learning rates for training neural networks", section 3.3).

Course notes (/work/shared/seeds/004_b3e767863c47c52e.txt, "Learning rate finder"): "start with a very small one, do
a step of gradient descent w.r.t a batch, then increase the learning rate (usually geometrically), and repeat while
tracking the loss. Continue until the loss stops decreasing."
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

import numpy as np

from tinygrad_edu.optim.optimizer import Optimizer

__all__ = ["LRFinderResult", "lr_finder"]


class LRFinderResult(NamedTuple):
    """``lrs`` (increasing) and the smoothed ``losses`` recorded at them; ``suggested_lr``; ``diverged``: True when
    the test stopped early because the loss exceeded ``diverge_factor`` × its best value (or was not finite)."""

    lrs: list[float]
    losses: list[float]
    suggested_lr: float
    diverged: bool


def _check_positive(arg: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"lr_finder: {arg} must be a finite number > 0, got {value!r}")
    return float(value)


def _suggest(lrs: list[float], losses: list[float]) -> float:
    """The lr where the smoothed loss falls fastest per decade of lr, before its minimum (Smith's "the lr where
    the loss decreases most steeply"); with fewer than 3 points before the minimum, one tenth of the lr of the
    minimum (a common rule: safely below where the loss turns up)."""
    best = int(np.argmin(losses))
    if best < 2:
        return lrs[best] / 10
    slope = np.gradient(np.asarray(losses[: best + 1]), np.log10(np.asarray(lrs[: best + 1])))
    return lrs[int(np.argmin(slope))]


def lr_finder(model: Any, optimizer: Optimizer, loss_fn: Callable[[Any, Any], Any], batches: Iterable[Any],
              start_lr: float = 1e-7, end_lr: float = 10, num_steps: int = 100, diverge_factor: float = 4.0,
              smoothing: float = 0.98) -> LRFinderResult:
    """Run the range test and put everything back: returns ``LRFinderResult(lrs, losses, suggested_lr, diverged)``.

    At step i = 0 … num_steps − 1 the lr of every parameter group is η_i = start_lr·(end_lr/start_lr)^(i/(num_steps−1))
    (geometric growth); one mini-batch ``(x, y)`` from ``batches`` gives ``loss = loss_fn(model(x), y)``, then
    ``optimizer.zero_grad()``, ``loss.backward()``, ``optimizer.step()``. The loss recorded at η_i is the
    bias-corrected exponential moving average a_i/(1 − β^(i+1)) with a_i = β·a_{i−1} + (1 − β)·loss_i (β =
    ``smoothing``; 0 records the raw losses): the raw loss of one batch is too noisy to read a trend from. The test
    stops after the step whose smoothed loss exceeds ``diverge_factor`` × the best one so far, or is not finite.
    ``batches`` is cycled through again when it runs out (a list, or any re-iterable); a one-shot iterator that
    runs out ends the test.

    The suggested lr is the lr of steepest descent of the smoothed loss against log10(lr), looking only up to the
    minimum of the curve (or one tenth of the lr of the minimum when fewer than 3 points lead to it). It is a
    starting point to read against the curve, e.g. as ``max_lr`` of ``OneCycleLR`` (often one takes about a tenth
    of the lr where the loss is lowest instead).

    Restored afterwards, also after an error: the model's parameters and buffers (``state_dict``) and the
    optimizer's state and hyper-parameters (``state_dict``, which includes each group's lr), exactly.
    """
    start_lr, end_lr = _check_positive("start_lr", start_lr), _check_positive("end_lr", end_lr)
    diverge_factor = _check_positive("diverge_factor", diverge_factor)
    if end_lr <= start_lr:
        raise ValueError(f"lr_finder: end_lr must be > start_lr, got start_lr={start_lr}, end_lr={end_lr}")
    if isinstance(num_steps, bool) or not isinstance(num_steps, numbers.Integral) or num_steps < 2:
        raise ValueError(f"lr_finder: num_steps must be an int >= 2, got {num_steps!r}")
    if isinstance(smoothing, bool) or not isinstance(smoothing, numbers.Real) or not 0 <= smoothing < 1:
        raise ValueError(f"lr_finder: smoothing must be in [0, 1), got {smoothing!r}")
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"lr_finder: optimizer must be an Optimizer, got {type(optimizer).__name__}")

    model_state = model.state_dict()
    optimizer_state = optimizer.state_dict()
    lrs: list[float] = []
    losses: list[float] = []
    diverged = False
    try:
        iterator = iter(batches)
        average, best = 0.0, math.inf
        for i in range(num_steps):
            try:
                x, y = next(iterator)
            except StopIteration:
                iterator = iter(batches)
                try:
                    x, y = next(iterator)
                except StopIteration:
                    break
            lr = start_lr * (end_lr / start_lr) ** (i / (num_steps - 1))
            for group in optimizer.param_groups:
                group["lr"] = lr
            loss = loss_fn(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            average = smoothing * average + (1 - smoothing) * float(loss.item())
            smoothed = average / (1 - smoothing ** (i + 1))
            lrs.append(lr)
            losses.append(smoothed)
            if not math.isfinite(smoothed) or smoothed > diverge_factor * best:
                diverged = True
                break
            best = min(best, smoothed)
    finally:
        model.load_state_dict(model_state)
        optimizer.load_state_dict(optimizer_state)
        optimizer.zero_grad()
    if not lrs:
        raise ValueError("lr_finder: batches gave no mini-batch")
    finite = [(lr, v) for lr, v in zip(lrs, losses) if math.isfinite(v)]
    suggested = _suggest([lr for lr, _ in finite], [v for _, v in finite]) if finite else lrs[0]
    return LRFinderResult(lrs, losses, suggested, diverged)
