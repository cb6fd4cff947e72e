"""Test configuration: Hypothesis profiles, the device fixture, the gpu marker."""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

import tinygrad_edu

# "ci" is deterministic (derandomized, no deadline): a property test never flakes in CI. "dev" explores more.
settings.register_profile(
    "ci", derandomize=True, database=None, deadline=None, max_examples=25, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile("dev", deadline=None, max_examples=200)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def _cuda_available() -> bool:
    try:
        return tinygrad_edu.cuda_is_available()
    except Exception:
        return False


CUDA = _cuda_available()
gpu = pytest.mark.gpu


def pytest_collection_modifyitems(config, items):
    skip = pytest.mark.skip(reason="needs CuPy and a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords and not CUDA:
            item.add_marker(skip)


#: Every device the core is tested on: NumPy, array_api_strict on a non-CPU device, and CUDA where present.
DEVICES = ["cpu", "strict", pytest.param("cuda", marks=gpu)]


@pytest.fixture(params=DEVICES, scope="session")
def device(request) -> str:
    return request.param


@pytest.fixture(autouse=True)
def _seeded():
    """Every test starts from the same random state."""
    tinygrad_edu.manual_seed(0)
    np.random.seed(0)
    yield
