"""The process group: who this process is among those the launcher started, and collectives on tensors.

    mpirun -n 2 python train.py          # or mpiexec; each process runs the whole script

    from tinygrad_edu import distributed as dist
    dist.init_process_group()            # "mpi" (CPU) by default; "nccl" for one GPU per process
    dist.get_rank(), dist.get_world_size()

Rank, world size and local rank (the process's index on its machine, which picks its GPU) come from the MPI
library that the launcher started (``mpi4py``'s ``COMM_WORLD``). Started without a launcher, the group is one
process, and every collective returns its input: the same script runs alone, unchanged. In a group of several
processes an uncaught exception in any of them aborts them all, instead of leaving the others waiting.
"""

from __future__ import annotations

import builtins
import importlib.util
import sys
from typing import Any

from tinygrad_edu.distributed.communicator import (
    Communicator,
    LocalCommunicator,
    MPICommunicator,
    NCCLCommunicator,
    _check_op,
    launched_by_mpi,
)
from tinygrad_edu.tensor import Tensor

BACKENDS = ("mpi", "nccl")

_world: Communicator | None = None  # MPI (or the world of one): the CPU collectives, and NCCL's bootstrap
_nccl: NCCLCommunicator | None = None  # the GPU collectives, with backend="nccl"


def is_available() -> bool:
    """True when mpi4py is installed (``pip install tinygrad_edu[distributed]`` brings it and an MPI library)."""
    return importlib.util.find_spec("mpi4py") is not None


def is_initialized() -> bool:
    return _world is not None


def init_process_group(backend: str = "mpi") -> None:
    """Join the processes the launcher started. ``backend``: ``"mpi"`` (tensors on the CPU) or ``"nccl"`` (each
    process takes GPU ``local_rank`` modulo the GPU count, which becomes the default device; its tensors' collectives
    run in NCCL, bootstrapped through MPI)."""
    global _world, _nccl
    if backend not in BACKENDS:
        raise ValueError(f"init_process_group: backend must be one of {', '.join(BACKENDS)}; got {backend!r}")
    if _world is not None:
        raise RuntimeError("init_process_group: the process group is already initialized; call "
                           "destroy_process_group() first")
    if is_available():
        world: Communicator = MPICommunicator()
    elif launched_by_mpi():
        raise RuntimeError("init_process_group: this process was started by an MPI launcher but mpi4py is not "
                           "installed; pip install 'tinygrad_edu[distributed]' (mpi4py and the mpich wheel)")
    else:
        world = LocalCommunicator()
    nccl = None
    if backend == "nccl":
        from tinygrad_edu.backend import cuda_is_available, get_backend, set_default_device

        if not cuda_is_available():
            from tinygrad_edu.backend import DeviceUnavailableError

            raise DeviceUnavailableError("init_process_group: backend='nccl' needs CuPy and a CUDA GPU; use "
                                         "backend='mpi' on the CPU")
        import cupy

        device = f"cuda:{world.local_rank % cupy.cuda.runtime.getDeviceCount()}"
        with get_backend(device).context:  # NCCL binds the communicator to the current GPU
            nccl = NCCLCommunicator(world)
        set_default_device(device)
    _world, _nccl = world, nccl
    if isinstance(world, MPICommunicator) and world.size > 1:
        _abort_all_on_uncaught_exception(world)


def _abort_all_on_uncaught_exception(world: MPICommunicator) -> None:
    """An exception that ends one process would leave the others waiting in their next collective forever: after
    Python prints it, abort every process of the job (``MPI_Abort``), as ``python -m mpi4py`` does."""
    previous = sys.excepthook

    def hook(kind, value, traceback) -> None:
        previous(kind, value, traceback)
        sys.stderr.flush()
        world.comm.Abort(1)

    if getattr(previous, "_aborts_mpi", False) is False:
        hook._aborts_mpi = True
        sys.excepthook = hook


def destroy_process_group() -> None:
    """Leave the group (MPI itself stays initialized until the process exits, as mpi4py does)."""
    global _world, _nccl
    _world = _nccl = None


def _group() -> Communicator:
    if _world is None:
        raise RuntimeError("distributed: the default process group is not initialized; call "
                           "tinygrad_edu.distributed.init_process_group() first")
    return _world


def get_rank() -> int:
    """This process's index, 0 … world size - 1 (0 when the group is not initialized)."""
    return 0 if _world is None else _world.rank


def get_world_size() -> int:
    """How many processes train together (1 when the group is not initialized)."""
    return 1 if _world is None else _world.size


def get_local_rank() -> int:
    """This process's index among those on its machine (it picks the GPU)."""
    return 0 if _world is None else _world.local_rank


def get_backend() -> str:
    """``"nccl"``, ``"mpi"``, or ``"local"`` for a world of one without mpi4py."""
    return _nccl.name if _nccl is not None else _group().name


def is_main_process() -> bool:
    """True on rank 0, the process that logs and writes checkpoints (and when the group is not initialized)."""
    return get_rank() == 0


def barrier() -> None:
    """Wait until every process has reached this call."""
    (_nccl or _group()).barrier()


# ---------------------------------------------------------------------------------------------------------------
# collectives on backend arrays (what DistributedDataParallel and SyncBatchNorm call) and on tensors
# ---------------------------------------------------------------------------------------------------------------
def _collective(backend: Any, array: Any, call: Any) -> Any:
    """``call(communicator, array)`` on the right communicator: NCCL for CUDA arrays when the group has it, otherwise
    MPI, through host memory for arrays that are not NumPy's."""
    if _nccl is not None and backend.name.startswith("cuda"):
        with backend.context:
            return call(_nccl, array)
    if backend.name == "cpu":
        return call(_world, array)
    return backend.from_host(call(_world, backend.to_host(array).copy()))


def all_reduce_array(backend: Any, array: Any, op: str = "sum") -> Any:
    """All-reduce one array of ``backend`` (see ``_collective`` for which library carries it). Returns the result
    (the same array where it could work in place). Before ``init_process_group``, or in a world of one process, it
    returns ``array``."""
    if _world is None or _world.size == 1:
        return array
    return _collective(backend, array, lambda communicator, a: communicator.all_reduce(a, op))


def broadcast_array(backend: Any, array: Any, src: int = 0) -> Any:
    """``src``'s copy of ``array`` on every process (as ``all_reduce_array``, for a broadcast)."""
    size = 1 if _world is None else _world.size
    if not 0 <= src < size:
        raise ValueError(f"broadcast: src must be a rank in 0..{size - 1}, got {src}")
    if size == 1:
        return array
    return _collective(backend, array, lambda communicator, a: communicator.broadcast(a, src))


def _check_tensor(op: str, tensor: Any) -> None:
    if not isinstance(tensor, Tensor):
        raise TypeError(f"{op}: expected a Tensor, got {type(tensor).__name__}")


def all_reduce(tensor: Tensor, op: str = "sum") -> Tensor:
    """Replace ``tensor``'s values, in place on every process, by their sum (``op="avg"``: mean, ``"max"``,
    ``"min"``) over the processes, as ``torch.distributed.all_reduce``. Outside autograd: no gradient flows."""
    _check_tensor("all_reduce", tensor)
    _check_op("all_reduce", op)
    if op == "avg" and tensor.dtype.kind != "f":
        raise TypeError(f"all_reduce: op='avg' needs a floating-point tensor, got dtype {tensor.dtype}")
    tensor.data = all_reduce_array(tensor.backend, tensor.data, op)
    return tensor


def broadcast(tensor: Tensor, src: int = 0) -> Tensor:
    """Give every process ``src``'s values of ``tensor``, in place, as ``torch.distributed.broadcast``."""
    _check_tensor("broadcast", tensor)
    tensor.data = broadcast_array(tensor.backend, tensor.data, src)
    return tensor


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """A small picklable Python object from ``src`` (a path, a setting, a seed)."""
    return obj if _world is None else _world.broadcast_object(obj, src)


# ---------------------------------------------------------------------------------------------------------------
# rank 0 speaks and writes for everyone
# ---------------------------------------------------------------------------------------------------------------
def log(*args: Any, **kwargs: Any) -> None:
    """``print`` on rank 0 only; the other processes print nothing."""
    if is_main_process():
        builtins.print(*args, **kwargs)


def run_on_main_process(function: Any, *args: Any, **kwargs: Any) -> Any:
    """Call ``function`` on rank 0 only (writing a file, say); every process must call this. The others wait for
    rank 0 to finish and raise a ``RuntimeError`` with rank 0's error if it failed, rather than carry on or wait
    forever. Returns rank 0's result on rank 0, None elsewhere."""
    result, error = None, None
    if is_main_process():
        try:
            result = function(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - told to the other ranks, then raised on rank 0
            error = exc
    failed = broadcast_object(None if error is None else f"{type(error).__name__}: {error}", 0)
    if error is not None:
        raise error
    if failed is not None:
        raise RuntimeError(f"{getattr(function, '__name__', 'function')} failed on rank 0: {failed}")
    return result


def save(obj: Any, path: Any) -> None:
    """Write a checkpoint from rank 0 only (``tinygrad_edu.save``: atomic). Every process must call it: the others
    wait for rank 0's word that the file is complete (or for its error, which they raise too)."""
    from tinygrad_edu.serialization import save as save_file

    run_on_main_process(save_file, obj, path)
