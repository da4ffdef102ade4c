#!/usr/bin/env bash
# DSPy's own tests of its code-running modules and interpreter protocol, on offline Deno + Pyodide
# and on eryx (EryxInterpreter swapped in by tools/dspy_suite/plugin.py; the test bodies unchanged).
#   scripts/dspy_tests.sh DSPY_CHECKOUT [both|eryx|deno]
# DSPY_CHECKOUT: a DSPy checkout (a folder with tests/), or a git directory (DSPY_REF, default HEAD,
# gives the commit). Needs the project's .venv (DSPY_RLM_VENV to override); the Deno run installs
# Deno from npm and Pyodide once (as `dspy-rlm bench` does). A development tool: CI has no network.
# Results: a summary per run, and JUnit XML in $DSPY_SUITE_OUT (default /tmp/dspy-suite).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${DSPY_RLM_VENV:-$ROOT/.venv}/bin/python"
CHECKOUT="${1:?usage: scripts/dspy_tests.sh DSPY_CHECKOUT [both|eryx|deno]}"
MODES="${2:-both}"; [[ "$MODES" == both ]] && MODES="deno eryx"
OUT="${DSPY_SUITE_OUT:-/tmp/dspy-suite}"
WORK="$(mktemp -d)"; trap 'rm -rf "$WORK"' EXIT
mkdir -p "$OUT"

if [[ -d "$CHECKOUT/tests" ]]; then
  cp -r "$CHECKOUT/tests" "$WORK/"
else  # a git directory; only tests/ is taken: the installed dspy is the one under test
  git --git-dir="$CHECKOUT" archive "${DSPY_REF:-HEAD}" tests | tar -x -C "$WORK"
fi

FILES=(tests/predict/test_rlm.py tests/predict/test_code_act.py tests/predict/test_program_of_thought.py
       tests/flex tests/primitives/test_python_interpreter.py tests/primitives/test_code_interpreter.py
       tests/callback/test_interpreter_callback.py)
status=0
for mode in $MODES; do
  echo "==> DSPy's tests on $mode ($("$PY" -c 'import dspy; print("dspy", dspy.__version__)'))"
  (cd "$WORK" && DSPY_SUITE_INTERPRETER="$mode" PYTHONPATH="$WORK:$ROOT" "$PY" -m pytest -p tools.dspy_suite.plugin \
      -p no:cacheprovider --deno -q -rfEs --continue-on-collection-errors --timeout=300 -W ignore::DeprecationWarning \
      --junitxml="$OUT/$mode.xml" "${FILES[@]}") | tee "$OUT/$mode.txt" | tail -n 80 || status=1
done
if [[ -f "$OUT/deno.xml" && -f "$OUT/eryx.xml" ]]; then
  echo "==> eryx failures by reason (tools/dspy_suite/compare.py)"
  PYTHONPATH="$ROOT" "$PY" -m tools.dspy_suite.compare "$OUT" | tee "$OUT/compare.txt" | head -n 3
fi
exit $status
