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
(``step.source``): each op *lowered* to the array calls its forward made (``autograd/lowering.py`` traced them at
capture), then the backward of the recorded ops newest first, lowered the same way, with the engine's own gradient
routing written out, and each host call again, in place. No Tensor, no context, no checks. An op whose calls could
differ from one call to the next (it reads its values on the host, draws a random mask outside the traced calls,
runs on CuPy or array_api_strict, or is a ``Function`` defined outside the library that does not set
``lowerable = True``) is replayed as a call of its whole ``forward`` and ``backward`` instead; random
ops (dropout, DropConnect, swapout) then draw their masks from the same generator in the same order: a replayed run
gives the eager run's values bit for bit.

**What breaks capture.** The two eager calls must record the same program. Either of them reports why not when it
reads a tensor back to the host (``item()``, ``numpy()``, ``bool(t)``: Python may branch on the value), changes a
tensor in place outside an optimizer, draws a branch on the host (stochastic depth), or queues a gradient callback
(data parallel); and the two recordings differ when a tensor is made anew at each call outside the ops (``Tensor(...)``
from host data, ``tg.randn``, a comparison). Such a function runs eagerly from then on, with a ``JitWarning`` naming
the reason (``jit(strict=True)``: a ``JitError`` instead). What replay cannot see: Python numbers computed inside the
step are constants of the capture (pass a value that changes as an argument, which is part of the signature), and
the public functions' input checks (shapes, class indices in range) run at capture only.

``step.graph`` lists the replayed program, the tape as data, and for each op whether it was lowered (or why not);
``step.source`` is the Python function a replay runs (the program compiled to straight-line code: one line per array
call, the engine's backward walk written out) and ``valid()``, the guards checked before it runs; ``step.stats``
counts captures, replays and eager calls.
"""

from __future__ import annotations

import functools
import operator
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from tinygrad_edu.autograd import anomaly, capture, engine, hooks, lowering
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
#: temporaries of a lowered op of at least this many bytes are freed as soon as the replay no longer needs them
LARGE = 1 << 16


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
        self.traces: list = []  # per op: its lowering.Trace, or None (replayed as whole calls), or after compile()
        self.not_lowered: dict[int, str] = {}  # op -> why it is replayed as whole calls of forward and backward
        self.arg_meta = {i: (a._data.__class__, a._data.shape, a._data.dtype) for i, a in enumerate(args)
                         if isinstance(a, Tensor)}
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

        # where NumPy's error handling changes (np.errstate in the step), the replay changes the caller's the same way
        ambient, previous = recording.ambient, {}
        self.errstates: list[dict | None] = []  # per entry: None (no change), else its settings that differ from
        for entry, errstate in zip(recording.program, recording.errstates):  # the caller's at capture
            delta = {key: value for key, value in errstate.items() if ambient.get(key) != value}
            self.errstates.append(None if delta == previous else delta)
            previous = delta
            if entry[0] == "op":
                _, cls, ctx, op_args, kwargs, out = entry
                refs = tuple(ref(a) for a in op_args)
                k = len(self.ops)
                self.ops.append((cls, ctx, refs, dict(kwargs), tuple(out._data.shape), out._data.dtype))
                self.classes.append(out._data.__class__)
                trace = recording.traces.get(id(ctx))
                self.traces.append(trace if trace is not None and trace.reason is None else None)
                if trace is not None and trace.reason is not None:
                    self.not_lowered[k] = trace.reason
                elif trace is None:
                    self.not_lowered[k] = (f"it runs on '{ctx.backend.name}', not NumPy" if cls.lowerable else
                                           "a Function defined outside the library, without lowerable = True")
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

    def finalize(self, first: _Program) -> None:
        """Make the confirmed program replayable: an op is lowered where both captured calls traced the same array
        calls (``first`` is the other one), each context of a backward is given its inputs' count (the replay
        passes arrays, not tensors), then the program is compiled. Refused when the step keeps its graph."""
        in_backward = {k for plan in self.backward_plans.values() for k, _, _ in plan}
        for k, (trace, other) in enumerate(zip(self.traces, first.traces)):
            if trace is None:
                continue
            if other is None or not lowering.same(trace, other):
                self.not_lowered[k] = "the two captured calls traced different array calls"
            elif (k in in_backward) != (trace.results is not None):
                self.not_lowered[k] = "its backward did not run as the walk would run it"
            else:
                continue
            self.traces[k] = None
        for plan in self.backward_plans.values():
            for _, ctx, _targets in plan:
                if ctx.parents is not None:  # retain_graph on the last backward: the caller may still use it
                    self.reasons.append("the step keeps its graph after backward (retain_graph=True)")
                    return
        for k, (cls, ctx, refs, *rest) in enumerate(self.ops):
            if hasattr(ctx, "sequence") and self.traces[k] is None:  # replayed whole: a context of its own, whose
                ctx = cls.__new__(cls)                                 # parents only count the inputs (the tensors
                ctx.__dict__.update(self.ops[k][1].__dict__)           # the step returned keep their freed graph)
                ctx.parents = (None,) * len(refs)
                self.ops[k] = (cls, ctx, refs, *rest)
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
        forward, every backward and gradient sum, every host call, in the recorded order, on local variables
        (``self.source`` holds the text). A lowered op is written as the array calls it made (``lowering.py``), any
        other as one call of its ``forward`` and ``backward``. The arrays of parameters and buffers are read when an
        op uses them, since host calls may replace them (``copy_master_to_model``)."""
        names: dict[str, Any] = {"seterr": np.seterr, "geterr": np.geterr, "_normalize": _normalize, "_fit": engine._fit,
                                 "_one_per_input": engine._one_per_input, "_unaliased": engine._unaliased,
                                 "_wrap": Tensor._wrap}
        self.sets_errstate = any(e is not None for e in self.errstates)
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
        self._vars: dict[int, dict[int, str]] = {}  # op -> slot -> the replay's expression for it (lowered ops)
        self._freed: dict[int, set[str]] = {}  # op -> its variables deleted so far
        for step, errstate in zip(self.steps, self.errstates):
            if errstate is not None:
                emit(f"seterr(**{{**outer, **{name('S', errstate)}}})")
            if step[0] == "op":
                k = step[1]
                cls, ctx, refs, kwargs, shape, dtype = self.ops[k]
                if self.traces[k] is not None:
                    self._emit_lowered_forward(k, emit, name, expr)
                    continue
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
                self._emit_backward(step, lines, emit, name, expr)
            else:
                _, method, host_args, host_kwargs = step
                emit(f"{name('H', method)}(*{name('HA', host_args)}, **{name('HK', host_kwargs)})  "
                     f"# {method.__qualname__}")
        guards = [f"_hooks.generation == {self.generation}"]  # (a hook registered later would be skipped)
        for i, (_, requires_grad, shape, dtype) in enumerate(self.guards):  # the tensors read from outside
            guards.append(f"E{i}.requires_grad is {requires_grad} and E{i}._data.shape == {name('S', shape)} and "
                          f"E{i}._data.dtype == {name('D', dtype)}")
        for buffer, array in self.array_guards:  # batchnorm's running statistics: written in place by the replay
            guards.append(f"{name('U', buffer)}._data is {name('R', array)}")
        if self.sets_errstate:
            lines.insert(1, "    outer = geterr()  # the caller's error handling")
        lines[:0] = ["def valid():", "    return (" + "\n            and ".join(guards) + ")", ""]
        names["_hooks"] = hooks
        outputs = sorted({i for kind, i in _tensor_refs(self.result) if kind == "op"})
        emit("return {" + ", ".join(f"{k}: v{k}" for k in outputs) + "}")
        self.source = "\n".join(lines) + "\n"
        namespace = dict(names)
        exec(compile(self.source, f"<tinygrad_edu.jit replay of {len(self.ops)} ops>", "exec"), namespace)  # noqa: S102
        self._replay, self.valid = namespace["replay"], namespace["valid"]
        self.lowered_calls = {k: len(t.calls) for k, t in enumerate(self.traces) if t is not None}
        self.traces = [None] * len(self.traces)  # (the traces hold the captured call's arrays: let them go)
        self._vars, self._freed = {}, {}

    # -- lowered ops: their array calls, one per line ------------------------------------------------------------------
    def _emit_lowered_forward(self, k: int, emit: Callable, name: Callable, expr: Callable) -> None:
        trace, (cls, _, refs, kwargs, *_) = self.traces[k], self.ops[k]
        var = self._vars[k] = {}
        emit(f"# {cls.__name__}.forward")
        for slot, where in trace.inputs.items():
            if where[0] == "pos" and refs[where[1]][0] in ("arg", "ext"):  # the array as forward saw it
                var[slot] = f"t{k}_{slot}"
                emit(f"{var[slot]} = {expr(refs[where[1]])}")
            elif where[0] == "pos":
                var[slot] = expr(refs[where[1]])
            elif where[0] == "kw":
                var[slot] = name(f"{where[1]}_", kwargs[where[1]])
        for call in trace.calls[:trace.forward_calls]:
            emit(self._call_line(k, call, var, name))
        out = var[trace.out]
        emit(f"v{k} = {out}" if trace.out_class is self.classes[k] else f"v{k} = _normalize({out})")
        later = set() if trace.results is None else (lowering.slots_used(trace.calls[trace.forward_calls:])
                                                     | set(trace.results))
        self._free(k, [s for s in range(trace.forward_slots) if s not in later], emit, 1)

    def _emit_lowered_backward(self, k: int, depth: int, emit: Callable, name: Callable) -> list[str | None]:
        """The backward's array calls; returns the expression of each input's gradient (None: no gradient)."""
        trace, var = self.traces[k], self._vars[k]
        emit(f"# {self.ops[k][0].__name__}.backward", depth)
        for slot, where in trace.inputs.items():
            if where[0] == "grad":
                var[slot] = f"g{k}"
        for call in trace.calls[trace.forward_calls:]:
            emit(self._call_line(k, call, var, name), depth)
        results = [None if s is None else var[s] for s in trace.results]
        if trace.aliased:  # one array for two inputs: the engine copies it
            emit(f"r = _unaliased({name('XP', self.ops[k][1].xp)}, ({', '.join(map(str, results))},))", depth)
            results = [None if r is None else f"r[{i}]" for i, r in enumerate(results)]
        return results

    def _call_line(self, k: int, call: tuple, var: dict, name: Callable) -> str:
        slot, fn, args, kwargs, form = call

        def show(v: Any) -> str:
            return lowering.source(v, var, name)

        items = [show(a) for a in args] + [f"{key}={show(v)}" for key, v in kwargs.items()]
        if form == "call":
            text = f"{name(lowering.identifier(fn), fn)}({', '.join(items)})"
        elif form == "getattr":
            text = f"{items[0]}.{args[1]}"
        elif form == "getitem":
            text = f"{items[0]}[{items[1]}]"
        elif form == "setitem":
            text = f"{items[0]}[{items[1]}] = {items[2]}"
        elif form == "inplace":
            text = f"{name(lowering.identifier(fn), fn)}({items[0]}, {items[1]})"
        elif isinstance(form, tuple) and form[0] == "method":
            text = f"{items[0]}.{form[1]}({', '.join(items[1:])})"
        elif isinstance(form, tuple):  # ("unary", symbol)
            text = f"abs({items[0]})" if form[1] == "abs" else f"({form[1]}{items[0]})"
        else:  # a binary operator
            text = f"({items[0]} {form} {items[1]})"
        if slot is None:
            return text
        var[slot] = f"t{k}_{slot}"
        return f"{var[slot]} = {text}"

    def _free(self, k: int, slots: Any, emit: Callable, depth: int) -> None:
        """Let go of an op's large temporaries once it no longer needs them (eager frees them as early)."""
        trace, var, freed = self.traces[k], self._vars[k], self._freed.setdefault(k, set())
        large = {var[s] for s in slots if trace.sizes.get(s, 0) >= LARGE and var.get(s, "").startswith("t")} - freed
        if large:
            emit(f"del {', '.join(sorted(large))}", depth)
            freed |= large

    def _emit_backward(self, step: tuple, lines: list, emit: Callable, name: Callable, expr: Callable) -> None:
        """The engine's walk (``autograd/engine.py``) written out for one backward pass: the same order, the same
        sums in the same order, the same casts; a leaf's ``.grad`` is set once the whole walk ran. Whether a
        gradient has arrived is known at capture for lowered ops (their calls are fixed), so only the gradients of
        ops called whole are tested for None."""
        _, root, grad_ref, retain_graph = step
        plan = self.backward_plans[root]
        start = len(lines)
        state: dict[str, str] = {}  # variable -> "set" (holds an array) or "maybe" (may be None); absent: None
        maybe: set[str] = set()  # variables that may be None somewhere: they start as None
        leaves: dict[tuple, str] = {}

        def add(target: str, x: str, conditional: bool, leaf: str | None = None) -> None:
            """Add gradient ``x`` into ``target`` (g{j}: an op's output; l{i}: a leaf's new .grad)."""
            before = state.get(target)
            first = x if leaf is None else f"({x} if {leaf}._grad is None else {leaf}._grad._data + {x})"
            if before is None:
                text = f"{target} = {first}"
            elif before == "set":
                text = f"{target} = {target} + {x}"
            else:
                text = f"{target} = {first} if {target} is None else {target} + {x}"
            emit(text, depth)
            state[target] = "maybe" if conditional and before != "set" else "set"
            if state[target] == "maybe":
                maybe.add(target)

        backend = self.ops[root][1].backend
        if grad_ref[0] == "const":  # backward() (a non-tensor upstream is refused): ones, as arguments.upstream
            emit(f"g{root} = {name('B', backend)}.xp.ones_like(v{root})")
        else:
            emit(f"g{root} = {name('B', backend)}.xp.asarray({expr(grad_ref)}, copy=True)")
        state[f"g{root}"] = "set"
        for k, ctx, targets in plan:
            here = state.get(f"g{k}")
            if here is None:  # no gradient reaches this op
                continue
            depth = 1
            if here == "maybe":
                emit(f"if g{k} is not None:")
                depth = 2
            lowered = self.traces[k] is not None
            if lowered:
                results = self._emit_lowered_backward(k, depth, emit, name)
                metas = self.traces[k].result_meta
            else:
                if ctx.backend.context is not None:
                    emit(f"with {name('X', ctx.backend.context)}:", depth)
                    depth += 1
                emit(f"r = {name(type(ctx).__name__ + '_backward_', ctx.backward)}(C{k}, g{k})", depth)
                emit("if r.__class__ is not tuple: r = (r,)", depth)
                emit(f"if len(r) != {len(targets)}: r = _one_per_input(C{k}, r)", depth)
                needed = [position for position, target in enumerate(targets) if target is not None]
                pairs = [(a, b) for i, a in enumerate(needed) for b in needed[i + 1:]]
                if pairs:  # one array returned for two inputs (a + b): the engine copies it (only needed ones)
                    same = " or ".join(f"(r[{a}] is r[{b}] and r[{a}] is not None)" for a, b in pairs)
                    emit(f"if {same}: r = _unaliased(C{k}.xp, r)", depth)
                results, metas = [f"r[{i}]" for i in range(len(targets))], [None] * len(targets)
            outer = depth
            for position, target in enumerate(targets):
                if target is None or position >= len(results) or results[position] is None:
                    continue
                depth, x, meta = outer, results[position], metas[position]
                if not lowered or meta != self._target_meta(target):
                    emit(f"x = {x}", depth)
                    x = "x"
                if not lowered:
                    emit("if x is not None:", depth)
                    depth += 1
                conditional = here == "maybe" or not lowered
                if target[0] == "op":
                    _, j, shape, dtype = target
                    if x == "x":  # (a lowered op's results are known to fit)
                        s, d = name("S", shape), name("D", dtype)
                        emit(f"if x.__class__ is not {name('A', self.classes[j])} or x.shape != {s} or x.dtype != "
                             f"{d}: x = _fit(C{k}, x, {s}, {d}, C{j}.backend.xp)", depth)
                    add(f"g{j}", x, conditional)
                else:
                    leaf = _tensor_expr(target)
                    if target not in leaves:
                        leaves[target] = f"l{len(leaves)}"
                    if x == "x":
                        emit(f"d = {leaf}._data", depth)
                        emit("if x.__class__ is not d.__class__ or x.shape != d.shape or x.dtype != d.dtype: "
                             f"x = _fit(C{k}, x, d.shape, d.dtype, {leaf}.backend.xp)", depth)
                    add(leaves[target], x, conditional, leaf)
            if lowered:  # its temporaries are not needed any more
                self._free(k, range(self.traces[k].slots), emit, outer)
            elif not retain_graph:
                emit(f"C{k}._saved = None", outer)
        for target, staged in leaves.items():
            leaf = _tensor_expr(target)
            if state.get(staged) == "set":
                emit(f"{leaf}._grad = _wrap({staged}, {leaf}.backend)")
            elif state.get(staged) == "maybe":
                emit(f"if {staged} is not None: {leaf}._grad = _wrap({staged}, {leaf}.backend)")
        lines[start:start] = [f"    {v} = None" for v in sorted(maybe)]

    def _target_meta(self, r: tuple) -> tuple:
        """(class, shape, dtype) of the array a gradient must fit: an op's output, or a leaf's array at capture (the
        replay's guards keep them)."""
        if r[0] == "op":
            return self.classes[r[1]], r[2], r[3]
        if r[0] == "arg":
            return self.arg_meta[r[1]]
        data = self.externals[r[1]]._data
        return data.__class__, data.shape, data.dtype

    def replay(self, args: tuple) -> Any:
        if self.sets_errstate:  # the program sets NumPy's error handling (np.errstate in the step): put it back
            outer = np.geterr()
            try:
                values = self._replay(args)
            finally:
                np.seterr(**outer)
        else:
            values = self._replay(args)
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
                how = (f"lowered: {self.lowered_calls[k]} array calls" if k in self.lowered_calls
                       else f"whole forward/backward: {self.not_lowered.get(k, '')}")
                out.append(f"%{k} = {cls.__name__}({', '.join(show(r) for r in refs)}{options})"
                           f"  -> {list(shape)} {np.dtype(dtype) if not hasattr(dtype, 'name') else dtype}  [{how}]")
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
    return lowering.same_value(a, b, _same_object)


def _same_object(a: Any, b: Any) -> bool | None:
    """Arrays and tensors are the same value when they are the same object (an array made anew at each call is not a
    constant); other values are compared by ``lowering.same_value``."""
    if hasattr(a, "shape") or hasattr(b, "shape") or isinstance(a, Tensor) or isinstance(b, Tensor):
        return a is b
    return None


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
_training = operator.attrgetter("training")
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

    def _signature(self, args: tuple, names: tuple) -> tuple:
        """The key of a call's program: ``args`` (keyword arguments last, named by ``names``)."""
        parts: list[Any] = [engine.grad_enabled, anomaly.enabled, names]
        first: dict[int, int] = {}  # the same tensor in two positions is part of the signature
        for position, a in enumerate(args):
            if isinstance(a, Tensor):
                data = a._data
                parts.append((data.shape, data.dtype, a.backend, a.requires_grad, first.setdefault(id(a), position)))
            else:
                try:
                    hash(a)
                except TypeError:
                    return UNHASHABLE  # a list, dict or array: its value cannot key a program (runs eagerly)
                parts.append((type(a), a))
        parts.append(tuple(map(_training, self._modules.values())))
        return tuple(parts)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if capture.recording is not None or anomaly.enabled:  # inside another capture, or anomaly mode: eager
            return self.fn(*args, **kwargs)
        names = ()
        if kwargs:
            args = (*args, *kwargs.values())
            names = tuple(kwargs)
            positional = len(args) - len(names)
            call = lambda *a: self.fn(*a[:positional], **dict(zip(names, a[positional:])))  # noqa: E731
        else:
            call = self.fn
        signature = self._signature(args, names)
        if signature is UNHASHABLE and signature not in self._programs:
            self._give_up(signature, "an argument is unhashable (a list, dict or array), so its value cannot be "
                          "part of the signature; pass tensors and numbers", stacklevel=3)
        entry = self._programs.get(signature)
        if isinstance(entry, _Program):
            if entry.valid():
                self.stats["replays"] += 1
                self._last = signature
                return entry.replay(args)
            del self._programs[signature]  # a parameter changed shape, dtype or requires_grad: capture again
            entry = None
        if isinstance(entry, str):
            self.stats["eager"] += 1
            return call(*args)
        return self._capture(signature, entry[1] if isinstance(entry, tuple) else None, call, args, names)

    def _capture(self, signature: tuple, first: Any, call: Callable, args: tuple, names: tuple) -> Any:
        recording = capture.Recording()
        capture.recording = recording
        try:
            result = call(*args)
        finally:
            capture.recording = None
            recording.close()
        self.stats["captures"] += 1
        program = _Program(recording, args, result)
        new_modules = [m for key, m in recording.modules.items() if key not in self._modules]
        for m in new_modules:
            self._modules[id(m)] = m
        if new_modules:  # the signature now holds these modules' flags too
            self._programs.pop(signature, None)
            signature = self._signature(args, names)
            first = None
        reason = program.reasons[0] if program.reasons else (first.same_as(program) if first is not None else None)
        if reason is not None:
            self._give_up(signature, reason)
        elif first is None:  # the next call with this signature captures again, to compare
            self._remember(signature, ("first", program))
        else:
            program.finalize(first)
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
