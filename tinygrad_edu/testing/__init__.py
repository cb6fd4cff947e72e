"""Tools to test layers, the library's own and a user's: Hypothesis strategies (``tinygrad_edu.testing.strategies``).

Needs the ``test`` extra (Hypothesis): ``pip install "tinygrad_edu[test]"``.
"""
