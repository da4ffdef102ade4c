"""The benchmark's pure parts (plan, summary, ratios, tables, targets, files), its exec
floors, and one tiny real run of the core suite. No timing is asserted."""

from __future__ import annotations

import json

import dspy
import pytest

from dspy_rlm import ScriptedLM
from dspy_rlm.sandbox import Sandbox
from dspy_rlm.cli.bench import SETUPS, SUITES, plan, run_bench
from dspy_rlm.cli.bench import report as rep
from dspy_rlm.cli.bench.deno import READ_LINES_JS, STD_URL, DenoRuntime
from dspy_rlm.cli.bench.setups import ExecInterpreter, ExecSandbox, build_module
from dspy_rlm.cli.bench.workloads import CONTEXT_STEPS, Root, make_context
from tests.helpers import step


def job(setup, workload, result, **params):
    return {"setup": setup, "workload": workload, "params": params, "rep": 0, "result": result}


RESULTS = [
    job("a", "start", {"process_to_first_step_s": 10.0, "call_to_first_step_s": 8.0}),
    job("a", "start", {"process_to_first_step_s": 12.0, "call_to_first_step_s": 6.0}),
    job("b", "start", {"process_to_first_step_s": 2.0, "call_to_first_step_s": 0.4}),
    job("a", "iterations", {"per_iteration_s": 0.021, "root_prompt_chars": [100, 200]}, n=20),
    job("a", "iterations", {"per_iteration_s": 0.035, "root_prompt_chars": [100, 200]}, n=20),  # a disturbed run
    job("b", "iterations", {"per_iteration_s": 0.003, "root_prompt_chars": [90, 110]}, n=20),
    job("c", "iterations", {"per_iteration_s": 0.004}, n=20),
    job("d", "iterations", {"per_iteration_s": 0.001}, n=20),
    job("c_floor", "iterations", {"per_iteration_s": 0.0035}, n=20),
    job("a", "context", {"call_s": 30.0, "peak_mb_total": 4000.0}, mib=50),
    job("b", "context", {"call_s": 0.5, "peak_mb_total": 600.0}, mib=50),
    job("c", "context", {"error": "worker exited"}, mib=50),
    job("a", "context", {"call_s": 20.0, "peak_mb_total": 1200.0}, mib=10),
    job("b", "context", {"call_s": 0.4, "peak_mb_total": 400.0}, mib=10),
    job("a", "batched", {"batch_step_s": 2.6, "call_s": 9.0}, prompts=100, latency_s=0.2),
    job("c", "batched", {"batch_step_s": 1.4, "call_s": 2.0}, prompts=100, latency_s=0.2),
    job("c", "batched", {"batch_step_s": 0.25, "call_s": 0.8}, prompts=100, latency_s=0.2, concurrency=100),
    job("b", "threads", {"wall_s": 0.5, "peak_mb_total": 400.0}, threads=8),
]


def summary():
    return rep.summarize(RESULTS, {"a": "d", "b": "d", "c": "d"}, {"a": "d", "b": "d", "c": "c_floor"})


# ---------------------------------------------------------------------------- plan


def test_plan_covers_every_workload_and_setup():
    jobs = plan("compare", quick=False)
    assert {j["workload"] for j in jobs} == {"start", "iterations", "context", "batched", "threads"}
    assert {j["setup"] for j in jobs} == {"a", "b", "c", "d", "c_floor"}
    assert {j["setup"] for j in jobs if j["setup"] == "c_floor"} and all(
        j["workload"] == "iterations" for j in jobs if j["setup"] == "c_floor")
    sizes = sorted({j["params"]["mib"] for j in jobs if j["workload"] == "context"})
    assert sizes == [1, 10, 50, 100]
    # (a) runs the big contexts once, with a long time limit.
    big_a = [j for j in jobs if j["setup"] == "a" and j["params"].get("mib", 0) >= 50]
    assert len(big_a) == 2 and all(j["timeout_s"] == 900 for j in big_a)
    assert len(plan("compare", quick=True)) < len(jobs)
    assert {j["setup"] for j in plan("core", quick=True)} == {"c", "c_floor"}
    assert {j["workload"] for j in plan("core", quick=False, only=["batched"])} == {"batched"}


# ---------------------------------------------------------------------------- summary and ratios


def test_summary_takes_medians_skips_errors_and_derives_overheads():
    s = summary()
    assert s["a"]["start.process_s"] == 11.0 and s["a"]["start.call_s"] == 7.0
    assert s["a"]["iter.per_iteration_ms"] == pytest.approx(21.0)
    assert s["b"]["iter.overhead_ms"] == pytest.approx(2.0)
    assert s["c"]["iter.overhead_ms"] == pytest.approx(3.0) and s["c"]["iter.sandbox_ms"] == pytest.approx(0.5)
    assert s["a"]["prompt.chars_per_iter"] == 150
    assert "ctx50.call_s" not in s["c"]  # the failed job is left out
    assert s["c"]["batched@100.step_s"] == 0.25 and s["c"]["batched.step_s"] == 1.4


def test_ratio_and_formatting():
    assert rep.ratio(10, 2) == 5 and rep.ratio(None, 2) is None and rep.ratio(1, 0) is None
    assert rep.fmt(0.0123, "s") == "12 ms" and rep.fmt(12.345, "s") == "12.35 s"
    assert rep.fmt(1.5, "ms") == "1.50 ms" and rep.fmt(1234.4, "MB") == "1,234 MB" and rep.fmt(None, "s") == "–"
    assert rep.fmt_ratio(4.04) == "4.0×" and rep.fmt_ratio(1234) == "1,234×" and rep.fmt_ratio(None) == ""


def test_markdown_table_shows_values_and_ratios_against_a():
    table = rep.markdown_table(summary(), {k: SETUPS[k] for k in SUITES["compare"]})
    lines = table.splitlines()
    assert lines[0].startswith("| Measurement | (a) dspy.RLM + Deno/Pyodide | (b) dspy.RLM + EryxInterpreter")
    assert lines[1] == "|---|" + "---:|" * 5
    row = next(line for line in lines if line.startswith("| 4-iteration call, 10 MB context: time"))
    assert "| 20.00 s | 400 ms (50.0×) |" in row
    row = next(line for line in lines if line.startswith("| Per-iteration overhead above the floor"))
    assert "20.00 ms" in row and "2.00 ms (10.0×)" in row
    assert all(line.count("|") == 7 for line in lines)  # one cell per setup, even when missing


def test_compare_targets_are_judged_per_setup():
    targets = {t["target"]: t for t in rep.compare_targets(summary())}
    assert targets["start, fresh process (b)"]["met"] is False  # 11 s / 2 s = 5.5×
    assert targets["start, RLM call (same process) (b)"]["met"] is True
    assert targets["10 MB 4-iteration call (b)"]["met"] is True
    assert targets["100 batched sub-queries (step) (c)"]["measured"] == "1.9×"
    assert targets["peak memory at 50 MB (b)"]["met"] is True and targets["peak memory at 50 MB (b)"]["measured"] == "0.150 of (a)"
    assert targets["peak memory at 50 MB (c)"]["met"] is None
    assert rep.compare_targets({"b": {}})[0]["met"] is None  # no (a): no ratios


def test_core_targets():
    s = {"c": {"start.process_s": 0.8, "iter.overhead_ms": 2.5, "ctx10.call_s": 0.6, "batched.step_s": 1.4,
               "batched.concurrency": 16}}
    targets = {t["target"]: t for t in rep.core_targets(s)}
    assert targets["fresh process → first executed step (factory cached)"]["met"] is True
    assert targets["time per iteration above in-process exec"]["met"] is False
    assert targets["4-step call, 100 MB context"]["met"] is None
    assert "7 rounds" in targets["100 batched prompts @ 200 ms, default concurrency (16)"]["note"]
    assert "| **no** |" in rep.targets_table(list(targets.values()))


def test_document_json_and_chart(tmp_path):
    s = summary()
    setups = {k: SETUPS[k] for k in SUITES["compare"]}
    report = {
        "suite": "compare", "quick": False, "command": "dspy-rlm bench --suite compare", "seconds": 12.0,
        "machine": {"cpus": 2, "cpu_model": "CPU", "ram_gib": 23.0, "python": "3.12", "dspy": "3.4.1",
                    "pyeryx": "0.11.0", "deno": "2.9.6", "load_before": 1.0, "load_after": 2.0},
        "setups": setups, "unavailable": {}, "summary": s, "table": rep.markdown_table(s, setups),
        "targets": rep.compare_targets(s), "results": RESULTS,
    }
    text = rep.document(report)
    assert "2 vCPU (CPU), 23 GiB RAM" in text and "`dspy-rlm bench --suite compare`" in text
    assert "scripted" in text and "Failed measurements:" in text and "worker exited" in text
    rep.save_json(report, tmp_path / "r.json")
    loaded = json.loads((tmp_path / "r.json").read_text())
    assert set(loaded) >= {"suite", "machine", "setups", "summary", "targets", "results", "table"}
    assert loaded["summary"]["b"]["ctx10.call_s"] == 0.4
    pytest.importorskip("matplotlib")
    assert rep.save_chart(report, tmp_path / "r.png") is None
    assert (tmp_path / "r.png").read_bytes()[:4] == b"\x89PNG"


# ---------------------------------------------------------------------------- workloads and floors


def test_context_and_root_script():
    text = make_context(0.1)
    assert len(text) == int(0.1 * 2**20) and text.count("needle") > 0 and '"' in text and "\\" in text
    root = Root(["print(1)", "SUBMIT(answer='x')"])
    rlm = build_module("d", "context, query -> answer", max_iters=3, max_llm_calls=5, sub_lm=None)
    with dspy.context(lm=ScriptedLM(root)):
        assert rlm(context="c", query="q").answer == "x"
    assert len(root.times) == 2 and root.prompt_chars[1] > root.prompt_chars[0] > 0


def test_exec_floors_follow_the_interfaces():
    from dspy.primitives.code_interpreter import CodeExecutionError, FinalOutput

    i = ExecInterpreter()
    i.tools["double"] = lambda x: 2 * x
    i.output_fields = [{"name": "answer"}]
    assert i.execute("print(double(n))", {"n": 21}) == "42\n"
    with pytest.raises(CodeExecutionError):
        i.execute("1 / 0")
    assert i.execute("SUBMIT(answer=n)") == FinalOutput({"answer": 21})
    i.shutdown()

    sb = ExecSandbox({"context": "abc"}, {"f": lambda: 1}, setup_code="def SUBMIT(**kw):\n    _rlm_submit(kw)\n")
    assert sb.run("x = f(); print(len(context))").stdout == "3\n" and sb.variables == ["x"]
    assert sb.run("SUBMIT(answer=x)").submission == {"answer": 1}
    assert sb.run("1/0").error_kind == "exception"


def test_dspy_rlm_on_its_exec_floor_gets_the_stand_in_through_sandbox_factory():
    rlm = build_module("c_floor", "context, query -> answer", max_iters=5, max_llm_calls=5, sub_lm=None)
    assert rlm.sandbox_factory is ExecSandbox
    lm = ScriptedLM([step(code) for code in CONTEXT_STEPS])
    with dspy.context(lm=lm):
        assert rlm(context="a needle, another needle", query="q").answer == "2"
    assert build_module("c", "context -> answer", max_iters=1, max_llm_calls=1, sub_lm=None).sandbox_factory is Sandbox


def test_deno_runtime_command_uses_the_import_map():
    runtime = DenoRuntime(deno="/x/deno", version="2.9.6", import_map="/m/import_map.json", deno_dir="/d", source="npm")
    cmd = runtime.command()
    assert cmd[:2] == ["/x/deno", "run"] and "--import-map=/m/import_map.json" in cmd
    assert cmd[-1] == "--dspy-deno-dir=/d" and cmd[-3].endswith("runner.js")
    assert runtime.environment()["DENO_DIR"] == "/d"
    assert "export async function* readLines" in READ_LINES_JS and STD_URL.startswith("https://deno.land/std@0.186.0")


# ---------------------------------------------------------------------------- one real run


class FakeMlflow:
    """Records what log_to_mlflow does (a real sqlite store takes seconds to create)."""

    def __init__(self):
        self.calls = {}

    def __getattr__(self, name):
        def record(*args, **kwargs):
            self.calls.setdefault(name, []).append(args or kwargs)
            return self

        return record

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    info = property(lambda self: type("Info", (), {"run_id": "run-1"})())


def test_mlflow_run_gets_params_metrics_tags_and_files(tmp_path, monkeypatch):
    fake = FakeMlflow()
    monkeypatch.setitem(__import__("sys").modules, "mlflow", fake)
    (tmp_path / "r.json").write_text("{}")
    report = {"suite": "core", "quick": True, "machine": {"cpus": 2}, "summary": {"c": {"batched@100.step_s": 0.3}},
              "targets": [{"target": "t", "measured": "1 s", "met": False}]}
    assert rep.log_to_mlflow(report, [tmp_path / "r.json", tmp_path / "missing.png"], "sqlite:///x.db") == "run-1"
    assert fake.calls["set_tracking_uri"] == [("sqlite:///x.db",)] and fake.calls["set_experiment"] == [("dspy-rlm-bench",)]
    assert fake.calls["log_metrics"] == [({"c.batched_at_100.step_s": 0.3},)]
    assert fake.calls["log_params"][0][0]["machine.cpus"] == 2
    assert fake.calls["set_tags"] == [({"target.0": "t: 1 s (missed)"},)]
    assert fake.calls["log_artifact"] == [(str(tmp_path / "r.json"),)]


@pytest.mark.usefixtures("eryx_factory")
def test_tiny_real_run_of_the_core_suite(tmp_path):
    report = run_bench("core", quick=True, out=tmp_path, only=["iterations"], tracking_uri=None)
    assert not [j for j in report["results"] if "error" in j["result"]]
    assert {"c", "c_floor"} <= set(report["summary"])
    assert report["summary"]["c"]["iter.per_iteration_ms"] > 0 and "iter.overhead_ms" in report["summary"]["c"]
    saved = json.loads((tmp_path / "core-quick-iterations.json").read_text())
    assert saved["suite"] == "core" and saved["quick"] is True and saved["machine"]["cpus"] >= 1
    assert (tmp_path / "core-quick-iterations.md").read_text().startswith("# dspy-rlm bench: suite `core` (quick)")


def test_without_deno_the_bench_says_so_and_runs_the_rest(tmp_path, monkeypatch):
    import dspy_rlm.cli.bench.deno as deno
    import dspy_rlm.cli.bench.runner as runner

    monkeypatch.setattr(deno, "ensure_deno", lambda say: (None, "npm is not installed"))
    ran = []

    def fake_job(job, deno_info, env):
        ran.append(job["setup"])
        return {"per_iteration_s": 0.002, "root_prompt_chars": [10]}

    monkeypatch.setattr(runner, "run_job", fake_job)
    report = run_bench("compare", quick=True, out=tmp_path, only=["iterations"], tracking_uri=None)
    assert sorted(ran) == ["b", "c", "c_floor", "d"]
    assert report["unavailable"] == {"a": "npm is not installed"}
    assert report["targets"][0]["met"] is None and "(a) unavailable" in report["targets"][0]["measured"]
    assert "Setup (a) could not run: npm is not installed" in (tmp_path / "compare-quick-iterations.md").read_text()
