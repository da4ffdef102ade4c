"""`LocalSchemaAdapter`: JSON output constrained by the signature's schema, for local endpoints.

DSPy's `JSONAdapter` asks for `response_format={"type": "json_object"}` when the provider is not
known to take a schema, which is the case for every self-hosted OpenAI-compatible server. Several
of them (llama.cpp's, llama-cpp-python's) accept the schema inside that very object and constrain
decoding to it, which is what makes a small local model's replies parse. This adapter sends it.
"""

from __future__ import annotations

from typing import Any

import dspy
import pydantic


class LocalSchemaAdapter(dspy.JSONAdapter):
    """`dspy.JSONAdapter` that adds the output fields' JSON schema to `{"type": "json_object"}`.

    Use it where the endpoint takes a schema there: `dspy.configure(adapter=LocalSchemaAdapter())`,
    or `with dspy.context(adapter=LocalSchemaAdapter()): rlm(...)`. Other endpoints get what
    `JSONAdapter` would send."""

    def _prepare_response_format(self, lm: Any, lm_kwargs: dict[str, Any], signature: type[dspy.Signature]) -> None:
        super()._prepare_response_format(lm, lm_kwargs, signature)
        # None: DSPy does not know the endpoint takes a response_format; choosing this adapter says it does.
        if lm_kwargs.get("response_format") in (None, {"type": "json_object"}):
            schema = output_schema(signature)
            if schema is not None:
                lm_kwargs["response_format"] = {"type": "json_object", "schema": schema}


def output_schema(signature: type[dspy.Signature]) -> dict[str, Any] | None:
    """The JSON schema of an object holding `signature`'s outputs (None if a type has no schema)."""
    fields = {name: (field.annotation, ...) for name, field in signature.output_fields.items()}
    try:
        return pydantic.create_model("Outputs", **fields).model_json_schema()
    except (pydantic.PydanticSchemaGenerationError, pydantic.PydanticInvalidForJsonSchema, TypeError):
        return None
