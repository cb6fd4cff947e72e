"""Entries of ``tinygrad_edu.distributed``: ``GradientSink``, the identity through which ``DistributedDataParallel``
passes the model's outputs. (Synchronized batchnorm: ``batch_norm.py``. Across MPI processes both are tested in
``tests/test_distributed.py``.)
"""

from __future__ import annotations

from tinygrad_edu.distributed import GradientSink
from tinygrad_edu.testing.registry._core import register
from tinygrad_edu.testing.registry._inputs import _one, _uniform

register(
    "ddp_gradient_sink",
    lambda x: GradientSink.apply(x, reducer=None),
    _one(_uniform),
    (GradientSink,),
    "DistributedDataParallel's identity on the model's outputs (its backward queues the gradient all-reduce; "
    "without a reducer, as here, it is the identity)",
)
