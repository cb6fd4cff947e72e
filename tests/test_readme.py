"""The README's Python examples run as written (in order, sharing one namespace, as a reader would paste them)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

import tinygrad_edu as tg
from tinygrad_edu import Tensor

README = Path(__file__).resolve().parent.parent / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", README.read_text(encoding="utf-8"), flags=re.S | re.M)


def test_readme_examples_run_and_the_mixed_precision_loop_trains():
    blocks = python_blocks()
    assert len(blocks) >= 4
    x_train, _, y_train, _ = tg.datasets.digits(seed=0)
    batches = [(Tensor(x_train[i:i + 64]), Tensor(y_train[i:i + 64])) for i in range(0, 64 * 20, 64)]
    namespace = {"batches": batches}
    tg.manual_seed(0)
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)
    model, master, scaler = namespace["model"], namespace["master"], namespace["scaler"]
    assert all(p.dtype == tg.float16 for p in model[0].parameters())  # the model computes in float16
    assert all(p.dtype == tg.float32 for p in master.parameters())
    assert scaler.get_scale() == 2.0**16  # 20 finite steps: no backoff, no growth yet
    with tg.no_grad():
        model.eval()
        logits = model(Tensor(x_train[:512]).half()).float().numpy()
    assert np.mean(logits.argmax(axis=1) == y_train[:512]) > 0.8  # 20 steps of mixed precision learned digits
    converted = namespace["fp32_model"]  # the DFP16 example: both Linear layers swapped, weights still float32
    assert [type(m).__name__ for m in converted] == ["DFP16Linear", "ReLU", "DFP16Linear"]
    assert all(p.dtype == tg.float32 for p in converted.parameters())
