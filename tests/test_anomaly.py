"""Anomaly detection: the first op whose forward output or backward gradient holds NaN/Inf raises, naming itself
and the line of the user's code that created it."""

from __future__ import annotations

import numpy as np
import pytest

import tinygrad_edu as tg
from tinygrad_edu import AnomalyError, Tensor, nn
from tinygrad_edu.autograd import detect_anomaly, is_anomaly_enabled, set_detect_anomaly

HERE = "test_anomaly.py"


def _line_of(marker: str) -> int:
    """The line number of the line of this file containing ``marker`` (so the tests name lines, not numbers)."""
    with open(__file__) as f:
        for number, line in enumerate(f, 1):
            if marker in line and "_line_of" not in line:
                return number
    raise AssertionError(marker)


def test_log_of_zero_is_flagged_at_the_users_line(device):
    x = Tensor([1.0, 0.0, 2.0], requires_grad=True, device=device)
    with detect_anomaly(), pytest.raises(AnomalyError) as info:
        x.log()  # MARK-log
    message = str(info.value)
    assert message.startswith("Function 'Log' returned inf values in its forward output ((3,) float32)")
    assert "from inputs (3,) float32 (all inputs finite)" in message
    assert f"created at {HERE}:{_line_of('MARK-log')} in test_log_of_zero_is_flagged_at_the_users_line" in message
    assert "tinygrad_edu" + "/tensor.py" not in message  # library frames are stripped from the trace
    assert isinstance(info.value, RuntimeError)


def test_sqrt_of_negative_is_flagged_as_nan(device):
    x = Tensor([4.0, -1.0], device=device)  # no grad needed: the forward check runs on every op
    with detect_anomaly(), pytest.raises(AnomalyError, match=r"Function 'Sqrt' returned nan values in its forward"):
        with np.errstate(invalid="ignore"):
            x.sqrt()


def test_nan_input_is_reported_as_not_finite_already():
    x = Tensor([np.nan, 1.0])
    with detect_anomaly(), pytest.raises(AnomalyError, match=r"'Exp' returned nan .*some inputs were already not"):
        x.exp()


def _sqrt_at_zero(device):
    x = Tensor([0.0, 4.0], requires_grad=True, device=device)
    y = x.sqrt()  # MARK-sqrt: finite forward, but d sqrt/dx = 1/(2 sqrt x) is inf at 0
    return x, (y * 0.0).sum()


def test_backward_nan_is_flagged_naming_the_op_and_creation_line(device):
    with detect_anomaly():
        x, loss = _sqrt_at_zero(device)
        with pytest.raises(AnomalyError) as info, np.errstate(divide="ignore", invalid="ignore"):
            loss.backward()
    message = str(info.value)
    # Mul's backward gives 0 · upstream = 0: finite; Sqrt's gives 0 / (2·0) = nan
    assert message.startswith("Function 'Sqrt' returned nan values in its 0th output")
    assert f"created at {HERE}:{_line_of('MARK-sqrt')} in _sqrt_at_zero" in message
    assert "Traceback of the forward call" in message and "test_backward_nan_is_flagged" in message
    assert x.grad is None  # raised before anything reached the leaf


def test_backward_check_without_recorded_site():
    x, loss = _sqrt_at_zero("cpu")  # forward outside: no creation site recorded
    with detect_anomaly(), pytest.raises(AnomalyError, match=r"'Sqrt' returned nan .*created at an unknown place"):
        with np.errstate(divide="ignore", invalid="ignore"):
            loss.backward()


def test_off_means_no_check():
    assert not is_anomaly_enabled()
    with np.errstate(divide="ignore"):
        y = Tensor([0.0]).log()
    assert np.isneginf(y.numpy()[0])


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_finite_network_gives_identical_results(device, dtype):
    if device == "strict" and dtype == "float16":
        pytest.skip("the strict device has no float16")
    rng = np.random.default_rng(0)

    def run():
        tg.manual_seed(0)
        model = nn.Sequential(nn.Linear(4, 8, device=device), nn.Tanh(), nn.Linear(8, 3, device=device))
        if dtype == "float16":
            model = model.half()
        x = Tensor(rng.standard_normal((5, 4)).astype(dtype), device=device)
        loss = (model(x).float().exp().sum(axis=1).log()).mean()
        loss.backward()
        return [loss.numpy()] + [p.grad.numpy() for p in model.parameters()]

    plain = run()
    rng = np.random.default_rng(0)
    with detect_anomaly():
        checked = run()
    for a, b in zip(plain, checked):
        np.testing.assert_array_equal(a, b)


def test_flag_restores_after_context_and_nesting():
    assert not is_anomaly_enabled()
    with detect_anomaly():
        assert is_anomaly_enabled()
        with set_detect_anomaly(False):
            assert not is_anomaly_enabled()
            with detect_anomaly():
                assert is_anomaly_enabled()
            assert not is_anomaly_enabled()
        assert is_anomaly_enabled()
    assert not is_anomaly_enabled()
    with pytest.raises(ZeroDivisionError), detect_anomaly():
        1 / 0  # noqa: B018 - an exception inside restores the flag too
    assert not is_anomaly_enabled()


def test_set_detect_anomaly_as_a_flag_and_the_top_level_names():
    try:
        tg.set_detect_anomaly(True)
        assert tg.is_anomaly_enabled() and tg.autograd.is_anomaly_enabled()
        with pytest.raises(AnomalyError):
            Tensor([-1.0]).log()
    finally:
        tg.set_detect_anomaly(False)
    assert not tg.is_anomaly_enabled()
    assert tg.detect_anomaly is detect_anomaly


def test_decorator_form():
    @detect_anomaly()
    def f():
        return is_anomaly_enabled()

    assert f() and not is_anomaly_enabled()


def test_bad_arguments():
    with pytest.raises(TypeError, match=r"set_detect_anomaly: mode must be a bool, got str"):
        set_detect_anomaly("yes")
    with pytest.raises(TypeError, match=r"detect_anomaly: check_nan must be a bool"):
        detect_anomaly(check_nan=1)
    assert not is_anomaly_enabled()


def test_inplace_error_names_the_creation_site_under_anomaly_mode():
    x = Tensor([1.0, 2.0], requires_grad=True)
    with detect_anomaly():
        y = (x * x).sum()  # MARK-mul
    with tg.no_grad():
        x.add_(1.0)
    with pytest.raises(tg.InplaceModificationError, match=rf"created at {HERE}:{_line_of('MARK-mul')} in test_inp"):
        y.backward()
