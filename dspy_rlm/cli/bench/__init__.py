"""`dspy-rlm bench`: dspy.RLM on Deno/Pyodide and on EryxInterpreter, dspy_rlm.RLM, and an
in-process `exec` floor, on the same scripted workloads (suite `compare`); or the core
module's own targets (suite `core`); or dspy.Flex, CodeAct and ProgramOfThought on Deno vs eryx
(suite `modules`, modules.py).

    dspy-rlm bench [--suite compare|core] [--quick] [--out bench_results] [--tracking-uri URI]

Files: setups.py (what runs), workloads.py (what is measured, in a fresh worker process
per measurement), deno.py (setup (a) offline), report.py (table, JSON, PNG, MLflow),
runner.py (the job list and the run).
"""

from dspy_rlm.cli.bench.runner import WORKLOAD_NAMES, plan, run_bench
from dspy_rlm.cli.bench.setups import SETUPS, SUITES

__all__ = ["run_bench", "plan", "SETUPS", "SUITES", "WORKLOAD_NAMES"]
