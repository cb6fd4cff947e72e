"""The benchmarks, installed as the subpackage ``tinygrad_edu.benchmarks`` (setup.cfg maps ``benchmarks/`` there,
as ``kernels/`` is mapped to ``tinygrad_edu.backend.kernels``). Each is also a script: ``python benchmarks/bench_mlp_step.py``.

* ``bench_mlp_step``: one SGD step of an MLP, the engine against the same step written by hand in NumPy;
* ``bench_batchnorm``: batchnorm's hand-derived backward against the composed primitives, and a step with it;
* ``bench_conv2d``: Conv2d forward + backward against im2col by hand;
* ``bench_fp16_matmul``: the CPU float16 matmul kernel against ``numpy.matmul`` in float32 and float16;
* ``suite``: all of them at once in one table of ratios (``tinygrad-edu bench``). Each module's ``suite_rows``
  returns its rows for that table.
"""
