"""The registry of every differentiable op of the package, with inputs on which its gradient can be checked.

Each entry (a ``Differentiable``) names one public differentiable operation, a function ``fn`` of Tensors that runs
it (several variants at once, as a tuple of outputs, where the op has options), a ``make_inputs(rng)`` that draws
random float64 inputs of random small shapes on which central differences are meaningful, and the ``Function``
subclasses the entry exercises. Two users read it:

* the command line, ``tinygrad-edu gradcheck [NAME ...]``, which gradchecks the entries in a chosen dtype and on a
  chosen device and prints a table (``tinygrad_edu.cli``);
* the meta-test, ``tests/test_registry.py``, which fails when some ``Function`` subclass of the package is listed in
  no entry's ``functions``, and gradchecks every entry on every test device.

The public API::

    from tinygrad_edu.testing import registry

    registry.REGISTRY                   # name -> Differentiable, in registration order (the CLI's table order)
    registry.entries(["add", "mul"])    # the entries named; all of them for None or []
    inputs, report = registry.REGISTRY["add"].check(seed=0, dtype="float32", device="cpu")
    registry.TOLERANCES                 # eps, atol and rtol per dtype of the analytic pass
    registry.register(name, fn, make_inputs, functions, note="", eps=None)
    registry.all_functions()            # every Function subclass of the package
    registry.uncovered()                # those no entry lists (the meta-test's failures)
    registry.UNREGISTERED               # qualified name -> why no entry can exercise it

The entries live in one module per family of ops, next to the input generators only that family uses
(``_inputs.py`` holds the ones several families share). ``FAMILIES`` imports them in order, which is the order of
``REGISTRY``: arithmetic, matmul, elementwise, reductions, movement, conversion, linear, losses, activations (the
ReLU variants and maxout), normalization (layer norm, weight norm), dropout, batch_norm, convolution, pooling,
softmax, distributed.

**A new layer or op of the package adds an entry, or the meta-test fails**: one ``register(name, fn, make_inputs,
functions, note)`` call in the family module where it belongs (a new family: a new module, named in ``FAMILIES``
where its entries should appear).

Your own layer registers the same way, from your code (its module, or your test suite's ``conftest.py``)::

    from tinygrad_edu.testing.registry import REGISTRY, register
    from my_layers import Swish, swish          # your Function subclass, and the function that applies it

    register("swish", lambda x: (swish(x), swish(x, beta=2.0)), lambda rng: [rng.uniform(-1.5, 1.5, size=(3, 4))],
             (Swish,), "x (3, 4) in [-1.5, 1.5]; beta 1 (default) and 2")

    _, report = REGISTRY["swish"].check(seed=0, dtype="float32")   # in a test
    assert report.passed, report.describe()

An entry lives in the ``REGISTRY`` of the process that registered it: ``tinygrad_edu.cli.main(["gradcheck",
"swish"])``, run after the ``register`` call, checks it with the package's entries (a fresh ``tinygrad-edu
gradcheck`` process knows only the package's), and ``uncovered()`` looks at the package's own ``Function``
subclasses only.

What ``make_inputs`` guarantees, so that a correct backward passes in float64 with relative errors below 1e-7
(typically ~1e-10; see ``TOLERANCES`` for the round-off floor of the central differences):

* sides of 1 to 4 (size-1 axes included), broadcasting pairs where the op broadcasts;
* moderate values (mostly |x| <= 1.5), so the checked scalar <u, f(x)> and its round-off stay small;
* values away from kinks, ties and poles: log, sqrt, division and negative powers get inputs >= 0.2; relu, abs and
  clip inputs lie at least 0.05 from their kinks; maximum/minimum pairs and max/min reductions have no ties (gaps
  >= 0.04, so they survive rounding to float16 too);
* non-differentiable arguments (axes, integer targets, masks, indices) are fixed inside ``fn`` or derived from the
  input shapes, so an entry reads as a line of math.

Not registered (``UNREGISTERED``): ``ToDevice`` (``Tensor.to(device)``) needs two devices; ``FusedBatchNormFunction``
needs a backend with fused float16 kernels (CUDA).
"""

# The family modules register their entries as they are imported: the order of these imports is the order of
# REGISTRY, of entries() and of the rows of ``tinygrad-edu gradcheck``.
# isort: off
from tinygrad_edu.testing.registry._core import (
    REGISTRY,
    TOLERANCES,
    UNREGISTERED,
    Differentiable,
    all_functions,
    entries,
    register,
    uncovered,
)
from tinygrad_edu.testing.registry import arithmetic
from tinygrad_edu.testing.registry import matmul
from tinygrad_edu.testing.registry import elementwise
from tinygrad_edu.testing.registry import reductions
from tinygrad_edu.testing.registry import movement
from tinygrad_edu.testing.registry import conversion
from tinygrad_edu.testing.registry import linear
from tinygrad_edu.testing.registry import losses
from tinygrad_edu.testing.registry import activations
from tinygrad_edu.testing.registry import normalization
from tinygrad_edu.testing.registry import dropout
from tinygrad_edu.testing.registry import batch_norm
from tinygrad_edu.testing.registry import convolution
from tinygrad_edu.testing.registry import pooling
from tinygrad_edu.testing.registry import softmax
from tinygrad_edu.testing.registry import distributed
# isort: on

#: The family modules, in the order they register their entries.
FAMILIES: tuple[str, ...] = tuple(module.__name__.rsplit(".", 1)[-1] for module in (
    arithmetic, matmul, elementwise, reductions, movement, conversion, linear, losses, activations, normalization,
    dropout, batch_norm, convolution, pooling, softmax, distributed,
))

__all__ = ["FAMILIES", "Differentiable", "REGISTRY", "TOLERANCES", "UNREGISTERED", "all_functions", "entries",
           "register", "uncovered"]
