"""Memory: training for thousands of steps stays flat, ``no_grad()`` keeps no graph, backward frees the graph.

Two measures: tracemalloc's current size (Python objects and NumPy's buffers, which NumPy reports to it) and the
process's resident set size from /proc/self/statm (everything, allocator included; Linux only).
"""

from __future__ import annotations

import gc
import os
import sys
import tracemalloc
import weakref

import numpy as np
import pytest

import tinygrad_edu as tg
from tinygrad_edu import nn, optim

PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * PAGE
    except OSError:
        return None


def make_model():
    return nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 3))


def test_thousands_of_training_steps_keep_memory_flat():
    model = make_model()
    opt = optim.Adam(model.parameters(), lr=1e-3)
    rng = np.random.default_rng(0)
    x = tg.Tensor(rng.standard_normal((16, 8)).astype(np.float32))
    target = tg.Tensor(rng.integers(0, 3, 16))
    losses = []

    def step():
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), target)
        loss.backward()
        opt.step()
        losses.append(loss.item())  # a Python float: keeping the history must cost nothing per step

    for _ in range(200):  # warm-up: optimizer state, caches, allocator pools
        step()
    gc.collect()
    tracemalloc.start()
    try:
        traced, rss = [], []
        for _chunk in range(6):
            for _ in range(500):
                step()
            gc.collect()
            traced.append(tracemalloc.get_traced_memory()[0])
            rss.append(rss_bytes())
    finally:
        tracemalloc.stop()
    assert np.isfinite(losses).all() and losses[-1] < losses[0]
    # 3000 steps: what is traced after the first 500 does not grow by more than 64 KiB (the list of losses aside)
    losses_bytes = sys.getsizeof(losses) + 24 * len(losses)
    assert traced[-1] - traced[0] < 64 * 1024 + losses_bytes, f"traced memory per 500 steps: {traced}"
    if rss[0] is not None:  # the resident set: allow the allocator some slack, but no per-step growth
        assert rss[-1] - rss[0] < 4 * 1024 * 1024, f"RSS per 500 steps: {rss}"


def test_no_grad_evaluation_keeps_no_graph():
    model = make_model().eval()
    x = tg.Tensor(np.random.default_rng(1).standard_normal((32, 8)).astype(np.float32))
    with tg.no_grad():
        h = model[0](x)
        out = model(x)
    assert out.grad_fn is None and not out.requires_grad
    assert h.grad_fn is None
    ref = weakref.ref(h)
    del h
    assert ref() is None  # nothing (no graph) holds the intermediate
    gc.collect()
    tracemalloc.start()
    try:
        with tg.no_grad():
            model(x)
        before = tracemalloc.get_traced_memory()[0]
        kept = []
        for _ in range(300):
            with tg.no_grad():
                kept.append(model(x).sum().item())
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 32 * 1024 + 64 * len(kept), f"{grown} bytes after 300 no_grad evaluations"


def _graph(x):
    """A small graph; returns the loss and weak references to its intermediate tensors and op contexts."""
    a = x * 2.0
    b = a.tanh()
    c = (b @ b.T).relu()
    loss = c.mean()
    refs = [weakref.ref(t) for t in (a, b, c)] + [weakref.ref(t.grad_fn) for t in (a, b, c)]
    return loss, refs


def test_backward_frees_the_graph_while_the_loss_is_kept():
    x = tg.Tensor(np.random.default_rng(2).standard_normal((4, 3)), requires_grad=True)
    loss, refs = _graph(x)
    assert all(r() is not None for r in refs)
    loss.backward()
    assert all(r() is None for r in refs), "intermediate tensors or contexts outlived backward"
    assert x.grad is not None and loss.item() == loss.item()  # the loss itself stays usable


def test_retain_graph_keeps_it_until_the_last_backward():
    x = tg.Tensor(np.random.default_rng(3).standard_normal((4, 3)), requires_grad=True)
    loss, refs = _graph(x)
    loss.backward(retain_graph=True)
    assert all(r() is not None for r in refs)
    first = x.grad.numpy().copy()
    loss.backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * first)
    assert all(r() is None for r in refs)


def test_dropping_an_unused_graph_frees_it():
    """A forward whose loss is dropped without backward (e.g. an exception mid-step) leaves nothing behind."""
    x = tg.Tensor(np.random.default_rng(4).standard_normal((4, 3)), requires_grad=True)
    loss, refs = _graph(x)
    del loss
    gc.collect()
    assert all(r() is None for r in refs)


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs /proc (Linux)")
def test_rss_reader_reads_the_resident_set():
    before = rss_bytes()
    block = np.ones(16 * 1024 * 1024, np.uint8)  # 16 MiB, touched
    assert rss_bytes() - before > 8 * 1024 * 1024
    del block
