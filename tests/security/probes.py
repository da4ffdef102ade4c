"""The escape and abuse probes: model-written steps that try to reach the host or break the run.

Each probe is one step the (scripted) root model writes, between a step that sets
`marker = 41` and steps that `SUBMIT(answer=f"{len(context)}:{marker}")`. A probe is
*blocked* (the step fails with a clear error), *bounded* (a limit stops it: time,
memory, output size, prompt size) or *contained* (it runs, but only sees the sandbox).
In every case the host survives, the inputs are back for the next step, and no host
secret appears anywhere. `survives` says whether the probe's step leaves the model's
variables in place (False when the sandbox must restart).

In the code, PORT is a host TCP port that records any connection, and SECRET_PATH
is the host file holding the secret, beside the inputs folder.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Probe:
    name: str
    category: str
    code: str
    expect: str  # regex the probe step's observation must match
    kind: str | None = "exception"  # the step's error kind (None: the step ran without error)
    outcome: str = "blocked"  # blocked | bounded | contained
    survives: bool = True


def _p(name, category, code, expect, kind="exception", outcome="blocked", survives=True):
    return Probe(name, category, code, expect, kind, outcome, survives)


NOT_FOUND = r"FileNotFoundError: \[Errno 44\]"
NO_NET = r"not-permitted: networking not enabled for this sandbox"
NO_PROC = r"wasi does not support processes"
EXIT = r"RuntimeError: exit\(\) is disabled in this sandbox; call SUBMIT"
TIMEOUT = r"TimeoutError: the step ran longer than [\d.]+ s and was stopped\n\[sandbox restarted after a timeout"
MEMORY = r"MemoryError(.|\n)*the sandbox has a memory limit of 256 MiB"
RESTART = r"\[sandbox restarted after a crash: variables lost: marker\]"

PROBES: list[Probe] = [
    # ---- host files, path traversal through the input mount, symlinks ----
    _p("etc_passwd", "files", "print(open('/etc/passwd').read())", NOT_FOUND),
    _p("root_listing", "files", "import os\nprint(os.listdir('/'))", NOT_FOUND),
    _p("host_absolute_path", "files", "print(open('SECRET_PATH').read())", NOT_FOUND),
    _p("traversal_to_secret", "files", "print(open('/inputs/../host_secret.txt').read())", NOT_FOUND),
    _p("traversal_deep", "files", "print(open('/inputs/../../../../../etc/hostname').read())", NOT_FOUND),
    _p("traversal_from_stdlib", "files", "print(open('/python-stdlib/../../../etc/passwd').read())", NOT_FOUND),
    _p("chdir_out_of_mount", "files", "import os\nos.chdir('/inputs/..')\nprint(os.listdir('.'))", r"OSError: \[Errno 29\]"),
    _p("host_symlink_to_secret", "files", "print(open('/inputs/leak.txt').read())", NOT_FOUND),
    _p("host_symlink_to_dir", "files", "import os\nprint(os.listdir('/inputs/hostetc'))", NOT_FOUND),
    _p("listing_a_mount_with_symlinks", "files", "import os\nprint(os.listdir('/inputs'))", r"OSError: \[Errno 29\]"),
    _p("guest_symlink", "files", "import os\nos.symlink('/etc/passwd', '/data/p')\nprint(open('/data/p').read())",
       r"Error"),
    _p("write_the_inputs", "files", "open('/inputs/context.txt', 'w').write('x')", r"PermissionError"),
    _p("write_the_stdlib", "files", "open('/python-stdlib/os.py', 'a').write('x')", r"PermissionError"),
    # The 64 MiB scratch cap refuses the write; on a slow machine the probes' 1.5 s step limit may stop it
    # first (seen on a clean CI clone). Both bound it: the disk never fills, the host never sees it.
    _p("fill_the_scratch_disk", "files", "open('/data/big', 'wb').write(b'x' * (100 << 20))",
       r"OSError: \[Errno 29\] I/O error|TimeoutError: the step ran longer than", outcome="bounded"),
    # ---- environment variables and /proc ----
    _p("environ", "environment", "import os\nprint(sorted(os.environ))",
       r"^\['PYTHONHOME', 'PYTHONPATH', 'PYTHONUNBUFFERED'\]$", kind=None, outcome="contained"),
    _p("getenv_api_key", "environment", "import os\nprint(os.getenv('OPENAI_API_KEY'))", r"^None$", kind=None,
       outcome="contained"),
    _p("proc_self_environ", "environment", "print(open('/proc/self/environ').read())", NOT_FOUND),
    _p("proc_listing", "environment", "import os\nprint(os.listdir('/proc'))", NOT_FOUND),
    _p("dev_mem", "environment", "print(open('/dev/mem', 'rb').read(16))", NOT_FOUND),
    _p("scan_guest_memory", "environment",
       "import gc\nprint(sum('sk-' in o for o in gc.get_objects() if isinstance(o, str)))", r"^0$", kind=None,
       outcome="contained"),
    # ---- network ----
    _p("socket_to_loopback", "network", "import socket\nsocket.create_connection(('127.0.0.1', PORT), timeout=1)",
       NO_NET),
    _p("socket_to_localhost", "network", "import socket\ns = socket.socket()\ns.connect(('localhost', PORT))", NO_NET),
    _p("urllib_to_loopback", "network", "import urllib.request\nurllib.request.urlopen('http://127.0.0.1:PORT/')",
       NO_NET),
    _p("http_client", "network",
       "import http.client\nhttp.client.HTTPConnection('127.0.0.1', PORT, timeout=1).request('GET', '/')", NO_NET),
    _p("raw_eryx_tcp", "network", "import _eryx\nprint(_eryx._eryx_tcp_connect('127.0.0.1', PORT, 1000))",
       NO_NET, kind=None),
    # ---- processes, native code, threads ----
    _p("subprocess", "processes", "import subprocess\nsubprocess.run(['id'])", NO_PROC),
    _p("os_system", "processes", "import os\nos.system('id')", r"AttributeError: module 'os' has no attribute 'system'"),
    _p("os_popen", "processes", "import os\nos.popen('id').read()", NO_PROC),
    _p("os_execv", "processes", "import os\nos.execv('/bin/sh', ['sh'])", r"AttributeError: .*'execv'"),
    _p("os_fork", "processes", "import os\nos.fork()", r"AttributeError: module 'os' has no attribute 'fork'"),
    _p("os_kill", "processes", "import os\nos.kill(1, 9)", r"AttributeError: module 'os' has no attribute 'kill'"),
    _p("ctypes", "processes", "import ctypes", r"ModuleNotFoundError: No module named '_ctypes'"),
    _p("thread", "processes", "import threading\nthreading.Thread(target=print).start()",
       r"RuntimeError: can't start new thread"),
    _p("raw_thread", "processes", "import _thread\n_thread.start_new_thread(print, ('x',))",
       r"RuntimeError: can't start new thread"),
    _p("multiprocessing", "processes", "import multiprocessing\nmultiprocessing.Process(target=print).start()",
       r"AttributeError"),
    # ---- the sandbox's internals and the host callbacks ----
    _p("raise_guest_limits", "internals",
       "import _rlm_host\n_rlm_host._limits['calls'] = 10**9\nfor i in range(3):\n    print(llm_query(f'q{i}'))",
       r"sub-LLM call budget exhausted: 2 of 2 calls used"),
    _p("invoke_callback_directly", "internals",
       "import json\nfor i in range(3):\n    print(await invoke('__rlm_fn_llm_query', payload=json.dumps([[f'q{i}'], {}])))",
       r"budget exhausted", kind=None, outcome="contained"),
    _p("invoke_with_garbage", "internals", "print(await invoke('__rlm_fn_llm_query', payload='{not json'))",
       r"^\{'__rlm_error__': 'JSONDecodeError: ", kind=None, outcome="contained"),
    _p("invoke_with_deep_json", "internals", "print(await invoke('__rlm_fn_llm_query', payload='[' * 100000))",
       r"^\{'__rlm_error__': '(RecursionError|JSONDecodeError)", kind=None, outcome="contained"),
    _p("invoke_unknown_callback", "internals", "await invoke('os.system', payload='[]')", r"not found"),
    _p("eryx_sync_invoke", "internals", "import _eryx\n_eryx._eryx_invoke('__rlm_fn_llm_query', '[[\"x\"], {}]')",
       r"Error"),
    _p("list_callbacks", "internals", "print([c['name'] for c in list_callbacks()])",
       r"__rlm_fn_llm_query", kind=None, outcome="contained"),
    _p("overwrite_functions", "internals", "llm_query = None\nSUBMIT = print\nFINAL = 1\ndel FINAL_VAR",
       r"`llm_query` was overwritten by your code and has been restored(.|\n)*`FINAL_VAR`", kind=None),
    _p("hijack_import", "internals", "import builtins\nbuiltins.__import__ = None",
       r"`__import__` was overwritten by your code and has been restored", kind=None),
    _p("sabotage_json", "internals", "import json\njson.dumps = json.loads = None",
       r"`json.dumps` was overwritten by your code and has been restored", kind=None),
    _p("forge_the_step_report", "internals",
       "import _rlm_host\n_rlm_host._finish = lambda *a: _rlm_host.G.__setitem__('__rlm_result__', "
       "{'variables': 5, 'restored': 'x', 'async': None, 'error': 7})",
       RESTART, kind="crash", survives=False),
    _p("replace_the_step_runner", "internals", "import _rlm_host\n_rlm_host.run_sync = _rlm_host.run_async = None",
       r"^\(no output\)$", kind=None, outcome="contained", survives=False),
    # ---- leaving the interpreter ----
    _p("exit", "exit", "exit()", EXIT),
    _p("quit", "exit", "quit()", EXIT),
    _p("sys_exit", "exit", "import sys\nsys.exit(3)", EXIT),
    _p("os_exit", "exit", "import os\nos._exit(1)", EXIT),
    _p("os_abort", "exit", "import os\nos.abort()", EXIT),
    _p("raise_system_exit", "exit", "raise SystemExit(2)", r"SystemExit: 2"),
    _p("raise_keyboard_interrupt", "exit", "raise KeyboardInterrupt", r"KeyboardInterrupt"),
    _p("breakpoint", "exit", "breakpoint()", r"breakpoint\(\) is not available"),
    _p("posix_exit", "exit", "import posix\nposix._exit(0)", RESTART, kind="crash", outcome="bounded",
       survives=False),
    _p("segfault", "exit", "import faulthandler\nfaulthandler._sigsegv()", RESTART, kind="crash", outcome="bounded",
       survives=False),
    # ---- CPU, regexes, memory, recursion ----
    _p("cpu_loop", "resources", "while True:\n    pass", TIMEOUT, kind="timeout", outcome="bounded", survives=False),
    _p("catastrophic_regex", "resources", "import re\nre.match(r'(a+)+$', 'a' * 40 + 'b')", TIMEOUT, kind="timeout",
       outcome="bounded", survives=False),
    _p("sleep", "resources", "import time\ntime.sleep(100)", TIMEOUT, kind="timeout", outcome="bounded",
       survives=False),
    _p("async_sleep", "resources", "import asyncio\nawait asyncio.sleep(100)", TIMEOUT, kind="timeout",
       outcome="bounded", survives=False),
    _p("memory_bomb", "resources", "x = 'a' * 10**9", MEMORY, kind="memory", outcome="bounded"),
    _p("growing_list", "resources", "chunks = []\nwhile True:\n    chunks.append(' ' * 10**6)", MEMORY,
       kind="memory", outcome="bounded"),
    _p("huge_bytearray", "resources", "b = bytearray(3 << 30)", r"OverflowError", outcome="bounded"),
    _p("recursion_bomb", "resources", "def f(n):\n    return f(n + 1)\nf(0)", r"RecursionError", outcome="bounded"),
    _p("many_globals", "resources", "for i in range(50_000):\n    globals()[f'v{i}'] = i\nprint('made')",
       r"^made$", kind=None, outcome="bounded"),
    # ---- output, odd values, odd code ----
    _p("print_50_mb", "output", "print('x' * 50_000_000)", r"\[49,990,001 characters cut\]", kind=None,
       outcome="bounded"),
    _p("stderr_50_mb", "output", "import sys\nsys.stderr.write('e' * 50_000_000)", r"characters cut", kind=None,
       outcome="bounded"),
    _p("many_lines", "output", "for i in range(20_000):\n    print(i)", r"characters cut",
       kind=None, outcome="bounded"),
    _p("nul_in_code", "output", "x = 1\0", r"the code contains NUL", kind="syntax"),
    _p("nul_in_output", "output", "print('a\\x00b')", "^a\x00b$", kind=None, outcome="contained"),
    _p("lone_surrogate_output", "output", "print('\\ud800')", r"UnicodeEncodeError"),
    _p("deeply_nested_code", "output", "x = " + "[" * 150 + "]" * 150,
       r"brackets are nested more than 100 deep", kind="syntax"),
    _p("endless_expression", "output", "x = 'a'" + " + 'a'" * 3000,
       r"an expression is nested more than 1,000 levels deep", kind="syntax"),
    _p("nested_data_in_a_call", "output", "x = []\nfor _ in range(100_000):\n    x = [x]\nllm_query(x)",
       r"RecursionError", outcome="bounded"),
]

# Probes whose step ends the run with a submission (answer) or a clear refusal of it.
# `answer` is the expected answer, or None when the submission must be refused and the
# run recover (the next step submits the usual "<len>:<marker>").
SUBMISSIONS: list[tuple[str, str, object, str | None]] = [
    ("submit_20_mb", "SUBMIT(answer='y' * 20_000_000)", "y" * 20_000_000, None),
    ("submit_huge_int", "SUBMIT(answer=10**5000)", None, r"SUBMIT: the value could not be sent back \(ValueError"),
    ("submit_deep_nesting", "x = []\nfor _ in range(100_000):\n    x = [x]\nSUBMIT(answer=x)", None,
     r"RecursionError"),
    ("submit_set", "SUBMIT(answer={3, 1, 2})", "[1, 2, 3]", None),
    ("submit_object", "class A:\n    pass\nSUBMIT(answer=A())", r"<__main__.A object at 0x", None),
    ("submit_lambda", "SUBMIT(answer=lambda: 1)", r"<function <lambda> at 0x", None),
    ("submit_raising_repr", "class A:\n    def __repr__(self):\n        raise ValueError('no')\nSUBMIT(answer=A())",
     None, r"ValueError: no"),
    ("submit_nul", "SUBMIT(answer='a\\x00b')", "a\x00b", None),
    ("submit_nan", "SUBMIT(answer=float('nan'))", "nan", None),
]

# Recursion through C code. Before the recursion cap these aborted the host process, so
# they run in a subprocess: a regression kills that process, not the test run.
STACK_PROBES: list[Probe] = [
    _p("raise_the_recursion_limit", "stack", "import sys\nsys.setrecursionlimit(10**7)\ndef f(n):\n    return f(n + 1)\nf(0)",
       r"capped at 100(.|\n)*RecursionError", outcome="bounded"),
    _p("recursive_repr", "stack", "class A:\n    def __repr__(self):\n        return 'A(' + repr(self) + ')'\nrepr(A())",
       r"RecursionError", outcome="bounded"),
    _p("recursive_getattr", "stack", "class A:\n    def __getattr__(self, k):\n        return getattr(self, k + 'x')\nA().y",
       r"RecursionError", outcome="bounded"),
    _p("recursive_sort_key", "stack", "def f(n):\n    return sorted([1], key=lambda _: f(n + 1))[0]\nf(0)",
       r"RecursionError", outcome="bounded"),
    _p("recursive_sqlite_function", "stack",
       "import sqlite3\ncon = sqlite3.connect(':memory:')\ncon.create_function('f', 1, lambda x: con.execute('select f(1)').fetchone()[0])\n"
       "con.execute('select f(1)').fetchone()", r"RecursionError|OperationalError|Error", outcome="bounded"),
]

# Deep nesting in data, walked by C code (repr, json, ==, eval): NOT blocked on pyeryx 0.11.
# The guest's C stack overflows the wasm runtime's native stack and the host process aborts
# ("execution on async fiber has overflowed its stack"). Kept as strict xfails: they pass
# (and the xfail fails) the day the runtime turns the overflow into a trap.
CRASHERS: list[Probe] = [
    _p("repr_of_deep_list", "stack", "x = []\nfor _ in range(5000):\n    x = [x]\nprint(len(repr(x)))",
       r"RecursionError", outcome="bounded"),
    _p("json_loads_of_deep_text", "stack", "import json\njson.loads('[' * 5000 + ']' * 5000)",
       r"RecursionError", outcome="bounded"),
    _p("eval_of_deep_brackets", "stack", "eval('[' * 100000)", r"Error", outcome="bounded"),
]


def all_names() -> list[str]:
    return [p.name for p in PROBES] + [s[0] for s in SUBMISSIONS] + [p.name for p in STACK_PROBES + CRASHERS]
