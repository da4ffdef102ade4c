"""The pyfunc model serves a program with its library: the solver answers rows with no root-model call."""

from __future__ import annotations

import mlflow
import pandas as pd
import pytest

from dspy_rlm import RLM, CodeLibrary
from dspy_rlm.library import library_function
from dspy_rlm.serving.pyfunc import log_rlm_model
from tests.library.conftest import COUNT_WORDS
from tests.library.test_library_in_rlm import SOLVE
from tests.mlflow_helpers import mlflow_store


@pytest.mark.slow
def test_a_served_program_carries_its_library_and_solver(tmp_path):
    with mlflow_store(tmp_path, "library-serving", autolog=False):
        library = CodeLibrary(functions=[library_function(COUNT_WORDS), library_function(SOLVE)])
        state = tmp_path / "state.json"
        RLM("context -> answer", library=library).save(str(state))
        with mlflow.start_run():
            info = log_rlm_model(state, signature="context -> answer", model="tests.mlflow_helpers:shouting_root_lm",
                                 input_example={"context": "a b"})
        out = mlflow.pyfunc.load_model(info.model_uri).predict(pd.DataFrame([{"context": "a b c"}, {"context": "d"}]))
    assert [row["answer"] for row in out] == ["3", "1"]
    assert all(row["usage"]["root_calls"] == 0 and row["solver"] == {"used": True} for row in out)
