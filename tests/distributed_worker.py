"""Programs that tests/test_distributed.py runs under ``mpiexec -n K`` (and alone, for the reference).

    python tests/distributed_worker.py train --norm sync --out DIR              # under mpiexec: data parallel
    python tests/distributed_worker.py reference --replicas K --norm sync --out DIR   # one process, batch K·B
    python tests/distributed_worker.py gradcheck --out DIR                      # SyncBN's gradient across processes
    python tests/distributed_worker.py features --out DIR                       # no_sync, unused parameters, float16

``train`` and ``reference`` train the same small MLP on the same data for the same steps. Data parallel: each of K
processes takes its share of every global batch (DistributedSampler) and batch B. Reference: one process takes the
whole global batch of K·B; with ``--norm local`` (per-process batchnorm statistics) it normalizes each of the K
shares separately, as the K processes do, and keeps the running statistics of share 0 (rank 0's, which
DistributedDataParallel broadcasts). Each writes its final parameters and buffers; the test compares them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

import tinygrad_edu as tg
from tinygrad_edu import distributed as dist
from tinygrad_edu import nn
from tinygrad_edu.nn import functional as F
from tinygrad_edu.optim import SGD

N_SAMPLES, FEATURES, CLASSES = 96, 5, 3


def make_model(norm: str, seed: int, dtype: str) -> nn.Module:
    tg.manual_seed(seed)
    layers: list[nn.Module] = []
    width, last = 12, FEATURES
    for _ in range(2):
        layers.append(nn.Linear(last, width))
        if norm != "none":
            layers.append(nn.BatchNorm1d(width))
        layers.append(nn.ReLU())
        last = width
    layers.append(nn.Linear(last, CLASSES))
    model = nn.Sequential(*layers)
    return model.double() if dtype == "float64" else model


def make_data(dtype: str) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1234)
    x = rng.normal(size=(N_SAMPLES, FEATURES)) * rng.uniform(0.5, 3.0, FEATURES) + rng.uniform(-2, 2, FEATURES)
    y = (x[:, 0] + x[:, 1] ** 2 > 1).astype(np.int64) + (x[:, 2] > 0.5)
    return x.astype(dtype), y


def global_batches(replicas: int, batch: int, epochs: int):
    """Per step, the K shares of the global batch, as K processes' DistributedSamplers give them."""
    for epoch in range(epochs):
        samplers = [dist.DistributedSampler(N_SAMPLES, replicas, r, shuffle=True, seed=7) for r in range(replicas)]
        for s in samplers:
            s.set_epoch(epoch)
        shares = [s.indices() for s in samplers]
        for first in range(0, len(shares[0]) - batch + 1, batch):
            yield [share[first:first + batch] for share in shares]


def state(model: nn.Module) -> dict[str, np.ndarray]:
    return dict(model.state_dict())  # NumPy copies, from any device


def run_train(args) -> None:
    dist.init_process_group(args.backend)
    rank, size = dist.get_rank(), dist.get_world_size()
    if args.backend == "nccl":  # init_process_group made this process's GPU the default device
        args.device = tg.get_default_device()
    # every rank builds its model from a different seed: DistributedDataParallel must broadcast rank 0's
    model = make_model(args.norm, 100 + rank, args.dtype)
    if args.norm == "sync":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model.to(args.device)
    ddp = dist.DistributedDataParallel(model, bucket_cap_mb=args.bucket_cap_mb)
    x, y = make_data(args.dtype)
    optimizer = SGD(ddp.parameters(), lr=0.05, momentum=0.9)
    losses = []
    for shares in global_batches(size, args.batch, args.epochs):
        rows = shares[rank]
        optimizer.zero_grad()
        loss = F.cross_entropy(ddp(tg.Tensor(x[rows], device=args.device)), tg.Tensor(y[rows], device=args.device))
        loss.backward()
        optimizer.step()
        losses.append(float(loss.item()))
    np.savez(os.path.join(args.out, f"rank{rank}.npz"), **state(model))
    dist.save(model.state_dict(), os.path.join(args.out, "rank0_checkpoint.npz"))  # written by rank 0 only
    info = {"rank": rank, "size": size, "buckets": [len(b) for b in ddp.buckets], "losses": losses,
            "stats": ddp.reducer_stats, "local_rank": dist.get_local_rank()}
    with open(os.path.join(args.out, f"rank{rank}.json"), "w") as f:
        json.dump(info, f)


def run_reference(args) -> None:
    model = make_model("none" if args.norm == "none" else "batch", 100, args.dtype)
    x, y = make_data(args.dtype)
    optimizer = SGD(model.parameters(), lr=0.05, momentum=0.9)
    buffers = [t for _, t in model.named_buffers() if t is not None]
    for shares in global_batches(args.replicas, args.batch, args.epochs):
        optimizer.zero_grad()
        if args.norm == "local":  # K separate normalizations; the mean of their K mean losses
            kept = None
            for k, rows in enumerate(shares):
                before = [b.data.copy() for b in buffers]
                loss = F.cross_entropy(model(tg.Tensor(x[rows])), tg.Tensor(y[rows])) * (1 / len(shares))
                loss.backward()
                if k == 0:
                    kept = [b.data.copy() for b in buffers]
                for b, value in zip(buffers, before):
                    b.data = value
            for b, value in zip(buffers, kept):
                b.data = value
        else:
            rows = np.concatenate(shares)
            loss = F.cross_entropy(model(tg.Tensor(x[rows])), tg.Tensor(y[rows]))
            loss.backward()
        optimizer.step()
    np.savez(os.path.join(args.out, "reference.npz"), **state(model))


def run_gradcheck(args) -> None:
    """Finite differences of L = Σ_r <u_r, SyncBN(x_r)> (every process's output together) against the analytic
    dx_r, dγ and dβ, in float64. Rank r holds B + r samples (uneven batches); x has a large mean (|μ| ≈ 1e3)."""
    dist.init_process_group()
    rank, size = dist.get_rank(), dist.get_world_size()
    shape = tuple(args.shape)
    rng = np.random.default_rng(10 + rank)
    x_np = rng.normal(size=(shape[0] + rank,) + shape[1:]) * 2.0 + 1000.0
    u_np = rng.normal(size=x_np.shape)
    shared = np.random.default_rng(99)
    gamma_np, beta_np = shared.uniform(0.5, 1.5, shape[1]), shared.normal(size=shape[1])
    bn = nn.SyncBatchNorm(shape[1]).double()
    bn.weight.data, bn.bias.data = gamma_np.copy(), beta_np.copy()

    def total_loss(x_values: np.ndarray) -> float:
        with tg.no_grad():
            y = bn(tg.Tensor(x_values))
        local = np.array([float(np.sum(np.asarray(y) * u_np))])
        return float(dist.all_reduce(tg.Tensor(local)).numpy()[0])

    x = tg.Tensor(x_np, requires_grad=True)
    y = bn(x)
    y.backward(tg.Tensor(u_np))
    dx = x.grad.numpy()
    d_gamma = dist.all_reduce(tg.Tensor(bn.weight.grad.numpy())).numpy()
    d_beta = dist.all_reduce(tg.Tensor(bn.bias.grad.numpy())).numpy()
    eps, errors = 1e-5, []
    for owner in range(size):  # every process runs every perturbation: the sum needs all of them
        n = dist.broadcast_object(x_np.size, owner)
        for i in range(n):
            values = []
            for sign in (1, -1):
                xs = x_np.copy()
                if rank == owner:
                    xs.reshape(-1)[i] += sign * eps
                values.append(total_loss(xs))
            numeric = (values[0] - values[1]) / (2 * eps)
            if rank == owner:
                errors.append(abs(numeric - dx.reshape(-1)[i]) / max(1.0, abs(numeric)))
    for param, analytic in ((bn.weight, d_gamma), (bn.bias, d_beta)):
        for c in range(shape[1]):
            values = []
            for sign in (1, -1):
                param.data = param.data.copy()
                param.data[c] += sign * eps
                values.append(total_loss(x_np))
                param.data[c] -= sign * eps
            numeric = (values[0] - values[1]) / (2 * eps)
            errors.append(abs(numeric - analytic[c]) / max(1.0, abs(numeric)))
    # the forward against one process's batchnorm over all processes' samples together
    with tg.no_grad():
        mine = np.asarray(bn(tg.Tensor(x_np)))
    everyone = [dist.broadcast_object(x_np, r) for r in range(size)]
    whole = F.batch_norm(tg.Tensor(np.concatenate(everyone)), None, None, tg.Tensor(gamma_np), tg.Tensor(beta_np),
                         training=True).numpy()
    first = sum(len(v) for v in everyone[:rank])
    forward_error = float(np.max(np.abs(mine - whole[first:first + len(x_np)])))
    # float32: mean ≈ 1000, std 2. Σx²/M - μ² would cancel to an error of several percent of σ²; the sum of squares
    # about the global mean keeps the output within float32's resolution of x (ulp(1000) / σ ≈ 3e-5)
    bn32 = nn.SyncBatchNorm(shape[1])
    bn32.weight.data, bn32.bias.data = gamma_np.astype(np.float32), beta_np.astype(np.float32)
    with tg.no_grad():
        y32 = np.asarray(bn32(tg.Tensor(x_np.astype(np.float32))))
    float32_error = float(np.max(np.abs(y32 - whole[first:first + len(x_np)])))
    with open(os.path.join(args.out, f"gradcheck{rank}.json"), "w") as f:
        json.dump({"max_error": max(errors), "checked": len(errors), "forward_error": forward_error,
                   "float32_error": float32_error}, f)


class Heads(nn.Module):
    """A shared body, a head every process uses, and a head only rank 0 uses (``extra=True``)."""

    def __init__(self, dtype) -> None:
        super().__init__()
        self.body, self.head, self.extra = nn.Linear(4, 6), nn.Linear(6, 2), nn.Linear(6, 2)
        self.to(dtype=dtype)

    def forward(self, x, extra: bool = False):
        h = self.body(x).relu()
        return self.head(h) + self.extra(h) if extra else self.head(h)


def run_features(args) -> None:
    """Gradient accumulation with no_sync, a parameter only rank 0 uses, float16 gradients: every process checks
    its averaged gradients against the mean, over the ranks, of a plain model's gradients on each rank's data."""
    dist.init_process_group()
    rank, size = dist.get_rank(), dist.get_world_size()
    errors = {}
    for dtype in (np.float32, np.float16):
        tg.manual_seed(5)
        ddp = dist.DistributedDataParallel(Heads(dtype))
        plain = Heads(dtype)
        plain.load_state_dict(ddp.module.state_dict())

        def data(r, step, dtype=dtype):
            return tg.Tensor(np.random.default_rng(100 * r + step).normal(size=(3, 4)).astype(dtype))

        with ddp.no_sync():  # micro-batch 1: local accumulation only
            ddp(data(rank, 1)).float().sum().backward()
        ddp(data(rank, 2), extra=rank == 0).float().sum().backward()  # micro-batch 2: reduces the sum of both
        expected: dict[str, np.ndarray] = {}
        for r in range(size):  # what each rank accumulated, recomputed here from its data
            plain.zero_grad()
            plain(data(r, 1)).float().sum().backward()
            plain(data(r, 2), extra=r == 0).float().sum().backward()
            for name, p in plain.named_parameters():
                g = np.zeros(p.shape) if p.grad is None else p.grad.numpy().astype(np.float64)
                expected[name] = expected.get(name, 0) + g / size
        worst = 0.0
        for name, p in ddp.module.named_parameters():
            # the mean, rounded once to the gradient's dtype (for 2 processes the reducer's float32 sum and halving
            # round exactly once too, so the two agree exactly)
            worst = max(worst, float(np.max(np.abs(p.grad.numpy() - expected[name].astype(dtype)))))
            assert p.grad.dtype == dtype, (name, p.grad.dtype)
        errors[np.dtype(dtype).name] = worst
        errors[f"{np.dtype(dtype).name}_extra_grad_norm"] = float(np.abs(ddp.module.extra.weight.grad.numpy()).sum())
        errors[f"{np.dtype(dtype).name}_reductions"] = ddp.reducer_stats["reductions"]
    with open(os.path.join(args.out, f"features{rank}.json"), "w") as f:
        json.dump(errors, f)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=("train", "reference", "gradcheck", "features"))
    parser.add_argument("--norm", choices=("none", "local", "sync"), default="sync")
    parser.add_argument("--replicas", type=int, default=1)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--backend", choices=("mpi", "nccl"), default="mpi")
    parser.add_argument("--bucket-cap-mb", type=float, default=25.0)
    parser.add_argument("--shape", type=int, nargs="+", default=[3, 2])
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    {"train": run_train, "reference": run_reference, "gradcheck": run_gradcheck,
     "features": run_features}[args.mode](args)


if __name__ == "__main__":
    main(sys.argv[1:])
