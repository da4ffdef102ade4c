import threading, mlflow
from tests.mlflow_helpers import mlflow_store, traces, tree
from dspy_rlm.tracking import use_experiment
from optimizers import optimize

def test_debug_extra(tmp_path):
    print("THREADS", [t.name for t in threading.enumerate()])
    for attempt in range(2):
        with mlflow_store(tmp_path / str(attempt), "dbg") as uri:
            r = optimize("niah", "bootstrap", "sim", tracking_uri=uri, experiment="opt-bootstrap",
                         sizes={"train": 4, "dev": 3, "test": 4, "context": 2048}, output_dir=tmp_path / "out", progress=False)
            use_experiment("opt-bootstrap")
            runs = {x.info.run_id: x.info.run_name for x in mlflow.search_runs(output_format="list")}
            for t in traces():
                if not t.info.assessments:
                    src = t.info.request_metadata.get("mlflow.sourceRun")
                    print("UNSCORED", attempt, runs.get(src, src), tree(t)[:4], str(t.data.spans[0].inputs)[:200])
