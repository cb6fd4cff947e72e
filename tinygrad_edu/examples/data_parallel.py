"""Data-parallel training of a batchnorm MLP on the disc problem: the usual loop, with four lines added.

    mpirun -n 2 python -m tinygrad_edu.examples.data_parallel          # 2 processes, 50 samples each per step
    mpirun -n 2 python -m tinygrad_edu.examples.data_parallel --sync-bn
    python -m tinygrad_edu.examples.data_parallel                      # alone: a world of one, same code

Each process runs this whole file. What makes it data parallel (the lines marked ``# data parallel``):
``init_process_group`` finds the other processes, ``DistributedDataParallel`` starts every replica from rank 0's
weights and averages the gradients after each backward, ``DistributedSampler`` gives each process its share of every
epoch's order, and ``dist.log`` prints once. With ``--sync-bn`` the batchnorm statistics cover all processes'
samples, so the run computes what one process with batch K·B computes.
"""

from __future__ import annotations

import argparse

import tinygrad_edu as tg
from tinygrad_edu import Tensor, nn, optim
from tinygrad_edu import distributed as dist
from tinygrad_edu.datasets import disc
from tinygrad_edu.nn import functional as F


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=50, help="per process")
    parser.add_argument("--sync-bn", action="store_true")
    args = parser.parse_args(argv)

    dist.init_process_group()  # data parallel: rank and world size from mpirun
    tg.manual_seed(0)
    x_train, y_train = disc(1000, seed=0)
    x_test, y_test = disc(1000, seed=1)
    model = nn.Sequential(nn.Linear(2, 32), nn.BatchNorm1d(32), nn.ReLU(),
                          nn.Linear(32, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 2))
    if args.sync_bn:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    ddp = dist.DistributedDataParallel(model)  # data parallel: same start, averaged gradients
    optimizer = optim.SGD(ddp.parameters(), lr=0.1, momentum=0.9)
    sampler = dist.DistributedSampler(len(x_train), seed=0)  # data parallel: this process's share

    for epoch in range(args.epochs):
        sampler.set_epoch(epoch)
        share = sampler.indices()
        ddp.train()
        # the "- 1" leaves out a last batch of one sample, which batchnorm cannot normalize
        for first in range(0, len(share) - 1, args.batch_size):
            rows = share[first : first + args.batch_size]
            loss = F.cross_entropy(ddp(Tensor(x_train[rows])), Tensor(y_train[rows]))
            optimizer.zero_grad()
            loss.backward()  # the gradients arrive averaged over the processes
            optimizer.step()
    ddp.eval()
    with tg.no_grad():
        test_accuracy = float((model(Tensor(x_test)).numpy().argmax(axis=1) == y_test).mean())
    stats = ddp.reducer_stats
    dist.log(f"{dist.get_world_size()} process(es) x batch {args.batch_size}: test accuracy {test_accuracy:.3f}; "
             f"{stats['reductions']} gradient all-reduces of {stats['bytes'] // max(stats['calls'], 1)} bytes, "
             f"{stats['seconds']:.2f} s in them")  # data parallel: printed once
    return test_accuracy


if __name__ == "__main__":
    main()
