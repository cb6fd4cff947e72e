"""``GradientFlowMonitor``: per layer and per epoch, how large the activations, the gradients and the weight updates
are, the picture of vanishing and exploding gradients (the course's "going deeper" slides).

    monitor = GradientFlowMonitor(model)          # every Linear / Conv2d / Maxout layer, in order of depth
    for epoch in range(epochs):
        for x, y in batches:
            ...forward, backward, optimizer.step()...
        monitor.end_epoch()
    monitor.history["grad_norm"]                  # (epochs, layers): mean ‖∂L/∂W‖ over the epoch's steps
    monitor.plot("flow.png")
    monitor.remove()                              # the hooks go; the model is as before

Built on the hooks of ``tinygrad_edu.autograd.hooks``:

* a forward hook on each layer records the RMS of its output (the activation scale) in training mode;
* a hook on each weight records ‖∂L/∂W‖ (the Frobenius norm of this backward pass's gradient) and keeps a copy of W;
* at the layer's next forward, after the optimizer stepped, ‖W_new − W_old‖ / ‖W_old‖ is the relative update.

Nothing is recorded, and nothing costs anything, once ``remove()`` is called or without a monitor. Recording reads
values on the host: a step with a monitor runs eagerly under ``tg.jit`` (it warns).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from tinygrad_edu import nn
from tinygrad_edu.tensor import Tensor

__all__ = ["GradientFlowMonitor"]

QUANTITIES = ("activation_rms", "grad_norm", "update_ratio")


class GradientFlowMonitor:
    """Records, per layer and epoch, the mean activation RMS, gradient norm and relative weight update."""

    def __init__(self, model: nn.Module, layer_types: tuple[type, ...] = (nn.Linear, nn.Conv2d, nn.Maxout)):
        seen: set[int] = set()  # a layer used twice is one layer here
        self.layers = [(name, m) for name, m in model.named_modules()
                       if isinstance(m, layer_types) and not (id(m) in seen or seen.add(id(m)))]
        if not self.layers:
            raise ValueError(f"GradientFlowMonitor: the model has no layer of types "
                             f"{', '.join(t.__name__ for t in layer_types)}")
        self.names = [name for name, _ in self.layers]
        self._steps: dict[str, list[list[float]]] = {q: [[] for _ in self.layers] for q in QUANTITIES}
        self.history: dict[str, np.ndarray] = {q: np.zeros((0, len(self.layers))) for q in QUANTITIES}
        self._before: list[np.ndarray | None] = [None] * len(self.layers)
        self._handles = []
        for k, (_, layer) in enumerate(self.layers):
            self._handles.append(layer.register_forward_hook(self._forward_hook(k)))
            if layer.weight.requires_grad:  # a frozen layer: no gradient, no update (NaN in those rows)
                self._handles.append(layer.weight.register_hook(self._grad_hook(k)))

    def _forward_hook(self, k: int) -> Any:
        def hook(module: nn.Module, args: tuple, output: Tensor) -> None:
            if not module.training:
                return
            before = self._before[k]
            if before is not None:  # the optimizer has stepped since the last backward: the relative update
                after = module.weight.numpy().astype(np.float64)
                self._steps["update_ratio"][k].append(float(np.linalg.norm(after - before) /
                                                            max(np.linalg.norm(before), 1e-30)))
                self._before[k] = None
            out = output.numpy().astype(np.float64)
            self._steps["activation_rms"][k].append(float(np.sqrt(np.mean(out * out))) if out.size else 0.0)

        return hook

    def _grad_hook(self, k: int) -> Any:
        def hook(grad: Tensor) -> None:
            self._steps["grad_norm"][k].append(float(np.linalg.norm(grad.numpy().astype(np.float64))))
            self._before[k] = self.layers[k][1].weight.numpy().astype(np.float64).copy()

        return hook

    def end_epoch(self) -> None:
        """Average this epoch's steps into one row of ``history`` per quantity (NaN where a layer recorded none)."""
        for q in QUANTITIES:
            row = [float(np.mean(v)) if v else math.nan for v in self._steps[q]]
            self.history[q] = np.vstack([self.history[q], row])
            self._steps[q] = [[] for _ in self.layers]

    def ratio(self, quantity: str = "grad_norm", epoch: int = -1) -> float:
        """``quantity`` at the first layer over the last layer, in ``epoch`` (the vanishing/exploding measure)."""
        row = self.history[quantity][epoch]
        return float(row[0] / row[-1])

    def remove(self) -> None:
        """Unregister every hook: the model runs as without a monitor."""
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def plot(self, path: str | Path, title: str = "") -> Path:
        """Three panels over depth, one line per epoch (light to dark): activation RMS, gradient norm and
        relative update, on log scales."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        epochs = len(self.history["grad_norm"])
        if epochs == 0:
            raise ValueError("GradientFlowMonitor.plot: nothing recorded yet (call end_epoch() after each epoch)")
        depth = np.arange(1, len(self.layers) + 1)
        fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
        colors = plt.cm.viridis(np.linspace(0.85, 0.1, epochs))
        labels = {"activation_rms": "activation RMS", "grad_norm": "‖∂L/∂W‖",
                  "update_ratio": "‖ΔW‖ / ‖W‖ per step"}
        for ax, q in zip(axes, QUANTITIES):
            for e in range(epochs):
                ax.semilogy(depth, self.history[q][e], "o-", ms=3, color=colors[e],
                            label=f"epoch {e + 1}" if e in (0, epochs - 1) else None)
            ax.set(xlabel="layer (depth)", title=labels[q])
            ax.grid(True, which="both", alpha=0.3)
        axes[0].legend(fontsize=8)
        ratio = self.ratio()
        fig.suptitle((title + ": " if title else "") + f"gradient norm, first layer / last layer, last epoch: "
                     f"{ratio:.3g}", fontsize=10)
        fig.tight_layout()
        fig.savefig(path, dpi=90)
        plt.close(fig)
        return Path(path)
