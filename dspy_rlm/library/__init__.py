"""The code library: functions that accumulate across runs (harvested, tested, versioned, reused).

No DSPy here, like the sandbox and ingest layers: a library is a folder of plain Python
files that developers and models both write. `CodeLibrary` reads and writes it;
`harvest` finds candidate functions in step code; `recording` records real calls as
regression tests; `testing` runs those tests in the sandbox.
"""

from dspy_rlm.library.harvest import Candidate, HarvestedRun, candidates_from_steps, solver_code
from dspy_rlm.library.library import INDEX_HEADING, SOLVER, CodeLibrary, LibraryFunction, library_function, parse_index
from dspy_rlm.library.provenance import Provenance
from dspy_rlm.library.recording import CallRecorder, RecordedCall, chosen_tests
from dspy_rlm.library.testing import TestOutcome, run_tests

SOLVER_STEP_TAG = "# dspy-rlm library solver"  # the first line of the solver's step, as the trajectory shows it

__all__ = [
    "CodeLibrary", "LibraryFunction", "Provenance", "CallRecorder", "RecordedCall", "Candidate", "HarvestedRun",
    "TestOutcome",
    "INDEX_HEADING", "SOLVER", "SOLVER_STEP_TAG", "candidates_from_steps", "chosen_tests", "library_function",
    "parse_index", "run_tests", "solver_code",
]
