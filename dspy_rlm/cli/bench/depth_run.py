"""Running issue 12's depth-2 bench: `dspy_rlm.RLM` beside `rlms` 0.1.3 and `recursive-llm` 0.5.0.

    dspy-rlm bench --suite depth [--quick]        # or: python -m dspy_rlm.cli.bench.depth_run

Each (setup, latency, repetition) runs in a fresh process of its framework's venv (ours: this
interpreter; each peer: a venv of its own, made on first use, since both install a package named
`rlm`), repetitions interleaved so that a change in machine load hits every setup alike. The
runner holds the scripted server (depth.py), counts the requests each run made, samples the
worker's RSS (its child processes included) and checks every answer.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from dspy_rlm.cli.bench import depth
from dspy_rlm.cli.bench.depth_worker import MARKER

LATENCIES = (0.0, 0.1)
PEERS_DIR = Path("/tmp/peers")  # one venv per peer: both install an import package named `rlm`
WORKER = Path(__file__).with_name("depth_worker.py")
NOTE = ("The model is a scripted OpenAI-compatible server on 127.0.0.1 (same script, same HTTP cost for every "
        "setup); the numbers are framework and sandbox costs plus the stated latency per request, not model time.")


@dataclass(frozen=True)
class Peer:
    framework: str  # the distribution's name, also its venv's folder name
    version: str
    default_concurrency: int  # its own default for max_concurrent_subcalls
    where: str  # where its model code runs
    max_concurrency: int | None = None  # above this it did not finish here; it runs at its default only


PEERS = (Peer("rlms", "0.1.3", 4, "local environment: exec in the host process"),
         # Here it did not finish within 120 s at max_concurrent_subcalls=5, 6, 7 or 16 (4 finishes in seconds).
         Peer("recursive-llm", "0.5.0", 4, "RestrictedPython in a spawned worker process", max_concurrency=4))


@dataclass(frozen=True)
class Setup:
    key: str
    framework: str  # "dspy-rlm", "rlms" or "recursive-llm"
    concurrency: int
    label: str


def setups(concurrency: int, peers: tuple[Peer, ...] = PEERS) -> list[Setup]:
    """Ours and each peer at `concurrency` children in flight, and all at the peers' default (4) too."""
    levels = sorted({concurrency, *(peer.default_concurrency for peer in peers)}, reverse=True)
    chosen = []
    for level in levels:
        chosen.append(Setup(f"dspy-rlm-{level}", "dspy-rlm", level,
                            f"dspy_rlm.RLM, max_concurrency=max_live_sandboxes={level} (eryx)"))
        for peer in peers:
            if peer.max_concurrency is not None and level > peer.max_concurrency:
                continue
            default = " (its default)" if level == peer.default_concurrency else ""
            chosen.append(Setup(f"{peer.framework}-{level}", peer.framework, level,
                                f"{peer.framework} {peer.version}, max_concurrent_subcalls={level}{default} "
                                f"({peer.where})"))
    return chosen


def ensure_venv(peer: Peer, venv: Path, say=print) -> tuple[Path | None, str | None]:
    """The python of a venv holding `peer` at its version, made (pip, from the package index) if missing.
    Returns (python, None), or (None, the reason it could not be made)."""
    python = venv / "bin" / "python"
    wanted = f"{peer.framework}=={peer.version}"
    check = [str(python), "-c", f"import importlib.metadata as m; print(m.version({peer.framework!r}))"]
    if python.exists():
        found = subprocess.run(check, capture_output=True, text=True, check=False).stdout.strip()
        if found == peer.version:
            return python, None
        say(f"{venv} holds {peer.framework} {found or 'nothing'}; installing {wanted} there")
    else:
        base = _python312()
        if base is None:
            return None, f"no Python >= 3.12 found to make the venv of {peer.framework} (put python3.12 on PATH)"
        say(f"Making a venv for {wanted} at {venv} (it installs a package named `rlm`, so it gets its own)")
        made = subprocess.run([base, "-m", "venv", str(venv)], capture_output=True, text=True, check=False)
        if made.returncode:
            return None, f"`{base} -m venv {venv}` failed: {made.stderr.strip()[-300:]}"
    pip = subprocess.run([str(python), "-m", "pip", "install", "-q", wanted], capture_output=True, text=True,
                         check=False)
    if pip.returncode:
        return None, (f"`pip install {wanted}` into {venv} failed (is the package index reachable?): "
                      f"{pip.stderr.strip()[-300:]}")
    return python, None


def _python312() -> str | None:
    for name in ("python3.12", "python3.13", "python3"):
        found = shutil.which(name)
        if found and _is_312_or_later(found):
            return found
    pyenv = Path.home() / ".pyenv" / "versions"
    for folder in sorted(pyenv.glob("3.1[2-9]*")) if pyenv.is_dir() else []:
        if (folder / "bin" / "python3").exists():
            return str(folder / "bin" / "python3")
    return sys.executable if sys.version_info >= (3, 12) else None


def _is_312_or_later(python: str) -> bool:
    probe = subprocess.run([python, "-c", "import sys; print(sys.version_info >= (3, 12))"],
                           capture_output=True, text=True, check=False)
    return probe.stdout.strip() == "True"


def plan(chosen: list[Setup], reps: int, latencies: tuple[float, ...] = LATENCIES) -> list[dict]:
    """Jobs grouped by latency, then repetition, then setup: the setups' runs interleave."""
    return [{"setup": s.key, "framework": s.framework, "concurrency": s.concurrency, "latency_s": latency, "rep": rep}
            for latency in latencies for rep in range(reps) for s in chosen]


def run_job(job: dict, python: str, server: depth.DepthServer, timeout_s: float = 600) -> dict:
    """One measurement in a fresh worker process; the server's counts and the sampled peak RSS added."""
    server.reset(job["latency_s"])
    payload = {**job, "api_base": server.base_url, "context": depth.root_context(), "query": depth.QUERY,
               "max_iters": 4, "max_llm_calls": 1000, "spawn_wall": time.time()}
    # Ours imports dspy_rlm as this process did (also from a source tree); rlms' venv gets nothing of ours.
    env = {**os.environ, "PYTHONPATH": _pythonpath()} if job["framework"] == "dspy-rlm" else dict(os.environ)
    process = subprocess.Popen([python, str(WORKER), json.dumps(payload)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=env)
    sampler = _TreeRSS(process.pid)
    try:
        stdout, stderr = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        return {"error": f"did not finish within {timeout_s:g} s", **server.counts()}
    finally:
        peak = sampler.stop()
    result = next((json.loads(line[len(MARKER):]) for line in reversed(stdout.splitlines()) if line.startswith(MARKER)),
                  None)
    if result is None:
        tail = " | ".join((stderr or stdout).strip().splitlines()[-3:])
        result = {"error": f"worker exited with code {process.returncode}: {tail[-500:]}"}
    result.update(server.counts(), peak_tree_mb=peak)
    if "answer" in result:
        result.update(check_answer(result["answer"]))
    return result


def check_answer(text: str) -> dict:
    """Whether the root's answer is the sum of all children's values, and where the children ran."""
    try:
        answer = depth.Answer.parse(text)
    except ValueError as problem:
        return {"answer_ok": False, "answer_problem": str(problem)}
    return {"answer_ok": answer.total == depth.expected_total() and answer.failed_children == 0,
            "child_platforms": list(answer.platforms), "failed_children": answer.failed_children}


class _TreeRSS:
    """Samples the RSS of a process and all its descendants every 20 ms; `stop()` returns the peak in MiB."""

    def __init__(self, pid: int) -> None:
        import psutil

        self._root = psutil.Process(pid)
        self._peak = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        import psutil

        while not self._done.is_set():
            try:
                total = sum(p.memory_info().rss for p in [self._root, *self._root.children(recursive=True)])
                self._peak = max(self._peak, total)
            except psutil.Error:  # the tree changed while it was read; the next sample counts
                pass
            self._done.wait(0.02)

    def stop(self) -> float:
        self._done.set()
        self._thread.join(timeout=2)
        return self._peak / 2**20


def summarize(jobs: list[dict], chosen: list[Setup]) -> list[dict]:
    """One row per (setup, latency): medians over the repetitions, and ratios against ours (at the same
    concurrency, and at ours' fastest)."""
    rows = []
    for latency in sorted({job["latency_s"] for job in jobs}):
        group = [_row([j["result"] for j in jobs if j["setup"] == s.key and j["latency_s"] == latency], s, latency)
                 for s in chosen]
        ours = {row["concurrency"]: row["call_s"] for row in group if row["framework"] == "dspy-rlm" and row["call_s"]}
        best = min(ours.values(), default=None)
        for row in group:
            same = ours.get(row["concurrency"])
            row["ratio_vs_ours"] = row["call_s"] / same if same and row["call_s"] else None
            row["ratio_vs_best"] = row["call_s"] / best if best and row["call_s"] else None
        rows += group
    return rows


def _row(runs: list[dict], setup: Setup, latency: float) -> dict:
    good = [r for r in runs if "error" not in r]
    correct = [r for r in good if r.get("answer_ok")]  # a run whose children failed did less work: not timed
    return {"setup": setup.key, "framework": setup.framework, "concurrency": setup.concurrency, "label": setup.label,
            "latency_s": latency, "runs": len(runs), "errors": [r["error"] for r in runs if "error" in r][:2],
            "call_s": _median([r["call_s"] for r in correct]),
            "call_s_all": [(r["call_s"], bool(r.get("answer_ok"))) for r in good],
            "requests": _median([r["requests"] for r in correct]),
            "requests_all": [r["requests"] for r in good],
            "peak_tree_mb": _median([r["peak_tree_mb"] for r in correct]),
            "answers_ok": sum(bool(r.get("answer_ok")) for r in good),
            "failed_children": [r.get("failed_children") for r in good],
            "child_platforms": sorted({p for r in good for p in r.get("child_platforms", []) if p != "none"}),
            "sandboxes_built": _median([r.get("sandboxes_built") for r in good])}


def _median(values: list[Any]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _pythonpath() -> str:
    root = str(Path(__file__).resolve().parents[3])
    current = os.environ.get("PYTHONPATH")
    return root if not current else f"{root}{os.pathsep}{current}"


def _cells(row: dict) -> list[str]:
    """A row's cells: setup, latency, call time (median and runs), both ratios, requests, peak, correct, where."""
    def ratio(value: float | None) -> str:
        return f"{value:.2f}×" if value and row["framework"] != "dspy-rlm" else "–"

    runs = ", ".join(f"{s:.2f}" + ("" if ok else " ✗") for s, ok in row["call_s_all"])
    return [row["setup"], f"{row['latency_s'] * 1000:.0f} ms",
            f"{row['call_s']:.2f} s ({runs})" if row["call_s"] is not None else f"no correct run ({runs})",
            ratio(row["ratio_vs_ours"]), ratio(row["ratio_vs_best"]),
            f"{row['requests']:.0f}" if row["requests"] is not None else "–",
            f"{row['peak_tree_mb']:.0f} MB" if row["peak_tree_mb"] else "–",
            f"{row['answers_ok']}/{row['runs']}", ", ".join(row["child_platforms"]) or "–"]


COLUMNS = ("setup", "latency / request", "call: median (each run)", "÷ dspy-rlm, same concurrency",
           "÷ dspy-rlm, its fastest", "LM requests (median)", "peak RSS, process tree", "answers correct",
           "children ran on")


def markdown(rows: list[dict], chosen: list[Setup], info: dict) -> str:
    """The results as a markdown table, with the workload, the setups, the load and the caveats."""
    table = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    table += ["| " + " | ".join(_cells(row)) + " |" for row in rows]
    failed = [f"{row['setup']} @ {row['latency_s'] * 1000:.0f} ms: {row['errors'] or row['failed_children']}"
              for row in rows if row["answers_ok"] < row["runs"]]
    return "\n".join([
        f"Workload: a root whose step 1 starts {depth.CHILDREN} children with `rlm_query_batched`, each a 2-step "
        f"RLM run over its own small context; step 2 adds their values up ({2 + 2 * depth.CHILDREN} LM requests "
        f"in all). {NOTE}", "",
        "Setups (`-N`: children in flight): " + "; ".join(f"`{s.key}` {s.label}" for s in chosen) + ".", "",
        *table, "",
        "Medians, requests and peaks are over the runs with a correct answer; ✗ marks a run whose answer was "
        "wrong (some children failed, so it did less work). "
        "÷ dspy-rlm: the setup's median call time over dspy-rlm's at the same latency (> 1: dspy-rlm is faster). "
        "'children ran on' is what each child's own code reported: `sys.platform` (`wasi` inside eryx; `linux` "
        "in rlms' local environment, which `exec`s model code in the host process), or `import-refused` where "
        "recursive-llm's RestrictedPython refused `import sys`. Load average (1 min) "
        f"{info['load_before']:.2f} before, {info['load_after']:.2f} after, {info['load_max']:.2f} at most; "
        f"{info['cpus']} CPUs. {info['reps']} repetition(s) each, interleaved, each in a fresh process.", "",
        *target_lines(rows),
        *([""] + ["Runs with a wrong answer (failed children per run) or an error: " + "; ".join(failed)]
          if failed else []),
    ])


def target_lines(rows: list[dict]) -> list[str]:
    """Issue 12's target, per latency: dspy-rlm at least 3x faster than rlms at the same concurrency, timed on
    the runs that answered correctly (a pair counts only if every dspy-rlm run was correct)."""
    lines = []
    for latency in sorted({row["latency_s"] for row in rows}):
        at = [row for row in rows if row["latency_s"] == latency]
        ours = {row["concurrency"]: row for row in at if row["framework"] == "dspy-rlm"}
        parts, met = [], []
        for row in (r for r in at if r["framework"] == "rlms" and r["ratio_vs_ours"]):
            mine = ours[row["concurrency"]]
            wrong = row["runs"] - row["answers_ok"]
            parts.append(f"×{row['concurrency']}: {row['ratio_vs_ours']:.2f}×"
                         + (f" (rlms wrong in {wrong} of {row['runs']} runs, not timed)" if wrong else ""))
            if mine["answers_ok"] == mine["runs"]:
                met.append(row["ratio_vs_ours"] >= 3)
        if parts:
            verdict = "no comparable run" if not met else ("**met**" if all(met) else "**not met**")
            lines.append(f"- Target (issue 12), {latency * 1000:.0f} ms: dspy-rlm ≥ 3× faster than rlms at the same "
                         f"concurrency: {'; '.join(parts)} — {verdict}")
    return lines


def print_table(rows: list[dict], console: Console) -> None:
    table = Table(title="Depth 2: dspy_rlm.RLM beside rlms and recursive-llm (scripted server)")
    for column in ("setup", "latency", "call", "÷ same", "÷ fastest", "requests", "peak RSS", "correct",
                   "children on"):
        table.add_column(column)
    for row in rows:
        cells = _cells(row)
        cells[2] = cells[2].split(" (")[0]
        table.add_row(*cells)
    console.print(table)


def run_depth_bench(*, reps: int = 3, concurrency: int = 16, out: str | Path = "bench_results",
                    peers_dir: Path = PEERS_DIR, console: Console | None = None) -> dict:
    """Run the depth-2 bench, print its table, save `depth.json` and `depth.md` under `out`/depth."""
    console = console or Console()
    if reps < 1 or concurrency < 1:
        raise ValueError(f"reps and concurrency must be at least 1, got reps={reps}, concurrency={concurrency}")
    started = time.perf_counter()
    pythons, unavailable = {"dspy-rlm": sys.executable}, {}
    for peer in PEERS:
        python, problem = ensure_venv(peer, Path(peers_dir) / peer.framework, lambda text: console.print(f"  {text}"))
        if python is None:
            unavailable[peer.framework] = problem
            console.print(f"[yellow]{peer.framework} is unavailable: {problem}. Measuring the others.[/]")
        else:
            pythons[peer.framework] = str(python)
    chosen = [s for s in setups(concurrency) if s.framework in pythons]
    jobs = plan(chosen, reps)
    info = {"load_before": os.getloadavg()[0], "cpus": os.cpu_count(), "reps": reps, "python": sys.version.split()[0]}
    console.print(f"[bold]{len(jobs)} measurements[/], each in a fresh process; "
                  f"load average {info['load_before']:.2f}.")
    with depth.serve_depth() as server:
        for number, job in enumerate(jobs, 1):
            job["load_before"] = os.getloadavg()[0]
            job["result"] = result = run_job(job, pythons[job["framework"]], server)
            verdict = "ok" if result.get("answer_ok") else f"WRONG: {result.get('answer')}"
            status = result.get("error") or f"{result['call_s']:.2f} s, {result['requests']} requests, answer {verdict}"
            console.print(f"  [{number}/{len(jobs)}] {job['setup']} @ {job['latency_s'] * 1000:.0f} ms "
                          f"#{job['rep'] + 1}: {status}")
    info["load_after"] = os.getloadavg()[0]
    info["load_max"] = max([info["load_after"], *(job["load_before"] for job in jobs)])
    rows = summarize(jobs, chosen)
    report = {"suite": "depth", "note": NOTE, "machine": info, "unavailable": unavailable,
              "setups": [s.__dict__ for s in chosen], "summary": rows, "results": jobs,
              "expected_total": depth.expected_total(), "seconds": time.perf_counter() - started}
    report["markdown"] = markdown(rows, chosen, info)
    folder = Path(out) / "depth"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "depth.json").write_text(json.dumps(report, indent=2, default=str))
    title = "# Depth 2 beside rlms 0.1.3 and recursive-llm 0.5.0"
    (folder / "depth.md").write_text(f"{title}\n\n{report['markdown']}\n")
    print_table(rows, console)
    console.print(report["markdown"], markup=False, highlight=False, soft_wrap=True)
    console.print(f"Saved {folder / 'depth.json'}, {folder / 'depth.md'}")
    return report


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m dspy_rlm.cli.bench.depth_run", description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3, help="repetitions per setup and latency (default 3)")
    parser.add_argument("--concurrency", type=int, default=16, help="children in flight, both frameworks (default 16)")
    parser.add_argument("--out", default="bench_results", help="results go to OUT/depth/ (default bench_results)")
    parser.add_argument("--peers-dir", type=Path, default=PEERS_DIR,
                        help="folder of the peers' venvs, PEERS_DIR/rlms and PEERS_DIR/recursive-llm (made if missing)")
    args = parser.parse_args(argv)
    try:
        run_depth_bench(reps=args.reps, concurrency=args.concurrency, out=args.out, peers_dir=args.peers_dir)
    except ValueError as problem:
        print(f"depth bench: error: {problem}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
