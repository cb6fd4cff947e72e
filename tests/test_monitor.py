"""GradientFlowMonitor and train --monitor: the depth-16 disc net's gradients vanish towards the input without
batchnorm and keep their scale with it; monitoring changes no number of the run."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from tinygrad_edu import nn
from tinygrad_edu.autograd import hooks
from tinygrad_edu.monitor import GradientFlowMonitor
from tinygrad_edu.train import TrainConfig, train


@pytest.fixture(scope="module")
def runs():
    return {norm: train(TrainConfig(epochs=3, norm=norm, seed=0), monitor=True) for norm in ("batch", "none")}


def _ratio(history, epoch=-1):
    row = history["monitor"]["grad_norm"][epoch]
    return row[0] / row[-1]


def test_the_gradient_norm_ratio_first_to_last_layer(runs):
    for history in runs.values():
        flow = history["monitor"]
        assert len(flow["layers"]) == 18 and flow["layers"][0] == "0" and len(flow["grad_norm"]) == 3
        assert all(np.all(np.isfinite(flow[q])) and np.all(np.array(flow[q]) > 0) for q in ("activation_rms", "grad_norm"))
        # an update can be exactly 0: without batchnorm, lr·grad of the first layers is below float32's spacing
        assert np.all(np.isfinite(flow["update_ratio"])) and np.all(np.array(flow["update_ratio"]) >= 0)
    with_bn, without = _ratio(runs["batch"]), _ratio(runs["none"])
    # batchnorm: the first layer's gradient within a factor 5 of the last's; without: vanished by more than 10^4
    assert 0.2 < with_bn < 5, with_bn
    assert without < 1e-4, without
    grads = np.array(runs["none"]["monitor"]["grad_norm"][-1])
    assert np.all(np.diff(np.log(grads[1:])) > 0)  # growing from layer to layer towards the output


def test_monitoring_changes_no_number_and_leaves_no_hook():
    config = TrainConfig(epochs=2, depth=4, seed=1, dropout=0.1)
    watched, plain = train(config, monitor=True), train(config)
    assert watched["train_loss"] == plain["train_loss"]
    assert all(np.array_equal(watched["state_dict"][k], plain["state_dict"][k]) for k in plain["state_dict"])
    model = watched["model"]
    assert not model._has_hooks or not any(model.__dict__.get("_forward_hooks", {}).values())
    assert all(not hooks.active.get(id(p)) for p in model.parameters())


def test_the_monitor_needs_layers_and_epochs(tmp_path):
    with pytest.raises(ValueError, match="no layer"):
        GradientFlowMonitor(nn.Sequential(nn.ReLU()))
    monitor = GradientFlowMonitor(nn.Sequential(nn.Linear(2, 2)))
    with pytest.raises(ValueError, match="nothing recorded"):
        monitor.plot(tmp_path / "flow.png")


def test_train_monitor_plots(tmp_path):
    command = [sys.executable, "-m", "tinygrad_edu", "train", "--no-progress", "--epochs", "2", "--depth", "3"]
    result = subprocess.run([*command, "--monitor", "flow.png"], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "flow.png").read_bytes()[:4] == b"\x89PNG"
    assert "saved the gradient flow over 5 layers to flow.png" in result.stdout
    result = subprocess.run([*command, "--monitor", "flow.txt"], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 2 and "--monitor" in result.stderr


def test_a_frozen_layer_and_a_layer_used_twice():
    shared = nn.Linear(4, 4)
    model = nn.Sequential(nn.Linear(2, 4), shared, nn.ReLU(), shared, nn.Linear(4, 2))
    model[0].weight.requires_grad_(False)
    monitor = GradientFlowMonitor(model)
    assert monitor.names == ["0", "1", "4"]
    monitor.remove()
