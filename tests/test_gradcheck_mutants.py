"""Mutation tests of ``tinygrad_edu.gradcheck``: it passes correct backward passes and catches planted wrong ones.

Each layer below is a small hand-derived ``Function`` (array-API calls through ``ctx.xp`` only, so it runs on every
device of the ``device`` fixture), written once correctly and then as *mutants*: subclasses whose ``backward`` has one
classic bug planted in it. The correct version must pass ``gradcheck`` on Hypothesis inputs; every mutant must make it
raise ``GradcheckError``, on a fixed seeded input and on a few Hypothesis examples. A mutant the checker let through
would be a checker bug; so would one reported as a kink (``NonDifferentiablePointError``, not a ``GradcheckError``):
every layer here is smooth at the inputs drawn.

Layers and mutants:

* batch normalization in training mode (statistics over axis 0 of an (N, D) batch, biased variance):
  (a) the mean term of dx dropped, (b) the variance term of dx dropped, (c) dgamma = sum(dy), and constants of the
  closed form changed (N - 1 for N, ...). Mutant (b) is exactly what a check of the plain *sum* of the outputs
  (upstream gradient all ones) cannot see: the sum of a normalized column does not depend on the column, and both
  the true and the mutant dx vanish for dy = 1. ``gradcheck`` uses a random upstream gradient and catches it;
* leaky ReLU (slope 0.01): the wrong slope in backward (0.1, and 1 - slope);
* maxout over ``pieces`` (max over groups of the last axis): the gradient routed to the wrong piece;
* inverted dropout (p = 0.5): a backward that forgets its mask. The correct version passes because the checker
  reseeds the generator before every evaluation, so every forward draws the same mask.

Inputs keep away from kinks and ties (leaky ReLU values away from 0, maxout values distinct and 0.05 apart), and batch
columns have a spread well above batchnorm's eps, so central differences are meaningful.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import tinygrad_edu as tg
from tinygrad_edu import Function, Tensor
from tinygrad_edu.testing import strategies as tst


# ================================================================================================================
# the layers: each correct version beside its mutants
# ================================================================================================================
# -- batch normalization (training mode) -------------------------------------------------------------------------
class BatchNorm(Function):
    """y = gamma * (x - mean) / sqrt(var + eps) + beta, statistics over axis 0 of x (N, D); biased variance.

    With xhat = (x - mean) / sigma and sigma = sqrt(var + eps), per column:
        dx     = gamma / (N sigma) * (N dy - sum(dy) - xhat * sum(dy * xhat))
        dgamma = sum(dy * xhat)
        dbeta  = sum(dy)
    """

    EPS = 1e-5

    @staticmethod
    def forward(ctx, x, gamma, beta):
        xp = ctx.xp
        mean = xp.mean(x, axis=0)
        centered = x - mean
        var = xp.mean(centered * centered, axis=0)
        sigma = xp.sqrt(var + BatchNorm.EPS)
        xhat = centered / sigma
        ctx.save_for_backward(xhat, sigma, gamma)
        return gamma * xhat + beta

    @staticmethod
    def backward(ctx, dy):
        xp = ctx.xp
        xhat, sigma, gamma = ctx.saved_tensors
        n = xhat.shape[0]
        sum_dy = xp.sum(dy, axis=0)
        sum_dy_xhat = xp.sum(dy * xhat, axis=0)
        dx = gamma / (n * sigma) * (n * dy - sum_dy - xhat * sum_dy_xhat)
        return dx, sum_dy_xhat, sum_dy


class BatchNormNoMeanTerm(BatchNorm):
    """Mutant (a): forgets that the mean depends on x (the ``- sum(dy)`` term)."""

    @staticmethod
    def backward(ctx, dy):
        xp = ctx.xp
        xhat, sigma, gamma = ctx.saved_tensors
        n = xhat.shape[0]
        sum_dy = xp.sum(dy, axis=0)
        sum_dy_xhat = xp.sum(dy * xhat, axis=0)
        dx = gamma / (n * sigma) * (n * dy - xhat * sum_dy_xhat)
        return dx, sum_dy_xhat, sum_dy


class BatchNormNoVarianceTerm(BatchNorm):
    """Mutant (b): forgets that the variance depends on x (the ``- xhat * sum(dy * xhat)`` term)."""

    @staticmethod
    def backward(ctx, dy):
        xp = ctx.xp
        xhat, sigma, gamma = ctx.saved_tensors
        n = xhat.shape[0]
        sum_dy = xp.sum(dy, axis=0)
        sum_dy_xhat = xp.sum(dy * xhat, axis=0)
        dx = gamma / (n * sigma) * (n * dy - sum_dy)
        return dx, sum_dy_xhat, sum_dy


class BatchNormWrongDgamma(BatchNorm):
    """Mutant (c): dgamma = sum(dy), the gradient of beta, instead of sum(dy * xhat). Its dx is correct."""

    @staticmethod
    def backward(ctx, dy):
        xp = ctx.xp
        xhat, sigma, gamma = ctx.saved_tensors
        n = xhat.shape[0]
        sum_dy = xp.sum(dy, axis=0)
        sum_dy_xhat = xp.sum(dy * xhat, axis=0)
        dx = gamma / (n * sigma) * (n * dy - sum_dy - xhat * sum_dy_xhat)
        return dx, sum_dy, sum_dy


#: The constants of the closed form of dx, as written in ``BatchNorm.backward``:
#:     dx = gamma / (PREFACTOR_N * sigma) * (DY_N * dy - MEAN_COEF * sum(dy) - VAR_COEF * xhat * sum(dy * xhat))
#: with PREFACTOR_N = DY_N = N (offsets 0 below) and MEAN_COEF = VAR_COEF = 1.
CORRECT_CONSTANTS = {"prefactor_n_offset": 0, "dy_n_offset": 0, "mean_coef": 1.0, "var_coef": 1.0}


def batchnorm_with_constants(**changes) -> type[BatchNorm]:
    """``BatchNorm`` whose backward uses the closed form with some of its constants changed (see CORRECT_CONSTANTS)."""
    unknown = set(changes) - set(CORRECT_CONSTANTS)
    assert not unknown, f"unknown constants {unknown}"
    constants = {**CORRECT_CONSTANTS, **changes}

    class BatchNormConstants(BatchNorm):
        @staticmethod
        def backward(ctx, dy):
            xp = ctx.xp
            xhat, sigma, gamma = ctx.saved_tensors
            n = xhat.shape[0]
            sum_dy = xp.sum(dy, axis=0)
            sum_dy_xhat = xp.sum(dy * xhat, axis=0)
            prefactor_n = n + constants["prefactor_n_offset"]
            dy_n = n + constants["dy_n_offset"]
            dx = gamma / (prefactor_n * sigma) * (
                dy_n * dy - constants["mean_coef"] * sum_dy - constants["var_coef"] * xhat * sum_dy_xhat
            )
            return dx, sum_dy_xhat, sum_dy

    BatchNormConstants.__name__ = f"BatchNorm{changes}"
    return BatchNormConstants


# -- leaky ReLU --------------------------------------------------------------------------------------------------
class LeakyReLU(Function):
    """y = x for x > 0, slope * x otherwise; dy/dx = 1 or slope."""

    SLOPE = 0.01

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return ctx.xp.where(x > 0, x, LeakyReLU.SLOPE * x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return ctx.xp.where(x > 0, g, LeakyReLU.SLOPE * g)


class LeakyReLUSlopeTenTimes(LeakyReLU):
    """Mutant: backward uses slope 0.1, forward 0.01."""

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return ctx.xp.where(x > 0, g, 0.1 * g)


class LeakyReLUOneMinusSlope(LeakyReLU):
    """Mutant: backward uses 1 - slope (0.99) on the negative side."""

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return ctx.xp.where(x > 0, g, (1 - LeakyReLU.SLOPE) * g)


# -- maxout ------------------------------------------------------------------------------------------------------
class Maxout(Function):
    """x (N, D * pieces) viewed as (N, D, pieces); y (N, D) is the max over the pieces.

    The gradient of each output goes to the piece that attained the max (inputs never tie here).
    """

    PIECES = 2

    @staticmethod
    def forward(ctx, x):
        n, width = x.shape
        groups = ctx.xp.reshape(x, (n, width // ctx.PIECES, ctx.PIECES))
        ctx.save_for_backward(groups)
        return ctx.xp.max(groups, axis=-1)

    @staticmethod
    def route(ctx, groups):
        """Where the gradient of each output goes: 1 at the argmax piece of its group, 0 elsewhere."""
        xp = ctx.xp
        return xp.astype(groups == xp.max(groups, axis=-1, keepdims=True), groups.dtype)

    @staticmethod
    def backward(ctx, g):
        xp = ctx.xp
        (groups,) = ctx.saved_tensors
        dgroups = ctx.route(ctx, groups) * xp.expand_dims(g, axis=-1)
        n, d, pieces = groups.shape
        return xp.reshape(dgroups, (n, d * pieces))


class MaxoutToArgmin(Maxout):
    """Mutant: routes the gradient to the smallest piece (max and min swapped in backward)."""

    @staticmethod
    def route(ctx, groups):
        xp = ctx.xp
        return xp.astype(groups == xp.min(groups, axis=-1, keepdims=True), groups.dtype)


class MaxoutToNextPiece(Maxout):
    """Mutant: off by one, the gradient goes to the piece after the argmax (cyclically)."""

    @staticmethod
    def route(ctx, groups):
        return ctx.xp.roll(Maxout.route(ctx, groups), 1, axis=-1)


class MaxoutToFirstPiece(Maxout):
    """Mutant: the gradient always goes to piece 0 (right only where piece 0 is the max)."""

    @staticmethod
    def route(ctx, groups):
        xp = ctx.xp
        first = xp.ones_like(groups[:, :, :1])
        return xp.concat([first, xp.zeros_like(groups[:, :, 1:])], axis=-1)


# -- inverted dropout --------------------------------------------------------------------------------------------
class Dropout(Function):
    """Training-mode inverted dropout: y = x * mask / (1 - p), mask ~ Bernoulli(1 - p) from the backend's generator."""

    P = 0.5

    @staticmethod
    def forward(ctx, x):
        backend = ctx.backend
        mask = backend.bernoulli(tuple(x.shape), 1 - Dropout.P, backend.numpy_dtype(x.dtype))
        ctx.save_for_backward(mask)
        return x * mask / (1 - Dropout.P)

    @staticmethod
    def backward(ctx, g):
        (mask,) = ctx.saved_tensors
        return g * mask / (1 - Dropout.P)


class DropoutIgnoresMask(Dropout):
    """Mutant: backward scales but forgets the mask, so dropped units get a gradient."""

    @staticmethod
    def backward(ctx, g):
        return g / (1 - Dropout.P)


# ================================================================================================================
# helpers and strategies
# ================================================================================================================
def leaves(device: str, *arrays: np.ndarray) -> list[Tensor]:
    return [Tensor(np.asarray(a, dtype=np.float64), requires_grad=True, device=device) for a in arrays]


def batchnorm_check(op: type[Function], device: str, x, gamma, beta) -> bool:
    return tg.gradcheck(op.apply, leaves(device, x, gamma, beta))


def batch_shapes(min_batch: int = 2):
    """(N, D) with N in min_batch..5 and D in 1..3."""
    return st.tuples(st.integers(min_batch, 5), st.integers(1, 3))


def well_spread(x: np.ndarray) -> bool:
    """Every column's standard deviation is far above sqrt(BatchNorm.EPS): xhat is O(1), not squashed by eps."""
    return bool(np.std(x, axis=0).min() > 0.1)


@st.composite
def batchnorm_inputs(draw, gamma_margin: float = 0.0, min_batch: int = 2):
    """x (N, D) with well-spread columns, gamma and beta (D,); gamma at least ``gamma_margin`` away from 0."""
    n, d = draw(batch_shapes(min_batch))
    x = draw(tst.arrays((n, d), dtype="float64"))
    assume(well_spread(x))
    if gamma_margin:
        gamma = draw(tst.arrays((d,), dtype="float64", avoid=(0.0,), margin=gamma_margin))
    else:
        gamma = draw(tst.arrays((d,), dtype="float64"))
    beta = draw(tst.arrays((d,), dtype="float64"))
    return x, gamma, beta


def maxout_inputs(pieces: int):
    """x (N, D * pieces) with all values at least 0.05 apart (``unique=True``): no max ever ties."""
    return batch_shapes().flatmap(
        lambda shape: tst.arrays((shape[0], shape[1] * pieces), dtype="float64", unique=True, margin=0.05)
    )


def seeded_batch(n: int = 4, d: int = 3, seed: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A fixed batchnorm input: x with spread columns, gamma away from 0 (both signs), beta."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)) * np.array([1.0, 2.0, 1.5])[:d] + np.array([0.5, -1.0, 2.0])[:d]
    gamma = np.array([1.5, -0.7, 0.9])[:d]
    beta = np.array([0.2, -0.3, 0.1])[:d]
    assert well_spread(x)
    return x, gamma, beta


def seeded_distinct(n: int, width: int, seed: int = 2) -> np.ndarray:
    """A fixed maxout input with values 0.25 apart (a shuffled ladder): no ties."""
    rng = np.random.default_rng(seed)
    return ((rng.permutation(n * width) - n * width / 2) * 0.25).reshape(n, width)


def dropout_mask(device: str, shape: tuple[int, ...], seed: int) -> np.ndarray:
    """The mask Dropout.forward draws right after ``manual_seed(seed)`` (what gradcheck does before each evaluation)."""
    tg.manual_seed(seed)
    backend = tg.get_backend(device)
    mask = backend.to_host(backend.bernoulli(shape, 1 - Dropout.P, np.dtype(np.float64)))
    tg.manual_seed(0)
    return mask


SETTINGS_CORRECT = settings(max_examples=15, deadline=None)
SETTINGS_MUTANT = settings(max_examples=6, deadline=None)


# ================================================================================================================
# batch normalization
# ================================================================================================================
BATCHNORM_MUTANTS = [BatchNormNoMeanTerm, BatchNormNoVarianceTerm, BatchNormWrongDgamma]


@SETTINGS_CORRECT
@given(inputs=batchnorm_inputs())
def test_batchnorm_correct_passes(device, inputs):
    assert batchnorm_check(BatchNorm, device, *inputs) is True


def test_batchnorm_forward_normalizes(device):
    """The forward the mutants share is batchnorm: columns of y have mean beta and standard deviation |gamma|."""
    x, gamma, beta = seeded_batch()
    y = BatchNorm.apply(*[Tensor(a, device=device) for a in (x, gamma, beta)]).numpy()
    np.testing.assert_allclose(y.mean(axis=0), beta, atol=1e-12)
    np.testing.assert_allclose(y.std(axis=0), np.abs(gamma) * np.sqrt(x.var(axis=0) / (x.var(axis=0) + BatchNorm.EPS)))


@pytest.mark.parametrize("mutant", BATCHNORM_MUTANTS, ids=lambda m: m.__name__)
def test_batchnorm_mutant_caught_seeded(device, mutant):
    with pytest.raises(tg.GradcheckError):
        batchnorm_check(mutant, device, *seeded_batch())


@SETTINGS_MUTANT
@given(inputs=batchnorm_inputs(gamma_margin=0.25), mutant=st.sampled_from(BATCHNORM_MUTANTS))
def test_batchnorm_mutant_caught(device, inputs, mutant):
    with pytest.raises(tg.GradcheckError):
        batchnorm_check(mutant, device, *inputs)


def test_batchnorm_mutants_blamed_on_the_right_input(device):
    """Checked one input at a time: the dx mutants fail on x only, the dgamma mutant on gamma only."""
    x, gamma, beta = seeded_batch()

    def check(op, wrt):  # gradcheck with only input ``wrt`` requiring grad
        arrays = (x, gamma, beta)
        inputs = [Tensor(a, requires_grad=(k == wrt), device=device) for k, a in enumerate(arrays)]
        return tg.gradcheck(op.apply, inputs)

    for mutant, wrong in [(BatchNormNoMeanTerm, 0), (BatchNormNoVarianceTerm, 0), (BatchNormWrongDgamma, 1)]:
        for wrt in range(3):
            if wrt == wrong:
                with pytest.raises(tg.GradcheckError):
                    check(mutant, wrt)
            else:
                assert check(mutant, wrt) is True, (mutant.__name__, wrt)


# -- why the upstream gradient must be random: a summed check misses mutant (b) ---------------------------------
def summed_check(op: type[Function], device: str, arrays, eps=1e-6, atol=1e-5, rtol=1e-3) -> bool:
    """The naive check, by hand: backward of ``op(...).sum()`` (upstream gradient all ones) against central differences
    of the summed output. True when every input's gradient matches."""
    inputs = leaves(device, *arrays)
    op.apply(*inputs).sum().backward()

    def summed(values) -> float:
        with tg.no_grad():
            return float(op.apply(*[Tensor(v, device=device) for v in values]).numpy().sum())

    for k, array in enumerate(arrays):
        analytic = inputs[k].grad.numpy()
        numeric = np.zeros(array.shape)
        for index in np.ndindex(array.shape):
            plus = [np.array(a, dtype=np.float64) for a in arrays]
            minus = [np.array(a, dtype=np.float64) for a in arrays]
            plus[k][index] += eps
            minus[k][index] -= eps
            numeric[index] = (summed(plus) - summed(minus)) / (2 * eps)
        if not np.all(np.abs(analytic - numeric) <= atol + rtol * np.abs(numeric)):
            return False
    return True


def test_summed_check_misses_missing_variance_term_but_gradcheck_catches_it(device):
    x, gamma, beta = seeded_batch()
    arrays = (x, gamma, beta)
    # the naive check is a real check: it passes the correct batchnorm and catches mutant (a) ...
    assert summed_check(BatchNorm, device, arrays)
    assert not summed_check(BatchNormNoMeanTerm, device, arrays)
    # ... but with dy = 1 the variance term sum(dy * xhat) = sum(xhat) = 0, so mutant (b) agrees with the truth
    assert summed_check(BatchNormNoVarianceTerm, device, arrays)
    # a random upstream gradient exposes it
    with pytest.raises(tg.GradcheckError):
        batchnorm_check(BatchNormNoVarianceTerm, device, *arrays)


@SETTINGS_MUTANT
@given(inputs=batchnorm_inputs(gamma_margin=0.25))
def test_summed_check_misses_missing_variance_term_property(device, inputs):
    assert summed_check(BatchNormNoVarianceTerm, device, inputs)
    with pytest.raises(tg.GradcheckError):
        batchnorm_check(BatchNormNoVarianceTerm, device, *inputs)


# -- mutated constants -------------------------------------------------------------------------------------------
CONSTANT_MUTATIONS = {
    "N-1 in the prefactor": {"prefactor_n_offset": -1},
    "N+1 in the prefactor": {"prefactor_n_offset": 1},
    "N-1 times dy": {"dy_n_offset": -1},
    "twice the mean term": {"mean_coef": 2.0},
    "half the mean term": {"mean_coef": 0.5},
    "twice the variance term": {"var_coef": 2.0},
    "half the variance term": {"var_coef": 0.5},
}


def test_batchnorm_with_unchanged_constants_passes(device):
    """The parametrized backward is the correct one when nothing is changed, so only the mutation can fail."""
    assert batchnorm_check(batchnorm_with_constants(), device, *seeded_batch()) is True


@pytest.mark.parametrize("changes", list(CONSTANT_MUTATIONS.values()), ids=list(CONSTANT_MUTATIONS))
def test_batchnorm_mutated_constant_caught_seeded(device, changes):
    with pytest.raises(tg.GradcheckError):
        batchnorm_check(batchnorm_with_constants(**changes), device, *seeded_batch())


@SETTINGS_MUTANT
@given(
    # N >= 3: with two samples x̂ = ±1 and the true dL/dx is O(eps), so a mutant that only rescales it (N + 1 in the
    # prefactor) is numerically the same function there: no checker can tell them apart
    inputs=batchnorm_inputs(gamma_margin=0.25, min_batch=3),
    constant=st.sampled_from(sorted(CORRECT_CONSTANTS)),
    integer_offset=st.sampled_from([-1, 1, 2]),
    factor=st.sampled_from([0.0, 0.5, 0.8, 1.25, 2.0, -1.0]),
)
def test_batchnorm_random_constant_mutation_caught(device, inputs, constant, integer_offset, factor):
    """A random constant of the closed form, changed at random (an integer N by an offset, a coefficient by a factor)."""
    changes = {constant: integer_offset} if constant.endswith("offset") else {constant: CORRECT_CONSTANTS[constant] * factor}
    with pytest.raises(tg.GradcheckError):
        batchnorm_check(batchnorm_with_constants(**changes), device, *inputs)


# ================================================================================================================
# leaky ReLU
# ================================================================================================================
LEAKY_MUTANTS = [LeakyReLUSlopeTenTimes, LeakyReLUOneMinusSlope]


def leaky_values(shape):
    return tst.arrays(shape, dtype="float64", avoid=(0.0,), margin=0.05)


@SETTINGS_CORRECT
@given(x=batch_shapes().flatmap(leaky_values))
def test_leaky_relu_correct_passes(device, x):
    assert tg.gradcheck(LeakyReLU.apply, leaves(device, x)) is True


@pytest.mark.parametrize("mutant", LEAKY_MUTANTS, ids=lambda m: m.__name__)
def test_leaky_relu_mutant_caught_seeded(device, mutant):
    x = np.random.default_rng(3).uniform(-2, 2, size=(4, 3))
    x[np.abs(x) < 0.05] = 0.5
    assert (x < 0).any()
    with pytest.raises(tg.GradcheckError):
        tg.gradcheck(mutant.apply, leaves(device, x))


@SETTINGS_MUTANT
@given(x=batch_shapes().flatmap(leaky_values), mutant=st.sampled_from(LEAKY_MUTANTS))
def test_leaky_relu_mutant_caught(device, x, mutant):
    assume((x < 0).any())  # the mutants differ from the truth only on the negative side
    with pytest.raises(tg.GradcheckError):
        tg.gradcheck(mutant.apply, leaves(device, x))


# ================================================================================================================
# maxout
# ================================================================================================================
MAXOUT_MUTANTS = [MaxoutToArgmin, MaxoutToNextPiece, MaxoutToFirstPiece]


def with_pieces(op: type[Maxout], pieces: int) -> type[Maxout]:
    """``op`` (the correct maxout or a mutant) over ``pieces`` pieces."""
    return op if pieces == op.PIECES else type(f"{op.__name__}{pieces}", (op,), {"PIECES": pieces})


@pytest.mark.parametrize("pieces", [2, 3])
def test_maxout_forward(device, pieces):
    x = seeded_distinct(3, 2 * pieces)
    y = with_pieces(Maxout, pieces).apply(Tensor(x, device=device)).numpy()
    np.testing.assert_array_equal(y, x.reshape(3, 2, pieces).max(axis=-1))


@SETTINGS_CORRECT
@given(data=st.data(), pieces=st.sampled_from([2, 3]))
def test_maxout_correct_passes(device, data, pieces):
    x = data.draw(maxout_inputs(pieces), label="x")
    assert tg.gradcheck(with_pieces(Maxout, pieces).apply, leaves(device, x)) is True


@pytest.mark.parametrize("pieces", [2, 3])
@pytest.mark.parametrize("mutant", MAXOUT_MUTANTS, ids=lambda m: m.__name__)
def test_maxout_mutant_caught_seeded(device, mutant, pieces):
    x = seeded_distinct(4, 3 * pieces)
    assert (x.reshape(4, 3, pieces).argmax(axis=-1) != 0).any()  # piece 0 is not always the max
    with pytest.raises(tg.GradcheckError):
        tg.gradcheck(with_pieces(mutant, pieces).apply, leaves(device, x))


@SETTINGS_MUTANT
@given(data=st.data(), pieces=st.sampled_from([2, 3]), mutant=st.sampled_from(MAXOUT_MUTANTS))
def test_maxout_mutant_caught(device, data, pieces, mutant):
    x = data.draw(maxout_inputs(pieces), label="x")
    if mutant is MaxoutToFirstPiece:  # right wherever piece 0 is the max: needs a group where it is not
        assume((x.reshape(x.shape[0], -1, pieces).argmax(axis=-1) != 0).any())
    with pytest.raises(tg.GradcheckError):
        tg.gradcheck(with_pieces(mutant, pieces).apply, leaves(device, x))


# ================================================================================================================
# inverted dropout
# ================================================================================================================
def test_dropout_forward_is_masked_and_scaled(device):
    x = np.arange(1.0, 21.0).reshape(4, 5)
    mask = dropout_mask(device, x.shape, seed=7)
    assert 0 < mask.sum() < mask.size
    tg.manual_seed(7)
    y = Dropout.apply(Tensor(x, device=device)).numpy()
    np.testing.assert_allclose(y, x * mask * 2.0)


@SETTINGS_CORRECT
@given(x=batch_shapes().flatmap(lambda shape: tst.arrays(shape, dtype="float64")), seed=st.integers(0, 2**16))
def test_dropout_correct_passes(device, x, seed):
    """Passes only because gradcheck reseeds before every evaluation: each forward draws the same mask."""
    assert tg.gradcheck(Dropout.apply, leaves(device, x), seed=seed) is True


def test_dropout_mutant_caught_seeded(device):
    x = np.random.default_rng(4).uniform(-2, 2, size=(4, 5))
    mask = dropout_mask(device, x.shape, seed=0)
    assert (mask == 0).any()  # some unit is dropped, so ignoring the mask matters
    assert tg.gradcheck(Dropout.apply, leaves(device, x), seed=0) is True
    with pytest.raises(tg.GradcheckError):
        tg.gradcheck(DropoutIgnoresMask.apply, leaves(device, x), seed=0)


@SETTINGS_MUTANT
@given(x=batch_shapes().flatmap(lambda shape: tst.arrays(shape, dtype="float64")), seed=st.integers(0, 2**16))
def test_dropout_mutant_caught(device, x, seed):
    assume((dropout_mask(device, x.shape, seed) == 0).any())
    with pytest.raises(tg.GradcheckError):
        tg.gradcheck(DropoutIgnoresMask.apply, leaves(device, x), seed=seed)


# ================================================================================================================
# properties learners study, on the correct layers
# ================================================================================================================
@SETTINGS_CORRECT
@given(inputs=batchnorm_inputs(), data=st.data())
def test_batchnorm_input_gradient_sums_to_zero_over_the_batch(device, inputs, data):
    """Shifting every sample of a column by the same amount leaves batchnorm's output unchanged, so for any upstream
    gradient dL/dx sums to zero over the batch, column by column. (Scaling a column changes the output only through
    eps, so Σ dx·xhat = γ/σ · Σ dy·xhat · eps/(var + eps): zero as eps -> 0.)"""
    x, gamma, beta = leaves(device, *inputs)
    upstream = data.draw(tst.arrays(inputs[0].shape))
    BatchNorm.apply(x, gamma, beta).backward(upstream)
    dx = x.grad.numpy()
    var = inputs[0].var(axis=0)
    sigma = np.sqrt(var + BatchNorm.EPS)
    xhat = (inputs[0] - inputs[0].mean(axis=0)) / sigma
    np.testing.assert_allclose(dx.sum(axis=0), 0.0, atol=1e-9)
    expected = inputs[1] / sigma * (upstream * xhat).sum(axis=0) * BatchNorm.EPS / (var + BatchNorm.EPS)
    np.testing.assert_allclose((dx * xhat).sum(axis=0), expected, atol=1e-9)


@SETTINGS_CORRECT
@given(inputs=batchnorm_inputs())
def test_batchnorm_normalizes_each_column_to_zero_mean_unit_variance(device, inputs):
    x, _, _ = inputs
    d = x.shape[1]
    y = BatchNorm.apply(*[Tensor(a, device=device) for a in (x, np.ones(d), np.zeros(d))]).numpy()
    np.testing.assert_allclose(y.mean(axis=0), 0.0, atol=1e-10)
    np.testing.assert_allclose(y.var(axis=0), x.var(axis=0) / (x.var(axis=0) + BatchNorm.EPS), rtol=1e-10)


def test_inverted_dropout_keeps_the_expectation(device):
    """E[dropout(x)] = x: the mask keeps a unit with probability 1 - p and scales it by 1 / (1 - p)."""
    tg.manual_seed(3)
    x = Tensor(np.linspace(-2.0, 2.0, 8), device=device)
    samples = np.stack([Dropout.apply(x).numpy() for _ in range(4000)])
    kept = samples != 0
    assert abs(kept.mean() - (1 - Dropout.P)) < 0.01
    np.testing.assert_allclose(samples.mean(axis=0), x.numpy(), atol=0.1)  # 4000 samples: standard error < 0.04


# -- non-finite values: NaN never passes --------------------------------------------------------------------------
class LeakyReLUNaNBackward(LeakyReLU):
    """Mutant: backward multiplies by NaN (every comparison with NaN is False: a naive tolerance test passes it)."""

    @staticmethod
    def backward(ctx, g):
        return LeakyReLU.backward(ctx, g) * float("nan")


class LeakyReLUInfBackward(LeakyReLU):
    """Mutant: backward returns an infinite gradient for one element."""

    @staticmethod
    def backward(ctx, g):
        grad = LeakyReLU.backward(ctx, g)
        return ctx.xp.where(ctx.xp.arange(grad.shape[-1], device=grad.device) == 1, float("inf"), grad)


class WrongLog(Function):
    """y = log(x), with a wrong backward (3/x instead of 1/x); at x < 0 its output is NaN."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return ctx.xp.log(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * 3 / x


@pytest.mark.parametrize("mutant,where", [(LeakyReLUNaNBackward, r"index \(0, 0\): analytic nan"),
                                          (LeakyReLUInfBackward, r"index \(0, 1\): analytic inf")])
def test_nan_or_inf_in_a_backward_is_caught_and_located(device, mutant, where):
    x = np.array([[0.5, -1.5, 2.0], [-0.7, 1.1, -2.2]])
    with pytest.raises(tg.GradcheckError, match=r"a gradient is NaN or infinite") as error:
        tg.gradcheck(mutant.apply, leaves(device, x))
    assert re.search(where, str(error.value)) and "NON-FINITE: the analytic gradient (backward)" in str(error.value)


def test_a_nan_output_is_caught_and_located_whatever_the_backward(device):
    x = np.array([-1.0, 2.0, 3.0])  # log(-1) is NaN: the numeric derivatives are all NaN
    with np.errstate(invalid="ignore"), pytest.raises(tg.GradcheckError) as error:
        tg.gradcheck(WrongLog.apply, leaves(device, x))
    assert "the function's output is not finite (output 0 at index (0,) is nan)" in str(error.value)
    report = tg.check_gradients(WrongLog.apply, leaves(device, np.array([1.0, 2.0, 3.0])))
    assert not report.passed and report.nonfinite_output is None  # in its domain, the wrong backward is caught
