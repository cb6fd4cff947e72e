"""``tinygrad_edu.jit``: capture a training step once, then replay it without the tape's bookkeeping.

The idea of tinygrad's TinyJit and of CUDA graphs, written for this engine::

    @tg.jit
    def step(x, y):
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        return loss

**Capture.** The first two calls with a new *signature* (the shapes, dtypes, devices and ``requires_grad`` of the
tensor arguments, the values of the other arguments, grad mode, and the training flag of every module the step ran)
run eagerly, as without ``jit``, while ``autograd.capture`` records what they did: every op (its ``Function``, its
context, where each input came from), the backward pass, and the *host calls* (``optimizer.step``, ``zero_grad``,
the loss scaler's and master weights' methods, batchnorm's batch count), which are Python code that changes state.

**Replay.** From the third call on, the recorded program runs as one Python function written for it at capture
(``step.source``): each op's ``forward`` on the arrays (no Tensor, no new context, no checks), then the backward of
the recorded ops newest first with the engine's own gradient routing written out, and each host call again, in
place. Random ops (dropout, DropConnect, swapout) draw their masks in
``forward``, from the same generator in the same order: a replayed run gives the eager run's values bit for bit.

**What breaks capture.** The two eager calls must record the same program. Either of them reports why not when it
reads a tensor back to the host (``item()``, ``numpy()``, ``bool(t)``: Python may branch on the value), changes a
tensor in place outside an optimizer, draws a branch on the host (stochastic depth), or queues a gradient callback
(data parallel); and the two recordings differ when a tensor is made anew at each call outside the ops (``Tensor(...)``
from host data, ``tg.randn``, a comparison). Such a function runs eagerly from then on, with a ``JitWarning`` naming
the reason (``jit(strict=True)``: a ``JitError`` instead). What replay cannot see: Python numbers computed inside the
step are constants of the capture (pass a value that changes as an argument, which is part of the signature), and
the public functions' input checks (shapes, class indices in range) run at capture only.

``step.graph`` lists the replayed program, the tape as data; ``step.source`` is the Python function a replay runs
(the program compiled to straight-line code: one line per forward call, the engine's backward walk written out);
``step.stats`` counts captures, replays and eager calls.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from tinygrad_edu.autograd import anomaly, capture, engine, hooks
from tinygrad_edu.tensor import Tensor

__all__ = ["JitError", "JitWarning", "jit"]


class JitWarning(UserWarning):
    """A jitted function runs eagerly: its capture found something a replay could not repeat (the message says
    what)."""


class JitError(RuntimeError):
    """``jit(strict=True)``: the function cannot be replayed (the message says why)."""


def jit(fn: Callable | None = None, *, strict: bool = False) -> Any:
    """Decorate a function of tensors (typically a whole training step) to be captured and replayed; see the
    module's docstring. ``strict=True`` raises ``JitError`` where the default warns and runs eagerly."""
    if fn is None:
        return lambda f: JitFunction(f, strict)
    return JitFunction(fn, strict)


# ------------------------------------------------------------------------------------------------------------------
# the program of one signature
# ------------------------------------------------------------------------------------------------------------------
class _Program:
    """A recording turned into references: ("arg", i), ("op", k), ("ext", e) for tensors, ("const", v) otherwise."""

    def __init__(self, recording: capture.Recording, args: tuple, result: Any):
        self.reasons = list(recording.reasons)
        self.externals: list[Tensor] = []  # tensors the step read that existed before it (parameters, buffers, ...)
        self.steps: list[tuple] = []
        arg_index = {id(a): i for i, a in enumerate(args) if isinstance(a, Tensor)}
        produced: dict[int, int] = {}  # id(op output) -> op number (the recording keeps them alive: ids stay unique)
        ext_index: dict[int, int] = {}
        self.ops: list[tuple] = []  # (cls, ctx, input refs, kwargs, output shape, output dtype)
        self.classes: list[type] = []  # the array class of each op's output

        def ref(value: Any) -> tuple:
            if not isinstance(value, Tensor):
                return ("const", value)
            if id(value) in produced:
                return ("op", produced[id(value)])
            if id(value) in arg_index:
                return ("arg", arg_index[id(value)])
            if id(value) not in ext_index:
                ext_index[id(value)] = len(self.externals)
                self.externals.append(value)
            return ("ext", ext_index[id(value)])

        previous = np.geterr()  # where NumPy's error handling changes (np.errstate in the step), the replay sets it
        self.errstates: list[dict | None] = []
        for entry, errstate in zip(recording.program, recording.errstates):
            self.errstates.append(None if errstate == previous else errstate)
            previous = errstate
            if entry[0] == "op":
                _, cls, ctx, op_args, kwargs, out = entry
                refs = tuple(ref(a) for a in op_args)
                k = len(self.ops)
                self.ops.append((cls, ctx, refs, dict(kwargs), tuple(out._data.shape), out._data.dtype))
                self.classes.append(out._data.__class__)
                produced[id(out)] = k
                self.steps.append(("op", k))
            elif entry[0] == "backward":
                _, root, grad, retain_graph = entry
                root_ref = ref(root)
                if root_ref[0] != "op":
                    self.reasons.append("backward() from a tensor no recorded op produced")
                    self.errstates.pop()
                    continue
                self.steps.append(("backward", root_ref[1], ref(grad), retain_graph))  # (None: ("const", None))
            else:
                _, method, host_args, host_kwargs = entry
                for a in (*host_args, *host_kwargs.values()):
                    if isinstance(a, Tensor) and ref(a)[0] in ("op", "arg"):
                        self.reasons.append(f"{method.__qualname__} was given a tensor the step computes")
                self.steps.append(("host", method, host_args, host_kwargs))
        self.result = _structure(result, ref, self.reasons)
        self.guards = [(t, t.requires_grad, tuple(t._data.shape), t._data.dtype) for t in self.externals]
        self.generation = hooks.generation  # a hook registered later (the replay would skip it) captures again
        for position, a in enumerate(args):  # (its backward would have to go on into the graph outside the step)
            if isinstance(a, Tensor) and a._ctx is not None and a.requires_grad:
                self.reasons.append(f"argument {position} is the output of an op outside the step, not a leaf "
                                    "(pass a leaf, or detach() it)")
        if any(t._ctx is not None and t.requires_grad for t in self.externals):
            self.reasons.append("the step reads a tensor computed outside it that is still on a tape (detach() it)")
        # arrays handed to ops as options (batchnorm's running statistics) that are a buffer's array now: a replay
        # writes into these, so a buffer whose array is replaced (load_state_dict) makes the program stale
        buffers = {id(b._data): b for m in recording.modules.values() for _, b in m.named_buffers()}
        self.array_guards = [(buffers[id(v)], v) for op in self.ops for v in op[3].values() if id(v) in buffers]
        self.backward_plans = {k: self._backward_plan(k) for kind, k, *_ in self.steps if kind == "backward"}
        self.source = ""

    def finalize(self) -> None:
        """Make the confirmed program replayable: each context of a backward is given its inputs' count (the replay
        passes arrays, not tensors), then the program is compiled. Refused when the step keeps its graph."""
        for plan in self.backward_plans.values():
            for _, ctx, _targets in plan:
                if ctx.parents is not None:  # retain_graph on the last backward: the caller may still use it
                    self.reasons.append("the step keeps its graph after backward (retain_graph=True)")
                    return
        for _, ctx, refs, *_ in self.ops:
            if hasattr(ctx, "sequence"):
                ctx.parents = (None,) * len(refs)
        self.compile()

    def _backward_plan(self, root: int) -> list[tuple]:
        """The recorded ops behind ``root`` that take part in backward, newest first (the engine's order: parents
        always precede their children), each with where its input gradients go."""
        reached = {root}
        plan = []
        for k in range(root, -1, -1):
            if k not in reached:
                continue
            cls, ctx, refs, *_ = self.ops[k]
            needs = ctx.needs_input_grad
            targets = []
            for r, needed in zip(refs, needs):
                if not needed:
                    targets.append(None)
                elif r[0] == "op" and hasattr(self.ops[r[1]][1], "sequence"):  # (on the tape)
                    reached.add(r[1])
                    targets.append(("op", r[1], self.ops[r[1]][4], self.ops[r[1]][5]))
                elif r[0] in ("ext", "arg"):
                    targets.append(r)  # a leaf: its .grad
                else:
                    targets.append(None)
            plan.append((k, ctx, tuple(targets)))
        return plan

    def same_as(self, other: _Program) -> str | None:
        """None if ``other`` recorded the same program, else what differs."""
        if len(self.steps) != len(other.steps) or len(self.ops) != len(other.ops):
            return "the two captured calls ran a different number of ops"
        for a, b in zip(self.ops, other.ops):
            if a[0] is not b[0] or not _same_refs(a[2], b[2]) or a[4] != b[4] or a[5] != b[5]:
                return f"op {a[0].__name__} got other inputs or shapes in the second captured call"
            if a[3].keys() != b[3].keys() or any(not _same_value(a[3][key], b[3][key]) for key in a[3]):
                return f"op {a[0].__name__} got other options in the second captured call"
        for a, b in zip(self.steps, other.steps):
            if a[0] != b[0] or (a[0] == "host" and not _same_call(a[1:], b[1:])) or (a[0] == "backward" and (
                    a[1] != b[1] or a[3] != b[3] or not _same_refs((a[2],), (b[2],)))):
                return "the two captured calls did different things (backward or host calls)"
        if len(self.externals) != len(other.externals) or any(
                x is not y for x, y in zip(self.externals, other.externals)):
            return ("a tensor was made anew inside the step outside the recorded ops (Tensor(...) from host data, a "
                    "random tensor, a comparison or an integer cast)")
        return None

    # -- replay: the program compiled to straight-line Python ---------------------------------------------------------
    def compile(self) -> None:
        """Write the program as the source of one Python function, ``replay(args)``, and compile it: every op's
        forward call, every backward call and gradient sum, every host call, in the recorded order, on local
        variables (``self.source`` holds the text). The arrays of parameters and buffers are read when used, since
        host calls may replace them (``copy_master_to_model``)."""
        names: dict[str, Any] = {"Tensor": Tensor, "seterr": np.seterr, "_normalize": _normalize, "_fit": engine._fit,
                                 "_one_per_input": engine._one_per_input, "_unaliased": engine._unaliased}
        lines = ["def replay(args):"]

        def emit(text: str, depth: int = 1) -> None:
            lines.append("    " * depth + text)

        def name(prefix: str, value: Any) -> str:
            key = f"{prefix}{len(names)}"
            names[key] = value
            return key

        def expr(r: tuple) -> str:
            kind, i = r
            if kind == "op":
                return f"v{i}"
            if kind in ("arg", "ext"):
                return f"{_tensor_expr(r)}._data"
            return name("K", i)

        for i, t in enumerate(self.externals):
            names[f"E{i}"] = t
        for k, op in enumerate(self.ops):
            names[f"C{k}"] = op[1]
        for step, errstate in zip(self.steps, self.errstates):
            if errstate is not None:
                emit(f"seterr(**{name('S', errstate)})")
            if step[0] == "op":
                k = step[1]
                cls, ctx, refs, kwargs, shape, dtype = self.ops[k]
                call = ", ".join([f"C{k}"] + [expr(r) for r in refs])
                if kwargs:
                    call += f", **{name('KW', kwargs)}"
                depth = 1
                if ctx.backend.context is not None:
                    emit(f"with {name('X', ctx.backend.context)}:")
                    depth = 2
                emit(f"C{k}._saved = ()", depth)
                emit(f"v{k} = {name(cls.__name__ + '_forward_', cls.forward)}({call})", depth)
                emit(f"if v{k}.__class__ is not {name('A', self.classes[k])}: v{k} = _normalize(v{k})", depth)
            elif step[0] == "backward":
                self._emit_backward(step, emit, name, expr)
            else:
                _, method, host_args, host_kwargs = step
                emit(f"{name('H', method)}(*{name('HA', host_args)}, **{name('HK', host_kwargs)})  "
                     f"# {method.__qualname__}")
        outputs = sorted({i for kind, i in _tensor_refs(self.result) if kind == "op"})
        emit("return {" + ", ".join(f"{k}: v{k}" for k in outputs) + "}")
        self.source = "\n".join(lines) + "\n"
        namespace = dict(names)
        exec(compile(self.source, f"<tinygrad_edu.jit replay of {len(self.ops)} ops>", "exec"), namespace)  # noqa: S102
        self._replay = namespace["replay"]

    def _emit_backward(self, step: tuple, emit: Callable, name: Callable, expr: Callable) -> None:
        """The engine's walk (``autograd/engine.py``) written out for one backward pass: the same order, the same
        sums in the same order, the same casts; a leaf's ``.grad`` is set once the whole walk ran."""
        _, root, grad_ref, retain_graph = step
        plan = self.backward_plans[root]
        ctx = self.ops[root][1]
        for k, _, _ in plan[1:]:
            emit(f"g{k} = None")
        leaves: dict[tuple, str] = {}
        for _, _, targets in plan:
            for target in targets:
                if target is not None and target[0] in ("ext", "arg") and target not in leaves:
                    leaves[target] = f"l{len(leaves)}"
                    emit(f"l{len(leaves) - 1} = None")
        if grad_ref[0] == "const":  # backward() (a non-tensor upstream is refused): ones, as arguments.upstream
            emit(f"g{root} = {name('B', ctx.backend)}.xp.ones_like(v{root})")
        else:
            emit(f"g{root} = {name('B', ctx.backend)}.xp.asarray({expr(grad_ref)}, copy=True)")
        for k, ctx, targets in plan:
            depth = 1
            if k != root:
                emit(f"if g{k} is not None:")
                depth = 2
            if ctx.backend.context is not None:
                emit(f"with {name('X', ctx.backend.context)}:", depth)
                depth += 1
            emit(f"r = {name(type(ctx).__name__ + '_backward_', ctx.backward)}(C{k}, g{k})", depth)
            emit("if r.__class__ is not tuple: r = (r,)", depth)
            n = len(targets)
            emit(f"if len(r) != {n}: r = _one_per_input(C{k}, r)", depth)
            needed = [position for position, target in enumerate(targets) if target is not None]
            pairs = [(a, b) for i, a in enumerate(needed) for b in needed[i + 1:]]
            if pairs:  # one array returned for two inputs (a + b): the engine copies it (only needed ones matter)
                same = " or ".join(f"(r[{a}] is r[{b}] and r[{a}] is not None)" for a, b in pairs)
                emit(f"if {same}: r = _unaliased(C{k}.xp, r)", depth)
            for position, target in enumerate(targets):
                if target is None:
                    continue
                emit(f"x = r[{position}]", depth)
                emit("if x is not None:", depth)
                if target[0] == "op":
                    _, j, shape, dtype = target
                    cls_name, shape_name, dtype_name = name("A", self.classes[j]), name("S", shape), name("D", dtype)
                    emit(f"if x.__class__ is not {cls_name} or x.shape != {shape_name} or x.dtype != {dtype_name}: "
                         f"x = _fit(C{k}, x, {shape_name}, {dtype_name}, C{j}.backend.xp)", depth + 1)
                    emit(f"g{j} = x if g{j} is None else g{j} + x", depth + 1)
                else:
                    leaf, staged = _tensor_expr(target), leaves[target]
                    emit(f"d = {leaf}._data", depth + 1)
                    emit("if x.__class__ is not d.__class__ or x.shape != d.shape or x.dtype != d.dtype: "
                         f"x = _fit(C{k}, x, d.shape, d.dtype, {leaf}.backend.xp)", depth + 1)
                    emit(f"{staged} = (x if {leaf}._grad is None else {leaf}._grad._data + x) if {staged} is None "
                         f"else {staged} + x", depth + 1)
            if not retain_graph:
                emit(f"C{k}._saved = None", depth)
        for target, staged in leaves.items():
            leaf = _tensor_expr(target)
            emit(f"if {staged} is not None: {leaf}._grad = Tensor._wrap({staged}, {leaf}.backend)")

    def replay(self, args: tuple) -> Any:
        outer = np.geterr()
        try:
            values = self._replay(args)
        finally:
            np.seterr(**outer)
        return _rebuild(self.result, values, self.ops, self.externals, args)

    # -- for reading ----------------------------------------------------------------------------------------------------
    def lines(self, names: dict[int, str]) -> list[str]:
        """The program as text: one line per op, backward pass and host call."""

        def show(r: tuple) -> str:
            kind, i = r
            if kind == "op":
                return f"%{i}"
            if kind == "arg":
                return f"arg{i}"
            if kind == "ext":
                t = self.externals[i]
                return names.get(id(t), f"ext{i}") + f"{list(t._data.shape)}"
            return repr(i) if not hasattr(i, "shape") else f"array{list(i.shape)}"

        out = []
        for step in self.steps:
            if step[0] == "op":
                k = step[1]
                cls, _, refs, kwargs, shape, dtype = self.ops[k]
                options = "".join(f", {key}={show(('const', v))}" for key, v in kwargs.items())
                out.append(f"%{k} = {cls.__name__}({', '.join(show(r) for r in refs)}{options})"
                           f"  -> {list(shape)} {np.dtype(dtype) if not hasattr(dtype, 'name') else dtype}")
            elif step[0] == "backward":
                plan = self.backward_plans[step[1]]
                out.append(f"backward from %{step[1]}: " + ", ".join(f"{self.ops[k][0].__name__}.backward(%{k})"
                                                                     for k, _, _ in plan))
            else:
                out.append(f"host {step[1].__qualname__}()")
        return out


def _normalize(out: Any) -> Any:
    """What ``Function.apply`` makes of a forward's result: the array of a Tensor, a NumPy scalar as a 0-d array."""
    if isinstance(out, Tensor):
        return out._data
    return np.asarray(out) if isinstance(out, np.generic) else out


def _tensor_refs(structure: Any) -> list[tuple]:
    kind, content = structure
    if kind == "tensor":
        return [content]
    if kind == "const":
        return []
    return [r for s in content for r in _tensor_refs(s)]


def _tensor_expr(r: tuple) -> str:
    """The replay's expression for an argument or external tensor (a leaf): ``args[i]`` or ``E{e}``."""
    return f"args[{r[1]}]" if r[0] == "arg" else f"E{r[1]}"


def _same_call(a: tuple, b: tuple) -> bool:
    """Two recorded host calls (method, args, kwargs) are the same call."""
    (method_a, args_a, kwargs_a), (method_b, args_b, kwargs_b) = a, b
    return (method_a is method_b and len(args_a) == len(args_b) and kwargs_a.keys() == kwargs_b.keys()
            and all(_same_value(x, y) for x, y in zip((*args_a, *kwargs_a.values()), (*args_b, *kwargs_b.values()))))


def _same_refs(a: tuple, b: tuple) -> bool:
    return len(a) == len(b) and all(x[0] == y[0] and (_same_value(x[1], y[1]) if x[0] == "const" else x[1] == y[1])
                                    for x, y in zip(a, b))


def _same_value(a: Any, b: Any) -> bool:
    if hasattr(a, "shape") or hasattr(b, "shape") or isinstance(a, Tensor) or isinstance(b, Tensor):
        return a is b  # arrays and tensors: the same object (an array made anew at each call is not a constant)
    try:
        return bool(a == b) and type(a) is type(b)
    except Exception:  # noqa: BLE001 - values without a usable ==
        return a is b


def _structure(result: Any, ref: Callable, reasons: list[str]) -> Any:
    if isinstance(result, Tensor):
        r = ref(result)
        if r[0] == "op" and result._ctx is not None and result._ctx.parents is not None:
            reasons.append("the function returns a tensor whose backward has not run: put backward() inside it, or "
                           "run it under no_grad()")
        return ("tensor", r)
    if isinstance(result, (tuple, list)):
        return (type(result), [_structure(r, ref, reasons) for r in result])
    if result is None or isinstance(result, (int, float, str, bool)):
        return ("const", result)
    reasons.append(f"the function returns a {type(result).__name__} (tensors, tuples and lists of them, numbers)")
    return ("const", None)


def _rebuild(structure: Any, values: list, ops: list, externals: list, args: tuple) -> Any:
    """The function's result at a replay: its op outputs as new tensors (no tape), other values as captured."""
    kind, content = structure
    if kind == "tensor":
        where, i = content
        if where == "op":
            return Tensor._wrap(values[i], ops[i][1].backend)
        if where == "arg":
            return args[i]
        if where == "ext":
            return externals[i]
        return i
    if kind == "const":
        return content
    items = [_rebuild(s, values, ops, externals, args) for s in content]
    return kind(*items) if hasattr(kind, "_fields") else kind(items)  # (a namedtuple takes its fields one by one)


# ------------------------------------------------------------------------------------------------------------------
# the decorator's object: a cache of programs by signature
# ------------------------------------------------------------------------------------------------------------------
#: the signature of calls with an argument whose value cannot key a program (they run eagerly)
UNHASHABLE = ("unhashable",)


class JitFunction:
    """A function captured and replayed by signature (``tinygrad_edu.jit``)."""

    MAX_SIGNATURES = 8  #: programs kept; a ninth signature evicts the oldest

    def __init__(self, fn: Callable, strict: bool = False):
        functools.update_wrapper(self, fn)
        self.fn, self.strict = fn, strict
        self._programs: dict[tuple, Any] = {}  # signature -> _Program, or a first recording, or a reason (eager)
        self._modules: dict[int, Any] = {}  # every module a capture saw run: their training flags are in signatures
        self._last: tuple | None = None
        self.stats = {"captures": 0, "replays": 0, "eager": 0}

    def _signature(self, args: tuple, kwargs: dict) -> tuple:
        parts: list[Any] = [engine.grad_enabled, anomaly.enabled]
        first: dict[int, int] = {}  # the same tensor in two positions is part of the signature
        for position, a in enumerate((*args, *kwargs.values())):
            if isinstance(a, Tensor):
                parts.append((tuple(a._data.shape), str(a._data.dtype), a.backend.name, a.requires_grad,
                              first.setdefault(id(a), position)))
            else:
                try:
                    hash(a)
                except TypeError:
                    return UNHASHABLE  # a list, dict or array: its value cannot key a program (runs eagerly)
                parts.append((type(a), a))
        parts.append(tuple(kwargs))
        parts.append(tuple(m.training for m in self._modules.values()))
        return tuple(parts)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if capture.recording is not None or anomaly.enabled:  # inside another capture, or anomaly mode: eager
            return self.fn(*args, **kwargs)
        if kwargs:
            args = (*args, *kwargs.values())
            names = tuple(kwargs)
            positional = len(args) - len(names)
            call = lambda *a: self.fn(*a[:positional], **dict(zip(names, a[positional:])))  # noqa: E731
        else:
            call = self.fn
        signature = self._signature(args, kwargs)
        if signature is UNHASHABLE and signature not in self._programs:
            self._give_up(signature, "an argument is unhashable (a list, dict or array), so its value cannot be "
                          "part of the signature; pass tensors and numbers", stacklevel=3)
        entry = self._programs.get(signature)
        if isinstance(entry, _Program):
            if entry.generation == hooks.generation and all(
                    t.requires_grad == rg and t._data.shape == shape and t._data.dtype == dtype
                    for t, rg, shape, dtype in entry.guards) and all(b._data is a for b, a in entry.array_guards):
                self.stats["replays"] += 1
                self._last = signature
                return entry.replay(args)
            del self._programs[signature]  # a parameter changed shape, dtype or requires_grad: capture again
            entry = None
        if isinstance(entry, str):
            self.stats["eager"] += 1
            return call(*args)
        return self._capture(signature, entry[1] if isinstance(entry, tuple) else None, call, args)

    def _capture(self, signature: tuple, first: Any, call: Callable, args: tuple) -> Any:
        recording = capture.Recording()
        capture.recording = recording
        try:
            result = call(*args)
        finally:
            capture.recording = None
        self.stats["captures"] += 1
        program = _Program(recording, args, result)
        new_modules = [m for key, m in recording.modules.items() if key not in self._modules]
        for m in new_modules:
            self._modules[id(m)] = m
        if new_modules:  # the signature now holds these modules' flags too
            self._programs.pop(signature, None)
            signature = self._signature(args, {})
            first = None
        reason = program.reasons[0] if program.reasons else (first.same_as(program) if first is not None else None)
        if reason is not None:
            self._give_up(signature, reason)
        elif first is None:  # the next call with this signature captures again, to compare
            self._remember(signature, ("first", program))
        else:
            program.finalize()
            if program.reasons:
                self._give_up(signature, program.reasons[0])
                return result
            self._remember(signature, program)
            self._last = signature
        return result

    def _remember(self, signature: tuple, value: Any) -> None:
        while len(self._programs) >= self.MAX_SIGNATURES and signature not in self._programs:
            self._programs.pop(next(iter(self._programs)))
        self._programs[signature] = value

    def _give_up(self, signature: tuple, reason: str, stacklevel: int = 4) -> None:
        """Warn (strict: raise) once: calls with ``signature`` run eagerly from now on, for ``reason``."""
        message = f"jit({self.fn.__qualname__}): runs eagerly: {reason}"
        if self.strict:
            raise JitError(message)
        warnings.warn(message, JitWarning, stacklevel=stacklevel)
        self._remember(signature, reason)

    @property
    def source(self) -> str:
        """The Python function a replay runs for the latest signature (empty before a program is confirmed): each
        op's forward, the backward walk written out, the host calls."""
        program = self._programs.get(self._last) if self._last is not None else None
        return program.source if isinstance(program, _Program) else ""

    @property
    def graph(self) -> list[str]:
        """The program replayed for the latest signature, one line per op, backward pass and host call (empty before
        a program is confirmed)."""
        program = self._programs.get(self._last) if self._last is not None else None
        if not isinstance(program, _Program):
            return []
        names: dict[int, str] = {}  # the outermost module first: "0.weight", as its named_parameters() says
        for m in self._modules.values():
            for name, p in m.named_parameters():
                names.setdefault(id(p), name)
            for name, b in m.named_buffers():
                names.setdefault(id(b), name)
        return program.lines(names)
