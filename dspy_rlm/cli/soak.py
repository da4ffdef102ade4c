"""`dspy-rlm soak`: many RLM calls in a row and on threads, checking that nothing leaks.

Each call answers a freshly generated needle-in-a-haystack task (`dspy_rlm.programs.families`,
family `niah`) with the simulated model (`dspy_rlm.lms.simulated.lm`, sub-model mistakes off)
as root and sub-model, alternating its batched (`llm_query_batched`) and regex
strategies, and is scored by the family's metric. **The model is simulated**; what is
measured is the library: correctness end to end, leaks, and memory.

Two phases: `calls` sequential calls, then `threads` threads of `per_thread` calls on
one shared `RLM`, after uncounted warm-up calls (one alone, then one per thread). Before
and after each phase (after a grace period) it counts threads (naming the OS threads),
open file descriptors, live `Sandbox` objects and `dspy-rlm-inputs-*` folders (in a
private temporary folder, so other processes cannot disturb the count), and it fits a
least-squares line to RSS against completed calls, after a warm-up.

DSPy's own call history and trace (`dspy.settings.max_history_size` and
`max_trace_size`, 10,000 entries each) are turned off during the calls unless
`keep_history`, so the slope measures this library rather than DSPy's bounded state:
with them on, every predictor call (each RLM iteration and each sub-query) keeps its
inputs until 10,000 entries are reached.
"""

from __future__ import annotations

import contextlib
import gc
import json
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import dspy
import psutil

from dspy_rlm.sandbox.isolated import stop_idle_workers

FAMILY = "niah"
STRATEGIES = ("batched", "regex")
# RSS may grow at most this much per 100 calls after the warm-up. One sandbox session
# holds about 13.6 MiB of RSS (measured), so a leak of even one session per 100 calls
# fails the check, while the allocator's settling (arenas and caches reaching their
# working size) stays below it. See the README's Hardening section.
RSS_BOUND_MIB_PER_100 = 5.0
WARMUP_CALLS = 20
# Native runtimes park idle helper threads before ending them (tokio's blocking pool: 10 s).
GRACE_SECONDS = 15.0
COUNTED = ("threads", "os_threads", "fds", "sandboxes", "input_folders", "child_processes")
WARMUP_SEED = 1_000_000  # task seeds of the uncounted warm-up calls, apart from the counted ones


@dataclass
class Census:
    """What the process holds at one moment."""

    threads: int
    os_threads: int
    fds: int
    sandboxes: int
    input_folders: int
    child_processes: int  # sandbox worker processes (isolate_process), the spare included
    rss_mib: float
    thread_names: dict[str, int] = field(default_factory=dict)  # OS thread names (Linux), to name a leak


@dataclass
class Phase:
    name: str
    calls: int
    threads: int
    failures: int = 0
    wrong: int = 0
    seconds: float = 0.0
    before: Census | None = None
    after: Census | None = None
    rss: list[tuple[int, float]] = field(default_factory=list)  # (calls completed, RSS MiB)
    slope_mib_per_100: float | None = None
    errors: list[str] = field(default_factory=list)

    @property
    def leaks(self) -> dict[str, int]:
        """Growth of each count over the phase (0 everywhere means nothing leaked)."""
        assert self.before is not None and self.after is not None
        return {key: getattr(self.after, key) - getattr(self.before, key) for key in COUNTED}


def census(folder: Path) -> Census:
    from dspy_rlm.sandbox import IsolatedSandbox, Sandbox

    process = psutil.Process()
    return Census(
        # eryx runs callbacks on its runtime's worker threads, which Python lists as
        # _DummyThread forever once they have called into Python; the OS count is the real one.
        threads=sum(1 for t in threading.enumerate() if not isinstance(t, threading._DummyThread)),
        os_threads=process.num_threads(),
        fds=process.num_fds(),
        sandboxes=sum(1 for o in gc.get_objects() if isinstance(o, (Sandbox, IsolatedSandbox))),
        input_folders=len(list(folder.glob("dspy-rlm-inputs-*"))),
        child_processes=len(process.children()),
        rss_mib=round(process.memory_info().rss / 2**20, 1),
        thread_names=_thread_names(),
    )


def _thread_names() -> dict[str, int]:
    names: dict[str, int] = {}
    for task in Path("/proc/self/task").glob("*/comm"):
        with contextlib.suppress(OSError):  # a thread may end while we look
            name = task.read_text().strip()
            names[name] = names.get(name, 0) + 1
    return dict(sorted(names.items()))


def settled_census(folder: Path, baseline: Census, grace: float = GRACE_SECONDS) -> Census:
    """A census once the counts are back to the baseline, or after `grace` seconds."""
    deadline = time.monotonic() + grace
    while True:
        gc.collect()
        now = census(folder)
        settled = all(getattr(now, key) <= getattr(baseline, key) for key in COUNTED)
        if settled or time.monotonic() >= deadline:
            return now
        time.sleep(0.2)


def slope_per_100(points: list[tuple[int, float]], skip: int = WARMUP_CALLS) -> float | None:
    """Least-squares slope of RSS (MiB) per 100 calls, ignoring the first `skip` calls."""
    kept = [(x, y) for x, y in points if x > skip] or points
    if len(kept) < 3:
        return None
    n = len(kept)
    mean_x = sum(x for x, _ in kept) / n
    mean_y = sum(y for _, y in kept) / n
    var = sum((x - mean_x) ** 2 for x, _ in kept)
    if var == 0:
        return None
    cov = sum((x - mean_x) * (y - mean_y) for x, y in kept)
    return round(100 * cov / var, 3)


class Caller:
    """One RLM shared by every call (root and sub-model: the configured LM); a fresh
    simulated LM per call, because a simulated LM keeps every request it answers."""

    def __init__(self, size: int, keep_history: bool, isolate_process: bool = False):
        import dspy_rlm.programs.families  # noqa: F401  (registers the worlds)
        from dspy_rlm.core.rlm import RLM
        from dspy_rlm.programs.families import get_family

        self.family = get_family(FAMILY)
        self.size = size
        self.keep_history = keep_history
        self.rlm = RLM(self.family.signature, max_iters=8, step_timeout=60, isolate_process=isolate_process)

    def __call__(self, index: int) -> bool:
        """Run call `index` (its task seed); True if the answer is correct."""
        from dspy_rlm.lms.simulated.lm import SimulatedLM

        task = self.family.make_task(self.size, 10_000 + index)
        lm = SimulatedLM(self.family.world(), seed=index, error_rate=0.0,
                         strategy=STRATEGIES[index % len(STRATEGIES)])
        quiet = {} if self.keep_history else {"disable_history": True, "trace": None}
        with dspy.context(lm=lm, **quiet):
            prediction = self.rlm(context=task.context, query=task.query)
        return self.family.metric(task.example(), prediction) == 1.0


def run_phase(phase: Phase, caller: Caller, folder: Path, start: int, advance: Callable[[], None]) -> Phase:
    lock = threading.Lock()
    process = psutil.Process()
    done = 0

    def one(index: int) -> None:
        nonlocal done
        try:
            correct = caller(index)
            error = None
        except Exception as exc:  # a failure is counted, never allowed to end the soak
            correct, error = False, f"{type(exc).__name__}: {exc}"[:300]
        rss = process.memory_info().rss / 2**20
        with lock:
            done += 1
            phase.rss.append((done, round(rss, 2)))
            if error is not None:
                phase.failures += 1
                phase.errors.append(error)
            elif not correct:
                phase.wrong += 1
        advance()

    gc.collect()
    phase.before = census(folder)
    started = time.perf_counter()
    indices = range(start, start + phase.calls)
    if phase.threads == 1:
        for index in indices:
            one(index)
    else:
        with ThreadPoolExecutor(phase.threads, thread_name_prefix="soak") as pool:
            list(pool.map(one, indices))
    phase.seconds = round(time.perf_counter() - started, 2)
    phase.after = settled_census(folder, phase.before)
    phase.slope_mib_per_100 = slope_per_100(phase.rss)
    return phase


def run_soak(calls: int = 500, threads: int = 8, per_thread: int = 100, *, size: int = 2**13,
             keep_history: bool = False, isolate_process: bool = False, out: str | Path | None = "bench_results",
             progress: bool = True) -> dict:
    """Run both phases; print a table; save `soak.json` in `out` (None: don't save). Returns the figures."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console()
    previous_tempdir = tempfile.tempdir
    folder = Path(tempfile.mkdtemp(prefix="dspy-rlm-soak-"))
    tempfile.tempdir = str(folder)  # every Sandbox makes its inputs folder here
    try:
        caller = Caller(size, keep_history, isolate_process)
        # Warm-up, not counted: loads the factory and imports, and brings the runtimes' thread
        # pools to their working size for this concurrency, so the baseline is not taken cold.
        caller(0)
        with ThreadPoolExecutor(threads, thread_name_prefix="soak-warmup") as pool:
            list(pool.map(caller, range(WARMUP_SEED, WARMUP_SEED + threads)))
        phases = [Phase("sequential", calls, 1), Phase(f"{threads} threads", threads * per_thread, threads)]
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=console, disable=not progress) as bar:
            start = 1
            for phase in phases:
                task = bar.add_task(f"soak: {phase.name}", total=phase.calls)
                run_phase(phase, caller, folder, start, lambda task=task: bar.advance(task))
                start += phase.calls
    finally:
        tempfile.tempdir = previous_tempdir
        stop_idle_workers()  # the spare workers' folders live in this one too
        leftovers = list(folder.glob("dspy-rlm-inputs-*"))
        if not leftovers:
            folder.rmdir()
    figures = _figures(phases, size, keep_history, isolate_process)
    _print(console, figures)
    if out is not None:
        path = Path(out)
        path.mkdir(parents=True, exist_ok=True)
        (path / "soak.json").write_text(json.dumps(figures, indent=2))
        console.print(f"saved {path / 'soak.json'}")
    return figures


def _figures(phases: list[Phase], size: int, keep_history: bool, isolate_process: bool) -> dict[str, Any]:
    return {
        "model": "simulated (dspy_rlm.lms.simulated.lm.SimulatedLM, not a real language model)",
        "task": f"{FAMILY}, {size:,}-character contexts, strategies {', '.join(STRATEGIES)}",
        "dspy_history": keep_history,
        "isolate_process": isolate_process,  # RSS is then this process's alone, not the workers'
        "rss_bound_mib_per_100_calls": RSS_BOUND_MIB_PER_100,
        "warmup_calls": WARMUP_CALLS,
        "phases": [{**{k: v for k, v in asdict(p).items() if k not in ("rss", "errors")},
                    "calls_per_second": round(p.calls / p.seconds, 2) if p.seconds else None,
                    "leaks": p.leaks, "errors": p.errors[:10], "rss_samples": p.rss} for p in phases],
        "passed": all(p.failures == 0 and p.wrong == 0 and not any(v > 0 for v in p.leaks.values())
                      and (p.slope_mib_per_100 is None or p.slope_mib_per_100 < RSS_BOUND_MIB_PER_100)
                      for p in phases),
    }


def _print(console: Any, figures: dict[str, Any]) -> None:
    from rich.table import Table

    phases = figures["phases"]
    table = Table(title="dspy-rlm soak (simulated model)")
    table.add_column("")
    for p in phases:
        table.add_column(p["name"], justify="right")

    def row(label: str, cell: Callable[[dict], Any]) -> None:
        table.add_row(label, *(str(cell(p)) for p in phases))

    def change(key: str) -> Callable[[dict], str]:
        return lambda p: f"{p['before'][key]} → {p['after'][key]}"

    row("calls", lambda p: p["calls"])
    row("failures (exceptions)", lambda p: p["failures"])
    row("wrong answers", lambda p: p["wrong"])
    row("calls per second", lambda p: p["calls_per_second"])
    row("RSS MiB, start → end", change("rss_mib"))
    row(f"RSS slope, MiB per 100 calls (after {figures['warmup_calls']})", lambda p: p["slope_mib_per_100"])
    row("Python threads", change("threads"))
    row("OS threads", change("os_threads"))
    row("open file descriptors", change("fds"))
    row("live Sandbox objects", change("sandboxes"))
    row("dspy-rlm-inputs-* folders", change("input_folders"))
    row("child processes", change("child_processes"))
    console.print(table)
    verdict = "[green]passed[/green]" if figures["passed"] else "[red]FAILED[/red]"
    console.print(f"{verdict}: no failures, no wrong answers, no leaks, RSS slope below "
                  f"{figures['rss_bound_mib_per_100_calls']} MiB per 100 calls (least squares). {figures['task']}; "
                  f"model: {figures['model']}; DSPy history and trace {'on' if figures['dspy_history'] else 'off'}.")
