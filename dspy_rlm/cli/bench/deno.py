"""Setup (a) offline: `dspy.RLM`'s default Deno + Pyodide interpreter without deno.land.

* Deno comes from the npm package `deno` (`npm install` into `~/.cache/dspy-rlm/deno/`),
  or, without npm, from the PyPI package `deno` (what `dspy[deno]` installs).
* Pyodide comes through the npm registry: DSPy's runner imports `npm:pyodide@0.29.4`,
  which Deno downloads into a private DENO_DIR the first time.
* The runner also imports `https://deno.land/std@0.186.0/io/mod.ts`, which is not
  reachable here. An import map points that URL at a local module with a port of std's
  `readLines` (same algorithm: a 4096-byte buffered reader, chunks concatenated), so
  stdin is read the way the real module reads it.

`OfflinePythonInterpreter` is DSPy's `PythonInterpreter` with that Deno command, and it
records the peak RSS of its Deno process when it shuts down.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from dspy.primitives.python_interpreter import PythonInterpreter

from dspy_rlm import settings
from dspy_rlm.cli.bench.memory import peak_rss_mb

NPM_PACKAGE = "deno@^2"  # dspy.PythonInterpreter wants Deno >=2,<3
PYPI_PACKAGE = "deno>=2.4.5,<3"  # the dspy[deno] pin
STD_URL = "https://deno.land/std@0.186.0/io/mod.ts"
RUNTIME_ENV = "DSPY_RLM_BENCH_DENO"

READ_LINES_JS = """\
// Port of readLines from https://deno.land/std@0.186.0/io/read_lines.ts, for offline use:
// a 4096-byte buffered reader; a line longer than the buffer is kept as chunks and concatenated.
const CR = 13, LF = 10, SIZE = 4096;
function concat(chunks) {
  let n = 0;
  for (const c of chunks) n += c.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const c of chunks) { out.set(c, o); o += c.length; }
  return out;
}
export async function* readLines(reader, decoderOpts) {
  const decoder = new TextDecoder(decoderOpts?.encoding, decoderOpts);
  const buf = new Uint8Array(SIZE);
  let r = 0, w = 0, eof = false, chunks = [];
  while (true) {
    const i = buf.subarray(r, w).indexOf(LF);
    if (i >= 0) {
      chunks.push(buf.subarray(r, r + i));
      r += i + 1;
      let line = concat(chunks);
      chunks = [];
      if (line.length && line[line.length - 1] === CR) line = line.subarray(0, line.length - 1);
      yield decoder.decode(line);
      continue;
    }
    if (eof) {
      if (w > r) chunks.push(buf.slice(r, w));
      if (chunks.length) yield decoder.decode(concat(chunks));
      return;
    }
    if (w - r >= SIZE) { chunks.push(buf.slice(r, w)); r = w = 0; }
    if (r > 0) { buf.copyWithin(0, r, w); w -= r; r = 0; }
    const n = await reader.read(buf.subarray(w));
    if (n === null) eof = true; else w += n;
  }
}
"""


@dataclass(frozen=True)
class DenoRuntime:
    deno: str
    version: str
    import_map: str
    deno_dir: str
    source: str  # "npm" or "pypi"

    def command(self) -> list[str]:
        """DSPy's default Deno command, plus the import map."""
        runner = os.path.realpath(PythonInterpreter._get_runner_path(None))  # type: ignore[arg-type]
        deno_dir = os.path.realpath(self.deno_dir)
        return [
            self.deno, "run", "--no-config", "--no-lock", "--node-modules-dir=false",
            f"--import-map={self.import_map}", f"--allow-read={runner},{deno_dir}",
            runner, "", f"--dspy-deno-dir={deno_dir}",
        ]

    def environment(self) -> dict[str, str]:
        return {"DENO_DIR": self.deno_dir, "DENO_NO_PACKAGE_JSON": "1", "DENO_NO_UPDATE_CHECK": "1",
                RUNTIME_ENV: json.dumps(asdict(self))}

    def activate(self) -> None:
        """Make this process's OfflinePythonInterpreter use this runtime."""
        os.environ.update(self.environment())


def cache_dir() -> Path:
    return settings.cache_dir() / "deno"


def _run(cmd: list[str], timeout: float, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False, **kwargs)


def _version(deno: str) -> str | None:
    try:
        out = _run([deno, "--version"], 30).stdout.split()
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out[1] if len(out) > 1 and out[0] == "deno" and out[1].startswith("2.") else None


def _find_binary(folder: Path) -> str | None:
    patterns = ["node_modules/@deno/*/deno", "node_modules/deno/deno", "pypi/deno/bin/deno", "pypi/**/bin/deno"]
    for pattern in patterns:
        for path in sorted(glob.glob(str(folder / pattern), recursive=True)):
            if os.access(path, os.X_OK) and _version(path):
                return path
    return None


def _install(folder: Path, say) -> tuple[str | None, str]:
    """Install Deno into `folder`; return (binary, where from) or (None, what failed)."""
    problems = []
    if shutil.which("npm"):
        (folder / "package.json").write_text('{"private": true}\n')
        say(f"installing Deno from npm ({NPM_PACKAGE}) into {folder}")
        try:
            done = _run(["npm", "install", "--no-audit", "--no-fund", "--prefix", str(folder), NPM_PACKAGE], 600)
            if done.returncode != 0:
                problems.append(f"npm install failed: {done.stderr.strip()[-300:]}")
        except (OSError, subprocess.TimeoutExpired) as exc:
            problems.append(f"npm install failed: {exc}")
        found = _find_binary(folder)
        if found:
            return found, "npm"
    else:
        problems.append("npm is not installed")
    say(f"installing Deno from PyPI ({PYPI_PACKAGE}) into {folder / 'pypi'}")
    try:
        done = _run([sys.executable, "-m", "pip", "install", "--quiet", "--target", str(folder / "pypi"),
                     PYPI_PACKAGE], 600)
        if done.returncode != 0:
            problems.append(f"pip install failed: {done.stderr.strip()[-300:]}")
    except (OSError, subprocess.TimeoutExpired) as exc:
        problems.append(f"pip install failed: {exc}")
    found = _find_binary(folder)
    return (found, "pypi") if found else (None, "; ".join(problems))


def ensure_deno(say=print) -> tuple[DenoRuntime | None, str]:
    """Install (once) and warm up Deno + Pyodide for offline use.

    Returns (runtime, "") or (None, the reason setup (a) cannot run)."""
    folder = cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    deno = _find_binary(folder)
    source = "npm" if deno and "node_modules" in deno else "pypi"
    if deno is None:
        deno, source = _install(folder, say)
        if deno is None:
            return None, f"Deno could not be installed ({source})"
    shim = folder / "std_shim"
    shim.mkdir(exist_ok=True)
    (shim / "io_mod.js").write_text(READ_LINES_JS)
    (shim / "import_map.json").write_text(json.dumps({"imports": {STD_URL: "./io_mod.js"}}) + "\n")
    runtime = DenoRuntime(deno=deno, version=_version(deno) or "?", import_map=str(shim / "import_map.json"),
                          deno_dir=str(folder / "deno_dir"), source=source)
    warm = folder / "deno_dir" / ".pyodide-ok"
    if not warm.exists():
        say("loading Pyodide through the npm registry (first run only; about 10-60 s)")
        env = {**os.environ, **runtime.environment()}
        code = "from dspy_rlm.cli.bench.deno import OfflinePythonInterpreter as P; p = P(); print(p.execute('print(6*7)')); p.shutdown()"
        try:
            done = _run([sys.executable, "-c", code], 600, env=env)
        except subprocess.TimeoutExpired:
            return None, "Pyodide did not load within 10 minutes (is the npm registry reachable?)"
        if "42" not in done.stdout:
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            return None, "Deno started but Pyodide did not load: " + " | ".join(tail)
        warm.write_text("ok\n")
    return runtime, ""


def _runtime_from_env() -> DenoRuntime:
    text = os.environ.get(RUNTIME_ENV)
    if not text:
        raise RuntimeError("the offline Deno runtime is not set up: call ensure_deno() and runtime.activate() first")
    return DenoRuntime(**json.loads(text))


DENO_PEAKS_MB: list[float] = []  # VmHWM of each Deno process this process shut down


class OfflinePythonInterpreter(PythonInterpreter):
    """DSPy's PythonInterpreter on the offline Deno runtime (same runner, same Pyodide)."""

    def __init__(self, **kwargs) -> None:
        super().__init__(deno_command=_runtime_from_env().command(), **kwargs)

    def shutdown(self) -> None:
        process = self.deno_process
        if process is not None and process.poll() is None:
            peak = peak_rss_mb(process.pid)
            if peak is not None:
                DENO_PEAKS_MB.append(peak)
        super().shutdown()
