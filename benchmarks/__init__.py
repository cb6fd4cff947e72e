"""The benchmarks: speed measured as ratios against hand-written NumPy (and cuBLAS on a GPU), side by side.

``benchmarks/`` is installed with the package as the subpackage ``tinygrad_edu.benchmarks`` (``package_dir`` in
setup.cfg); the benchmarks import it from there, so run them after ``pip install -e .`` (extras: ``[distributed]``
for ``bench_distributed``, ``[cuda13]``/``[cuda12]`` for the GPU). ``tinygrad-edu bench`` (``suite``) runs them all
and prints one table of ratios; each file is also a script with more sizes, reports and ``--json``:
``python benchmarks/bench_mlp_step.py``. What each one measures, its target, and the measurements so far:
``benchmarks/README.md``.

* ``bench_mlp_step``: one SGD step of an MLP, the engine against the same step written by hand in NumPy;
* ``bench_batchnorm``: batchnorm's hand-derived backward against the composed primitives, and a step with it;
* ``bench_conv2d``: Conv2d forward + backward against im2col by hand;
* ``bench_fp16_matmul``: the CPU float16 matmul kernel against ``numpy.matmul`` in float32 and float16;
* ``bench_distributed``: one process against K under ``DistributedDataParallel`` (MPI);
* ``suite``: all of them at once in one table of ratios (``tinygrad-edu bench``). Each module's ``suite_rows``
  returns its rows for that table;
* ``gpu_check``: on a GPU machine, the GPU tests and the CUDA kernels' table (TFLOP/s, GB/s).
"""
