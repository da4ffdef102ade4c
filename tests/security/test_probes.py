"""Escape and abuse probes, each one model-written step through `RLM` (see probes.py)."""

from __future__ import annotations

import json
import re
import time

import pytest

from tests.security.harness import CONTEXT, expected_answer, run_in_subprocess, run_probe
from tests.security.probes import CRASHERS, PROBES, STACK_PROBES, SUBMISSIONS, all_names

MAX_PROMPT_CHARS = 100_000  # no probe may blow up what the root model reads next


def check_no_secret(host, caplog, *texts: str) -> None:
    everything = "\n".join([*texts, caplog.text, *(str(r.args) for r in caplog.records)])
    for secret in host.secrets:
        assert secret not in everything


def check_run(host, caplog, tmp_path, result, root) -> None:
    check_no_secret(host, caplog, json.dumps(result.trajectory), str(result.answer),
                    *(request.text for request in root.requests))
    assert not host.connections, "a connection reached the host"
    assert max(len(request.text) for request in root.requests) < MAX_PROMPT_CHARS
    assert not list(tmp_path.glob("dspy-rlm-inputs-*")), "an inputs folder was left behind"


@pytest.mark.parametrize("probe", PROBES, ids=[p.name for p in PROBES])
def test_probe(probe, host, caplog, tmp_path):
    started = time.perf_counter()
    result, root = run_probe(host.code(probe.code))
    assert time.perf_counter() - started < 30
    step = result.trajectory[1]
    assert re.search(probe.expect, step["output"]), f"unexpected observation:\n{step['output'][:2000]}"
    assert step["error"] == probe.kind
    assert result.answer == expected_answer(probe.survives)  # the session recovered, inputs back
    check_run(host, caplog, tmp_path, result, root)


@pytest.mark.parametrize("name, code, answer, refusal", SUBMISSIONS, ids=[s[0] for s in SUBMISSIONS])
def test_submission_probe(name, code, answer, refusal, host, caplog, tmp_path):
    result, root = run_probe(code)
    if refusal is None:
        assert len(result.trajectory) == 2  # the submission ended the run
        assert result.answer == answer or re.match(str(answer), str(result.answer))
    else:
        assert re.search(refusal, result.trajectory[1]["output"])
        assert result.answer == expected_answer(True)
    check_run(host, caplog, tmp_path, result, root)


def test_recursion_through_c_code_is_stopped_before_it_can_abort_the_host():
    # Before the recursion cap each of these aborted the host process (see STACK_PROBES).
    # One subprocess for all: a regression kills it, not the test run.
    finished = run_in_subprocess([probe.code for probe in STACK_PROBES])
    assert finished.returncode == 0, f"the host process died ({finished.returncode}): {finished.stderr[-500:]}"
    reports = json.loads(finished.stdout.strip().splitlines()[-1])
    for probe, report in zip(STACK_PROBES, reports, strict=True):
        assert re.search(probe.expect, report["output"]), (probe.name, report["output"][:2000])
        assert report["answer"] == expected_answer(probe.survives), probe.name


@pytest.mark.parametrize("probe", [
    pytest.param(p, marks=pytest.mark.xfail(strict=True, reason=(
        "pyeryx 0.11: C recursion over deeply nested data overflows the wasm runtime's native stack and aborts "
        "the host process; not blockable from the guest or the host without process isolation (see below)")))
    for p in CRASHERS], ids=[p.name for p in CRASHERS])
def test_deeply_nested_data_walked_by_c_code(probe):
    finished = run_in_subprocess([probe.code], mode="sandbox")
    assert finished.returncode == 0, f"the host process died ({finished.returncode}): {finished.stderr[-300:]}"
    report = json.loads(finished.stdout.strip().splitlines()[-1])[0]
    assert re.search(probe.expect, report["output"]) and report["after"].strip() == str(len(CONTEXT))


def test_process_isolation_turns_those_aborts_into_a_crash_the_call_recovers_from():
    finished = run_in_subprocess([probe.code for probe in CRASHERS], mode="isolated")
    assert finished.returncode == 0, f"the host process died ({finished.returncode}): {finished.stderr[-500:]}"
    reports = json.loads(finished.stdout.strip().splitlines()[-1])
    for probe, report in zip(CRASHERS, reports, strict=True):
        assert report["error"] == "crash" and "SandboxCrash" in report["output"], (probe.name, report["output"])
        assert "variables lost: marker" in report["output"], probe.name
        assert report["answer"] == expected_answer(survives=False), probe.name  # inputs back, marker gone


def test_the_suite_has_at_least_forty_probes():
    names = all_names()
    assert len(names) == len(set(names)) >= 40
    assert len(CONTEXT) > 100
