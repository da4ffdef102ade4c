"""`dspy-rlm demo` and `dspy-rlm serve-sim` from the command line: the main job, labelled, tracked; clear errors."""

from __future__ import annotations

import pytest

from dspy_rlm.cli.main import main
from dspy_rlm.cli.demo import run_demo


def test_demo_runs_end_to_end_prints_simulated_figures_and_tracks_the_run(tmp_path, capsys):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    assert main(["demo", "--family", "niah", "--size", "32768", "--seed", "1", "--tracking-uri", uri]) == 0
    out = capsys.readouterr().out
    for expected in ("simulated model (not a real language model)", "step 1", "answer", "expected", "score",
                     "iterations", "sub_queries", "total_tokens", "run_seconds", "task_generation_seconds",
                     "MLflow run"):
        assert expected in out, expected
    unwrapped = "".join(out.split())  # the console wraps long lines
    assert "".join(f"open the dashboard with: dspy-rlm ui --tracking-uri {uri}".split()) in unwrapped
    assert "generate_seconds" not in out  # it was the task's generation time, read as the model's

    import mlflow

    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(experiment_names=["dspy-rlm-demo"], output_format="list")
    assert len(runs) == 1
    run = runs[0]
    assert run.data.tags["dspy_rlm.model_kind"] == "simulated model (not a real language model)"
    assert run.data.params["family"] == "niah" and "score" in run.data.metrics and run.data.metrics["iterations"] >= 2


def test_run_demo_returns_its_figures():
    figures = run_demo("pairs", 2**14, 3, tracking_uri=None)
    assert figures["model"].startswith("simulated") and 0.0 <= figures["score"] <= 1.0
    assert figures["iterations"] >= 2 and figures["context_chars"] >= 2**14 * 0.9


@pytest.mark.parametrize(("argv", "message"), [
    (["demo", "--family", "nope", "--tracking-uri", ""], "Unknown task family 'nope'"),
    (["demo", "--sub-model", "openai/x", "--size", "4096", "--tracking-uri", ""], "--sub-model needs --model"),
    (["serve-sim", "--family", "nope"], "No simulated world named 'nope'"),
])
def test_bad_arguments_get_a_clear_message(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_a_model_that_cannot_be_called_gets_a_one_line_message(capsys):
    argv = ["demo", "--family", "niah", "--size", "4096", "--model", "nonsense", "--tracking-uri", ""]
    assert main(argv) == 1
    error = capsys.readouterr().err
    assert error.startswith("dspy-rlm demo: error: the root model failed") and error.count("\n") == 1


@pytest.mark.parametrize(("argv", "message"), [
    (["demo", "--size", "100"], "must be from 1024 (2^10) to 8388608 (2^23) characters"),
    (["demo", "--size", "lots"], "expected a whole number"),
    (["demo", "--size", "inf"], "expected a whole number"),
    (["demo", "--latency", "nan"], "must be 0 or more seconds"),
    (["demo", "--latency", "-1"], "must be 0 or more seconds"),
    (["serve-sim", "--fault-rate", "2"], "must be from 0 to 1"),
])
def test_argument_types_are_checked_by_the_parser(argv, message, capsys):
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2 and message in capsys.readouterr().err


def test_dspy_rlm_ui_serves_mlflows_dashboard_on_the_store_offline():
    """Offline, `mlflow ui` never answers without LITELLM_LOCAL_MODEL_COST_MAP=True; the command sets it."""
    from dspy_rlm.cli.ui import ui_command

    argv, environment = ui_command("sqlite:///runs.db", port=5055)
    assert argv[1:4] == ["-m", "mlflow", "ui"] and argv[argv.index("--backend-store-uri") + 1] == "sqlite:///runs.db"
    assert argv[argv.index("--port") + 1] == "5055" and argv[argv.index("--host") + 1] == "127.0.0.1"
    assert environment["LITELLM_LOCAL_MODEL_COST_MAP"] == "True"
