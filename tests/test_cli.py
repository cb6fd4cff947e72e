"""The command line, ``tinygrad-edu gradcheck`` (run in-process through ``tinygrad_edu.cli.main``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tinygrad_edu import DeviceUnavailableError, Function, cli
from tinygrad_edu.testing import registry

HEADER = ("function", "seed", "input shapes", "max abs err", "max rel err", "verdict")


def run(capsys, *argv: str) -> tuple[int, str, str]:
    status = cli.main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def rows(out: str) -> dict[str, list[str]]:
    """The table's rows by function name: [seed, shapes..., abs err, rel err, verdict] as whitespace-split words."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split()[:2] == ["function", "seed"])
    table = {}
    for line in lines[start + 1 :]:
        if not line.strip():
            break
        words = line.split()
        if words[0] in registry.REGISTRY or words[0] in ("wrong_square", "on_a_kink", "raises"):
            table.setdefault(words[0], []).append(words[1:])
    return table


def test_gradcheck_a_few_functions(capsys):
    status, out, err = run(capsys, "gradcheck", "add", "matmul", "--trials", "2")
    assert status == 0, out + err
    assert all(word in out for word in HEADER)
    table = rows(out)
    assert list(table) == ["add", "matmul"]
    assert [r[0] for r in table["add"]] == ["0", "1"]  # seeds SEED, SEED + 1
    assert all(r[-1] == "ok" and float(r[-3]) < 1e-6 and float(r[-2]) < 1e-6 for r in table["add"] + table["matmul"])
    assert "(4, 3), (3, 3)" in out  # matmul's input shapes, seed 0
    assert out.splitlines()[-1] == "4 passed, 0 failed"


@pytest.mark.parametrize("dtype", ["float64", "float32", "float16"])
def test_gradcheck_every_entry(capsys, dtype):
    status, out, err = run(capsys, "gradcheck", "--dtype", dtype, "--trials", "1", "--device", "cpu")
    assert status == 0, out + err
    table = rows(out)
    assert list(table) == list(registry.REGISTRY)
    assert all(r[-1] == "ok" for r in sum(table.values(), [])), out
    assert out.splitlines()[-1] == f"{len(registry.REGISTRY)} passed, 0 failed"
    assert f"gradcheck on cpu, {dtype}: eps 1e-05, atol {registry.TOLERANCES[dtype]['atol']:g}" in out


def test_gradcheck_on_the_strict_device(capsys):
    status, out, err = run(capsys, "gradcheck", "getitem_array", "cross_entropy", "--device", "strict", "--seed", "7")
    assert status == 0, out + err
    assert [r[0] for r in rows(out)["cross_entropy"]] == ["7", "8", "9"]  # three trials by default
    assert out.splitlines()[-1] == "6 passed, 0 failed"


def test_unknown_name_is_a_usage_error_listing_the_valid_names(capsys):
    status, out, err = run(capsys, "gradcheck", "add", "no_such_op")
    assert status == 2 and out == ""
    assert "unknown function name(s): no_such_op" in err
    assert "Valid names: " + ", ".join(registry.REGISTRY) in err


def test_unavailable_device_is_a_usage_error_with_its_message(capsys, monkeypatch):
    def no_gpu(device):
        raise DeviceUnavailableError("device 'cuda': CuPy 14.0 is installed but sees no CUDA GPU.")

    monkeypatch.setattr(cli, "get_backend", no_gpu)
    status, out, err = run(capsys, "gradcheck", "add", "--device", "cuda")
    assert status == 2 and out == ""
    assert "device 'cuda': CuPy 14.0 is installed but sees no CUDA GPU." in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["gradcheck", "--device", "strict", "--dtype", "float16"], "'strict' device has no float16"),
        (["gradcheck", "--device", "tpu"], "unknown device 'tpu'"),
        (["gradcheck", "--dtype", "int8"], "invalid choice: 'int8'"),
        (["gradcheck", "--trials", "0"], "must be at least 1"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        ([], "usage: tinygrad-edu"),
    ],
)
def test_usage_errors_exit_with_2(capsys, argv, message):
    status, out, err = run(capsys, *argv)
    assert status == 2
    assert message in err


def test_help_documents_the_tolerances_and_lists_the_functions(capsys):
    status, out, _ = run(capsys, "gradcheck", "--help")
    assert status == 0
    for dtype, t in registry.TOLERANCES.items():
        assert f"{dtype:8s} eps {t['eps']:<8g} atol {t['atol']:<8g} rtol {t['rtol']:g}" in out
    assert ", ".join(registry.REGISTRY) in out.replace("\n", " ")


class WrongSquare(Function):
    """y = x², with the backward of x³: gradcheck must catch it."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 3 * x * x * g


def _bad_registry(monkeypatch) -> None:
    """Three bad entries in the registry for one test (monkeypatch removes them afterwards)."""
    ones = lambda rng: [rng.uniform(0.5, 1.5, size=(2, 3))]  # noqa: E731
    bad = [
        registry.Differentiable("wrong_square", WrongSquare.apply, ones, (WrongSquare,), "wrong"),
        registry.Differentiable("on_a_kink", lambda x: x.relu(), lambda rng: [np.zeros(3)],
                                registry.REGISTRY["relu"].functions, "relu at 0"),
        registry.Differentiable("raises", lambda x: x @ x, lambda rng: [np.ones((2, 3))],
                                registry.REGISTRY["matmul"].functions, "bad shapes"),
    ]
    for entry in bad:
        monkeypatch.setitem(registry.REGISTRY, entry.name, entry)


def test_a_wrong_gradient_fails_with_exit_1(capsys, monkeypatch):
    _bad_registry(monkeypatch)
    status, out, err = run(capsys, "gradcheck", "add", "wrong_square", "--trials", "1")
    assert status == 1
    table = rows(out)
    assert table["add"][0][-1] == "ok" and table["wrong_square"][0][-1] == "FAIL"
    assert "FAIL wrong_square (seed 0, inputs (2, 3)):" in out and "analytic" in out  # the worst elements
    assert out.splitlines()[-1] == "1 passed, 1 failed"


def test_a_kink_and_an_exception_fail_too(capsys, monkeypatch):
    _bad_registry(monkeypatch)
    status, out, err = run(capsys, "gradcheck", "on_a_kink", "raises", "--trials", "1")
    assert status == 1
    table = rows(out)
    assert table["on_a_kink"][0][-1] == "kink" and "KINK: one-sided derivatives" in out
    assert table["raises"][0][-3:] == ["-", "-", "FAIL"] and "raised InputError: MatMul: shapes (2, 3) and (2, 3) are not aligned" in out
    assert out.splitlines()[-1] == "0 passed, 2 failed"


def test_python_dash_m(tmp_path):
    root = str(Path(__file__).resolve().parent.parent)  # this checkout, whatever an editable install points to
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    result = subprocess.run([sys.executable, "-m", "tinygrad_edu", "gradcheck", "add", "--trials", "1"],
                            cwd=tmp_path, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1] == "1 passed, 0 failed"
