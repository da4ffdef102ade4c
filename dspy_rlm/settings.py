"""Defaults and environment variables: each knob's one home.

Every entry point (`RLM`, `EryxInterpreter`, the sandbox, the `dspy-rlm`
command) takes its defaults from here, and each environment variable is read
here and nowhere else. It imports nothing from the package and nothing of
DSPy or eryx, so every layer may use it.

Environment variables:
    DSPY_RLM_CACHE_DIR: where the sandbox image and the bench's runtimes are cached
        (default `~/.cache/dspy-rlm`).
    DSPY_RLM_SPAN_VALUE_CHARS: longest string kept in an MLflow span's inputs and
        outputs (default 2000; 0 keeps everything).
    LITELLM_LOCAL_MODEL_COST_MAP: set to "True" unless already set, because litellm
        otherwise downloads its price list when first imported, which stalls offline.
"""

from __future__ import annotations

import os
from pathlib import Path

# -- the sandbox -------------------------------------------------------------
STEP_TIMEOUT_S = 120.0
"""Seconds one step of model code may run (waiting on sub-queries and tools included)."""
MEMORY_MB = 2048
"""Memory cap of one sandbox, in MiB."""
MAX_OUTPUT_CHARS = 10_000
"""Characters of a step's output the root model sees (head and tail)."""
INTERPRETER_OUTPUT_CHARS = 100_000
"""Characters of output `EryxInterpreter` keeps per step: dspy.RLM truncates to its own limit after."""

# -- one RLM call ------------------------------------------------------------
MAX_ITERS = 20
MAX_LLM_CALLS = 50
MAX_CONCURRENCY = 64
"""Sub-queries of one `llm_query_batched` in flight at once."""
MAX_PROMPT_CHARS = 500_000
"""Longest prompt one sub-query accepts."""

# -- what one call keeps and shows (each text is cut in the middle, with a marker) --
SUBMIT_REPAIR_CHARS = 2_000
"""Longest submitted text repaired as malformed JSON for a typed output: json_repair is
quadratic on some text (~0.5 s at 5,000 characters, minutes at 100,000). Longer text
must be valid JSON or a Python literal, which are read in linear time."""
SUBMIT_LITERAL_CHARS = 200_000
"""Longest submitted text read as a Python literal (`ast.literal_eval`, ~1 s a megabyte)."""
HISTORY_REASONING_CHARS = 2_000
"""Characters of a step's reasoning the root model sees again in `repl_history`."""
HISTORY_CODE_CHARS = 5_000
"""Characters of a step's code the root model sees again in `repl_history` (the step ran in full)."""
TRAJECTORY_TEXT_CHARS = 100_000
"""Characters of each step's reasoning, code and output kept in the trajectory a call returns."""

# -- MLflow ------------------------------------------------------------------
TRACKING_URI = "sqlite:///mlflow.db"
"""The MLflow store the command and `setup_tracking` use unless told otherwise."""
SPAN_VALUE_CHARS = int(os.environ.get("DSPY_RLM_SPAN_VALUE_CHARS", "2000"))

# -- dspy-rlm ask: files and folders as inputs --------------------------------
ASK_MAX_FILE_BYTES = 100 * 1024 * 1024
"""Largest file `read_corpus` reads (100 MB); a larger one is listed in the index as skipped, with
its size, so one stray dump does not fill memory or the prompt budget."""
ASK_INLINE_CHARS = 8 * 1024 * 1024
"""Up to this many characters the corpus context is a plain `str`; above, a file-backed `TextFile`
the sandbox mounts without the host holding the text in memory."""


# Send an LM's token cap as `max_tokens` in the body for OpenAI-compatible endpoints of its own
# (`api_base`) on DSPy's default engine, which sends it as `max_completion_tokens`, a field llama.cpp's
# server ignores (see core/local_models.py). DSPY_RLM_LOCAL_TOKEN_CAP=0 turns this off.
LOCAL_TOKEN_CAP = os.environ.get("DSPY_RLM_LOCAL_TOKEN_CAP", "1") not in ("0", "false", "False", "")


# -- recursion and long runs (core/tree.py, core/compaction.py) ---------------
MAX_LIVE_SANDBOXES = 4
"""Child sandboxes (`rlm_query`) alive at once at each depth of a call's tree."""
DEFAULT_CONTEXT_WINDOW = 128_000
"""Tokens of the root model's window when litellm does not know the model (compaction only)."""
CHARS_PER_TOKEN = 4
"""Characters per token when history length is compared with a window."""


# -- files -------------------------------------------------------------------
def cache_dir() -> Path:
    """Where built artefacts are cached (the sandbox image, the bench's runtimes).

    Read at each use rather than at import, so a process (or a test) that sets
    DSPY_RLM_CACHE_DIR after importing the package is followed."""
    return Path(os.environ.get("DSPY_RLM_CACHE_DIR") or Path.home() / ".cache" / "dspy-rlm").expanduser()


os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
