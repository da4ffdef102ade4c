"""`dspy-rlm ask QUESTION PATH...`: your own files as RLM inputs, end to end, with the simulated model.

Answers here are simulated-model answers: computed from the files by the code the simulated root
model writes, so they show the pipeline works, not a language model's ability.
"""

from __future__ import annotations

import json
import random

import dspy
import pytest

from dspy_rlm.cli.ask import ask_signature, run_ask
from dspy_rlm.cli.main import main

SIMULATED = "simulated model (not a real language model)"


@pytest.fixture
def folder(tmp_path):
    """A small project: logs with a known number of ERROR lines, code, JSON, CSV, Markdown, a binary
    file, and a .gitignore whose ignored file holds ERROR lines that must not be counted."""
    rng = random.Random(7)
    root = tmp_path / "project"
    (root / "logs").mkdir(parents=True)
    (root / "src").mkdir()
    levels = [rng.choice(["INFO", "WARN", "ERROR"]) for _ in range(60)]
    (root / "logs" / "app.log").write_text("".join(f"2026-01-01 {lvl} event {i}\n" for i, lvl in enumerate(levels)))
    (root / "src" / "zoo.py").write_text("def feed_the_zebra():\n    return 'hay'\n")
    (root / "data.json").write_text(json.dumps({"animals": ["zebra", "lion"], "count": 2}))
    (root / "table.csv").write_text("name,legs\nzebra,4\nemu,2\n")
    (root / "README.md").write_text("# Zoo\n\nThe default port is 8080 for the ticket server.\n")
    (root / "blob.bin").write_bytes(bytes(range(256)) * 4)
    (root / ".gitignore").write_text("ignored.log\n")
    (root / "ignored.log").write_text("ERROR hidden\nERROR hidden too\n")
    return root, levels.count("ERROR")


@pytest.fixture
def cache(tmp_path):
    return str(tmp_path / "ingest-cache")


@pytest.fixture
def store(tmp_path):
    """A sqlite MLflow store for one test; autologging and the tracking URI are reset afterwards."""
    import mlflow

    previous = mlflow.get_tracking_uri()
    yield f"sqlite:///{tmp_path}/mlflow.db"
    mlflow.flush_trace_async_logging()
    mlflow.dspy.autolog(disable=True, silent=True)
    dspy.settings.configure(track_usage=False)
    while mlflow.active_run() is not None:
        mlflow.end_run()
    mlflow.set_tracking_uri(previous)


def test_ask_counts_error_lines_from_the_files_shows_the_index_and_tracks_the_run(folder, cache, store, capsys):
    root, errors = folder
    argv = ["ask", "How many lines contain ERROR?", str(root), "--cache-dir", cache, "--tracking-uri", store]
    assert main(argv) == 0
    out = capsys.readouterr().out
    unwrapped = " ".join(out.split())  # the console wraps long lines
    assert SIMULATED in unwrapped and "[simulated model]" in unwrapped  # the answer says it is simulated
    assert f"{errors} lines contain 'ERROR'" in unwrapped  # computed over the files, .gitignore respected
    for shown in ("logs/app.log", "src/zoo.py", "data.json", "table.csv", "README.md", "blob.bin", "binary"):
        assert shown in unwrapped, shown
    assert "ERROR hidden" not in unwrapped and "MLflow run" in unwrapped and "first_step_seconds" in unwrapped

    import mlflow

    mlflow.set_tracking_uri(store)
    (run,) = mlflow.search_runs(experiment_names=["dspy-rlm-ask"], output_format="list")
    assert run.data.tags["dspy_rlm.model_kind"] == SIMULATED
    assert run.data.params["files_read"] == "6" and run.data.params["files_not_read"] == "1"
    assert run.data.metrics["iterations"] >= 2 and run.data.metrics["sub_queries"] >= 1
    index = mlflow.artifacts.load_dict(f"{run.info.artifact_uri}/files.json")
    assert {row["path"]: row["status"] for row in index}["blob.bin"] == "skipped"
    mlflow.flush_trace_async_logging()
    experiment = mlflow.get_experiment_by_name("dspy-rlm-ask")
    assert mlflow.search_traces(experiment_ids=[experiment.experiment_id], return_type="list")


def test_a_which_file_question_names_the_files_and_a_second_ask_reads_from_the_cache(folder, cache):
    root, _ = folder
    first = run_ask("Which files mention zebra?", [str(root)], cache_dir=cache, tracking_uri=None)
    for path in ("src/zoo.py", "data.json", "table.csv"):
        assert path in first["answer"]
    assert "README.md" not in first["answer"] and first["converted"] == 6 and first["cache_hits"] == 0
    second = run_ask("What is the default port of the ticket server?", [str(root)], cache_dir=cache, tracking_uri=None)
    assert second["converted"] == 0 and second["cache_hits"] == 6
    assert "README.md:3: The default port is 8080" in second["answer"]


def test_a_file_over_the_cap_is_listed_with_the_reason_and_the_job_goes_on(folder, cache, capsys):
    root, errors = folder
    (root / "logs" / "big.log").write_text("ERROR big\n" * 30_000)  # about 300 kB
    argv = ["ask", "How many lines contain ERROR?", str(root), "--max-file-mb", "0.1", "--cache-dir", cache,
            "--tracking-uri", ""]
    assert main(argv) == 0
    unwrapped = " ".join(capsys.readouterr().out.split())
    assert "logs/big.log" in unwrapped and "cap" in unwrapped and f"{errors} lines contain 'ERROR'" in unwrapped


def test_an_unknown_question_gets_a_not_found_answer(folder, cache):
    root, _ = folder
    figures = run_ask("Who painted the kraken mural?", [str(root)], cache_dir=cache, tracking_uri=None)
    assert figures["answer"].startswith("[simulated model] I could not find")


@pytest.mark.parametrize(("argv", "message"), [
    (["ask", "Which file?"], "no PATH given"),
    (["ask", "   ", "{root}"], "the question is empty"),
    (["ask", "Which file?", "{root}/nope", "{root}/also-nope"], "nothing could be read"),
    (["ask", "Which file?", "{empty}"], "nothing could be read"),
    (["ask", "Which file?", "{root}", "--signature", "context, question ->"], "has no output"),
    (["ask", "Which file?", "{root}", "--signature", "context question answer"], "is not a DSPy signature"),
    (["ask", "Which file?", "{root}", "--signature", "text, question -> answer"], "needs the inputs context"),
    (["ask", "Which file?", "{root}", "--signature", "context, question, mood -> answer"], "remove mood"),
    (["ask", "Which file?", "{root}", "--sub-model", "openai/x"], "--sub-model needs --model"),
])
def test_bad_input_gets_one_line_and_exit_status_2(argv, message, folder, cache, tmp_path, capsys):
    root, _ = folder
    (tmp_path / "empty").mkdir()
    argv = [a.format(root=root, empty=tmp_path / "empty") for a in argv] + ["--cache-dir", cache, "--tracking-uri", ""]
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert error.startswith("dspy-rlm ask: error: ") and message in error and error.count("\n") == 1


def test_the_max_file_size_is_checked_by_the_parser(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["ask", "q", ".", "--max-file-mb", "0"])
    assert exited.value.code == 2 and "more than 0 MB" in capsys.readouterr().err


def test_a_user_signature_gets_the_files_index_and_the_default_describes_it():
    signature = ask_signature("context, question -> answer: str, confidence: float")
    assert list(signature.input_fields) == ["context", "question", "files"]
    assert "offset" in signature.input_fields["files"].json_schema_extra["desc"]
    default = ask_signature()
    assert list(default.input_fields) == ["context", "files", "question"] and list(default.output_fields) == ["answer"]
    assert "context[f['offset'] : f['offset'] + f['chars']]" in default.input_fields["files"].json_schema_extra["desc"]


def test_ask_runs_on_a_real_dspy_lm_against_the_served_simulated_model(folder, cache, monkeypatch):
    """`--model openai/...` goes through dspy.LM and LiteLLM over HTTP (here to serve-sim's server)."""
    from dspy_rlm.lms.simulated.files_world import FilesWorld
    from dspy_rlm.lms.simulated.lm import SimulatedLM
    from dspy_rlm.lms.simulated.server import serve_simulated

    root, errors = folder
    with serve_simulated(SimulatedLM(FilesWorld(), strategy="regex", error_rate=0.0)) as server:
        monkeypatch.setenv("OPENAI_API_BASE", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sim")
        figures = run_ask("How many lines contain ERROR?", [str(root)], model="openai/sim", cache_dir=cache,
                          tracking_uri=None)
    assert figures["model"] == "language model openai/sim" and f"{errors} lines contain 'ERROR'" in figures["answer"]


def test_serve_sim_serves_the_files_world():
    """`dspy-rlm serve-sim --family files` (for `ask --model openai/...` against it) starts in a fresh process."""
    import subprocess
    import sys

    command = [sys.executable, "-m", "dspy_rlm.cli.main", "serve-sim", "--family", "files", "--port", "0"]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = server.stdout.readline()
    finally:
        server.kill()
        server.communicate(timeout=30)
    assert first.startswith("Serving sim/files")
