#!/usr/bin/env bash
# Set up the project's environment if needed, then run one of its jobs.
#   scripts/dev.sh demo [args]   the main job (an RLM run end to end, tracked in ./mlflow.db)
#   scripts/dev.sh test [args]   the test suite (pytest)
#   scripts/dev.sh run CMD...    any command inside the environment
# The environment lives in .venv (override with DSPY_RLM_VENV). It is rebuilt
# when pyproject.toml changes.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${DSPY_RLM_VENV:-$ROOT/.venv}"

is_suitable() {  # a Python >= 3.12 that can create a venv
  "$@" -c 'import sys, venv; sys.exit(0 if sys.version_info >= (3, 12) else 1)' >/dev/null 2>&1
}

find_python() {
  local candidate version
  if [[ -n "${PYTHON:-}" ]] && is_suitable "$PYTHON"; then echo "$PYTHON"; return; fi
  for candidate in python3.13 python3.12 python3; do
    if command -v "$candidate" >/dev/null && is_suitable "$candidate"; then command -v "$candidate"; return; fi
  done
  # pyenv installs versions that its shims expose only when selected; use their binaries directly.
  local pyenv_root="${PYENV_ROOT:-$HOME/.pyenv}"
  if command -v pyenv >/dev/null; then pyenv_root="$(pyenv root)"; fi
  for version in $(ls -1 "$pyenv_root/versions" 2>/dev/null | sort -rV); do
    candidate="$pyenv_root/versions/$version/bin/python3"
    if [[ -x "$candidate" ]] && is_suitable "$candidate"; then echo "$candidate"; return; fi
  done
  for candidate in /usr/local/bin/python3.1[2-9] /usr/bin/python3.1[2-9]; do
    if [[ -x "$candidate" ]] && is_suitable "$candidate"; then echo "$candidate"; return; fi
  done
  return 1
}

ensure_env() {
  local stamp="$VENV/.dspy-rlm-installed" want
  want="$(cat "$ROOT/pyproject.toml" | sha256sum | cut -d' ' -f1)"
  if [[ -x "$VENV/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then return; fi
  local python
  if ! python="$(find_python)"; then
    echo "error: dspy-rlm needs Python >= 3.12 (pyeryx ships cp312-abi3 wheels), and none was found." >&2
    echo "       Looked at \$PYTHON, python3.13, python3.12, python3 and pyenv's versions." >&2
    echo "       Install one (e.g. 'pyenv install 3.12') or point PYTHON at it: PYTHON=/path/to/python3.12 make test" >&2
    exit 2
  fi
  echo "==> creating $VENV with $python ($("$python" --version 2>&1))" >&2
  rm -rf "$VENV"
  "$python" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip >&2
  echo "==> installing dspy-rlm and its dependencies" >&2
  "$VENV/bin/python" -m pip install --quiet -e "$ROOT[test]" >&2
  echo "$want" > "$stamp"
}

main() {
  local job="${1:-}"; shift || true
  case "$job" in
    demo) ensure_env; cd "$ROOT"; exec "$VENV/bin/dspy-rlm" demo "$@" ;;
    test) ensure_env; cd "$ROOT"; exec "$VENV/bin/python" -m pytest "$@" ;;
    run)  ensure_env; cd "$ROOT"; exec "$@" ;;
    env)  ensure_env; echo "$VENV" ;;
    *) echo "usage: scripts/dev.sh {demo|test|run CMD...|env} [args]" >&2; exit 2 ;;
  esac
}

main "$@"
