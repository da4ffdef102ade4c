"""A compiled RLM program as an `mlflow.pyfunc` model, logged without pickle.

The model is "models from code": MLflow stores `model_code.py` (which
builds the program from code), the program's JSON state (demos and
instructions) and a JSON config naming the program and its models. Loading
needs no pickle (it works with `MLFLOW_ALLOW_PICKLE_DESERIALIZATION=false`),
and no secret is stored (no `api_key`, credential header such as `Authorization` or
`Cookie`, or `api_base` with a password or a key in its query string: `program_config`
refuses them): `dspy.LM` reads keys from the environment where the model is served.

    info = log_rlm_model("state.json", program="dspy_rlm.programs.families.niah:build_program", model="openai/gpt-4o-mini")
    model = mlflow.pyfunc.load_model(info.model_uri)
    model.predict(pd.DataFrame([{"context": "...", "query": "..."}]))   # one dict per row

The serving environment must have `dspy-rlm` installed (or pass `code_paths`).
"""

from __future__ import annotations

import importlib
import json
import tempfile
from pathlib import Path
from typing import Any

import dspy
import pandas as pd
from mlflow.pyfunc import PythonModel

from dspy_rlm.core.secrets import secret_settings
from dspy_rlm.lms.names import load_object, make_lm
from dspy_rlm.serving.rows import LIMIT_NAMES, BatchSettings, answer_row, wants_rows

MODEL_CODE = Path(__file__).with_name("model_code.py")


def program_config(*, program: str | None = None, signature: str | None = None, rlm_kwargs: dict | None = None,
                   model: str, sub_model: str | None = None, lm_kwargs: dict | None = None,
                   imports: list[str] | None = None) -> dict[str, Any]:
    """The JSON config of a served program: how to build it (a `module:function` or a signature
    string plus `RLM` keyword arguments), which models to use (by name), and modules to import
    first (for example `dspy_rlm.programs.families`, which registers the simulated model's worlds)."""
    if (program is None) == (signature is None):
        raise ValueError("Give exactly one of program ('module:function') or signature ('context, query -> answer')")
    config = {"program": program, "signature": signature, "rlm_kwargs": rlm_kwargs or {}, "model": model,
              "sub_model": sub_model, "lm_kwargs": lm_kwargs or {}, "imports": list(imports or [])}
    found = secret_settings(config)  # keys, credential headers, and URLs with a password or a secret parameter
    if found:
        raise ValueError(f"A served program's config must not hold secrets; found at {', '.join(found)}. "
                         "Set them in the serving environment instead (dspy.LM reads OPENAI_API_KEY etc.).")
    return config


def build_program(config: dict[str, Any]) -> dspy.Module:
    """A fresh, uncompiled program from a config (the state is loaded separately)."""
    for module in config.get("imports") or []:
        importlib.import_module(module)
    kwargs = dict(config.get("rlm_kwargs") or {})
    if config.get("sub_model"):
        kwargs["sub_lm"] = make_lm(config["sub_model"], **(config.get("lm_kwargs") or {}))
    if config.get("program"):
        return load_object(config["program"])(**kwargs)
    from dspy_rlm.core.rlm import RLM

    return RLM(config["signature"], **kwargs)


class RLMModel(PythonModel):
    """The pyfunc model; `model_code.py` hands an instance to `mlflow.models.set_model`."""

    def load_context(self, context: Any) -> None:
        config = json.loads(Path(context.artifacts["config"]).read_text())
        self.config, self.state = config, context.artifacts["state"]
        self.program = build_program(config)
        self.program.load(self.state)
        self.lm = make_lm(config["model"], **(config.get("lm_kwargs") or {}))
        self.inputs = list(self.program.signature.input_fields) if hasattr(self.program, "signature") else None
        self._tuned: dict[tuple, dspy.Module] = {}  # programs rebuilt with a batch job's limits, by limits

    def predict(self, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """One output dict per input row (a DataFrame, or a dict / list of dicts in Python).

        With `params={"output": "rows", ...}` (`BatchSettings.as_params()`), each row gives a flat batch
        record instead (see `dspy_rlm.serving.rows`): outputs, usage, seconds and the row's error."""
        if wants_rows(params):
            return self._records(model_input, BatchSettings.from_params(params))
        with dspy.context(lm=self.lm):
            return [self._answer(row) for row in _rows(model_input)]

    def _records(self, model_input: Any, settings: BatchSettings) -> list[dict[str, Any]]:
        program = self.program_with(settings)
        inputs, outputs = list(program.signature.input_fields), list(program.signature.output_fields)
        with dspy.context(lm=self.lm):
            return [answer_row(program, row, inputs, outputs) for row in _rows(model_input)]

    def program_with(self, settings: BatchSettings) -> dspy.Module:
        """The program built with a batch job's limits (once per distinct settings), its state loaded."""
        overrides = settings.rlm_kwargs()
        key = tuple(sorted(overrides.items()))
        if key not in self._tuned:
            config = {**self.config, "rlm_kwargs": {**(self.config.get("rlm_kwargs") or {}), **overrides}}
            try:
                program = build_program(config)
            except TypeError as error:
                raise TypeError(f"the program {config.get('program')} does not take the batch job's limits "
                                f"{sorted(overrides)} as keyword arguments: {error}") from error
            if not hasattr(program, "signature"):
                raise TypeError(f"batch records need a program with a `signature` (an RLM); "
                                f"{config.get('program')} built a {type(program).__name__}")
            program.load(self.state)
            self._tuned[key] = program
        return self._tuned[key]

    def _answer(self, row: dict[str, Any]) -> dict[str, Any]:
        if self.inputs is not None:
            row = {name: row[name] for name in self.inputs if name in row}
        prediction = self.program(**row)
        return json.loads(json.dumps(prediction.toDict(), default=str))


def _rows(model_input: Any) -> list[dict[str, Any]]:
    if hasattr(model_input, "to_dict"):  # a pandas DataFrame: one call per row
        return model_input.to_dict(orient="records")
    if isinstance(model_input, dict):
        return [model_input]
    return list(model_input)


def log_rlm_model(state_path: str | Path, *, name: str = "rlm_program", input_example: dict | None = None,
                  code_paths: list[str] | None = None, **config: Any) -> Any:
    """Log a compiled program (its JSON state) as a pyfunc model in the active run; return the ModelInfo.

    `config` takes the arguments of `program_config` (program or signature, model, sub_model, ...).
    """
    import mlflow

    settings = program_config(**config)
    with tempfile.TemporaryDirectory() as folder:
        config_path = Path(folder, "program_config.json")
        config_path.write_text(json.dumps(settings, indent=2))
        return mlflow.pyfunc.log_model(
            name=name,
            python_model=str(MODEL_CODE),
            artifacts={"state": str(state_path), "config": str(config_path)},
            signature=_signature(settings),
            input_example=input_example,
            code_paths=code_paths,
            pip_requirements=_requirements(),
        )


def _signature(settings: dict[str, Any]) -> Any:
    from mlflow.models import ModelSignature
    from mlflow.types.schema import AnyType, ColSpec, ParamSchema, ParamSpec, Schema

    program = build_program({**settings, "sub_model": None})
    if not hasattr(program, "signature"):
        return None
    fields = program.signature.input_fields
    columns = [ColSpec("string" if field.annotation is str else AnyType(), name) for name, field in fields.items()]
    # Inference params of a batch job (BatchSettings.as_params); MLflow drops params a signature does not declare.
    params = [ParamSpec("output", "string", "predictions"), ParamSpec("on_limit", "string", None),
              *(ParamSpec(name, "double" if name in ("max_time", "max_cost") else "long", None)
                for name in (*LIMIT_NAMES, "max_concurrency"))]
    return ModelSignature(inputs=Schema(columns), params=ParamSchema(params))


def _requirements() -> list[str]:
    from importlib.metadata import PackageNotFoundError, version

    pins = []
    for package in ("dspy-rlm", "mlflow", "dspy", "pyeryx", "pydantic", "pandas"):  # dspy-rlm: the model's own code
        try:
            pins.append(f"{package}=={version(package)}")
        except PackageNotFoundError:
            continue
    return pins
