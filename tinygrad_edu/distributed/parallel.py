"""``DistributedDataParallel``: the same model in every process, each on its share of the mini-batch.

The course's ``DataParallel`` (slides 169-172): split the mini-batch, run a replica of the model on each part,
combine the gradients, and step every replica identically. Here each replica is a process (``mpirun -n K``):

1. at construction, rank 0's parameters and buffers are broadcast, so every replica starts from the same weights;
2. ``forward`` runs the local replica on the local batch (in training mode it first broadcasts rank 0's buffers,
   such as batchnorm's running statistics; PyTorch does so in evaluation mode too);
3. when ``loss.backward()`` has put every local gradient into ``.grad``, the gradients are summed over the processes
   and divided by their number, in **buckets**: the parameters are packed into flat arrays of about
   ``bucket_cap_mb`` MiB (a larger tensor travels alone), one all-reduce each, instead of one call per parameter:
   each call costs a latency, one flat buffer costs it once. float16 gradients are reduced in float32. The
   all-reduces run after the backward pass, not during it: PyTorch overlaps them with the rest of the backward,
   which is why it orders the buckets as backward produces the gradients (the order kept here, reversed).

Why the average is right: with loss ℓ = (1/K) Σ_k ℓ_k, where ℓ_k is the mean loss of replica k over its B samples,
∂ℓ/∂θ = (1/K) Σ_k ∂ℓ_k/∂θ, which is the mean loss over all K·B samples, as one process on the whole batch computes
(unless a layer mixes samples: batchnorm; see ``nn.SyncBatchNorm``). Every replica then takes the same optimizer
step from the same weights with the same gradient, so they stay identical without sending weights again.

How the all-reduce runs at the end of backward: ``forward`` passes the outputs through ``GradientSink``, an identity
whose backward asks the engine (``autograd.queue_callback``) to call the reducer once the whole backward pass is done.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from tinygrad_edu.autograd import Function, engine, is_grad_enabled, no_grad, queue_callback
from tinygrad_edu.distributed import process_group as pg
from tinygrad_edu.dtypes import is_low_precision
from tinygrad_edu.nn.modules.module import Module
from tinygrad_edu.tensor import Tensor


class GradientSink(Function):
    """An identity Function whose backward queues the gradient all-reduce (``reducer.queue()``) to run when the
    backward pass ends. ``DistributedDataParallel`` passes the model's outputs through it; with ``reducer=None`` it
    is a plain identity."""

    @staticmethod
    def forward(ctx, x, *, reducer):
        ctx.reducer = reducer
        return x

    @staticmethod
    def backward(ctx, grad):
        if ctx.reducer is not None:
            ctx.reducer.queue()
        return grad


class _Bucket:
    """Parameters whose gradients travel together in one flat array of ``dtype`` (float32 for float16 ones).

    The array holds the gradients one after the other, then one count per parameter: 1 where this process has a
    gradient for it. After the all-reduce a count of 0 means no process had one: that ``.grad`` stays None."""

    def __init__(self, params: list[Tensor], dtype: np.dtype) -> None:
        self.params, self.dtype = params, dtype
        self.offsets = np.concatenate([[0], np.cumsum([p.numel() for p in params])]).tolist()
        self.nbytes = (self.offsets[-1] + len(params)) * dtype.itemsize
        # allocated at the first reduction and reused: a fresh large array each step is fresh pages for the
        # operating system to fault in (measured: the dearest part of reducing a 9 MiB bucket)
        self.flat = None


def _by_dtype(tensors: list[Tensor]) -> dict[np.dtype, list[Tensor]]:
    """The tensors grouped by dtype, in their order."""
    groups: dict[np.dtype, list[Tensor]] = {}
    for t in tensors:
        groups.setdefault(np.dtype(t.dtype), []).append(t)
    return groups


class _Reducer:
    """Packs the gradients into buckets, all-reduces each, and unpacks the averages into ``.grad``."""

    def __init__(self, params: list[Tensor], cap_bytes: int) -> None:
        self.backend = params[0].backend
        self.buckets: list[_Bucket] = []
        for dtype, group in _by_dtype(list(reversed(params))).items():  # the last layers' gradients come first
            wire = np.dtype(np.float32) if is_low_precision(dtype) else dtype
            bucket: list[Tensor] = []
            size = 0
            for p in group:
                if bucket and (size + p.numel()) * wire.itemsize > cap_bytes:
                    self.buckets.append(_Bucket(bucket, wire))
                    bucket, size = [], 0
                bucket.append(p)
                size += p.numel()
            self.buckets.append(_Bucket(bucket, wire))
        self.stats = {"reductions": 0, "calls": 0, "bytes": 0, "seconds": 0.0}

    def queue(self) -> None:
        """Queue the reduction at the end of the running backward pass, once however many outputs carry the sink
        (a pass that raised leaves its list behind: the next pass queues again)."""
        if self.reduce not in engine.queued_callbacks():
            queue_callback(self.reduce)

    def reduce(self) -> None:
        start = time.perf_counter()
        xp, size = self.backend.xp, pg.get_world_size()
        for bucket in self.buckets:
            n = bucket.offsets[-1]
            if bucket.flat is None:
                bucket.flat = self.backend.from_host(np.zeros(n + len(bucket.params), bucket.dtype))
            flat, slices = bucket.flat, list(zip(bucket.params, bucket.offsets, bucket.offsets[1:]))
            # pack. A parameter without a gradient here (not used on this process) sends zeros and a count of 0:
            # every process makes the same calls, and the average counts it as a zero gradient, as PyTorch does
            for p, a, b in slices:
                flat[a:b] = xp.reshape(p.grad.data, (-1,)) if p.grad is not None else 0
            present = np.array([p.grad is not None for p in bucket.params], dtype=bucket.dtype)
            flat[n:] = self.backend.from_host(present)
            flat = pg.all_reduce_array(self.backend, flat, "sum")
            if size > 1:
                flat[:n] *= 1 / size
            counts = self.backend.to_host(flat[n:])
            # unpack into new arrays: the buffer is overwritten at the next reduction
            for i, (p, a, b) in enumerate(slices):
                if counts[i] > 0:
                    p.grad = Tensor._wrap(xp.astype(xp.reshape(flat[a:b], p.shape), p.data.dtype, copy=True),
                                          self.backend)
            self.stats["calls"] += 1
            self.stats["bytes"] += bucket.nbytes
        self.stats["reductions"] += 1
        if self.backend.name.startswith("cuda"):  # count the GPU's time too, not only the launches
            import cupy

            cupy.cuda.get_current_stream().synchronize()
        self.stats["seconds"] += time.perf_counter() - start


def _broadcast_flat(tensors: list[Tensor], src: int = 0) -> None:
    """Give every process ``src``'s values of ``tensors``: one broadcast per dtype, of their values packed flat."""
    if pg.get_world_size() == 1:  # nothing to send (and no copies to make before each forward)
        return
    for group in _by_dtype(tensors).values():
        backend = group[0].backend
        xp = backend.xp
        flat = pg.broadcast_array(backend, xp.concat([xp.reshape(t.data, (-1,)) for t in group]), src)
        at = 0
        with no_grad():
            for t in group:
                n = t.numel()
                t.data = xp.reshape(flat[at:at + n], t.shape)
                at += n


class DistributedDataParallel(Module):
    """Data-parallel training of ``module`` across the processes of the group, as
    ``torch.nn.parallel.DistributedDataParallel``.

    ``broadcast_buffers``: in training mode, rank 0's buffers (running statistics) overwrite the others' before each
    forward. ``bucket_cap_mb``: the largest flat gradient array of one all-reduce. ``device_ids`` is accepted for
    PyTorch's signature: the module's own device is used. After ``backward``, ``.grad`` holds the average over the
    processes of their gradients. The parameters' names gain the prefix ``module.``, as in PyTorch.

    ``reducer_stats`` counts the all-reduces, their bytes and the seconds spent in them (for benchmarks).
    """

    def __init__(self, module: Module, device_ids: Any = None, broadcast_buffers: bool = True,
                 bucket_cap_mb: float = 25.0) -> None:
        super().__init__()
        if not isinstance(module, Module):
            raise TypeError(f"DistributedDataParallel: expected a Module, got {type(module).__name__}")
        if isinstance(bucket_cap_mb, bool) or not isinstance(bucket_cap_mb, (int, float)) or not bucket_cap_mb > 0:
            raise ValueError(f"DistributedDataParallel: bucket_cap_mb must be a positive number, got {bucket_cap_mb!r}")
        pg._group()  # raises if init_process_group was not called
        tensors = module._unique_tensors()
        params = [t for t in tensors if t.requires_grad]
        if not params:
            raise ValueError("DistributedDataParallel: the module has no parameter that requires a gradient")
        devices = sorted({t.device for t in tensors})
        problem = None if len(devices) == 1 else (
            f"DistributedDataParallel: the module's tensors are on several devices ({', '.join(devices)}); move the "
            f"module to one with .to(device)")
        _check_same_model(module, problem)
        self.module = module
        self.broadcast_buffers, self.bucket_cap_mb = bool(broadcast_buffers), float(bucket_cap_mb)
        self._buffers_to_sync = list({id(b): b for _, b in module.named_buffers() if b is not None}.values())
        _broadcast_flat(tensors)  # every replica starts from rank 0's weights and buffers
        self._reducer = _Reducer(params, int(self.bucket_cap_mb * 2**20))
        self.require_backward_grad_sync = True

    @property
    def reducer_stats(self) -> dict[str, Any]:
        return self._reducer.stats

    @property
    def buckets(self) -> list[list[Tensor]]:
        """The parameters of each all-reduce, in the order they run."""
        return [bucket.params for bucket in self._reducer.buckets]

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        if self.training and self.broadcast_buffers:
            self.sync_buffers()
        out = self.module(*args, **kwargs)
        if not (is_grad_enabled() and self.require_backward_grad_sync):
            return out
        return _map_tensors(out, lambda t: GradientSink.apply(t, reducer=self._reducer) if t.requires_grad else t)

    def sync_buffers(self) -> None:
        """Give every process rank 0's buffers (batchnorm's running statistics): what ``forward`` does first in
        training mode; call it before evaluating, so that every process evaluates the same model."""
        if self._buffers_to_sync:
            _broadcast_flat(self._buffers_to_sync)

    @contextlib.contextmanager
    def no_sync(self) -> Iterator[None]:
        """Inside, backward accumulates local gradients without the all-reduce (gradient accumulation): the next
        backward outside reduces the accumulated sum, as in PyTorch."""
        previous, self.require_backward_grad_sync = self.require_backward_grad_sync, False
        try:
            yield
        finally:
            self.require_backward_grad_sync = previous

    def extra_repr(self) -> str:
        return (f"world_size={pg.get_world_size()}, buckets={len(self._reducer.buckets)}, "
                f"bucket_cap_mb={self.bucket_cap_mb:g}, broadcast_buffers={self.broadcast_buffers}")


def _map_tensors(out: Any, fn: Any) -> Any:
    if isinstance(out, Tensor):
        return fn(out)
    if isinstance(out, (tuple, list)):
        return type(out)(_map_tensors(o, fn) for o in out)
    if isinstance(out, dict):
        return {k: _map_tensors(v, fn) for k, v in out.items()}
    return out


def _check_same_model(module: Module, problem: str | None) -> None:
    """Every process must wrap the same architecture: compare names, shapes, dtypes and which tensors are trained
    with rank 0's. A problem found on any process (``problem``: one found locally) is raised on every process, not
    only on the odd one, which would leave the others waiting in a collective forever."""
    mine = [(name, tuple(t.shape), str(t.dtype), t.requires_grad) for name, t in
            [*module.named_parameters(), *module.named_buffers()] if t is not None]
    theirs = pg.broadcast_object(mine, 0)
    if problem is None and mine != theirs:
        first = next((f"{a} here, {b} on rank 0" for a, b in zip(mine, theirs) if a != b),
                     f"{len(mine)} tensors here, {len(theirs)} on rank 0")
        problem = (f"DistributedDataParallel: the processes wrap different models (rank {pg.get_rank()}: {first}); "
                   f"every process must build the same module")
    failed = pg._group().all_reduce(np.array([problem is not None], dtype=np.int64), "max")
    if problem is not None:
        raise RuntimeError(problem)
    if failed[0]:
        raise RuntimeError("DistributedDataParallel: another process found a problem with its module (its error "
                           "says which); every process must build the same module on one device")
