"""Data parallel on GPUs: NCCL through cupy.cuda.nccl (gpu marker; skipped where CuPy sees no GPU).

On one GPU, NCCL runs as a communicator of one rank: the calls, dtypes and streams are exercised, the sums are the
identity. With two GPUs or more, ``mpiexec -n <GPUs>`` trains with one process per GPU and compares with one process
on the whole batch, as tests/test_distributed.py does on the CPU.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from test_distributed import MPIEXEC, WORKER, alone, load, mpirun, needs_mpi

pytestmark = pytest.mark.gpu


def test_nccl_communicator_of_one_rank_reduces_and_broadcasts_in_place():
    import cupy

    from tinygrad_edu.distributed import NCCLCommunicator

    comm = NCCLCommunicator()
    assert (comm.rank, comm.size) == (0, 1)
    for dtype in (np.float16, np.float32, np.float64, np.int64):
        a = cupy.arange(6, dtype=dtype)
        assert comm.all_reduce(a, "sum") is a
        cupy.testing.assert_array_equal(a, cupy.arange(6, dtype=dtype))
        assert comm.broadcast(a, 0) is a
    with pytest.raises(TypeError, match="NCCL needs a CuPy array on the GPU, got ndarray"):
        comm.all_reduce(np.ones(3))
    with pytest.raises(ValueError, match="NCCL needs a contiguous array"):
        comm.all_reduce(cupy.ones((4, 4))[:, ::2])
    with pytest.raises(TypeError, match="NCCL cannot reduce dtype complex64"):
        comm.all_reduce(cupy.ones(3, dtype=cupy.complex64))


def test_training_on_backend_nccl_in_a_world_of_one_matches_the_cpu(tmp_path):
    """init_process_group('nccl') alone: the default device becomes cuda:0, DistributedDataParallel and SyncBatchNorm
    run on the GPU (their all-reduces are the identity in a world of one, so NCCL carries no data here: the test
    above and the one-process-per-GPU test below do), and the training equals the CPU reference."""
    command = [sys.executable, str(WORKER), "train", "--backend", "nccl", "--norm", "sync", "--dtype", "float64",
               "--out", str(tmp_path)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    alone("reference", "--replicas", "1", "--norm", "sync", "--dtype", "float64", "--out", str(tmp_path))
    reference, rank0 = load(tmp_path / "reference.npz"), load(tmp_path / "rank0.npz")
    for name, expected in reference.items():
        np.testing.assert_allclose(rank0[name], expected, rtol=1e-10, atol=1e-12, err_msg=name)
    assert json.loads((tmp_path / "rank0.json").read_text())["stats"]["reductions"] > 0


@needs_mpi
def test_one_process_per_gpu_trains_what_one_process_trains_on_the_whole_batch(tmp_path):
    import cupy

    gpus = cupy.cuda.runtime.getDeviceCount()
    if gpus < 2:
        pytest.skip(f"needs 2 GPUs or more for NCCL across processes; CuPy sees {gpus}")
    assert MPIEXEC is not None
    mpirun(gpus, "train", "--backend", "nccl", "--norm", "sync", "--batch", str(16 // gpus), "--out", str(tmp_path))
    alone("reference", "--replicas", str(gpus), "--norm", "sync", "--batch", str(16 // gpus), "--out", str(tmp_path))
    reference, rank0 = load(tmp_path / "reference.npz"), load(tmp_path / "rank0.npz")
    for name, expected in reference.items():
        np.testing.assert_allclose(rank0[name], expected, rtol=1e-5, atol=2e-6, err_msg=name)
