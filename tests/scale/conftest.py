"""Fixtures of the scale tests: a logged simulated-model program, a table of tasks, Spark, a team server.

The model is the simulated model (not a language model) with one fixed strategy (`batched`) and no
sub-model mistakes, so a row's answer is right unless the pipeline lost or mixed something up; rows
that must fail are crafted in the table (`niah_table`).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from dspy_rlm import RLM
from dspy_rlm.serving.rows import BatchSettings
from tests.mlflow_helpers import mlflow_store

ROWS = 40
ROW_TOKEN_LIMIT = 40_000  # the job's per-row token budget: the ordinary rows use about 3,000 to 16,000
MISSING_ROW, LONG_ROW = ROWS, ROWS + 1  # positions of the crafted rows
SETTINGS = BatchSettings(max_tokens=ROW_TOKEN_LIMIT)


def log_niah_program(folder: Path) -> str:
    """Log an (uncompiled) niah program on the simulated model; return a local model folder, so Spark
    workers and the command line read it without a tracking store."""
    with mlflow_store(folder, "scale-model", autolog=False):
        state = folder / "state.json"
        RLM("context, query -> answer").save(str(state))
        with mlflow.start_run():
            info = mlflow_log(state)
        return mlflow.artifacts.download_artifacts(info.model_uri, dst_path=str(folder / "model"))


def mlflow_log(state: Path):
    from dspy_rlm.serving.pyfunc import log_rlm_model

    return log_rlm_model(state, signature="context, query -> answer", model="sim/niah",
                         lm_kwargs={"strategy": "batched", "error_rate": 0.0}, imports=["dspy_rlm.programs.families"])


@pytest.fixture(scope="session")
def niah_model(tmp_path_factory) -> str:
    return log_niah_program(tmp_path_factory.mktemp("scale-model"))


@pytest.fixture(scope="session")
def niah_table() -> pd.DataFrame:
    """40 needle tasks of 4 KB, then a row whose document is missing (its code raises TypeError in the
    sandbox) and a 256 KB row that needs more tokens than the job's per-row budget."""
    from dspy_rlm.programs.families import get_family

    family = get_family("niah")
    tasks = [family.make_task(2**12, seed) for seed in range(ROWS)]
    long = family.make_task(2**18, 1000)
    rows = [gold_row(t) for t in tasks]
    rows.append({**gold_row(tasks[0]), "context": None})
    rows.append(gold_row(long))
    return pd.DataFrame(rows)


def gold_row(task) -> dict:
    """A task as a table row: inputs, gold answer, and the metric's facts (a dict as JSON text, as files hold it)."""
    return {"context": task.context, "query": task.query, "answer": task.answer, "key": task.meta["key"],
            "distractors": json.dumps(task.meta["distractors"])}


@pytest.fixture(scope="session")
def spark():
    """A local[2] Spark session for the whole run (about 10 s to start), stopped at the end."""
    if shutil.which("java") is None:
        pytest.skip("Spark needs Java 17 or newer on PATH, and there is no `java` here")
    from dspy_rlm.serving.spark import spark_session

    session = spark_session("local[2]", app_name="dspy-rlm-tests")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def team_server():
    """PostgreSQL (its own binaries, as the `postgres` user when run by root) and `mlflow server` on
    127.0.0.1, both stopped at the end. Skipped only when PostgreSQL's programs are not installed."""
    from dspy_rlm.observability.team import TeamServer, postgres_bin

    try:
        postgres_bin()
    except FileNotFoundError as missing:
        if not _installed_postgres():
            pytest.skip(str(missing))
    folder = Path(tempfile.mkdtemp(prefix="dspy-rlm-team-"))  # under /tmp: reachable by the postgres user
    server = TeamServer(folder)
    try:
        yield server.start()
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


def _installed_postgres() -> bool:
    """On a fresh machine of this kind (Debian, as root), install PostgreSQL from Debian's packages."""
    import os
    import subprocess

    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return False
    subprocess.run(["apt-get", "update", "-q"], capture_output=True, timeout=600)
    done = subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", "postgresql"],
                          capture_output=True, timeout=900, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    return done.returncode == 0
