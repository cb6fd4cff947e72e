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
kernels. ``--precision mixed-bf16``: the same with bfloat16 (``amp.MasterWeights(model, dtype=bfloat16)``, CPU only):
float32's exponent range, so no loss scaling. ``--precision dfp16`` (Das et al. 2018): every Linear's three matrix
products run on INT16 mantissas with one shared exponent per tensor, summed in INT32 (``amp.dfp16.convert``); the
weights stay float32 and are what the optimizer steps, no loss scaling.

``--distributed`` (``mpirun -n K tinygrad-edu train --distributed``): data-parallel training over K processes
(``tinygrad_edu.distributed``; MPI on the CPU, NCCL with ``--device cuda``, one GPU per process). Every process builds
the same model, ``DistributedDataParallel`` averages the gradients after each backward pass, and each process trains
on its share of every epoch's permutation (``DistributedSampler``): ``batch_size`` is per process, as in PyTorch, so
one step sees K·``batch_size`` samples, and step t of K processes of batch B takes the samples that step t of one
process of batch K·B takes. BatchNorm normalizes each process's own batch unless ``--sync-bn`` (``SyncBatchNorm``:
statistics of the whole K·B batch, so that, when K divides the training set and no process is left a last batch of
one sample, the run matches the single process of batch K·B up to round-off). Every process evaluates the whole data
sets with rank 0's running statistics; only rank 0 prints, plots and saves.

The device: ``TrainConfig.device`` (``--device``) if given, else the default device (``set_default_device``, else
``$TINYGRAD_EDU_DEVICE``, else ``"cpu"``), chosen and checked when ``train`` starts, before any work; every tensor of
the run (the model's, the data's, the library's own) goes there.

Checkpoints (``--save FILE``, ``save_checkpoint``): one file in the format of ``tinygrad_edu.save`` (an ``.npz``
with a JSON manifest; atomic, no pickle), which ``tinygrad_edu.load`` reads as a dict::

    {"kind": "tinygrad_edu.train", "version": 1,
     "config": {...},                 # the TrainConfig as a plain dict (device None: the default device)
     "device": "cpu",                 # the device the run trained on
     "in_features": 2, "num_classes": 2,
     "model": {name: array},          # the model's state_dict (for mixed16: the FP32 master values)
     "optimizer": {...}, "scheduler": {...} or None, "scaler": {...} or None (mixed16),
     "rng": {...} or None,            # get_rng_state(device): the dropout masks to come
     "epoch": 30, "metrics": {"train_loss": [...], "train_accuracy": [...], "test_loss": [...], ...},
     "world_size": 1}

``load_checkpoint(path)`` builds the model from the saved config and loads the weights into it:
``model, config, checkpoint = load_checkpoint("disc.ckpt")``; ``load_checkpoint(path, model)`` loads them into a
model of your own. Both raise ``tinygrad_edu.CheckpointError`` for a file they cannot use, saying why: not a
checkpoint (empty, text, truncated, corrupted, another zip or .npz), the plain ``.npz`` that ``--save`` wrote
before this format (``convert_legacy_checkpoint`` converts it), or weights that do not fit the model (naming the
parameter and both shapes).
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, NamedTuple

import numpy as np

from tinygrad_edu import amp, datasets, dtypes, nn, serialization, viz
from tinygrad_edu import distributed as dist
from tinygrad_edu.autograd import no_grad
from tinygrad_edu.backend import (
    Backend,
    canonical_device,
    default_device,
    get_backend,
    get_default_device,
    get_rng_state,
    manual_seed,
)
from tinygrad_edu.jit import jit
from tinygrad_edu.monitor import GradientFlowMonitor
from tinygrad_edu.nn import functional as F
from tinygrad_edu.optim import SGD, lr_scheduler
from tinygrad_edu.tensor import Tensor

NORMS = ("batch", "layer", "none")
ACTIVATIONS = ("relu", "leaky_relu", "prelu", "crelu", "elu", "maxout")
DATASETS = ("disc", "digits")
#: the device strings ``TrainConfig.device`` and ``--device`` take (``None``/not given: the default device)
DEVICES = ("cpu", "cuda", "cuda:N", "strict")
PRECISIONS = ("fp32", "mixed16", "mixed-bf16", "dfp16")
#: the storage dtype of the mixed-precision modes (their models run in it, through FP32 master weights)
LOW_PRECISION = {"mixed16": "float16", "mixed-bf16": "bfloat16"}
SCHEDULES = ("cosine", "constant")

#: depth and width when not given: the course's net for disc; a shallower, wider one for the 64-pixel digits
DATASET_DEFAULTS = {"disc": {"depth": 16, "width": 32}, "digits": {"depth": 2, "width": 128}}

#: size of the disc problem's training and test sets (drawn with seeds ``seed`` and ``seed + 1``)
DISC_TRAIN, DISC_TEST = 1000, 1000

#: the ``kind`` entry of a checkpoint written by ``save_checkpoint`` (``--save``), and the layout's version
CHECKPOINT_KIND, CHECKPOINT_VERSION = "tinygrad_edu.train", 1


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
    device: str | None = None  # None: the default device (set_default_device, else $TINYGRAD_EDU_DEVICE, else cpu)
    precision: str = "fp32"
    distributed: bool = False  # data parallel over the processes of an MPI launcher (see the module docstring)
    sync_bn: bool = False  # with distributed: SyncBatchNorm, batch statistics over every process's batch
    jit: bool = False  # capture the training step once and replay it (tinygrad_edu.jit): the same numbers, faster

    def __post_init__(self) -> None:
        for name, valid in (("dataset", DATASETS), ("norm", NORMS), ("activation", ACTIVATIONS),
                            ("precision", PRECISIONS), ("schedule", SCHEDULES)):
            if getattr(self, name) not in valid:
                raise ValueError(f"TrainConfig: {name} must be one of {', '.join(valid)}; got {getattr(self, name)!r}")
        if self.device is not None:  # checked, kept as given ("cuda" lets a data-parallel run pick each rank's GPU)
            try:
                canonical_device(self.device)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"TrainConfig: device must be one of {', '.join(DEVICES)} or None (the default "
                                 f"device); {exc}") from None
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
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"TrainConfig: seed must be a non-negative integer, got {self.seed!r}")
        if self.norm == "batch" and self.batch_size == 1 and not self.distributed:
            raise ValueError("TrainConfig: batch_size=1 with norm='batch': batch normalization needs more than one "
                             "sample per batch in training (a batch of one has no variance); use a larger batch or "
                             "norm='layer'")
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


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or infinite (the learning rate too large, most often): ``train`` stops there."""


def check_plot_path(path: str | os.PathLike) -> None:
    """Raise ValueError if ``path`` does not name an image format matplotlib can write (by its extension), OSError
    if it cannot be written: called before training so that a bad ``--plot`` fails at once."""
    check_writable(path)
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.backend_bases import FigureCanvasBase

    formats = sorted(FigureCanvasBase.get_supported_filetypes())
    extension = os.path.splitext(os.fspath(path))[1].lstrip(".").lower()
    if extension not in formats:
        raise ValueError(f"cannot plot to {os.fspath(path)!r}: its extension {extension!r} is not an image format "
                         f"matplotlib writes (use one of: {', '.join(formats)})")


def check_writable(path: str | os.PathLike) -> None:
    """Raise OSError if a file cannot be written at ``path`` (empty, its folder missing or read-only, or it is a
    folder): called before training so that a bad ``--save`` fails at once, not after the work."""
    path = os.fspath(path)
    if not path.strip():
        raise OSError("the file name is empty")
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


#: input features and classes of each data set: the model ``load_checkpoint`` builds for a checkpoint's config
DATASET_SHAPES = {"disc": (2, 2), "digits": (64, 10)}


class LoadedCheckpoint(NamedTuple):
    """What ``load_checkpoint`` returns: ``model, config, checkpoint = load_checkpoint(path)``."""

    model: nn.Module
    """The model, its weights loaded: built from the saved config, or the one passed to ``load_checkpoint``."""
    config: TrainConfig | None
    """The saved ``TrainConfig`` (``None`` for a checkpoint saved from a bare module without a config)."""
    checkpoint: dict[str, Any]
    """Everything the file holds, as ``tinygrad_edu.load`` returns it (layout: the module docstring)."""


def _config_dict(config: TrainConfig | Mapping[str, Any] | None) -> dict[str, Any] | None:
    """``config`` as the plain dict a checkpoint stores (a mapping is checked by building a ``TrainConfig``)."""
    if config is None:
        return None
    if isinstance(config, Mapping):
        config = TrainConfig(**config)
    if not isinstance(config, TrainConfig):
        raise TypeError(f"save_checkpoint: config must be a TrainConfig, a dict of its fields or None, got "
                        f"{type(config).__name__}")
    return asdict(config)


def _is_state_dict(source: Any) -> bool:
    """True for a mapping of names to arrays or tensors (a ``state_dict()``)."""
    return isinstance(source, Mapping) and all(
        isinstance(name, str) and isinstance(value, (np.ndarray, np.generic, Tensor)) for name, value in source.items())


def _checkpoint_of(source: Any, config: TrainConfig | Mapping[str, Any] | None) -> dict[str, Any]:
    """The checkpoint dict ``save_checkpoint`` writes for ``source`` (see there)."""
    if isinstance(source, Mapping) and source.get("kind") == CHECKPOINT_KIND:
        checkpoint = dict(source)
        if config is not None:
            checkpoint["config"] = _config_dict(config)
        return checkpoint
    if isinstance(source, Mapping) and isinstance(source.get("checkpoint"), Mapping) and "train_loss" in source:
        return _checkpoint_of(source["checkpoint"], config)  # train()'s history
    if isinstance(source, nn.Module):
        state = source.state_dict()
    elif _is_state_dict(source):
        state = dict(source)
    else:
        raise TypeError(f"save_checkpoint: cannot save a {type(source).__name__}: expected train()'s history, a "
                        f"checkpoint dict (history['checkpoint']), a Module or its state_dict()")
    config_dict = _config_dict(config)
    shape = DATASET_SHAPES[config_dict["dataset"]] if config_dict is not None else (None, None)
    return {"kind": CHECKPOINT_KIND, "version": CHECKPOINT_VERSION, "config": config_dict, "device": None,
            "in_features": shape[0], "num_classes": shape[1], "model": state, "optimizer": None, "scheduler": None,
            "scaler": None, "rng": None, "epoch": None, "metrics": None, "world_size": None}


def save_checkpoint(path: str | os.PathLike, source: Any, config: TrainConfig | Mapping[str, Any] | None = None
                    ) -> None:
    """Write a checkpoint to ``path`` in ``tinygrad_edu.save``'s format (atomic: a temporary file in the same folder,
    then ``os.replace``; the file gets the mode ``open()`` would give it; no pickle). ``path`` is used as given.

    ``source``: ``train()``'s history or its ``history["checkpoint"]`` (everything: model, optimizer, scheduler,
    loss scaler, RNG state, config, metrics; what ``--save`` writes), or an ``nn.Module``, or a ``state_dict()``
    (then the file holds the weights and ``config`` if given, which ``load_checkpoint(path)`` needs to build the
    model). ``config`` (a ``TrainConfig`` or a dict of its fields) replaces the saved one. Anything else raises
    ``TypeError`` before the file is touched. The layout is in the module docstring.
    """
    serialization.save(_checkpoint_of(source, config), path)


def save_checkpoint_from_rank0(path: str | os.PathLike, source: Any,
                               config: TrainConfig | Mapping[str, Any] | None = None) -> None:
    """``save_checkpoint`` in a data-parallel run: rank 0 writes the file, the other processes wait until it is
    complete, and raise rank 0's error too if it failed (rather than carry on, or wait forever)."""
    dist.run_on_main_process(save_checkpoint, path, source, config)


def _config_from(path: str, saved: Any) -> TrainConfig | None:
    """The ``TrainConfig`` of a checkpoint's ``config`` entry; ``CheckpointError`` if it is not a valid one."""
    if saved is None:
        return None
    if not isinstance(saved, Mapping):
        raise serialization.CheckpointError(f"load_checkpoint: {path!r} has a config entry of type "
                                            f"{type(saved).__name__}, not a dict of TrainConfig's fields")
    unknown = sorted(set(saved) - {f.name for f in fields(TrainConfig)})
    if unknown:
        raise serialization.CheckpointError(f"load_checkpoint: {path!r} has config fields this tinygrad_edu does not "
                                            f"know: {', '.join(unknown)} (written by a newer version?)")
    try:
        return TrainConfig(**saved)
    except (TypeError, ValueError) as exc:
        raise serialization.CheckpointError(f"load_checkpoint: {path!r} has an invalid config: {exc}") from None


def _describe(config: TrainConfig | None, whose: str) -> str:
    if config is None:
        return ""
    return (f" ({whose}: {config.dataset}, depth {config.depth}, width {config.width}, norm {config.norm}, "
            f"activation {config.activation})")


def _load_weights(path: str, state: Mapping[str, Any], model: nn.Module, config: TrainConfig | None,
                  who: str = "load_checkpoint") -> None:
    """``model.load_state_dict(state)`` after checking names and shapes: ``CheckpointError`` naming the parameter
    and both shapes (or the names that differ), with the model unchanged."""
    whose = "the config given" if who == "convert_legacy_checkpoint" else "the checkpoint's config"
    target = model.state_dict()
    missing, unexpected = [k for k in target if k not in state], [k for k in state if k not in target]
    if missing or unexpected:
        def names(keys: list[str]) -> str:
            return ", ".join(keys[:4]) + (f", ... ({len(keys)} in all)" if len(keys) > 4 else "")

        parts = ([f"the model has {names(missing)}, which the checkpoint lacks"] if missing else []) + \
                ([f"the checkpoint has {names(unexpected)}, which the model lacks"] if unexpected else [])
        raise serialization.CheckpointError(f"{who}: {path!r} does not fit the model: {'; '.join(parts)}"
                                            f"{_describe(config, whose)}")
    for name, value in target.items():
        saved_shape, model_shape = tuple(np.shape(state[name])), tuple(value.shape)
        if saved_shape != model_shape:
            raise serialization.CheckpointError(f"{who}: {path!r} does not fit the model: {name} has shape "
                                                f"{saved_shape} in the checkpoint, {model_shape} in the model"
                                                f"{_describe(config, whose)}")
    try:
        model.load_state_dict(dict(state))
    except (KeyError, TypeError, ValueError) as exc:  # e.g. an integer array for a float parameter
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        raise serialization.CheckpointError(f"{who}: {path!r} does not fit the model: {message}") from None


def load_checkpoint(path: str | os.PathLike, model: nn.Module | None = None, *, device: str | None = None
                    ) -> LoadedCheckpoint:
    """Read a checkpoint of ``save_checkpoint`` (``tinygrad-edu train --save``) and load its weights into a model.

    Without ``model``, the model is built from the saved config (``build_model``) on ``device`` (default: the
    default device); with ``model``, the weights go into it (``load_state_dict``: cast to its dtypes, so a float16
    model takes the FP32 masters of a mixed16 run). Returns ``LoadedCheckpoint(model, config, checkpoint)``::

        model, config, checkpoint = load_checkpoint("disc.ckpt")
        load_checkpoint("disc.ckpt", my_model)

    Raises ``tinygrad_edu.CheckpointError`` saying why for a file it cannot use: missing, a directory, empty, not a
    zip archive, truncated, corrupted, another .npz or zip, the plain ``.npz`` that ``--save`` wrote before this
    format (convert it with ``convert_legacy_checkpoint``), a ``tinygrad_edu.save`` file that is not a training
    checkpoint, or weights that do not fit ``model`` (the parameter and both shapes); ``model`` is then unchanged.
    """
    path = os.fspath(path)
    checkpoint = serialization.load(path)  # CheckpointError for any file it cannot read, saying why
    if not isinstance(checkpoint, dict) or checkpoint.get("kind") != CHECKPOINT_KIND:
        raise serialization.CheckpointError(
            f"load_checkpoint: {path!r} is a tinygrad_edu.save file, but not a training checkpoint (it has no "
            f"'kind': {CHECKPOINT_KIND!r} entry, which save_checkpoint and `tinygrad-edu train --save` write); read "
            f"it with tinygrad_edu.load")
    version = checkpoint.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= CHECKPOINT_VERSION:
        raise serialization.CheckpointError(f"load_checkpoint: {path!r} has layout version {version!r}; this "
                                            f"tinygrad_edu reads versions 1 to {CHECKPOINT_VERSION}")
    state = checkpoint.get("model")
    if not _is_state_dict(state):
        raise serialization.CheckpointError(f"load_checkpoint: {path!r} has no model weights (its 'model' entry is "
                                            f"not a dict of name -> array)")
    config = _config_from(path, checkpoint.get("config"))
    if model is None:
        if config is None:
            raise serialization.CheckpointError(
                f"load_checkpoint: {path!r} holds no config to build the model from (it was saved from a bare "
                f"module or state_dict): pass the model to load into, load_checkpoint(path, model)")
        default_in, default_classes = DATASET_SHAPES[config.dataset]
        model = build_model(checkpoint.get("in_features") or default_in,
                            checkpoint.get("num_classes") or default_classes, config.depth, config.width,
                            config.norm, config.activation, config.dropout, device=device)
    _load_weights(path, state, model, config)
    return LoadedCheckpoint(model, config, checkpoint)


def convert_legacy_checkpoint(source: str | os.PathLike, destination: str | os.PathLike,
                              config: TrainConfig | None = None) -> LoadedCheckpoint:
    """Convert the plain ``.npz`` that ``tinygrad-edu train --save`` wrote before checkpoints had one format (the
    model's state_dict, one array per name) into a checkpoint at ``destination``.

    ``config``: the ``TrainConfig`` of the run that wrote it (default: ``TrainConfig()``, the command line's
    defaults: the disc net of depth 16, width 32). The weights are loaded into a model built from it first, so a
    config that does not match raises ``CheckpointError`` naming the parameter and both shapes, and nothing is
    written. The new file holds the weights and the config: enough to evaluate (``load_checkpoint``), not to resume
    (the old file had no optimizer or RNG state). Returns what ``load_checkpoint(destination)`` would.
    """
    source = os.fspath(source)
    arrays = serialization.load_arrays(source)  # the file's checks and errors, as tinygrad_edu.load
    if serialization.MANIFEST_KEY in arrays:
        raise serialization.CheckpointError(f"convert_legacy_checkpoint: {source!r} already is a tinygrad_edu "
                                            f"checkpoint: nothing to convert (load_checkpoint reads it)")
    config = config if config is not None else TrainConfig()
    in_features, num_classes = DATASET_SHAPES[config.dataset]
    model = build_model(in_features, num_classes, config.depth, config.width, config.norm, config.activation,
                        config.dropout, device="cpu")
    _load_weights(source, arrays, model, config, who="convert_legacy_checkpoint")
    checkpoint = _checkpoint_of(arrays, config)
    save_checkpoint(destination, checkpoint)
    return LoadedCheckpoint(model, config, checkpoint)


def _forward(model: nn.Module, x: Tensor, low: Any) -> Tensor:
    """Logits in float32: a mixed-precision model (``low``: its float16 or bfloat16 dtype, else None) reads inputs in
    that dtype and its logits are cast back."""
    return model(x.astype(low)).float() if low is not None else model(x)


def evaluate(model: nn.Module, x: Tensor, y: Tensor, half: Any = False, batch_size: int = 1000
             ) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``model`` in evaluation mode (restores the mode it had). ``half``: True (a
    float16 model), a low-precision dtype (float16, bfloat16) the model runs in, or False (float32)."""
    half = np.float16 if half is True else (half or None)
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
    device this process trains on (``config.device``, else the default device; with CUDA, NCCL and the GPU
    ``init_process_group`` gave this process)."""
    requested = config.device if config.device is not None else get_default_device()
    cuda = canonical_device(requested).startswith("cuda")
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "mpi")
    if cuda and get_default_device().startswith("cuda"):
        return get_default_device()  # "cuda:<local rank modulo the GPU count>"
    return requested


def select_backend(config: TrainConfig) -> Backend:
    """The backend ``train(config)`` runs on: ``config.device``, else the default device (``set_default_device``,
    else ``$TINYGRAD_EDU_DEVICE``, else cpu); joins the process group first when ``config.distributed``. Raises
    before any work: ``ValueError`` for a bad device string (naming ``TINYGRAD_EDU_DEVICE`` when it came from
    there), ``DeviceUnavailableError`` for a device that cannot be used, ``ValueError`` for mixed16 on a device
    without float16."""
    backend = get_backend(join_process_group(config) if config.distributed else config.device)
    low = LOW_PRECISION.get(config.precision)
    if low is not None and not backend.has_dtype(getattr(dtypes, low)):
        raise ValueError(f"train: device {backend.name!r} has no {low}; use precision='fp32'")
    return backend


def train(config: TrainConfig | None = None, progress: bool = False, draw_graph: str | os.PathLike | None = None,
          monitor: str | os.PathLike | bool | None = None, **overrides: Any) -> dict[str, Any]:
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
    ``allreduce_seconds`` (time in the gradient all-reduce, waiting for the slowest process included);
    ``device`` (where it trained: ``"cpu"``, ``"cuda:0"``, ...); ``optimizer``, ``scheduler`` (None for a constant
    schedule) and ``scaler``, as they are at the end; ``checkpoint``, the dict that ``--save`` writes
    (``save_checkpoint(path, history)``; its layout is in the module docstring).

    The device is ``config.device``, else the default device (``$TINYGRAD_EDU_DEVICE``, ...), chosen and checked
    before any work (``select_backend``); every tensor of the run goes there, the library's own included.
    """
    config = TrainConfig(**{**asdict(config or TrainConfig()), **overrides})
    backend = select_backend(config)  # raises ValueError or DeviceUnavailableError before any work
    with default_device(backend.name):  # "cpu", "strict", "cuda:0"
        return _train(config, backend.name, progress, draw_graph, monitor)


def _train(config: TrainConfig, device: str, progress: bool, draw_graph: Any = None, monitor: Any = None
           ) -> dict[str, Any]:
    """The body of ``train`` on ``device`` (chosen and checked)."""
    half = config.precision in LOW_PRECISION  # a model in float16 or bfloat16, through FP32 master weights
    low = getattr(dtypes, LOW_PRECISION[config.precision]) if half else None
    world_size = dist.get_world_size() if config.distributed else 1
    main_process = dist.is_main_process() if config.distributed else True
    manual_seed(config.seed)  # every process builds the same model (DistributedDataParallel sends rank 0's anyway)
    x_train_np, y_train_np, x_test_np, y_test_np = load_data(config.dataset, config.seed)
    num_classes = int(max(y_train_np.max(), y_test_np.max())) + 1
    x_train, y_train = Tensor(x_train_np, device=device), Tensor(y_train_np, device=device)
    x_test, y_test = Tensor(x_test_np, device=device), Tensor(y_test_np, device=device)

    model = build_model(x_train_np.shape[1], num_classes, config.depth, config.width, config.norm,
                        config.activation, config.dropout, device=device)
    if config.precision == "dfp16":  # every Linear's products in DFP16 (the weights stay float32: their own masters)
        model = amp.dfp16.convert(model)
    master = amp.MasterWeights(model, dtype=low) if half else None
    if config.sync_bn:  # after MasterWeights, which keeps BatchNorm1d in float32; the parameters stay the same
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    # the training steps call ``net``: the model itself, or the model wrapped to average gradients across processes
    ddp = dist.DistributedDataParallel(model) if config.distributed else None
    net = ddp if ddp is not None else model
    if ddp is not None and dist.get_rank() > 0:  # each process its own dropout masks (rank 0 keeps the usual stream)
        manual_seed(config.seed + dist.get_rank())
    optimizer = SGD(master.parameters() if half else model.parameters(), lr=config.lr, momentum=config.momentum)
    # float16 needs loss scaling (its exponent range), bfloat16 not; distributed: every process sees the same averaged
    # gradients, so all skip together
    scaler = amp.GradScaler(enabled=half and master.needs_loss_scaling)
    # cosine: η from lr down to 0 over the run, one value per epoch (one cycle of SGDR, no restart)
    scheduler = lr_scheduler.CosineAnnealingWarmRestarts(optimizer, T_0=config.epochs) \
        if config.schedule == "cosine" else None

    def draw(loss: Tensor) -> None:  # draw_graph: the first step's tape, before its backward frees it
        nonlocal draw_graph
        if draw_graph is not None and main_process:
            viz.draw(loss, model).render(draw_graph)
        draw_graph = None

    def step(xb: Tensor, yb: Tensor) -> Tensor:
        """One training step on the batch (xb, yb): forward, loss, backward, optimizer step."""
        optimizer.zero_grad()
        if half:  # float16 overflows while the scale is too large are expected: that step is skipped
            with np.errstate(over="ignore", invalid="ignore"):
                loss = F.cross_entropy(_forward(net, xb, low), yb)
                if draw_graph is not None:
                    draw(loss)
                scaler.scale(loss).backward()
            master.copy_grads_to_master()
            scaler.step(optimizer)  # skipped when a gradient is inf/NaN; then update() halves the scale
            scaler.update()
            master.copy_master_to_model()
        else:
            loss = F.cross_entropy(net(xb), yb)
            if draw_graph is not None:
                draw(loss)
            loss.backward()  # distributed: .grad then holds the average over the processes
            optimizer.step()
        return loss

    if config.jit:  # the same step, captured on its first calls and replayed after (the same numbers, bit for bit)
        step = jit(step)
    # monitor: per layer and epoch, activation RMS, gradient norm and relative update (GradientFlowMonitor's hooks)
    flow = GradientFlowMonitor(model) if monitor else None

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
                   desc=f"{config.dataset} {device}{processes} {config.precision}")
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
                scale = scaler.get_scale()
                step(xb, yb)
                skipped += scaler.get_scale() < scale  # a skipped step (inf/NaN gradient) halved the scale
                if bar is not None:
                    bar.update(1)
            if scheduler is not None:
                scheduler.step()
            if flow is not None:
                flow.end_epoch()
            if world_size > 1:  # evaluate with rank 0's running statistics, as the next training forward would
                ddp.sync_buffers()
            for split, (x, y) in (("train", (x_train, y_train)), ("test", (x_test, y_test))):
                split_loss, split_accuracy = evaluate(model, x, y, low or False)
                history[f"{split}_loss"].append(split_loss)
                history[f"{split}_accuracy"].append(split_accuracy)
            if bar is not None:
                bar.set_postfix({"loss": f"{history['train_loss'][-1]:.4f}",
                                 "train_acc": f"{history['train_accuracy'][-1]:.3f}",
                                 "test_acc": f"{history['test_accuracy'][-1]:.3f}"}, refresh=True)
            if not math.isfinite(history["train_loss"][-1]):  # the weights went NaN/inf: the rest would be noise
                raise TrainingDiverged(
                    f"the training loss is {history['train_loss'][-1]} after epoch {epoch + 1}: the weights are no "
                    f"longer finite (the learning rate {config.lr:g} is too large for this network, most often); "
                    f"lower it (--lr)")
    finally:
        if bar is not None:
            bar.close()
    history["seconds"] = time.perf_counter() - start
    if flow is not None:
        flow.remove()
        history["monitor"] = {"layers": flow.names, **{q: a.tolist() for q, a in flow.history.items()}}
        if not isinstance(monitor, bool) and main_process:
            flow.plot(monitor, title=f"{config.dataset}, depth {config.depth}, norm {config.norm}")
    history["world_size"], history["global_batch_size"] = world_size, world_size * config.batch_size
    history["config"] = {**asdict(config), "device": device, "world_size": world_size,
                         "global_batch_size": world_size * config.batch_size}
    history["device"] = device
    history["model"], history["master"] = model, master
    history["state_dict"] = master.state_dict() if half else model.state_dict()
    history["optimizer"], history["scheduler"], history["scaler"] = optimizer, scheduler, scaler
    if half:
        history["loss_scale"] = scaler.get_scale() if master.needs_loss_scaling else None
        history["skipped_steps"] = skipped
    if ddp is not None:
        history["allreduce_seconds"] = ddp.reducer_stats["seconds"]
    try:
        rng = get_rng_state(device)
    except NotImplementedError:  # a generator that cannot export its state (see Backend.get_rng_state)
        rng = None
    metrics = {key: list(history[key]) for key in ("train_loss", "train_accuracy", "test_loss", "test_accuracy")}
    history["checkpoint"] = {
        "kind": CHECKPOINT_KIND, "version": CHECKPOINT_VERSION, "config": asdict(config), "device": device,
        "in_features": int(x_train_np.shape[1]), "num_classes": num_classes, "model": history["state_dict"],
        "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "scaler": scaler.state_dict() if half and master.needs_loss_scaling else None, "rng": rng, "epoch": config.epochs, "metrics": metrics,
        "world_size": world_size,
    }
    return history


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


__all__ = ["ACTIVATIONS", "CHECKPOINT_KIND", "CHECKPOINT_VERSION", "DATASETS", "DATASET_SHAPES", "DEVICES",
           "LoadedCheckpoint", "NORMS", "PRECISIONS", "TrainConfig", "TrainingDiverged", "build_model", "check_plot_path", "check_writable",
           "convert_legacy_checkpoint", "evaluate", "join_process_group", "load_checkpoint", "load_data",
           "plot_history", "save_checkpoint", "save_checkpoint_from_rank0", "select_backend", "train"]
