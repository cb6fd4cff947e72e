"""Tools to test layers, the library's own and a user's:

* ``tinygrad_edu.testing.registry``: every differentiable op of the package with inputs on which its gradient is
  checked (``tinygrad-edu gradcheck`` and ``tests/test_registry.py`` read it); ``register`` adds your own layer;
* ``tinygrad_edu.testing.strategies``: Hypothesis strategies (shapes, broadcastable pairs, values, layouts). They
  need the ``test`` extra (Hypothesis): ``pip install "tinygrad_edu[test]"``.
"""
