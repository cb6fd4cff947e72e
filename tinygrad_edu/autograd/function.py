"""``Function``: one differentiable op, its forward and backward side by side, and the context they share.

``Op.apply(*tensors)`` runs ``forward`` on the tensors' arrays and returns a new Tensor. When an input requires grad,
the output keeps the context ``ctx`` (``out._ctx``), whose ``ctx.parents`` point back to the inputs: the outputs and
their contexts form the graph that ``backward`` walks (``engine.py``). Inside ``forward`` and ``backward`` values are
plain arrays of the backend's namespace ``ctx.xp`` (NumPy, CuPy, array_api_strict), so a backward pass is ordinary
array math and is not itself recorded on the tape.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tinygrad_edu.autograd import anomaly, capture, engine, versions
from tinygrad_edu.backend import Backend


class InputError(ValueError):
    """Bad input to an op, raised by the public function or module that checked it; the message names the op."""


class Function:
    """Base class of differentiable ops, used as in ``torch.autograd.Function``.

    Subclass it and write two static methods side by side::

        class Square(Function):
            @staticmethod
            def forward(ctx, x):               # x: an array of ctx.xp
                ctx.save_for_backward(x)
                return x * x

            @staticmethod
            def backward(ctx, grad):           # grad: dL/d(output), same shape as the output
                (x,) = ctx.saved_tensors
                return 2 * x * grad            # dL/dx, one gradient per input of forward

        y = Square.apply(t)

    ``backward`` returns one gradient per positional input of ``forward`` (a tuple when there are several; ``None``
    for inputs that are not tensors or need no gradient: see ``ctx.needs_input_grad``). A gradient must have the
    shape of its input. The instance passed as ``ctx`` carries ``ctx.xp`` (the array namespace), ``ctx.backend``,
    ``ctx.needs_input_grad`` and any attribute the forward sets on it.
    """

    # set on the context (an instance of the subclass) by apply()
    backend: Backend  #: the backend of the inputs
    xp: Any  #: its array namespace (``numpy``, ``array_api_compat.cupy``, ``array_api_strict``)
    needs_input_grad: tuple[bool, ...]  #: for each input of forward: is it a tensor that requires grad?
    parents: tuple[Any, ...] | None  #: the inputs of forward, tensors and others (None once backward freed them)
    sequence: int  #: creation number (a tick of ``versions.clock``): an op is newer than the ops it uses
    _created_at: Any = None  #: under detect_anomaly(): the user's stack when the op was created
    _view: bool = False  #: True for ops whose output may share memory with input 0: it shares its version counter
    #: ``tinygrad_edu.jit`` may replay this op as the array calls it made at capture (``autograd/lowering.py``): a
    #: promise that forward and backward depend on nothing but their arrays and options (no Python state that
    #: changes, no draw on the host, no array kept outside the context). True for the library's ops; a subclass
    #: defined elsewhere is replayed as whole calls of forward and backward unless it sets ``lowerable = True``.
    lowerable: bool = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "lowerable" not in cls.__dict__:
            cls.lowerable = cls.__module__.startswith("tinygrad_edu.") and all(
                getattr(base, "lowerable", True) for base in cls.__bases__)

    @staticmethod
    def forward(ctx: Function, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    @staticmethod
    def backward(ctx: Function, *grads: Any) -> Any:
        raise NotImplementedError

    def save_for_backward(self, *values: Any) -> None:
        """Keep arrays for ``backward``; they are freed after the backward pass."""
        self._saved = values

    @property
    def saved_tensors(self) -> tuple[Any, ...]:
        """What ``forward`` passed to ``save_for_backward``, as arrays."""
        saved = self._saved
        if saved is None:
            raise engine.freed_error(self)
        return saved

    @classmethod
    def apply(cls, *args: Any, **kwargs: Any) -> Any:
        """Run ``forward`` on the arrays of ``args`` and return its result as a Tensor, recorded on the tape."""
        Tensor = engine.Tensor
        backend = None
        arrays, needs = [], []
        for a in args:
            if isinstance(a, Tensor):
                if a.backend is not backend:
                    if backend is not None:
                        raise device_mismatch(cls.__name__, args)
                    backend = a.backend
                arrays.append(a._data)
                needs.append(a.requires_grad)
            else:
                arrays.append(a)
                needs.append(False)
        if backend is None:
            raise TypeError(f"{cls.__name__}.apply needs at least one Tensor argument")
        ctx = cls.__new__(cls)
        ctx.backend, ctx.xp, ctx.needs_input_grad, ctx._saved = backend, backend.xp, tuple(needs), ()
        forward = cls.forward if capture.recording is None else capture.recording.forward(cls, ctx)  # (jit: traced)
        try:
            if backend.context is None:
                out = forward(ctx, *arrays, **kwargs)
            else:
                with backend.context:  # e.g. CuPy's current GPU
                    out = forward(ctx, *arrays, **kwargs)
        except InputError:
            raise
        except ValueError as exc:  # from the array library (e.g. shapes that do not broadcast): name op and inputs
            raise _library_error(cls.__name__, arrays, exc) from exc
        if isinstance(out, Tensor):
            out = out._data
        elif isinstance(out, np.generic):  # NumPy returns scalars from 0-d results; keep arrays
            out = np.asarray(out)
        result = Tensor.__new__(Tensor)
        result._data, result.backend, result._grad = out, ctx.backend, None  # forward may move the result (ToDevice)
        result._versions = versions.shared(args[0]) if cls._view else None
        if engine.grad_enabled and True in needs:
            ctx.parents, ctx.sequence = args, next(versions.clock)
            result.requires_grad, result._ctx = True, ctx
        else:
            result.requires_grad, result._ctx = False, None
        if capture.recording is not None:  # tinygrad_edu.jit is capturing this call: report the op
            capture.recording.op(cls, ctx, args, kwargs, result)
        if anomaly.enabled:
            ctx._created_at = anomaly.user_stack()
            anomaly.check_forward(cls.__name__, ctx, arrays, out)
        return result


def device_mismatch(op: str, args: tuple) -> RuntimeError:
    """The error for an op given tensors on different devices."""
    devices = sorted({a.device for a in args if isinstance(a, engine.Tensor)})
    return RuntimeError(
        f"{op}: expected all tensors on one device, got tensors on {' and '.join(devices)}. Move them with .to(device)."
    )


def _library_error(op: str, arrays: list, exc: ValueError) -> ValueError:
    inputs = " and ".join(f"{tuple(a.shape)} {a.dtype}" if hasattr(a, "shape") else repr(a) for a in arrays)
    return ValueError(f"{op}: cannot apply to inputs {inputs}: {exc}")
