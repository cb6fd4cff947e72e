"""``BatchNorm1d`` and ``BatchNorm2d``: batch normalization with learned γ, β and running statistics."""

from __future__ import annotations

import numpy as np

from tinygrad_edu.autograd import InputError, capture, no_grad
from tinygrad_edu.nn.functional.batch_norm import batch_norm
from tinygrad_edu.nn.functional.sync_batch_norm import sync_batch_norm
from tinygrad_edu.nn.modules.module import Module, Parameter, rebuilt_as, remember
from tinygrad_edu.tensor import Tensor


class _BatchNorm(Module):
    """Shared by BatchNorm1d and BatchNorm2d, as ``torch.nn.modules.batchnorm._BatchNorm``.

    Parameters ``weight`` (γ, ones) and ``bias`` (β, zeros) when ``affine``; buffers ``running_mean`` (zeros),
    ``running_var`` (ones) and ``num_batches_tracked`` (int64, 0-d) when ``track_running_stats``.

    * training mode: normalize with the batch's statistics and update the running ones:
      ``running ← (1 - momentum) running + momentum · batch statistic`` (the variance unbiased); with
      ``momentum=None`` a cumulative average instead (factor 1 / num_batches_tracked);
    * evaluation mode (``.eval()``): normalize with the running statistics; without them
      (``track_running_stats=False``) with the batch's, as in PyTorch.
    """

    _expected = ""  # described by the subclasses

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 track_running_stats: bool = True, device: str | None = None, dtype=None):
        super().__init__()
        name = type(self).__name__
        if isinstance(num_features, bool) or not isinstance(num_features, (int, np.integer)) or num_features <= 0:
            raise ValueError(f"{name}: num_features must be a positive integer, got {num_features!r}")
        if not eps > 0:
            raise ValueError(f"{name}: eps must be positive, got {eps!r}")
        if momentum is not None and not 0 <= momentum <= 1:
            raise ValueError(f"{name}: momentum must be in [0, 1] or None (cumulative average), got {momentum!r}")
        self.num_features, self.eps, self.momentum = int(num_features), float(eps), momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        dtype = np.dtype(dtype or "float32")
        C = self.num_features
        if affine:
            self.weight = Parameter(Tensor(np.ones(C, dtype), device=device))
            self.bias = Parameter(Tensor(np.zeros(C, dtype), device=device))
        else:
            self.weight = self.bias = None
        if track_running_stats:
            self.register_buffer("running_mean", Tensor(np.zeros(C, dtype), device=device))
            self.register_buffer("running_var", Tensor(np.ones(C, dtype), device=device))
            self.register_buffer("num_batches_tracked", Tensor(np.array(0, np.int64), device=device))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def _check_input(self, x: Tensor) -> None:
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        if not isinstance(x, Tensor):
            raise TypeError(f"{type(self).__name__}: input must be a Tensor, got {type(x).__name__}")
        self._check_input(x)
        if x.shape[1] != self.num_features:
            raise InputError(f"{type(self).__name__}({self.num_features}): expected {self.num_features} channels on "
                             f"axis 1 of the input, got shape {x.shape}")
        use_batch_stats = self.training or self.running_mean is None
        if use_batch_stats and x.numel() == x.shape[1] and self._batch_is_local():
            raise InputError(f"{type(self).__name__}: Expected more than 1 value per channel when training, got input "
                             f"size {x.shape}")
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            if self.momentum is None:  # cumulative moving average: mean of the batch statistics so far
                factor = 1.0 / (int(self.num_batches_tracked.item()) + 1)
        if self.training and self.track_running_stats:  # changed below: put back if a later layer fails
            for buffer in (self.running_mean, self.running_var, self.num_batches_tracked):
                remember(buffer)
        result = self._normalize(
            x,
            self.running_mean if not self.training or self.track_running_stats else None,
            self.running_var if not self.training or self.track_running_stats else None,
            use_batch_stats, factor,
        )
        if self.training and self.track_running_stats:  # after batch_norm: a rejected input changes nothing
            for buffer in (self.running_mean, self.running_var):  # batch_norm updated them in place
                if buffer is not None:
                    buffer._bump_version()
            self._count_batch()
        return result

    @capture.host_call  # (tinygrad_edu.jit replays it: the count is state, not an op)
    def _count_batch(self) -> None:
        with no_grad():
            self.num_batches_tracked.data = self.num_batches_tracked.data + 1

    def _batch_is_local(self) -> bool:
        """True when the batch statistics come from this process's batch alone."""
        return True

    def _normalize(self, x: Tensor, running_mean, running_var, use_batch_stats: bool, factor: float) -> Tensor:
        return batch_norm(x, running_mean, running_var, self.weight, self.bias, use_batch_stats, factor, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps:g}, momentum={self.momentum}, affine={self.affine}, "
                f"track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Batch normalization of input (N, C) or (N, C, L), per channel C, as ``torch.nn.BatchNorm1d``."""

    def _check_input(self, x: Tensor) -> None:
        if x.ndim not in (2, 3):
            raise InputError(f"BatchNorm1d: expected 2-D or 3-D input (N, C) or (N, C, L), got {x.shape}")


class BatchNorm2d(_BatchNorm):
    """Batch normalization of input (N, C, H, W), per channel C, as ``torch.nn.BatchNorm2d``."""

    def _check_input(self, x: Tensor) -> None:
        if x.ndim != 4:
            raise InputError(f"BatchNorm2d: expected 4-D input (N, C, H, W), got {x.shape}")


class SyncBatchNorm(_BatchNorm):
    """Batch normalization whose training-mode statistics cover every process's batch, as ``torch.nn.SyncBatchNorm``
    (``nn.functional.sync_batch_norm``): K processes with batches of B compute what one process with K·B computes.
    Input (N, C, ...) of any number of axes ≥ 2. In evaluation mode, or in a world of one process, it is
    ``BatchNorm`` (no communication). ``SyncBatchNorm.convert_sync_batchnorm(model)`` swaps every BatchNorm1d/2d of a model for one.
    """

    def _check_input(self, x: Tensor) -> None:
        if x.ndim < 2:
            raise InputError(f"SyncBatchNorm: expected input (N, C, ...) with at least 2 axes, got {x.shape}")

    def _batch_is_local(self) -> bool:  # with other processes, one sample here is fine (sync_batch_norm checks M)
        from tinygrad_edu.distributed import process_group as pg

        return pg.get_world_size() == 1 or not self.training

    def _normalize(self, x: Tensor, running_mean, running_var, use_batch_stats: bool, factor: float) -> Tensor:
        # synchronized in training mode only, as in PyTorch: evaluation (without running statistics: with the batch's)
        # stays local, so that one process may evaluate alone
        if not use_batch_stats or not self.training:
            return super()._normalize(x, running_mean, running_var, use_batch_stats, factor)
        return sync_batch_norm(x, running_mean, running_var, self.weight, self.bias, factor, self.eps)

    @classmethod
    def convert_sync_batchnorm(cls, module: Module) -> Module:
        """Return ``module`` with every ``BatchNorm1d``/``BatchNorm2d`` replaced by a ``SyncBatchNorm`` holding the
        same parameters, buffers, settings and mode (the module itself when it is one)."""
        if isinstance(module, _BatchNorm) and not isinstance(module, SyncBatchNorm):
            return rebuilt_as(module, cls)
        for name, child in list(module._modules.items()):
            replacement = cls.convert_sync_batchnorm(child)
            if replacement is not child:
                setattr(module, name, replacement)
        return module
