"""Batch normalization: the hand-derived backward against the tape of primitives, and a training step with it.

What is measured
    (1) One forward + backward of training-mode batch normalization, float32 on the CPU, for x of shape (N, C) =
        (100, 32) and (256, 512), and (N, C, H, W) = (32, 64, 16, 16), with γ and β differentiated, three ways:
        ``F.batch_norm`` (one Function, closed-form backward), ``F.batch_norm_staged`` (one Function, the slides'
        node-by-node backward) and ``F.batch_norm_composed`` (mean, -, *, +, sqrt, / on the tape). Reported: the
        time per forward + backward, and the bytes the graph keeps for backward (the arrays the ops saved with
        ``save_for_backward``, found by walking the graph from the output before backward frees them; each array
        counted once, the leaves' own arrays left out). Targets for the hand-derived op against the composed one:
        >= 2x faster, and half the saved memory: the composed graph keeps two arrays of x's size (x - μ and x̂) and
        the vector σ̃, the closed form x̂ and the vector 1/σ̃, so its share is 1/2 + C/(2MC + C) (0.5025 for M =
        100), never below; the target is "at most half, plus one (C,) vector". Before timing, the script asserts
        that the three give the same output and gradients.
    (2) One SGD step of the course's disc net with batch normalization: 2 -> 32, then sixteen hidden layers
        32 -> 32, each hidden Linear followed by BatchNorm1d and ReLU (Linear(2, 32), BN, ReLU, 16 x [Linear(32, 32),
        BN, ReLU], Linear(32, 2): 18 Linear and 17 BatchNorm1d layers), batch 100, softmax cross-entropy, SGD lr
        0.01 on every parameter (γ and β included), running statistics updated. Against the same step written by
        hand in NumPy (forward, the closed-form batchnorm backward, update); the script first asserts that one step
        gives the same loss, gradients, weights and running statistics on both sides. Target: engine / NumPy <=
        1.5x. If PyTorch imports, the same step in PyTorch (CPU, float32) too; target: the engine no slower.
        PyTorch runs on one thread by default (``--torch-threads``): NumPy's elementwise ops are single-threaded,
        the matrices are too small for threads to pay, and on a loaded machine PyTorch's spinning worker threads
        can slow its step down many times over (measured: benchmarks/README.md).

How it is timed
    As in ``bench_mlp_step.py`` (whose timing helpers this script uses): a warm-up, a block size of ~0.2 s per
    implementation, blocks of the implementations interleaved (order reversed on every other repeat), a garbage
    collection before each block, and the median over the repeats. Ratios of medians are reported: they are far
    more stable across machines than milliseconds.

Usage (from the repository root)::

    python benchmarks/bench_batchnorm.py                  # both parts, 7 repeats
    python benchmarks/bench_batchnorm.py --part 1 --repeats 11 --json results.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
from tinygrad_edu.benchmarks.bench_mlp_step import (
    EngineMLP,
    JitEngine,
    TorchMLP,
    _max_rel_diff,
    check_jit,
    import_torch,
    machine_info,
    print_table,
    time_interleaved,
)

import tinygrad_edu
from tinygrad_edu import Tensor, nn
from tinygrad_edu.datasets import disc
from tinygrad_edu.nn import functional as F
from tinygrad_edu.optim import SGD

SEED = 0
LR = 0.01
EPS = 1e-5
SHAPES = [(100, 32), (256, 512), (32, 64, 16, 16)]
SPEED_TARGET, MEMORY_TARGET, STEP_TARGET = 2.0, 0.5, 1.5
JIT_STEP_TARGET = 1.1  # the step captured and replayed by tinygrad_edu.jit, over NumPy by hand


# ------------------------------------------------------------------------------------------------------------------
# part 1: one batchnorm, three backwards
# ------------------------------------------------------------------------------------------------------------------
VARIANTS: dict[str, Callable[..., Tensor]] = {
    "closed": lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True, eps=EPS),
    "staged": lambda x, w, b: F.batch_norm_staged(x, w, b, eps=EPS),
    "composed": lambda x, w, b: F.batch_norm_composed(x, w, b, eps=EPS),
}


def saved_bytes(out: Tensor) -> int:
    """Bytes of the arrays the graph behind ``out`` saved for backward (``ctx._saved`` of every node), each array
    (or the array it is a view of) once, leaving out the arrays of the leaves (the input and the parameters, which
    live anyway): the memory the graph adds until backward frees it."""
    seen_nodes: set[int] = set()
    saved: dict[int, int] = {}
    leaves: set[int] = set()
    todo = [out]
    while todo:
        t = todo.pop()
        ctx = t._ctx
        if ctx is None:
            leaves.add(id(t.data if t.data.base is None else t.data.base))
            continue
        if id(ctx) in seen_nodes:
            continue
        seen_nodes.add(id(ctx))
        for a in ctx._saved or ():
            if isinstance(a, np.ndarray):
                base = a if a.base is None else a.base
                saved[id(base)] = base.nbytes
        todo.extend(p for p in ctx.parents if isinstance(p, Tensor))
    return sum(n for key, n in saved.items() if key not in leaves)


def run_layer(shape: tuple[int, ...], repeats: int) -> dict:
    rng = np.random.default_rng(SEED)
    C = shape[1]
    x = Tensor(rng.standard_normal(shape, dtype=np.float32) * 2 + 1, requires_grad=True)
    w = Tensor(rng.uniform(0.5, 1.5, C).astype(np.float32), requires_grad=True)
    b = Tensor(rng.uniform(-1, 1, C).astype(np.float32), requires_grad=True)
    g = Tensor(rng.standard_normal(shape, dtype=np.float32))
    params = (x, w, b)

    def step(fn: Callable[..., Tensor]) -> Callable[[], object]:
        def run() -> None:
            for p in params:
                p.grad = None
            fn(*params).backward(g)
        return run

    # agreement and memory
    results, memory = {}, {}
    for name, fn in VARIANTS.items():
        for p in params:
            p.grad = None
        y = fn(*params)
        memory[name] = saved_bytes(y)
        y.backward(g)
        results[name] = [y.numpy().copy()] + [p.grad.numpy().copy() for p in params]
    worst = max(_max_rel_diff(results[name], results["closed"]) for name in ("staged", "composed"))
    assert worst <= 1e-4, f"batchnorm variants disagree on {shape}: max relative difference {worst:.2e}"

    _, times = time_interleaved({name: step(fn) for name, fn in VARIANTS.items()}, repeats)
    med = {name: statistics.median(t) for name, t in times.items()}
    result = dict(
        shape=list(shape), dtype="float32", repeats=repeats, max_rel_diff=worst,
        ms={name: 1e3 * m for name, m in med.items()}, ms_all={n: [1e3 * t for t in ts] for n, ts in times.items()},
        saved_bytes=memory, input_bytes=x.numpy().nbytes,
        speedup=med["composed"] / med["closed"], memory_ratio=memory["closed"] / memory["composed"],
    )
    one_vector = C * x.numpy().itemsize  # 1/σ̃, which no batchnorm backward can do without
    result["meets_target"] = (result["speedup"] >= SPEED_TARGET
                              and memory["closed"] <= MEMORY_TARGET * memory["composed"] + one_vector)
    return result


# ------------------------------------------------------------------------------------------------------------------
# part 2: a training step of the disc net with batchnorm
# ------------------------------------------------------------------------------------------------------------------
HIDDEN, DEPTH, BATCH = 32, 16, 100


class EngineNet(EngineMLP):
    """The net as a user of the engine writes it; step, weights and grads as ``EngineMLP``."""

    def __init__(self, x: np.ndarray, y: np.ndarray):
        tinygrad_edu.manual_seed(SEED)
        layers: list[nn.Module] = [nn.Linear(2, HIDDEN), nn.BatchNorm1d(HIDDEN), nn.ReLU()]
        for _ in range(DEPTH):
            layers += [nn.Linear(HIDDEN, HIDDEN), nn.BatchNorm1d(HIDDEN), nn.ReLU()]
        layers.append(nn.Linear(HIDDEN, 2))
        self.model = nn.Sequential(*layers)
        self.params = list(self.model.parameters())  # W, b of a Linear, then γ, β of its BatchNorm1d, ...
        self.bns = [m for m in self.model if isinstance(m, nn.BatchNorm1d)]
        self.opt = SGD(self.params, lr=LR)
        self.x, self.y = Tensor(x), Tensor(y)

    def running(self) -> list[np.ndarray]:
        return [a for bn in self.bns for a in (bn.running_mean.numpy().copy(), bn.running_var.numpy().copy())]

    def load(self, weights: list[np.ndarray]) -> None:
        super().load(weights)
        for bn in self.bns:
            bn.running_mean.data[...], bn.running_var.data[...] = 0, 1


class NumpyNet:
    """The same step by hand: forward, closed-form batchnorm backward, in-place SGD."""

    def __init__(self, weights: list[np.ndarray], x: np.ndarray, y: np.ndarray):
        self.params = [w.copy() for w in weights]  # W0, b0, γ0, β0, W1, b1, γ1, β1, ..., W_last, b_last
        self.x, self.y, self.rows = x, y, np.arange(x.shape[0])
        self.running_mean = [np.zeros(HIDDEN, np.float32) for _ in range(DEPTH + 1)]
        self.running_var = [np.ones(HIDDEN, np.float32) for _ in range(DEPTH + 1)]
        self.last_grads: list[np.ndarray] | None = None  # set to [] to record the gradients of the next step

    def step(self) -> float:
        P, m = self.params, self.x.shape[0]
        acts, x_hats, inv_stds = [self.x], [], []  # acts[i]: input of Linear i
        a = self.x
        for i in range(DEPTH + 1):
            W, b, gamma, beta = P[4 * i : 4 * i + 4]
            h = a @ W.T + b
            mean = h.mean(axis=0)
            x_hat = h - mean
            var = (x_hat * x_hat).mean(axis=0)
            inv_std = 1 / np.sqrt(var + EPS)
            x_hat *= inv_std
            a = np.maximum(gamma * x_hat + beta, 0)
            self.running_mean[i] *= 0.9
            self.running_mean[i] += 0.1 * mean
            self.running_var[i] *= 0.9
            self.running_var[i] += (0.1 * m / (m - 1)) * var
            acts.append(a)
            x_hats.append(x_hat)
            inv_stds.append(inv_std)
        W, b = P[-2:]
        logits = a @ W.T + b
        shifted = logits - logits.max(axis=1, keepdims=True)
        exp = np.exp(shifted)
        sum_exp = exp.sum(axis=1, keepdims=True)
        loss = float(np.mean(np.log(sum_exp[:, 0]) - shifted[self.rows, self.y]))
        G = exp / sum_exp
        G[self.rows, self.y] -= 1
        G /= m
        grads = [G.T @ acts[-1], G.sum(axis=0)]
        G = G @ W
        for i in range(DEPTH, -1, -1):
            W, b, gamma, beta = P[4 * i : 4 * i + 4]
            G *= acts[i + 1] > 0  # relu mask
            x_hat = x_hats[i]
            d_beta, d_gamma = G.sum(axis=0), (G * x_hat).sum(axis=0)
            dh = (gamma * inv_stds[i]) * (G - d_beta / m - x_hat * (d_gamma / m))
            grads[0:0] = [dh.T @ acts[i], dh.sum(axis=0), d_gamma, d_beta]
            if i:
                G = dh @ W
        for p, g in zip(P, grads):
            p -= LR * g
        if self.last_grads is not None:
            self.last_grads[:] = grads
        return loss

    def weights(self) -> list[np.ndarray]:
        return [p.copy() for p in self.params]

    def running(self) -> list[np.ndarray]:
        return [a.copy() for pair in zip(self.running_mean, self.running_var) for a in pair]

    def load(self, weights: list[np.ndarray]) -> None:
        for p, w in zip(self.params, weights):
            p[...] = w
        for rm, rv in zip(self.running_mean, self.running_var):
            rm[...], rv[...] = 0, 1


class TorchNet(TorchMLP):
    """The same net in PyTorch on the CPU (only built when torch imports); step, weights and load as ``TorchMLP``."""

    def __init__(self, torch, weights: list[np.ndarray], x: np.ndarray, y: np.ndarray):
        self.torch = torch
        layers = [torch.nn.Linear(2, HIDDEN), torch.nn.BatchNorm1d(HIDDEN), torch.nn.ReLU()]
        for _ in range(DEPTH):
            layers += [torch.nn.Linear(HIDDEN, HIDDEN), torch.nn.BatchNorm1d(HIDDEN), torch.nn.ReLU()]
        layers.append(torch.nn.Linear(HIDDEN, 2))
        self.model = torch.nn.Sequential(*layers).float().train()
        self.params = list(self.model.parameters())
        self.bns = [m for m in self.model if isinstance(m, torch.nn.BatchNorm1d)]
        self.load(weights)
        self.opt = torch.optim.SGD(self.params, lr=LR)
        self.x, self.y = torch.from_numpy(x.copy()), torch.from_numpy(y.copy())

    def load(self, weights: list[np.ndarray]) -> None:
        super().load(weights)
        for bn in self.bns:
            bn.reset_running_stats()


#: positions of the biases of the Linear layers followed by a BatchNorm (W, b, γ, β per hidden layer): their gradient
#: Σ dh is zero up to round-off (BN removes the mean), so they are compared in absolute terms
PRE_BN_BIASES = {4 * i + 1 for i in range(DEPTH + 1)}


def check_agreement(engine: EngineNet, numpy_net: NumpyNet, torch_net: TorchNet | None) -> dict:
    w0 = engine.weights()
    numpy_net.load(w0)
    numpy_net.last_grads = []
    loss_e, loss_n = engine.step().item(), numpy_net.step()
    grads_n, numpy_net.last_grads = numpy_net.last_grads, None
    grads_e = engine.grads()
    others = [i for i in range(len(grads_n)) if i not in PRE_BN_BIASES]
    out = dict(
        loss_engine=loss_e, loss_numpy=loss_n, loss_rel_diff=abs(loss_e - loss_n) / abs(loss_n),
        grad_max_rel_diff=_max_rel_diff([grads_e[i] for i in others], [grads_n[i] for i in others]),
        pre_bn_bias_grad_max_abs_diff=max(float(np.max(np.abs(grads_e[i] - grads_n[i]))) for i in PRE_BN_BIASES),
        weight_max_abs_diff=max(float(np.max(np.abs(a - b))) for a, b in zip(engine.weights(), numpy_net.weights())),
        running_max_rel_diff=_max_rel_diff(engine.running(), numpy_net.running()),
    )
    assert out["loss_rel_diff"] <= 1e-5, f"losses differ: engine {loss_e!r}, numpy {loss_n!r}"
    assert out["grad_max_rel_diff"] <= 1e-4, f"gradients differ: max relative difference {out['grad_max_rel_diff']:.2e}"
    assert out["pre_bn_bias_grad_max_abs_diff"] <= 1e-5, "gradients of the biases before BatchNorm differ"
    assert out["weight_max_abs_diff"] <= 1e-5, f"updated weights differ by {out['weight_max_abs_diff']:.2e}"
    assert out["running_max_rel_diff"] <= 1e-5, f"running statistics differ: {out['running_max_rel_diff']:.2e}"
    if torch_net is not None:  # reported, not asserted
        torch_net.load(w0)
        loss_t = float(torch_net.step().item())
        out.update(loss_torch=loss_t, torch_loss_rel_diff=abs(loss_t - loss_n) / abs(loss_n),
                   torch_weight_max_rel_diff=_max_rel_diff(torch_net.weights(), numpy_net.weights()))
    return out


def run_step(repeats: int, torch) -> dict:
    x, y = disc(BATCH, seed=SEED)
    engine = EngineNet(x, y)
    numpy_net = NumpyNet(engine.weights(), x, y)
    torch_net = TorchNet(torch, engine.weights(), x, y) if torch is not None else None
    agreement = check_agreement(engine, numpy_net, torch_net)
    w0 = engine.weights()
    check_jit(lambda: EngineNet(x, y))
    impls = {"engine": engine, "jit": JitEngine(EngineNet(x, y)), "numpy": numpy_net} | (
        {"torch": torch_net} if torch_net is not None else {})
    _, times = time_interleaved({name: impl.step for name, impl in impls.items()}, repeats,
                                reset=lambda name: impls[name].load(w0))  # every block does the same work
    med = {name: statistics.median(t) for name, t in times.items()}
    result = dict(
        name=f"disc 2-32-[32 BN ReLU]x{DEPTH}-2, batch {BATCH}", repeats=repeats, agreement=agreement,
        ms={n: 1e3 * m for n, m in med.items()}, ms_all={n: [1e3 * t for t in ts] for n, ts in times.items()},
        ratio=med["engine"] / med["numpy"], target_ratio=STEP_TARGET, jit_ratio=med["jit"] / med["numpy"],
    )
    result["meets_target"] = result["ratio"] <= STEP_TARGET
    result["jit_meets_target"] = result["jit_ratio"] <= JIT_STEP_TARGET
    if "torch" in med:
        result["engine_over_torch"] = med["engine"] / med["torch"]
        result["meets_torch_target"] = result["engine_over_torch"] <= 1.0
    return result


def suite_rows(repeats: int, torch, shapes: list[tuple[int, ...]] = SHAPES, step: bool = True) -> list[dict]:
    """Rows for ``tinygrad-edu bench``: per shape, the composed primitives' time over the hand-derived closed form
    (the speedup, target >= 2x, set for the shapes of ``SHAPES``: another shape says ``n/a``); then the disc net's
    SGD step with batchnorm, engine vs NumPy by hand (and torch)."""
    rows = []
    target_shapes = {tuple(s) for s in SHAPES}
    for shape in shapes:
        r = run_layer(shape, repeats)
        applies = tuple(shape) in target_shapes
        rows.append(dict(benchmark="batchnorm fwd+bwd", case=f"{tuple(shape)} float32", a="composed primitives",
                         b="hand-derived", a_ms=r["ms"]["composed"], b_ms=r["ms"]["closed"], ratio=r["speedup"],
                         target=f">= {SPEED_TARGET}" if applies else "n/a",
                         ok=r["speedup"] >= SPEED_TARGET if applies else None))
    if step:
        r = run_step(repeats, torch)
        ms = r["ms"]
        rows.append(dict(benchmark="SGD step with batchnorm", case=r["name"], a="engine", b="numpy by hand",
                         a_ms=ms["engine"], b_ms=ms["numpy"], ratio=r["ratio"], target=f"<= {STEP_TARGET}",
                         ok=r["meets_target"]))
        rows.append(dict(benchmark="SGD step with batchnorm", case=r["name"], a="engine, jit", b="numpy by hand",
                         a_ms=ms["jit"], b_ms=ms["numpy"], ratio=r["jit_ratio"], target=f"<= {JIT_STEP_TARGET}",
                         ok=r["jit_meets_target"]))
        if "torch" in ms:
            rows.append(dict(benchmark="SGD step with batchnorm", case=r["name"], a="engine, jit", b="torch",
                             a_ms=ms["jit"], b_ms=ms["torch"], ratio=ms["jit"] / ms["torch"], target="< 1.0",
                             ok=ms["jit"] < ms["torch"]))
            rows.append(dict(benchmark="SGD step with batchnorm", case=r["name"], a="engine", b="torch",
                             a_ms=ms["engine"], b_ms=ms["torch"], ratio=r["engine_over_torch"], target="<= 1.0",
                             ok=r["meets_torch_target"]))
    return rows


# ------------------------------------------------------------------------------------------------------------------
# report
# ------------------------------------------------------------------------------------------------------------------
def print_report(machine: dict, layers: list[dict], step: dict | None) -> None:
    print(f"machine: {machine['cpu']}, {machine['cores']} cores")
    print(f"python {machine['python']}, numpy {machine['numpy']}, BLAS {machine['blas']}")
    print(f"tinygrad_edu {machine['tinygrad_edu']}; torch: {machine['torch'] or 'not installed (column omitted)'}")
    if layers:
        print("\n(1) batchnorm forward + backward, float32: hand-derived (closed form, staged) vs composed primitives")
        rows = []
        for r in layers:
            ms, mem = r["ms"], r["saved_bytes"]
            rows.append([str(tuple(r["shape"])), f"{ms['closed']:.3f}", f"{ms['staged']:.3f}", f"{ms['composed']:.3f}",
                         f"{r['speedup']:.2f}x", f"{mem['closed'] / 2**10:.0f}", f"{mem['staged'] / 2**10:.0f}",
                         f"{mem['composed'] / 2**10:.0f}", f"{r['memory_ratio']:.2f}",
                         "yes" if r["meets_target"] else "NO"])
        print_table(["shape", "closed ms", "staged ms", "composed ms", "speedup", "closed KiB", "staged KiB",
                "composed KiB", "mem ratio", "ok"], rows)
        print(f"targets: speedup (composed / closed time) >= {SPEED_TARGET}x; saved bytes closed <= {MEMORY_TARGET} x "
              f"composed + one (C,) vector (1/sigma); medians of {layers[0]['repeats']} interleaved blocks")
    if step is not None:
        print("\n(2) one SGD step with batchnorm")
        ms = step["ms"]
        header = ["network", "engine ms", "numpy ms", "engine/numpy", "target", "ok"]
        row = [step["name"], f"{ms['engine']:.3f}", f"{ms['numpy']:.3f}", f"{step['ratio']:.2f}x",
               f"<= {STEP_TARGET}x", "yes" if step["meets_target"] else "NO"]
        if "torch" in ms:
            header += ["torch ms", "engine/torch", "ok"]
            row += [f"{ms['torch']:.3f}", f"{step['engine_over_torch']:.2f}x",
                    "yes" if step["meets_torch_target"] else "NO"]
        print_table(header, [row])
        a = step["agreement"]
        print(f"agreement after one step: loss {a['loss_engine']:.6f} vs {a['loss_numpy']:.6f} (rel "
              f"{a['loss_rel_diff']:.1e}), grads rel {a['grad_max_rel_diff']:.1e} (pre-BN biases, zero up to "
              f"round-off: abs {a['pre_bn_bias_grad_max_abs_diff']:.1e}), weights abs "
              f"{a['weight_max_abs_diff']:.1e}, running stats rel {a['running_max_rel_diff']:.1e}"
              + (f"; torch loss {a['loss_torch']:.6f}, weights rel {a['torch_weight_max_rel_diff']:.1e}"
                 if "loss_torch" in a else ""))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7, help="timed blocks per implementation (default 7)")
    parser.add_argument("--part", choices=["1", "2", "all"], default="all", help="which part (default all)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")
    parser.add_argument("--torch-threads", type=int, default=1,
                        help="PyTorch's intra-op threads (default 1, as NumPy's elementwise ops; 0: PyTorch's default)")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    torch = import_torch()
    if torch is not None:
        torch.manual_seed(SEED)
        if args.torch_threads:
            torch.set_num_threads(args.torch_threads)
    machine = machine_info(torch)
    layers = [run_layer(s, args.repeats) for s in SHAPES] if args.part in ("1", "all") else []
    step = run_step(args.repeats, torch) if args.part in ("2", "all") else None
    print_report(machine, layers, step)
    if args.json:
        Path(args.json).write_text(json.dumps(dict(machine=machine, layers=layers, step=step), indent=2) + "\n")
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
