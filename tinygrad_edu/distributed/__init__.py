"""``tinygrad_edu.distributed``: data-parallel training over MPI processes (CPU) and NCCL (GPUs).

    # mpirun -n 2 python script.py        (each process runs the whole script)
    from tinygrad_edu import distributed as dist, nn

    dist.init_process_group()                                 # rank and size from the launcher
    model = nn.SyncBatchNorm.convert_sync_batchnorm(model)    # optional: statistics over all processes' batches
    model = dist.DistributedDataParallel(model)               # rank 0's weights everywhere; averaged gradients
    sampler = dist.DistributedSampler(len(x_train), seed=0)   # this process's share of the data set
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        ...                                                   # the usual loop, on this process's indices
    dist.save(model.module.state_dict(), "model.npz")         # written once, by rank 0
    dist.log("done")                                          # printed once, by rank 0

The communication itself is MPI's (``mpi4py``) and NCCL's (``cupy.cuda.nccl``): ``communicator.py`` only calls them.
Names and semantics follow ``torch.distributed`` and ``torch.nn.parallel.DistributedDataParallel``.
"""

from tinygrad_edu.distributed.communicator import (
    Communicator,
    LocalCommunicator,
    MPICommunicator,
    NCCLCommunicator,
    find_mpiexec,
    launched_by_mpi,
)
from tinygrad_edu.distributed.parallel import DistributedDataParallel, GradientSink
from tinygrad_edu.distributed.process_group import (
    all_reduce,
    barrier,
    broadcast,
    broadcast_object,
    destroy_process_group,
    get_backend,
    get_local_rank,
    get_rank,
    get_world_size,
    init_process_group,
    is_available,
    is_initialized,
    is_main_process,
    log,
    run_on_main_process,
    save,
)
from tinygrad_edu.distributed.sampler import DistributedSampler

__all__ = [
    "Communicator", "DistributedDataParallel", "DistributedSampler", "GradientSink", "LocalCommunicator",
    "MPICommunicator", "NCCLCommunicator", "all_reduce", "barrier", "broadcast", "broadcast_object",
    "destroy_process_group", "find_mpiexec", "get_backend", "get_local_rank", "get_rank", "get_world_size",
    "init_process_group", "is_available", "is_initialized", "is_main_process", "launched_by_mpi", "log",
    "run_on_main_process", "save",
]
