"""The ReLU variants: leaky ReLU, PReLU, CReLU and ELU, functions and modules.

* gradients: ``gradcheck`` in float64 on Hypothesis shapes (size-1 axes, non-contiguous layouts and a permute inside
  the checked function), values kept away from the kink at 0;
* the convention at the kink x = 0, tested directly (the same as PyTorch's): leaky ReLU's slope is ``negative_slope``,
  ELU's is alpha, PReLU's is a (and x = 0 adds nothing to da), CReLU's is 0 in both halves;
* forward values against the formulas on hand-computed cases, the PReLU slope gradient against a hand computation,
  per-channel PReLU on (N, C, H, W), CReLU keeping the norm;
* errors that name the layer, the argument and the shapes; float16; the modules.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinygrad_edu as tg
from tinygrad_edu import Tensor, nn
from tinygrad_edu.nn import functional as F
from tinygrad_edu.testing import registry
from tinygrad_edu.testing import strategies as tst

SETTINGS = settings(max_examples=15, deadline=None)
MARGIN = 0.05  # inputs at least this far from the kink at 0: far beyond gradcheck's step


def leaf(array, device, dtype=np.float64):
    return Tensor(np.asarray(array, dtype=dtype), requires_grad=True, device=device)


def away_from_zero(shape=None):
    """Arrays in [-2, 2] with no value within MARGIN of 0, possibly in a non-contiguous layout."""
    return tst.arrays(shape, dtype="float64", avoid=[0.0], margin=MARGIN).flatmap(tst.layouts)


def reversed_axes(x: Tensor) -> Tensor:
    """A non-contiguous view of x inside the checked function: its axes reversed."""
    return x.permute(tuple(reversed(range(x.ndim)))) if x.ndim > 1 else x


def grad_of(fn, x: np.ndarray, g: np.ndarray, device: str) -> np.ndarray:
    """dL/dx for L = <g, fn(x)>."""
    t = leaf(x, device)
    fn(t).backward(Tensor(g, device=device))
    return t.grad.numpy()


# ================================================================================================================
# gradients on Hypothesis shapes
# ================================================================================================================
@SETTINGS
@given(x=away_from_zero(), slope=st.sampled_from([0.01, 0.2, 1.5, -0.3]))
def test_leaky_relu_gradcheck(device, x, slope):
    assert tg.gradcheck(lambda t: F.leaky_relu(reversed_axes(t), slope), [leaf(x, device)])


@SETTINGS
@given(x=away_from_zero(), alpha=st.sampled_from([1.0, 0.5, 2.0, -1.0]))
def test_elu_gradcheck(device, x, alpha):
    assert tg.gradcheck(lambda t: F.elu(reversed_axes(t), alpha=alpha), [leaf(x, device)])


@SETTINGS
@given(data=st.data())
def test_crelu_gradcheck(device, data):
    x = data.draw(away_from_zero(tst.shapes(min_dims=1, max_dims=4)), label="x")
    dim = data.draw(st.integers(-x.ndim, x.ndim - 1), label="dim")
    assert tg.gradcheck(lambda t: F.crelu(reversed_axes(t), dim=dim), [leaf(x, device)])


@SETTINGS
@given(data=st.data(), per_channel=st.booleans())
def test_prelu_gradcheck_input_and_slopes(device, data, per_channel):
    x = data.draw(away_from_zero(tst.shapes(min_dims=0, max_dims=4)), label="x")
    channels = x.shape[1] if x.ndim >= 2 and per_channel else 1
    a = data.draw(tst.arrays((channels,), dtype="float64", magnitude=1.0), label="a")
    assert tg.gradcheck(F.prelu, [leaf(x, device), leaf(a, device)])


@SETTINGS
@given(x=away_from_zero(tst.shapes(min_dims=2, max_dims=4)))
def test_prelu_gradcheck_on_a_permuted_input(device, x):
    """The channel axis of the transposed view is x's last axis: the slopes follow the view, not the storage."""
    a = np.linspace(-0.5, 1.0, x.shape[-1])
    assert tg.gradcheck(lambda t, w: F.prelu(t.transpose(1, -1), w), [leaf(x, device), leaf(a, device)])


@pytest.mark.parametrize("name", ["leaky_relu", "prelu", "crelu", "elu"])
@pytest.mark.parametrize("seed", range(5))
def test_registry_entry_passes_in_float32_and_float16(name, seed):
    """The analytic pass in float32 and float16 (CPU), within the registry's tolerances for those dtypes."""
    for dtype in (np.float32, np.float16):
        _, report = registry.REGISTRY[name].check(seed, dtype, "cpu")
        assert report.passed, report.describe()


# ================================================================================================================
# forward values on hand-computed cases
# ================================================================================================================
X = np.array([[-2.0, -0.5, 0.0], [0.25, 1.0, 3.0]])


def test_leaky_relu_values(device):
    np.testing.assert_array_equal(F.leaky_relu(Tensor(X, device=device)).numpy(),
                                  [[-0.02, -0.005, 0.0], [0.25, 1.0, 3.0]])
    np.testing.assert_array_equal(F.leaky_relu(Tensor(X, device=device), negative_slope=0.5).numpy(),
                                  [[-1.0, -0.25, 0.0], [0.25, 1.0, 3.0]])
    np.testing.assert_allclose(F.leaky_relu(Tensor(X, device=device), 1.0).numpy(), X)  # slope 1: the identity


def test_elu_values(device):
    e = np.exp
    np.testing.assert_allclose(F.elu(Tensor(X, device=device)).numpy(),
                               [[e(-2.0) - 1, e(-0.5) - 1, 0.0], [0.25, 1.0, 3.0]], rtol=1e-15)
    np.testing.assert_allclose(F.elu(Tensor(X, device=device), alpha=2.0).numpy(),
                               [[2 * (e(-2.0) - 1), 2 * (e(-0.5) - 1), 0.0], [0.25, 1.0, 3.0]], rtol=1e-15)
    # any alpha, as in PyTorch: a negative alpha flips the negative branch (no error)
    np.testing.assert_allclose(F.elu(Tensor(X, device=device), alpha=-1.0).numpy(),
                               [[1 - e(-2.0), 1 - e(-0.5), 0.0], [0.25, 1.0, 3.0]], rtol=1e-15)


def test_elu_saturates_at_minus_alpha_and_is_exact_near_zero(device):
    y = F.elu(Tensor([-50.0, -1e-10, -800.0], dtype=np.float64, device=device), alpha=0.5).numpy()
    np.testing.assert_allclose(y, [-0.5, 0.5 * np.expm1(-1e-10), -0.5], rtol=1e-15)  # expm1: exact near 0
    assert np.isfinite(F.elu(Tensor([800.0], dtype=np.float64, device=device)).numpy()).all()  # no overflow


def test_elu_derivative_is_output_plus_alpha(device):
    """Clevert et al.: for x <= 0, dy/dx = α eˣ = y + α."""
    x = np.array([-3.0, -1.0, -0.1, 0.5])
    for alpha in (1.0, 0.3):
        grad = grad_of(lambda t, a=alpha: F.elu(t, alpha=a), x, np.ones(4), device)
        y = F.elu(Tensor(x, device=device), alpha=alpha).numpy()
        np.testing.assert_allclose(grad, [*(y[:3] + alpha), 1.0], rtol=1e-12)
        np.testing.assert_allclose(grad[:3], alpha * np.exp(x[:3]), rtol=1e-12)


def test_prelu_values_shared_and_per_channel(device):
    np.testing.assert_array_equal(F.prelu(Tensor(X, device=device), Tensor([0.25], dtype=np.float64, device=device)).numpy(),
                                  [[-0.5, -0.125, 0.0], [0.25, 1.0, 3.0]])
    # axis 1 of X has 3 channels: slopes 0.1, 0.2, 0.3, one per column
    np.testing.assert_allclose(F.prelu(Tensor(X, device=device), Tensor([0.1, 0.2, 0.3], dtype=np.float64, device=device)).numpy(),
                               [[-0.2, -0.1, 0.0], [0.25, 1.0, 3.0]], rtol=1e-15)


def test_crelu_values(device):
    y = F.crelu(Tensor(X, device=device)).numpy()  # dim=1: (2, 3) -> (2, 6)
    np.testing.assert_array_equal(y, [[0.0, 0.0, 0.0, 2.0, 0.5, 0.0], [0.25, 1.0, 3.0, 0.0, 0.0, 0.0]])
    y0 = F.crelu(Tensor(X, device=device), dim=0).numpy()  # (2, 3) -> (4, 3)
    np.testing.assert_array_equal(y0, [[0.0, 0.0, 0.0], [0.25, 1.0, 3.0], [2.0, 0.5, 0.0], [0.0, 0.0, 0.0]])
    np.testing.assert_array_equal(F.crelu(Tensor([-1.0, 2.0], device=device), dim=0).numpy(), [0, 2, 1, 0])


# ================================================================================================================
# the convention at the kink x = 0 (PyTorch's), tested directly
# ================================================================================================================
ZERO = np.array([0.0, -0.0])  # both zeros


def test_leaky_relu_slope_at_zero_is_negative_slope(device):
    np.testing.assert_allclose(grad_of(lambda t: F.leaky_relu(t, 0.2), ZERO, np.array([1.0, -3.0]), device),
                               [0.2, -0.6], rtol=1e-15)


def test_elu_slope_at_zero_is_alpha(device):
    np.testing.assert_array_equal(grad_of(lambda t: F.elu(t, alpha=0.5), ZERO, np.array([1.0, -3.0]), device),
                                  [0.5, -1.5])
    np.testing.assert_array_equal(grad_of(F.elu, ZERO, np.array([1.0, -3.0]), device), [1.0, -3.0])


def test_prelu_at_zero(device):
    """dx = a·g at x = 0; x = 0 adds 0 to da (it is x·g)."""
    x, a = leaf([0.0, 0.0, -1.0], device), leaf([0.3], device)
    F.prelu(x, a).backward(Tensor([2.0, -1.0, 4.0], dtype=np.float64, device=device))
    np.testing.assert_allclose(x.grad.numpy(), [0.6, -0.3, 1.2], rtol=1e-15)
    np.testing.assert_allclose(a.grad.numpy(), [-4.0], rtol=1e-15)


def test_crelu_at_zero_both_halves_are_zero(device):
    x = leaf([[0.0, 1.0, -2.0]], device)
    y = F.crelu(x)
    np.testing.assert_array_equal(y.numpy(), [[0.0, 1.0, 0.0, 0.0, 0.0, 2.0]])
    y.backward(Tensor([[5.0, 1.0, 1.0, 7.0, 1.0, 1.0]], dtype=np.float64, device=device))
    np.testing.assert_array_equal(x.grad.numpy(), [[0.0, 1.0, -1.0]])  # g₁ at x > 0, -g₂ at x < 0, 0 at 0


def test_gradcheck_flags_the_kink_and_accepts_the_convention(device):
    """At x = 0 the one-sided derivatives differ; the slope chosen lies between them (a subgradient)."""
    for fn in (lambda t: F.leaky_relu(t, 0.2), lambda t: F.elu(t, alpha=0.5), F.crelu):
        x = leaf([[0.0, 1.0]], device)
        with pytest.raises(tg.NonDifferentiablePointError):
            tg.gradcheck(fn, [x])
        assert tg.gradcheck(fn, [x], kinks="allow")


# ================================================================================================================
# PReLU: the slope gradient by hand, per channel on (N, C, H, W)
# ================================================================================================================
def test_prelu_slope_gradient_by_hand(device):
    x = np.array([[-1.0, 2.0], [-3.0, -0.5], [4.0, -2.0]])
    g = np.array([[0.5, 7.0], [2.0, -1.0], [9.0, 3.0]])
    # shared slope: Σ g·x over x <= 0 = 0.5·(-1) + 2·(-3) + (-1)·(-0.5) + 3·(-2)
    xs, a = leaf(x, device), leaf([0.1], device)
    F.prelu(xs, a).backward(Tensor(g, device=device))
    np.testing.assert_allclose(a.grad.numpy(), [-0.5 - 6.0 + 0.5 - 6.0], rtol=1e-15)
    np.testing.assert_allclose(xs.grad.numpy(), np.where(x > 0, g, 0.1 * g), rtol=1e-15)
    # one slope per column (axis 1): column 0 gets 0.5·(-1) + 2·(-3), column 1 gets (-1)·(-0.5) + 3·(-2)
    xs, a = leaf(x, device), leaf([0.1, -0.2], device)
    F.prelu(xs, a).backward(Tensor(g, device=device))
    np.testing.assert_allclose(a.grad.numpy(), [-6.5, -5.5], rtol=1e-15)
    np.testing.assert_allclose(xs.grad.numpy(), np.where(x > 0, g, np.array([0.1, -0.2]) * g), rtol=1e-15)


def test_prelu_per_channel_nchw(device):
    rng = np.random.default_rng(3)
    x, g = rng.standard_normal((2, 3, 4, 5)), rng.standard_normal((2, 3, 4, 5))
    slopes = np.array([0.1, -0.5, 0.9])
    xs, a = leaf(x, device), leaf(slopes, device)
    y = F.prelu(xs, a)
    per_channel = slopes[None, :, None, None]
    np.testing.assert_allclose(y.numpy(), np.where(x > 0, x, per_channel * x), rtol=1e-15)
    y.backward(Tensor(g, device=device))
    np.testing.assert_allclose(a.grad.numpy(), np.where(x > 0, 0.0, g * x).sum(axis=(0, 2, 3)), rtol=1e-12)
    np.testing.assert_allclose(xs.grad.numpy(), np.where(x > 0, g, per_channel * g), rtol=1e-15)
    small = rng.uniform(0.1, 1.0, (2, 3, 2, 2)) * rng.choice([-1, 1], (2, 3, 2, 2))
    assert tg.gradcheck(F.prelu, [leaf(small, device), leaf(slopes, device)])


def test_prelu_with_one_slope_equals_leaky_relu(device):
    x = Tensor(X, device=device)
    np.testing.assert_array_equal(F.prelu(x, Tensor([0.01], dtype=np.float64, device=device)).numpy(), F.leaky_relu(x).numpy())


# ================================================================================================================
# CReLU keeps the norm
# ================================================================================================================
@SETTINGS
@given(data=st.data())
def test_crelu_keeps_the_norm_forward_and_backward(device, data):
    """Shang et al.: ‖crelu(x)‖ = ‖x‖; backward, each g entry reaches at most one x, so ‖dx‖ <= ‖g‖, with equality
    when g is crelu(x) itself (then dx = x)."""
    x = data.draw(away_from_zero(tst.shapes(min_dims=1, max_dims=3)), label="x")
    dim = data.draw(st.integers(0, x.ndim - 1), label="dim")
    y = F.crelu(Tensor(x, device=device), dim=dim).numpy()
    np.testing.assert_allclose(np.linalg.norm(y), np.linalg.norm(x), rtol=1e-14)
    g = data.draw(tst.arrays(y.shape), label="g")
    assert np.linalg.norm(grad_of(lambda t: F.crelu(t, dim=dim), x, g, device)) <= np.linalg.norm(g) * (1 + 1e-14)
    np.testing.assert_allclose(grad_of(lambda t: F.crelu(t, dim=dim), x, y, device), x, rtol=1e-15)


# ================================================================================================================
# errors
# ================================================================================================================
def test_prelu_rejects_a_weight_of_the_wrong_size(device):
    x = Tensor(np.zeros((2, 3, 4)), device=device)
    with pytest.raises(ValueError, match=r"prelu: weight of shape \(4,\) does not fit input of shape \(2, 3, 4\).*"
                                         r"shape \(1,\), or one per channel.*shape \(3,\)"):
        F.prelu(x, Tensor(np.ones(4), device=device))
    with pytest.raises(ValueError, match=r"prelu: weight of shape \(1, 3\)"):
        F.prelu(x, Tensor(np.ones((1, 3)), device=device))
    with pytest.raises(ValueError, match=r"prelu: weight of shape \(2,\) does not fit input of shape \(2,\).*\(1,\)"):
        F.prelu(Tensor(np.zeros(2), device=device), Tensor(np.ones(2), device=device))  # a 1-d input: C = 1
    with pytest.raises(TypeError, match="prelu: input and weight must have the same dtype, got float64 and float32"):
        F.prelu(x, Tensor([0.25], device=device))
    with pytest.raises(TypeError, match="prelu: weight must be a Tensor, got float"):
        F.prelu(x, 0.25)


def test_crelu_rejects_an_axis_out_of_range(device):
    with pytest.raises(ValueError, match=r"crelu: dim=2 is out of range for an input of shape \(2, 3\) "
                                         r"\(expected -2 <= dim < 2\)"):
        F.crelu(Tensor(np.zeros((2, 3)), device=device), dim=2)
    with pytest.raises(ValueError, match=r"crelu: dim=1 is out of range for an input of shape \(3,\)"):
        F.crelu(Tensor(np.zeros(3), device=device))  # the default dim=1 needs two axes
    with pytest.raises(ValueError, match=r"crelu: dim=0 is out of range for an input of shape \(\)"):
        F.crelu(Tensor(np.float64(1.0), device=device), dim=0)
    with pytest.raises(TypeError, match="crelu: dim must be an int, got float"):
        F.crelu(Tensor(np.zeros((2, 3)), device=device), dim=1.0)


def test_arguments_must_be_numbers_and_inputs_floating_point(device):
    x = Tensor(np.zeros(3), device=device)
    with pytest.raises(TypeError, match="leaky_relu: negative_slope must be a real number, got str"):
        F.leaky_relu(x, "0.1")
    with pytest.raises(TypeError, match="elu: alpha must be a real number, got NoneType"):
        F.elu(x, None)
    for fn, name in [(F.leaky_relu, "leaky_relu"), (F.elu, "elu"), (lambda t: F.crelu(t, 0), "crelu")]:
        with pytest.raises(TypeError, match=f"{name}: input must be a floating-point tensor, got dtype int64"):
            fn(Tensor(np.arange(3), device=device))
    assert F.leaky_relu(x, np.float32(0.5)).shape == (3,)  # NumPy numbers are numbers


def test_negative_and_large_parameters_are_accepted(device):
    """PyTorch accepts any negative_slope and any alpha; so does this library."""
    x = Tensor([-2.0, 3.0], device=device)
    np.testing.assert_allclose(F.leaky_relu(x, -1.0).numpy(), [2.0, 3.0])  # slope -1: |x|
    np.testing.assert_allclose(F.leaky_relu(x, 3.0).numpy(), [-6.0, 3.0])
    np.testing.assert_allclose(F.elu(x, 0.0).numpy(), [0.0, 3.0])
    assert nn.ELU(alpha=-2.0).alpha == -2.0 and nn.LeakyReLU(-0.5).negative_slope == -0.5


# ================================================================================================================
# float16: elementwise in float16, the slope gradient summed in float32
# ================================================================================================================
def test_float16_outputs_and_gradients():
    x32 = np.random.default_rng(5).uniform(-2, 2, (4, 3)).astype(np.float32)
    for fn in (F.leaky_relu, F.elu, F.crelu, lambda t: F.prelu(t, Tensor([0.25], dtype=t.dtype))):
        half = Tensor(x32, dtype=np.float16, requires_grad=True)
        y = fn(half)
        assert y.dtype == np.float16
        np.testing.assert_allclose(y.numpy(), fn(Tensor(x32.astype(np.float16).astype(np.float32))).numpy(),
                                   rtol=2e-3, atol=2e-3)
        y.sum().backward()
        assert half.grad.dtype == np.float16


def test_float16_prelu_slope_gradient_is_accumulated_in_float32():
    x = -np.full((64, 64, 4), 0.1, dtype=np.float16)  # 16384 terms of 0.0999756
    a = Tensor(np.array([0.25], dtype=np.float16), requires_grad=True)
    F.prelu(Tensor(x), a).backward(Tensor(np.ones_like(x)))
    assert a.grad.dtype == np.float16
    exact = float(x.astype(np.float64).sum())  # -1638.0
    np.testing.assert_allclose(a.grad.numpy().astype(np.float64), [exact], rtol=1e-3)


# ================================================================================================================
# modules
# ================================================================================================================
def test_modules_match_the_functions(device):
    x = Tensor(np.random.default_rng(6).standard_normal((2, 3, 4)), device=device)
    pairs = [
        (nn.LeakyReLU(), F.leaky_relu(x)),
        (nn.LeakyReLU(negative_slope=0.3), F.leaky_relu(x, 0.3)),
        (nn.ELU(), F.elu(x)),
        (nn.ELU(alpha=0.5), F.elu(x, 0.5)),
        (nn.CReLU(), F.crelu(x)),
        (nn.CReLU(dim=-1), F.crelu(x, -1)),
        (nn.PReLU(dtype="float64", device=device), F.prelu(x, Tensor([0.25], dtype=np.float64, device=device))),
        (nn.PReLU(3, init=0.1, dtype="float64", device=device), F.prelu(x, Tensor([0.1] * 3, dtype=np.float64, device=device))),
    ]
    for module, expected in pairs:
        assert module.training
        np.testing.assert_array_equal(module(x).numpy(), expected.numpy())
        np.testing.assert_array_equal(module.eval()(x).numpy(), expected.numpy())  # no mode dependence


def test_module_parameters_and_reprs(device):
    assert [list(m.parameters()) for m in (nn.LeakyReLU(), nn.ELU(), nn.CReLU())] == [[], [], []]
    prelu = nn.PReLU(device=device)
    assert [name for name, _ in prelu.named_parameters()] == ["weight"]
    assert prelu.weight.shape == (1,) and prelu.weight.dtype == np.float32 and prelu.weight.device == device
    np.testing.assert_array_equal(prelu.weight.numpy(), [0.25])
    np.testing.assert_array_equal(nn.PReLU(num_parameters=4, init=-0.5).weight.numpy(), [-0.5] * 4)
    assert repr(nn.LeakyReLU(0.2)) == "LeakyReLU(negative_slope=0.2)"
    assert repr(nn.PReLU(3)) == "PReLU(num_parameters=3)"
    assert repr(nn.CReLU()) == "CReLU(dim=1)" and repr(nn.ELU(alpha=0.5)) == "ELU(alpha=0.5)"
    with pytest.raises(ValueError, match="PReLU: num_parameters must be a positive int, got 0"):
        nn.PReLU(0)
    with pytest.raises(TypeError, match="LeakyReLU: negative_slope must be a real number"):
        nn.LeakyReLU("big")


def test_prelu_module_gradcheck_and_training_step(device):
    rng = np.random.default_rng(7)
    x = rng.uniform(0.1, 1.0, (2, 3, 2)) * rng.choice([-1, 1], (2, 3, 2))
    module = nn.PReLU(3, dtype="float64", device=device)
    assert tg.gradcheck_module(module, Tensor(x, device=device))
    # one SGD step moves each slope by -lr · Σ g·x over its channel's x <= 0
    from tinygrad_edu import optim

    opt = optim.SGD(module.parameters(), lr=0.1)
    module(Tensor(x, device=device)).sum().backward()
    opt.step()
    np.testing.assert_allclose(module.weight.numpy(), 0.25 - 0.1 * np.where(x > 0, 0, x).sum(axis=(0, 2)), rtol=1e-12)


def test_modules_in_a_network_train(device):
    """A small MLP with each variant trains on a separable problem (the loss goes down)."""
    from tinygrad_edu import optim

    rng = np.random.default_rng(8)
    x = rng.uniform(-1, 1, (32, 2)).astype(np.float32)
    target = Tensor((x[:, 0] * x[:, 1] > 0).astype(np.int64), device=device)
    inputs = Tensor(x, device=device)
    for act, width in [(nn.LeakyReLU(0.1), 16), (nn.PReLU(16, device=device), 16), (nn.ELU(), 16), (nn.CReLU(), 32)]:
        tg.manual_seed(0)
        model = nn.Sequential(nn.Linear(2, 16, device=device), act, nn.Linear(width, 2, device=device))
        opt = optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
        losses = []
        for _ in range(30):
            loss = F.cross_entropy(model(inputs), target)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        assert losses[-1] < 0.7 * losses[0], (type(act).__name__, losses)
