"""Data-parallel training (tinygrad_edu.distributed): K MPI processes train what one process trains on K·B samples.

The multi-process tests run ``tests/distributed_worker.py`` under ``mpiexec -n 2`` and ``-n 4`` (the mpich wheel's
launcher; 4 processes oversubscribe a 2-core machine, which MPI allows) and compare with one process on the
concatenated batch. The rest run in this process, in a world of one.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinygrad_edu as tg
from tinygrad_edu import distributed as dist
from tinygrad_edu import nn
from tinygrad_edu.distributed import process_group as pg
from tinygrad_edu.nn import functional as F

WORKER = Path(__file__).resolve().parent / "distributed_worker.py"
MPIEXEC = dist.find_mpiexec()
needs_mpi = pytest.mark.skipif(MPIEXEC is None or importlib.util.find_spec("mpi4py") is None,
                               reason="mpi4py and an MPI launcher (pip install 'tinygrad_edu[distributed]') needed")


def mpirun(n: int, *args: str, timeout: int = 120) -> None:
    command = [MPIEXEC, "-n", str(n), sys.executable, str(WORKER), *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}"


def alone(*args: str) -> None:
    done = subprocess.run([sys.executable, str(WORKER), *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def load(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as data:
        return {name: data[name] for name in data.files}


# ---------------------------------------------------------------------------------------------------------------
# K processes of batch B against one process of batch K·B
# ---------------------------------------------------------------------------------------------------------------
@needs_mpi
@pytest.mark.parametrize("processes", [2, 4])
@pytest.mark.parametrize("norm", ["none", "sync", "local"])
def test_k_processes_train_what_one_process_trains_on_the_whole_batch(tmp_path, processes, norm):
    """``none``: no batchnorm; ``sync``: SyncBatchNorm, against BatchNorm on the concatenated batch; ``local``:
    per-process statistics, against one process normalizing each of the K shares on its own (what they compute)."""
    batch = 16 // processes
    mpirun(processes, "train", "--norm", norm, "--batch", str(batch), "--out", str(tmp_path))
    alone("reference", "--replicas", str(processes), "--norm", norm, "--batch", str(batch), "--out", str(tmp_path))
    reference = load(tmp_path / "reference.npz")
    ranks = [load(tmp_path / f"rank{r}.npz") for r in range(processes)]
    assert set(ranks[0]) == set(reference)
    for name, expected in reference.items():
        np.testing.assert_allclose(ranks[0][name], expected, rtol=1e-5, atol=2e-6, err_msg=name)
        for r in range(1, processes):
            if norm == "local" and "running" in name:
                continue  # each process's own running statistics (rank 0's are broadcast before each forward)
            np.testing.assert_array_equal(ranks[r][name], ranks[0][name], err_msg=f"rank {r}: {name}")
    # the training itself was not trivial: the weights moved far from where they started
    start = _reference_model(norm)  # the reference's initial model (rank 0's seed)
    moved = max(float(np.max(np.abs(ranks[0][k] - v))) for k, v in start.state_dict().items() if "weight" in k)
    assert moved > 0.05
    # rank 0 alone wrote the checkpoint, and it holds rank 0's state
    checkpoint = tg.load(tmp_path / "rank0_checkpoint.npz")
    for name, value in ranks[0].items():
        np.testing.assert_array_equal(np.asarray(checkpoint[name]), value)
    info = json.loads((tmp_path / "rank0.json").read_text())
    assert info["size"] == processes
    assert info["stats"]["calls"] == info["stats"]["reductions"] * len(info["buckets"])


def _reference_model(norm: str) -> nn.Module:
    sys.path.insert(0, str(WORKER.parent))
    try:
        import distributed_worker
    finally:
        sys.path.pop(0)
    return distributed_worker.make_model("none" if norm == "none" else "batch", 100, "float32")


@needs_mpi
def test_float64_equality_is_to_float64_round_off_and_buckets_do_not_change_it(tmp_path):
    """In float64 the two computations agree to ~1e-15: the tolerance above is float32's round-off, not slack. A cap
    that gives every parameter its own bucket changes the number of calls, not the result."""
    mpirun(2, "train", "--norm", "sync", "--dtype", "float64", "--bucket-cap-mb", "1e-6", "--out", str(tmp_path))
    alone("reference", "--replicas", "2", "--norm", "sync", "--dtype", "float64", "--out", str(tmp_path))
    reference, rank0 = load(tmp_path / "reference.npz"), load(tmp_path / "rank0.npz")
    for name, expected in reference.items():
        np.testing.assert_allclose(rank0[name], expected, rtol=1e-12, atol=1e-13, err_msg=name)
    info = json.loads((tmp_path / "rank0.json").read_text())
    assert info["buckets"] == [1] * 10  # 6 Linear and 4 BatchNorm tensors, one per bucket
    assert info["stats"]["calls"] == 10 * info["stats"]["reductions"]


@needs_mpi
def test_default_bucket_packs_every_gradient_into_one_all_reduce(tmp_path):
    mpirun(2, "train", "--norm", "none", "--epochs", "1", "--out", str(tmp_path))
    info = json.loads((tmp_path / "rank0.json").read_text())
    assert info["buckets"] == [6]
    assert info["stats"]["calls"] == info["stats"]["reductions"] == len(info["losses"])
    floats = (5 * 12 + 12) + (12 * 12 + 12) + (12 * 3 + 3) + 6  # the gradients, and one count per parameter
    assert info["stats"]["bytes"] == info["stats"]["reductions"] * floats * 4


@needs_mpi
def test_no_sync_a_parameter_only_one_process_uses_and_float16_gradients_across_processes(tmp_path):
    """Two micro-batches, the first under no_sync, the second reducing the accumulated sum; a head only rank 0
    uses (the others send zeros: its average is half of rank 0's gradient); float32 and float16 models. Each
    averaged gradient equals the mean over the ranks of a plain model's gradients, rounded once: exactly."""
    mpirun(2, "features", "--out", str(tmp_path))
    for rank in range(2):
        result = json.loads((tmp_path / f"features{rank}.json").read_text())
        assert result["float32"] == 0.0 and result["float16"] == 0.0, result
        assert result["float32_extra_grad_norm"] > 1.0 and result["float16_reductions"] == 1, result


@needs_mpi
def test_an_exception_in_one_process_aborts_all_instead_of_leaving_them_waiting():
    code = ("import tinygrad_edu as tg\nfrom tinygrad_edu import distributed as dist\ndist.init_process_group()\n"
            "if dist.get_rank() == 1:\n    raise ValueError('planted on rank 1')\n"
            "dist.all_reduce(tg.Tensor([1.0]))\n")
    done = subprocess.run([MPIEXEC, "-n", "2", sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode != 0
    assert "ValueError: planted on rank 1" in done.stderr


@needs_mpi
def test_sync_batch_norm_in_evaluation_mode_does_not_communicate(tmp_path):
    """Without running statistics, evaluation normalizes with the batch's own, locally (as PyTorch): rank 0 may
    evaluate alone. (Were it to all-reduce, rank 0 would wait for rank 1 forever.)"""
    code = ("import sys, numpy as np, tinygrad_edu as tg\nfrom tinygrad_edu import distributed as dist, nn\n"
            "dist.init_process_group()\nbn = nn.SyncBatchNorm(3, track_running_stats=False).eval()\n"
            "if dist.get_rank() == 0:\n    y = bn(tg.Tensor(np.arange(12.0).reshape(4, 3)))\n"
            "    np.save(sys.argv[1], y.numpy())\ndist.barrier()\n")
    done = subprocess.run([MPIEXEC, "-n", "2", sys.executable, "-c", code, str(tmp_path / "y.npy")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    x = np.arange(12.0).reshape(4, 3)
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-5), rtol=1e-6)


@needs_mpi
def test_data_parallel_on_the_strict_device_goes_through_the_host(tmp_path):
    mpirun(2, "train", "--norm", "sync", "--device", "strict", "--dtype", "float64", "--out", str(tmp_path))
    alone("reference", "--replicas", "2", "--norm", "sync", "--dtype", "float64", "--out", str(tmp_path))
    reference, rank0 = load(tmp_path / "reference.npz"), load(tmp_path / "rank0.npz")
    for name, expected in reference.items():
        np.testing.assert_allclose(rank0[name], expected, rtol=1e-12, atol=1e-13, err_msg=name)


@needs_mpi
@pytest.mark.parametrize(("processes", "shape"), [(2, (3, 2)), (2, (2, 3, 4)), (2, (2, 2, 3, 3)), (4, (2, 3)), (2, (1, 2))])
def test_sync_batch_norm_gradient_across_processes_against_finite_differences(tmp_path, processes, shape):
    """L = Σ_r <u_r, SyncBN(x_r)> with a random upstream u_r per process; rank r holds B + r samples (uneven
    batches; rank 0 holds a single sample in the last case, which only the other's samples make valid), with mean
    ≈ 1000 and std 2 (where Σx²/M - μ² would lose every digit in float32). Each dx_r, dγ and
    dβ against central differences in float64; the forward, in float64 and in float32, against BatchNorm on all
    samples together."""
    mpirun(processes, "gradcheck", "--shape", *map(str, shape), "--out", str(tmp_path))
    for rank in range(processes):
        result = json.loads((tmp_path / f"gradcheck{rank}.json").read_text())
        assert result["checked"] >= shape[1] * 2
        assert result["max_error"] < 1e-6, result
        assert result["forward_error"] < 1e-9, result
        assert result["float32_error"] < 1e-3, result


# ---------------------------------------------------------------------------------------------------------------
# in this process: a world of one
# ---------------------------------------------------------------------------------------------------------------
@pytest.fixture
def world():
    """The default group, initialized for one test (a world of one process) and left afterwards."""
    dist.init_process_group()
    yield
    dist.destroy_process_group()


def _mlp(dtype=np.float32) -> nn.Module:
    tg.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))
    return model.to(dtype=dtype)


def test_world_of_one_reports_rank_zero_and_is_main(world):
    assert (dist.get_rank(), dist.get_world_size(), dist.get_local_rank()) == (0, 1, 0)
    assert dist.is_initialized() and dist.is_main_process()
    assert dist.get_backend() in ("mpi", "local")
    t = tg.Tensor([1.0, 2.0])
    assert dist.all_reduce(t) is t and t.tolist() == [1.0, 2.0]
    assert dist.all_reduce(t, op="avg").tolist() == [1.0, 2.0]
    assert dist.broadcast(t, src=0).tolist() == [1.0, 2.0]
    assert dist.broadcast_object({"a": 1}) == {"a": 1}
    dist.barrier()


def test_ddp_in_a_world_of_one_leaves_the_gradients_of_the_plain_model(world):
    x, y = tg.Tensor(np.random.default_rng(0).normal(size=(6, 3)).astype(np.float32)), tg.Tensor([0, 1, 1, 0, 1, 0])
    plain, wrapped = _mlp(), _mlp()
    ddp = dist.DistributedDataParallel(wrapped)
    F.cross_entropy(plain(x), y).backward()
    F.cross_entropy(ddp(x), y).backward()
    for (name, p), q in zip(plain.named_parameters(), wrapped.parameters()):
        np.testing.assert_array_equal(q.grad.numpy(), p.grad.numpy(), err_msg=name)
    assert ddp.reducer_stats["reductions"] == 1 and ddp.reducer_stats["calls"] == len(ddp.buckets) == 1
    assert [n for n, _ in ddp.named_parameters()][0] == "module.0.weight"  # PyTorch's prefix


def test_the_all_reduce_runs_once_per_backward_after_every_gradient(world):
    """Two outputs both carry the sink: still one reduction, queued for the end of the pass."""
    model = nn.Linear(3, 2)
    ddp = dist.DistributedDataParallel(model)
    seen = []
    reduce = ddp._reducer.reduce

    def spy():
        seen.append(model.weight.grad is not None and model.bias.grad is not None)
        reduce()

    ddp._reducer.reduce = spy
    out = ddp(tg.Tensor(np.ones((4, 3), np.float32)))
    (out.sum() + (out * out).sum()).backward()
    assert seen == [True]


def test_tensors_inside_tuple_and_dict_outputs_carry_the_sink(world):
    class Pair(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(2, 2), nn.Linear(2, 2)

        def forward(self, x):
            return {"a": self.a(x), "rest": (self.b(x), 3)}

    ddp = dist.DistributedDataParallel(Pair())
    out = ddp(tg.Tensor(np.ones((3, 2), np.float32)))
    assert out["rest"][1] == 3
    (out["a"].sum() + out["rest"][0].sum()).backward()
    assert ddp.reducer_stats["reductions"] == 1


def test_no_sync_skips_the_all_reduce_and_the_next_backward_reduces_the_sum(world):
    ddp = dist.DistributedDataParallel(nn.Linear(3, 2))
    x = tg.Tensor(np.ones((4, 3), np.float32))
    with ddp.no_sync():
        ddp(x).sum().backward()
    assert ddp.reducer_stats["reductions"] == 0
    ddp(x).sum().backward()
    assert ddp.reducer_stats["reductions"] == 1
    np.testing.assert_allclose(ddp.module.bias.grad.numpy(), [8.0, 8.0])  # two backwards of 4 rows, accumulated


def test_buckets_follow_the_cap_in_reverse_order_and_float16_travels_as_float32(world):
    model = nn.Sequential(nn.Linear(100, 100), nn.Linear(100, 100), nn.Linear(100, 10))
    ddp = dist.DistributedDataParallel(model, bucket_cap_mb=5000 * 4 / 2**20)  # 5000 float32 values
    names = {id(p): n for n, p in model.named_parameters()}
    # 10 + 1000 + 100 values fit; a weight of 10000 gets a bucket of its own (larger than the cap: never split)
    assert [[names[id(p)] for p in b] for b in ddp.buckets] == [
        ["2.bias", "2.weight", "1.bias"], ["1.weight"], ["0.bias"], ["0.weight"]]
    half = dist.DistributedDataParallel(nn.Linear(4, 2).half())
    assert {b.dtype for b in half._reducer.buckets} == {np.dtype(np.float32)}
    half(tg.Tensor(np.ones((3, 4), np.float16))).sum().backward()
    assert half.module.weight.grad.dtype == np.float16


def test_a_parameter_no_process_used_keeps_no_gradient(world):
    class TwoHeads(nn.Module):
        def __init__(self):
            super().__init__()
            self.used, self.unused = nn.Linear(2, 2), nn.Linear(2, 2)

        def forward(self, x):
            return self.used(x)

    ddp = dist.DistributedDataParallel(TwoHeads())
    ddp(tg.Tensor(np.ones((3, 2), np.float32))).sum().backward()
    assert ddp.module.unused.weight.grad is None and ddp.module.used.weight.grad is not None


def test_a_backward_that_raised_does_not_stop_later_reductions(world):
    class Fails(tg.Function):
        @staticmethod
        def forward(ctx, x):
            return x

        @staticmethod
        def backward(ctx, grad):
            raise FloatingPointError("planted")

    class FailsFirst(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear, self.fail = nn.Linear(2, 2), True

        def forward(self, x):
            return self.linear(Fails.apply(x) if self.fail else x)

    ddp = dist.DistributedDataParallel(FailsFirst())
    x = tg.Tensor(np.ones((3, 2), np.float32), requires_grad=True)
    with pytest.raises(FloatingPointError, match="planted"):
        ddp(x).sum().backward()  # backward runs the sink (queues the reduction), then Fails raises
    assert ddp.reducer_stats["reductions"] == 0
    ddp.module.fail = False
    ddp(x).sum().backward()
    assert ddp.reducer_stats["reductions"] == 1


def test_sync_batch_norm_module_in_a_world_of_one_is_batch_norm(world):
    rng = np.random.default_rng(1)
    for shape in [(5, 3), (4, 3, 6), (2, 3, 4, 4)]:
        x = rng.normal(size=shape)
        sync, plain = nn.SyncBatchNorm(3).double(), (nn.BatchNorm1d if len(shape) < 4 else nn.BatchNorm2d)(3).double()
        a, b = tg.Tensor(x, requires_grad=True), tg.Tensor(x, requires_grad=True)
        u = rng.normal(size=shape)
        sync(a).backward(u)
        plain(b).backward(u)
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(sync.running_var.numpy(), plain.running_var.numpy(), rtol=1e-12)
        sync.eval(), plain.eval()
        np.testing.assert_allclose(sync(tg.Tensor(x)).numpy(), plain(tg.Tensor(x)).numpy(), rtol=1e-12)


def test_convert_sync_batchnorm_keeps_the_order_the_parameters_and_the_state():
    model = _mlp()
    model.eval()
    before = [(n, id(p)) for n, p in model.named_parameters()]
    state = model.state_dict()
    converted = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    assert converted is model and isinstance(model[1], nn.SyncBatchNorm) and not model[1].training
    assert [type(m).__name__ for m in model] == ["Linear", "SyncBatchNorm", "ReLU", "Linear"]
    assert [(n, id(p)) for n, p in model.named_parameters()] == before  # the same Parameter objects
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value, state[name])
    assert "SyncBatchNorm(8, eps=1e-05" in repr(model)


def test_sync_batch_norm_function_gradchecks_in_a_world_of_one():
    """The Function itself (F.sync_batch_norm would pick BatchNormFunction for one process), large mean included."""
    x = tg.Tensor(np.random.default_rng(2).normal(size=(4, 3, 2)) + 1000.0, requires_grad=True)
    w = tg.Tensor(np.array([0.5, 1.0, 1.5]), requires_grad=True)
    b = tg.Tensor(np.array([0.1, -0.2, 0.3]), requires_grad=True)
    assert tg.gradcheck(lambda x, w, b: F.SyncBatchNormFunction.apply(x, w, b), (x, w, b))


@given(n=st.integers(0, 60), replicas=st.integers(1, 6), shuffle=st.booleans(), drop_last=st.booleans(),
       seed=st.integers(0, 3), epoch=st.integers(0, 3))
def test_sampler_shares_partition_each_epoch_as_pytorch_does(n, replicas, shuffle, drop_last, seed, epoch):
    samplers = [dist.DistributedSampler(n, replicas, r, shuffle=shuffle, seed=seed, drop_last=drop_last)
                for r in range(replicas)]
    for s in samplers:
        s.set_epoch(epoch)
    shares = [s.indices() for s in samplers]
    expected_len = n // replicas if drop_last and n % replicas else -(-n // replicas)
    assert all(len(share) == len(s) == expected_len for share, s in zip(shares, samplers))
    together = np.concatenate(shares) if shares else np.array([], np.int64)
    if drop_last or n % replicas == 0:
        assert len(set(together.tolist())) == len(together)  # no index twice
    if not drop_last and n:
        assert set(together.tolist()) == set(range(n))  # every sample, a few twice as padding
    # step by step, the shares of a batch of B are one contiguous slice of the epoch's order
    order = np.random.default_rng(seed + epoch).permutation(n) if shuffle else np.arange(n)
    if n and not drop_last:
        order = np.resize(order, replicas * expected_len) if replicas * expected_len > n else order
        interleaved = np.stack(shares, axis=1).reshape(-1)
        np.testing.assert_array_equal(interleaved, order[: replicas * expected_len])


def test_sampler_uses_the_group_and_rejects_bad_ranks(world):
    assert (dist.DistributedSampler(10).num_replicas, dist.DistributedSampler(10).rank) == (1, 0)
    assert len(dist.DistributedSampler([0] * 7, 2, 1)) == 4
    with pytest.raises(ValueError, match=r"invalid rank 2, rank should be in the interval \[0, 1\]"):
        dist.DistributedSampler(10, num_replicas=2, rank=2)
    with pytest.raises(ValueError, match="num_replicas must be a positive integer"):
        dist.DistributedSampler(10, num_replicas=0, rank=0)


def test_log_prints_on_rank_zero_and_save_writes_from_rank_zero(world, tmp_path, capsys):
    dist.log("hello", 1)
    assert capsys.readouterr().out == "hello 1\n"
    dist.save({"w": np.arange(3.0)}, tmp_path / "c.npz")
    np.testing.assert_array_equal(tg.load(tmp_path / "c.npz")["w"], np.arange(3.0))
    with pytest.raises(IsADirectoryError):
        dist.save({"w": 1}, tmp_path)


# ---------------------------------------------------------------------------------------------------------------
# errors: each names what is wrong, and changes nothing
# ---------------------------------------------------------------------------------------------------------------
def test_errors_before_and_during_initialization():
    assert not dist.is_initialized()
    with pytest.raises(RuntimeError, match="not initialized; call tinygrad_edu.distributed.init_process_group"):
        dist.DistributedDataParallel(nn.Linear(2, 2))
    with pytest.raises(ValueError, match="backend must be one of mpi, nccl; got 'gloo'"):
        dist.init_process_group("gloo")
    if not tg.cuda_is_available():
        with pytest.raises(tg.DeviceUnavailableError, match="backend='nccl' needs CuPy and a CUDA GPU"):
            dist.init_process_group("nccl")
    assert not dist.is_initialized()  # the failed calls left nothing behind
    dist.init_process_group()
    try:
        with pytest.raises(RuntimeError, match="already initialized"):
            dist.init_process_group()
    finally:
        dist.destroy_process_group()


def test_errors_of_the_collectives_and_of_ddp(world):
    with pytest.raises(ValueError, match="all_reduce: op must be one of sum, avg, max, min; got 'mean'"):
        dist.all_reduce(tg.Tensor([1.0]), op="mean")
    with pytest.raises(TypeError, match="all_reduce: op='avg' needs a floating-point tensor, got dtype int64"):
        dist.all_reduce(tg.Tensor([1, 2]), op="avg")
    with pytest.raises(TypeError, match="all_reduce: expected a Tensor, got list"):
        dist.all_reduce([1.0])
    with pytest.raises(ValueError, match=r"broadcast: src must be a rank in 0..0, got 3"):
        dist.broadcast(tg.Tensor([1.0]), src=3)
    with pytest.raises(TypeError, match="DistributedDataParallel: expected a Module, got function"):
        dist.DistributedDataParallel(lambda x: x)
    with pytest.raises(ValueError, match="bucket_cap_mb must be a positive number, got 0"):
        dist.DistributedDataParallel(nn.Linear(2, 2), bucket_cap_mb=0)
    with pytest.raises(ValueError, match="has no parameter that requires a gradient"):
        dist.DistributedDataParallel(nn.ReLU())
    mixed = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2).to("strict"))
    with pytest.raises(RuntimeError, match=r"tensors are on several devices \(cpu, strict\)"):
        dist.DistributedDataParallel(mixed)


def test_queue_callback_outside_backward_is_an_error():
    with pytest.raises(RuntimeError, match="queue_callback: no backward pass is running"):
        tg.autograd.queue_callback(lambda: None)


def test_init_without_mpi4py_under_a_launcher_says_what_to_install(monkeypatch):
    monkeypatch.setattr(pg, "is_available", lambda: False)
    monkeypatch.setenv("PMI_RANK", "0")
    with pytest.raises(RuntimeError, match=r"mpi4py is not installed; pip install 'tinygrad_edu\[distributed\]'"):
        dist.init_process_group()
    assert not dist.is_initialized()
    monkeypatch.delenv("PMI_RANK")
    for name in dist.communicator.LAUNCHER_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    dist.init_process_group()  # no launcher, no mpi4py: a world of one
    try:
        assert dist.get_backend() == "local" and dist.get_world_size() == 1
    finally:
        dist.destroy_process_group()


def test_nccl_glue_passes_pointers_counts_dtypes_and_the_stream_to_a_stand_in_library(monkeypatch):
    """Without a GPU, NCCLCommunicator runs against a stand-in ``cupy.cuda.nccl`` that records its calls: the
    unique id comes from rank 0 through the bootstrap, and each collective gets the array's device pointer, its
    element count, NCCL's code for its dtype, the op and CuPy's current stream (tests/test_distributed_gpu.py runs
    the real library where there is a GPU)."""
    import types

    calls = []

    class Array:
        def __init__(self, n, dtype):
            self.size, self.dtype, self.strides = n, np.dtype(dtype), (np.dtype(dtype).itemsize,)
            self.flags, self.data, self.divided_by = types.SimpleNamespace(c_contiguous=True), \
                types.SimpleNamespace(ptr=0xA000), None

        def __itruediv__(self, k):
            self.divided_by = k
            return self

    class Communicator:
        def __init__(self, size, unique_id, rank):
            calls.append(("init", size, unique_id, rank))

        def allReduce(self, *args):  # noqa: N802 - CuPy's name
            calls.append(("allReduce", *args))

        def broadcast(self, *args):
            calls.append(("broadcast", *args))

    nccl = types.ModuleType("cupy.cuda.nccl")
    nccl.__dict__.update(available=True, get_unique_id=lambda: "fresh id", NcclCommunicator=Communicator,
                         NCCL_FLOAT16=6, NCCL_FLOAT32=7, NCCL_FLOAT64=8, NCCL_INT32=2, NCCL_INT64=4,
                         NCCL_SUM=0, NCCL_MAX=2, NCCL_MIN=3)
    cuda = types.ModuleType("cupy.cuda")
    cuda.nccl, cuda.get_current_stream = nccl, lambda: types.SimpleNamespace(ptr=0x5, synchronize=lambda: None)
    cupy = types.ModuleType("cupy")
    cupy.cuda, cupy.ndarray = cuda, Array
    for name, module in (("cupy", cupy), ("cupy.cuda", cuda), ("cupy.cuda.nccl", nccl)):
        monkeypatch.setitem(sys.modules, name, module)
    bootstrap = types.SimpleNamespace(rank=1, size=2, local_rank=1, barrier=lambda: calls.append(("barrier",)),
                                      broadcast_object=lambda obj, root: ("id of rank", root) if obj is None else obj)
    comm = dist.NCCLCommunicator(bootstrap)
    a = Array(6, np.float32)
    assert comm.all_reduce(a, "avg") is a and a.divided_by == 2
    comm.broadcast(Array(3, np.float16), root=0)
    comm.all_reduce(Array(2, np.int64), "max")
    comm.barrier()
    assert calls == [("init", 2, ("id of rank", 0), 1), ("allReduce", 0xA000, 0xA000, 6, 7, 0, 0x5),
                     ("broadcast", 0xA000, 0xA000, 3, 6, 0, 0x5), ("allReduce", 0xA000, 0xA000, 2, 4, 2, 0x5),
                     ("barrier",)]
    with pytest.raises(TypeError, match="NCCL cannot reduce dtype complex64"):
        comm.all_reduce(Array(2, np.complex64))


@needs_mpi
def test_the_example_prints_once_and_sync_bn_on_two_processes_matches_one_process_on_twice_the_batch():
    def run(prefix, *args):
        command = [*prefix, sys.executable, "-m", "tinygrad_edu.examples.data_parallel", "--epochs", "3", *args]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout.splitlines()

    two = run([MPIEXEC, "-n", "2"], "--sync-bn", "--batch-size", "50")
    one = run([], "--sync-bn", "--batch-size", "100")
    assert len(two) == 1 and two[0].startswith("2 process(es) x batch 50: test accuracy ")
    assert two[0].split("test accuracy ")[1][:5] == one[0].split("test accuracy ")[1][:5]
    assert float(one[0].split("test accuracy ")[1][:5]) > 0.9


@needs_mpi
def test_a_failed_save_on_rank_zero_is_raised_on_every_process(tmp_path):
    (tmp_path / "a directory").mkdir()
    code = ("import sys\nfrom tinygrad_edu import distributed as dist\ndist.init_process_group()\n"
            "try:\n    dist.save({'w': 1}, sys.argv[1] + '/a directory')\nexcept Exception as exc:\n"
            "    open(f'{sys.argv[1]}/rank{dist.get_rank()}.txt', 'w').write(f'{type(exc).__name__} {exc}')\n")
    done = subprocess.run([MPIEXEC, "-n", "2", sys.executable, "-c", code, str(tmp_path)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "rank0.txt").read_text().startswith("IsADirectoryError save: ")
    assert (tmp_path / "rank1.txt").read_text().startswith("RuntimeError save failed on rank 0: IsADirectoryError: ")
