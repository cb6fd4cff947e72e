"""The command line: ``tinygrad-edu COMMAND ...``, also ``python -m tinygrad_edu COMMAND ...``.

    tinygrad-edu gradcheck [NAME ...] [--device cpu|cuda|strict] [--dtype float64|float32|float16] [--seed N] [--trials K]

Each command is an entry of ``COMMANDS``: a help line, a function that adds its arguments to its subparser, and a
function that runs it and returns the exit status. To add a command, add an entry. Exit statuses: 0 success, 1 a
check failed, 2 a usage error (argparse's, an unknown name, a device that is not available).
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from tinygrad_edu.backend import DeviceUnavailableError, canonical_device, get_backend, get_default_device
from tinygrad_edu.gradcheck import check_gradients
from tinygrad_edu.tensor import Tensor

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
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
    return COMMANDS[args.command].run(args)


def _usage_error(command: str, message: str) -> int:
    print(f"{PROG} {command}: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


# ----------------------------------------------------------------------------------------------------------------
# gradcheck
# ----------------------------------------------------------------------------------------------------------------
def _gradcheck_epilog() -> str:
    from tinygrad_edu.registry import REGISTRY, TOLERANCES

    lines = [
        "Each trial t draws the inputs with numpy.random.default_rng(SEED + t), makes them leaves of --dtype on",
        "--device, and compares the backward pass (in --dtype) with central differences of the same function in",
        "float64. An element passes when |analytic - numeric| <= atol + rtol |numeric|. Tolerances per dtype (see",
        "tinygrad_edu.registry.TOLERANCES for their derivation: the error of a correct backward pass is its own",
        "rounding, a few units of the dtype's roundoff, plus cancellation in sums over broadcast axes):",
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
                        help="cpu, cuda, cuda:N or strict (default: the default device, $TINYGRAD_EDU_DEVICE or cpu)")
    parser.add_argument("--dtype", choices=("float64", "float32", "float16"), default="float64",
                        help="dtype of the inputs and the backward pass (default: float64)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first trial (default: 0)")
    parser.add_argument("--trials", type=_positive_int, default=3,
                        help="random draws of inputs per function, seeds SEED, SEED+1, ... (default: 3)")


def _shapes(arrays: list[np.ndarray]) -> str:
    return ", ".join(str(tuple(a.shape)) for a in arrays)


def _run_gradcheck(args: argparse.Namespace) -> int:
    from tinygrad_edu import registry

    try:
        selected = registry.entries(args.names)
    except ValueError as exc:
        return _usage_error("gradcheck", str(exc))
    try:
        device = canonical_device(args.device) if args.device is not None else get_default_device()
        if device == "strict" and args.dtype == "float16":
            return _usage_error(
                "gradcheck", "the 'strict' device has no float16 (array_api_strict does not provide it); "
                "use --dtype float32 or float64, or --device cpu or cuda"
            )
        get_backend(device)  # fail now, and once, if the device cannot be used
    except (ValueError, DeviceUnavailableError, ImportError) as exc:
        return _usage_error("gradcheck", str(exc))

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
        "Check the gradients of the registered differentiable functions (tinygrad_edu.registry) against central "
        "finite differences, and print one table: function, seed, input shapes, max abs error, max rel error, "
        "verdict.", width=105,
    ),
    configure=_configure_gradcheck,
    run=_run_gradcheck,
    epilog=_gradcheck_epilog,
)


if __name__ == "__main__":
    raise SystemExit(main())
