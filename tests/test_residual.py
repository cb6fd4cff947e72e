"""Residual blocks (He et al. 2016) and stochastic depth (Huang et al. 2016): ``nn.ResidualBlock``,
``nn.StochasticDepth``, ``nn.survival_probabilities``, ``nn.expected_active_blocks``.

* shapes: identity shortcut, stride-2 downsampling and channel changes with both shortcut types (a 1×1 projection,
  or the zero-padded subsampled identity);
* the block is relu(F(x) + shortcut(x)): with F's last batch-norm scale at 0 it is relu(shortcut(x));
* gradients of every parameter and the input with ``gradcheck_module``, training and evaluation mode, float64 and
  float32 parameters;
* stochastic depth: a dropped block does not run its branch, the test-time output is relu(p·F(x) + shortcut(x)),
  empirical survival rates match p_l, the linear-decay rule and its expected depth (3L - 1)/4 ≈ 3L/4.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinygrad_edu as tg
from tinygrad_edu import Tensor, nn

SETTINGS = settings(max_examples=6, deadline=None)


def sample(shape, device, seed=0, dtype=np.float64):
    return Tensor(np.random.default_rng(seed).standard_normal(shape).astype(dtype), device=device)


def block(*args, device, **kwargs):
    return nn.ResidualBlock(*args, device=device, dtype="float64", **kwargs)


class Counting(nn.Module):
    """A branch that counts its forward calls: F(x) = 2x."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return x * 2.0


# ================================================================================================================
# shapes and structure
# ================================================================================================================
@pytest.mark.parametrize("shortcut", ["projection", "zeros"])
@pytest.mark.parametrize("cin, cout, stride, out_hw", [(3, 3, 1, (6, 5)), (2, 4, 2, (3, 3)), (2, 3, 1, (6, 5)),
                                                       (3, 3, 2, (3, 3))])
def test_shapes(device, shortcut, cin, cout, stride, out_hw):
    b = block(cin, cout, stride, shortcut, device=device)
    y = b(sample((2, cin, 6, 5), device))
    assert y.shape == (2, cout) + out_hw
    assert (y.numpy() >= 0).all()  # the final ReLU
    names = dict(b.named_parameters())
    has_projection = any(n.startswith("projection") for n in names)
    assert has_projection == (shortcut == "projection" and (cin != cout or stride != 1))
    assert names["residual.0.weight"].shape == (cout, cin, 3, 3) and names["residual.3.weight"].shape == (cout, cout, 3, 3)
    if has_projection:
        assert names["projection.0.weight"].shape == (cout, cin, 1, 1)


def test_zero_padded_shortcut_subsamples_and_pads_channels(device):
    b = block(2, 5, 2, "zeros", device=device)
    x = sample((2, 2, 5, 4), device)
    s = b.shortcut(x).numpy()
    assert s.shape == (2, 5, 3, 2)
    np.testing.assert_array_equal(s[:, :2], x.numpy()[:, :, ::2, ::2])
    np.testing.assert_array_equal(s[:, 2:], 0.0)


@pytest.mark.parametrize("shortcut", ["projection", "zeros"])
def test_block_is_relu_of_branch_plus_shortcut(device, shortcut):
    """With F's last BN scale γ = 0 (and β = 0), F(x) = 0: the block is relu(shortcut(x)); identity: relu(x)."""
    for cin, cout, stride in [(3, 3, 1), (2, 4, 2)]:
        b = block(cin, cout, stride, shortcut, device=device)
        b.residual[4].weight = nn.Parameter(Tensor(np.zeros(cout), device=device))
        x = sample((2, cin, 4, 4), device, seed=1)
        np.testing.assert_allclose(b(x).numpy(), np.maximum(b.shortcut(x).numpy(), 0), atol=1e-12)
    identity = block(3, 3, device=device)
    identity.residual[4].weight = nn.Parameter(Tensor(np.zeros(3), device=device))
    x = sample((2, 3, 4, 4), device, seed=2)
    np.testing.assert_allclose(identity(x).numpy(), np.maximum(x.numpy(), 0), atol=1e-12)


# ================================================================================================================
# gradients
# ================================================================================================================
@SETTINGS
@given(shortcut=st.sampled_from(["projection", "zeros"]), stride=st.integers(1, 2), cout=st.integers(2, 3),
       hw=st.tuples(st.integers(3, 5), st.integers(3, 5)), training=st.booleans())
def test_gradcheck_module_float64(device, shortcut, stride, cout, hw, training):
    b = block(2, cout, stride, shortcut, device=device).train(training)
    x = sample((2, 2) + hw, device, seed=sum(hw))
    assert tg.gradcheck_module(b, x, kinks="allow")


@pytest.mark.parametrize("shortcut", ["projection", "zeros"])
def test_gradcheck_module_float32_parameters(shortcut):
    b = nn.ResidualBlock(2, 4, 2, shortcut)
    assert tg.gradcheck_module(b, sample((2, 2, 4, 4), "cpu", dtype=np.float32), atol=1e-3, rtol=1e-2, kinks="allow")


def test_gradcheck_module_with_stochastic_depth(device):
    """Training with survival 0.5: the draw held fixed by reseeding before each evaluation, both outcomes."""
    b = block(2, 3, 2, "zeros", device=device, survival_prob=0.5)
    x = sample((2, 2, 4, 4), device, seed=3)
    outcomes = set()
    shortcut_only = np.maximum(b.shortcut(x).numpy(), 0)
    for seed in range(6):
        def run(t, seed=seed):
            tg.manual_seed(seed)
            return b(t)
        outcomes.add(np.array_equal(run(x).numpy(), shortcut_only))  # dropped in this draw?
        assert tg.gradcheck(run, [Tensor(x.numpy(), requires_grad=True, device=device)], kinks="allow")
    assert outcomes == {True, False}


# ================================================================================================================
# stochastic depth
# ================================================================================================================
def test_a_dropped_block_does_not_run_its_branch(device):
    b = block(2, 2, device=device, survival_prob=0.3)
    calls = []
    original = b.residual.forward
    b.residual.forward = lambda x: calls.append(1) or original(x)
    x = sample((2, 2, 3, 3), device)
    shortcut_only = np.maximum(x.numpy(), 0)
    dropped = 0
    for _ in range(40):
        y = b(x).numpy()
        if np.array_equal(y, shortcut_only):
            dropped += 1
    assert dropped + len(calls) == 40 and 0 < dropped < 40
    b.eval()
    calls.clear()
    b(x)
    assert len(calls) == 1  # evaluation always runs the branch


def test_evaluation_scales_the_branch_by_p(device):
    b = block(2, 3, 2, "projection", device=device, survival_prob=0.7).eval()
    x = sample((2, 2, 4, 4), device, seed=5)
    expected = np.maximum(0.7 * b.residual(x).numpy() + b.shortcut(x).numpy(), 0)
    np.testing.assert_allclose(b(x).numpy(), expected, rtol=1e-12, atol=1e-12)
    wrapper = nn.StochasticDepth(Counting(), 0.7).eval()
    np.testing.assert_allclose(wrapper(x).numpy(), x.numpy() * (1 + 0.7 * 2), rtol=1e-12)


def test_stochastic_depth_wrapper_training(device):
    branch = Counting()
    sd = nn.StochasticDepth(branch, 0.5)
    x = Tensor(np.ones((2, 3)), requires_grad=True, device=device)
    values = set()
    for _ in range(30):
        values.add(float(sd(x).numpy()[0, 0]))
    assert values == {1.0, 3.0}  # x alone, or x + 2x
    assert 0 < branch.calls < 30
    sd.survival_prob = 1.0
    sd(x).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), 3.0)


def test_empirical_survival_rates_match_p(device):
    probs = nn.survival_probabilities(4, q=0.5)
    n = 2000
    x = Tensor(np.ones(1), device=device)
    tg.manual_seed(123)
    for p in probs:
        branch = Counting()
        sd = nn.StochasticDepth(branch, p)
        for _ in range(n):
            sd(x)
        rate = branch.calls / n
        assert abs(rate - p) <= 4 * np.sqrt(p * (1 - p) / n) + 1e-12, (p, rate)


def test_survival_probability_rules():
    np.testing.assert_allclose(nn.survival_probabilities(4), [0.875, 0.75, 0.625, 0.5])
    np.testing.assert_allclose(nn.survival_probabilities(5, q=0.2), [1 - 0.8 * k / 5 for k in range(1, 6)])
    assert nn.survival_probabilities(3, q=0.8, rule="uniform") == [0.8, 0.8, 0.8]
    assert nn.survival_probabilities(10, q=1.0) == [1.0] * 10


@pytest.mark.parametrize("L", [1, 4, 54, 500])
def test_expected_active_blocks_is_three_quarters_of_L(L):
    """Σ p_l = L - (L + 1)/4 = (3L - 1)/4 for linear decay to q = 0.5: the paper's ≈ 3L/4 (exact up to 1/4)."""
    expected = nn.expected_active_blocks(nn.survival_probabilities(L, q=0.5))
    assert expected == pytest.approx((3 * L - 1) / 4)
    assert abs(expected - 3 * L / 4) == pytest.approx(0.25)
    assert nn.expected_active_blocks(nn.survival_probabilities(L, q=0.5, rule="uniform")) == pytest.approx(L / 2)


# ================================================================================================================
# errors
# ================================================================================================================
@pytest.mark.parametrize(
    "build, words",
    [
        (lambda: nn.ResidualBlock(2, 3, shortcut="conv"), ["ResidualBlock", "shortcut", "'conv'"]),
        (lambda: nn.ResidualBlock(4, 2, shortcut="zeros"), ["ResidualBlock", "zeros", "in_channels=4"]),
        (lambda: nn.ResidualBlock(0, 2), ["ResidualBlock", "in_channels"]),
        (lambda: nn.ResidualBlock(2, 2, stride=0), ["ResidualBlock", "stride"]),
        (lambda: nn.ResidualBlock(2, 2, survival_prob=0.0), ["ResidualBlock", "survival_prob", "(0, 1]"]),
        (lambda: nn.StochasticDepth(Counting(), 1.5), ["StochasticDepth", "survival_prob"]),
        (lambda: nn.survival_probabilities(0), ["survival_probabilities", "L"]),
        (lambda: nn.survival_probabilities(4, q=0), ["survival_probabilities", "q"]),
        (lambda: nn.survival_probabilities(4, rule="cosine"), ["rule", "'cosine'"]),
        (lambda: nn.expected_active_blocks([0.5, 1.5]), ["expected_active_blocks", "[0, 1]"]),
    ],
)
def test_constructor_errors(build, words):
    with pytest.raises(ValueError) as info:
        build()
    for word in words:
        assert word in str(info.value)


def test_input_errors():
    b = nn.ResidualBlock(2, 3)
    with pytest.raises(tg.InputError, match=r"ResidualBlock: expected an input of shape \(N, 2, H, W\), got shape \(1, 3, 4, 4\)"):
        b(Tensor(np.zeros((1, 3, 4, 4), np.float32)))
    with pytest.raises(TypeError, match="ResidualBlock: input must be a Tensor"):
        b(np.zeros((1, 2, 4, 4)))
    with pytest.raises(TypeError, match="StochasticDepth: block must be a Module"):
        nn.StochasticDepth(lambda x: x, 0.5)
