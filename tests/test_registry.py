"""The registry of differentiable functions (``tinygrad_edu.testing.registry``): complete, well formed, and right.

* The meta-test: every ``Function`` subclass of the package is exercised by some entry (a new op without an entry
  fails here, naming it).
* Every entry's gradient passes ``gradcheck`` in float64 on every device, on inputs drawn by its own
  ``make_inputs`` from seeds chosen by Hypothesis.
* In float64 the relative errors of these correct functions stay below 1e-7 (away from kinks, which the registry's
  inputs avoid).
"""

from __future__ import annotations

import gc
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinygrad_edu import Function, gradcheck
from tinygrad_edu.ops import Add
from tinygrad_edu.testing import registry

NAMES = list(registry.REGISTRY)


# ----------------------------------------------------------------------------------------------------------------
# the meta-test: complete
# ----------------------------------------------------------------------------------------------------------------
def test_every_function_is_covered_by_a_registry_entry():
    missing = registry.uncovered()
    assert not missing, (
        f"Function subclasses that no entry of tinygrad_edu/testing/registry/ exercises: {', '.join(missing)}. "
        "Register an entry for each (register(name, fn, make_inputs, functions), in the family module where it "
        "belongs), so the CLI and these tests check its gradient."
    )


def test_meta_test_names_a_function_without_entry():
    unlisted = type("Unlisted", (Function,), {"__module__": "tinygrad_edu.ops.unlisted"})
    try:
        assert registry.uncovered() == ["tinygrad_edu.ops.unlisted.Unlisted"]
    finally:  # Function.__subclasses__() holds weak references: once collected, the class is gone for other tests
        del unlisted
        gc.collect()
    assert registry.uncovered() == []


def test_meta_test_counts_an_abstract_base_as_covered_through_its_subclasses():
    names = {f"{f.__module__}.{f.__qualname__}" for f in registry.all_functions()}
    assert "tinygrad_edu.ops.reduce._Extremum" in names  # Max and Min's base: found, yet not reported
    assert "tinygrad_edu.ops.reduce._Extremum" not in registry.uncovered()
    without_max = {n: e for n, e in registry.REGISTRY.items() if n != "max"}
    assert set(registry.uncovered(without_max)) == {"tinygrad_edu.ops.reduce.Max", "tinygrad_edu.ops.reduce._Extremum"}


def test_meta_test_walks_every_subpackage_and_the_registry_defines_no_function():
    modules = {f.__module__ for f in registry.all_functions()}
    assert "tinygrad_edu.backend.kernels.matmul_cpu" in sys.modules  # kernels/: an ordinary subpackage, walked too
    assert {"tinygrad_edu.ops.elementwise", "tinygrad_edu.nn.functional.batch_norm"} <= modules
    assert not [m for m in modules if m.startswith("tinygrad_edu.testing")]  # entries and generators only


def test_each_family_module_registers_one_run_of_entries_in_the_order_of_families():
    families = [e.fn.__module__.rpartition(".")[2] for e in registry.REGISTRY.values()]
    runs = [family for i, family in enumerate(families) if i == 0 or family != families[i - 1]]
    assert runs == list(registry.FAMILIES)


def test_unregistered_functions_exist_and_are_listed_nowhere():
    names = {f"{f.__module__}.{f.__qualname__}" for f in registry.all_functions()}
    listed = {f"{f.__module__}.{f.__qualname__}" for e in registry.REGISTRY.values() for f in e.functions}
    for name in registry.UNREGISTERED:
        assert name in names, f"UNREGISTERED names {name}, which is no Function subclass of the package"
        assert name not in listed, f"{name} is both UNREGISTERED and listed by an entry"


# ----------------------------------------------------------------------------------------------------------------
# well formed
# ----------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_entry_draws_small_float64_inputs_reproducibly(name):
    entry = registry.REGISTRY[name]
    assert entry.name == name and entry.functions and entry.note
    for seed in range(10):
        arrays = entry.make_inputs(np.random.default_rng(seed))
        assert arrays and all(type(a) is np.ndarray and a.dtype == np.float64 for a in arrays)
        assert all(1 <= n <= 4 for a in arrays for n in a.shape), [a.shape for a in arrays]
        again = entry.make_inputs(np.random.default_rng(seed))
        assert all(np.array_equal(a, b) for a, b in zip(arrays, again))


def test_entries_selects_in_the_order_given_and_rejects_unknown_names():
    assert registry.entries() == list(registry.REGISTRY.values())
    assert [e.name for e in registry.entries(["mul", "add", "mul"])] == ["mul", "add"]
    with pytest.raises(ValueError, match="unknown function name.*nope.*Valid names: add, sub"):
        registry.entries(["add", "nope"])


def test_register_rejects_a_repeated_name_and_a_non_function():
    with pytest.raises(ValueError, match="'add' already exists"):
        registry.register("add", lambda a: a, lambda rng: [np.ones(2)], (Add,))
    with pytest.raises(TypeError, match="Function subclasses"):
        registry.register("new", lambda a: a, lambda rng: [np.ones(2)], (np.add,))
    assert "new" not in registry.REGISTRY
    try:
        entry = registry.register("new", lambda a: a + a, lambda rng: [np.ones(2)], (Add,))
        assert registry.REGISTRY["new"] is entry and entry.options("float32") == registry.TOLERANCES["float32"]
    finally:
        registry.REGISTRY.pop("new", None)


# ----------------------------------------------------------------------------------------------------------------
# right
# ----------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=5)
@given(seed=st.integers(0, 2**32 - 1))
def test_gradient_of_every_entry_in_float64(device, name, seed):
    entry = registry.REGISTRY[name]
    inputs = entry.tensors(np.random.default_rng(seed), np.float64, device)
    assert gradcheck(entry.fn, inputs, seed=seed, **entry.options(np.float64))


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("name", NAMES)
def test_relative_error_in_float64_is_below_1e_7(name, seed):
    inputs, report = registry.REGISTRY[name].check(seed, np.float64, "cpu")
    assert report.passed, report.describe()
    assert report.max_rel_error < 1e-7, (
        f"{name} (seed {seed}, shapes {[x.shape for x in inputs]}): max relative error {report.max_rel_error:.3g} "
        f"(max absolute error {report.max_abs_error:.3g}); inputs too close to a kink, or too large?"
    )
