"""The guest runtime: runs inside the sandbox as module `_rlm_host`, never on the host.

`guest.boot_code` sends this file's source (or its bytecode) to a fresh guest,
which binds `G` (the user's globals) before running it. See `guest.py`.
"""

import ast, builtins, inspect, json, linecache, math, os, sys, traceback

G = globals()["G"]  # the user's globals, bound by the boot before this runs (so a host import fails)

_FLAGS = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
RECURSION_LIMIT = 100       # see _capped_setrecursionlimit
_real_setrecursionlimit = sys.setrecursionlimit
_dumps, _loads = json.dumps, json.loads  # bound now: model code may patch the json module
_MISSING = object()
_submission = None          # (payload,) once _rlm_submit ran in this step
_protected = {}             # user-global name -> object restored after each step
_guards = []                # (object, attribute, value, label) restored after each step
_presetup = frozenset()     # globals before setup_code ran
_baseline = frozenset()     # globals after setup_code: not the model's variables
_before = frozenset()       # globals before the setup step now running
_fn_names = ()
_limits = {}
_current = ""               # filename of the code being run
_changed = frozenset()      # line numbers the await rewrite changed in this step


class Submitted(BaseException):
    """Ends the step after _rlm_submit. A BaseException so that `except Exception`
    in model code does not swallow it."""


class CallbackLimitError(RuntimeError):
    """Too many host function calls in one step."""


def jsonable(x, _active=None):
    """A JSON-safe copy of x: same rules as the host's to_json_safe."""
    t = type(x)
    if x is None or t is str or t is bool or t is int:
        return x
    if t is float:
        return x if math.isfinite(x) else str(x)
    if isinstance(x, (dict, list, tuple, set, frozenset)) or type(x).__name__ == "deque":
        if _active is None:
            _active = set()
        key = id(x)
        if key in _active:
            return "..."
        _active.add(key)
        try:
            if isinstance(x, dict):
                return {(k if type(k) is str else str(jsonable(k, _active))): jsonable(v, _active)
                        for k, v in x.items()}
            if isinstance(x, (set, frozenset)):
                try:
                    x = sorted(x)
                except TypeError:
                    pass
            return [jsonable(v, _active) for v in x]
        finally:
            _active.discard(key)
    return _jsonable_object(x, _active)


def _jsonable_object(x, _active):
    import enum, dataclasses
    if isinstance(x, enum.Enum):
        return jsonable(x.value, _active)
    if isinstance(x, str):
        return str.__str__(x)
    if isinstance(x, bool):
        return bool(x)
    if isinstance(x, int):
        return int(x)
    if isinstance(x, float):
        return jsonable(float(x))
    if isinstance(x, (bytes, bytearray, memoryview)):
        return bytes(x).decode("utf-8", "replace")
    if callable(getattr(x, "isoformat", None)) and type(x).__module__ == "datetime":
        return x.isoformat()
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return jsonable(dataclasses.asdict(x), _active)
    return repr(x)


def submit(payload=None):
    """Record the final payload and end the step."""
    global _submission
    _submission = (jsonable(payload),)
    raise Submitted()


def _no_exit(*args, **kwargs):
    raise RuntimeError("exit() is disabled in this sandbox; call SUBMIT(...) to finish")


def _no_breakpoint(*args, **kwargs):
    raise RuntimeError("breakpoint() is not available in this sandbox")


def _capped_setrecursionlimit(limit):
    # Recursion that passes through C code (a __repr__ calling repr(self), a sort
    # key calling itself, sqlite functions...) overflows the wasm runtime's native
    # stack at about 150-300 frames, and that aborts the whole host process.
    # Python's own RecursionError must come first, so the limit is capped.
    _real_setrecursionlimit(min(int(limit), RECURSION_LIMIT))
    if limit > RECURSION_LIMIT:
        sys.stderr.write(f"[sys.setrecursionlimit is capped at {RECURSION_LIMIT} in this sandbox; "
                         "write deep recursion as a loop with an explicit stack]\n")


def _install_guards():
    # Exiting the interpreter traps the wasm instance, which then needs a reset
    # that loses every variable; sys.__stdout__ writes would bypass the capture;
    # a replaced __import__ or json.dumps would break the step's report.
    _guards[:] = [
        (builtins, "exit", _no_exit, "exit"), (builtins, "quit", _no_exit, "quit"),
        (sys, "exit", _no_exit, "sys.exit"), (os, "_exit", _no_exit, "os._exit"),
        (os, "abort", _no_exit, "os.abort"), (builtins, "breakpoint", _no_breakpoint, "breakpoint"),
        (sys, "breakpointhook", _no_breakpoint, "sys.breakpointhook"),
        (sys, "__stdout__", sys.stdout, "sys.__stdout__"), (sys, "__stderr__", sys.stderr, "sys.__stderr__"),
        (builtins, "__import__", builtins.__import__, "__import__"),
        (json, "dumps", json.dumps, "json.dumps"), (json, "loads", json.loads, "json.loads"),  # eryx uses them
        (sys, "setrecursionlimit", _capped_setrecursionlimit, "sys.setrecursionlimit"),
    ]
    for obj, attr, value, _ in _guards:
        setattr(obj, attr, value)
    _real_setrecursionlimit(RECURSION_LIMIT)


def _callback_error(name, message):
    if message.startswith("Callback limit exceeded"):
        return CallbackLimitError(
            f"{name}: too many host function calls in one step (limit {_limits['calls']}); "
            "batch the work or spread it over several steps")
    if message.startswith("timeout"):
        return RuntimeError(f"{name}: the call took longer than {_limits['callback_s']:g} s and was abandoned")
    return RuntimeError(f"{name}: {message}")


def _encode_default(x):
    return jsonable(x)


_MAX_DEPTH = 64  # nesting of host function arguments


def _check_depth(value, name):
    """Refuse arguments nested deeper than _MAX_DEPTH, without recursing: C code walking
    deeply nested data overflows the runtime's native stack, which aborts the host."""
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > _MAX_DEPTH:
            raise RecursionError(f"{name}: the arguments are nested more than {_MAX_DEPTH} levels deep")
        if type(item) in (list, tuple, set, frozenset):
            stack.extend((v, depth + 1) for v in item)
        elif type(item) is dict:
            stack.extend((v, depth + 1) for v in item.values())


def _encode_call(name, args, kwargs):
    # Arguments and reply travel as JSON text: eryx's own conversion would
    # sort dict keys and turn big ints into floats.
    _check_depth([args, kwargs], name)  # before json's C encoder walks them
    try:
        data = _dumps([args, kwargs], ensure_ascii=False, default=_encode_default)
    except (TypeError, ValueError):  # e.g. tuple dict keys, deep nesting
        data = _dumps(jsonable([args, kwargs]), ensure_ascii=False)
    try:
        data.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: it travels as a \\udXXX escape instead
        data = _dumps(_loads(data))
    return data


def _make_wrapper(name):
    invoke = G["invoke"]  # bound now: model code may rebind `invoke`
    callback = "__rlm_fn_" + name

    async def wrapper(*args, **kwargs):
        data = _encode_call(name, args, kwargs)
        try:
            reply = await invoke(callback, payload=data)
        except RuntimeError as exc:
            raise _callback_error(name, str(exc)) from None
        if type(reply) is dict:
            raise RuntimeError(f"{name}: {reply['__rlm_error__']}")
        return _loads(reply)

    wrapper.__name__ = wrapper.__qualname__ = name
    return wrapper


def _load(inputs):
    for name, filename, kind in inputs:
        with open("/inputs/" + filename, "rb") as f:
            data = f.read()
        G[name] = data.decode("utf-8", "surrogatepass") if kind == "text" else _loads(data)


def init(inputs, functions, limits, bridge=None):
    """Load the inputs, define the function wrappers and the guards; connect the
    synchronous bridge (guest_sync.py) when the host offers one."""
    global _fn_names, _presetup, _limits
    _limits = limits
    _connect_bridge(bridge)
    _load(inputs)
    _fn_names = tuple(functions)
    for name in functions:
        G[name] = _make_wrapper(name)
    G["_rlm_submit"] = submit
    _install_guards()
    _presetup = frozenset(G)


def set_inputs(inputs):
    """Load (new or changed) inputs into a running guest; they are inputs, not the
    model's variables."""
    global _presetup, _baseline
    _load(inputs)
    names = frozenset(name for name, _, _ in inputs)
    _presetup |= names
    _baseline |= names
    G["__rlm_result__"] = {"variables": _scan()[0]}


def _seal():
    # What setup code defined is protected like the function wrappers and is not the model's;
    # a later setup step (Sandbox.extend_setup) adds the names it defined, not the model's, and
    # protects only its functions, classes and modules (its own code may rebind its data).
    global _protected, _baseline
    new = [k for k in G if k not in _before]
    later = bool(_baseline)
    names = [*_fn_names, "_rlm_submit", *(k for k in new if not k.startswith("__")
                                          and not (later and not callable(G[k]) and type(G[k]) is not type(sys)))]
    _protected.update({k: G[k] for k in names if k in G})
    _baseline = (_baseline or _before) | frozenset(new) | {"__rlm_result__"}


def _restore():
    restored = []
    for name, value in _protected.items():
        if G.get(name, _MISSING) is not value:
            G[name] = value
            restored.append(name)
    for obj, attr, value, label in _guards:
        if getattr(obj, attr, _MISSING) is not value:
            setattr(obj, attr, value)
            restored.append(label)
    if sys.getrecursionlimit() > RECURSION_LIMIT:
        _real_setrecursionlimit(RECURSION_LIMIT)
        restored.append("the recursion limit")
    return restored


def _is_async(v):
    try:
        return inspect.iscoroutinefunction(v)
    except Exception:  # odd objects (raising __getattr__) must not break the report
        return False


def _scan():
    names, coros = [], []
    for k, v in list(G.items()):
        if k.startswith("__"):
            continue
        if _is_async(v):
            coros.append(k)
        elif isinstance(v, type) and k not in _baseline:
            coros.extend(f"{k}.{m}" for m, f in list(vars(v).items()) if _is_async(f))
        if k[0] != "_" and k not in _baseline:
            names.append(k)
    return names, coros


def _keep(frame):
    return frame.filename == _current or frame.filename.startswith("<step ")


def _trim(te, seen):
    # Keep only the model's frames; the rewrite may have shifted columns on the
    # lines it changed, so drop the carets there rather than point wrongly.
    if te is None or id(te) in seen:
        return
    seen.add(id(te))
    kept = [f for f in te.stack if _keep(f)]
    for f in kept:
        if f.filename == _current and f.lineno in _changed:
            f.colno = f.end_colno = None
    te.stack = traceback.StackSummary.from_list(kept)
    _trim(te.__cause__, seen)
    _trim(te.__context__, seen)
    for sub in getattr(te, "exceptions", None) or ():
        _trim(sub, seen)


def format_error(exc):
    try:
        te = traceback.TracebackException.from_exception(exc)
        _trim(te, set())
        return "".join(te.format())
    except Exception:  # e.g. MemoryError again: the last line is what matters
        return "".join(traceback.format_exception_only(exc))


def _kind(exc):
    if isinstance(exc, MemoryError):
        return "memory"
    if isinstance(exc, CallbackLimitError):
        return "callback_limit"
    return "exception"


def _compile(code, original, filename):
    global _submission, _current, _changed
    _new_step()
    _submission = None
    _current = filename
    shown = code if original is None else original
    _changed = frozenset() if original is None else frozenset(
        i for i, (a, b) in enumerate(zip(original.splitlines(), code.splitlines()), 1) if a != b)
    # Registered so tracebacks show the model's own source lines.
    linecache.cache[filename] = (len(shown), None, shown.splitlines(True), filename)
    return compile(code, filename, "exec", _FLAGS, dont_inherit=True)


def _finish(exc, syntax, seal):
    global _submission
    report = {}
    restored = _restore()  # first: the code below needs the real __import__ and friends
    if exc is not None and not isinstance(exc, Submitted):
        report["error"] = format_error(exc)
        report["kind"] = "syntax" if syntax else _kind(exc)
    if _submission is not None:
        # As JSON text so dict order and big ints survive eryx's conversion.
        try:
            report["submission"] = _dumps(_submission[0], ensure_ascii=False)
        except (ValueError, TypeError, RecursionError, MemoryError) as problem:
            # e.g. an int over 4300 digits, or nesting deeper than the recursion limit
            report["error"] = (f"SUBMIT: the value could not be sent back ({type(problem).__name__}: "
                               f"{str(problem)[:300]}); submit a smaller or simpler value, e.g. str(value)")
            report["kind"] = "exception"
        _submission = None
    if seal:
        _seal()
    report["restored"] = restored
    report["variables"], report["async"] = _scan()
    G["__rlm_result__"] = report


def run_sync(code, original, filename, seal=False):
    """Run code that has no await/async in it."""
    global _before
    _before = frozenset(G) if seal else _before
    try:
        co = _compile(code, original, filename)
    except (SyntaxError, ValueError) as exc:
        return _finish(exc, True, seal)
    try:
        if co.co_flags & inspect.CO_COROUTINE:  # the host checks for "await"/"async" first
            raise RuntimeError("internal error: asynchronous code sent to the synchronous runner")
        exec(co, G)
    except BaseException as exc:
        return _finish(exc, False, seal)
    _finish(None, False, seal)


async def run_async(code, original, filename, seal=False):
    """Run code that may await at the top level."""
    global _before
    _before = frozenset(G) if seal else _before
    try:
        co = _compile(code, original, filename)
    except (SyntaxError, ValueError) as exc:
        return _finish(exc, True, seal)
    try:
        result = eval(co, G)
        if co.co_flags & inspect.CO_COROUTINE:
            await result
    except BaseException as exc:
        return _finish(exc, False, seal)
    _finish(None, False, seal)
