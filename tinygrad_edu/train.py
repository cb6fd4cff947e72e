"""Train an MLP on an embedded data set: the training loop behind ``tinygrad-edu train``, reusable from a notebook.

    from tinygrad_edu.train import TrainConfig, train
    history = train(TrainConfig(norm="layer", activation="elu", epochs=20))
    history["test_accuracy"][-1], history["model"]

The network (``build_model``), as the course's deep MLP on the disc problem (slide 99 of "6. Going deeper": 2 -> 32,
sixteen hidden layers 32 -> 32, -> 2, each hidden Linear followed by BatchNorm1d and ReLU, cross-entropy, SGD)::

    [Linear(in, W), norm(W), activation, Dropout(p)]  x (depth + 1)     then  Linear(W', classes)

``depth`` counts the hidden W -> W layers, as the course's ``create_model(with_batchnorm, nc=32, depth=16)``. The
normalization is ``BatchNorm1d`` (``batch``), ``LayerNorm`` (``layer``) or nothing; dropout is left out when p = 0.
Activations: ``relu``, ``leaky_relu`` (slope 0.01), ``prelu`` (one learned slope per unit), ``elu``, ``crelu``
(concatenates relu(x) and relu(-x): the next layer gets 2W inputs) and ``maxout``, which replaces the block's
Linear by ``Maxout(in, W, pieces=2)`` (the max of two affine maps already is the nonlinearity; the norm follows it).

``--precision mixed16`` (Micikevicius et al. 2018): the model is converted to float16 by ``amp.MasterWeights``
(normalization layers stay float32), the optimizer steps the FP32 masters, ``amp.GradScaler`` scales the loss
(dynamic), and the loss is computed in float32 from the float16 logits. On the CPU the float16 matrix products run
the CPU float16 kernel (``tinygrad_edu/backend/kernels/matmul_cpu.py``: float32 accumulation), on CUDA cuBLAS / our
kernels.

``--distributed`` (``mpirun -n K tinygrad-edu train --distributed``): data-parallel training over K processes
(``tinygrad_edu.distributed``; MPI on the CPU, NCCL with ``--device cuda``, one GPU per process). Every process builds
the same model, ``DistributedDataParallel`` averages the gradients after each backward pass, and each process trains
on its share of every epoch's permutation (``DistributedSampler``): ``batch_size`` is per process, as in PyTorch, so
one step sees K·``batch_size`` samples, and step t of K processes of batch B takes the samples that step t of one
process of batch K·B takes. BatchNorm normalizes each process's own batch unless ``--sync-bn`` (``SyncBatchNorm``:
statistics of the whole K·B batch, so that, when K divides the training set and no process is left a last batch of
one sample, the run matches the single process of batch K·B up to round-off). Every process evaluates the whole data
sets with rank 0's running statistics; only rank 0 prints, plots and saves.
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from tinygrad_edu import amp, datasets, nn
from tinygrad_edu import distributed as dist
from tinygrad_edu.autograd import no_grad
from tinygrad_edu.backend import get_backend, get_default_device, manual_seed
from tinygrad_edu.nn import functional as F
from tinygrad_edu.optim import SGD, lr_scheduler
from tinygrad_edu.tensor import Tensor

NORMS = ("batch", "layer", "none")
ACTIVATIONS = ("relu", "leaky_relu", "prelu", "crelu", "elu", "maxout")
DATASETS = ("disc", "digits")
DEVICES = ("cpu", "cuda")
PRECISIONS = ("fp32", "mixed16")
SCHEDULES = ("cosine", "constant")

#: depth and width when not given: the course's net for disc; a shallower, wider one for the 64-pixel digits
DATASET_DEFAULTS = {"disc": {"depth": 16, "width": 32}, "digits": {"depth": 2, "width": 128}}

#: size of the disc problem's training and test sets (drawn with seeds ``seed`` and ``seed + 1``)
DISC_TRAIN, DISC_TEST = 1000, 1000


@dataclass
class TrainConfig:
    """Everything ``train`` needs; the defaults are the command line's (the course's disc net)."""

    dataset: str = "disc"
    norm: str = "batch"
    activation: str = "relu"
    dropout: float = 0.0
    depth: int | None = None  # None: the data set's default (DATASET_DEFAULTS)
    width: int | None = None
    epochs: int = 30
    batch_size: int = 100
    lr: float = 0.1
    momentum: float = 0.9
    schedule: str = "cosine"
    seed: int = 0
    device: str = "cpu"
    precision: str = "fp32"
    distributed: bool = False  # data parallel over the processes of an MPI launcher (see the module docstring)
    sync_bn: bool = False  # with distributed: SyncBatchNorm, batch statistics over every process's batch

    def __post_init__(self) -> None:
        for name, valid in (("dataset", DATASETS), ("norm", NORMS), ("activation", ACTIVATIONS),
                            ("device", DEVICES), ("precision", PRECISIONS), ("schedule", SCHEDULES)):
            if getattr(self, name) not in valid:
                raise ValueError(f"TrainConfig: {name} must be one of {', '.join(valid)}; got {getattr(self, name)!r}")
        for name, value in DATASET_DEFAULTS[self.dataset].items():
            if getattr(self, name) is None:
                setattr(self, name, value)
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"TrainConfig: dropout must be in [0, 1), got {self.dropout!r}")
        for name in ("depth",):
            if getattr(self, name) < 0:
                raise ValueError(f"TrainConfig: {name} must be >= 0, got {getattr(self, name)!r}")
        for name in ("width", "epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"TrainConfig: {name} must be >= 1, got {getattr(self, name)!r}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"TrainConfig: lr must be a positive number, got {self.lr!r}")
        if self.sync_bn and not self.distributed:
            raise ValueError("TrainConfig: sync_bn=True needs distributed=True (it shares batchnorm's statistics "
                             "between the processes of a data-parallel run)")
        if self.sync_bn and self.norm != "batch":
            raise ValueError(f"TrainConfig: sync_bn=True needs norm='batch' (there is no batchnorm to synchronize); "
                             f"got norm={self.norm!r}")


def load_data(dataset: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``x_train, y_train, x_test, y_test`` as host arrays (float32 inputs, int64 labels)."""
    if dataset == "disc":
        x_train, y_train = datasets.disc(DISC_TRAIN, seed=seed)
        x_test, y_test = datasets.disc(DISC_TEST, seed=seed + 1)
        return x_train, y_train, x_test, y_test
    if dataset == "digits":
        x_train, x_test, y_train, y_test = datasets.digits(test_fraction=0.2, seed=seed, standardize=True)
        return x_train, y_train, x_test, y_test
    raise ValueError(f"load_data: dataset must be one of {', '.join(DATASETS)}; got {dataset!r}")


def build_model(in_features: int, num_classes: int, depth: int = 16, width: int = 32, norm: str = "batch",
                activation: str = "relu", dropout: float = 0.0, device: str | None = None) -> nn.Sequential:
    """The MLP described in the module docstring, its parameters created on ``device``."""
    if norm not in NORMS:
        raise ValueError(f"build_model: norm must be one of {', '.join(NORMS)}; got {norm!r}")
    if activation not in ACTIVATIONS:
        raise ValueError(f"build_model: activation must be one of {', '.join(ACTIVATIONS)}; got {activation!r}")
    layers: list[nn.Module] = []
    fan_in = in_features
    for _ in range(depth + 1):
        layers.append(nn.Maxout(fan_in, width, pieces=2, device=device) if activation == "maxout"
                      else nn.Linear(fan_in, width, device=device))
        if norm == "batch":
            layers.append(nn.BatchNorm1d(width, device=device))
        elif norm == "layer":
            layers.append(nn.LayerNorm(width, device=device))
        fan_in = width
        if activation == "relu":
            layers.append(nn.ReLU())
        elif activation == "leaky_relu":
            layers.append(nn.LeakyReLU(0.01))
        elif activation == "prelu":
            layers.append(nn.PReLU(width, device=device))
        elif activation == "elu":
            layers.append(nn.ELU())
        elif activation == "crelu":
            layers.append(nn.CReLU(dim=1))
            fan_in = 2 * width
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(fan_in, num_classes, device=device))
    return nn.Sequential(*layers)


def check_writable(path: str | os.PathLike) -> None:
    """Raise OSError if a file cannot be written at ``path`` (its folder missing or read-only, or it is a folder):
    called before training so that a bad ``--save`` fails at once, not after the work."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise OSError(f"cannot write {path!r}: it is a directory")
    if not os.path.isdir(folder):
        raise OSError(f"cannot write {path!r}: directory {folder!r} does not exist")
    try:  # os.access is not enough (root, ACLs, read-only mounts): create and remove a file there
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".tinygrad-edu-probe-")
    except OSError as exc:
        raise OSError(f"cannot write {path!r}: directory {folder!r} is not writable ({exc.strerror})") from exc
    os.close(fd)
    os.remove(probe)


def save_checkpoint(path: str | os.PathLike, state: dict[str, np.ndarray]) -> None:
    """Write ``state`` (name -> array) as an ``.npz`` at ``path`` atomically: to a temporary file in the same folder,
    then ``os.replace``, so a crash never leaves a half-written checkpoint. ``path`` is used as given (numpy's
    ``savez`` would append ``.npz`` to a name without it; writing through a file object does not)."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **state)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def load_checkpoint(path: str | os.PathLike, model: nn.Module) -> None:
    """Load an ``.npz`` written by ``save_checkpoint`` (or ``--save``) into ``model`` (``load_state_dict``)."""
    with np.load(path) as data:
        model.load_state_dict({name: data[name] for name in data.files})


def _forward(model: nn.Module, x: Tensor, half: bool) -> Tensor:
    """Logits in float32: a mixed-precision model reads float16 inputs and its float16 logits are cast back."""
    return model(x.half()).float() if half else model(x)


def evaluate(model: nn.Module, x: Tensor, y: Tensor, half: bool = False, batch_size: int = 1000
             ) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``model`` in evaluation mode (restores the mode it had)."""
    was_training = model.training
    model.eval()
    total_loss, correct, n = 0.0, 0, x.shape[0]
    try:
        with no_grad():
            for first in range(0, n, batch_size):
                xb, yb = x[first : first + batch_size], y[first : first + batch_size]
                logits = _forward(model, xb, half)
                total_loss += F.cross_entropy(logits, yb, reduction="sum").item()
                correct += int((logits.numpy().argmax(axis=1) == yb.numpy()).sum())
    finally:
        model.train(was_training)
    return total_loss / n, correct / n


def join_process_group(config: TrainConfig) -> str:
    """For ``config.distributed``: join the launcher's processes (or reuse the group already joined) and return the
    device this process trains on (with NCCL, the GPU ``init_process_group`` gave it)."""
    if not dist.is_initialized():
        dist.init_process_group("nccl" if config.device == "cuda" else "mpi")
    if config.device == "cuda" and get_default_device().startswith("cuda"):
        return get_default_device()  # "cuda:<local rank modulo the GPU count>"
    return config.device


def train(config: TrainConfig | None = None, progress: bool = False, **overrides: Any) -> dict[str, Any]:
    """Train the MLP of ``config`` (a ``TrainConfig``; keyword overrides allowed) and return its history.

    Each epoch draws a permutation of the training set (``numpy.random.default_rng(seed + epoch)``), runs SGD with
    momentum over its minibatches, then evaluates loss and accuracy on the whole training and test sets in
    evaluation mode (batchnorm's running statistics, no dropout). With ``progress=True`` a tqdm bar on stderr counts
    the steps and shows the last epoch's loss and accuracies.

    ``distributed=True``: data parallel over the processes the MPI launcher started (see the module docstring);
    every process must call ``train`` with the same config. Each takes every K-th sample of the permutation
    (``DistributedSampler``) in minibatches of ``batch_size``; only rank 0 shows the progress bar.

    Returns a dict: ``train_loss``, ``train_accuracy``, ``test_loss``, ``test_accuracy`` (one value per epoch),
    ``seconds`` (training time, evaluation included), ``config`` (as a dict, with ``world_size`` and
    ``global_batch_size`` = world_size x batch_size added), ``world_size`` and ``global_batch_size`` again,
    ``model`` (the trained ``nn.Sequential``, not wrapped), ``master`` (the ``amp.MasterWeights`` for mixed16, else
    None), ``state_dict`` (what ``--save`` writes: the model's state, FP32 master values for mixed16); for mixed16,
    ``loss_scale`` and ``skipped_steps`` (steps the GradScaler skipped for inf/NaN gradients); when distributed,
    ``allreduce_seconds`` (time in the gradient all-reduce, waiting for the slowest process included).
    """
    config = TrainConfig(**{**asdict(config or TrainConfig()), **overrides})
    device = join_process_group(config) if config.distributed else config.device
    backend = get_backend(device)  # raises DeviceUnavailableError before any work
    device = backend.name  # "cpu", "cuda:0"
    half = config.precision == "mixed16"
    world_size = dist.get_world_size() if config.distributed else 1
    main_process = dist.is_main_process() if config.distributed else True
    manual_seed(config.seed)  # every process builds the same model (DistributedDataParallel sends rank 0's anyway)
    x_train_np, y_train_np, x_test_np, y_test_np = load_data(config.dataset, config.seed)
    num_classes = int(max(y_train_np.max(), y_test_np.max())) + 1
    x_train, y_train = Tensor(x_train_np, device=device), Tensor(y_train_np, device=device)
    x_test, y_test = Tensor(x_test_np, device=device), Tensor(y_test_np, device=device)

    model = build_model(x_train_np.shape[1], num_classes, config.depth, config.width, config.norm,
                        config.activation, config.dropout, device=device)
    master = amp.MasterWeights(model) if half else None
    if config.sync_bn:  # after MasterWeights, which keeps BatchNorm1d in float32; the parameters stay the same
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    # the training steps call ``net``: the model itself, or the model wrapped to average gradients across processes
    ddp = dist.DistributedDataParallel(model) if config.distributed else None
    net = ddp if ddp is not None else model
    if ddp is not None and dist.get_rank() > 0:  # each process its own dropout masks (rank 0 keeps the usual stream)
        manual_seed(config.seed + dist.get_rank())
    optimizer = SGD(master.parameters() if half else model.parameters(), lr=config.lr, momentum=config.momentum)
    scaler = amp.GradScaler(enabled=half)  # distributed: every process sees the same averaged gradients, so all skip
    # cosine: η from lr down to 0 over the run, one value per epoch (one cycle of SGDR, no restart)
    scheduler = lr_scheduler.CosineAnnealingWarmRestarts(optimizer, T_0=config.epochs) \
        if config.schedule == "cosine" else None

    n = len(x_train_np)
    sampler = dist.DistributedSampler(n, seed=config.seed, shuffle=True) if config.distributed else None
    per_process = len(sampler) if sampler is not None else n  # samples this process trains on per epoch
    # batchnorm cannot normalize a batch of one sample (PyTorch raises): a last batch of one is left out (of each
    # process's share when distributed: every process has as many samples, so all take the same number of steps)
    last = per_process - 1 if config.norm == "batch" and per_process % config.batch_size == 1 else per_process
    steps_per_epoch = math.ceil(last / config.batch_size)
    history: dict[str, Any] = {key: [] for key in ("train_loss", "train_accuracy", "test_loss", "test_accuracy")}
    skipped = 0
    bar = None
    if progress and main_process:
        from tqdm.auto import tqdm

        processes = f" x{world_size}" if config.distributed else ""
        bar = tqdm(total=config.epochs * steps_per_epoch, unit="step", dynamic_ncols=True, leave=True,
                   desc=f"{config.dataset} {config.device}{processes} {config.precision}")
    start = time.perf_counter()
    try:
        for epoch in range(config.epochs):
            net.train()
            if sampler is not None:
                sampler.set_epoch(epoch)
                order = sampler.indices()  # positions rank, rank + K, rank + 2K, ... of the epoch's permutation
            else:
                order = np.random.default_rng(config.seed + epoch).permutation(n)
            for first in range(0, last, config.batch_size):
                rows = order[first : min(first + config.batch_size, last)]
                xb, yb = Tensor(x_train_np[rows], device=device), Tensor(y_train_np[rows], device=device)
                optimizer.zero_grad()
                if half:  # float16 overflows while the scale is too large are expected: that step is skipped
                    with np.errstate(over="ignore", invalid="ignore"):
                        loss = F.cross_entropy(_forward(net, xb, half), yb)
                        scaler.scale(loss).backward()
                    master.copy_grads_to_master()
                    scale = scaler.get_scale()
                    scaler.step(optimizer)  # skipped when a gradient is inf/NaN; then update() halves the scale
                    scaler.update()
                    skipped += scaler.get_scale() < scale
                    master.copy_master_to_model()
                else:
                    loss = F.cross_entropy(net(xb), yb)
                    loss.backward()  # distributed: .grad then holds the average over the processes
                    optimizer.step()
                if bar is not None:
                    bar.update(1)
            if scheduler is not None:
                scheduler.step()
            if world_size > 1:  # evaluate with rank 0's running statistics, as the next training forward would
                ddp.sync_buffers()
            for split, (x, y) in (("train", (x_train, y_train)), ("test", (x_test, y_test))):
                split_loss, split_accuracy = evaluate(model, x, y, half)
                history[f"{split}_loss"].append(split_loss)
                history[f"{split}_accuracy"].append(split_accuracy)
            if bar is not None:
                bar.set_postfix({"loss": f"{history['train_loss'][-1]:.4f}",
                                 "train_acc": f"{history['train_accuracy'][-1]:.3f}",
                                 "test_acc": f"{history['test_accuracy'][-1]:.3f}"}, refresh=True)
    finally:
        if bar is not None:
            bar.close()
    history["seconds"] = time.perf_counter() - start
    history["world_size"], history["global_batch_size"] = world_size, world_size * config.batch_size
    history["config"] = {**asdict(config), "world_size": world_size, "global_batch_size": world_size * config.batch_size}
    history["model"], history["master"] = model, master
    history["state_dict"] = master.state_dict() if half else model.state_dict()
    if half:
        history["loss_scale"], history["skipped_steps"] = scaler.get_scale(), skipped
    if ddp is not None:
        history["allreduce_seconds"] = ddp.reducer_stats["seconds"]
    return history


def save_checkpoint_from_rank0(path: str | os.PathLike, state: dict[str, np.ndarray]) -> None:
    """``save_checkpoint`` in a data-parallel run: rank 0 writes the file, the other processes wait until it is
    complete, and raise rank 0's error too if it failed (rather than carry on, or wait forever)."""
    dist.run_on_main_process(save_checkpoint, path, state)


def plot_history(history: dict[str, Any], path: str | os.PathLike) -> None:
    """Save the loss and accuracy curves (train and test, per epoch) as an image at ``path`` (matplotlib, Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = np.arange(1, len(history["train_loss"]) + 1)
    config = history.get("config", {})
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    for split, style in (("train", "-"), ("test", "--")):
        ax_loss.plot(epochs, history[f"{split}_loss"], style, label=split)
        ax_acc.plot(epochs, history[f"{split}_accuracy"], style, label=split)
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(True, alpha=0.3)
        ax.legend()
    if config:
        fig.suptitle(f"{config['dataset']}: depth {config['depth']}, width {config['width']}, norm {config['norm']}, "
                     f"{config['activation']}, dropout {config['dropout']:g}, {config['precision']}, {config['device']}")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


__all__ = ["ACTIVATIONS", "DATASETS", "NORMS", "PRECISIONS", "TrainConfig", "build_model", "check_writable",
           "evaluate", "join_process_group", "load_checkpoint", "load_data", "plot_history", "save_checkpoint",
           "save_checkpoint_from_rank0", "train"]
