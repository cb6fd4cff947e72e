"""The command line: ``tinygrad-edu COMMAND ...``, also ``python -m tinygrad_edu COMMAND ...``.

    tinygrad-edu explain NAME [--source] [--seed N]
    tinygrad-edu gradcheck [NAME ...] [--device cpu|cuda|strict] [--dtype float64|float32|float16] [--seed N] [--trials K]
    tinygrad-edu train [--dataset disc|digits] [--norm batch|layer|none] [--activation relu|...|maxout] [--dropout P]
                       [--depth D] [--width W] [--device cpu|cuda|cuda:N|strict] [--precision fp32|mixed16|mixed-bf16|dfp16] [--epochs N]
                       [--batch-size B] [--lr LR] [--schedule cosine|constant] [--seed S] [--plot FILE.png]
                       [--save FILE] [--no-progress] [--distributed [--sync-bn]] [--jit] [--draw-graph FILE.svg] [--monitor FILE.png]
    mpirun -n K tinygrad-edu train --distributed ...      (data parallel over K processes)
    tinygrad-edu bench [--quick] [--repeats R] [--only mlp batchnorm conv2d fp16 cuda ddp] [--no-torch]

``train`` is a thin layer over ``tinygrad_edu.train`` (the model, the loop, checkpoints, plots); ``bench`` over
``tinygrad_edu.benchmarks.suite`` (the ``benchmarks/`` folder, installed as a subpackage).

Each command is an entry of ``COMMANDS``: a help line, a function that adds its arguments to its subparser, and a
function that runs it and returns the exit status. To add a command, add an entry. Exit statuses: 0 success, 1 a
check failed, 2 a usage error (argparse's, an unknown name, a device that is not available).

The device of ``train`` and ``gradcheck``: ``--device`` if given, else ``$TINYGRAD_EDU_DEVICE``, else ``cpu``
(``_select_backend``). It is checked before any work: a bad value, or a device that cannot be used, is a usage
error (exit status 2) whose message says where the value came from (``--device: unknown device 'gpu': ...``,
``TINYGRAD_EDU_DEVICE='gpu': unknown device 'gpu': ...``, ``TINYGRAD_EDU_DEVICE='cuda': device 'cuda' needs
CuPy, ...``). ``bench`` takes no device (its rows run on the CPU, its CUDA rows on the GPU) but checks the
variable too, so that a typo never passes silently.
"""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from tinygrad_edu import dtypes
from tinygrad_edu.backend import (
    ENV_VAR,
    Backend,
    DeviceUnavailableError,
    canonical_device,
    default_device,
    get_backend,
    get_default_device,
)
from tinygrad_edu.gradcheck import check_gradients
from tinygrad_edu.tensor import Tensor

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_INTERRUPTED = 130  # as a shell reports a process ended by SIGINT
PROG = "tinygrad-edu"


@dataclass(frozen=True)
class Command:
    """One subcommand: ``configure(parser)`` adds its arguments, ``run(args)`` runs it and returns the exit status."""

    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
    description: str = ""
    epilog: Callable[[], str] | None = None  # computed when the parser is built (it may list registry names)


COMMANDS: dict[str, Command] = {}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="tinygrad_edu: a from-scratch autograd engine.")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, command in COMMANDS.items():
        sub = subparsers.add_parser(
            name, help=command.help, description=command.description or command.help,
            epilog=command.epilog() if command.epilog else None, formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        command.configure(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line on ``argv`` (default: ``sys.argv[1:]``) and return the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0), or a usage error that argparse has already printed (2)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return COMMANDS[args.command].run(args)
    except KeyboardInterrupt:  # Ctrl-C: a word, not a traceback (nothing half-written: saves are atomic)
        print(f"\n{PROG} {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _usage_error(command: str, message: str) -> int:
    print(f"{PROG} {command}: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def _select_backend(option: str | None) -> Backend:
    """The backend a command runs on: ``--device`` (``option``) if given, else the default device
    (``$TINYGRAD_EDU_DEVICE``, else cpu). Raises ``ValueError`` for a string that is not a device, naming where it
    came from (``--device: ...`` or ``TINYGRAD_EDU_DEVICE='gpu': ...``), ``DeviceUnavailableError`` for a device that
    cannot be used (prefixed with the variable when it named it), ``ImportError`` for a missing array library."""
    if option is None:
        return get_backend(None)  # the default device; its errors name the variable when it chose it
    try:
        name = canonical_device(option)
    except ValueError as exc:
        raise ValueError(f"--device: {exc}") from None
    return get_backend(name)


def _one_of(*choices: str) -> dict:
    """``add_argument`` options for a value among ``choices``: the help shows them as ``{a,b}``, and a bad value says
    ``invalid choice: 'x' (choose from a, b)`` on every Python version (argparse's own message quotes the choices on
    some versions and not on others)."""

    def choice(text: str) -> str:
        if text not in choices:
            raise argparse.ArgumentTypeError(f"invalid choice: {text!r} (choose from {', '.join(choices)})")
        return text

    choice.__name__ = "choice"
    return {"type": choice, "metavar": "{" + ",".join(choices) + "}"}


def _int_at_least(text: str, minimum: int) -> int:
    """``text`` as an integer of at least ``minimum``, for argparse (which reports the ArgumentTypeError)."""
    value = int(text)
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
    return value


def _positive_int(text: str) -> int:
    return _int_at_least(text, 1)


def _non_negative_int(text: str) -> int:
    return _int_at_least(text, 0)


# ----------------------------------------------------------------------------------------------------------------
# gradcheck
# ----------------------------------------------------------------------------------------------------------------
def _gradcheck_epilog() -> str:
    from tinygrad_edu.testing.registry import REGISTRY, TOLERANCES

    lines = [
        "Each trial t draws the inputs with numpy.random.default_rng(SEED + t), makes them leaves of --dtype on",
        "--device, and compares the backward pass (in --dtype) with central differences of the same function in",
        "float64. An element passes when |analytic - numeric| <= atol + rtol |numeric|. Tolerances per dtype (see",
        "tinygrad_edu.testing.registry.TOLERANCES for their derivation: the error of a correct backward pass is its",
        "own rounding, a few units of the dtype's roundoff, plus cancellation in sums over broadcast axes):",
        "",
    ]
    lines += [f"  {dtype:8s} eps {t['eps']:<8g} atol {t['atol']:<8g} rtol {t['rtol']:g}" for dtype, t in TOLERANCES.items()]
    lines += [
        "",
        "(An entry may set its own eps: cast steps by 2^-12 so that its float32 round trip stays exact.)",
        "",
        "Verdicts: ok; FAIL (the analytic gradient is wrong, or the function raised); kink (analytic and numeric",
        "differ only where the finite difference straddles a non-differentiable point: the entry's inputs are at",
        "fault). The last line reads 'N passed, M failed' (kinks count as failed).",
        "Exit status: 0 all passed, 1 some check failed, 2 usage error (unknown name, device not available,",
        "float16 on 'strict').",
        "",
        textwrap.fill("Functions: " + ", ".join(REGISTRY), width=105, break_on_hyphens=False),
    ]
    return "\n".join(lines)


def _configure_gradcheck(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("names", nargs="*", metavar="NAME", help="registry entries to check (default: all)")
    parser.add_argument("--device", default=None,
                        help=f"cpu, cuda, cuda:N or strict (default: ${ENV_VAR}, else cpu)")
    parser.add_argument("--dtype", **_one_of("float64", "float32", "float16"), default="float64",
                        help="dtype of the inputs and the backward pass (default: float64)")
    parser.add_argument("--seed", type=_non_negative_int, default=0, help="seed of the first trial (default: 0)")
    parser.add_argument("--trials", type=_positive_int, default=3,
                        help="random draws of inputs per function, seeds SEED, SEED+1, ... (default: 3)")


def _shapes(arrays: list[np.ndarray]) -> str:
    return ", ".join(str(tuple(a.shape)) for a in arrays)


def _run_gradcheck(args: argparse.Namespace) -> int:
    from tinygrad_edu.testing import registry

    try:
        selected = registry.entries(args.names)
    except ValueError as exc:
        return _usage_error("gradcheck", str(exc))
    try:
        device = _select_backend(args.device).name  # fail now, and once, if the device cannot be used
    except (ValueError, DeviceUnavailableError, ImportError) as exc:
        return _usage_error("gradcheck", str(exc))
    if device == "strict" and args.dtype == "float16":
        return _usage_error(
            "gradcheck", "the 'strict' device has no float16 (array_api_strict does not provide it); "
            "use --dtype float32 or float64, or --device cpu or cuda"
        )
    with default_device(device):  # --device beats the variable for every tensor, the check's own included
        return _check_all(args, selected, device)


def _check_all(args: argparse.Namespace, selected: list, device: str) -> int:
    """Run ``gradcheck``'s trials on ``device`` and print the table; returns the exit status."""
    from tinygrad_edu.testing import registry

    # draw every trial's inputs first (cheap) so the table's columns can be sized before the first row
    trials = [
        (entry, seed, entry.make_inputs(np.random.default_rng(seed)))
        for entry in selected
        for seed in range(args.seed, args.seed + args.trials)
    ]
    name_width = max(len("function"), *(len(e.name) for e, _, _ in trials))
    shape_width = max(len("input shapes"), *(len(_shapes(a)) for _, _, a in trials))
    seed_width = max(len("seed"), len(str(args.seed + args.trials - 1)))

    def row(name: str, seed: str, shapes: str, abs_err: str, rel_err: str, verdict: str) -> str:
        return (f"{name:<{name_width}}  {seed:>{seed_width}}  {shapes:<{shape_width}}  "
                f"{abs_err:>11}  {rel_err:>11}  {verdict}")

    tolerances = registry.TOLERANCES[args.dtype]
    print(f"gradcheck on {device}, {args.dtype}: eps {tolerances['eps']:g}, atol {tolerances['atol']:g}, "
          f"rtol {tolerances['rtol']:g}; seeds {args.seed}..{args.seed + args.trials - 1}")
    print(row("function", "seed", "input shapes", "max abs err", "max rel err", "verdict"))
    counts = {"ok": 0, "FAIL": 0, "kink": 0}
    details = []
    for entry, seed, arrays in trials:
        abs_err = rel_err = "-"
        try:
            inputs = [Tensor(a.astype(args.dtype), requires_grad=True, device=device) for a in arrays]
            report = check_gradients(entry.fn, inputs, seed=seed, **entry.options(args.dtype))
        except Exception as exc:  # a function that raises has failed its check; report it with the others
            verdict, detail = "FAIL", f"raised {type(exc).__name__}: {exc}"
        else:
            abs_err, rel_err = f"{report.max_abs_error:.2e}", f"{report.max_rel_error:.2e}"
            verdict = "ok" if report.passed else ("FAIL" if report.wrong else "kink")
            detail = report.describe()
        counts[verdict] += 1
        if verdict != "ok":
            details.append(f"{verdict} {entry.name} (seed {seed}, inputs {_shapes(arrays)}):\n{detail}")
        print(row(entry.name, str(seed), _shapes(arrays), abs_err, rel_err, verdict), flush=True)
    for detail in details:
        print()
        print(detail)
    failed = counts["FAIL"] + counts["kink"]
    print(f"{counts['ok']} passed, {failed} failed")
    return EXIT_FAILED if failed else EXIT_OK


COMMANDS["gradcheck"] = Command(
    help="check every registered function's backward pass against finite differences",
    description=textwrap.fill(
        "Check the gradients of the registered differentiable functions (tinygrad_edu.testing.registry) against "
        "central finite differences, and print one table: function, seed, input shapes, max abs error, max rel error, "
        "verdict.", width=105,
    ),
    configure=_configure_gradcheck,
    run=_run_gradcheck,
    epilog=_gradcheck_epilog,
)


# ----------------------------------------------------------------------------------------------------------------
# train
# ----------------------------------------------------------------------------------------------------------------
def _probability(text: str) -> float:
    value = float(text)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _configure_train(parser: argparse.ArgumentParser) -> None:
    from tinygrad_edu import train as t

    d = t.TrainConfig()
    parser.add_argument("--dataset", **_one_of(*t.DATASETS), default=d.dataset,
                        help="disc: the course's 2-D disc problem, generated in code (default); digits: "
                             "scikit-learn's bundled 8x8 handwritten digits (needs scikit-learn)")
    parser.add_argument("--norm", **_one_of(*t.NORMS), default=d.norm, help=f"normalization after each hidden Linear "
                        f"(default: {d.norm})")
    parser.add_argument("--activation", **_one_of(*t.ACTIVATIONS), default=d.activation,
                        help=f"nonlinearity of the hidden layers (default: {d.activation})")
    parser.add_argument("--dropout", type=_probability, default=d.dropout, metavar="P",
                        help="dropout probability after each hidden activation (default: 0, no dropout)")
    defaults = ", ".join(f"{k} {v['depth']}" for k, v in t.DATASET_DEFAULTS.items())
    parser.add_argument("--depth", type=_non_negative_int, default=None,
                        help=f"hidden width->width layers (default: {defaults})")
    defaults = ", ".join(f"{k} {v['width']}" for k, v in t.DATASET_DEFAULTS.items())
    parser.add_argument("--width", type=_positive_int, default=None, help=f"hidden units (default: {defaults})")
    parser.add_argument("--device", default=None, metavar="DEVICE",
                        help=f"cpu (NumPy), cuda or cuda:N (CuPy), or strict (array_api_strict, for tests) "
                             f"(default: ${ENV_VAR}, else cpu)")
    parser.add_argument("--precision", **_one_of(*t.PRECISIONS), default=d.precision,
                        help="fp32; mixed16: float16 model, float32 master weights and loss scaling; mixed-bf16: "
                             "the same in bfloat16, without loss scaling (CPU); dfp16: the Linear layers' matrix "
                             "products on INT16 with a shared exponent, INT32 sums, float32 weights (default: fp32)")
    parser.add_argument("--epochs", type=_positive_int, default=d.epochs, help=f"(default: {d.epochs})")
    parser.add_argument("--batch-size", type=_positive_int, default=d.batch_size, help=f"(default: {d.batch_size})")
    parser.add_argument("--lr", type=_positive_float, default=d.lr,
                        help=f"initial learning rate of SGD (momentum {d.momentum}; default: {d.lr})")
    parser.add_argument("--schedule", **_one_of(*t.SCHEDULES), default=d.schedule,
                        help="learning rate: cosine annealing to 0 over the epochs, or constant (default: cosine)")
    parser.add_argument("--seed", type=_non_negative_int, default=d.seed, help="seeds the data, the weights and the batches "
                        "(default: 0)")
    parser.add_argument("--plot", metavar="FILE.png", default=None,
                        help="save loss and accuracy curves (train and test, per epoch); needs matplotlib")
    parser.add_argument("--save", metavar="FILE", default=None,
                        help="save a checkpoint (tinygrad_edu.save's format): the model's state_dict (FP32 masters "
                             "for mixed16), the optimizer's, the loss scaler's (mixed16), the RNG state and the "
                             "config; tinygrad_edu.train.load_checkpoint(FILE) rebuilds the model")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--distributed", action="store_true",
                        help="data parallel over the processes of an MPI launcher (mpirun -n K tinygrad-edu train "
                             "--distributed): --batch-size is per process; needs mpi4py "
                             "(pip install 'tinygrad_edu[distributed]')")
    parser.add_argument("--sync-bn", action="store_true",
                        help="with --distributed and --norm batch: batchnorm statistics over every process's batch "
                             "(SyncBatchNorm), as one process with the whole K x B batch")
    parser.add_argument("--draw-graph", metavar="FILE.svg", default=None,
                        help="draw the first training step's tape (tinygrad_edu.viz) to FILE (.svg, .png or .dot): "
                             "Graphviz's dot when installed, else matplotlib")
    parser.add_argument("--monitor", metavar="FILE.png", default=None,
                        help="record per layer and epoch the activation RMS, gradient norm and relative weight update "
                             "(GradientFlowMonitor) and plot them over depth to FILE")
    parser.add_argument("--jit", action="store_true",
                        help="capture the training step on its first calls and replay it after (tinygrad_edu.jit): "
                             "the same numbers bit for bit, without the tape's bookkeeping")


#: the environment variables that set the threads of NumPy's BLAS (OpenBLAS, MKL) and of OpenMP
BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def _one_blas_thread_per_process(main_process: bool) -> None:
    """K processes whose BLAS each starts a thread per core oversubscribe the machine (on 2 cores, 2 processes ran
    the default net several times slower): unless the environment chooses, each process gets one BLAS thread, as
    PyTorch's launcher sets OMP_NUM_THREADS=1. threadpoolctl sets it in a running process; without it, say how."""
    if any(name in os.environ for name in BLAS_THREAD_VARIABLES):
        return
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        if main_process:
            print(f"{PROG} train: each process's BLAS may use every core, which oversubscribes the machine; run "
                  f"with OPENBLAS_NUM_THREADS=1 (or pip install threadpoolctl)", file=sys.stderr)
        return
    threadpool_limits(1, user_api="blas")


def _run_train(args: argparse.Namespace) -> int:
    """Check everything that can fail (options, device, data set, --plot, --save) before the first step."""
    import time

    from tinygrad_edu import train as t

    if args.sync_bn and not args.distributed:
        return _usage_error("train", "--sync-bn needs --distributed (it shares batchnorm's statistics between the "
                            "processes of a data-parallel run)")
    if args.sync_bn and args.norm != "batch":
        return _usage_error("train", f"--sync-bn needs --norm batch (there is no batchnorm to synchronize with "
                            f"--norm {args.norm})")
    try:  # --device, else $TINYGRAD_EDU_DEVICE, else cpu: checked first, its errors naming where it came from
        backend = _select_backend(args.device)
    except (ValueError, DeviceUnavailableError, ImportError) as exc:
        return _usage_error("train", str(exc))
    try:
        config = t.TrainConfig(dataset=args.dataset, norm=args.norm, activation=args.activation, dropout=args.dropout,
                               depth=args.depth, width=args.width, epochs=args.epochs, batch_size=args.batch_size,
                               lr=args.lr, schedule=args.schedule, seed=args.seed, device=args.device,
                               precision=args.precision, distributed=args.distributed, sync_bn=args.sync_bn,
                               jit=args.jit)
    except ValueError as exc:
        return _usage_error("train", str(exc))
    low = t.LOW_PRECISION.get(config.precision)
    if low is not None and not backend.has_dtype(getattr(dtypes, low)):
        return _usage_error("train", f"device {backend.name!r} has no {low}: use --precision fp32")
    if config.dataset == "digits":
        try:
            import sklearn  # noqa: F401
        except ImportError:
            return _usage_error("train", "--dataset digits needs scikit-learn, which is not installed: "
                                "pip install 'tinygrad_edu[datasets]'")
    if args.plot is not None:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            return _usage_error("train", "--plot needs matplotlib, which is not installed: "
                                "pip install 'tinygrad_edu[plot]'")
    if args.draw_graph is not None and not args.draw_graph.lower().endswith((".svg", ".png", ".dot")):
        return _usage_error("train", f"--draw-graph: {args.draw_graph!r} must end in .svg, .png or .dot")
    if args.monitor is not None:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            return _usage_error("train", "--monitor needs matplotlib, which is not installed: "
                                "pip install 'tinygrad_edu[plot]'")
    for option, path, check in (("--plot", args.plot, t.check_plot_path), ("--save", args.save, t.check_writable),
                                ("--draw-graph", args.draw_graph, t.check_writable),
                                ("--monitor", args.monitor, t.check_plot_path)):
        if path is not None:
            try:
                check(path)
            except (OSError, ValueError) as exc:
                return _usage_error("train", f"{option}: {exc}")
    if not args.no_progress:
        try:
            import tqdm  # noqa: F401
        except ImportError:
            return _usage_error("train", "the progress bar needs tqdm (pip install tqdm), or pass --no-progress")

    main_process = True  # the process that prints, plots and saves: rank 0 when distributed
    if config.distributed:
        from tinygrad_edu import distributed as dist

        try:  # as train() will: NCCL between GPUs, MPI on the CPU
            t.join_process_group(config)
        except (RuntimeError, DeviceUnavailableError, ImportError) as exc:
            return _usage_error("train", f"--distributed: {exc}")
        main_process = dist.is_main_process()
        if dist.get_world_size() == 1:
            print(f"{PROG} train: --distributed runs as 1 process (started without an MPI launcher); for K "
                  f"processes: mpirun -n K {PROG} train --distributed", file=sys.stderr)
        elif backend.name == "cpu":
            _one_blas_thread_per_process(main_process)

    start = time.perf_counter()
    try:
        history = t.train(config, progress=not args.no_progress, draw_graph=args.draw_graph, monitor=args.monitor)
    except t.TrainingDiverged as exc:
        print(f"{PROG} train: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if args.save is not None:
        if config.distributed:
            t.save_checkpoint_from_rank0(args.save, history["checkpoint"])
        else:
            t.save_checkpoint(args.save, history["checkpoint"])
        if main_process:
            scaler = ", loss scaler" if config.precision == "mixed16" else ""
            print(f"saved {len(history['state_dict'])} arrays (the model's state_dict) to {args.save}, with the "
                  f"optimizer{scaler} and RNG states and the config (train.load_checkpoint reads it)")
    if args.plot is not None and main_process:
        t.plot_history(history, args.plot)
        print(f"saved loss and accuracy curves to {args.plot}")
    if args.draw_graph is not None and main_process:
        print(f"drew the first training step's tape to {args.draw_graph}")
    if args.monitor is not None and main_process:
        flow = history["monitor"]
        print(f"saved the gradient flow over {len(flow['layers'])} layers to {args.monitor} (gradient norm, first "
              f"layer / last layer, last epoch: {flow['grad_norm'][-1][0] / flow['grad_norm'][-1][-1]:.3g})")
    if not main_process:
        return EXIT_OK
    timing = f"{time.perf_counter() - start:.1f} s"
    if config.distributed:  # K processes x batch B, and the share of the time spent averaging gradients
        world_size, share = history["world_size"], history["allreduce_seconds"] / history["seconds"]
        timing = (f"{world_size} process{'' if world_size == 1 else 'es'} x batch {config.batch_size}, {timing}, "
                  f"all-reduce {share:.0%}")
    extra = ""
    if config.precision == "mixed16":
        skipped = history["skipped_steps"]
        extra = f"; loss scale {history['loss_scale']:g}, {skipped} skipped step{'' if skipped == 1 else 's'}"
    elif config.precision == "mixed-bf16":
        extra = "; no loss scaling"
    print(f"train accuracy {history['train_accuracy'][-1]:.3f}  test accuracy {history['test_accuracy'][-1]:.3f}  "
          f"({config.dataset}, {config.epochs} epochs, {timing}, {history['device']}, {config.precision}{extra})")
    return EXIT_OK


def _configure_explain(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", metavar="NAME", help="a registry entry (tinygrad-edu gradcheck --help lists them)")
    parser.add_argument("--source", action="store_true", help="also print the code of forward and backward")
    parser.add_argument("--seed", type=_non_negative_int, default=0, help="seed of the checked inputs (default: 0)")


def _run_explain(args: argparse.Namespace) -> int:
    from tinygrad_edu.testing.explain import explain

    try:
        with default_device("cpu"):
            text = explain(args.name, source=args.source, seed=args.seed)
    except KeyError as exc:
        return _usage_error("explain", exc.args[0])
    print(text)
    return EXIT_OK if text.endswith("verdict: passed") else EXIT_FAILED


COMMANDS["explain"] = Command(
    help="show where an op's forward and backward live, its math, and its gradient checked live",
    description=textwrap.fill(
        "Print where the registered op NAME's forward and backward are (file:line), the math from its docstring, "
        "then check its gradient on a small float64 input, analytic and numeric values side by side; --source "
        "prints the code of forward and backward too.", width=105,
    ),
    configure=_configure_explain,
    run=_run_explain,
)


COMMANDS["train"] = Command(
    help="train an MLP on an embedded data set (the course's disc problem, or scikit-learn's digits)",
    description=textwrap.fill(
        "Train an MLP with SGD (momentum 0.9, cosine learning-rate schedule) and softmax cross-entropy on an "
        "embedded data set, and print its train and test accuracy. The default is the course's deep MLP on the 2-D "
        "disc problem: 2 -> 32, 16 hidden layers 32 -> 32 each followed by batchnorm and ReLU, -> 2 (the net of "
        "tinygrad_edu.train.build_model; the loop is tinygrad_edu.train.train).", width=105,
    ),
    configure=_configure_train,
    run=_run_train,
    epilog=lambda: textwrap.dedent("""\
        Data: disc has 1000 training and 1000 test points uniform in [-1, 1]^2 (seeds SEED and SEED+1), class 1
        inside the disc of area 2; digits has 1438 training and 359 test images, standardized per pixel.
        The progress bar (stderr) counts steps and shows the last epoch's loss and accuracies (evaluation mode, on
        the whole training and test sets). The last line of stdout reads
          train accuracy A  test accuracy B  (DATASET, N epochs, T s, DEVICE, PRECISION)
        Data parallel: mpirun -n K tinygrad-edu train --distributed [--sync-bn] runs K processes, each on every
        K-th sample of the epoch's permutation in batches of --batch-size (one step: K x B samples); they average
        their gradients after each backward pass; on the CPU each process's BLAS runs on one thread unless
        OPENBLAS_NUM_THREADS, OMP_NUM_THREADS or MKL_NUM_THREADS is set. Rank 0 alone prints, plots and saves; its
        last line reads
          train accuracy A  test accuracy B  (DATASET, N epochs, K processes x batch B, T s, all-reduce P%, ...)
        where P is the share of the time spent in the gradient all-reduce (waiting for the slowest process included).
        The device: --device, else $TINYGRAD_EDU_DEVICE, else cpu.
        --save FILE writes one checkpoint (tinygrad_edu.save's format, atomic, no pickle) with everything to
        evaluate or resume: the model's state_dict (FP32 masters for mixed16), the optimizer's, the loss scaler's
        (mixed16), the RNG state and the config. tinygrad_edu.load(FILE) reads it as a dict;
        tinygrad_edu.train.load_checkpoint(FILE) returns (model, config, checkpoint), the model rebuilt from the
        config with the weights loaded.
        Exit status: 0 done, 2 usage error (bad option, a bad --device or TINYGRAD_EDU_DEVICE, no GPU for cuda,
        --save or --plot to a path that cannot be written, a missing optional package such as mpi4py for
        --distributed under an MPI launcher), reported before training starts."""),
)


# ----------------------------------------------------------------------------------------------------------------
# bench
# ----------------------------------------------------------------------------------------------------------------
def _configure_bench(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true",
                        help="small sizes and one short timing block each (seconds; for tests, not for numbers)")
    parser.add_argument("--repeats", type=_positive_int, default=None,
                        help="timed blocks per implementation (default: 5, or 1 with --quick)")
    parser.add_argument("--only", nargs="+", **{**_one_of("mlp", "batchnorm", "conv2d", "fp16", "bf16", "dfp16", "cuda", "ddp"),
                                               "metavar": "NAME"}, default=None,
                        help="run only these: mlp, batchnorm, conv2d, fp16, bf16, dfp16, cuda, ddp (default: all)")
    parser.add_argument("--no-torch", action="store_true", help="leave out the PyTorch rows even if it is installed")


def _run_bench(args: argparse.Namespace) -> int:
    from tinygrad_edu.benchmarks import suite

    try:  # bench takes no device (CPU rows on the CPU, CUDA rows on the GPU), but a bad variable is never ignored
        get_default_device()
    except ValueError as exc:
        return _usage_error("bench", str(exc))
    return suite.main(quick=args.quick, repeats=args.repeats, only=args.only, use_torch=not args.no_torch)


COMMANDS["bench"] = Command(
    help="run the benchmarks and print one table of time ratios, with the machine and library versions",
    description=textwrap.fill(
        "Run the benchmarks of benchmarks/ (installed as tinygrad_edu.benchmarks) side by side and print one "
        "table: the engine's training step against the same MLP written by hand in NumPy; batchnorm's "
        "hand-derived backward against the composed primitives; conv2d against im2col by hand; the CPU float16 "
        "matmul kernel against numpy.matmul in float32 and float16; PyTorch rows when PyTorch is installed, and "
        "the CUDA float16 kernels against cuBLAS (CuPy) when a GPU is there. Each row times A against B and "
        "reports time(A) / time(B) next to the benchmark's target. The full benchmarks (more sizes, JSON output) "
        "are the scripts: python benchmarks/bench_mlp_step.py etc.", width=105,
    ),
    configure=_configure_bench,
    run=_run_bench,
)


if __name__ == "__main__":
    raise SystemExit(main())
