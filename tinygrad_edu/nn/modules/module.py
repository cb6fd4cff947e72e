"""``Module`` (the base of every layer) and ``Parameter`` (a tensor a module trains)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from typing import Any, NamedTuple

import numpy as np

from tinygrad_edu.autograd import Function, capture, hooks
from tinygrad_edu.backend import canonical_device, get_backend
from tinygrad_edu.dtypes import bfloat16, is_floating
from tinygrad_edu.tensor import Tensor


class Parameter(Tensor):
    """A Tensor that is a trainable weight of a Module: it requires grad and is listed by ``parameters()``."""

    __slots__ = ()

    def __init__(self, data: Any, requires_grad: bool = True, device: str | None = None):
        if not isinstance(data, Tensor):
            data = Tensor(data, device=device)  # Tensor's rules: Python floats become float32
        backend = get_backend(device) if device is not None else data.backend
        array = data.data if backend is data.backend else backend.from_host(data.numpy())
        self.data, self.backend, self.grad, self._ctx, self.requires_grad = array, backend, None, None, False
        self.requires_grad_(requires_grad)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


#: While the outermost module call runs: (buffer, its values before) for each buffer a layer is about to change.
_changed_buffers: list[tuple[Tensor, Any]] | None = None


class BackwardHookIdentity(Function):
    """y = x, whose backward hands dL/dy to ``on_grad`` (a ``_BackwardHookState`` method) and returns what it
    returns: the points where a module's full backward hooks see, and may replace, its gradients."""

    lowerable = False  # its backward calls the user's hooks (Python): a replay calls it whole

    @staticmethod
    def forward(ctx, x, on_grad=None):
        ctx.on_grad = on_grad
        return x

    @staticmethod
    def backward(ctx, g):
        return ctx.on_grad(g, ctx.backend)


class _BackwardHookState:
    """One call of a module with full backward hooks: the gradient at its output, then at its input."""

    def __init__(self, module: Module, hooks_: list, input_needs_grad: bool):
        self.module, self.hooks, self.input_needs_grad, self.grad_output = module, hooks_, input_needs_grad, None

    @staticmethod
    def wrap_input(module: Module, hooks_: list, args: tuple) -> tuple[_BackwardHookState, tuple]:
        tensors = [i for i, a in enumerate(args) if isinstance(a, Tensor)]
        if len(tensors) != 1:
            raise RuntimeError(f"{type(module).__name__}: register_full_backward_hook supports modules called with "
                               f"one tensor argument, got {len(tensors)}")
        i = tensors[0]
        state = _BackwardHookState(module, hooks_, args[i].requires_grad)
        if state.input_needs_grad:
            args = args[:i] + (BackwardHookIdentity.apply(args[i], on_grad=state.at_input),) + args[i + 1:]
        return state, args

    def wrap_output(self, output: Any) -> Any:
        if not isinstance(output, Tensor):
            raise RuntimeError(f"{type(self.module).__name__}: register_full_backward_hook supports modules that "
                               f"return one tensor, got {type(output).__name__}")
        return BackwardHookIdentity.apply(output, on_grad=self.at_output) if output.requires_grad else output

    def at_output(self, g: Any, backend: Any) -> Any:
        self.grad_output = g
        if not self.input_needs_grad:  # no gradient will reach the input: the hooks run now, with (None,)
            self._run((None,), backend)
        return g

    def at_input(self, g: Any, backend: Any) -> Any:
        return self._run((g,), backend)[0]

    def _run(self, grad_input: tuple, backend: Any) -> tuple:
        def wrap(a: Any) -> Any:
            return None if a is None else Tensor._wrap(a, backend)

        grad_output = (wrap(self.grad_output),)
        current = tuple(wrap(a) for a in grad_input)
        for hook in self.hooks:
            result = hook(self.module, current, grad_output)
            if result is not None:
                current = tuple(result) if isinstance(result, (tuple, list)) else (result,)
        return tuple(None if t is None else t._data for t in current)


def rebuilt_as(module: Module, cls: type[Module]) -> Module:
    """A ``cls`` instance with ``module``'s attributes, Parameters, buffers and mode (the same objects): a layer
    swapped for a subclass that computes differently (``SyncBatchNorm``, ``amp.dfp16.DFP16Linear``)."""
    rebuilt = cls.__new__(cls)
    Module.__init__(rebuilt)
    for name, value in vars(module).items():
        if name not in ("_parameters", "_buffers", "_modules", "training"):
            object.__setattr__(rebuilt, name, value)
    rebuilt._parameters.update(module._parameters)
    rebuilt._buffers.update(module._buffers)
    rebuilt.training = module.training
    return rebuilt


def remember(buffer: Tensor | None) -> None:
    """Keep a copy of ``buffer``'s values before a layer changes it in a forward pass, so that a later failure in the
    same outermost module call puts them back (a forward that raises must change nothing)."""
    if _changed_buffers is not None and buffer is not None:
        _changed_buffers.append((buffer, buffer.backend.xp.asarray(buffer.data, copy=True)))


class Module:
    """Base class of layers, as ``torch.nn.Module``: assign Parameters, buffers and sub-Modules as attributes.

    ``parameters()`` and ``named_parameters()`` find them (depth first, in assignment order), ``train()``/``eval()``
    set ``self.training`` everywhere below, ``to(device, dtype)`` moves and casts everything (``half()``,
    ``bfloat16()``, ``float()``, ``double()`` cast), ``state_dict()`` returns NumPy copies.
    """

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    def __setattr__(self, name: str, value: Any) -> None:
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"{type(self).__name__}: call super().__init__() before assigning attributes")
        if isinstance(value, Parameter):
            target = self._parameters
        elif isinstance(value, Module):
            target = self._modules
        elif name in self._buffers and (value is None or isinstance(value, Tensor)):
            target = self._buffers  # reassigning a buffer (running statistics) keeps it a buffer
        else:
            target = None
        for registry in (self._parameters, self._buffers, self._modules):
            if registry is not target:
                registry.pop(name, None)
        if target is not None:
            target[name] = value  # a replaced entry keeps its place (Sequential's order)
        object.__setattr__(self, name, value)

    def register_buffer(self, name: str, tensor: Tensor | None) -> None:
        """A tensor that is part of the module's state but not trained (e.g. batchnorm's running mean)."""
        setattr(self, name, tensor)
        self._buffers[name] = tensor

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    _has_hooks = False  # set on the instance by the first register_*hook: __call__ then takes _call_with_hooks

    def register_forward_pre_hook(self, hook: Any) -> hooks.RemovableHandle:
        """``hook(module, args)`` before ``forward``; a result that is not None replaces the positional arguments (a
        tuple, or one value)."""
        return self._add_hook("_forward_pre_hooks", hook)

    def register_forward_hook(self, hook: Any) -> hooks.RemovableHandle:
        """``hook(module, args, output)`` after ``forward``; a result that is not None replaces the output."""
        return self._add_hook("_forward_hooks", hook)

    def register_full_backward_hook(self, hook: Any) -> hooks.RemovableHandle:
        """``hook(module, grad_input, grad_output)`` once the gradients with respect to the module's input are computed
        (``grad_input`` is ``(None,)`` when the input needs none); a result that is not None replaces ``grad_input``.
        For modules with one tensor input and one tensor output (the layers of this library)."""
        return self._add_hook("_backward_hooks", hook)

    def _add_hook(self, table: str, hook: Any) -> hooks.RemovableHandle:
        if not callable(hook):
            raise TypeError(f"{type(self).__name__}.register_*hook: expected a callable, got {type(hook).__name__}")
        hooks.registered()
        if table not in self.__dict__:
            object.__setattr__(self, table, {})
        object.__setattr__(self, "_has_hooks", True)
        handle = hooks.RemovableHandle(self.__dict__[table])
        self.__dict__[table][handle.id] = hook
        return handle

    def _call_with_hooks(self, args: tuple, kwargs: dict) -> Any:
        """``__call__`` for a module with hooks: pre-hooks, backward-hook wrapping, forward, forward hooks."""
        pre, post, backward = (list(self.__dict__.get(t, {}).values())
                               for t in ("_forward_pre_hooks", "_forward_hooks", "_backward_hooks"))
        if pre or post or backward:
            capture.unreplayable("a module hook ran (Python callbacks are not replayed)")
        for hook in pre:
            result = hook(self, args)
            if result is not None:
                args = result if isinstance(result, tuple) else (result,)
        state = None
        if backward:
            state, args = _BackwardHookState.wrap_input(self, backward, args)
        object.__setattr__(self, "_has_hooks", False)  # the plain call below (one body for both paths)
        try:
            output = self(*args, **kwargs)
        finally:
            object.__setattr__(self, "_has_hooks", True)
        for hook in post:
            result = hook(self, args, output)
            if result is not None:
                output = result
        return state.wrap_output(output) if state is not None else output

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """``forward(*args, **kwargs)``, with the hooks around it when the module has some. A forward that raises
        changes nothing: the buffers that layers changed on the way (``remember``: batchnorm's running statistics) get
        their values back when the outermost call fails."""
        global _changed_buffers
        if self._has_hooks:
            return self._call_with_hooks(args, kwargs)
        if capture.recording is not None:  # tinygrad_edu.jit: this module's training flag guards the replay
            capture.recording.module(self)
        if _changed_buffers is not None:  # inside an outer module's call: it undoes everything if it fails
            return self.forward(*args, **kwargs)
        _changed_buffers = []
        try:
            return self.forward(*args, **kwargs)
        except BaseException:
            for buffer, values in reversed(_changed_buffers):
                buffer.data = values
            raise
        finally:
            _changed_buffers = None

    # -- traversal -------------------------------------------------------------------------------------------------
    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        yield prefix, self
        for name, child in self._modules.items():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self) -> Iterator[Module]:
        for _, module in self.named_modules():
            yield module

    def children(self) -> Iterator[Module]:
        yield from self._modules.values()

    def named_parameters(self) -> Iterator[tuple[str, Parameter]]:
        seen: set[int] = set()
        for prefix, module in self.named_modules():
            for name, p in module._parameters.items():
                if id(p) not in seen:
                    seen.add(id(p))
                    yield (f"{prefix}.{name}" if prefix else name), p

    def parameters(self) -> Iterator[Parameter]:
        for _, p in self.named_parameters():
            yield p

    def named_buffers(self) -> Iterator[tuple[str, Tensor]]:
        for prefix, module in self.named_modules():
            for name, b in module._buffers.items():
                if b is not None:
                    yield (f"{prefix}.{name}" if prefix else name), b

    # -- modes, gradients, devices ------------------------------------------------------------------------------------
    def train(self, mode: bool = True) -> Module:
        for module in self.modules():
            object.__setattr__(module, "training", mode)
        return self

    def eval(self) -> Module:
        return self.train(False)

    @capture.host_call  # (tinygrad_edu.jit calls it again at every replay)
    def zero_grad(self) -> None:
        for p in self.parameters():
            p.grad = None

    def to(self, device: Any = None, dtype: Any = None, non_blocking: bool = False) -> Module:
        """Move and/or cast every parameter and buffer in place, as ``torch.nn.Module.to``; returns ``self``.

        The forms: ``to("cuda")``, ``to(tg.float16)``, ``to("cpu", "bfloat16")``, ``to(device=..., dtype=...)``,
        ``to(tensor)`` (that tensor's device and dtype); a dtype name alone, ``to("float16")``, is read as the
        dtype. The Parameter objects stay the same (optimizers keep working); only their arrays are replaced.

        * device: a move clears the gradients of the moved tensors;
        * dtype (floating-point only): floating parameters, their gradients and floating buffers are cast;
          integer buffers (batchnorm's ``num_batches_tracked``) are left as they are. See ``half()``.

        Everything is checked before anything changes. ``non_blocking`` is accepted for PyTorch's signature; copies
        here are synchronous.
        """
        if isinstance(device, Tensor):
            device, dtype = device.device, device.dtype if dtype is None else dtype
        elif device is not None and dtype is None and not _is_device(device):
            device, dtype = None, device  # to(tg.float16), to("float16")
        try:
            backend = get_backend(device) if device is not None else None
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"{type(self).__name__}.to: {exc}") from None
        target = _float_dtype(f"{type(self).__name__}.to", dtype) if dtype is not None else None
        tensors = self._unique_tensors()
        if target is not None or backend is not None:
            _check_devices_have(f"{type(self).__name__}.to", target, tensors, backend)
        if backend is not None:
            for tensor in tensors:
                if tensor.backend is not backend:
                    tensor.data = backend.from_host(tensor.numpy())
                    tensor.backend = backend
                    tensor.grad = None
        if target is not None:
            _cast_floating(tensors, target)
        return self

    def half(self) -> Module:
        """Cast every floating-point parameter and buffer to float16 in place (``torch.nn.Module.half``): the
        Parameter objects stay the same, their ``.data`` is replaced and an existing ``.grad`` is cast too;
        integer buffers stay as they are. Returns ``self``."""
        return self._cast_to("half", np.dtype(np.float16))

    def bfloat16(self) -> Module:
        """Cast every floating-point parameter and buffer to bfloat16 (``tg.bfloat16``) in place
        (``torch.nn.Module.bfloat16``; see ``half``). A device without bfloat16 refuses, and nothing changes."""
        return self._cast_to("bfloat16", bfloat16)

    def float(self) -> Module:
        """Cast every floating-point parameter and buffer to float32 in place (see ``half``)."""
        return self._cast_to("float", np.dtype(np.float32))

    def double(self) -> Module:
        """Cast every floating-point parameter and buffer to float64 in place (see ``half``)."""
        return self._cast_to("double", np.dtype(np.float64))

    def _cast_to(self, method: str, dtype: np.dtype) -> Module:
        tensors = self._unique_tensors()
        _check_devices_have(f"{type(self).__name__}.{method}", dtype, tensors, None)
        _cast_floating(tensors, dtype)
        return self

    def _unique_tensors(self) -> list[Tensor]:
        """Every parameter and (non-None) buffer of every module below, each once (shared ones are listed once)."""
        seen: dict[int, Tensor] = {}
        for module in self.modules():
            for tensor in list(module._parameters.values()) + list(module._buffers.values()):
                if tensor is not None:
                    seen.setdefault(id(tensor), tensor)
        return list(seen.values())

    # -- state -----------------------------------------------------------------------------------------------------
    def state_dict(self) -> OrderedDict[str, np.ndarray]:
        """Host copies of every parameter and buffer, by dotted name."""
        state = OrderedDict((name, p.numpy().copy()) for name, p in self.named_parameters())
        state.update((name, b.numpy().copy()) for name, b in self.named_buffers())
        return state

    def load_state_dict(self, state: dict[str, Any], strict: bool = True) -> IncompatibleKeys:
        """Copy values into the parameters and buffers, cast to their dtypes, as ``torch.nn.Module.load_state_dict``.

        ``strict=True``: the state must name exactly the module's parameters and buffers (``KeyError`` listing the
        missing and unexpected keys). ``strict=False``: the names they share are loaded, the others ignored. Every
        shape (``ValueError``) and dtype kind (``TypeError``: a floating tensor takes floating values, an integer
        one integers, a boolean one booleans; widths are cast) is checked and every array converted before the
        first assignment, so a bad state, or an error mid-way, changes nothing. Returns ``IncompatibleKeys``
        ``(missing_keys, unexpected_keys)``.
        """
        where = f"{type(self).__name__}.load_state_dict"
        if not isinstance(state, dict):
            raise TypeError(f"{where}: expected a dict of name -> array (a state_dict()), got {type(state).__name__}")
        targets = dict(self.named_parameters())
        targets.update(self.named_buffers())
        missing = sorted(set(targets) - set(state))
        unexpected = sorted(set(state) - set(targets))
        if strict and (missing or unexpected):
            raise KeyError(f"{where}: missing keys {missing}, unexpected keys {unexpected}")
        arrays = {}
        for name, target in targets.items():
            if name not in state:
                continue
            value = state[name]
            value = value.numpy() if isinstance(value, Tensor) else value
            if isinstance(value, np.ndarray) or np.isscalar(value):
                value = np.asarray(value)
            else:  # a device array (CuPy, ...) or a list
                value = Tensor(value).numpy()
            if value.shape != target.shape:
                raise ValueError(f"{where}: {name} has shape {value.shape} in the state, {target.shape} in the module")
            if _dtype_class(value.dtype) != _dtype_class(target.dtype):
                raise TypeError(f"{where}: {name} has dtype {value.dtype} in the state, {target.dtype} in the module "
                                f"(expected a {_dtype_class(target.dtype)} dtype)")
            arrays[name] = value
        # everything checked: convert (new device arrays; may fail, e.g. out of memory, before anything changed)
        new_data = {name: targets[name].backend.from_host(value.astype(targets[name].dtype, copy=True))
                    for name, value in arrays.items()}
        for name, data in new_data.items():  # plain assignments: cannot fail half-way
            targets[name].data = data
        return IncompatibleKeys(missing, unexpected)

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        lines = [f"({name}): " + repr(m).replace("\n", "\n  ") for name, m in self._modules.items()]
        if not lines:
            return f"{type(self).__name__}({self.extra_repr()})"
        return f"{type(self).__name__}(\n  " + "\n  ".join(lines) + "\n)"


# -- helpers of to() / half() / bfloat16() / float() / double() ------------------------------------------------------
class IncompatibleKeys(NamedTuple):
    """What ``Module.load_state_dict`` returns, as PyTorch: the keys the state lacked and those it had in excess."""

    missing_keys: list[str]
    unexpected_keys: list[str]


def _dtype_class(dtype: Any) -> str:
    """``"floating"``, ``"integer"``, ``"boolean"`` or ``"complex"``: dtypes of one class load into each other."""
    kind = "f" if is_floating(dtype) else np.dtype(dtype).kind
    return {"f": "floating", "i": "integer", "u": "integer", "b": "boolean", "c": "complex"}.get(kind, str(dtype))


def _is_device(value: Any) -> bool:
    """True for a device string ("cpu", "cuda:1", ...); dtypes and dtype names are not."""
    if not isinstance(value, str):
        return False
    try:
        canonical_device(value)
    except ValueError:
        try:
            np.dtype(value)
        except TypeError:
            return True  # neither: let get_backend name the bad device
        return False
    return True


def _float_dtype(where: str, dtype: Any) -> np.dtype:
    """``dtype`` as a floating-point NumPy dtype; TypeError naming ``where`` and what came otherwise."""
    try:
        target = np.dtype(dtype)
    except TypeError:
        target = None
    if target is None or not is_floating(target):
        raise TypeError(f"{where}: dtype must be a floating-point dtype (float16, float32 or float64), got {dtype!r}")
    return target


def _check_devices_have(where: str, dtype: np.dtype | None, tensors: list[Tensor], backend: Any) -> None:
    """TypeError, before anything changes, when a dtype is asked for on a device without it (float16 and bfloat16 on
    "strict", bfloat16 on CUDA): each tensor in the dtype it will have (``dtype`` for the floating ones, when given)
    on the device it will be on (``backend`` for a move, else its own)."""
    for tensor in tensors:
        device = backend or tensor.backend
        wanted = dtype if dtype is not None and is_floating(tensor.dtype) else tensor.dtype
        if not device.has_dtype(wanted):
            raise TypeError(f"{where}: device {device.name!r} has no {wanted}")


def _cast_floating(tensors: list[Tensor], dtype: np.dtype) -> None:
    """Cast the floating-point tensors (and their gradients) to ``dtype`` in place; others are left alone."""
    for tensor in tensors:
        if not is_floating(tensor.dtype) or tensor.dtype == dtype:
            continue
        xp, target = tensor.backend.xp, tensor.backend.dtype(dtype)
        tensor.data = xp.astype(tensor.data, target)
        if tensor.grad is not None:
            tensor.grad.data = xp.astype(tensor.grad.data, target)
