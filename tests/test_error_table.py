"""The README's table "Errors you may meet": every row is raised by a registered example, with its class and message."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest

import tinygrad_edu as tg
import tinygrad_edu.nn.functional as F
from tinygrad_edu import distributed as dist
from tinygrad_edu import nn, optim
from tinygrad_edu.amp import GradScaler

README = Path(__file__).resolve().parent.parent / "README.md"


def table_rows() -> dict[str, tuple[str, str]]:
    """id -> (error class name, message pattern), from the section's table."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Errors you may meet"):]
    section = section[: section.index("\n## ", 4)]
    rows = {}
    for line in section.splitlines():
        if not line.startswith("| ") or line.startswith("| id ") or line.startswith("| ---"):
            continue
        cells = [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        row_id, error, pattern = cells[0], cells[1].strip("`"), cells[2]
        assert pattern.startswith("`") and pattern.endswith("`"), f"row {row_id}: pattern must be in backticks"
        assert row_id not in rows, f"row {row_id} appears twice"
        rows[row_id] = (error, pattern[1:-1])
    return rows


def f32(*shape):
    return tg.Tensor(np.ones(shape, np.float32))


def _gradcheck_wrong():
    class Wrong(tg.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * x

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return 3 * x * g

    tg.gradcheck(lambda x: Wrong.apply(x), (tg.Tensor(np.array([0.5, 1.5]), requires_grad=True),))


class _NaNBackward(tg.Function):
    @staticmethod
    def forward(ctx, x):
        return x * 2

    @staticmethod
    def backward(ctx, g):
        return g * float("nan")


def _swapped(tmp):
    path = os.path.join(tmp, "swapped.ckpt")
    tg.save({"w": np.ones(3), "v": np.zeros(3)}, path)
    with np.load(path) as archive:
        arrays = {name: archive[name] for name in archive.files}
    arrays["a0"], arrays["a1"] = arrays["a1"], arrays["a0"]
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    tg.load(path)


def _cycle(tmp):
    cycle = {"a": [1]}
    cycle["a"].append(cycle)
    tg.save(cycle, os.path.join(tmp, "c.ckpt"))


def _bad_grad():
    layer = nn.Linear(2, 2)
    optimizer = optim.SGD(layer.parameters(), lr=0.1)
    layer.weight.grad = f32(2, 2)
    layer.bias._grad = f32(3)  # (assigning .grad refuses a wrong shape already: this is what a bug inside could do)
    optimizer.step()


def _backward_twice():
    x = tg.Tensor(np.ones(3), requires_grad=True)
    y = (x * x).sum()
    y.backward()
    y.backward()


def _scaler_setup(dtype=np.float32):
    model = nn.Linear(2, 1).to(dtype=dtype) if dtype != np.float32 else nn.Linear(2, 1)
    opt = optim.SGD(model.parameters(), lr=0.1)
    scaler = GradScaler()
    x = tg.Tensor(np.ones((1, 2), dtype))
    scaler.scale(model(x).sum()).backward()
    return scaler, opt


def _in_group(call):
    """Run ``call`` inside an initialized process group (a world of one), and leave the group afterwards."""
    dist.init_process_group()
    try:
        call()
    finally:
        dist.destroy_process_group()


def _unscale_twice():
    scaler, opt = _scaler_setup()
    scaler.unscale_(opt)
    scaler.unscale_(opt)


def _step_twice():
    scaler, opt = _scaler_setup()
    scaler.step(opt)
    scaler.step(opt)


def _fp16_grads():
    model = nn.Linear(2, 1)
    model.half()
    opt = optim.SGD(model.parameters(), lr=0.1)
    scaler = GradScaler()
    scaler.scale(model(tg.Tensor(np.ones((1, 2), np.float16))).sum()).backward()
    scaler.unscale_(opt)


def _inplace_saved():
    x = tg.Tensor(np.ones(3), requires_grad=True)
    y = x * 1.0
    z = (y * y).sum()
    with tg.no_grad():
        y.mul_(2)
    z.backward()


def _inplace_requires_grad():
    tg.Tensor(np.ones(3), requires_grad=True).add_(1)


def _inplace_dtype():
    x = tg.Tensor(np.ones(3, np.int64))
    with tg.no_grad():
        x.mul_(1.5)


def _inplace_shape():
    x = tg.Tensor(np.ones(3))
    with tg.no_grad():
        x.add_(tg.Tensor(np.ones((2, 3))))


def _anomaly_forward():
    with tg.detect_anomaly(), np.errstate(all="ignore"):
        tg.Tensor(np.zeros(3), requires_grad=True).log()


def _anomaly_backward():
    with tg.detect_anomaly(), np.errstate(all="ignore"):
        tg.Tensor(np.zeros(3), requires_grad=True).sqrt().sum().backward()


def _corrupt(tmp):
    path = os.path.join(tmp, "a.npz")
    tg.save({"w": np.ones(3)}, path)
    with open(path, "r+b") as f:
        f.truncate(40)
    tg.load(path)


def _pickled(tmp):
    path = os.path.join(tmp, "o.npz")
    np.savez(path, __manifest__=np.array([{}], dtype=object))
    tg.load(path)


def _foreign(tmp):
    path = os.path.join(tmp, "c.npz")
    np.savez(path, a=np.ones(2))
    tg.load(path)


def _env_device(value):
    saved = os.environ.get("TINYGRAD_EDU_DEVICE")
    os.environ["TINYGRAD_EDU_DEVICE"] = value
    try:
        tg.get_default_device()
    finally:
        if saved is None:
            del os.environ["TINYGRAD_EDU_DEVICE"]
        else:
            os.environ["TINYGRAD_EDU_DEVICE"] = saved


def _checkpoint_shape(tmp):
    from tinygrad_edu import train

    path = os.path.join(tmp, "m.ckpt")
    train.save_checkpoint(path, train.build_model(2, 2, 1, 8))
    train.load_checkpoint(path, train.build_model(2, 2, 1, 16))


def _optimizer_state_shape():
    m = nn.Linear(2, 2)
    o = optim.SGD(m.parameters(), lr=0.1, momentum=0.9)
    m(f32(1, 2)).sum().backward()
    o.step()
    sd = o.state_dict()
    sd["state"][0]["momentum_buffer"] = np.ones(7, np.float32)
    o.load_state_dict(sd)


def _cuda_unavailable():
    if tg.cuda_is_available():
        pytest.skip("a GPU is present: the error cannot occur")
    tg.Tensor(np.ones(2), device="cuda")


b = tg.Tensor([True, False])
i8 = tg.Tensor(np.array([1, 2], np.int8))

#: row id -> callable(tmp_path) that raises the row's error
EXAMPLES = {
    "shape-broadcast": lambda _: f32(2, 3) + f32(4),
    "shape-matmul": lambda _: f32(2, 3) @ f32(4),
    "matmul-scalar": lambda _: f32(2, 3) @ 2,
    "shape-linear": lambda _: F.linear(f32(2, 3), f32(4, 2)),
    "shape-conv2d": lambda _: F.conv2d(f32(1, 2, 3, 3), f32(1, 3, 2, 2)),
    "conv2d-kernel": lambda _: F.conv2d(f32(1, 2, 3, 3), f32(1, 2, 4, 4)),
    "conv2d-stride": lambda _: F.conv2d(f32(1, 2, 3, 3), f32(1, 2, 2, 2), stride=0),
    "conv2d-dtype": lambda _: F.conv2d(f32(1, 2, 3, 3).half(), f32(1, 2, 2, 2)),
    "reshape": lambda _: f32(2, 3).reshape(4, 2),
    "permute": lambda _: f32(2, 3).permute(0, 0),
    "axis": lambda _: f32(2, 3).sum(axis=3),
    "index": lambda _: f32(2, 3)[5],
    "softmax-dim": lambda _: F.softmax(f32(2, 3), dim=2),
    "item": lambda _: f32(2).item(),
    "truth-value": lambda _: bool(f32(2)),
    "requires-grad-int": lambda _: tg.Tensor([1, 2], requires_grad=True),
    "bad-data": lambda _: tg.Tensor(["a"]),
    "ragged-data": lambda _: tg.Tensor([[1.0, 2.0], [3.0]]),
    "index-dtype": lambda _: tg.Tensor([1.0, 2.0, 3.0])[tg.Tensor([0.0, 1.0])],
    "grad-assign": lambda _: setattr(nn.Linear(2, 2).weight, "grad", tg.Tensor(np.ones((3, 2), np.float32))),
    "where-condition": lambda _: tg.where(f32(2), f32(2), f32(2)),
    "promote-bool-sub": lambda _: b - b,
    "promote-bool-neg": lambda _: -b,
    "promote-uint64": lambda _: tg.Tensor(np.array([1], np.uint64)) + i8,
    "promote-int-range": lambda _: i8 + 1000,
    "promote-negative-power": lambda _: i8 ** -1,
    "no-float16": lambda _: tg.Tensor(np.ones(2, np.float16), device="strict"),
    "device-mix": lambda _: f32(2) + tg.Tensor(np.ones(2, np.float32), device="strict"),
    "device-unknown": lambda _: tg.Tensor(np.ones(2), device="tpu"),
    "device-cuda-unavailable": lambda _: _cuda_unavailable(),
    "device-env": lambda _: _env_device("gpu"),
    "implicit-host-copy": lambda _: np.asarray(tg.Tensor(np.ones(2), device="strict")),
    "dropout-p": lambda _: F.dropout(f32(2, 3), 1.5),
    "batchnorm-momentum": lambda _: nn.BatchNorm1d(3, momentum=2.0),
    "batchnorm-eps": lambda _: F.batch_norm(f32(2, 3), tg.zeros(3), tg.ones(3), training=True, eps=-1.0),
    "batchnorm-batch1": lambda _: F.batch_norm(f32(1, 3), tg.zeros(3), tg.ones(3), training=True),
    "lr-negative": lambda _: optim.SGD(nn.Linear(2, 2).parameters(), lr=-1),
    "backward-twice": lambda _: _backward_twice(),
    "backward-non-scalar": lambda _: (tg.Tensor(np.ones(2), requires_grad=True) * 2).backward(),
    "backward-no-grad": lambda _: f32(2).sum().backward(),
    "backward-grad-shape": lambda _: (tg.Tensor(np.ones(2), requires_grad=True) * 2).backward(np.ones(3)),
    "gradcheck-failure": lambda _: _gradcheck_wrong(),
    "gradcheck-kink": lambda _: tg.gradcheck(lambda x: x.relu(), (tg.Tensor(np.array([0.0, 1.5]), requires_grad=True),)),
    "gradcheck-nonfinite": lambda _: tg.gradcheck(_NaNBackward.apply, (tg.Tensor(np.ones(2), requires_grad=True),)),
    "gradcheck-output-nonfinite": lambda _: tg.gradcheck(lambda x: x.log(), (tg.Tensor(np.array([-1.0, 2.0]),
                                                                                       requires_grad=True),)),
    "scaler-unscale-twice": lambda _: _unscale_twice(),
    "scaler-step-twice": lambda _: _step_twice(),
    "scaler-update-first": lambda _: GradScaler().update(),
    "scaler-fp16-grads": lambda _: _fp16_grads(),
    "scaler-bad-scale": lambda _: GradScaler(init_scale=0),
    "inplace-saved": lambda _: _inplace_saved(),
    "inplace-requires-grad": lambda _: _inplace_requires_grad(),
    "inplace-dtype": lambda _: _inplace_dtype(),
    "inplace-shape": lambda _: _inplace_shape(),
    "anomaly-forward": lambda _: _anomaly_forward(),
    "anomaly-backward": lambda _: _anomaly_backward(),
    "anomaly-mode": lambda _: tg.autograd.set_detect_anomaly(1),
    "checkpoint-missing": lambda tmp: tg.load(os.path.join(tmp, "missing.npz")),
    "checkpoint-corrupt": _corrupt,
    "checkpoint-pickle": _pickled,
    "checkpoint-foreign": _foreign,
    "checkpoint-shape": _checkpoint_shape,
    "checkpoint-digest": _swapped,
    "save-unsupported": lambda tmp: tg.save({"w": object()}, os.path.join(tmp, "b.npz")),
    "save-module": lambda tmp: tg.save(nn.Linear(2, 2), os.path.join(tmp, "b.npz")),
    "save-directory": lambda tmp: tg.save({"w": 1}, str(tmp)),
    "save-cycle": _cycle,
    "state-dict-keys": lambda _: nn.Linear(2, 2).load_state_dict({"weight": np.ones((2, 2), np.float32)}),
    "state-dict-shape": lambda _: nn.Linear(2, 2).load_state_dict(
        {"weight": np.ones((3, 2), np.float32), "bias": np.ones(2, np.float32)}),
    "optimizer-state-shape": lambda _: _optimizer_state_shape(),
    "optimizer-grad": lambda _: _bad_grad(),
    "dist-uninitialized": lambda _: dist.DistributedDataParallel(nn.Linear(2, 2)),
    "dist-init-twice": lambda _: _in_group(dist.init_process_group),
    "dist-backend": lambda _: dist.init_process_group("gloo"),
    "dist-op": lambda _: dist.all_reduce(f32(2), op="mean"),
    "ddp-bucket-cap": lambda _: _in_group(lambda: dist.DistributedDataParallel(nn.Linear(2, 2), bucket_cap_mb=0)),
    "sampler-rank": lambda _: dist.DistributedSampler(10, num_replicas=2, rank=2),
    "sync-bn-batch1": lambda _: F.sync_batch_norm(f32(1, 3), None, None),
    "queue-callback": lambda _: tg.autograd.queue_callback(print),
    "rng-state": lambda _: tg.set_rng_state({}),
}

ROWS = table_rows()


def _error_class(name: str) -> type:
    import builtins

    return getattr(tg, name, None) or getattr(builtins, name)


def test_every_row_has_an_example_and_every_example_a_row():
    assert sorted(set(ROWS) - set(EXAMPLES)) == [], "rows without an example"
    assert sorted(set(EXAMPLES) - set(ROWS)) == [], "examples without a row"


@pytest.mark.parametrize("row_id", sorted(ROWS))
def test_row_raises_its_error_with_its_message(row_id, tmp_path):
    error, pattern = ROWS[row_id]
    assert row_id in EXAMPLES, f"row {row_id!r} of the README's error table has no example in this file"
    with pytest.raises(_error_class(error)) as info:
        EXAMPLES[row_id](tmp_path)
    message = info.value.args[0] if isinstance(info.value, KeyError) else str(info.value)
    assert re.search(pattern, message), f"{row_id}: {message!r} does not match {pattern!r}"
