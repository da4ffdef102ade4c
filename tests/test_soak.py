"""A short soak: calls in a row and on threads with the simulated model leave nothing behind."""

from __future__ import annotations

import json

from dspy_rlm.cli.main import build_parser
from dspy_rlm.cli.soak import run_soak, slope_per_100


def test_a_short_soak_is_correct_and_leaks_nothing(tmp_path):
    figures = run_soak(calls=30, threads=4, per_thread=5, out=tmp_path, progress=False)
    for phase in figures["phases"]:
        assert phase["failures"] == 0, phase["errors"]
        assert phase["wrong"] == 0
        named = (phase["before"]["thread_names"], phase["after"]["thread_names"])
        assert all(growth <= 0 for growth in phase["leaks"].values()), (phase["leaks"], named)  # back to baseline
    assert [p["calls"] for p in figures["phases"]] == [30, 20]
    saved = json.loads((tmp_path / "soak.json").read_text())
    assert saved["model"].startswith("simulated") and len(saved["phases"][0]["rss_samples"]) == 30


def test_a_soak_with_isolated_sandboxes_leaves_no_worker_behind(tmp_path):
    figures = run_soak(calls=10, threads=2, per_thread=5, isolate_process=True, out=tmp_path, progress=False)
    assert figures["isolate_process"]
    for phase in figures["phases"]:
        assert phase["failures"] == 0 and phase["wrong"] == 0, phase["errors"]
        assert phase["before"]["child_processes"] >= 1  # the spare worker, started in the warm-up
        assert all(growth <= 0 for growth in phase["leaks"].values()), phase["leaks"]


def test_the_slope_is_a_least_squares_fit_after_the_warm_up():
    points = [(i, 100.0 + (50.0 if i <= 20 else 0.0) + 0.02 * i) for i in range(1, 201)]
    assert slope_per_100(points, skip=20) == 2.0
    assert slope_per_100([(1, 1.0)]) is None


def test_the_soak_command_takes_the_documented_options():
    args = build_parser().parse_args(["soak", "--calls", "500", "--threads", "8", "--per-thread", "100", "--quick",
                                      "--isolate-process"])
    assert (args.calls, args.threads, args.per_thread, args.quick, args.isolate_process) == (500, 8, 100, True, True)
