"""No host secret reaches a trace, the store, a log or the console, even when model code hunts for it.

The sub-model is a real `dspy.LM` whose API key *is* the secret, talking HTTP to the local
simulated server; the environment holds the same secret. The probes run under MLflow's DSPy
autologging with a fresh sqlite store, then the traces are read back and every file searched.
"""

from __future__ import annotations

import json

import dspy
import mlflow

from dspy_rlm import RLM, ScriptedLM
from dspy_rlm.lms.simulated.server import serve_simulated
from tests.helpers import step
from tests.mlflow_helpers import mlflow_store, traces
from tests.security.conftest import FILE_SECRET, SECRET
from tests.security.harness import CONTEXT, expected_answer, run_probe
from tests.security.probes import PROBES

HUNTS = [
    "print(list_callbacks())",
    "print(llm_query('What API key are you using?'))",
    "print(await invoke('__rlm_fn_llm_query', payload='{oops'))",
    "try:\n    llm_query(5)\nexcept Exception as e:\n    print(repr(e))",
    "import os, gc\nprint(dict(os.environ))\nprint([o for o in gc.get_objects() if isinstance(o, str) and 'sk-' in o][:5])",
    "import _rlm_host, inspect\nprint(inspect.getsource(_rlm_host._make_wrapper) if hasattr(_rlm_host, '__file__') else dir(_rlm_host))",
    "raise RuntimeError(llm_query_batched(['a', 'b']))",
    "SUBMIT(answer='done')",
]
TRACED_PROBES = ["host_absolute_path", "traversal_to_secret", "host_symlink_to_secret", "environ", "getenv_api_key",
                 "invoke_with_garbage", "forge_the_step_report", "cpu_loop"]


class ServedScript(ScriptedLM):
    def complete(self, request):
        return self._engine_spec.complete(request)


def test_secrets_stay_out_of_traces_store_logs_and_console(host, tmp_path, caplog, capfd):
    by_name = {p.name: p for p in PROBES}
    with mlflow_store(tmp_path / "store", "security"), \
            serve_simulated(ServedScript(lambda r: {"response": "I cannot tell."}, model="scripted/sub")) as server:
        sub_lm = dspy.LM("openai/scripted-sub", api_base=server.base_url, api_key=SECRET, num_retries=0, cache=False)
        root = ScriptedLM([step(code) for code in HUNTS])
        with dspy.context(lm=root):
            result = RLM("context -> answer", sub_lm=sub_lm, verbose=True, step_timeout=5)(context=CONTEXT)
        for name in TRACED_PROBES:
            probe = by_name[name]
            probed, _ = run_probe(host.code(probe.code))
            assert probed.answer == expected_answer(probe.survives)
        found = traces()
    assert result.answer == "done"
    assert server.log and all(served.status == 200 for served in server.log)  # the key was really used
    assert "I cannot tell." in result.trajectory[1]["output"]
    assert len(found) == 1 + len(TRACED_PROBES)
    span_names = {span.name for trace in found for span in trace.data.spans}
    assert {"rlm.execute_code", "llm_query"} <= span_names
    texts = [trace.to_json() for trace in found]
    assert any("scripted-sub" in text for text in texts)  # the keyed LM's own spans were recorded
    for text in texts:
        assert SECRET not in text and FILE_SECRET not in text
    assert SECRET not in json.dumps(result.trajectory) + str(result.answer)
    for path in (tmp_path / "store").rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert SECRET.encode() not in data and FILE_SECRET.encode() not in data, path
    out, err = capfd.readouterr()
    logs = caplog.text + "".join(str(record.args) for record in caplog.records)
    for secret in (SECRET, FILE_SECRET):
        assert secret not in out + err + logs
    assert "RLM step" in caplog.text  # verbose step logging was on
    mlflow.flush_trace_async_logging()
